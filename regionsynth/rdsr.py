"""Radiation Dose Structured Reports (X-Ray Radiation Dose SR, SOP Class 1.2.840.10008.5.1.4.1.1.88.67).

- CT, TID 10011: per event a ``CT Acquisition`` (DCM 113819) container with Target Region (123014), Irradiation Event
  UID (113769) and a ``CT Dose`` (113829) container holding Mean CTDIvol (113830, mGy), CTDIw Phantom Type (113835)
  and DLP (113838, mGy.cm); a ``CT Accumulated Dose Data`` (113811) container with the Total Number of Irradiation
  Events (113812) and CT Dose Length Product Total (113813, mGy.cm).
- Projection X-ray and fluoroscopy, TID 10001: ``Accumulated X-Ray Dose Data`` (113702) with Dose Area Product Total
  (113722, Gy.m2) (and fluoroscopy time and DAP), and per event an ``Irradiation Event X-Ray Data`` (113706) container
  with Dose Area Product (122130, Gy.m2).
- Mammography, TID 10001: ``Accumulated X-Ray Dose Data`` with one Accumulated Average Glandular Dose (111637, mGy)
  per laterality (modifier 272741003), and per event the Average Glandular Dose (111631).

Every report states its scope of accumulation (the study, by Study Instance UID). Trusts with the ``vendor`` unit
style write the units ``mGycm`` and ``Gym2`` as some vendors do. Datasets are mappings of keyword to value, encoded by
:mod:`regionsynth.dicom_encoding`.
"""

from __future__ import annotations

from typing import Any

from regionsynth.imaging import DoseEvent, Study
from regionsynth.procedures import LATERALITY_SCT

RDSR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.67"
Concept = tuple[str, str, str]
Item = dict[str, Any]
_PHANTOM = {"HEAD": ("113690", "DCM", "IEC Head Dosimetry Phantom"),
            "BODY": ("113691", "DCM", "IEC Body Dosimetry Phantom")}


def code(value: str, scheme: str, meaning: str) -> Item:
    """A code sequence item."""
    return {"CodeValue": value, "CodingSchemeDesignator": scheme, "CodeMeaning": meaning}


def decimal(value: float) -> str:
    """A DS value (at most 16 characters)."""
    return f"{value:.6g}"


class SrBuilder:
    """Content items of a structured report."""

    def __init__(self, vendor_units: bool) -> None:
        self.units = {"mGy": ("mGy", "mGy"), "mGy.cm": ("mGycm", "mGycm") if vendor_units else ("mGy.cm", "mGy.cm"),
                      "Gy.m2": ("Gym2", "Gym2") if vendor_units else ("Gy.m2", "Gy.m2"), "s": ("s", "s"),
                      "{events}": ("{events}", "events")}

    @staticmethod
    def _item(relationship: str, value_type: str, concept: Concept) -> Item:
        return {"RelationshipType": relationship, "ValueType": value_type, "ConceptNameCodeSequence": [code(*concept)]}

    def container(self, relationship: str, concept: Concept, children: list[Item]) -> Item:
        """A CONTAINER content item holding ``children``."""
        item = self._item(relationship, "CONTAINER", concept)
        item["ContinuityOfContent"] = "SEPARATE"
        item["ContentSequence"] = children
        return item

    def num(self, concept: Concept, value: float, unit: str, modifiers: list[Item] | None = None) -> Item:
        """A NUM content item with its unit (and optional modifiers such as laterality)."""
        item = self._item("CONTAINS", "NUM", concept)
        value_code, meaning = self.units[unit]
        item["MeasuredValueSequence"] = [{"NumericValue": decimal(value),
                                          "MeasurementUnitsCodeSequence": [code(value_code, "UCUM", meaning)]}]
        if modifiers:
            item["ContentSequence"] = modifiers
        return item

    def code_item(self, relationship: str, concept: Concept, value: Concept) -> Item:
        """A CODE content item."""
        item = self._item(relationship, "CODE", concept)
        item["ConceptCodeSequence"] = [code(*value)]
        return item

    def uid(self, relationship: str, concept: Concept, value: str) -> Item:
        """A UIDREF content item."""
        item = self._item(relationship, "UIDREF", concept)
        item["UID"] = value
        return item

    def text(self, relationship: str, concept: Concept, value: str) -> Item:
        """A TEXT content item."""
        item = self._item(relationship, "TEXT", concept)
        item["TextValue"] = value
        return item


def dose_report(base: Item, study: Study, events: list[DoseEvent], *, series_uid: str, sop_uid: str, number: int,
                vendor_units: bool) -> Item:
    """The RDSR of ``study`` covering ``events`` (all of them, or the first few in a partial report)."""
    sr = SrBuilder(vendor_units)
    p = study.procedure
    procedure_reported = {"CT": ("77477000", "SCT", "Computed Tomography X-Ray"),
                          "MG": ("71651007", "SCT", "Mammography")}.get(p.modality,
                                                                        ("113704", "DCM", "Projection X-Ray"))
    scope = sr.code_item("HAS OBS CONTEXT", ("113705", "DCM", "Scope of Accumulation"), ("113014", "DCM", "Study"))
    scope["ContentSequence"] = [sr.uid("HAS PROPERTIES", ("110180", "DCM", "Study Instance UID"), study.uid)]
    content = [sr.code_item("HAS CONCEPT MOD", ("121058", "DCM", "Procedure reported"), procedure_reported), scope]
    if p.modality == "CT":
        content += _ct(sr, study, events)
    elif p.modality == "MG":
        content += _mammography(sr, events)
    else:
        content += _projection(sr, study, events)
    return base | {
        "SOPClassUID": RDSR_SOP_CLASS,
        "SOPInstanceUID": sop_uid,
        "Modality": "SR",
        "SeriesInstanceUID": series_uid,
        "SeriesNumber": "999",
        "SeriesDescription": "Dose Report",
        "InstanceNumber": str(number),
        "ContentDate": study.performed.strftime("%Y%m%d"),
        "ContentTime": study.performed.strftime("%H%M%S"),
        "ValueType": "CONTAINER",
        "ConceptNameCodeSequence": [code("113701", "DCM", "X-Ray Radiation Dose Report")],
        "ContinuityOfContent": "SEPARATE",
        "ContentTemplateSequence": [{"MappingResource": "DCMR",
                                     "TemplateIdentifier": "10011" if p.modality == "CT" else "10001"}],
        "CompletionFlag": "COMPLETE" if len(events) == len(study.events) else "PARTIAL",
        "VerificationFlag": "UNVERIFIED",
        "ContentSequence": content,
    }


def _ct(sr: SrBuilder, study: Study, events: list[DoseEvent]) -> list[Item]:
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
            sr.code_item("CONTAINS", ("113835", "DCM", "CTDIw Phantom Type"), phantom),
            sr.num(("113838", "DCM", "DLP"), e.dlp_mgycm, "mGy.cm"),
        ])
        out.append(sr.container("CONTAINS", ("113819", "DCM", "CT Acquisition"), [
            sr.text("CONTAINS", ("125203", "DCM", "Acquisition Protocol"), f"{p.short} {n}"),
            sr.code_item("CONTAINS", ("123014", "DCM", "Target Region"), (p.target_sct, "SCT", p.target_display)),
            sr.code_item("CONTAINS", ("113820", "DCM", "CT Acquisition Type"),
                         ("116152004", "SCT", "Spiral Acquisition")),
            sr.uid("CONTAINS", ("113769", "DCM", "Irradiation Event UID"), e.uid),
            dose,
        ]))
    return out


def _projection(sr: SrBuilder, study: Study, events: list[DoseEvent]) -> list[Item]:
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
        kind = (("113630", "DCM", "Continuous Fluoroscopy") if e.fluoro_s
                else ("113611", "DCM", "Stationary Acquisition"))
        out.append(sr.container("CONTAINS", ("113706", "DCM", "Irradiation Event X-Ray Data"), [
            sr.code_item("CONTAINS", ("113721", "DCM", "Irradiation Event Type"), kind),
            sr.text("CONTAINS", ("125203", "DCM", "Acquisition Protocol"), f"{p.short} {e.view}"),
            sr.code_item("CONTAINS", ("123014", "DCM", "Target Region"), (p.site_sct, "SCT", p.site_display)),
            sr.uid("CONTAINS", ("113769", "DCM", "Irradiation Event UID"), e.uid),
            sr.num(("122130", "DCM", "Dose Area Product"), e.dap_dgycm2 * 1e-5, "Gy.m2"),
        ]))
    return out


def _mammography(sr: SrBuilder, events: list[DoseEvent]) -> list[Item]:
    accumulated = []
    for side in ("R", "L"):
        doses = [e.agd_mgy for e in events if e.laterality == side]
        if not doses:
            continue
        code_value, meaning = LATERALITY_SCT[side]
        modifier = sr.code_item("HAS CONCEPT MOD", ("272741003", "SCT", "Laterality"), (code_value, "SCT", meaning))
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
