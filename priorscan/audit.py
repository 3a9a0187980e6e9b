"""The audit trail: every access to or change of patient data, exported as FHIR AuditEvent (IHE BALP).

Audit rows never hold names or NHS numbers: the patient is named by regional id, the entity by resource reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from priorscan.logs import correlation
from priorscan.tables import AuditEvent

if TYPE_CHECKING:
    from priorscan.cli import CliContext

AUDIT_SOURCE = "priorscan"
_OUTCOME = {"0": "success", "4": "minor failure", "8": "serious failure", "12": "major failure"}


@dataclass(frozen=True)
class Agent:
    """Who acts: an API client, a signed-in user, a feed or the system itself."""

    kind: str  # client | user | feed | system
    name: str
    address: str | None = None


SYSTEM = Agent("system", "priorscan")


def record(session: Session, agent: Agent, *, action: str, event_type: str, subtype: str,
           regional_patient_id: str | None = None, entity: str | None = None, outcome: str = "0",
           detail: dict[str, Any] | None = None) -> AuditEvent:
    """Add one audit event to ``session`` (committed with the work it describes)."""
    event = AuditEvent(action=action, event_type=event_type, subtype=subtype, outcome=outcome, agent_kind=agent.kind,
                       agent_name=agent.name, source_address=agent.address, regional_patient_id=regional_patient_id,
                       entity=entity, detail=_correlated(detail))
    session.add(event)
    return event


def record_patients_shown(session: Session, agent: Agent, *, event_type: str, subtype: str,
                          patients: Iterable[str | None], entity: str | None = None,
                          detail: dict[str, Any] | None = None) -> int:
    """One read event per regional patient a list showed (one without a patient when it showed none), so that "who
    looked at my record" finds every list that showed it; the number of events added. The events are inserted now,
    in one multi-row statement (a list shows up to a few hundred patients), and committed with the work."""
    from priorscan.writes import insert_many

    shown: list[str | None] = [*sorted({p for p in patients if p})] or [None]
    return insert_many(session, AuditEvent, [
        audit_row(agent, action="R", event_type=event_type, subtype=subtype, regional_patient_id=regional_id,
                  entity=entity, detail=detail) for regional_id in shown])


def audit_row(agent: Agent, *, action: str, event_type: str, subtype: str, regional_patient_id: str | None = None,
              entity: str | None = None, outcome: str = "0", detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``audit_event`` columns of one event, as :func:`record` would set them (for plain inserts, one row or
    many; ``recorded_at`` is left to the column's default)."""
    return {"action": action, "event_type": event_type, "subtype": subtype, "outcome": outcome,
            "agent_kind": agent.kind, "agent_name": agent.name, "source_address": agent.address,
            "regional_patient_id": regional_patient_id, "entity": entity, "detail": _correlated(detail)}


def _correlated(detail: dict[str, Any] | None) -> dict[str, Any] | None:
    """``detail`` with the request or message id bound now (:mod:`priorscan.logs`), which ties the event to its
    log lines and to the ACK or response it went with."""
    ids = correlation()
    if not ids:
        return detail
    return {**(detail or {}), **ids}


def record_now(session: Session, agent: Agent, *, action: str, event_type: str, subtype: str,
               regional_patient_id: str | None = None, entity: str | None = None, outcome: str = "0",
               detail: dict[str, Any] | None = None) -> None:
    """Insert one audit event now on the session's connection, as :func:`record` would add it.

    For request paths where the ORM's flush at commit costs more than the insert; committed with the same work.
    """
    from priorscan.writes import insert_row

    insert_row(session, AuditEvent, audit_row(agent, action=action, event_type=event_type, subtype=subtype,
                                              regional_patient_id=regional_patient_id, entity=entity,
                                              outcome=outcome, detail=detail))


def to_fhir(event: AuditEvent) -> dict[str, Any]:
    """One audit row as a FHIR R4 AuditEvent resource (a plain dict)."""
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(event.id),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": event.event_type},
        "subtype": [{"system": "urn:priorscan:audit-subtype", "code": event.subtype}],
        "action": event.action,
        "recorded": event.recorded_at.isoformat(),
        "outcome": event.outcome,
        "agent": [{
            "type": {"text": event.agent_kind},
            "who": {"display": event.agent_name},
            "requestor": event.agent_kind in ("user", "client"),
            **({"network": {"address": event.source_address, "type": "2"}} if event.source_address else {}),
        }],
        "source": {"observer": {"display": AUDIT_SOURCE}},
    }
    if event.outcome != "0":
        resource["outcomeDesc"] = _OUTCOME.get(event.outcome, "failure")
    entities: list[dict[str, Any]] = []
    if event.regional_patient_id:
        entities.append({"what": {"reference": f"Patient/{event.regional_patient_id}"},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
                         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}})
    if event.entity:
        entities.append({"what": {"reference": event.entity} if "/" in event.entity else {"display": event.entity}})
    if event.detail:
        entities.append({"detail": [{"type": "priorscan", "valueString": json.dumps(event.detail, sort_keys=True)}]})
    if entities:
        resource["entity"] = entities
    return resource


def run_audit_export(args: argparse.Namespace, ctx: CliContext) -> int:
    from priorscan.db import session_factory
    from priorscan.unit_of_work import unit_of_work

    with unit_of_work(session_factory(ctx.engine)) as session:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if args.patient:
            query = query.where(AuditEvent.regional_patient_id == args.patient)
        for event in session.scalars(query).yield_per(1000):
            sys.stdout.write(json.dumps(to_fhir(event), separators=(",", ":")) + "\n")
        record(session, Agent("user", "cli"), action="E", event_type="export", subtype="audit-export",
               regional_patient_id=args.patient)
    return 0
