"""The consortium's trusts as configuration: loaded from TOML and validated on load.

A trust's hospital numbers form one identifier namespace. Every way a feed may name that namespace (its ODS code,
HL7 assigning-authority aliases, its FHIR identifier system, its DICOM Issuer of Patient ID) resolves here to the
canonical namespace, which is the trust's FHIR system.

Where to view a study: the performing trust's ``viewer_url_template`` when it has one, else the shared PACS's
regional viewer, launched by IHE IID (Invoke Image Display: ``requestType=STUDY`` with ``studyUID`` and the
issuer-qualified ``patientID``), configured once under ``[regional_viewer]`` (:meth:`TrustRegistry.viewer_url`).

Who may send HL7 for a trust: its ``[[trust.hl7_sender]]`` entries (:class:`HL7Sender`), each a sending application
and facility (MSH-3, MSH-4) with the network addresses and TLS client certificate names it may connect from and the
identifier domains it may act on (:meth:`TrustRegistry.sender_for`, :meth:`TrustRegistry.sender_domains`).

Which studies are not a patient's examination (QA, physics, phantom tests registered under a made-up patient): the
consortium's ``[not_patient]`` indicators, and each trust's own ``[trust.not_patient]`` added to them for its
studies (:class:`NotPatientIndicators`, :meth:`TrustRegistry.not_patient_indicators`; read by
:mod:`imaging.not_patient`).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlencode

from pydantic import BaseModel, Field, ValidationError, field_validator

from priorscan.errors import ConfigurationError

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"


class HL7Sender(BaseModel, frozen=True):
    """One HL7 v2 sender of a trust (its PAS, RIS or interface engine), as ``[[trust.hl7_sender]]`` configures it.

    A message is the sender's when MSH-3 is ``application`` (``*``: any) and MSH-4 is ``facility`` (unset: the
    trust's ODS code or one of its HL7 aliases). Over MLLP it must also come from one of ``addresses`` (IP addresses
    or networks; empty: any) over a TLS connection whose client certificate names one of ``certificate_names``
    (subject CN or a DNS/IP subject alternative name; empty: any certificate the listener trusts, or none without
    TLS). By ``POST /hl7`` its messages come only from the API clients named in ``clients`` (none: not over HTTP).
    ``domains`` are the identifier namespaces its messages may create, update, merge, link or change (unset:
    the trust's own hospital numbers): a trust's feed acts only on its own hospital numbers.
    """

    application: str = Field(min_length=1, max_length=200)
    facility: str | None = Field(default=None, min_length=1, max_length=200)
    addresses: tuple[str, ...] = ()
    certificate_names: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()  # API clients (token names) that may send its messages by POST /hl7
    domains: tuple[str, ...] | None = None

    @field_validator("addresses")
    @classmethod
    def _addresses_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError as exc:
                raise ValueError(f"hl7_sender address {address!r} is not an IP address or network") from exc
        return value

    def allows_address(self, address: str | None) -> bool:
        """Whether ``address`` (the peer's IP) is one this sender may connect from."""
        if not self.addresses:
            return True
        if not address:
            return False
        try:
            peer = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
            peer = peer.ipv4_mapped
        return any(peer in ipaddress.ip_network(a, strict=False) for a in self.addresses)

    def allows_certificate(self, names: Collection[str] | None) -> bool:
        """Whether a client certificate naming ``names`` (None: no certificate) is this sender's."""
        if not self.certificate_names:
            return True
        wanted = {n.strip().lower() for n in self.certificate_names}
        return bool(names) and any(n.strip().lower() in wanted for n in names or ())


#: The consortium's patient-name indicators when the configuration names none: whole words only, so "Qaiser" or
#: "Aquarius" is never one.
DEFAULT_NOT_PATIENT_NAME_WORDS = ("PHANTOM", "PHYSICS", "QA", "QC", "TEST OBJECT", "CALIBRATION")


class NotPatientIndicators(BaseModel, frozen=True):
    """How a site registers tests that are not patients (OpenREM's "not patient indicators").

    ``name_words`` are matched as whole words of the patient name (``PHYSICS^TABLE AEC``, ``MONTHLY_QC``);
    ``patient_id_prefixes`` as the start of the patient ID (``PHY``, ``QA-``): a trust that registers its phantoms
    under IDs of their own names them here. Words and prefixes are compared case-insensitively.
    """

    name_words: tuple[str, ...] = DEFAULT_NOT_PATIENT_NAME_WORDS
    patient_id_prefixes: tuple[str, ...] = ()

    @field_validator("name_words", "patient_id_prefixes")
    @classmethod
    def _not_blank(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not item.strip():
                raise ValueError("not_patient indicators must not be blank")
            if len(item.strip()) < 2:
                raise ValueError(f"not_patient indicator {item!r} is too short to be told from a patient's")
        return tuple(item.strip().upper() for item in value)


class Trust(BaseModel, frozen=True):
    """One trust of the consortium."""

    ods: str = Field(pattern=r"^[A-Z0-9]{3,5}$")
    name: str = Field(min_length=3)
    hl7_aliases: tuple[str, ...] = ()
    fhir_system: str = Field(pattern=r"^https?://")
    dicom_issuer: str
    hospital_number_pattern: str | None = None
    viewer_url_template: str | None = None  # unset: the regional viewer
    dicom_ae_titles: tuple[str, ...] = ()  # calling AE titles of the trust's PACS and modalities (C-STORE)
    hl7_sender: tuple[HL7Sender, ...] = ()  # who may send HL7 v2 for the trust (unset: anyone naming it in MSH-4)
    #: Base URLs of the trust's FHIR servers (its EHR): the only ``fhirServer`` a CDS Hooks call may have priorscan
    #: fetch the patient from (with the call's ``access_token``). A server whose host is private, loopback or
    #: link-local must be written here by address (or as ``localhost``) to be used: a name is never trusted to
    #: resolve there.
    fhir_servers: tuple[str, ...] = ()
    #: The trust's own indicators of studies that are not patients', added to the consortium's ``[not_patient]``.
    not_patient: NotPatientIndicators = NotPatientIndicators(name_words=())

    @field_validator("fhir_servers")
    @classmethod
    def _servers_are_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not re.fullmatch(r"https?://[^\s/?#@]+(/[^\s?#]*)?", url):
                raise ValueError(f"fhir_servers: {url!r} is not an http(s) base URL without query or user info")
        return tuple(url.rstrip("/") for url in value)

    @field_validator("hospital_number_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"hospital_number_pattern does not compile: {exc}") from exc
        return value

    @field_validator("viewer_url_template")
    @classmethod
    def _template_names_study(cls, value: str | None) -> str | None:
        if value is not None and "{study_instance_uid}" not in value and "{accession_number}" not in value:
            raise ValueError("viewer_url_template must use {study_instance_uid} or {accession_number}")
        return value

    def viewer_url(self, study_instance_uid: str, accession_number: str | None = None,
                   patient_id: str = "") -> str | None:
        """The trust's own viewer link for a study (values URL-encoded), or None when it has no template."""
        if self.viewer_url_template is None:
            return None
        return self.viewer_url_template.format(
            study_instance_uid=quote(study_instance_uid, safe=""), accession_number=quote(accession_number or "",
                                                                                         safe=""),
            patient_id=quote(patient_id, safe=""))


class RegionalViewer(BaseModel, frozen=True):
    """The shared PACS's viewer, launched by IHE IID Invoke Image Display."""

    iid_url: str = Field(pattern=r"^https?://[^?#\s]+$", description="the IID endpoint, without a query")
    #: How the issuer of patient IDs is named to the PACS: a trust's DICOM issuer, ``NHS`` for NHS numbers.
    nhs_number_issuer: str = "NHS"

    def launch_url(self, study_instance_uid: str, patient_id: str | None = None) -> str:
        """``<iid_url>?requestType=STUDY&studyUID=...&patientID=...`` (patientID as an HL7 CX ``id^^^issuer``)."""
        query = {"requestType": "STUDY", "studyUID": study_instance_uid}
        if patient_id:
            query["patientID"] = patient_id
        return f"{self.iid_url}?{urlencode(query, quote_via=quote)}"


@dataclass(frozen=True)
class TrustRegistry:
    """All trusts, with look-ups from every alias to the trust."""

    trusts: tuple[Trust, ...]
    regional_viewer: RegionalViewer | None = None
    #: The consortium's indicators of studies that are not patients' (``[not_patient]``), for every trust.
    not_patient: NotPatientIndicators = field(default_factory=NotPatientIndicators)
    #: every alias to its trust, built once (the trusts are frozen): resolve() runs several times per HL7 message
    _by_key: dict[str, Trust] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        seen: dict[str, Trust] = {}
        for trust in self.trusts:
            for key in self._keys(trust):
                if key in seen and seen[key].ods != trust.ods:
                    raise ConfigurationError(f"trust alias {key!r} is claimed by both {seen[key].ods} and {trust.ods}")
                seen.setdefault(key, trust)
        object.__setattr__(self, "_by_key", seen)

    @staticmethod
    def _keys(trust: Trust) -> set[str]:
        return {trust.ods.upper(), trust.fhir_system.upper(), trust.dicom_issuer.upper(),
                *(a.upper() for a in trust.hl7_aliases)}

    def by_ods(self, ods: str) -> Trust:
        for trust in self.trusts:
            if trust.ods == ods.upper():
                return trust
        raise ConfigurationError(f"unknown trust ODS code {ods!r}")

    def resolve(self, name: str | None) -> Trust | None:
        """The trust that ``name`` (ODS code, alias, FHIR system or DICOM issuer) denotes, if any."""
        if not name:
            return None
        return self._by_key.get(name.strip().upper())

    def namespace(self, name: str) -> str:
        """The canonical identifier namespace for ``name``: a trust's FHIR system, or ``name`` itself."""
        trust = self.resolve(name)
        return trust.fhir_system if trust else name.strip()

    @property
    def senders_configured(self) -> bool:
        """Whether any trust names its HL7 senders (then only they may send HL7 over MLLP)."""
        return any(t.hl7_sender for t in self.trusts)

    def sender_for(self, application: str, facility: str) -> tuple[Trust, HL7Sender] | None:
        """The configured sender whose MSH-3 and MSH-4 are ``application`` and ``facility``, with its trust."""
        app, fac = application.strip().upper(), facility.strip().upper()
        for trust in self.trusts:
            for sender in trust.hl7_sender:
                if sender.application.strip() not in ("*",) and sender.application.strip().upper() != app:
                    continue
                facilities = ({sender.facility.strip().upper()} if sender.facility
                              else {trust.ods.upper(), *(a.upper() for a in trust.hl7_aliases)})
                if fac in facilities:
                    return trust, sender
        return None

    def sender_domains(self, application: str, facility: str) -> frozenset[str] | None:
        """The identifier namespaces a configured sender may act on (its ``domains``, else its trust's hospital
        numbers); None when the sender is not configured (then :func:`mpi.hl7_adt.sender_domains` applies)."""
        found = self.sender_for(application, facility)
        if found is None:
            return None
        trust, sender = found
        if sender.domains is None:
            return frozenset({trust.fhir_system})
        return frozenset(self.namespace(d) for d in sender.domains)

    def not_patient_indicators(self, *names: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The patient-name words and patient-ID prefixes that mark a test rather than a patient, for a study of
        the trusts ``names`` denote (performing trust, issuer of the patient ID): the consortium's and theirs."""
        words, prefixes = list(self.not_patient.name_words), list(self.not_patient.patient_id_prefixes)
        for name in names:
            trust = self.resolve(name)
            if trust is not None:
                words += trust.not_patient.name_words
                prefixes += trust.not_patient.patient_id_prefixes
        return tuple(dict.fromkeys(words)), tuple(dict.fromkeys(prefixes))

    @property
    def ods_codes(self) -> list[str]:
        return [t.ods for t in self.trusts]

    def for_ae_title(self, ae_title: str | None) -> Trust | None:
        """The trust whose PACS or modality calls with ``ae_title`` (``dicom_ae_titles``), if one is configured."""
        key = (ae_title or "").strip().upper()
        if not key:
            return None
        return next((t for t in self.trusts if key in {a.strip().upper() for a in t.dicom_ae_titles}), None)

    def patient_cx(self, namespace: str | None, local_id: str | None) -> str | None:
        """A study's patient as the PACS names them, an HL7 CX ``id^^^issuer``: a trust's DICOM issuer for its
        hospital numbers, the regional viewer's NHS issuer for NHS numbers, else the namespace itself."""
        if not namespace or not local_id:
            return None
        if namespace == NHS_NUMBER_SYSTEM:
            issuer = self.regional_viewer.nhs_number_issuer if self.regional_viewer else "NHS"
        else:
            trust = self.resolve(namespace)
            issuer = trust.dicom_issuer if trust is not None else namespace
        return f"{local_id}^^^{issuer}"

    def viewer_url(self, trust_ods: str | None, study_instance_uid: str | None, *,
                   accession_number: str | None = None, patient_namespace: str | None = None,
                   patient_local_id: str | None = None) -> str | None:
        """Where to view a study: the performing trust's template, else the regional IID launch; None without a
        study UID or either."""
        if not study_instance_uid:
            return None
        trust = self.resolve(trust_ods) if trust_ods else None
        cx = self.patient_cx(patient_namespace, patient_local_id)
        if trust is not None and trust.viewer_url_template is not None:
            return trust.viewer_url(study_instance_uid, accession_number, cx or "")
        if self.regional_viewer is not None:
            return self.regional_viewer.launch_url(study_instance_uid, cx)
        return None


def load_trusts(path: Path) -> TrustRegistry:
    """Load and validate the trust configuration at ``path``."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read trust configuration {path}: {exc}") from exc
    entries = raw.get("trust")
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(f"{path}: expected one or more [[trust]] tables")
    try:
        trusts = tuple(Trust.model_validate(entry) for entry in entries)
    except ValidationError as exc:
        raise ConfigurationError(f"{path}: invalid trust entry: {exc}") from exc
    if len({t.ods for t in trusts}) != len(trusts):
        raise ConfigurationError(f"{path}: duplicate ODS code")
    viewer = raw.get("regional_viewer")
    try:
        regional = RegionalViewer.model_validate(viewer) if viewer is not None else None
    except ValidationError as exc:
        raise ConfigurationError(f"{path}: invalid [regional_viewer]: {exc}") from exc
    try:
        indicators = NotPatientIndicators.model_validate(raw.get("not_patient", {}))
    except ValidationError as exc:
        raise ConfigurationError(f"{path}: invalid [not_patient]: {exc}") from exc
    return TrustRegistry(trusts, regional, indicators)


@lru_cache(maxsize=8)
def default_trusts(path: Path | None = None) -> TrustRegistry:
    from priorscan.settings import get_settings

    return load_trusts(path or get_settings().trusts_file)
