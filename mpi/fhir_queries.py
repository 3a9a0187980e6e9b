"""The index's read side as FHIR: Patient read, PDQm search, ``Patient/$match`` and PIXm ``Patient/$ihe-pix``.

The Patient queries belong with the index they read (their wire format is :mod:`mpi.fhir_patient`); the HTTP routes
in ``api`` only parse, call these through the ``mpi`` front, and shape the answer.

Searches and matches answer with *regional* Patients (one per person, every linked identifier); a read answers with
the Patient asked for (regional or source record). Every access is audited, one row per regional patient touched.
Errors are :class:`~priorscan.errors.FHIRError` / :class:`~priorscan.errors.NotFoundError` codes that
the HTTP edge turns into statuses (one mapping, in ``api``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from sqlalchemy import and_, bindparam, func, or_, select, union
from sqlalchemy.orm import Session

from mpi.fhir_patient import (
    FHIR_ID_SYSTEM,
    GENDERS,
    INTERNAL_SYSTEMS,
    REGIONAL_ID_SYSTEM,
    RegionalView,
    client_namespace,
    date_span,
    is_regional_id,
    match_entry,
    parse_source_resource_id,
    read_patient,
    regional_patient,
    source_patient,
)
from mpi.nhs_number import normalise_nhs_number
from mpi.resolution import CERTAIN, at_most_one_certain
from mpi.service import PatientIndex
from mpi.tables import RegionalPatient, SourceIdentifier, SourceRecord
from priorscan.audit import Agent, record
from priorscan.errors import FHIRError, NotFoundError
from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry

MAX_COUNT = 100
#: The most parameters and comma-separated alternatives one search may hold (a person is found with a handful).
MAX_SEARCH_TERMS = 100


# --- look-ups -----------------------------------------------------------------------------------------------------

def find_source_record(session: Session, resource_id: str, client: str) -> SourceRecord | None:
    """The source record shown as ``Patient/<resource_id>``: ``src-<n>``, an id a client chose, or a file's id."""
    pk = parse_source_resource_id(resource_id)
    if pk is not None:
        return session.get(SourceRecord, pk)
    by_fhir_id = session.scalars(select(SourceRecord).join(SourceIdentifier,
                                                           SourceIdentifier.source_record_id == SourceRecord.id)
                                 .where(SourceIdentifier.system == FHIR_ID_SYSTEM,
                                        SourceIdentifier.value == resource_id)).first()
    if by_fhir_id is not None:
        return by_fhir_id
    namespace = client_namespace(client)
    keyed = session.scalars(select(SourceRecord).where(SourceRecord.namespace == namespace,
                                                       SourceRecord.local_id == resource_id)).first()
    if keyed is not None:
        return keyed
    # a Patient keyed by its identifiers keeps the id its sender gave it (an ingested file's Patient.id) beside them
    return session.scalars(select(SourceRecord).join(SourceIdentifier,
                                                     SourceIdentifier.source_record_id == SourceRecord.id)
                           .where(SourceIdentifier.system == namespace, SourceIdentifier.value == resource_id,
                                  CURRENT)).first()


# Statements built once with bound parameters: on this stack building a statement costs more than running it.
_IDENTIFIERS_OF = (select(SourceIdentifier.source_record_id, SourceIdentifier.system, SourceIdentifier.value,
                           SourceIdentifier.use)
                   .where(SourceIdentifier.source_record_id.in_(bindparam("ids", expanding=True)))
                   .order_by(SourceIdentifier.id))

#: A further identifier that is current (not replaced by ADT A47): only these are matched and resolved.
CURRENT = SourceIdentifier.use.is_(None)
_REGIONAL_PATIENTS = select(RegionalPatient).where(RegionalPatient.id.in_(bindparam("ids", expanding=True)))
_RECORDS_OF = (select(SourceRecord).where(SourceRecord.regional_patient_id.in_(bindparam("ids", expanding=True)))
               .order_by(SourceRecord.id))


def identifiers_of(session: Session, record_ids: Sequence[int], *, old: dict[int, list[tuple[str, str]]] | None = None
                   ) -> dict[int, list[tuple[str, str]]]:
    """Current further identifiers of each source record (internal systems included; renderers leave them out);
    those replaced (use ``old``, ADT A47) go into ``old`` when given."""
    out: dict[int, list[tuple[str, str]]] = {}
    if not record_ids:
        return out
    for record_id, system, value, use in session.execute(_IDENTIFIERS_OF, {"ids": list(record_ids)}):
        if use is None:
            out.setdefault(record_id, []).append((system, value))
        elif old is not None:
            old.setdefault(record_id, []).append((system, value))
    return out


def regional_views(session: Session, regional_ids: Sequence[str]) -> dict[str, RegionalView]:
    """Regional patients with their source records and identifiers, in three queries."""
    if not regional_ids:
        return {}
    patients = {p.id: p for p in session.scalars(_REGIONAL_PATIENTS, {"ids": list(regional_ids)})}
    views = {rid: RegionalView(p) for rid, p in patients.items()}
    records = list(session.scalars(_RECORDS_OF, {"ids": list(views)})) if views else []
    for rec in records:
        views[rec.regional_patient_id].records.append(rec)  # type: ignore[index]
    old: dict[int, list[tuple[str, str]]] = {}
    idents = identifiers_of(session, [r.id for r in records], old=old)
    for view in views.values():
        view.identifiers = {r.id: idents.get(r.id, []) for r in view.records}
        view.old_identifiers = {r.id: old[r.id] for r in view.records if r.id in old}
    return views


def read_patient_resource(session: Session, trusts: TrustRegistry, resource_id: str, *, agent: Agent) -> dict[str, Any]:
    """``GET Patient/<id>``: a regional Patient (``RP…``) or a source record; NotFoundError otherwise."""
    if is_regional_id(resource_id):
        views = regional_views(session, [resource_id])
        if resource_id not in views:
            raise NotFoundError("no Patient with that id")
        regional_id = (survivors(session, [resource_id]) or [resource_id])[0]
        resource = regional_patient(views[resource_id], trusts, survivor_id=regional_id)
    else:
        found = find_source_record(session, resource_id, agent.name)
        if found is None:
            raise NotFoundError("no Patient with that id")
        old: dict[int, list[tuple[str, str]]] = {}
        current = identifiers_of(session, [found.id], old=old).get(found.id, [])
        resource = source_patient(found, current, trusts, resource_id=resource_id, old=old.get(found.id, []))
        regional_id = found.regional_patient_id or ""
    record(session, agent, action="R", event_type="rest", subtype="Patient read",
           regional_patient_id=regional_id or None, entity=f"Patient/{resource_id}")
    return resource


# --- PDQm search ---------------------------------------------------------------------------------------------------

#: PDQm (IHE ITI-78) Patient search parameters served; ``address-country`` and ``mothersMaidenName`` are not (the
#: index keeps neither) and are refused like any other unknown parameter.
SEARCH_PARAMETERS = ("_id", "active", "identifier", "family", "given", "name", "birthdate", "gender", "telecom",
                     "address", "address-city", "address-state", "address-postalcode", "_count", "_offset")
#: Result parameters that change nothing in a JSON answer (accepted, ignored).
HARMLESS_PARAMETERS = ("_format", "_pretty")
#: Modifiers served, per parameter kind (string parameters: ``:exact``; none for the others).
_STRING_PARAMETERS = ("family", "given", "name", "address", "address-city", "address-state")


def unsupported_parameters(params: Sequence[tuple[str, str]]) -> list[str]:
    """The names (with modifier) of the search parameters :func:`search_patients` does not serve, in order."""
    out: list[str] = []
    for raw_name, _ in params:
        name, _, modifier = raw_name.partition(":")
        if raw_name in HARMLESS_PARAMETERS:
            continue
        known = name in SEARCH_PARAMETERS and (not modifier or (modifier == "exact" and name in _STRING_PARAMETERS))
        if not known and raw_name not in out:
            out.append(raw_name)
    return out
_DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


def _date_range(value: str) -> tuple[str, date, date]:
    prefix = value[:2] if value[:2] in _DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in _DATE_PREFIXES else value
    try:
        start, end = date_span(text)
    except ValueError as exc:
        raise FHIRError("birthdate is not a FHIR date", code="fhir.invalid") from exc
    return prefix, start, end


def _token_clause(trusts: TrustRegistry, token: str) -> Any:
    """An ``identifier`` token in its four forms (FHIR R4 search 3.1.1.4.10): ``value`` (any system),
    ``system|value``, ``|value`` (an identifier without a system: the index keeps none, so nobody) and ``system|``
    (anyone with an identifier in that system)."""
    system, sep, value = token.partition("|")
    if not sep:
        system, value = "", token
    system, value = system.strip(), value.strip()
    if not value and not system:
        raise FHIRError("identifier needs a value (system|value)", code="fhir.invalid")
    if sep and not system:
        return SourceRecord.id.is_(None)
    if not value:
        return _system_clause(trusts, system)
    nhs = and_(SourceRecord.nhs_number == value.replace(" ", ""), SourceRecord.nhs_number_valid.is_(True))
    if system == NHS_NUMBER_SYSTEM:
        return nhs
    if system == REGIONAL_ID_SYSTEM:
        return SourceRecord.regional_patient_id == value
    if system:
        namespace = trusts.namespace(system)
        return or_(and_(SourceRecord.namespace == namespace, SourceRecord.local_id == value),
                   SourceRecord.id.in_(select(SourceIdentifier.source_record_id).where(
                       SourceIdentifier.system == namespace, SourceIdentifier.value == value, CURRENT)))
    return or_(nhs, SourceRecord.local_id == value, SourceRecord.regional_patient_id == value,
               SourceRecord.id.in_(select(SourceIdentifier.source_record_id).where(SourceIdentifier.value == value,
                                                                                   CURRENT)))


def _system_clause(trusts: TrustRegistry, system: str) -> Any:
    """``identifier=system|``: the records holding an identifier in ``system``."""
    if system == NHS_NUMBER_SYSTEM:
        return and_(SourceRecord.nhs_number.is_not(None), SourceRecord.nhs_number_valid.is_(True))
    if system == REGIONAL_ID_SYSTEM:
        return SourceRecord.regional_patient_id.is_not(None)
    namespace = trusts.namespace(system)
    return or_(SourceRecord.namespace == namespace, SourceRecord.id.in_(select(SourceIdentifier.source_record_id).where(
        SourceIdentifier.system == namespace, CURRENT)))


def _string_clause(column: Any, value: str, exact: bool, *, words: bool = False) -> Any:
    if exact:
        return column == value
    lowered = func.lower(column)
    clause = lowered.startswith(value.lower(), autoescape=True)
    if words:  # given names are stored space separated: match the start of any of them
        clause = or_(clause, lowered.contains(" " + value.lower(), autoescape=True))
    return clause


def _search_clauses(trusts: TrustRegistry, params: Sequence[tuple[str, str]]) -> tuple[list[Any], list]:
    clauses: list[Any] = []
    used: list[tuple[str, str]] = []
    for raw_name, raw_value in params:
        name, _, modifier = raw_name.partition(":")
        values = [v.strip() for v in raw_value.split(",") if v.strip()]
        if name not in SEARCH_PARAMETERS or name in ("_count", "_offset") or not values:
            continue
        exact = modifier == "exact"
        used.append((raw_name, raw_value))
        options: list[Any] = []
        for value in values:
            if name == "_id":
                pk = parse_source_resource_id(value)
                options.append(SourceRecord.regional_patient_id == value if pk is None else SourceRecord.id == pk)
            elif name == "identifier":
                options.append(_token_clause(trusts, value))
            elif name == "family":
                options.append(_string_clause(SourceRecord.family, value, exact))
            elif name == "given":
                options.append(_string_clause(SourceRecord.given, value, exact, words=True))
            elif name == "name":
                options.append(or_(_string_clause(SourceRecord.family, value, exact),
                                   _string_clause(SourceRecord.given, value, exact, words=True)))
            elif name == "gender":
                if value not in GENDERS:
                    raise FHIRError("gender is not one of male, female, other, unknown", code="fhir.invalid")
                options.append(SourceRecord.sex == value)
            elif name == "address-postalcode":
                compact = "".join(value.upper().split())
                options.append(func.replace(func.upper(SourceRecord.postcode), " ", "").startswith(
                    compact, autoescape=True))
            elif name in ("address", "address-city", "address-state"):
                # the index keeps an address as its lines, town and district joined by ", ": a part starting with
                # the value (city and state cannot be told from the other parts); ``address`` also the postcode
                part = _address_part_clause(value, exact)
                options.append(or_(part, _string_clause(SourceRecord.postcode, value, exact))
                               if name == "address" else part)
            elif name == "telecom":
                options.append(_telecom_clause(value))
            elif name == "active":
                if value not in ("true", "false"):
                    raise FHIRError("active is true or false", code="fhir.invalid")
                # the Patients found are regional ones: active unless retired by a merge (never found: a retired
                # patient has no records), so active=false finds nobody
                options.append(SourceRecord.regional_patient_id.in_(select(RegionalPatient.id).where(
                    RegionalPatient.status == ("active" if value == "true" else "retired"))))
            elif name == "birthdate":
                prefix, start, end = _date_range(value)
                column = SourceRecord.birth_date
                options.append({"eq": and_(column >= start, column <= end), "ne": or_(column < start, column > end),
                                "gt": column > end, "sa": column > end, "lt": column < start, "eb": column < start,
                                "ge": column >= start, "le": column <= end,
                                "ap": and_(column >= start - timedelta(days=365 // 10),
                                           column <= end + timedelta(days=365 // 10))}[prefix])
        clauses.append(or_(*options))
    return clauses, used


def _address_part_clause(value: str, exact: bool) -> Any:
    """A part of the stored address (``line, line, town``) that starts with ``value`` (equals it: ``exact``)."""
    lowered = func.lower(SourceRecord.address)
    wanted = value.lower().strip()
    if exact:
        return or_(SourceRecord.address == value, SourceRecord.address.startswith(value + ",", autoescape=True),
                   SourceRecord.address.endswith(", " + value, autoescape=True),
                   SourceRecord.address.contains(", " + value + ",", autoescape=True))
    return or_(lowered.startswith(wanted, autoescape=True), lowered.contains(", " + wanted, autoescape=True))


def _telecom_clause(token: str) -> Any:
    """``telecom=[system|]value``: the index keeps one phone number; compared by its digits (and a leading +)."""
    system, sep, value = token.partition("|")
    if not sep:
        system, value = "", token
    if system and system != "phone":
        return SourceRecord.id.is_(None)  # no other kind of telecom is kept: nobody has it
    digits = "".join(ch for ch in value if ch.isdigit() or ch == "+")
    if not digits:
        raise FHIRError("telecom needs a phone number ([phone|]value)", code="fhir.invalid")
    stored: Any = SourceRecord.phone
    for ch in (" ", "-", "(", ")", "."):
        stored = func.replace(stored, ch, "")
    return stored == digits


def _int_param(params: Sequence[tuple[str, str]], name: str, default: int, low: int, high: int) -> int:
    for key, value in params:
        if key == name:
            try:
                return max(low, min(high, int(value)))
            except ValueError as exc:
                raise FHIRError(f"{name} is not an integer", code="fhir.invalid") from exc
    return default


def _requested_domains(trusts: TrustRegistry, used: Sequence[tuple[str, str]]) -> set[str] | None:
    """The identifier domains a PDQm consumer asked to be returned (ITI-78 2:3.78.4.1.2.3: ``identifier=system|``,
    alternatives separated by commas), canonical; None when it asked for none."""
    domains = {trusts.namespace(system) for name, value in used if name == "identifier"
               for system, sep, rest in (token.strip().partition("|") for token in value.split(","))
               if sep and system.strip() and not rest.strip()}
    return domains or None


def _in_domains(resource: dict[str, Any], domains: set[str] | None) -> dict[str, Any]:
    """``resource`` with only the identifiers of ``domains`` (ITI-78 Case 2: the supplier eliminates the others)."""
    if domains is not None:
        resource["identifier"] = [i for i in resource.get("identifier", []) if i.get("system") in domains]
    return resource


def _page_url(base: str, used: Sequence[tuple[str, str]], count: int, offset: int) -> str:
    """A page of the search as a URL a client can follow: every value percent-encoded (a ``+``, ``&``, ``#`` or space
    sent in a value would otherwise come back as another search), the token and list separators kept readable."""
    query = urlencode([*used, ("_count", str(count)), ("_offset", str(offset))], quote_via=quote, safe="|:/,")
    return f"{base}/Patient?{query}"


def search_patients(session: Session, trusts: TrustRegistry, params: Sequence[tuple[str, str]], *, agent: Agent,
                    base: str, lenient: bool = False) -> dict[str, Any]:
    """PDQm (ITI-78) ``GET Patient?…``: the regional Patients any of whose source records meet every parameter.

    Parameters: ``_id``, ``active``, ``identifier`` (``system|value`` or ``value``), ``family``, ``given``,
    ``name``, ``address``, ``address-city``, ``address-state`` (string search: case-insensitive prefix,
    ``:exact``), ``birthdate`` (with prefixes ``eq ne gt lt ge le sa eb ap``), ``gender``, ``telecom``,
    ``address-postalcode``; ``_count`` (at most 100) and ``_offset`` page. Values separated by commas are
    alternatives.

    A parameter (or modifier) not served is refused (``fhir.search-parameter``, 400) unless ``lenient`` (the client
    sent ``Prefer: handling=lenient``): then it is left out, the ``self`` link shows the parameters used, and an
    OperationOutcome entry names those ignored. Never is an unserved parameter silently dropped.
    """
    terms = sum(1 + value.count(",") for _, value in params)
    if terms > MAX_SEARCH_TERMS:  # each is a clause: a thousand passed SQLite's expression depth (a 503)
        raise FHIRError(f"a search takes at most {MAX_SEARCH_TERMS} parameters and alternatives", code="fhir.invalid")
    ignored = unsupported_parameters(params)
    if ignored and not lenient:
        raise FHIRError(f"search parameter(s) not supported: {', '.join(ignored)[:200]} (send Prefer: "
                        "handling=lenient to have them ignored)", code="fhir.search-parameter")
    clauses, used = _search_clauses(trusts, [(k, v) for k, v in params if k not in ignored])
    count = _int_param(params, "_count", 20, 0, MAX_COUNT)
    offset = _int_param(params, "_offset", 0, 0, 10**9)
    matching = select(SourceRecord.regional_patient_id).where(SourceRecord.regional_patient_id.is_not(None),
                                                              *clauses).distinct().subquery()
    total = session.scalar(select(func.count()).select_from(matching)) or 0
    page = list(session.scalars(select(matching.c.regional_patient_id).order_by(matching.c.regional_patient_id)
                                .offset(offset).limit(count))) if count else []
    views = regional_views(session, page)
    domains = _requested_domains(trusts, used)
    entries = [{"fullUrl": f"{base}/Patient/{rid}", "resource": _in_domains(regional_patient(views[rid], trusts),
                                                                           domains),
                "search": {"mode": "match"}} for rid in page if rid in views]
    links = [{"relation": "self", "url": _page_url(base, used, count, offset)}]
    if offset + count < total and count:
        links.append({"relation": "next", "url": _page_url(base, used, count, offset + count)})
    if ignored:
        entries.append({"resource": {"resourceType": "OperationOutcome", "issue": [
            {"severity": "warning", "code": "not-supported",
             "diagnostics": f"search parameter(s) ignored: {', '.join(ignored)[:200]}"}]},
            "search": {"mode": "outcome"}})
    for rid in page or [None]:
        record(session, agent, action="E", event_type="rest", subtype="Patient search", regional_patient_id=rid,
               entity="Patient", detail={"parameters": sorted({k for k, _ in used}), "total": total})
    return {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links, "entry": entries}


def conditional_matches(session: Session, trusts: TrustRegistry, query: str, *, limit: int = 2) -> list[int]:
    """The active source records (at most ``limit``) a conditional create's query names (``If-None-Exist`` or a
    Bundle entry's ``request.ifNoneExist``): ``identifier=system|value`` and the other PDQm parameters, every one
    met by the record itself (not by another record of its regional patient).

    A parameter the search does not serve is refused (``fhir.search-parameter``), never dropped: a query read as
    narrower than it was written could let a duplicate record through, one read as wider could stop a create.
    """
    params = [(k, v) for k, v in parse_qsl(query.lstrip("?"), keep_blank_values=True) if k not in HARMLESS_PARAMETERS]
    ignored = unsupported_parameters(params) + [k for k, _ in params if k in ("_count", "_offset")]
    if ignored:
        raise FHIRError(f"conditional create: search parameter(s) not supported: {', '.join(ignored)[:200]}",
                        code="fhir.search-parameter")
    clauses, used = _search_clauses(trusts, params)
    if not used:
        raise FHIRError("conditional create needs search parameters (If-None-Exist: identifier=system|value)",
                        code="fhir.invalid")
    return list(session.scalars(select(SourceRecord.id).where(SourceRecord.active.is_(True), *clauses)
                                .order_by(SourceRecord.id).limit(limit)))


# --- $match -----------------------------------------------------------------------------------------------------

#: The parameters of Patient-match this server takes, each with the element its value is given in.
_MATCH_PARAMETERS = {"resource": "resource", "onlyCertainMatches": "valueBoolean", "count": "valueInteger"}


def _match_parameters(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool, int]:
    if body.get("resourceType") == "Patient":
        return body, False, 10
    if body.get("resourceType") != "Parameters":
        raise FHIRError("$match expects a Parameters resource (or a Patient)", code="fhir.invalid")
    resource, only_certain, count = None, False, 10
    parameters = body.get("parameter") or []
    if not isinstance(parameters, list):
        raise FHIRError("Parameters.parameter must be a list", code="fhir.invalid")
    seen: set[str] = set()
    for parameter in parameters:
        # Patient-match: resource 1..1, onlyCertainMatches 0..1 boolean, count 0..1 integer. Anything else is
        # refused, never skipped: a misspelt or mistyped onlyCertainMatches read as absent would hand a client that
        # asked for certain matches only the probable ones too (H-ID-57).
        name = parameter.get("name") if isinstance(parameter, Mapping) else None
        if name not in _MATCH_PARAMETERS:
            raise FHIRError("$match takes the parameters resource, onlyCertainMatches and count only",
                            code="fhir.invalid")
        if name in seen:
            raise FHIRError(f"$match takes {name} at most once", code="fhir.invalid")
        seen.add(name)
        value_keys = {key for key in parameter if key.startswith("value") or key in ("resource", "part")}
        if value_keys != {_MATCH_PARAMETERS[name]}:
            raise FHIRError(f"$match parameter {name} must be given as {_MATCH_PARAMETERS[name]}", code="fhir.invalid")
        if name == "resource":
            resource = parameter.get("resource")
        elif name == "onlyCertainMatches":
            if not isinstance(parameter["valueBoolean"], bool):
                raise FHIRError("onlyCertainMatches must be a boolean", code="fhir.invalid")
            only_certain = parameter["valueBoolean"]
        elif name == "count":
            value = parameter.get("valueInteger")
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FHIRError("count must be a positive integer", code="fhir.invalid")
            count = min(value, MAX_COUNT)
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Patient":
        raise FHIRError("$match needs the parameter resource holding a Patient", code="fhir.invalid")
    return resource, only_certain, count


def match_patients(session: Session, trusts: TrustRegistry, body: Mapping[str, Any], *, agent: Agent,
                   base: str) -> dict[str, Any]:
    """``Patient/$match``: regional Patients scored against a Patient, best first, graded.

    Grades (:func:`mpi.resolution.match_grade`): ``certain`` (safe to act on automatically) only for a match backed
    by an identifier — a hospital number the index knows, or a match of the linking rules with the same valid NHS
    number — and for at most one patient; demographics alone are at most ``probable``. ``onlyCertainMatches``
    returns the certain match when there is one; ``count`` bounds the results. Candidates graded
    ``certainly-not`` are left out.
    """
    resource, only_certain, count = _match_parameters(body)
    query = read_patient(resource, trusts, client=agent.name, complete=False)
    index = PatientIndex(session, trusts)
    scored: dict[str, tuple[float, str]] = {}
    for candidate in index.match(query.demographics, count=max(count, 10)):
        if candidate.grade != "certainly-not":
            scored[candidate.regional_id] = (candidate.probability, candidate.grade)
    for system, value in query.identifiers:
        if system == NHS_NUMBER_SYSTEM or system in INTERNAL_SYSTEMS:
            continue
        for regional_id in index.patients_known_by(system, value):
            scored[regional_id] = (1.0, CERTAIN)
    grades, ambiguous = at_most_one_certain({rid: grade for rid, (_, grade) in scored.items()})
    scored = {rid: (probability, grades[rid]) for rid, (probability, _) in scored.items()}
    ranked = sorted(scored.items(), key=lambda item: (-item[1][0], item[0]))
    note = "more than one patient would be a certain match: none is graded certain" if ambiguous else None
    if only_certain:
        ranked = [item for item in ranked if item[1][1] == CERTAIN]
    ranked = ranked[:count]
    views = regional_views(session, [rid for rid, _ in ranked])
    entries = [match_entry(regional_patient(views[rid], trusts), probability, grade, base)
               for rid, (probability, grade) in ranked if rid in views]
    if note:
        entries.append({"resource": {"resourceType": "OperationOutcome", "issue": [
            {"severity": "information", "code": "multiple-matches", "diagnostics": note}]},
            "search": {"mode": "outcome"}})
    touched: list[str | None] = [rid for rid, _ in ranked] or [None]
    for rid in touched:
        record(session, agent, action="E", event_type="rest", subtype="Patient $match", regional_patient_id=rid,
               entity="Patient", detail={"results": len(ranked), "onlyCertainMatches": only_certain})
    return {"resourceType": "Bundle", "type": "searchset", "total": len(ranked), "entry": entries}


# --- PIXm ---------------------------------------------------------------------------------------------------------

def known_domain(session: Session, trusts: TrustRegistry, system: str) -> str | None:
    """The canonical namespace of ``system`` when the index knows it as a patient identity domain, else None."""
    if system in (NHS_NUMBER_SYSTEM, REGIONAL_ID_SYSTEM):
        return system
    trust = trusts.resolve(system)
    if trust is not None:
        return trust.fhir_system
    if system in INTERNAL_SYSTEMS:
        return None
    found = session.scalar(select(SourceRecord.id).where(SourceRecord.namespace == system).limit(1))
    if found is None:
        found = session.scalar(select(SourceIdentifier.id).where(SourceIdentifier.system == system).limit(1))
    return system if found is not None else None


def pix_query(session: Session, trusts: TrustRegistry, source_identifier: str, target_systems: Iterable[str], *,
              agent: Agent, base: str = "") -> dict[str, Any]:
    """PIXm ``Patient/$ihe-pix``: the identifiers cross-referenced with ``system|value`` (ITI-83).

    Failures follow ITI-83 (PIXm 3): an unknown source domain → 400 ``code-invalid``; an unknown identifier → 404
    ``not-found``; an unknown target system → 403 ``code-invalid`` (raised as FHIRError codes ``fhir.pix-*``).
    Records merged away are left out; each regional patient found is a ``targetId``.

    The logical id of one of this server's Patients is an identifier too (ITI-83 2:3.83.4.1.2.1): ``sourceIdentifier=
    <base>|Patient/<id>`` names the regional patient that Patient is (or belongs to), and ``targetSystem=<base>``
    asks for the ``targetId`` references alone. ``base`` is this server's FHIR base URL.
    """
    system, sep, value = source_identifier.partition("|")
    if not sep or not system.strip() or not value.strip():
        raise FHIRError("sourceIdentifier must be system|value", code="fhir.invalid")
    system, value = system.strip(), value.strip()
    own = base.rstrip("/")
    source_domain = REGIONAL_ID_SYSTEM if own and system.rstrip("/") == own else known_domain(session, trusts, system)
    if source_domain is None:
        raise FHIRError("sourceIdentifier Assigning Authority not found", code="fhir.pix-source-domain")
    targets: set[str] = set()
    for target in target_systems:
        domain = own if own and target.strip().rstrip("/") == own else known_domain(session, trusts, target.strip())
        if domain is None:
            raise FHIRError("targetSystem not found", code="fhir.pix-target-domain")
        targets.add(domain)
    given = (source_domain, value)  # never returned (2:3.83.4.2.2.1)
    if source_domain == REGIONAL_ID_SYSTEM and system != REGIONAL_ID_SYSTEM:  # <base>|Patient/<id>
        given = (own, value)
        regional_id = resolve_patient_reference(session, trusts, value, client=agent.name)
        rows = _cross_references(session, REGIONAL_ID_SYSTEM, regional_id) if regional_id else []
    else:
        rows = _cross_references(session, source_domain, value)
    regional = list(dict.fromkeys(row.regional_patient_id for row in rows))
    if not regional:
        raise FHIRError("sourceIdentifier Patient Identifier not found", code="fhir.pix-not-found")
    parameters: list[dict[str, Any]] = []
    seen = {given}
    for rid in regional:
        found = [(REGIONAL_ID_SYSTEM, rid)]
        for row in (r for r in rows if r.regional_patient_id == rid):
            if row.nhs_number and row.nhs_number_valid:
                found.append((NHS_NUMBER_SYSTEM, row.nhs_number))
            found.append((row.namespace, row.local_id))
            if row.system and row.system not in INTERNAL_SYSTEMS:
                found.append((row.system, row.value))
        for pair in found:
            if pair in seen or (targets and pair[0] not in targets):
                continue
            seen.add(pair)
            parameters.append({"name": "targetIdentifier", "valueIdentifier": {"system": pair[0], "value": pair[1]}})
        parameters.append({"name": "targetId", "valueReference": {"reference": f"Patient/{rid}"}})
        record(session, agent, action="E", event_type="rest", subtype="Patient $ihe-pix", regional_patient_id=rid,
               entity="Patient", detail={"targetSystems": len(targets)})
    return {"resourceType": "Parameters", "parameter": parameters}


def _cross_reference_query(known: Any) -> Any:
    hits = known.cte("hits")
    return (select(SourceRecord.id, SourceRecord.regional_patient_id, SourceRecord.namespace, SourceRecord.local_id,
                   SourceRecord.nhs_number, SourceRecord.nhs_number_valid, SourceIdentifier.system,
                   SourceIdentifier.value)
            .outerjoin(SourceIdentifier, and_(SourceIdentifier.source_record_id == SourceRecord.id, CURRENT))
            .where(SourceRecord.regional_patient_id.in_(select(hits.c.regional_patient_id)),
                   SourceRecord.active.is_(True))
            .order_by(SourceRecord.regional_patient_id, SourceRecord.id, SourceIdentifier.id))


# Built once with bound parameters: building such a statement costs ten times more than running it (PIXm's
# hot path; see BENCHMARKS.md, Feeds).
_BY_IDENTIFIER = _cross_reference_query(union(
    select(SourceRecord.regional_patient_id).where(SourceRecord.namespace == bindparam("system"),
                                                   SourceRecord.local_id == bindparam("value")),
    select(SourceRecord.regional_patient_id)
    .join(SourceIdentifier, SourceIdentifier.source_record_id == SourceRecord.id)
    .where(SourceIdentifier.system == bindparam("system"), SourceIdentifier.value == bindparam("value"), CURRENT)))
_BY_NHS_NUMBER = _cross_reference_query(select(SourceRecord.regional_patient_id).where(
    SourceRecord.nhs_number == bindparam("value"), SourceRecord.nhs_number_valid.is_(True)))
_BY_REGIONAL_ID = _cross_reference_query(select(RegionalPatient.id.label("regional_patient_id")).where(
    RegionalPatient.id.in_(bindparam("ids", expanding=True))))


def _cross_references(session: Session, domain: str, value: str) -> list[Any]:
    """Every active source record of the regional patients known by ``domain|value``, with each record's further
    identifiers, in one query.

    Records always point at a surviving regional patient (a merge moves them); only a query by a regional id may
    name a retired one, which :func:`survivors` follows.
    """
    if domain == REGIONAL_ID_SYSTEM:
        return list(session.execute(_BY_REGIONAL_ID, {"ids": survivors(session, [value])}))
    if domain == NHS_NUMBER_SYSTEM:
        return list(session.execute(_BY_NHS_NUMBER, {"value": normalise_nhs_number(value) or "-"}))
    return list(session.execute(_BY_IDENTIFIER, {"system": domain, "value": value}))


def survivors(session: Session, regional_ids: Sequence[str], hops: int = 20) -> list[str]:
    """``regional_ids`` with each regional patient retired by a merge replaced by the one it was merged into."""
    current = list(dict.fromkeys(regional_ids))
    for _ in range(hops):
        if not current:
            return []
        rows = {rid: (status, into) for rid, status, into in session.execute(
            select(RegionalPatient.id, RegionalPatient.status, RegionalPatient.merged_into_id)
            .where(RegionalPatient.id.in_(current)))}
        following = [rows[rid][1] if rows[rid][0] == "retired" and rows[rid][1] else rid
                     for rid in current if rid in rows]
        following = list(dict.fromkeys(following))
        if following == current:
            return current
        current = following
    return current


# --- references -------------------------------------------------------------------------------------------------

def resolve_patient_reference(session: Session, trusts: TrustRegistry, reference: str, *,
                              client: str = "") -> str | None:
    """The regional patient a Patient reference names (``Patient/RP…``, ``Patient/src-<n>``, a client's id).

    For the imaging and dedupe adapters: a Bundle's references to its own Patients are rewritten to ids this
    resolves.
    """
    tail = reference.rstrip("/").split("/")
    if len(tail) < 2 or tail[-2] != "Patient":
        return None
    resource_id = tail[-1]
    if is_regional_id(resource_id):
        found = survivors(session, [resource_id])
        return found[0] if found else None
    record_found = find_source_record(session, resource_id, client)
    if record_found is None or not record_found.regional_patient_id:
        return None
    found = survivors(session, [record_found.regional_patient_id])
    return found[0] if found else None


__all__ = [
    "MAX_COUNT", "SEARCH_PARAMETERS", "conditional_matches", "find_source_record", "identifiers_of", "known_domain",
    "match_patients", "pix_query", "read_patient_resource", "regional_views", "resolve_patient_reference",
    "search_patients", "survivors", "unsupported_parameters",
]
