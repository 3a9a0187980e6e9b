"""Whose study is it: the issuer-qualified patient identifier a study arrived with, resolved to a namespace.

A study is linked to the source record of the identifier it arrived with (DESIGN.md section 3). That identifier must
be *qualified*: a DICOM Patient ID means nothing without its Issuer of Patient ID (IHE MIMA). When the issuer is
missing, the trust that sent or performed the study qualifies it (Institution Name, the DICOMweb source, the sending
trust); when that is unknown too, the study is kept with its patient *unresolved* and reported, never attached to a
guessed patient. An NHS number (Other Patient IDs with issuer ``NHS``, PID-3 with ``NHS``) qualifies itself.

Pure functions over :class:`priorscan.trusts.TrustRegistry`; no storage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mpi import Demographics, is_valid_nhs_number, normalise_nhs_number
from priorscan.hl7v2 import NHS_NUMBER_AUTHORITIES
from priorscan.trusts import NHS_NUMBER_SYSTEM, Trust, TrustRegistry

#: Issuers of Patient ID that name the NHS number: the one table HL7 assigning authorities are read with too.
NHS_ISSUERS = NHS_NUMBER_AUTHORITIES

_GENERIC_WORDS = {"NHS", "FOUNDATION", "TRUST", "HOSPITAL", "HOSPITALS", "THE", "AND", "OF", "ST", "SAINT"}
#: Words an Institution Name may add to a trust's own name and still be that trust: how a site or a department is
#: described, never a place's own name (a "Memorial" hospital, a town)
_SITE_WORDS = {"COUNTY", "GENERAL", "DISTRICT", "UNIVERSITY", "HEALTHCARE", "RADIOLOGY", "IMAGING", "DIAGNOSTIC",
               "DIAGNOSTICS", "DEPARTMENT", "DEPT", "X", "RAY", "XRAY", "MAIN", "SITE", "CENTRE", "CENTER", "UNIT"}


@dataclass
class PatientIdentity:
    """The qualified identifier a study arrived with, and the demographics for a provisional source record.

    ``namespace`` and ``local_id`` are both set when the identifier is qualified; otherwise ``unresolved`` says why.
    """

    namespace: str | None = None
    local_id: str | None = None
    trust_ods: str | None = None
    nhs_number: str | None = None
    family: str | None = None
    given: str | None = None
    birth_date: object | None = None
    sex: str | None = None
    other_identifiers: list[tuple[str, str]] = field(default_factory=list)
    unresolved: str | None = None
    qualified_by: str | None = None  # issuer | nhs-number | sender | reference

    @property
    def resolved(self) -> bool:
        return bool(self.namespace and self.local_id)

    def demographics(self) -> Demographics:
        """Demographics for :meth:`mpi.PatientIndex.upsert` (provisional: never overrides a PAS record)."""
        assert self.namespace and self.local_id
        return Demographics(namespace=self.namespace, local_id=self.local_id, trust_ods=self.trust_ods,
                            nhs_number=self.nhs_number, family=self.family, given=self.given,
                            birth_date=self.birth_date,  # type: ignore[arg-type]
                            sex=self.sex, other_identifiers=list(self.other_identifiers))


def _core_words(name: str) -> tuple[str, ...]:
    words = re.sub(r"[^A-Z0-9 ]", " ", name.upper()).split()
    return tuple(w for w in words if w not in _GENERIC_WORDS)


def trust_for_institution(trusts: TrustRegistry, name: str | None) -> Trust | None:
    """The trust an Institution Name denotes: an alias, or the trust's name without its generic words.

    Only an unambiguous match counts ("Royal Surrey County Hospital" is Royal Surrey; a name two trusts could claim
    is none of them).
    """
    if not name or not name.strip():
        return None
    trust = trusts.resolve(name)
    if trust is not None:
        return trust
    words = _core_words(name)
    if not words:
        return None
    hits = [t for t in trusts.trusts if (core := _core_words(t.name)) and _names_site_of(words, core)]
    return hits[0] if len(hits) == 1 else None


def _names_site_of(words: tuple[str, ...], core: tuple[str, ...]) -> bool:
    """Whether an institution's ``words`` are a trust's ``core`` words with only words that describe a site of it
    around them: "Royal Surrey County Hospital" is Royal Surrey, "Queen Victoria Memorial Hospital" (Herne Bay) and
    "Queen Victoria Hospital Morecambe" are other places than Queen Victoria Hospital (East Grinstead)."""
    for start in range(len(words) - len(core) + 1):
        if words[start:start + len(core)] == core:
            return all(w in _SITE_WORDS for w in words[:start] + words[start + len(core):])
    return False


def is_nhs_issuer(issuer: str | None) -> bool:
    return bool(issuer) and issuer.strip().upper() in NHS_ISSUERS  # type: ignore[union-attr]


def valid_nhs_number(value: str | None) -> str | None:
    """The NHS number's ten digits when it passes the Modulus 11 check, else None."""
    digits = normalise_nhs_number(value or "")
    return digits if digits and is_valid_nhs_number(digits) else None


def qualify(trusts: TrustRegistry, *, patient_id: str | None, issuers: list[str], fallback_trusts: list[Trust | None],
            nhs_number: str | None = None) -> PatientIdentity:
    """Qualify ``patient_id`` by the first issuer that names something, else by a fallback trust.

    Parameters
    ----------
    trusts : TrustRegistry
        The consortium.
    patient_id : str or None
        The local patient identifier as sent.
    issuers : list of str
        Candidate issuers in order of preference (Issuer of Patient ID, its qualifiers, assigning facility).
    fallback_trusts : list of Trust or None
        Trusts that may qualify an identifier sent without an issuer, in order (institution, source, sender).
    nhs_number : str, optional
        An NHS number sent alongside; qualifies the study by itself when nothing else does.

    Returns
    -------
    PatientIdentity
        With ``unresolved`` set when the identifier could not be qualified (no demographics filled in here).
    """
    local = (patient_id or "").strip()
    nhs = valid_nhs_number(nhs_number)
    named = [i.strip() for i in issuers if i and i.strip()]
    if local and named:
        issuer = named[0]
        if is_nhs_issuer(issuer):
            digits = valid_nhs_number(local)
            if digits:
                return PatientIdentity(NHS_NUMBER_SYSTEM, digits, nhs_number=digits, qualified_by="nhs-number")
            return PatientIdentity(unresolved="patient ID issued by NHS is not a valid NHS number",
                                   nhs_number=nhs)
        trust = next((t for t in (trusts.resolve(i) for i in named) if t is not None), None)
        if trust is not None:
            return PatientIdentity(trust.fhir_system, local, trust.ods, nhs_number=nhs, qualified_by="issuer")
        return PatientIdentity(trusts.namespace(issuer), local, nhs_number=nhs, qualified_by="issuer")
    if local:
        trust = next((t for t in fallback_trusts if t is not None), None)
        if trust is not None:
            return PatientIdentity(trust.fhir_system, local, trust.ods, nhs_number=nhs, qualified_by="sender")
    if nhs:
        return PatientIdentity(NHS_NUMBER_SYSTEM, nhs, nhs_number=nhs, qualified_by="nhs-number")
    if not local:
        return PatientIdentity(unresolved="no patient identifier")
    return PatientIdentity(unresolved="patient ID without an issuer, and no trust known for the sender")
