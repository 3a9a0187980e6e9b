"""DICOM as PACS and modalities send it: one representative image header per series (no pixel data) and RDSRs.

Patient ID (0010,0020) is the trust's hospital number, qualified by Issuer of Patient ID (0010,0021) = the trust's
``dicom_issuer`` (and, at some trusts, the Issuer of Patient ID Qualifiers Sequence with the trust's FHIR system as
a URI); some headers also carry the NHS number in the Other Patient IDs Sequence.

Dose objects are X-Ray Radiation Dose SR (SOP Class 1.2.840.10008.5.1.4.1.1.88.67):

- CT, TID 10011: per event a ``CT Acquisition`` (DCM 113819) container with Target Region (123014), Irradiation Event
  UID (113769) and a ``CT Dose`` (113829) container holding Mean CTDIvol (113830, mGy), CTDIw Phantom Type (113835)
  and DLP (113838, mGy.cm); a ``CT Accumulated Dose Data`` (113811) container with the Total Number of Irradiation
  Events (113812) and CT Dose Length Product Total (113813, mGy.cm).
- Projection X-ray and fluoroscopy, TID 10001: ``Accumulated X-Ray Dose Data`` (113702) with Dose Area Product Total
  (113722, Gy.m2), and per event an ``Irradiation Event X-Ray Data`` (113706) container with Dose Area Product
  (122130, Gy.m2).
- Mammography, TID 10001: ``Accumulated X-Ray Dose Data`` with one Accumulated Average Glandular Dose (111637, mGy)
  per laterality (modifier 272741003), and per event the Average Glandular Dose (111631).

Image headers carry dose where modalities put it: CTDIvol (0018,9345) on CT, Image and Fluoroscopy Area Dose Product
(0018,115E, dGy.cm2) on projection X-ray, Organ Dose (0040,0316, dGy) on mammography. Trusts with a ``vendor`` unit
style write the units ``mGycm`` and ``Gym2`` as some vendors do.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from priorscan.trusts import Trust
from regionsynth.corruption import Recorded
from regionsynth.imaging import DoseEvent, Series, Study
from regionsynth.procedures import LATERALITY_SCT, dicom_modality
from regionsynth.settings import TrustFeedProfile

RDSR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.67"
IMAGE_SOP_CLASS = {"CT": "1.2.840.10008.5.1.4.1.1.2", "DX": "1.2.840.10008.5.1.4.1.1.1.1",
                   "MG": "1.2.840.10008.5.1.4.1.1.1.2", "US": "1.2.840.10008.5.1.4.1.1.6.1",
                   "MR": "1.2.840.10008.5.1.4.1.1.4", "NM": "1.2.840.10008.5.1.4.1.1.20",
                   "RF": "1.2.840.10008.5.1.4.1.1.12.2"}
MANUFACTURER = {"RTK": "SIEMENS", "RXC": "GE MEDICAL SYSTEMS", "RPC": "Philips", "RA2": "Canon Medical Systems",
                "RYR": "SIEMENS"}
_PHANTOM = {"HEAD": ("113690", "IEC Head Dosimetry Phantom"), "BODY": ("113691", "IEC Body Dosimetry Phantom")}


def code(value: str, scheme: str, meaning: str) -> Dataset:
    """A code sequence item."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _ds(value: float) -> str:
    return f"{value:.6g}"


class SrBuilder:
    """Content items of a structured report (TID 1500-style helpers for the dose templates)."""

    def __init__(self, vendor_units: bool) -> None:
        self.units = {"mGy": ("mGy", "mGy"), "mGy.cm": ("mGycm", "mGycm") if vendor_units else ("mGy.cm", "mGy.cm"),
                      "Gy.m2": ("Gym2", "Gym2") if vendor_units else ("Gy.m2", "Gy.m2"), "s": ("s", "s"),
                      "{events}": ("{events}", "events")}

    @staticmethod
    def _item(relationship: str, value_type: str, concept: tuple[str, str, str]) -> Dataset:
        item = Dataset()
        item.RelationshipType = relationship
        item.ValueType = value_type
        item.ConceptNameCodeSequence = [code(*concept)]
        return item

    def container(self, relationship: str, concept: tuple[str, str, str], children: list[Dataset]) -> Dataset:
        item = self._item(relationship, "CONTAINER", concept)
        item.ContinuityOfContent = "SEPARATE"
        item.ContentSequence = children
        return item

    def num(self, concept: tuple[str, str, str], value: float, unit: str,
            modifiers: list[Dataset] | None = None) -> Dataset:
        item = self._item("CONTAINS", "NUM", concept)
        measured = Dataset()
        measured.NumericValue = _ds(value)
        value_code, meaning = self.units[unit]
        measured.MeasurementUnitsCodeSequence = [code(value_code, "UCUM", meaning)]
        item.MeasuredValueSequence = [measured]
        if modifiers:
            item.ContentSequence = modifiers
        return item

    def code_item(self, relationship: str, concept: tuple[str, str, str], value: tuple[str, str, str]) -> Dataset:
        item = self._item(relationship, "CODE", concept)
        item.ConceptCodeSequence = [code(*value)]
        return item

    def uid(self, relationship: str, concept: tuple[str, str, str], value: str) -> Dataset:
        item = self._item(relationship, "UIDREF", concept)
        item.UID = value
        return item

    def text(self, relationship: str, concept: tuple[str, str, str], value: str) -> Dataset:
        item = self._item(relationship, "TEXT", concept)
        item.TextValue = value
        return item


class DicomWriter:
    """Writes a study's DICOM files under ``root/<ODS>/<StudyInstanceUID>/``.

    Parameters
    ----------
    root
        The region's ``dicom`` folder.
    trusts
        The trusts by ODS code.
    profiles
        Each trust's feed profile (file names with or without ``.dcm``, unit style).
    """

    def __init__(self, root: Path, trusts: dict[str, Trust], profiles: dict[str, TrustFeedProfile]) -> None:
        self.root = root
        self.trusts = trusts
        self.profiles = profiles

    def write(self, study: Study, state: Recorded, sop_uid, nhs_in_header: bool) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
        """Write ``study``; ``sop_uid(kind)`` makes UIDs. Returns ``(relative path, SOP class, kind)`` per file."""
        trust = self.trusts[study.trust]
        profile = self.profiles[study.trust]
        folder = self.root / study.trust / study.uid
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".dcm" if profile.dicom_extension else ""
        files: list[tuple[str, str, str]] = []
        for series in study.series:
            ds = self._image(study, series, state, trust, sop_uid("sop"), nhs_in_header)
            name = f"{series.number:03d}-0001{suffix}"
            self._save(ds, folder / name)
            files.append((f"{study.trust}/{study.uid}/{name}", ds.SOPClassUID, "image"))
        if study.rdsr:
            series_uid = sop_uid("series")
            builder = SrBuilder(profile.dose_unit_meaning == "vendor")
            events = study.events
            reports = [events]
            if study.procedure.modality == "CT" and study.rdsr_partial_events:
                reports = [events[:study.rdsr_partial_events], events]
            for n, report_events in enumerate(reports, start=1):
                ds = self._rdsr(study, state, trust, builder, report_events, series_uid, sop_uid("sop"), n,
                                nhs_in_header)
                name = f"SR-{n}{suffix}"
                self._save(ds, folder / name)
                files.append((f"{study.trust}/{study.uid}/{name}", RDSR_SOP_CLASS,
                              "rdsr-partial" if n < len(reports) else "rdsr"))
        if study.resent and study.procedure.modality != "CT":
            # the whole study sent again, byte for byte (a PACS re-send); a CT study re-sends a grown RDSR instead
            for relative, sop_class, kind in list(files):
                copy = relative.removesuffix(suffix) + "-resent" + suffix
                (self.root / copy).write_bytes((self.root / relative).read_bytes())
                files.append((copy, sop_class, f"{kind}-resent"))
        return files

    @staticmethod
    def _save(ds: Dataset, path: Path) -> None:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        dcmwrite(path, ds, enforce_file_format=True)

    def _patient_study(self, study: Study, state: Recorded, trust: Trust, nhs_in_header: bool) -> Dataset:
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.PatientName = f"{state.family.upper()}^{state.given.upper()}" + (
            f"^{state.middle.upper()}" if state.middle else "")
        ds.PatientID = study.patient_id
        ds.IssuerOfPatientID = trust.dicom_issuer
        if self.profiles[study.trust].pid3_authority == "CX4":
            qualifiers = Dataset()
            qualifiers.UniversalEntityID = trust.fhir_system
            qualifiers.UniversalEntityIDType = "URI"
            ds.IssuerOfPatientIDQualifiersSequence = [qualifiers]
        ds.PatientBirthDate = state.birth_date.strftime("%Y%m%d")
        ds.PatientSex = state.sex
        if nhs_in_header and state.nhs_number:
            other = Dataset()
            other.PatientID = state.nhs_number
            other.IssuerOfPatientID = "NHS"
            other.TypeOfPatientID = "TEXT"
            ds.OtherPatientIDsSequence = [other]
        p = study.procedure
        ds.StudyInstanceUID = study.uid
        ds.StudyDate = study.performed.strftime("%Y%m%d")
        ds.StudyTime = study.performed.strftime("%H%M%S")
        ds.AccessionNumber = study.accession
        ds.StudyID = study.accession[-8:]
        ds.StudyDescription = study.description
        ds.ReferringPhysicianName = ""
        ds.ProcedureCodeSequence = [code(p.code, self.profiles[study.trust].code_system, p.short)]
        ds.InstitutionName = trust.name
        ds.Manufacturer = MANUFACTURER.get(study.trust, "SIEMENS")
        return ds

    def _image(self, study: Study, series: Series, state: Recorded, trust: Trust, sop_uid: str,
               nhs_in_header: bool) -> Dataset:
        p = study.procedure
        modality = dicom_modality(p)
        ds = self._patient_study(study, state, trust, nhs_in_header)
        ds.SOPClassUID = IMAGE_SOP_CLASS[modality]
        ds.SOPInstanceUID = sop_uid
        ds.Modality = modality
        ds.SeriesInstanceUID = series.uid
        ds.SeriesNumber = series.number
        ds.SeriesDescription = series.description
        ds.InstanceNumber = 1
        ds.BodyPartExamined = p.body_part
        if series.laterality in ("L", "R"):
            ds.Laterality = series.laterality
        ds.ContentDate = ds.StudyDate
        ds.ContentTime = ds.StudyTime
        for event in series.events:
            if modality == "CT":
                ds.CTDIvol = float(_ds(event.ctdivol_mgy))
                ds.KVP = "120"
            elif modality in ("DX", "RF"):
                ds.ImageAndFluoroscopyAreaDoseProduct = _ds(event.dap_dgycm2)
                ds.ViewPosition = {"AP": "AP", "LAT": "LL"}.get(event.view, "")
                ds.KVP = "70"
            elif modality == "MG":
                ds.OrganDose = _ds(event.agd_mgy / 100.0)  # Organ Dose is in dGy
                ds.ImageLaterality = event.laterality
                ds.ViewPosition = event.view
                ds.KVP = "29"
        return ds

    def _rdsr(self, study: Study, state: Recorded, trust: Trust, sr: SrBuilder, events: list[DoseEvent],
              series_uid: str, sop_uid: str, number: int, nhs_in_header: bool) -> Dataset:
        p = study.procedure
        ds = self._patient_study(study, state, trust, nhs_in_header)
        ds.SOPClassUID = RDSR_SOP_CLASS
        ds.SOPInstanceUID = sop_uid
        ds.Modality = "SR"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 999
        ds.SeriesDescription = "Dose Report"
        ds.InstanceNumber = number
        done: datetime = study.performed
        ds.ContentDate = done.strftime("%Y%m%d")
        ds.ContentTime = done.strftime("%H%M%S")
        ds.ValueType = "CONTAINER"
        ds.ConceptNameCodeSequence = [code("113701", "DCM", "X-Ray Radiation Dose Report")]
        ds.ContinuityOfContent = "SEPARATE"
        template = Dataset()
        template.MappingResource = "DCMR"
        template.TemplateIdentifier = "10011" if p.modality == "CT" else "10001"
        ds.ContentTemplateSequence = [template]
        ds.CompletionFlag = "COMPLETE" if len(events) == len(study.events) else "PARTIAL"
        ds.VerificationFlag = "UNVERIFIED"
        procedure_reported = {"CT": ("77477000", "SCT", "Computed Tomography X-Ray"),
                              "MG": ("71651007", "SCT", "Mammography")}.get(p.modality,
                                                                            ("113704", "DCM", "Projection X-Ray"))
        scope = sr.code_item("HAS OBS CONTEXT", ("113705", "DCM", "Scope of Accumulation"),
                             ("113014", "DCM", "Study"))
        scope.ContentSequence = [sr.uid("HAS PROPERTIES", ("110180", "DCM", "Study Instance UID"), study.uid)]
        content = [sr.code_item("HAS CONCEPT MOD", ("121058", "DCM", "Procedure reported"), procedure_reported), scope]
        if p.modality == "CT":
            content += self._ct(sr, study, events)
        elif p.modality == "MG":
            content += self._mammography(sr, events)
        else:
            content += self._projection(sr, study, events)
        ds.ContentSequence = content
        return ds

    def _ct(self, sr: SrBuilder, study: Study, events: list[DoseEvent]) -> list[Dataset]:
        p = study.procedure
        total = sum(e.dlp_mgycm for e in events)
        out = [sr.container("CONTAINS", ("113811", "DCM", "CT Accumulated Dose Data"), [
            sr.num(("113812", "DCM", "Total Number of Irradiation Events"), len(events), "{events}"),
            sr.num(("113813", "DCM", "CT Dose Length Product Total"), total, "mGy.cm"),
        ])]
        phantom = _PHANTOM.get(p.phantom, _PHANTOM["BODY"])
        for n, e in enumerate(events, start=1):
            dose = sr.container("CONTAINS", ("113829", "DCM", "CT Dose"), [
                sr.num(("113830", "DCM", "Mean CTDIvol"), e.ctdivol_mgy, "mGy"),
                sr.code_item("CONTAINS", ("113835", "DCM", "CTDIw Phantom Type"), (phantom[0], "DCM", phantom[1])),
                sr.num(("113838", "DCM", "DLP"), e.dlp_mgycm, "mGy.cm"),
            ])
            out.append(sr.container("CONTAINS", ("113819", "DCM", "CT Acquisition"), [
                sr.text("CONTAINS", ("125203", "DCM", "Acquisition Protocol"), f"{p.short} {n}"),
                sr.code_item("CONTAINS", ("123014", "DCM", "Target Region"),
                             (p.target_sct, "SCT", p.target_display)),
                sr.code_item("CONTAINS", ("113820", "DCM", "CT Acquisition Type"),
                             ("116152004", "SCT", "Spiral Acquisition")),
                sr.uid("CONTAINS", ("113769", "DCM", "Irradiation Event UID"), e.uid),
                dose,
            ]))
        return out

    def _projection(self, sr: SrBuilder, study: Study, events: list[DoseEvent]) -> list[Dataset]:
        p = study.procedure
        total = sum(e.dap_dgycm2 for e in events) * 1e-5
        accumulated = [sr.num(("113722", "DCM", "Dose Area Product Total"), total, "Gy.m2")]
        fluoro = sum(e.fluoro_s for e in events)
        if fluoro:
            accumulated.append(sr.num(("113726", "DCM", "Fluoro Dose Area Product Total"), total, "Gy.m2"))
            accumulated.append(sr.num(("113730", "DCM", "Total Fluoro Time"), fluoro, "s"))
        else:
            accumulated.append(sr.num(("113727", "DCM", "Acquisition Dose Area Product Total"), total, "Gy.m2"))
        out = [sr.container("CONTAINS", ("113702", "DCM", "Accumulated X-Ray Dose Data"), accumulated)]
        for e in events:
            kind = ("113630", "DCM", "Continuous Fluoroscopy") if e.fluoro_s else ("113611", "DCM",
                                                                                 "Stationary Acquisition")
            out.append(sr.container("CONTAINS", ("113706", "DCM", "Irradiation Event X-Ray Data"), [
                sr.code_item("CONTAINS", ("113721", "DCM", "Irradiation Event Type"), kind),
                sr.text("CONTAINS", ("125203", "DCM", "Acquisition Protocol"), f"{p.short} {e.view}"),
                sr.code_item("CONTAINS", ("123014", "DCM", "Target Region"), (p.site_sct, "SCT", p.site_display)),
                sr.uid("CONTAINS", ("113769", "DCM", "Irradiation Event UID"), e.uid),
                sr.num(("122130", "DCM", "Dose Area Product"), e.dap_dgycm2 * 1e-5, "Gy.m2"),
            ]))
        return out

    def _mammography(self, sr: SrBuilder, events: list[DoseEvent]) -> list[Dataset]:
        accumulated = []
        for side in ("R", "L"):
            doses = [e.agd_mgy for e in events if e.laterality == side]
            if not doses:
                continue
            code_value, meaning = LATERALITY_SCT[side]
            modifier = sr.code_item("HAS CONCEPT MOD", ("272741003", "SCT", "Laterality"),
                                    (code_value, "SCT", meaning))
            accumulated.append(sr.num(("111637", "DCM", "Accumulated Average Glandular Dose"), sum(doses), "mGy",
                                      [modifier]))
        out = [sr.container("CONTAINS", ("113702", "DCM", "Accumulated X-Ray Dose Data"), accumulated)]
        for e in events:
            code_value, meaning = LATERALITY_SCT[e.laterality]
            out.append(sr.container("CONTAINS", ("113706", "DCM", "Irradiation Event X-Ray Data"), [
                sr.code_item("CONTAINS", ("113721", "DCM", "Irradiation Event Type"),
                             ("113611", "DCM", "Stationary Acquisition")),
                sr.uid("CONTAINS", ("113769", "DCM", "Irradiation Event UID"), e.uid),
                sr.code_item("CONTAINS", ("111027", "DCM", "Image Laterality"), (code_value, "SCT", meaning)),
                sr.text("CONTAINS", ("125203", "DCM", "Acquisition Protocol"), f"{e.laterality}{e.view}"),
                sr.num(("111631", "DCM", "Average Glandular Dose"), e.agd_mgy, "mGy"),
            ]))
        return out


def dose_summary(study: Study) -> dict[str, str]:
    """The dose values written for ``study``, as the truth records them (empty where nothing was written)."""
    out = {"ctdivol_mgy": "", "dlp_total_mgycm": "", "dap_total_gym2": "", "agd_left_mgy": "", "agd_right_mgy": "",
           "irradiation_events": "", "dose_source": ""}
    events = study.events
    if study.feed != "dicom" or not events:
        return out
    modality = study.procedure.modality
    out["dose_source"] = "rdsr" if study.rdsr else "header"
    if study.rdsr:
        out["irradiation_events"] = str(len(events))
    if modality == "CT":
        out["ctdivol_mgy"] = _ds(max(e.ctdivol_mgy for e in events))
        if study.rdsr:
            out["dlp_total_mgycm"] = _ds(sum(e.dlp_mgycm for e in events))
    elif modality in ("XR", "RF"):
        out["dap_total_gym2"] = _ds(sum(e.dap_dgycm2 for e in events) * 1e-5)
    elif modality == "MG":
        for side, key in (("L", "agd_left_mgy"), ("R", "agd_right_mgy")):
            doses = [e.agd_mgy for e in events if e.laterality == side]
            if doses:
                out[key] = _ds(sum(doses))
    return out
