"""FHIR R4 Patient ↔ :class:`~mpi.records.Demographics`, and the Patient resources the index shows (pure).

Incoming Patients are validated with the fhir.resources R4B models (Patient is the same in R4 and R4B). A resource
is a complete representation: what it leaves out is deleted from the source record (``DELETE``), unlike HL7 where an
empty field means *not sent*.

Which source record a Patient is (its :class:`~mpi.records.RecordKey`):

1. a trust's hospital number (identifier.system resolving to a trust through :class:`TrustRegistry`);
2. else its first other identifier with a system (NHS numbers excepted: they name a person, not a record);
3. else its ``Patient.id`` in the sending client's own namespace (``urn:priorscan:fhir-client:<client>``): a client
   that sends patients with only an id and demographics gets one source record per distinct id.

Two kinds of Patient are shown: a *source record* (``Patient/src-<n>``, or the id a client chose with PUT) that
refers to its regional patient, and the *regional* (golden) Patient (``Patient/<regional id>``) with the best-known
demographics and every identifier linked to it.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from mpi.hl7_pid import normalise_postcode
from mpi.identifier_systems import CLIENT_NAMESPACE_PREFIX, FHIR_ID_SYSTEM, INTERNAL_SYSTEMS, REGIONAL_ID_SYSTEM
from mpi.nhs_number import is_placeholder, is_valid_nhs_number
from mpi.records import DELETE, Demographics
from mpi.tables import RegionalPatient, SourceRecord
from priorscan.errors import FHIRError
from priorscan.hl7v2.datatypes import LOCAL_ZONE
from priorscan.trusts import NHS_NUMBER_SYSTEM, ODS_SYSTEM, TrustRegistry

NHS_VERIFICATION_URL = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
NHS_VERIFICATION_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
MATCH_GRADE_URL = "http://hl7.org/fhir/StructureDefinition/match-grade"
RECORD_KIND_SYSTEM = "urn:priorscan:record-kind"
SOURCE_ID_PREFIX = "src-"
GENDERS = ("male", "female", "other", "unknown")
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_REGIONAL_ID = re.compile(r"^RP[A-Z0-9]{6,22}$")
_VERIFICATION = {f"0{n}": text for n, text in enumerate((
    "Number present and verified", "Number present but not traced", "Trace required",
    "Trace attempted - No match or multiple match found",
    "Trace needs to be resolved - (NHS Number or patient detail conflict)", "Trace in progress",
    "Number not present and trace not required", "Trace postponed (baby under six weeks old)"), start=1)}


def client_namespace(client: str) -> str:
    """The namespace of ids that ``client`` (an API client's name) gives its Patients."""
    return CLIENT_NAMESPACE_PREFIX + quote(client.strip() or "anonymous", safe="")


def source_resource_id(record_id: int) -> str:
    return f"{SOURCE_ID_PREFIX}{record_id}"


def parse_source_resource_id(resource_id: str) -> int | None:
    """The source record's primary key for ``src-<n>``, else None."""
    if resource_id.startswith(SOURCE_ID_PREFIX) and resource_id[len(SOURCE_ID_PREFIX):].isdigit():
        return int(resource_id[len(SOURCE_ID_PREFIX):])
    return None


def is_regional_id(resource_id: str) -> bool:
    return bool(_REGIONAL_ID.match(resource_id))


# --- reading ----------------------------------------------------------------------------------------------------

def validate_patient(resource: Mapping[str, Any]) -> Any:
    """``resource`` as a fhir.resources R4B Patient; :class:`FHIRError` names the elements at fault (not values)."""
    from fhir.resources.R4B.patient import Patient

    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Patient":
        raise FHIRError("expected a Patient resource", code="fhir.invalid")
    try:
        patient = Patient.model_validate(dict(resource))
    except ValidationError as exc:
        raise FHIRError("invalid Patient: " + describe_validation_error(exc), code="fhir.invalid") from exc
    if patient.gender is not None and patient.gender not in GENDERS:
        raise FHIRError("invalid Patient: gender is not one of male, female, other, unknown", code="fhir.invalid")
    return patient


# A *plain* Patient: one whose every element is among the few below, each of a shape and value that the R4B models
# accept as it stands (a non-empty list of non-empty objects, text without surrounding or unprintable characters, a
# code from its value set, a whole date that exists). Such a resource is read from its JSON as it is
# (:func:`plain_patient`), without building the models, which cost about a third of a bulk load's reading of a
# Patient; any other resource, valid or not, is validated by the models (:func:`validate_patient`), so what is
# accepted or refused, and why, is the models' answer (tests/feeds/test_feeds_fhir_plain.py).
_PLAIN_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PLAIN_URI = re.compile(r"[^ ]+")  # printable text holds no other whitespace
_PLAIN_CODE = re.compile(r"[^ ]+( [^ ]+)*")
_IDENTIFIER_USES = frozenset({"usual", "official", "temp", "secondary", "old"})
_NAME_USES = frozenset({"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"})
_ADDRESS_USES = frozenset({"home", "work", "temp", "old", "billing"})
_TELECOM_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
_TELECOM_USES = frozenset({"home", "work", "temp", "old", "mobile"})


class _Plain:
    """A plain element's children as attributes, None for one it leaves out (as a model's attribute reads)."""

    __slots__ = ("_children",)

    def __init__(self, children: dict[str, Any]) -> None:
        self._children = children

    def __getattr__(self, name: str) -> Any:
        return self._children.get(name)


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != "" and value.isprintable() and value == value.strip()


def _uri(value: Any) -> bool:
    return _text(value) and _PLAIN_URI.fullmatch(value) is not None


def _texts(value: Any) -> bool:
    return isinstance(value, list) and value != [] and all(_text(v) for v in value)


def _code(value: Any) -> bool:
    return _text(value) and _PLAIN_CODE.fullmatch(value) is not None


def _in(codes: frozenset[str]) -> Any:
    return lambda value: isinstance(value, str) and value in codes


def _objects(value: Any, shape: dict[str, Any]) -> list[_Plain] | None:
    """``value`` as plain elements when it is a non-empty list of non-empty objects of ``shape`` (child → a check of
    its value, a shape for a list of objects or a shape in a 1-tuple for one object)."""
    if not isinstance(value, list) or not value:
        return None
    found = []
    for item in value:
        element = _object(item, shape)
        if element is None:
            return None
        found.append(element)
    return found


def _object(value: Any, shape: dict[str, Any]) -> _Plain | None:
    if not isinstance(value, dict) or not value:
        return None
    children: dict[str, Any] = {}
    for name, child in value.items():
        check = shape.get(name)
        if check is None:
            return None
        if isinstance(check, dict):
            child = _objects(child, check)
        elif isinstance(check, tuple):
            child = _object(child, check[0])
        elif not check(child):
            return None
        if child is None:
            return None
        children[name] = child
    return _Plain(children)


_CODEABLE = {"coding": {"system": _uri, "code": _code, "display": _text}}
_PLAIN_SHAPES: dict[str, dict[str, Any]] = {
    "identifier": {"system": _uri, "value": _text, "use": _in(_IDENTIFIER_USES),
                   "extension": {"url": _uri, "valueCodeableConcept": (_CODEABLE,)}},
    "name": {"use": _in(_NAME_USES), "family": _text, "given": _texts, "prefix": _texts, "text": _text},
    "address": {"use": _in(_ADDRESS_USES), "line": _texts, "city": _text, "district": _text, "state": _text,
                "postalCode": _text, "country": _text, "text": _text},
    "telecom": {"system": _in(_TELECOM_SYSTEMS), "value": _text, "use": _in(_TELECOM_USES)},
}


def plain_patient(resource: Mapping[str, Any]) -> Any:
    """``resource`` read as it is when it is a plain Patient (above), with its elements as the models give them
    (a whole date as a :class:`datetime.date`); None for any other resource: :func:`validate_patient` judges it."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        return None
    children: dict[str, Any] = {}
    for name, value in resource.items():
        if name == "resourceType":
            continue
        shape = _PLAIN_SHAPES.get(name)
        if shape is not None:
            value = _objects(value, shape)
            if value is None:
                return None
            if name == "identifier" and not all(_plain_extensions(i.extension) for i in value):
                return None
        elif name == "id":
            if not isinstance(value, str) or FHIR_ID.fullmatch(value) is None:
                return None
        elif name == "gender":
            if not isinstance(value, str) or value not in GENDERS:
                return None
        elif name == "birthDate":
            value = _whole_date(value)
            if value is None:
                return None
        elif name in ("active", "deceasedBoolean"):
            if not isinstance(value, bool):
                return None
        else:
            return None
        children[name] = value
    return _Plain(children)


def _plain_extensions(extensions: list[_Plain] | None) -> bool:
    """An identifier's extensions each with its url and its value (a CodeableConcept)."""
    return extensions is None or all(e.url is not None and e.valueCodeableConcept is not None for e in extensions)


def _whole_date(value: Any) -> date | None:
    if not isinstance(value, str) or _PLAIN_DATE.fullmatch(value) is None or value.startswith("0000"):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """Where and how a resource failed validation, never quoting the values."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:limit]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "resource"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


@dataclass(frozen=True)
class PatientInput:
    """A Patient read for the index: the demographics to upsert and the identifiers it carried."""

    demographics: Demographics
    identifiers: tuple[tuple[str, str], ...]  # (canonical system, value), NHS number included
    keyed_by: str  # hospital-number | identifier | resource-id | none


def read_patient(resource: Mapping[str, Any], trusts: TrustRegistry, *, client: str,
                 resource_id: str | None = None, complete: bool = True, today: date | None = None) -> PatientInput:
    """Read a FHIR Patient into the demographics of one source record.

    Parameters
    ----------
    resource
        The Patient as JSON (validated here).
    trusts
        Resolves identifier systems to trust namespaces.
    client
        Who sent it (an API client's name): the namespace of a key made from ``resource_id``.
    resource_id
        The id to key the record by when it carries no usable identifier (``Patient.id`` of a file or a PUT);
        None for a create, where the server assigns one.
    complete
        True (a stored resource): elements left out delete what the record held. False (a query): left out means
        unknown.
    today
        The day a name's, an address's or a phone's ``period`` is judged against (default: today in Europe/London):
        one whose period has ended or not begun is not the current one while another is.

    Returns
    -------
    PatientInput
        ``demographics.local_id`` is empty when nothing keys the record (the caller assigns one).
    """
    patient = plain_patient(resource) or validate_patient(resource)
    missing = DELETE if complete else None
    nhs_number: str | None = None
    verification: str | None = None
    keyed: list[tuple[int, str, str, str | None]] = []  # (rank, namespace, value, trust ods)
    identifiers: list[tuple[str, str]] = []
    for ident in patient.identifier or []:
        if not ident.system or not ident.value or ident.use == "old":
            continue
        value = ident.value.strip()
        if ident.system == NHS_NUMBER_SYSTEM:
            digits = value.replace(" ", "").replace("-", "")
            if not re.fullmatch(r"\d{10}", digits):  # UK Core: an NHS number is ten digits
                raise FHIRError("an NHS number identifier must be ten digits", code="fhir.business-rule")
            if is_placeholder(digits):  # passes Modulus 11, never issued: "not known" keyed as a number
                raise FHIRError("the NHS number identifier is one digit ten times, a placeholder that is never issued; "
                                "leave the identifier out when the number is not known", code="fhir.nhs-number")
            if not is_valid_nhs_number(digits):  # never stored or used as an NHS number: refused whole
                raise FHIRError("the NHS number identifier fails the Modulus 11 check", code="fhir.nhs-number")
            nhs_number = nhs_number or digits
            verification = verification or _verification_of(ident)
            identifiers.append((NHS_NUMBER_SYSTEM, digits))
            continue
        trust = trusts.resolve(ident.system)
        namespace = trusts.namespace(ident.system)
        identifiers.append((namespace, value))
        if namespace in INTERNAL_SYSTEMS or namespace == REGIONAL_ID_SYSTEM:
            continue
        rank = 0 if trust is not None else 1
        keyed.append((rank, namespace, value, trust.ods if trust else None))
    keyed.sort(key=lambda k: k[0])
    if keyed:
        _, namespace, local_id, trust_ods = keyed[0]
        keyed_by = "hospital-number" if trust_ods else "identifier"
    elif resource_id:
        namespace, local_id, trust_ods, keyed_by = client_namespace(client), resource_id, None, "resource-id"
    else:
        namespace, local_id, trust_ods, keyed_by = client_namespace(client), "", None, "none"
    others = [(ns, v) for _, ns, v, _ in keyed[1:]]
    if resource_id and (namespace, local_id) != (client_namespace(client), resource_id):
        others.append((client_namespace(client), resource_id))
    today = today or datetime.now(LOCAL_ZONE).date()
    family, given, prefix = _name(patient.name or [], today)
    address, postcode = _address(patient.address or [], today)
    death: date | str | None = missing
    if patient.deceasedDateTime is not None:
        death = _date_of(patient.deceasedDateTime)
    elif patient.deceasedBoolean:
        death = None  # deceased, date unknown: keep a date already known
    demographics = Demographics(
        namespace=namespace, local_id=local_id, trust_ods=trust_ods,
        nhs_number=nhs_number or missing, nhs_verification=verification or missing,
        family=family or missing, given=given or missing, prefix=prefix or missing,
        birth_date=_date_of(patient.birthDate) or missing, sex=patient.gender or missing,
        postcode=postcode or missing, address=address or missing, phone=_phone(patient.telecom or [], today) or missing,
        death_date=death, other_identifiers=list(dict.fromkeys(others)),
        event_at=patient.meta.lastUpdated if patient.meta and isinstance(patient.meta.lastUpdated, datetime)
        else None)
    return PatientInput(demographics, tuple(dict.fromkeys(identifiers)), keyed_by)


def _verification_of(identifier: Any) -> str | None:
    for ext in identifier.extension or []:
        if ext.url == NHS_VERIFICATION_URL and ext.valueCodeableConcept is not None:
            for coding in ext.valueCodeableConcept.coding or []:
                if coding.code in _VERIFICATION:
                    return str(coding.code)
    return None


def _date_of(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", value):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None  # partial dates (a year, a month) say too little to match on


def _in_force(element: Any, today: date) -> bool:
    """Whether ``element``'s ``period`` holds ``today``: none, or one begun and not ended (a partial date read as its
    whole year or month, so a name that ended "in 2010" is in force through 2010)."""
    period = getattr(element, "period", None)
    if period is None:
        return True
    start, end = _bound(period.start, last=False), _bound(period.end, last=True)
    return (start is None or start <= today) and (end is None or today <= end)


def _bound(value: Any, *, last: bool) -> date | None:
    """The first (``last`` False) or last day a FHIR date or dateTime of any precision denotes."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    try:
        start, end = date_span(value)
    except ValueError:
        return None
    return end if last else start


def date_span(text: str) -> tuple[date, date]:
    """The first and last day a FHIR date (or a dateTime's date part) of year, month or day precision denotes;
    ValueError when it is none."""
    found = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T.*)?", text)
    if found is None:
        raise ValueError(f"not a FHIR date: {len(text)} characters")
    year, month, day = int(found[1]), int(found[2] or 0), int(found[3] or 0)
    if day:
        return date(year, month, day), date(year, month, day)
    if month:
        return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
    return date(year, 1, 1), date(year, 12, 31)


def _current(elements: Sequence[Any], today: date, *, old: tuple[str, ...] = ("old",)) -> list[Any]:
    """The elements in use today: neither of an ``old`` use nor of a period ended or not yet begun; when none is,
    those not of an ``old`` use (a person's only name, even one whose period has ended, is still theirs)."""
    kept = [e for e in elements if e.use not in old]
    return [e for e in kept if _in_force(e, today)] or kept


def _name(names: Sequence[Any], today: date) -> tuple[str | None, str | None, str | None]:
    current = _current(names, today, old=("old", "maiden")) or list(names)
    if not current:
        return None, None, None
    chosen = next((n for u in ("official", "usual") for n in current if n.use == u), current[0])
    given = " ".join(" ".join(g.split()) for g in (chosen.given or []) if g and g.strip()) or None
    prefix = " ".join(p for p in (chosen.prefix or []) if p) or None
    family = chosen.family.strip() if chosen.family else None
    if family is None and given is None and chosen.text:
        family, given = split_name_text(chosen.text)
    return family, given, prefix


def split_name_text(text: str) -> tuple[str | None, str | None]:
    """``(family, given)`` of a name sent only as text (``HumanName.text``), as NHS systems write names.

    ``SMITH, John`` (family first before a comma: the PAS and HL7 display order); ``John SMITH`` or ``SMITH John``
    (the family name in capitals among names that are not: ``Anna DE LA CRUZ``); otherwise ``John Smith``, the
    last word the family name. A family name read as a given name would count against the person's own records:
    the comma and the capitals say which is which wherever the sender wrote them.
    """
    text = " ".join(text.split())
    if not text:
        return None, None
    if "," in text:
        family, _, given = (part.strip() for part in text.partition(","))
        return family or None, " ".join(given.replace(",", " ").split()) or None
    words = text.split(" ")
    capitals = [w.isupper() and sum(c.isalpha() for c in w) > 1 for w in words]
    if any(capitals) and not all(capitals):
        first = capitals.index(True)
        last = len(capitals) - capitals[::-1].index(True)
        if all(capitals[first:last]) and (first == 0 or last == len(words)):
            family = " ".join(words[first:last])
            return family, " ".join(words[:first] + words[last:]) or None
    return words[-1], " ".join(words[:-1]) or None


def _address(addresses: Sequence[Any], today: date) -> tuple[str | None, str | None]:
    current = _current(addresses, today)
    if not current:
        return None, None
    chosen = next((a for a in current if a.use == "home"), current[0])
    lines = [line.strip() for line in (chosen.line or []) if line and line.strip()]
    lines += [part.strip() for part in (chosen.city, chosen.district) if part and part.strip()]
    text = ", ".join(lines) or (chosen.text.strip() if chosen.text else None)
    return text or None, normalise_postcode(chosen.postalCode) if chosen.postalCode else None


def _phone(telecoms: Sequence[Any], today: date) -> str | None:
    phones = _current([t for t in telecoms if t.system == "phone" and t.value], today)
    chosen = next((t for t in phones if t.use == "home"), phones[0] if phones else None)
    return chosen.value.strip() if chosen else None


# --- showing ----------------------------------------------------------------------------------------------------

def _nhs_identifier(value: str, verification: str | None, use: str | None = None) -> dict[str, Any]:
    ident: dict[str, Any] = {"system": NHS_NUMBER_SYSTEM, "value": value}
    if use:
        ident["use"] = use
    if verification in _VERIFICATION:
        ident["extension"] = [{"url": NHS_VERIFICATION_URL, "valueCodeableConcept": {"coding": [{
            "system": NHS_VERIFICATION_SYSTEM, "code": verification, "display": _VERIFICATION[verification]}]}}]
    return ident


def _local_identifier(system: str, value: str, trusts: TrustRegistry, use: str | None) -> dict[str, Any]:
    ident: dict[str, Any] = {"system": system, "value": value}
    if use:
        ident["use"] = use
    trust = trusts.resolve(system)
    if trust is not None:
        ident["type"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR",
                                     "display": "Medical record number"}]}
        ident["assigner"] = {"identifier": {"system": ODS_SYSTEM, "value": trust.ods}, "display": trust.name}
    return ident


def _demographic_elements(source: SourceRecord | RegionalPatient) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if source.family or source.given:
        name: dict[str, Any] = {"use": "official"}
        if source.family:
            name["family"] = source.family
        if source.given:
            name["given"] = source.given.split()
        prefix = getattr(source, "prefix", None)
        if prefix:
            name["prefix"] = prefix.split()
        out["name"] = [name]
    phone = getattr(source, "phone", None)
    if phone:
        out["telecom"] = [{"system": "phone", "value": phone, "use": "home"}]
    if source.sex:
        out["gender"] = source.sex
    if source.birth_date:
        out["birthDate"] = source.birth_date.isoformat()
    death = getattr(source, "death_date", None)
    if death:
        out["deceasedDateTime"] = death.isoformat()
    if source.address or source.postcode:
        address: dict[str, Any] = {"use": "home"}
        if source.address:
            address["text"] = source.address + (f", {source.postcode}" if source.postcode else "")
            address["line"] = [p.strip() for p in source.address.split(",") if p.strip()]
        if source.postcode:
            address["postalCode"] = source.postcode
        out["address"] = [address]
    return out


def _meta(version: int | None, updated: datetime | None, kind: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"tag": [{"system": RECORD_KIND_SYSTEM, "code": kind}]}
    if version is not None:
        meta["versionId"] = str(version)
    if updated is not None:
        meta["lastUpdated"] = updated.isoformat()
    return meta


def source_patient(record: SourceRecord, identifiers: Iterable[tuple[str, str]], trusts: TrustRegistry, *,
                   resource_id: str | None = None, old: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """One source record as a Patient that refers to its regional patient.

    Parameters
    ----------
    record
        The stored source record.
    identifiers
        Its further identifiers ``(system, value)`` (PID-3 repeats, FHIR identifiers); internal systems are left out.
    old
        Identifiers it was known by until replaced (ADT A47), shown with ``use: old``.
    resource_id
        The id to show (the one a client chose); ``src-<n>`` by default.
    """
    resource: dict[str, Any] = {"resourceType": "Patient", "id": resource_id or source_resource_id(record.id),
                                "meta": _meta(record.version, record.updated_at, "source-record")}
    idents = []
    if record.nhs_number:
        idents.append(_nhs_identifier(record.nhs_number, record.nhs_verification))
    idents.append(_local_identifier(record.namespace, record.local_id, trusts, "usual"))
    for system, value in dict.fromkeys(identifiers):
        if system not in INTERNAL_SYSTEMS and (system, value) != (record.namespace, record.local_id):
            idents.append(_local_identifier(system, value, trusts, "secondary"))
    for system, value in dict.fromkeys(old):
        if system not in INTERNAL_SYSTEMS:
            idents.append(_local_identifier(system, value, trusts, "old"))
    resource["identifier"] = idents
    resource["active"] = bool(record.active)
    resource.update(_demographic_elements(record))
    if record.trust_ods:
        resource["managingOrganization"] = {"identifier": {"system": ODS_SYSTEM, "value": record.trust_ods}}
    if record.regional_patient_id:
        resource["link"] = [{"other": {"reference": f"Patient/{record.regional_patient_id}"}, "type": "refer"}]
    return resource


@dataclass
class RegionalView:
    """A regional patient with its source records and their further identifiers, for :func:`regional_patient`."""

    patient: RegionalPatient
    records: list[SourceRecord] = field(default_factory=list)
    identifiers: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # by source record id
    old_identifiers: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # replaced (A47), by record id


def linked_identifiers(view: RegionalView, trusts: TrustRegistry) -> list[dict[str, Any]]:
    """Every identifier linked to the regional patient: its regional id, NHS numbers, each record's identifiers.

    Identifiers of records merged away (inactive) and identifiers replaced (ADT A47) are shown with ``use: old``.
    """
    patient = view.patient
    out = [{"system": REGIONAL_ID_SYSTEM, "value": patient.id, "use": "official"}]
    seen = {(REGIONAL_ID_SYSTEM, patient.id)}
    # a number failing the Modulus 11 check is kept on its record (and shown there) but is no NHS number of the
    # person: shown here under the NHS number system, a consumer would take it for one
    nhs_numbers = sorted({r.nhs_number for r in view.records if r.nhs_number and r.active and r.nhs_number_valid},
                         key=lambda n: (n != patient.nhs_number, n))
    for number in nhs_numbers:
        verified = sorted(r.nhs_verification for r in view.records if r.nhs_number == number and r.nhs_verification)
        out.append(_nhs_identifier(number, verified[0] if verified else None,
                                   "official" if number == patient.nhs_number else "secondary"))
        seen.add((NHS_NUMBER_SYSTEM, number))
    for record in sorted(view.records, key=lambda r: (not r.active, r.id)):
        use = "usual" if record.active else "old"
        pairs = [(record.namespace, record.local_id)] + view.identifiers.get(record.id, [])
        for system, value in pairs:
            if system in INTERNAL_SYSTEMS or (system, value) in seen:
                continue
            seen.add((system, value))
            out.append(_local_identifier(system, value, trusts, use))
    for record in view.records:
        for system, value in view.old_identifiers.get(record.id, []):
            if system in INTERNAL_SYSTEMS or (system, value) in seen:
                continue
            seen.add((system, value))
            out.append(_local_identifier(system, value, trusts, "old"))
    return out


def regional_patient(view: RegionalView, trusts: TrustRegistry, *, survivor_id: str | None = None) -> dict[str, Any]:
    """The regional (golden) Patient: best-known demographics and every linked identifier.

    Parameters
    ----------
    view
        The regional patient with its records and their identifiers.
    survivor_id
        For a regional patient retired by a merge: the one that replaced it (shown as ``replaced-by``).
    """
    patient = view.patient
    resource: dict[str, Any] = {"resourceType": "Patient", "id": patient.id,
                                "meta": _meta(None, patient.updated_at, "regional-patient")}
    if survivor_id and survivor_id != patient.id:
        resource["identifier"] = [{"system": REGIONAL_ID_SYSTEM, "value": patient.id, "use": "old"}]
        resource["active"] = False
        resource["link"] = [{"other": {"reference": f"Patient/{survivor_id}"}, "type": "replaced-by"}]
        return resource
    resource["identifier"] = linked_identifiers(view, trusts)
    resource["active"] = patient.status == "active"
    resource.update(_demographic_elements(patient))
    links = [{"other": {"reference": f"Patient/{source_resource_id(r.id)}"}, "type": "seealso"}
             for r in view.records]
    if links:
        resource["link"] = links
    return resource


def outcome(severity: str, code: str, diagnostics: str) -> dict[str, Any]:
    """An OperationOutcome with one issue (``diagnostics`` never quotes patient data)."""
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]}


def match_entry(resource: Mapping[str, Any], probability: float, grade: str, base: str) -> dict[str, Any]:
    """A $match result: the regional Patient with ``search.score`` and the match-grade extension."""
    return {"fullUrl": f"{base}/Patient/{resource['id']}", "resource": dict(resource),
            "search": {"extension": [{"url": MATCH_GRADE_URL, "valueCode": grade}], "mode": "match",
                       "score": round(min(max(probability, 0.0), 1.0), 4)}}


__all__ = [
    "CLIENT_NAMESPACE_PREFIX", "FHIR_ID", "FHIR_ID_SYSTEM", "GENDERS", "INTERNAL_SYSTEMS", "MATCH_GRADE_URL",
    "NHS_VERIFICATION_SYSTEM", "NHS_VERIFICATION_URL", "REGIONAL_ID_SYSTEM", "PatientInput", "RegionalView",
    "client_namespace", "describe_validation_error", "is_regional_id", "linked_identifiers",
    "match_entry", "normalise_postcode", "outcome", "parse_source_resource_id", "read_patient", "regional_patient",
    "source_patient", "source_resource_id", "validate_patient",
]
