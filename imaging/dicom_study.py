"""Reading a DICOM object's header (from a file or from DICOM JSON) into :class:`imaging.facts.StudyFacts`.

Only header attributes are read (files are opened with ``stop_before_pixels``). Dates and times are the sender's
local time unless Timezone Offset From UTC (0008,0201) says otherwise (:mod:`imaging.dicom_time`).

What the examination was is read from everything a real file carries (:func:`imaging.facts.named_procedure` weighs
it): Study Description (0008,1030) and Procedure Code Sequence (0008,1032); Requested Procedure Description
(0032,1060) and code (0032,1064), also inside Request Attributes Sequence (0040,0275); Performed Procedure Step
Description (0040,0254) and Performed Protocol Code Sequence (0040,0260); Series Description (0008,103E) and
Protocol Name (0018,1030); a dose report's Procedure Reported, Target Regions and Acquisition Protocols; Anatomic
Region Sequence (0008,2218), Body Part Examined (0018,0015) with DICOM's defined terms (``CHESTABDPELVIS``,
``TSPINE`` ...), View Position (0018,5101) of a mammogram; Image Laterality (0020,0062) and Laterality (0020,0060).

Besides the study and patient attributes this reads dose from image headers, used when no RDSR exists for the study:

- CT: CTDIvol (0018,9345), at the top level or in the Enhanced CT functional groups (shared or per frame: the
  highest), per series (or per Irradiation Event UID (0008,3010) when present);
- projection X-ray, fluoroscopy and mammography: Image and Fluoroscopy Area Dose Product (0018,115E) in dGy·cm²,
  Entrance Dose in mGy (0040,8302) or dGy (0040,0302), Organ Dose (0040,0316) in dGy, which for mammography is the
  average glandular dose of the view; Exposure Index (0018,1411) is kept as detail. A "for processing" and a
  "for presentation" image of one exposure carry the same dose, so such header events are keyed by the exposure
  (Irradiation Event UID, or acquisition time, view and dose) rather than by the image.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from imaging import dose as dz
from imaging import not_patient
from imaging.dicom_time import parse_da, study_time
from imaging.facts import COMPLETED, StudyFacts
from imaging.identity import PatientIdentity, is_nhs_issuer, qualify, trust_for_institution, valid_nhs_number
from imaging.procedures import ProcedureCode, normalise_description
from imaging.rdsr import Code, _code, _sequence, is_dose_report, parse_dose_report, raw_text, target_region
from imaging.regions import normalise_laterality
from imaging.units import convert, parse_number
from priorscan.trusts import Trust, TrustRegistry

T = Tag
PATIENT_ID = T(0x0010, 0x0020)
ISSUER = T(0x0010, 0x0021)
ISSUER_QUALIFIERS = T(0x0010, 0x0024)
OTHER_PATIENT_IDS = T(0x0010, 0x1002)
PATIENT_NAME = T(0x0010, 0x0010)
BIRTH_DATE = T(0x0010, 0x0030)
SEX = T(0x0010, 0x0040)
PATIENT_AGE = T(0x0010, 0x1010)
UNIVERSAL_ENTITY_ID = T(0x0040, 0x0032)
LOCAL_NAMESPACE = T(0x0040, 0x0031)
ASSIGNING_FACILITY = T(0x0040, 0x0036)
STUDY_UID = T(0x0020, 0x000D)
SERIES_UID = T(0x0020, 0x000E)
SOP_UID = T(0x0008, 0x0018)
ACCESSION = T(0x0008, 0x0050)
STUDY_DATE = T(0x0008, 0x0020)
STUDY_TIME = T(0x0008, 0x0030)
TIMEZONE_OFFSET = T(0x0008, 0x0201)
SERIES_DESCRIPTION = T(0x0008, 0x103E)
PROTOCOL_NAME = T(0x0018, 0x1030)
REQUEST_ATTRIBUTES = T(0x0040, 0x0275)
SCHEDULED_STEP_DESCRIPTION = T(0x0040, 0x0007)
PERFORMED_PROTOCOL_CODES = T(0x0040, 0x0260)
SCHEDULED_PROTOCOL_CODES = T(0x0040, 0x0008)
ANATOMIC_REGION = T(0x0008, 0x2218)
MODALITY = T(0x0008, 0x0060)
MODALITIES_IN_STUDY = T(0x0008, 0x0061)
INSTITUTION = T(0x0008, 0x0080)
STUDY_DESCRIPTION = T(0x0008, 0x1030)
REQUESTED_DESCRIPTION = T(0x0032, 0x1060)
PPS_DESCRIPTION = T(0x0040, 0x0254)
PROCEDURE_CODES = T(0x0008, 0x1032)
REQUESTED_CODES = T(0x0032, 0x1064)
BODY_PART = T(0x0018, 0x0015)
BODY_PART_THICKNESS = T(0x0018, 0x11A0)  # mm: a mammogram's compressed breast thickness
MANUFACTURER = T(0x0008, 0x0070)
MODEL_NAME = T(0x0008, 0x1090)
STATION_NAME = T(0x0008, 0x1010)
LATERALITY = T(0x0020, 0x0060)
IMAGE_LATERALITY = T(0x0020, 0x0062)
CTDIVOL = T(0x0018, 0x9345)
CTDI_PHANTOM = T(0x0018, 0x9346)
DAP = T(0x0018, 0x115E)
ENTRANCE_DOSE_MGY = T(0x0040, 0x8302)
ENTRANCE_DOSE_DGY = T(0x0040, 0x0302)
ORGAN_DOSE = T(0x0040, 0x0316)
EXPOSURE_INDEX = T(0x0018, 0x1411)
IRRADIATION_EVENT_UID = T(0x0008, 0x3010)
ACQUISITION_DATETIME = T(0x0008, 0x002A)
ACQUISITION_DATE = T(0x0008, 0x0022)
ACQUISITION_TIME = T(0x0008, 0x0032)
CONTENT_DATE = T(0x0008, 0x0023)
CONTENT_TIME = T(0x0008, 0x0033)
VIEW_POSITION = T(0x0018, 0x5101)
SHARED_GROUPS = T(0x5200, 0x9229)
PER_FRAME_GROUPS = T(0x5200, 0x9230)
CT_EXPOSURE = T(0x0018, 0x9321)
CODE_VALUE = T(0x0008, 0x0100)
SCHEME = T(0x0008, 0x0102)
MEANING = T(0x0008, 0x0104)
QUALITY_CONTROL_SUBJECT = T(0x0010, 0x0200)
QUALITY_CONTROL_IMAGE = T(0x0028, 0x0300)
CONTENT_SEQUENCE = T(0x0040, 0xA730)
CONCEPT_NAME = T(0x0040, 0xA043)
VALUE_TYPE = T(0x0040, 0xA040)
TEXT_VALUE = T(0x0040, 0xA160)
COMMENT = "121106"  # DCM Comment, in a dose report's accumulated data and irradiation events

_SEX = {"M": "male", "F": "female", "O": "other"}
_PROJECTION_MODALITIES = {"CR", "DX", "DR", "XR", "IO", "PX", "MG", "XA", "RF"}


def parse_da_tm(da: str | None, tm: str | None, offset: str | None = None) -> datetime | None:
    """A date and time as a UTC instant, read in the sender's zone (Europe/London unless ``offset`` says otherwise;
    see :func:`imaging.dicom_time.study_time`)."""
    return study_time(da, tm, offset).instant


def parse_age(value: str | None) -> int | None:
    """A DICOM AS (``045Y``, ``006M``) in whole years."""
    text = (value or "").strip().upper()
    if len(text) < 2 or not text[:-1].isdigit():
        return None
    number, unit = int(text[:-1]), text[-1]
    return {"Y": number, "M": number // 12, "W": number // 52, "D": number // 365}.get(unit)


def _person_name(ds: Dataset) -> tuple[str | None, str | None]:
    try:
        value = ds[PATIENT_NAME].value if PATIENT_NAME in ds else None
    except (ValueError, TypeError, LookupError):
        value = None
    text = str(value or "").split("=")[0]
    parts = text.split("^")
    family = parts[0].strip() or None
    given = " ".join(p.strip() for p in parts[1:3] if p.strip()) or None
    return family, given


def _codes(ds: Dataset, tag: BaseTag) -> list[ProcedureCode]:
    codes = []
    for item in _sequence(ds, tag):
        value = raw_text(item, CODE_VALUE)
        if value:
            codes.append(ProcedureCode(raw_text(item, SCHEME), value, raw_text(item, MEANING)))
    return codes


def _issuers(ds: Dataset) -> list[str]:
    found = [raw_text(ds, ISSUER) or ""]
    for qualifier in _sequence(ds, ISSUER_QUALIFIERS):
        found.append(raw_text(qualifier, UNIVERSAL_ENTITY_ID) or "")
        for facility in _sequence(qualifier, ASSIGNING_FACILITY):
            found += [raw_text(facility, LOCAL_NAMESPACE) or "", raw_text(facility, UNIVERSAL_ENTITY_ID) or ""]
    return [f for f in found if f]


def _other_ids(ds: Dataset, trusts: TrustRegistry) -> tuple[str | None, list[tuple[str, str]]]:
    nhs_number = None
    others: list[tuple[str, str]] = []
    for item in _sequence(ds, OTHER_PATIENT_IDS):
        value = raw_text(item, PATIENT_ID)
        issuer = raw_text(item, ISSUER) or next(iter(_issuers(item)), None)
        if not value:
            continue
        if is_nhs_issuer(issuer):
            nhs_number = nhs_number or valid_nhs_number(value)
        elif issuer:
            others.append((trusts.namespace(issuer), value.strip()))
    return nhs_number, others


def patient_identity(ds: Dataset, trusts: TrustRegistry, *, fallback_trusts: list[Trust | None]) -> PatientIdentity:
    """The issuer-qualified patient identifier of a DICOM object, with its demographics."""
    nhs_number, others = _other_ids(ds, trusts)
    identity = qualify(trusts, patient_id=raw_text(ds, PATIENT_ID), issuers=_issuers(ds),
                       fallback_trusts=fallback_trusts, nhs_number=nhs_number)
    identity.family, identity.given = _person_name(ds)
    identity.birth_date = parse_da(raw_text(ds, BIRTH_DATE))
    identity.sex = _SEX.get((raw_text(ds, SEX) or "").upper()[:1])
    identity.other_identifiers = others
    return identity


def _ctdivol(ds: Dataset) -> float | None:
    """CTDIvol at the top level, else the highest of an Enhanced CT image's CT Exposure functional groups, shared or
    per frame (a scanner writes it per frame where it varies: the highest, as of the images of one series)."""
    value = parse_number(raw_text(ds, CTDIVOL))
    if value is not None:
        return value
    found = [number for groups in (SHARED_GROUPS, PER_FRAME_GROUPS) for group in _sequence(ds, groups)
             for exposure in _sequence(group, CT_EXPOSURE) if (number := parse_number(raw_text(exposure, CTDIVOL)))
             is not None]
    return max(found) if found else None


def _phantom(ds: Dataset) -> int | None:
    for item in _sequence(ds, CTDI_PHANTOM):
        code, meaning = raw_text(item, CODE_VALUE) or "", (raw_text(item, MEANING) or "").lower()
        if code == "113690" or "head" in meaning:
            return dz.HEAD_PHANTOM
        if code == "113691" or "body" in meaning:
            return dz.BODY_PHANTOM
    return None


def header_dose_events(ds: Dataset) -> list[dz.DoseEvent]:
    """Dose from one image's header, as irradiation events keyed by the exposure they record."""
    modality = (raw_text(ds, MODALITY) or "").upper()
    event_uid = raw_text(ds, IRRADIATION_EVENT_UID)
    if modality == "CT":
        ctdivol = _ctdivol(ds)
        if ctdivol is None:
            return []
        key = event_uid or raw_text(ds, SERIES_UID) or raw_text(ds, SOP_UID) or "series"
        return [dz.DoseEvent(f"header:ct:{key}", dz.CT, source="header", ctdivol_mgy=ctdivol,
                             phantom_cm=_phantom(ds))]
    if modality not in _PROJECTION_MODALITIES:
        return []
    dap = convert(parse_number(raw_text(ds, DAP)), "dGy.cm2", "dap")
    organ = convert(parse_number(raw_text(ds, ORGAN_DOSE)), "dGy", "dose_mgy")
    entrance = parse_number(raw_text(ds, ENTRANCE_DOSE_MGY))
    if entrance is None:
        entrance = convert(parse_number(raw_text(ds, ENTRANCE_DOSE_DGY)), "dGy", "dose_mgy")
    if dap is None and organ is None:
        return []
    side = normalise_laterality(raw_text(ds, IMAGE_LATERALITY) or raw_text(ds, LATERALITY))
    if not event_uid:
        when = raw_text(ds, ACQUISITION_DATETIME) or "".join(
            filter(None, [raw_text(ds, ACQUISITION_DATE), raw_text(ds, ACQUISITION_TIME)])) or "".join(
            filter(None, [raw_text(ds, CONTENT_DATE), raw_text(ds, CONTENT_TIME)]))
        if when:
            fingerprint = repr((when, side, raw_text(ds, VIEW_POSITION), dap, organ))
            event_uid = "exposure:" + hashlib.sha1(fingerprint.encode()).hexdigest()[:24]
        else:
            event_uid = raw_text(ds, SOP_UID) or "image"
    kind = dz.MAMMO if modality == "MG" else dz.FLUORO if modality in ("XA", "RF") else dz.PROJECTION
    thickness = parse_number(raw_text(ds, BODY_PART_THICKNESS)) if kind == dz.MAMMO else None
    return [dz.DoseEvent(f"header:{event_uid}", kind, source="header", laterality=side, dap_gym2=dap,
                         agd_mgy=organ if kind == dz.MAMMO else None,
                         dose_rp_gy=entrance / 1000.0 if entrance is not None and kind != dz.MAMMO else None,
                         compression_thickness_mm=thickness if thickness is not None and thickness >= 0 else None)]


# DICOM Body Part Examined defined terms (PS3.16 Annex L) written as one word, spelled out for the normaliser
_BODY_PART_WORDS = {
    "CHESTABDOMEN": "CHEST ABDOMEN", "CHESTABDPELVIS": "CHEST ABDOMEN PELVIS", "ABDOMENPELVIS": "ABDOMEN PELVIS",
    "ABDPELVIS": "ABDOMEN PELVIS", "HEADNECK": "HEAD NECK", "NECKCHEST": "NECK CHEST",
    "NECKCHESTABDOMEN": "NECK CHEST ABDOMEN", "NECKCHESTABDPELV": "NECK CHEST ABDOMEN PELVIS",
    "CSPINE": "C SPINE", "TSPINE": "T SPINE", "LSPINE": "L SPINE", "SSPINE": "SACRUM", "WHOLESPINE": "WHOLE SPINE",
    "WHOLEBODY": "WHOLE BODY", "TLSPINE": "THORACOLUMBAR SPINE", "CTSPINE": "C SPINE T SPINE",
    "LSSPINE": "LUMBOSACRAL SPINE", "IAC": "IAMS", "UPRLIMB": "UPPER LIMB", "UPPERLIMB": "UPPER LIMB",
    "LOWERLIMB": "LOWER LIMB", "LWRLIMB": "LOWER LIMB", "LOWLEG": "LOWER LEG", "TIBFIB": "TIBIA FIBULA",
    "JAW": "MANDIBLE", "BRAIN": "HEAD", "THORAX": "CHEST", "ABDOMEN": "ABDOMEN",
}
_MAMMOGRAPHY_VIEWS = {"CC", "MLO", "ML", "LM", "LMO", "XCC", "XCCL", "XCCM", "FB", "SIO", "AT", "CV", "RCC", "LCC",
                      "RMLO", "LMLO"}


def _body_part_region(value: str | None, modality: str | None) -> str | None:
    """The body region a Body Part Examined value names (defined terms and the words devices write)."""
    text = (value or "").strip().upper()
    if not text:
        return None
    words = _BODY_PART_WORDS.get(text.replace(" ", "").replace("_", ""), text)
    return normalise_description(f"{modality or ''} {words}".strip(), modality).body_region


def _coded_regions(ds: Dataset, tag: BaseTag) -> list[str]:
    found = []
    for item in _sequence(ds, tag):
        code: Code | None = _code(item)
        region = target_region(code)
        if region:
            found.append(region)
    return found


def _texts(ds: Dataset, *tags: BaseTag) -> list[str]:
    return [text for tag in tags if (text := raw_text(ds, tag))]


def _requested(ds: Dataset) -> tuple[list[str], list[ProcedureCode]]:
    """Requested procedure and scheduled step descriptions and codes, at the top level and per request."""
    texts = _texts(ds, REQUESTED_DESCRIPTION)
    codes = _codes(ds, REQUESTED_CODES)
    for request in _sequence(ds, REQUEST_ATTRIBUTES):
        texts += _texts(request, REQUESTED_DESCRIPTION, SCHEDULED_STEP_DESCRIPTION)
        codes += _codes(request, REQUESTED_CODES) + _codes(request, SCHEDULED_PROTOCOL_CODES)
    return texts, codes


def _procedure_evidence(ds: Dataset, facts: StudyFacts, modality: str | None) -> None:
    """Fill ``facts`` with every description, code, coded anatomy and side the object carries."""
    requested_texts, requested_codes = _requested(ds)
    facts.procedure_codes = _codes(ds, PROCEDURE_CODES) + requested_codes + _codes(ds, PERFORMED_PROTOCOL_CODES)
    texts = requested_texts + _texts(ds, PPS_DESCRIPTION)
    report = facts.dose_report
    if report is not None:
        texts += [t for t in [report.procedure_reported, *report.protocols] if t]
        facts.anatomy += report.anatomy
        facts.lateralities += report.lateralities
    texts += _texts(ds, SERIES_DESCRIPTION, PROTOCOL_NAME)
    facts.procedure_texts = [t for t in dict.fromkeys(texts) if t != facts.description]
    facts.anatomy += _coded_regions(ds, ANATOMIC_REGION)
    from_body_part = _body_part_region(facts.body_part, modality)
    if from_body_part:
        facts.anatomy.append(from_body_part)
    view = (raw_text(ds, VIEW_POSITION) or "").upper()
    if (modality or "").upper() == "MG" and view in _MAMMOGRAPHY_VIEWS:
        facts.anatomy.append("breast")
    side = facts.laterality
    if side:
        facts.lateralities.append(side)


def _report_comments(ds: Dataset, depth: int = 0) -> list[str]:
    """The TEXT Comments (DCM 121106) anywhere in a structured report's content tree."""
    found: list[str] = []
    if depth > 8:
        return found
    for item in _sequence(ds, CONTENT_SEQUENCE):
        names = _sequence(item, CONCEPT_NAME)
        if (raw_text(item, VALUE_TYPE) or "") == "TEXT" and names and raw_text(names[0], CODE_VALUE) == COMMENT:
            text = raw_text(item, TEXT_VALUE)
            if text:
                found.append(text)
        found += _report_comments(item, depth + 1)
    return found


def not_patient_evidence(ds: Dataset, facts: StudyFacts, trusts: TrustRegistry) -> list[str]:
    """Where the object says it is a QA, physics or phantom test rather than a patient's examination
    (:mod:`imaging.not_patient`), with the configured indicators of the trusts it names."""
    requested, _ = _requested(ds)
    texts: list[tuple[str, str | None]] = [
        ("StudyDescription", raw_text(ds, STUDY_DESCRIPTION)),
        ("SeriesDescription", raw_text(ds, SERIES_DESCRIPTION)), ("ProtocolName", raw_text(ds, PROTOCOL_NAME)),
        ("PerformedProcedureStepDescription", raw_text(ds, PPS_DESCRIPTION)),
        *(("RequestedProcedureDescription", text) for text in requested),
        ("BodyPartExamined", facts.body_part)]
    report = facts.dose_report
    if report is not None:
        texts.append(("SR Procedure Reported", report.procedure_reported))
        texts += [("SR Acquisition Protocol", text) for text in report.protocols]
        texts += [("SR Comment", text) for text in _report_comments(ds)]
    identity = facts.patient
    words, prefixes = trusts.not_patient_indicators(facts.performing_trust, identity.trust_ods)
    name = "^".join(part for part in (identity.family, identity.given) if part)
    return not_patient.evidence(texts, patient_name=name, patient_id=raw_text(ds, PATIENT_ID), name_words=words,
                                id_prefixes=prefixes,
                                flags=[("QualityControlSubject", raw_text(ds, QUALITY_CONTROL_SUBJECT)),
                                       ("QualityControlImage", raw_text(ds, QUALITY_CONTROL_IMAGE))])


def facts_from_dataset(ds: Dataset, trusts: TrustRegistry, *, source: str = "dicom",
                       source_trust: Trust | None = None) -> StudyFacts | None:
    """The study facts of one DICOM object (image, RDSR, or a QIDO-RS study-level result).

    Parameters
    ----------
    ds : pydicom.Dataset
        The object's header.
    trusts : TrustRegistry
        The consortium (to qualify the patient ID and name the performing trust).
    source : str
        ``dicom`` for files, ``qido`` for DICOMweb results.
    source_trust : Trust, optional
        The trust the object came from (sender, DICOMweb source), qualifying an identifier sent without issuer.

    Returns
    -------
    StudyFacts or None
        None when the object has no Study Instance UID.
    """
    study_uid = raw_text(ds, STUDY_UID)
    if not study_uid:
        return None
    institution = trust_for_institution(trusts, raw_text(ds, INSTITUTION))
    identity = patient_identity(ds, trusts, fallback_trusts=[institution, source_trust])
    modalities = [m for m in (raw_text(ds, MODALITIES_IN_STUDY) or "").split("\\") if m]
    modality = raw_text(ds, MODALITY)
    if modality and modality not in modalities:
        modalities.insert(0, modality)
    description = (raw_text(ds, STUDY_DESCRIPTION) or raw_text(ds, REQUESTED_DESCRIPTION)
                   or raw_text(ds, PPS_DESCRIPTION))
    issuer_trust = trusts.by_ods(identity.trust_ods) if identity.trust_ods else None
    performing = institution or issuer_trust or source_trust
    when = study_time(raw_text(ds, STUDY_DATE), raw_text(ds, STUDY_TIME), raw_text(ds, TIMEZONE_OFFSET))
    study_date = when.local_date
    age = parse_age(raw_text(ds, PATIENT_AGE))
    if age is None and study_date and isinstance(identity.birth_date, date):
        born = identity.birth_date
        age = study_date.year - born.year - ((study_date.month, study_date.day) < (born.month, born.day))
    facts = StudyFacts(
        study_instance_uid=study_uid.strip(), source=source, patient=identity,
        performing_trust=performing.ods if performing else None,
        accession_number=raw_text(ds, ACCESSION), modalities=modalities, description=description,
        body_part=raw_text(ds, BODY_PART),
        laterality=raw_text(ds, IMAGE_LATERALITY) or raw_text(ds, LATERALITY),
        study_date=study_date, study_datetime=when.instant,
        status=COMPLETED, patient_age_years=age if age is not None and 0 <= age < 130 else None,
        sop_instance_uid=raw_text(ds, SOP_UID), manufacturer=raw_text(ds, MANUFACTURER),
        model_name=raw_text(ds, MODEL_NAME), station_name=raw_text(ds, STATION_NAME))
    if when.note:
        facts.notes.append(when.note)
    if is_dose_report(ds):
        facts.dose_report = parse_dose_report(ds)
        facts.notes += facts.dose_report.notes
        facts.modality_hint = facts.dose_report.modality
    else:
        facts.dose_events = header_dose_events(ds)
    _procedure_evidence(ds, facts, modality if modality and modality.upper() != "SR" else facts.modality_hint)
    facts.not_patient = not_patient_evidence(ds, facts, trusts)
    return facts
