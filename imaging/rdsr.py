"""Reading radiation dose structured reports: walking the SR content tree into events and accumulated totals.

Templates read (DICOM PS3.16):

- TID 10011 *CT Radiation Dose*: ``CT Accumulated Dose Data`` (113811: DLP total 113813) and one ``CT Acquisition``
  (113819) per irradiation event: Irradiation Event UID 113769, Target Region 123014, Mean CTDIvol 113830, DLP
  113838, CTDIw Phantom Type 113835;
- TID 10001 *Projection X-Ray Radiation Dose* (fluoroscopy, radiography, mammography): ``Accumulated X-Ray Dose
  Data`` (113702; per Acquisition Plane 113764: DAP total 113722, Dose (RP) total 113725, Total Fluoro Time 113730,
  Accumulated Average Glandular Dose 111637 per laterality) and ``Irradiation Event X-Ray Data`` (113706: DAP
  122130, Dose (RP) 113738, Average Glandular Dose 111631, Irradiation Event Type 113721);
- TID 10021 *Radiopharmaceutical Radiation Dose*: ``Radiopharmaceutical Administration`` (113502) with its event
  UID 113503 and Administered Activity 113507;
- Siemens' private *Radiation Summary Report* (an Enhanced SR whose document title is C-10 of the coding scheme
  99SMS_RADSUM, written by fluoroscopy C-arms that send no RDSR, such as the ARCADIS): study totals only, Cumulative
  dose area product C-204 and Cumulative fluoro time C-202, no irradiation events. It is a *summary*
  (:func:`imaging.dose.is_summary`): a total of it counts only where no RDSR of the study states that total.

Vendors differ, so the walk is tolerant: concepts are matched by code value whatever the coding scheme (with the
SRT and SNOMED CT codes of anatomy both known), values are searched anywhere below their container (some vendors
nest the CT Dose container, others do not), units are converted by their UCUM meaning (:mod:`imaging.units`), numbers
are read as written (``8.664e-005``), and several accumulation containers per report are combined by plane
(:func:`imaging.dose.report_totals`). Nothing here touches storage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.valuerep import CUSTOMIZABLE_CHARSET_VR, TEXT_VR_DELIMS, PersonName

from imaging import dose as dz
from imaging.codetables import SNOMED, canonical_system
from imaging.procedures import normalise_description
from imaging.units import conversion, parse_number

XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
RADIOPHARMACEUTICAL_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.68"
#: Enhanced X-Ray Radiation Dose SR (2020): the same root templates (TID 10001, 10011) with more content allowed
ENHANCED_XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.76"
DOSE_SR_CLASSES = {XRAY_DOSE_SR, RADIOPHARMACEUTICAL_DOSE_SR, ENHANCED_XRAY_DOSE_SR}
SR_CLASSES = {*DOSE_SR_CLASSES, "1.2.840.10008.5.1.4.1.1.88.11",
              "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34",
              "1.2.840.10008.5.1.4.1.1.88.35"}

XRAY_REPORT = "113701"
#: DCM 128401 Patient Radiation Dose Report (TID 10030): organ dose *estimates* over a patient's examinations, made by
#: dose software; no exposure of one study, so never read as a study's dose
PATIENT_DOSE_REPORT = "128401"
RADIOPHARMACEUTICAL_REPORT = "113500"
PROCEDURE_REPORTED = "121058"
SCOPE_OF_ACCUMULATION = "113705"
CT_ACCUMULATED = "113811"
CT_ACQUISITION = "113819"
XRAY_ACCUMULATED = "113702"
XRAY_EVENT = "113706"
NM_ADMINISTRATION = "113502"
EVENT_UID = "113769"
NM_EVENT_UID = "113503"
TARGET_REGION = "123014"
ACQUISITION_PROTOCOL = "125203"
CT_ACQUISITION_TYPE = "113820"
CONSTANT_ANGLE = "113805"  # a CT localizer (topogram, scout): not the examination's anatomy
LATERALITY = {"272741003", "G-C171"}
ACQUISITION_PLANE = "113764"

#: Siemens' private radiation summary: its coding scheme, document title, and the totals it states (code: quantity,
#: total). C-200 (total number of exposures) and C-210 (cumulative air kerma, "measurement not attempted" on the
#: ARCADIS) are not read.
SIEMENS_SUMMARY_SCHEME = "99SMS_RADSUM"
SIEMENS_SUMMARY = "C-10"
_SIEMENS_SUMMARY_TOTALS = (("C-204", "dap", "dap_total_gym2"), ("C-202", "time", "fluoro_time_s"))

_CT_PROCEDURE = {"P5-08000", "77477000"}
_MAMMO_PROCEDURE = {"P5-40010", "71651007"}
_FLUORO_EVENT = {"P5-06000", "44491008"}

_TAG_CONTENT = Tag(0x0040, 0xA730)
_TAG_CONCEPT_NAME = Tag(0x0040, 0xA043)
_TAG_CONCEPT_CODE = Tag(0x0040, 0xA168)
_TAG_MEASURED = Tag(0x0040, 0xA300)
_TAG_UNITS = Tag(0x0040, 0x08EA)
_TAG_NUMERIC = Tag(0x0040, 0xA30A)
_TAG_FLOAT = Tag(0x0040, 0xA161)
_TAG_VALUE_TYPE = Tag(0x0040, 0xA040)
_TAG_TEXT = Tag(0x0040, 0xA160)
_TAG_UID = Tag(0x0040, 0xA124)
_TAG_DATETIME = Tag(0x0040, 0xA120)
_TAG_CODE_VALUE = Tag(0x0008, 0x0100)
_TAG_SCHEME = Tag(0x0008, 0x0102)
_TAG_MEANING = Tag(0x0008, 0x0104)
_TAG_LONG_CODE = Tag(0x0008, 0x0119)
_TAG_URN_CODE = Tag(0x0008, 0x0120)
_BINARY_VRS = {"FD", "FL", "US", "UL", "SS", "SL", "SV", "UV", "OF", "OD"}


def _decoded(ds: Dataset, value: bytes, vr: str | None) -> str:
    """Text bytes in the object's Specific Character Set (0008,0005), inherited by sequence items from their parents.

    A patient ID, a description or an institution name written in ISO_IR 192 (UTF-8), ISO_IR 144, or ISO 2022 with
    its escape sequences reads as the sender wrote it, the same text DICOM JSON (QIDO-RS, WADO-RS metadata) carries:
    read as latin-1, the same patient ID arrived as two different identifiers from a file or push and from DICOMweb.
    Other VRs (codes, UIDs, numbers: ASCII by definition) and text in a character set that cannot be read are read as
    latin-1, byte for byte."""
    if vr not in CUSTOMIZABLE_CHARSET_VR and vr != "PN":
        return value.decode("latin-1", "replace")
    try:
        encodings = convert_encodings(ds._character_set)  # noqa: SLF001 - the set in force for this item
        if vr == "PN":
            return str(PersonName(value).decode(encodings))
        return decode_bytes(value, encodings, TEXT_VR_DELIMS)
    except (LookupError, ValueError, TypeError, AttributeError):
        return value.decode("latin-1", "replace")


def _text_vr(elem: Any) -> str | None:
    """The element's VR; for implicit VR (or UN) the dictionary's, so that a text element is decoded as text."""
    vr = getattr(elem, "VR", None)
    if vr in (None, "UN"):
        try:
            return str(dictionary_VR(elem.tag))
        except (KeyError, AttributeError):
            return vr
    return str(vr)


def raw_text(ds: Dataset, tag: Any) -> str | None:
    """An element's value as text, read without pydicom's value validation (feeds are lenient on ingest); text VRs in
    the object's character set (:func:`_decoded`)."""
    try:
        elem = ds.get_item(tag)
    except (KeyError, ValueError, TypeError):
        return None
    if elem is None:
        return None
    value = elem.value
    if isinstance(value, bytes) and getattr(elem, "VR", None) in _BINARY_VRS:
        try:
            value = ds[tag].value  # binary numbers need pydicom's decoding (byte order)
        except (ValueError, TypeError, KeyError):
            return None
    if value is None:
        return None
    if isinstance(value, bytes):
        text = _decoded(ds, value, _text_vr(elem))
    elif isinstance(value, list | tuple | MultiValue):  # DICOM JSON's values come as a MultiValue: "CT\\SR" as a file
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    text = text.strip("\x00 ").strip()
    return text or None


def _sequence(ds: Dataset, tag: Any) -> list[Dataset]:
    try:
        elem = ds[tag] if tag in ds else None
    except (KeyError, ValueError, TypeError):
        return []
    if elem is None or elem.VR != "SQ" or not elem.value:
        return []
    return list(elem.value)


@dataclass(frozen=True)
class Code:
    """A coded concept: value, scheme and meaning (meaning lower-cased for matching)."""

    value: str
    scheme: str
    meaning: str

    def is_(self, *values: str) -> bool:
        return self.value in values


def _code(item: Dataset | None) -> Code | None:
    if item is None:
        return None
    value = raw_text(item, _TAG_CODE_VALUE) or raw_text(item, _TAG_LONG_CODE) or raw_text(item, _TAG_URN_CODE) or ""
    meaning = raw_text(item, _TAG_MEANING) or ""
    if not value and not meaning:
        return None
    return Code(value.strip(), (raw_text(item, _TAG_SCHEME) or "").strip(), meaning.strip().lower())


@dataclass
class Node:
    """One SR content item with its children."""

    name: Code | None
    value_type: str
    item: Dataset
    children: list[Node] = field(default_factory=list)

    def is_(self, *codes: str) -> bool:
        return self.name is not None and self.name.value in codes

    def named(self, *meanings: str) -> bool:
        return self.name is not None and any(m in self.name.meaning for m in meanings)

    def walk(self) -> Iterator[Node]:
        for child in self.children:
            yield child
            yield from child.walk()

    def find(self, *codes: str, skip: tuple[str, ...] = ()) -> Node | None:
        """The first descendant named by one of ``codes``, not looking inside containers named by ``skip``."""
        for child in self.children:
            if child.is_(*codes):
                return child
            if skip and child.is_(*skip):
                continue
            found = child.find(*codes, skip=skip)
            if found is not None:
                return found
        return None

    def find_all(self, *codes: str) -> list[Node]:
        return [node for node in self.walk() if node.is_(*codes)]

    @property
    def code(self) -> Code | None:
        sequence = _sequence(self.item, _TAG_CONCEPT_CODE)
        return _code(sequence[0]) if sequence else None

    @property
    def text(self) -> str | None:
        return raw_text(self.item, _TAG_TEXT)

    @property
    def uid(self) -> str | None:
        return raw_text(self.item, _TAG_UID)

    @property
    def datetime_text(self) -> str | None:
        return raw_text(self.item, _TAG_DATETIME)

    @property
    def number(self) -> tuple[float | None, str | None]:
        """The numeric value and its unit code (meaning when the code value is empty)."""
        measured = _sequence(self.item, _TAG_MEASURED)
        if not measured:
            return None, None
        first = measured[0]
        value = parse_number(raw_text(first, _TAG_NUMERIC))
        if value is None and _TAG_FLOAT in first:
            try:
                value = parse_number(first[_TAG_FLOAT].value)
            except (ValueError, TypeError):
                value = None
        units = _sequence(first, _TAG_UNITS)
        unit = None
        if units:
            unit = raw_text(units[0], _TAG_CODE_VALUE) or raw_text(units[0], _TAG_MEANING)
        return value, unit


def content_tree(ds: Dataset) -> Node:
    """The SR document as a tree of :class:`Node` (the root is the document itself)."""
    names = _sequence(ds, _TAG_CONCEPT_NAME)
    root = Node(_code(names[0]) if names else None, raw_text(ds, _TAG_VALUE_TYPE) or "CONTAINER", ds)

    def build(parent: Node, depth: int) -> None:
        if depth > 50:  # a malformed, cyclic-looking document
            return
        for item in _sequence(parent.item, _TAG_CONTENT):
            child_names = _sequence(item, _TAG_CONCEPT_NAME)
            node = Node(_code(child_names[0]) if child_names else None, raw_text(item, _TAG_VALUE_TYPE) or "", item)
            parent.children.append(node)
            build(node, depth + 1)

    build(root, 0)
    return root


def is_dose_report(ds: Dataset) -> bool:
    """Whether ``ds`` is a radiation dose SR (X-ray TID 10001/10011, or radiopharmaceutical TID 10021), in its own SOP
    Class (X-Ray, Enhanced X-Ray, Radiopharmaceutical Radiation Dose SR) or in a general SR class titled as one; a
    Patient Radiation Dose Report (an estimate over examinations, :data:`PATIENT_DOSE_REPORT`) is none."""
    sop_class = raw_text(ds, Tag(0x0008, 0x0016)) or ""
    if sop_class in DOSE_SR_CLASSES:
        return True
    if sop_class not in SR_CLASSES:
        return False
    names = _sequence(ds, _TAG_CONCEPT_NAME)
    name = _code(names[0]) if names else None
    if name is None or name.is_(PATIENT_DOSE_REPORT) or "patient radiation dose" in name.meaning:
        return False
    return name.is_(XRAY_REPORT, RADIOPHARMACEUTICAL_REPORT) or "radiation dose" in name.meaning or _is_siemens_summary(
        name)


def _is_siemens_summary(name: Code | None) -> bool:
    """Whether a document title is Siemens' private Radiation Summary Report (C-10 of 99SMS_RADSUM): the code and
    its private scheme both, since a private code value means nothing in another scheme."""
    return name is not None and name.value == SIEMENS_SUMMARY and name.scheme.upper() == SIEMENS_SUMMARY_SCHEME


# --- anatomy and phantoms -------------------------------------------------------------------------------------------

_TARGET_REGIONS = {
    "T-D1100": "head", "69536005": "head", "T-A0100": "head", "12738006": "head", "T-11100": "head",
    "89546000": "head", "T-D1000": "head", "774007": "head",
    "T-D1600": "neck", "45048000": "neck", "T-D1213": "face", "661005": "face", "T-D1200": "face",
    "89545001": "face", "T-11180": "face", "91609006": "face",  # jaw region, face, mandible
    "T-56000": "chest", "32849002": "chest", "T-57000": "abdomen", "69695003": "abdomen",  # oesophagus, stomach
    "T-D3000": "chest", "51185008": "chest", "43799004": "chest", "T-28000": "chest", "39607008": "chest",
    "T-32000": "chest", "80891009": "chest",
    "T-D4000": "abdomen", "113345001": "abdomen", "818981001": "abdomen",
    "T-D6000": "pelvis", "12921003": "pelvis", "816092008": "pelvis",
    "R-FAB56": "chest-abdomen-pelvis", "416775004": "chest-abdomen-pelvis",
    "R-FAB57": "abdomen-pelvis", "416949008": "abdomen-pelvis", "416550000": "chest-abdomen",
    "T-11501": "cervical-spine", "122494005": "cervical-spine", "T-11502": "thoracic-spine",
    "122495006": "thoracic-spine", "T-11503": "lumbar-spine", "122496007": "lumbar-spine",
    "T-11500": "whole-spine", "421060004": "whole-spine", "T-D0010": "whole-body", "38266002": "whole-body",
    "T-D0300": "upper-limb", "66019005": "upper-limb", "T-D8200": "upper-limb", "53120007": "upper-limb",
    "T-D9000": "lower-limb", "61685007": "lower-limb", "T-04000": "breast", "76752008": "breast",
    "T-D2220": "shoulder", "16982005": "shoulder", "T-15430": "elbow", "16953009": "elbow", "T-D8500": "forearm",
    "14975008": "forearm", "T-15460": "wrist", "74670003": "wrist", "T-D8700": "hand", "85562004": "hand",
    "T-15710": "hip", "24136001": "hip", "T-12710": "femur", "71341001": "femur", "T-D9100": "femur",
    "68367000": "femur", "T-D9200": "knee", "72696002": "knee", "T-15720": "knee", "49076000": "knee",
    "T-D9400": "lower-leg", "30021000": "lower-leg", "T-15750": "ankle", "70258002": "ankle", "T-D9700": "foot",
    "56459004": "foot", "T-D0001": "", "87100004": "",  # topography unknown
}


#: SNOMED CT body structures that carry their side (pre-coordinated "structure of left knee region"), as FHIR and CDS
#: Hooks clients send a ``bodySite`` without a laterality of its own: the region and the side each names
_SIDED_STRUCTURES: dict[str, tuple[str, str]] = {
    **{code: (region, "left") for code, region in (
        ("91775009", "shoulder"), ("368208006", "humerus"), ("72098002", "humerus"), ("368148009", "elbow"),
        ("66480008", "forearm"), ("5951000", "wrist"), ("85151006", "hand"), ("368456002", "hand"),
        ("734143007", "hand"), ("80768000", "upper-limb"), ("287679003", "hip"), ("61396006", "femur"),
        ("82169009", "knee"), ("719442003", "knee"), ("48979004", "lower-leg"), ("51636004", "ankle"),
        ("22335008", "foot"), ("239919000", "foot"), ("723724004", "foot"), ("32153003", "lower-limb"),
        ("362785004", "lower-limb"), ("80248007", "breast"), ("8966001", "face"), ("44029006", "chest"),
        ("40768004", "chest"))},
    **{code: (region, "right") for code, region in (
        ("91774008", "shoulder"), ("368209003", "humerus"), ("59126009", "humerus"), ("368149001", "elbow"),
        ("64262003", "forearm"), ("9736006", "wrist"), ("78791008", "hand"), ("368455003", "hand"),
        ("734144001", "hand"), ("6921000", "upper-limb"), ("287579007", "hip"), ("11207009", "femur"),
        ("6757004", "knee"), ("719443008", "knee"), ("32696007", "lower-leg"), ("6685009", "ankle"),
        ("7769000", "foot"), ("239830003", "foot"), ("723730004", "foot"), ("62175007", "lower-limb"),
        ("362784000", "lower-limb"), ("73056007", "breast"), ("18944008", "face"), ("3341006", "chest"),
        ("51872008", "chest"))},
}


def target_region(code: Code | None) -> str | None:
    """A target region code (SRT or SNOMED CT) as a body region of :mod:`imaging.regions`."""
    if code is None:
        return None
    region = _TARGET_REGIONS.get(code.value)
    if region is None and code.value in _SIDED_STRUCTURES:
        region = _SIDED_STRUCTURES[code.value][0]
    if region is None and code.meaning:
        region = normalise_description(code.meaning).body_region
    return region or None  # "" marks a code that says the topography is unknown


def _snomed(system: str | None) -> bool:
    """Whether a code system is SNOMED CT or SNOMED-RT (no system: taken as the body structure's own)."""
    return not system or canonical_system(system).upper() in (SNOMED.upper(), "SRT", "99SDM")


def body_structure_region(system: str | None, code: str | None, display: str | None = None) -> str | None:
    """The body region a SNOMED CT (or SNOMED-RT) body structure code names, as a FHIR ``bodySite`` or a DICOM
    anatomic region sends it; its display text is read when the code is not in the table; None when neither says.

    >>> body_structure_region("http://snomed.info/sct", "51185008")
    'chest'
    """
    if not code or not _snomed(system):
        return None  # a code of another system (a trust's own, LOINC) is no SNOMED body structure
    return target_region(Code(code.strip(), system or "", (display or "").strip().lower()))


def body_structure_side(system: str | None, code: str | None) -> str | None:
    """The side a SNOMED CT body structure code names itself (``82169009``, structure of left knee region, is
    ``left``); None for a structure without a side (``72696002``, knee region) or a code of another system.

    >>> body_structure_side("http://snomed.info/sct", "6757004")
    'right'
    """
    if not code or not _snomed(system):
        return None
    return _SIDED_STRUCTURES.get(code.strip(), ("", None))[1]


def phantom_cm(code: Code | None) -> int | None:
    """16 for the head CTDI phantom (113690), 32 for the body phantom (113691); None otherwise."""
    if code is None:
        return None
    if code.value == "113690" or "head" in code.meaning or "16" in code.meaning:
        return dz.HEAD_PHANTOM
    if code.value == "113691" or "body" in code.meaning or "32" in code.meaning:
        return dz.BODY_PHANTOM
    return None


def laterality_of(code: Code | None) -> str | None:
    """Left, right or both from a laterality value (``Left breast``, ``G-A101``, ``7771000`` ...)."""
    if code is None:
        return None
    meaning = code.meaning
    if code.value in _SIDED_STRUCTURES:  # a structure with its side ("structure of left knee region")
        return _SIDED_STRUCTURES[code.value][1]
    if code.value in ("G-A101", "7771000", "T-04030", "80248007") or meaning.startswith("left"):
        return "left"
    if code.value in ("G-A100", "24028007", "T-04020", "73056007") or meaning.startswith("right"):
        return "right"
    if code.value in ("G-A102", "51440002", "63762007", "T-04080") or "both" in meaning or "bilateral" in meaning:
        return "both"
    return None


# --- the report -----------------------------------------------------------------------------------------------------

@dataclass
class DoseReport:
    """What one dose SR says: its events, its accumulation containers and how its totals are keyed."""

    template: str  # ct | projection | mammography | radiopharmaceutical
    sop_instance_uid: str | None
    study_instance_uid: str | None
    report_key: str  # the report's own SOP Instance UID (see imaging.dose)
    modality: str | None  # the modality the report describes (CT, MG, RF, XR, NM)
    events: list[dz.DoseEvent] = field(default_factory=list)
    planes: list[dz.PlaneTotals] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be read (units, missing UIDs)
    scope: str | None = None  # the scope of accumulation (study, performed procedure step) and its UID
    procedure_reported: str | None = None  # the meaning of Procedure Reported (121058)
    anatomy: list[str] = field(default_factory=list)  # body regions of the events' target regions, localizers left out
    protocols: list[str] = field(default_factory=list)  # the events' Acquisition Protocol texts, localizers left out
    lateralities: list[str] = field(default_factory=list)  # the events' lateralities (mammography per view)

    def totals(self) -> dz.ReportTotals:
        """The report's accumulated totals, planes combined."""
        return dz.report_totals(self.report_key, (e.event_uid for e in self.events), self.planes)


class _Reader:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def value(self, parent: Node, code: str, quantity: str, *, skip: tuple[str, ...] = ()) -> float | None:
        node = parent.find(code, skip=skip)
        if node is None:
            return None
        return self.convert(node, quantity)

    def convert(self, node: Node, quantity: str) -> float | None:
        number, unit = node.number
        if number is None:
            return None
        converted, problem = conversion(number, unit, quantity)
        if converted is None:
            self.notes.append(f"{node.name.value if node.name else '?'}: {problem or 'value not read'}")
        return converted


def _event_uid(node: Node, uid_code: str, sop_uid: str | None, reader: _Reader) -> str:
    uid_node = node.find(uid_code)
    uid = uid_node.uid if uid_node is not None else None
    if uid:
        return uid
    # no UID: the event's own content identifies it, so a re-sent report maps it to the same key
    reader.notes.append("irradiation event without a UID")
    digest = hashlib.sha1(repr(_fingerprint(node)).encode()).hexdigest()[:24]
    return f"content:{digest}"


def _fingerprint(node: Node) -> list[tuple[str, str]]:
    out = []
    for child in node.walk():
        name = child.name.value if child.name else ""
        if child.value_type == "NUM":
            out.append((name, repr(child.number)))
        elif child.value_type in ("DATETIME", "TEXT", "UIDREF"):
            out.append((name, child.datetime_text or child.text or child.uid or ""))
    return out


def _plane(container: Node) -> str:
    modifier = container.find(ACQUISITION_PLANE)
    code = modifier.code if modifier is not None else None
    if code is None:
        return "unspecified"
    if code.value == "113620" or "plane a" in code.meaning:
        return "a"
    if code.value == "113621" or "plane b" in code.meaning:
        return "b"
    return "single"


def _protocol(node: Node) -> str | None:
    found = node.find(ACQUISITION_PROTOCOL)
    return found.text if found is not None else None


def _ct(root: Node, reader: _Reader, sop_uid: str | None) -> tuple[list[dz.DoseEvent], list[dz.PlaneTotals]]:
    events = []
    for node in root.find_all(CT_ACQUISITION):
        region_node = node.find(TARGET_REGION)
        phantom_node = node.find("113835")
        type_node = node.find(CT_ACQUISITION_TYPE)
        acquisition = type_node.code if type_node is not None else None
        events.append(dz.DoseEvent(
            event_uid=_event_uid(node, EVENT_UID, sop_uid, reader), kind=dz.CT, source="rdsr",
            target_region=target_region(region_node.code if region_node else None),
            phantom_cm=phantom_cm(phantom_node.code if phantom_node else None),
            ctdivol_mgy=reader.value(node, "113830", "dose_mgy"),
            dlp_mgycm=reader.value(node, "113838", "dlp"),
            protocol=_protocol(node),
            localizer=acquisition is not None and (acquisition.value == CONSTANT_ANGLE
                                                   or "constant angle" in acquisition.meaning)))
    planes = []
    for container in root.find_all(CT_ACCUMULATED):
        count = container.find("113812")
        planes.append(dz.PlaneTotals(plane="single", dlp_total_mgycm=reader.value(container, "113813", "dlp"),
                                     event_count=int(count.number[0]) if count and count.number[0] else None))
    return events, planes


#: DCM 111633 Compression Thickness (TID 10003, per mammographic irradiation event), in mm or cm.
COMPRESSION_THICKNESS = "111633"
_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}


def _thickness_mm(node: Node | None) -> float | None:
    """A length in millimetres (``mm``, ``cm`` or ``m``); None when missing, negative or in another unit."""
    if node is None:
        return None
    number, unit = node.number
    factor = _MM.get((unit or "").strip().lower())
    if number is None or factor is None or number < 0:
        return None
    return round(number * factor, 3)


def _projection(root: Node, reader: _Reader, sop_uid: str | None,
                mammography: bool) -> tuple[list[dz.DoseEvent], list[dz.PlaneTotals]]:
    events = []
    for node in root.find_all(XRAY_EVENT):
        type_node = node.find("113721")
        event_type = type_node.code if type_node else None
        agd = reader.value(node, "111631", "dose_mgy")
        side_node = next((n for n in node.walk() if n.is_(*LATERALITY) or n.named("laterality")), None)
        region_node = node.find(TARGET_REGION)
        kind = dz.MAMMO if (mammography or agd is not None) else (
            dz.FLUORO if event_type is not None and (event_type.value in _FLUORO_EVENT
                                                     or "fluoro" in event_type.meaning) else dz.PROJECTION)
        events.append(dz.DoseEvent(
            event_uid=_event_uid(node, EVENT_UID, sop_uid, reader), kind=kind, source="rdsr",
            target_region=target_region(region_node.code if region_node else None),
            laterality=laterality_of(side_node.code if side_node else None),
            dap_gym2=reader.value(node, "122130", "dap"), dose_rp_gy=reader.value(node, "113738", "dose_gy"),
            agd_mgy=agd,
            duration_s=reader.value(node, "113742", "time") if kind == dz.FLUORO else None,
            protocol=_protocol(node),
            compression_thickness_mm=_thickness_mm(node.find(COMPRESSION_THICKNESS)) if kind == dz.MAMMO else None))
    planes = []
    for container in root.children:
        if not (container.is_(XRAY_ACCUMULATED) or (container.value_type == "CONTAINER"
                                                     and container.named("accumulated"))):
            continue
        accumulated_agd: dict[str, float | None] = {"left": None, "right": None}
        for node in container.find_all("111637"):
            side_node = next((n for n in node.walk() if n.is_(*LATERALITY) or n.named("laterality")), None)
            side = laterality_of(side_node.code if side_node else None)
            if side in accumulated_agd:
                accumulated_agd[side] = reader.convert(node, "dose_mgy")
        planes.append(dz.PlaneTotals(
            plane=_plane(container),
            dap_total_gym2=_largest(reader, container, "113722", "dap"),
            dose_rp_total_gy=_largest(reader, container, "113725", "dose_gy"),
            fluoro_time_s=_largest(reader, container, "113730", "time"),
            agd_left_mgy=accumulated_agd["left"], agd_right_mgy=accumulated_agd["right"]))
    return events, planes


def _largest(reader: _Reader, container: Node, code: str, quantity: str) -> float | None:
    """The largest value of ``code`` in an accumulation container (nested duplicates are not added)."""
    values = [v for node in container.find_all(code) if (v := reader.convert(node, quantity)) is not None]
    return max(values) if values else None


def _radiopharmaceutical(root: Node, reader: _Reader, sop_uid: str | None) -> list[dz.DoseEvent]:
    events = []
    containers = root.find_all(NM_ADMINISTRATION) or [root]
    for node in containers:
        activity_node = node.find("113507")
        if activity_node is None:
            continue
        events.append(dz.DoseEvent(event_uid=_event_uid(node, NM_EVENT_UID, sop_uid, reader), kind=dz.NM,
                                   source="rdsr", activity_mbq=reader.convert(activity_node, "activity")))
    return events


def _scope(root: Node) -> str | None:
    """The scope of accumulation and its UID (``study:1.2.3``), for information: it is no report key."""
    scope = root.find(SCOPE_OF_ACCUMULATION, skip=(CT_ACQUISITION, XRAY_EVENT, CT_ACCUMULATED, XRAY_ACCUMULATED))
    if scope is None:
        return None
    scope_uid = next((n.uid for n in scope.walk() if n.value_type == "UIDREF" and n.uid), None)
    scope_code = scope.code
    kind = (scope_code.meaning or scope_code.value) if scope_code else "scope"
    return f"{kind}:{scope_uid}" if scope_uid else kind


def _report_key(sop_uid: str | None, events: list[dz.DoseEvent], planes: list[dz.PlaneTotals]) -> str:
    """The report's identity: its SOP Instance UID (a continued examination's two reports share their scope, so the
    scope is no identity). Without one, its content: the same report re-sent maps to the same key, a grown one shares
    its events with the first and is grouped with it (:mod:`imaging.dose`)."""
    if sop_uid:
        return f"report:{sop_uid}"
    content = repr((sorted(e.event_uid for e in events), planes))
    return "content:" + hashlib.sha1(content.encode()).hexdigest()[:32]


def _siemens_summary(root: Node, reader: _Reader, sop_uid: str | None, study_uid: str | None) -> DoseReport:
    """Siemens' private Radiation Summary Report: one single-plane total of DAP and fluoroscopy time, no events.

    Only the document's own top-level items are read, and only by their 99SMS_RADSUM codes (a private code value is
    read in its own scheme only). The report key says it is a summary (:data:`imaging.dose.SUMMARY_KEY`), so that the
    study's dose takes from it only the totals no RDSR states.
    """
    values: dict[str, float | None] = {}
    for code, quantity, total in _SIEMENS_SUMMARY_TOTALS:
        node = next((n for n in root.children if n.is_(code) and n.name is not None
                     and n.name.scheme.upper() == SIEMENS_SUMMARY_SCHEME), None)
        values[total] = reader.convert(node, quantity) if node is not None else None
    stated = dz.PlaneTotals(plane="single", dap_total_gym2=values["dap_total_gym2"],
                            fluoro_time_s=values["fluoro_time_s"])
    planes = [stated] if any(v is not None for v in values.values()) else []
    if sop_uid:
        key = f"{dz.SUMMARY_KEY}{sop_uid}"
    else:
        reader.notes.append("dose summary without a SOP Instance UID")
        key = dz.SUMMARY_KEY + "content:" + hashlib.sha1(repr(planes).encode()).hexdigest()[:32]
    return DoseReport("projection", sop_uid, study_uid, key, "RF", [], planes, reader.notes)


def _describe(report: DoseReport) -> DoseReport:
    """Fill the report's anatomy, protocols and lateralities from its events (localizers left out)."""
    examined = [e for e in report.events if not e.localizer]
    report.anatomy = list(dict.fromkeys(e.target_region for e in examined if e.target_region))
    report.protocols = list(dict.fromkeys(e.protocol.strip() for e in examined if e.protocol and e.protocol.strip()))
    report.lateralities = list(dict.fromkeys(e.laterality for e in examined if e.laterality))
    return report


def parse_dose_report(ds: Dataset) -> DoseReport:
    """Read a radiation dose SR into its events and accumulated totals.

    Parameters
    ----------
    ds : pydicom.Dataset
        The SR object (from a file, or from DICOM JSON).

    Returns
    -------
    DoseReport
        Values in the units of the index (mGy, mGy·cm, Gy·m², Gy, MBq, s); notes list what could not be read.
    """
    root = content_tree(ds)
    reader = _Reader()
    sop_uid = raw_text(ds, Tag(0x0008, 0x0018))
    study_uid = raw_text(ds, Tag(0x0020, 0x000D))
    scope = _scope(root)
    if root.is_(RADIOPHARMACEUTICAL_REPORT) or (raw_text(ds, Tag(0x0008, 0x0016)) == RADIOPHARMACEUTICAL_DOSE_SR):
        events = _radiopharmaceutical(root, reader, sop_uid)
        return DoseReport("radiopharmaceutical", sop_uid, study_uid, _report_key(sop_uid, events, []), "NM", events, [],
                          reader.notes, scope)
    if _is_siemens_summary(root.name):
        return _siemens_summary(root, reader, sop_uid, study_uid)
    procedure_node = root.find(PROCEDURE_REPORTED)
    procedure = procedure_node.code if procedure_node else None
    reported = procedure.meaning if procedure is not None and procedure.meaning else None
    is_ct = root.find(CT_ACQUISITION) is not None or (
        procedure is not None and (procedure.value in _CT_PROCEDURE or "computed tomography" in procedure.meaning))
    if is_ct:
        events, planes = _ct(root, reader, sop_uid)
        key = _report_key(sop_uid, events, planes)
        return _describe(DoseReport("ct", sop_uid, study_uid, key, "CT", events, planes, reader.notes, scope, reported))
    mammography = procedure is not None and (procedure.value in _MAMMO_PROCEDURE or "mammograph" in procedure.meaning)
    events, planes = _projection(root, reader, sop_uid, mammography)
    key = _report_key(sop_uid, events, planes)
    if mammography or any(e.kind == dz.MAMMO for e in events):
        return _describe(DoseReport("mammography", sop_uid, study_uid, key, "MG", events, planes, reader.notes, scope,
                                    reported))
    intent_node = procedure_node.find("G-C0E8", "363703001") if procedure_node else None
    intent = intent_node.code if intent_node is not None else None
    interventional = intent is not None and ("therapeutic" in intent.meaning or intent.value in ("R-002E9", "R-41531"))
    fluoroscopy = any(e.kind == dz.FLUORO for e in events)
    modality = ("XA" if interventional else "RF") if fluoroscopy else "XR"
    return _describe(DoseReport("projection", sop_uid, study_uid, key, modality, events, planes, reader.notes, scope,
                                reported))
