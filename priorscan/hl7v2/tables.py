"""The HL7 tables every adapter shares: administrative sex, NHS number identifiers, identifier types, diagnostic
service sections as imaging modalities, and the error codes of ACKs.

One table each, so that an order, its result and the patient's registration are read alike (an ORM and its ORU once
mapped sex codes and OBR-24 differently).
"""

from __future__ import annotations

from priorscan.trusts import NHS_NUMBER_SYSTEM

#: Administrative sex (HL7 table 0001, and the codes and words UK PAS systems send) as FHIR AdministrativeGender.
SEX = {"M": "male", "F": "female", "U": "unknown", "O": "other", "A": "other", "N": "unknown", "I": "other",
       "MALE": "male", "FEMALE": "female", "UNKNOWN": "unknown", "OTHER": "other",
       "1": "male", "2": "female", "9": "unknown", "0": "unknown"}

#: Assigning authorities (CX.4) and DICOM issuers that name the NHS number: HL7 aliases, the FHIR system and the
#: OID of the NHS number (2.16.840.1.113883.2.1.4.1), as UK feeds write them.
NHS_NUMBER_AUTHORITIES = frozenset({
    "NHS", "NH", "NHSNBR", "NHSNO", "NHS NUMBER", "NHSNUMBER", "NHS-NUMBER", NHS_NUMBER_SYSTEM.upper(),
    "2.16.840.1.113883.2.1.4.1", "URN:OID:2.16.840.1.113883.2.1.4.1"})
#: Identifier types (CX.5) of the NHS number.
NHS_NUMBER_TYPES = frozenset({"NH", "NHS", "NHSNBR"})
#: Identifier types (CX.5) of a local patient number (a hospital number); empty when the sender gives none.
LOCAL_PATIENT_TYPES = frozenset({"MR", "PI", "PT", "MRN", "HN", "LR", ""})
#: Identifier types that name no person: account, visit and anonymous numbers.
NOT_PATIENT_TYPES = frozenset({"AN", "VN", "VI", "AM", "ANON"})

#: HL7 table 0074 (diagnostic service section, OBR-24), and what trusts send there, as DICOM modalities. ``RAD``
#: (radiology) names none; ``CTH`` is cardiac catheterisation in table 0074, not CT of the head, and names none.
SERVICE_SECTION_MODALITY: dict[str, str | None] = {
    "CT": "CT", "NMR": "MR", "MR": "MR", "MRI": "MR", "NMS": "NM", "NM": "NM", "PT": "PT", "RUS": "US", "OUS": "US",
    "CUS": "US", "VUS": "US", "US": "US", "RX": "DX", "DX": "DX", "CR": "CR", "XRC": "RF", "RF": "RF", "MG": "MG",
    "XA": "XA", "RAD": None, "CTH": None}

#: HL7 table 0357 (message error condition codes).
ERROR_TEXT = {"0": "Message accepted", "100": "Segment sequence error", "101": "Required field missing",
              "102": "Data type error", "103": "Table value not found", "200": "Unsupported message type",
              "201": "Unsupported event code", "202": "Unsupported processing id", "203": "Unsupported version id",
              "204": "Unknown key identifier", "205": "Duplicate key identifier", "206": "Application record locked",
              "207": "Application internal error"}


def administrative_sex(code: str | None) -> str | None:
    """FHIR AdministrativeGender of an HL7 sex code; None when none is sent, ``unknown`` for one not recognised."""
    if not code:
        return None
    return SEX.get(code.strip().upper(), "unknown")


def is_nhs_number_authority(name: str | None) -> bool:
    """Whether an assigning authority or issuer names the NHS number."""
    return bool(name) and name.strip().upper() in NHS_NUMBER_AUTHORITIES  # type: ignore[union-attr]


def service_section_modality(code: str | None) -> str | None:
    """The DICOM modality of a diagnostic service section (OBR-24); None when it names none."""
    return SERVICE_SECTION_MODALITY.get(code.strip().upper()) if code else None


__all__ = ["ERROR_TEXT", "LOCAL_PATIENT_TYPES", "NHS_NUMBER_AUTHORITIES", "NHS_NUMBER_TYPES", "NOT_PATIENT_TYPES",
           "SERVICE_SECTION_MODALITY", "SEX", "administrative_sex", "is_nhs_number_authority",
           "service_section_modality"]
