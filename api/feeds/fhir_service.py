"""FHIR into the index: Patient writes and Bundles (:func:`process_resource`); reads are in `mpi.fhir_queries`.

:func:`process_resource` serves ``priorscan ingest`` (a file's resource, Bundle or NDJSON line) and ``POST /fhir``:
a Patient goes to the patient index (source kind ``fhir``); ImagingStudy and ServiceRequest go to the imaging and
dedupe adapters (through their fronts, imported when first needed); other types are refused with a reason. A batch
or collection Bundle applies each entry on its own; a transaction applies all its entries in one database
transaction or none. References between entries (``urn:uuid:`` full URLs, ``Patient/<id>`` of the sender) are
rewritten to the Patients created, so an ImagingStudy can name a Patient of the same Bundle
(:func:`mpi.resolve_patient_reference` turns such a reference into a regional patient).

Errors are :class:`~priorscan.errors.PriorscanError` codes; :data:`priorscan.errors.HTTP_STATUS` gives each its status
and OperationOutcome issue code. Every write is audited with the regional patient it touched.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from mpi import (
    FHIR_ID,
    FHIR_ID_SYSTEM,
    PatientIndex,
    RecordKey,
    SourceRecord,
    conditional_matches,
    find_source_record,
    identifiers_of,
    is_regional_id,
    parse_source_resource_id,
    read_patient,
    source_patient,
    source_resource_id,
)
from priorscan.audit import Agent, record
from priorscan.errors import FHIRError, ForbiddenError, NotFoundError, PriorscanError, http_status
from priorscan.outcome import ItemOutcome
from priorscan.tables import DeadLetter
from priorscan.trusts import TrustRegistry
from priorscan.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from api.context import AppContext

log = logging.getLogger(__name__)

#: Resource types other packages apply → (package front, function), imported when first needed.
ADAPTERS: dict[str, tuple[str, str]] = {
    "ImagingStudy": ("imaging", "apply_imaging_study"),
    "ServiceRequest": ("dedupe", "apply_service_request"),
}
BUNDLE_TYPES = ("batch", "transaction", "collection")
METHOD_ORDER = {"DELETE": 0, "POST": 1, None: 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
#: Bundle request methods whose entries carry no resource (FHIR R4 invariant bundle-7).
_NO_RESOURCE_METHODS = frozenset({"GET", "HEAD", "DELETE"})
ATTEMPTS = 3


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


class EntryRejected(Exception):
    """An adapter refused a resource; its :class:`ItemOutcome` says why."""

    def __init__(self, outcome: ItemOutcome) -> None:
        super().__init__(outcome.reason or "rejected")
        self.outcome = outcome


# --- units of work ----------------------------------------------------------------------------------------------

def run_unit(context: AppContext, kind: str, work: Callable[[Session], ItemOutcome]) -> ItemOutcome:
    """Run ``work`` in its own unit of work, committed when it returns; refusals and faults become outcomes.

    A race or lock runs the whole unit again, up to :data:`ATTEMPTS` times (:func:`priorscan.unit_of_work`); a store
    busy on every attempt is refused with ``busy`` (503).
    """
    try:
        return unit_of_work(context.sessions, write=True, attempts=ATTEMPTS).run(work)
    except EntryRejected as exc:
        return exc.outcome
    except PriorscanError as exc:
        return rejected(kind, exc)
    except Exception as exc:  # a fault of ours: name its type only (its text may quote patient data)
        log.error("FHIR %s: internal error (%s)", kind, type(exc).__name__)
        log.debug("internal error applying a FHIR resource", exc_info=exc)
        return ItemOutcome.rejected(kind, f"internal error ({type(exc).__name__})", "internal",
                                    status=_status_line(500))


def rejected(kind: str, exc: PriorscanError) -> ItemOutcome:
    status, _ = http_status(exc.code)
    return ItemOutcome.rejected(kind, exc.message, exc.code, status=_status_line(status))


def _dead_letter(context: AppContext, payload: Mapping[str, Any], outcome: ItemOutcome, *, channel: str,
                 source: str | None) -> None:
    try:
        with unit_of_work(context.sessions, write=True) as session:
            session.add(DeadLetter(channel=channel[:40], content_type="fhir-json", source=(source or "")[:500] or None,
                                   error_code=(outcome.error_code or "fhir")[:60], reason=outcome.reason or "rejected",
                                   raw=json.dumps(payload, separators=(",", ":"))))
    except Exception as exc:
        log.error("FHIR %s: could not keep the refused resource (%s)", outcome.kind, type(exc).__name__)


def process_resource(context: AppContext, resource: dict[str, Any], *, agent: Agent, source: str | None = None,
                     channel: str = "ingest", keep_rejected: bool = True,
                     base: str = "") -> list[ItemOutcome]:
    """Apply one FHIR resource (or every entry of a Bundle) and say what became of each.

    Parameters
    ----------
    context
        The opened store, settings and trusts.
    resource
        A Patient, ImagingStudy, ServiceRequest, or a Bundle of type batch, transaction or collection.
    agent
        Who sent it; its name is the client namespace of Patients keyed by their ``id``.
    source
        The file or peer it came from (never patient data), kept with a dead letter.
    channel, keep_rejected
        Refused items are kept as dead letters on ``channel`` unless ``keep_rejected`` is false (``POST /fhir``
        answers the client instead).
    base
        The FHIR base URL, for full URLs in responses.

    Returns
    -------
    list[ItemOutcome]
        One per resource; ``detail`` holds ``status`` (``"201 Created"``), ``location``, ``resource`` (Patients)
        and ``regionalPatientId`` when accepted.
    """
    if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
        return process_bundle(context, resource, agent=agent, source=source, channel=channel,
                              keep_rejected=keep_rejected, base=base).outcomes
    kind = str(resource.get("resourceType") if isinstance(resource, dict) else "FHIR")
    outcome = run_unit(context, kind, lambda session: apply_resource(session, context.trusts, resource, agent=agent,
                                                                     method=None))
    if not outcome.accepted and keep_rejected:
        _dead_letter(context, resource, outcome, channel=channel, source=source)
    return [outcome]


def apply_resource(session: Session, trusts: TrustRegistry, resource: Mapping[str, Any], *, agent: Agent,
                   method: str | None, url_id: str | None = None, if_match: str | None = None,
                   if_none_exist: str | None = None, may_create: bool = True) -> ItemOutcome:
    """Apply one resource within the caller's transaction (``method`` None: a file's resource; POST; PUT).

    ``if_match`` (a PUT's ``If-Match`` / ``request.ifMatch``), ``if_none_exist`` (a POST's ``If-None-Exist`` /
    ``request.ifNoneExist``) and ``may_create`` (whether the caller holds ``system/Patient.c``, which an update as
    create needs) are served for Patients (:func:`write_patient`)."""
    kind = resource.get("resourceType") if isinstance(resource, Mapping) else None
    if kind == "Patient":
        mode = "update" if method == "PUT" else "create" if method == "POST" else "ingest"
        return write_patient(session, trusts, resource, agent=agent, mode=mode, resource_id=url_id,
                             if_match=if_match, if_none_exist=if_none_exist, may_create=may_create)
    if not isinstance(kind, str) or kind not in ADAPTERS:
        raise FHIRError(f"resource type {kind if isinstance(kind, str) else '(none)'} is not supported here",
                        code="fhir.unsupported")
    if method == "PUT":
        raise FHIRError(f"update of {kind} is not supported; send it with POST", code="fhir.unsupported")
    front, function_name = ADAPTERS[kind]
    adapter = getattr(importlib.import_module(front), function_name)
    outcome: ItemOutcome = adapter(session, trusts, dict(resource), agent=agent)
    if not outcome.accepted:
        status, _ = http_status(outcome.error_code)
        outcome.detail.setdefault("status", _status_line(status))
        raise EntryRejected(outcome)
    # Bundle.entry.response: 201 with the location of what was created, 200 for a study (or report) re-sent with its
    # UID (an update); a client maps each urn:uuid to the location it is given
    outcome.detail.setdefault("status", _status_line(200 if outcome.detail.get("created") is False else 201))
    if outcome.detail.get("id"):
        outcome.detail.setdefault("location", f"{kind}/{outcome.detail['id']}")
    return outcome


# --- Patient writes -------------------------------------------------------------------------------------------

def write_patient(session: Session, trusts: TrustRegistry, resource: Mapping[str, Any], *, agent: Agent,
                  mode: str, resource_id: str | None = None, if_match: str | None = None,
                  if_none_exist: str | None = None, may_create: bool = True) -> ItemOutcome:
    """Create or update the source record a Patient describes (``mode`` create, update or ingest).

    An update names the record by id (``src-<n>``, or an id the client chose: update as create); a create keys it
    by its identifiers (the server assigns an id when it has none) and is refused (``fhir.duplicate``, 409) when
    that key names a record that exists: a create never changes a record; an ingested Patient (a file of the
    operator's) is keyed also by its own id and updates a record it names.

    ``if_match`` (an update's ``If-Match``, ``W/"<version>"``): the update is applied only to that version of the
    record, else refused (``fhir.version-conflict``, 412), so that a client that read version 2 cannot silently
    overwrite version 3 that another sender wrote meanwhile (H-ID-56). ``if_none_exist`` (a create's
    ``If-None-Exist`` query, FHIR conditional create): a create is not applied when one source record meets the query
    (200 with that Patient), is refused when several do (``fhir.multiple-matches``, 412), and goes ahead when none
    does.

    ``may_create`` false (the caller holds ``system/Patient.u`` but not ``.c``): an update whose id names no record,
    which would create one (update as create), is refused (``auth.forbidden``, 403) before anything is written
    (H-SEC-20): the update scope changes records that exist, it does not add patients.
    """
    client = agent.name
    existing: SourceRecord | None = None
    if mode == "create" and if_none_exist is not None:
        found = conditional_matches(session, trusts, if_none_exist)
        if len(found) > 1:
            raise FHIRError("conditional create: more than one Patient meets If-None-Exist",
                            code="fhir.multiple-matches")
        if found:
            return _existing_patient(session, trusts, found[0], agent=agent)
    if mode == "update":
        assert resource_id is not None
        if is_regional_id(resource_id):
            raise FHIRError("a regional Patient is derived from its source records; update a source record "
                            "(see its link)", code="fhir.read-only")
        # FHIR R4 update: the body SHALL carry the id of the URL; without one the server SHALL answer 400
        if resource.get("id") is None:
            raise FHIRError("an update needs Patient.id, the id in the URL", code="fhir.id-mismatch")
        if resource.get("id") != resource_id:
            raise FHIRError("Patient.id does not match the id in the URL", code="fhir.id-mismatch")
        if not FHIR_ID.match(resource_id):
            raise FHIRError("the id is not a valid FHIR id", code="fhir.invalid")
        existing = find_source_record(session, resource_id, client)
        if existing is None and parse_source_resource_id(resource_id) is not None:
            raise NotFoundError("no Patient with that id (ids of the form src-<n> are assigned by the server)")
        if existing is None and not may_create:
            raise ForbiddenError("no Patient has that id, and an update that creates one needs scope "
                                 "system/Patient.c")
        if if_match is not None and (existing is None or _etag_version(if_match) != str(existing.version)):
            raise FHIRError("If-Match does not name the current version of the Patient (read it again, then update)",
                            code="fhir.version-conflict")
    own_id = resource.get("id") if mode == "ingest" and isinstance(resource.get("id"), str) else None
    parsed = read_patient(resource, trusts, client=client, resource_id=resource_id if mode == "update" and
                          existing is None else own_id)
    demographics = parsed.demographics
    others = list(demographics.other_identifiers)
    if existing is not None:  # the record keeps its key; a different key identifier becomes a further identifier
        if demographics.local_id and (demographics.namespace, demographics.local_id) != (existing.namespace,
                                                                                        existing.local_id):
            others.append((demographics.namespace, demographics.local_id))
        demographics = replace(demographics, namespace=existing.namespace, local_id=existing.local_id,
                               trust_ods=demographics.trust_ods or existing.trust_ods)
    elif not demographics.local_id:
        demographics = replace(demographics, local_id=uuid.uuid4().hex)
    if mode == "update" and parse_source_resource_id(resource_id or "") is None:
        others.append((FHIR_ID_SYSTEM, resource_id or ""))
    demographics = replace(demographics, other_identifiers=list(dict.fromkeys(others)))
    index = PatientIndex(session, trusts)
    created = index.get_record(RecordKey(demographics.namespace, demographics.local_id)) is None
    if mode == "create" and not created:
        # a create never changes a record: that takes an update (PUT, scope .u); the record's id is not disclosed
        raise FHIRError("a Patient with this identifier exists already; a create never changes it (update the "
                        "existing Patient with PUT)", code="fhir.duplicate")
    result = index.upsert(demographics, event=f"fhir-{mode}", actor=f"fhir:{client}", source_kind="fhir")
    stored = session.get(SourceRecord, result.source_record_id)
    assert stored is not None
    shown = resource_id if mode == "update" and resource_id else source_resource_id(stored.id)
    old: dict[int, list[tuple[str, str]]] = {}
    current = identifiers_of(session, [stored.id], old=old).get(stored.id, [])
    rendered = source_patient(stored, current, trusts, resource_id=shown, old=old.get(stored.id, []))
    record(session, agent, action="C" if created else "U", event_type="rest", subtype=f"Patient {mode}",
           regional_patient_id=result.regional_id or None, entity=f"Patient/{shown}")
    return ItemOutcome.ok("Patient", status=_status_line(201 if created else 200), id=shown, sourceRecordId=stored.id,
                          location=f"Patient/{shown}/_history/{stored.version}", version=str(stored.version),
                          resource=rendered, regionalPatientId=result.regional_id, applied=result.applied)


def _etag_version(etag: str) -> str:
    """The version an ``If-Match`` names: ``W/"3"``, ``"3"`` or ``3`` → ``3``."""
    value = etag.strip()
    if value[:2].upper() == "W/":
        value = value[2:]
    return value.strip().strip('"')


def _existing_patient(session: Session, trusts: TrustRegistry, record_id: int, *, agent: Agent) -> ItemOutcome:
    """The answer to a conditional create that found its Patient: 200 with the record as it is (nothing written)."""
    stored = session.get(SourceRecord, record_id)
    assert stored is not None
    shown = source_resource_id(stored.id)
    old: dict[int, list[tuple[str, str]]] = {}
    current = identifiers_of(session, [stored.id], old=old).get(stored.id, [])
    rendered = source_patient(stored, current, trusts, resource_id=shown, old=old.get(stored.id, []))
    record(session, agent, action="R", event_type="rest", subtype="Patient conditional create",
           regional_patient_id=stored.regional_patient_id or None, entity=f"Patient/{shown}")
    return ItemOutcome.ok("Patient", status=_status_line(200), id=shown, sourceRecordId=stored.id,
                          location=f"Patient/{shown}/_history/{stored.version}", version=str(stored.version),
                          resource=rendered, regionalPatientId=stored.regional_patient_id, applied=False)


# --- Bundles ------------------------------------------------------------------------------------------------------

@dataclass
class BundleResult:
    """What became of a Bundle: one outcome per entry, and the response Bundle (or OperationOutcome) to send."""

    outcomes: list[ItemOutcome]
    response: dict[str, Any]
    status: int = 200


@dataclass
class _Entry:
    position: int
    resource: dict[str, Any]
    method: str | None
    url_id: str | None
    full_url: str | None
    request_only: dict[str, Any] | None = None  # the entry as sent, when it carries no resource (GET, DELETE)
    if_match: str | None = None  # request.ifMatch
    if_none_exist: str | None = None  # request.ifNoneExist

    @property
    def kind(self) -> str:
        """The entry's resource type: the resource's, else the first segment of request.url."""
        if self.resource.get("resourceType"):
            return str(self.resource["resourceType"])
        request = (self.request_only or {}).get("request")
        url = str(request.get("url", "")) if isinstance(request, Mapping) else ""
        first = url.lstrip("/").split("?")[0].split("/")[0]
        return first if first.isalpha() else "FHIR"

    @property
    def payload(self) -> dict[str, Any]:
        """What a dead letter keeps of the entry."""
        return self.request_only if self.request_only is not None else self.resource


def _entries(bundle: Mapping[str, Any]) -> list[_Entry]:
    kind = bundle.get("type")
    if kind not in BUNDLE_TYPES:
        raise FHIRError(f"Bundle.type must be one of {', '.join(BUNDLE_TYPES)}", code="fhir.invalid")
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        raise FHIRError("Bundle.entry must be a list", code="fhir.invalid")
    entries = []
    for position, raw in enumerate(raw_entries):
        if not isinstance(raw, Mapping):
            raise FHIRError(f"Bundle.entry[{position}] is not an object", code="fhir.invalid")
        request = raw.get("request") if isinstance(raw.get("request"), Mapping) else None
        method = str(request.get("method", "")).upper() if request and kind != "collection" else None
        if kind != "collection" and not method:
            raise FHIRError(f"Bundle.entry[{position}].request.method is required in a {kind}", code="fhir.invalid")
        resource = raw.get("resource")
        if not isinstance(resource, Mapping):
            # R4 (bundle-7): GET, HEAD and DELETE entries carry no resource. Such an entry is valid and is refused
            # on its own as not supported (_apply_entry), never the whole Bundle as invalid.
            if method not in _NO_RESOURCE_METHODS:
                raise FHIRError(f"Bundle.entry[{position}] has no resource", code="fhir.invalid")
            resource = {}
        path = (str(request.get("url", "")) if request else "").split("?")[0].rstrip("/").split("/")
        url_id = path[-1] if method == "PUT" and len(path) >= 2 and path[-2] == resource.get(
            "resourceType") else None
        conditions = [request.get(name) if request and isinstance(request.get(name), str) else None
                      for name in ("ifMatch", "ifNoneExist")]
        entries.append(_Entry(position, dict(resource), method, url_id,
                              raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None,
                              dict(raw) if not resource else None, *conditions))
    return entries


#: What a conditional create needs besides the create scope: it searches, and answers with the Patient it finds.
CONDITIONAL_CREATE_SCOPE = "system/Patient.rs"


def bundle_scopes(bundle: Mapping[str, Any]) -> set[str]:
    """The SMART scopes a Bundle's entries need (create, or update for a PUT; read and search for a conditional
    create, whose answer is the Patient its query found: H-SEC-15)."""
    needed = set()
    for raw in bundle.get("entry") or []:
        if isinstance(raw, Mapping) and isinstance(raw.get("resource"), Mapping):
            kind = raw["resource"].get("resourceType")
            request = raw.get("request")
            request = request if isinstance(request, Mapping) else {}
            if isinstance(kind, str) and kind.isalpha():
                needed.add(f"system/{kind}.{'u' if str(request.get('method', '')).upper() == 'PUT' else 'c'}")
                if request.get("ifNoneExist") is not None:
                    needed.add(CONDITIONAL_CREATE_SCOPE)
    return needed


def _rewrite_references(value: Any, references: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item in references:
                out[key] = references[item]
            else:
                out[key] = _rewrite_references(item, references)
        return out
    if isinstance(value, list):
        return [_rewrite_references(item, references) for item in value]
    return value


def _apply_entry(session: Session, trusts: TrustRegistry, entry: _Entry, references: dict[str, str], *,
                 agent: Agent, may_create: bool = True) -> ItemOutcome:
    resource = _rewrite_references(copy.deepcopy(entry.resource), references)
    if entry.method not in (None, "POST", "PUT"):
        raise FHIRError(f"{entry.method} is not supported in a Bundle", code="fhir.unsupported")
    if entry.method == "PUT" and not entry.url_id:
        raise FHIRError("a PUT entry needs request.url Type/id", code="fhir.invalid")
    outcome = apply_resource(session, trusts, resource, agent=agent, method=entry.method, url_id=entry.url_id,
                             if_match=entry.if_match, if_none_exist=entry.if_none_exist, may_create=may_create)
    if outcome.kind == "Patient" and outcome.accepted:  # later entries name it by the id every adapter resolves
        target = f"Patient/{source_resource_id(int(outcome.detail['sourceRecordId']))}"  # type: ignore[call-overload]
        if entry.full_url:
            references[entry.full_url] = target
        own_id = entry.resource.get("id")
        if isinstance(own_id, str):
            references[f"Patient/{own_id}"] = target
    return outcome


def _response_entry(outcome: ItemOutcome, base: str) -> dict[str, Any]:
    status = str(outcome.detail.get("status") or (_status_line(201) if outcome.accepted else _status_line(400)))
    if not outcome.accepted:
        _, issue = http_status(outcome.error_code)
        return {"response": {"status": status, "outcome": {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": issue, "diagnostics": outcome.reason or "rejected"}]}}}
    response: dict[str, Any] = {"status": status}
    if outcome.detail.get("location"):
        response["location"] = str(outcome.detail["location"])
    if outcome.detail.get("version"):
        response["etag"] = f'W/"{outcome.detail["version"]}"'
    entry: dict[str, Any] = {"response": response}
    if isinstance(outcome.detail.get("resource"), dict):
        entry["fullUrl"] = f"{base}/{outcome.kind}/{outcome.detail['id']}"
        entry["resource"] = outcome.detail["resource"]
    return entry


def process_bundle(context: AppContext, bundle: Mapping[str, Any], *, agent: Agent, source: str | None = None,
                   channel: str = "ingest", keep_rejected: bool = True, base: str = "",
                   may_create: bool = True) -> BundleResult:
    """Apply a batch, transaction or collection Bundle (see :func:`process_resource`; ``may_create``: see
    :func:`write_patient`)."""
    try:
        entries = _entries(bundle)
    except FHIRError as exc:
        outcome = rejected("Bundle", exc)
        if keep_rejected:
            _dead_letter(context, bundle, outcome, channel=channel, source=source)
        return BundleResult([outcome], _operation_outcome(outcome), http_status(exc.code)[0])
    ordered = sorted(entries, key=lambda e: (METHOD_ORDER.get(e.method, 3),
                                             e.resource.get("resourceType") != "Patient", e.position))
    references: dict[str, str] = {}
    if bundle.get("type") == "transaction":
        return _transaction(context, bundle, ordered, references, agent=agent, source=source, channel=channel,
                            keep_rejected=keep_rejected, base=base, may_create=may_create)
    results: dict[int, ItemOutcome] = {}
    for entry in ordered:
        outcome = run_unit(context, entry.kind, lambda session, e=entry: _apply_entry(  # type: ignore[misc]
            session, context.trusts, e, references, agent=agent, may_create=may_create))
        if not outcome.accepted and keep_rejected:
            _dead_letter(context, entry.payload, outcome, channel=channel, source=source)
        results[entry.position] = outcome
    outcomes = [results[e.position] for e in entries]
    return BundleResult(outcomes, {"resourceType": "Bundle", "type": "batch-response",
                                   "entry": [_response_entry(o, base) for o in outcomes]})


def _transaction(context: AppContext, bundle: Mapping[str, Any], ordered: list[_Entry], references: dict[str, str],
                 *, agent: Agent, source: str | None, channel: str, keep_rejected: bool, base: str,
                 may_create: bool = True) -> BundleResult:
    failed: list[tuple[_Entry, ItemOutcome]] = []

    def apply_all(session: Session) -> ItemOutcome:
        results: dict[int, ItemOutcome] = {}
        references.clear()
        failed.clear()
        for entry in ordered:
            kind = entry.kind
            try:
                results[entry.position] = _apply_entry(session, context.trusts, entry, references, agent=agent,
                                                       may_create=may_create)
            except EntryRejected as exc:
                failed.append((entry, exc.outcome))
            except PriorscanError as exc:
                failed.append((entry, rejected(kind, exc)))
            if failed:
                raise EntryRejected(failed[0][1])
        return ItemOutcome.ok("Bundle", results=results)

    outcome = run_unit(context, "Bundle", apply_all)
    if outcome.accepted:
        results: dict[int, ItemOutcome] = outcome.detail["results"]  # type: ignore[assignment]
        outcomes = [results[e.position] for e in sorted(ordered, key=lambda e: e.position)]
        return BundleResult(outcomes, {"resourceType": "Bundle", "type": "transaction-response",
                                       "entry": [_response_entry(o, base) for o in outcomes]})
    failure = failed[0][1] if failed else outcome
    where = f" (entry {failed[0][0].position})" if failed else ""
    reason = f"transaction rolled back{where}: {failure.reason}"
    first = ItemOutcome.rejected(failure.kind, reason, failure.error_code or "fhir", status=failure.detail.get(
        "status", _status_line(http_status(failure.error_code)[0])))
    others = [ItemOutcome.rejected(e.kind,
                                   f"not applied: the transaction failed{where}", failure.error_code or "fhir")
              for e in sorted(ordered, key=lambda e: e.position) if not failed or e is not failed[0][0]]
    if keep_rejected:
        _dead_letter(context, bundle, first, channel=channel, source=source)
    status = int(str(first.detail.get("status", "400")).split()[0])
    return BundleResult([first, *others], _operation_outcome(first), status)


def _operation_outcome(outcome: ItemOutcome) -> dict[str, Any]:
    _, issue = http_status(outcome.error_code)
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": issue, "diagnostics": outcome.reason or "rejected"}]}


__all__ = ["CONDITIONAL_CREATE_SCOPE", "BundleResult", "apply_resource", "bundle_scopes", "process_bundle",
           "process_resource", "write_patient"]
