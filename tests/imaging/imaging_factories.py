"""Factories for DICOM test objects: images with header dose, and dose SRs built by the standard's templates.

The SR builders follow DICOM PS3.16 (TID 10011 CT, TID 10001 projection X-ray and mammography, TID 10021
radiopharmaceutical), with switches for the vendor habits the parser must survive: units written ``mGycm`` or
``Gym2``, numbers such as ``1.6e-005``, the CT Dose container nested or flat, SRT or SNOMED CT anatomy codes,
irradiation events without UIDs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
RADIOPHARMACEUTICAL_SR = "1.2.840.10008.5.1.4.1.1.88.68"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
DX_IMAGE = "1.2.840.10008.5.1.4.1.1.1.1"
MG_IMAGE = "1.2.840.10008.5.1.4.1.1.1.2"

HEAD = ("T-D1100", "SRT", "Head")
CHEST = ("51185008", "SCT", "Chest")
ABDOMEN = ("T-D4000", "SRT", "Abdomen")
HEAD_PHANTOM = ("113690", "DCM", "IEC Head Dosimetry Phantom")
BODY_PHANTOM = ("113691", "DCM", "IEC Body Dosimetry Phantom")


def code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _item(relationship: str, value_type: str, concept: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = DicomSequence([code(*concept)])
    return item


def num(concept: tuple[str, str, str], value: str, unit: str, relationship: str = "CONTAINS") -> Dataset:
    item = _item(relationship, "NUM", concept)
    measured = Dataset()
    measured.NumericValue = value
    measured.MeasurementUnitsCodeSequence = DicomSequence([code(unit, "UCUM", unit)])
    item.MeasuredValueSequence = DicomSequence([measured])
    return item


def coded(concept: tuple[str, str, str], value: tuple[str, str, str], relationship: str = "CONTAINS",
          children: Sequence[Dataset] = ()) -> Dataset:
    item = _item(relationship, "CODE", concept)
    item.ConceptCodeSequence = DicomSequence([code(*value)])
    if children:
        item.ContentSequence = DicomSequence(list(children))
    return item


def uidref(concept: tuple[str, str, str], uid: str, relationship: str = "CONTAINS") -> Dataset:
    item = _item(relationship, "UIDREF", concept)
    item.UID = uid
    return item


def container(concept: tuple[str, str, str], children: Sequence[Dataset], relationship: str = "CONTAINS") -> Dataset:
    item = _item(relationship, "CONTAINER", concept)
    item.ContinuityOfContent = "SEPARATE"
    item.ContentSequence = DicomSequence(list(children))
    return item


def dataset(*, sop_class: str, modality: str, study_uid: str | None = None, sop_uid: str | None = None,
            patient_id: str | None = "AB123456", issuer: str | None = "RTK", name: str = "TESTER^JANE",
            birth_date: str = "19700101", sex: str = "F", accession: str | None = "ACC0001",
            study_date: str = "20240105", description: str | None = None, institution: str | None = None,
            other_ids: Sequence[tuple[str, str]] = ()) -> Dataset:
    """A header common to every object: patient, study, series and SOP identity (with file meta)."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    if accession is not None:
        ds.AccessionNumber = accession
    if description is not None:
        ds.StudyDescription = description
    if institution is not None:
        ds.InstitutionName = institution
    ds.PatientName = name
    if patient_id is not None:
        ds.PatientID = patient_id
    if issuer is not None:
        ds.IssuerOfPatientID = issuer
    ds.PatientBirthDate = birth_date
    ds.PatientSex = sex
    if other_ids:
        items = []
        for value, other_issuer in other_ids:
            item = Dataset()
            item.PatientID, item.IssuerOfPatientID, item.TypeOfPatientID = value, other_issuer, "TEXT"
            items.append(item)
        ds.OtherPatientIDsSequence = DicomSequence(items)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


@dataclass
class CtEvent:
    """One CT acquisition for :func:`ct_rdsr`."""

    ctdivol: str
    dlp: str
    region: tuple[str, str, str] = CHEST
    phantom: tuple[str, str, str] | None = BODY_PHANTOM
    uid: str | None = field(default_factory=generate_uid)
    acquisition: tuple[str, str, str] = ("P5-08001", "SRT", "Spiral Acquisition")


def ct_rdsr(events: Sequence[CtEvent], *, dlp_total: str | None, dlp_unit: str = "mGy.cm",
            ctdi_unit: str = "mGy", nested: bool = True, scope_uid: str | None = "study",
            **header: object) -> Dataset:
    """A CT radiation dose report (TID 10011); ``scope_uid="study"`` scopes the accumulation to the study."""
    ds = dataset(sop_class=XRAY_DOSE_SR, modality="SR", **header)  # type: ignore[arg-type]
    content = [coded(("121058", "DCM", "Procedure reported"), ("P5-08000", "SRT", "Computed Tomography X-Ray"),
                     "HAS CONCEPT MOD")]
    if scope_uid is not None:
        scope = coded(("113705", "DCM", "Scope of Accumulation"), ("113014", "DCM", "Study"), "HAS OBS CONTEXT",
                      [uidref(("110180", "DCM", "Study Instance UID"),
                              ds.StudyInstanceUID if scope_uid == "study" else scope_uid, "HAS PROPERTIES")])
        content.append(scope)
    accumulated = [num(("113812", "DCM", "Total Number of Irradiation Events"), str(len(events)), "{events}")]
    if dlp_total is not None:
        accumulated.append(num(("113813", "DCM", "CT Dose Length Product Total"), dlp_total, dlp_unit))
    content.append(container(("113811", "DCM", "CT Accumulated Dose Data"), accumulated))
    for event in events:
        dose = [num(("113830", "DCM", "Mean CTDIvol"), event.ctdivol, ctdi_unit),
                num(("113838", "DCM", "DLP"), event.dlp, dlp_unit)]
        if event.phantom is not None:
            dose.append(coded(("113835", "DCM", "CTDIw Phantom Type"), event.phantom))
        children = [coded(("123014", "DCM", "Target Region"), event.region),
                    coded(("113820", "DCM", "CT Acquisition Type"), event.acquisition)]
        if event.uid is not None:
            children.append(uidref(("113769", "DCM", "Irradiation Event UID"), event.uid))
        if nested:
            children.append(container(("113829", "DCM", "CT Dose"), dose))
        else:
            children += dose
        content.append(container(("113819", "DCM", "CT Acquisition"), children))
    ds.ConceptNameCodeSequence = DicomSequence([code("113701", "DCM", "X-Ray Radiation Dose Report")])
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ContentSequence = DicomSequence(content)
    return ds


def mammography_rdsr(views: Sequence[tuple[str, str]], *, accumulated: dict[str, str], unit: str = "mGy",
                     thickness: tuple[str, str] | None = None, **header: object) -> Dataset:
    """A mammography dose report (TID 10001 with TID 10005): ``views`` are (laterality, AGD) per exposure;
    ``thickness`` (value, unit) is each view's Compression Thickness (111633)."""
    ds = dataset(sop_class=XRAY_DOSE_SR, modality="SR", **header)  # type: ignore[arg-type]
    breast = {"left": ("T-04030", "SRT", "Left breast"), "right": ("73056007", "SCT", "Right breast")}
    laterality = ("272741003", "SCT", "Laterality")
    content = [coded(("121058", "DCM", "Procedure reported"), ("P5-40010", "SRT", "Mammography"), "HAS CONCEPT MOD")]
    totals = [_with_children(num(("111637", "DCM", "Accumulated Average Glandular Dose"), value, unit),
                             [coded(laterality, breast[side], "HAS CONCEPT MOD")])
              for side, value in accumulated.items()]
    content.append(container(("113702", "DCM", "Accumulated X-Ray Dose Data"), totals))
    for side, agd in views:
        content.append(container(("113706", "DCM", "Irradiation Event X-Ray Data"), [
            uidref(("113769", "DCM", "Irradiation Event UID"), generate_uid()),
            coded(("113721", "DCM", "Irradiation Event Type"), ("113611", "DCM", "Stationary Acquisition")),
            coded(("123014", "DCM", "Target Region"), ("T-04000", "SRT", "Breast"), children=[
                coded(laterality, breast[side], "HAS CONCEPT MOD")]),
            num(("111631", "DCM", "Average Glandular Dose"), agd, unit),
            *([num(("111633", "DCM", "Compression Thickness"), *thickness)] if thickness else [])]))
    ds.ConceptNameCodeSequence = DicomSequence([code("113701", "DCM", "X-Ray Radiation Dose Report")])
    ds.ValueType = "CONTAINER"
    ds.ContentSequence = DicomSequence(content)
    return ds


def _with_children(item: Dataset, children: Sequence[Dataset]) -> Dataset:
    item.ContentSequence = DicomSequence(list(children))
    return item


def radiopharmaceutical_rdsr(activities: Sequence[tuple[str, str]], **header: object) -> Dataset:
    """A radiopharmaceutical dose report (TID 10021): ``activities`` are (value, unit) per administration."""
    ds = dataset(sop_class=RADIOPHARMACEUTICAL_SR, modality="SR", **header)  # type: ignore[arg-type]
    content = []
    for value, unit in activities:
        content.append(container(("113502", "DCM", "Radiopharmaceutical Administration"), [
            coded(("349358000", "SCT", "Radiopharmaceutical agent"), ("C-B1031", "SRT", "Fluorodeoxyglucose F^18^")),
            uidref(("113503", "DCM", "Radiopharmaceutical Administration Event UID"), generate_uid()),
            num(("113507", "DCM", "Administered activity"), value, unit)]))
    ds.ConceptNameCodeSequence = DicomSequence([code("113500", "DCM", "Radiopharmaceutical Radiation Dose Report")])
    ds.ValueType = "CONTAINER"
    ds.ContentSequence = DicomSequence(content)
    return ds


def siemens_radiation_summary(*, dap: str = "0.2359", dap_unit: str = "Gy.cm^2", fluoro_s: str = "34.427",
                              scheme: str = "99SMS_RADSUM", **header: object) -> Dataset:
    """A Siemens private Radiation Summary Report as an ARCADIS C-arm writes it (an Enhanced SR, document title
    C-10 of 99SMS_RADSUM, study totals without irradiation events); ``scheme`` another scheme for the same codes."""
    ds = dataset(sop_class="1.2.840.10008.5.1.4.1.1.88.22", modality="SR", **header)  # type: ignore[arg-type]
    ds.ConceptNameCodeSequence = DicomSequence([code("C-10", scheme, "Radiation Summary Report")])
    ds.ValueType = "CONTAINER"
    ds.ContentSequence = DicomSequence([
        num(("C-200", scheme, "Total number of exposures"), "0", "1"),
        num(("C-202", scheme, "Cumulative fluoro time"), fluoro_s, "s"),
        num(("C-204", scheme, "Cumulative dose area product"), dap, dap_unit)])
    return ds


def ct_image(*, ctdivol: float | None = 12.5, series_uid: str | None = None, **header: object) -> Dataset:
    ds = dataset(sop_class=CT_IMAGE, modality="CT", **header)  # type: ignore[arg-type]
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    if ctdivol is not None:
        ds.CTDIvol = ctdivol
    return ds


def projection_image(*, modality: str = "DX", dap_dgycm2: str | None = "25.0", organ_dose_dgy: str | None = None,
                     laterality: str | None = None, acquired: str = "20240105101700", view: str = "PA",
                     **header: object) -> Dataset:
    ds = dataset(sop_class=MG_IMAGE if modality == "MG" else DX_IMAGE, modality=modality,
                 **header)  # type: ignore[arg-type]
    ds.AcquisitionDateTime = acquired
    ds.ViewPosition = view
    if dap_dgycm2 is not None:
        ds.ImageAndFluoroscopyAreaDoseProduct = dap_dgycm2
    if organ_dose_dgy is not None:
        ds.OrganDose = organ_dose_dgy
    if laterality is not None:
        ds.ImageLaterality = laterality
    return ds


def write(ds: Dataset, path: Path) -> Path:
    """Save ``ds`` as a DICOM file (preamble and file meta)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"


def rejection_note(rejected: Sequence[Dataset], *, code_value: str = "113001", scheme: str = "DCM",
                   meaning: str = "Rejected for Quality Reasons", **header: object) -> Dataset:
    """An IHE IOCM rejection note: a Key Object Selection document titled with a CID 7011 code, naming ``rejected``
    in its Current Requested Procedure Evidence Sequence (grouped by study and series, as the profile does)."""
    first = rejected[0]
    header.setdefault("study_uid", first.StudyInstanceUID)
    ds = dataset(sop_class=KEY_OBJECT_SELECTION, modality="KO", **header)  # type: ignore[arg-type]
    ds.ConceptNameCodeSequence = DicomSequence([code(code_value, scheme, meaning)])
    ds.ValueType = "CONTAINER"
    studies: dict[str, dict[str, list[Dataset]]] = {}
    for item in rejected:
        studies.setdefault(item.StudyInstanceUID, {}).setdefault(item.SeriesInstanceUID, []).append(item)
    evidence = []
    for study_uid, series in studies.items():
        study_item = Dataset()
        study_item.StudyInstanceUID = study_uid
        series_items = []
        for series_uid, objects in series.items():
            series_item = Dataset()
            series_item.SeriesInstanceUID = series_uid
            refs = []
            for obj in objects:
                ref = Dataset()
                ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = obj.SOPClassUID, obj.SOPInstanceUID
                refs.append(ref)
            series_item.ReferencedSOPSequence = DicomSequence(refs)
            series_items.append(series_item)
        study_item.ReferencedSeriesSequence = DicomSequence(series_items)
        evidence.append(study_item)
    ds.CurrentRequestedProcedureEvidenceSequence = DicomSequence(evidence)
    return ds
