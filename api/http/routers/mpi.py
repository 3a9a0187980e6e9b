"""The master patient index over HTTP for integration teams (scope ``priorscan/mpi-review``).

- ``GET /api/v1/mpi/review?limit=&offset=&order=risk|oldest`` → open possible matches, the likeliest missed link
  first, each with both records, the fields they differ on, and the explanation (per-field weights and levels,
  the waterfall from the prior to the probability, the model version, the rule that stopped an automatic link).
- ``GET /api/v1/mpi/review/{id}`` → one review item (open or settled), the same shape.
- ``POST /api/v1/mpi/review/{id}`` ``{"decision": "match" | "no-match"}``: a person's decision; it sticks.
- ``POST /api/v1/mpi/link`` and ``/unlink`` ``{"a": {"system", "value"}, "b": {...}}``: the same person / not.
- ``POST /api/v1/mpi/unmerge`` ``{"survivor": {...}, "retired": {...}}``: undo a merge.
- ``GET /api/v1/mpi/patients/{regional_id}/history``: every link change with who or what made it and why.

Every call is audited. Identifiers are ``system|value`` as sent by feeds (a trust's ODS code or alias works too).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.http.deps import ContextDep, Principal, SessionDep, WriteSessionDep, require
from api.http.errors import http_error
from mpi import QUEUE_ORDERS, LinkOutcome, PatientIndex, RecordKey, link_history, review_item, review_queue
from priorscan.audit import record, record_patients_shown
from priorscan.errors import PriorscanError

MPI_REVIEW = "priorscan/mpi-review"

router = APIRouter(prefix="/api/v1/mpi", tags=["mpi"])


class IdentifierIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    system: str = Field(min_length=1, max_length=300)
    value: str = Field(min_length=1, max_length=200)


class PairIn(BaseModel):
    a: IdentifierIn
    b: IdentifierIn
    comment: str | None = Field(default=None, max_length=2000)


class UnmergeIn(BaseModel):
    survivor: IdentifierIn
    retired: IdentifierIn


class DecisionIn(BaseModel):
    decision: Literal["match", "no-match"]
    comment: str | None = Field(default=None, max_length=2000)


class OutcomeOut(BaseModel):
    sourceRecordId: int
    regionalId: str
    linkState: str
    score: float | None


class ReviewListOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    total: int
    items: list[dict[str, Any]]


class HistoryOut(BaseModel):
    regionalId: str
    events: list[dict[str, Any]]


def _key(index: PatientIndex, identifier: IdentifierIn) -> RecordKey:
    return RecordKey(index.namespace_for(identifier.system), identifier.value.strip())


def _out(outcome: LinkOutcome) -> dict[str, Any]:
    return {"sourceRecordId": outcome.source_record_id, "regionalId": outcome.regional_id,
            "linkState": outcome.link_state, "score": outcome.score}


#: A review item's id: a positive 64-bit integer (a larger one is 422, never an overflow in the database driver).
ReviewItemId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]


def _patients_of(items: list[dict[str, Any]]) -> list[str | None]:
    """The regional patients a review item shows: those of its record and of its candidate."""
    return [(item.get(side) or {}).get("regionalId") for item in items for side in ("record", "candidate")]


def _actor(principal: Principal) -> str:
    return f"{principal.kind}:{principal.name}"


@router.get("/review", response_model=ReviewListOut)
def get_review_queue(session: SessionDep, principal: Principal = Depends(require(MPI_REVIEW)),
                     limit: int = Query(default=50, ge=1, le=500),
                     offset: int = Query(default=0, ge=0, le=2**31 - 1),
                     order: str = Query(default="risk", pattern="^(" + "|".join(QUEUE_ORDERS) + ")$")
                     ) -> dict[str, Any]:
    """Open possible matches (the likeliest missed link first, or the oldest), with their explanation."""
    total, items = review_queue(session, limit=limit, offset=offset, order=order)
    # one event per patient shown (both records of every item): "who looked at my record" finds the queue too
    record_patients_shown(session, principal.agent, event_type="rest", subtype="mpi-review-queue",
                          patients=_patients_of(items), detail={"items": len(items), "total": total})
    session.commit()
    return {"total": total, "items": items}


@router.get("/review/{item_id}", response_model=dict[str, Any])
def get_review_item(item_id: ReviewItemId, session: SessionDep,
                    principal: Principal = Depends(require(MPI_REVIEW))) -> dict[str, Any]:
    """One review item with both records, their differences and the waterfall of the model's weights."""
    item = review_item(session, item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such review item")
    record_patients_shown(session, principal.agent, event_type="rest", subtype="mpi-review-item",
                          patients=_patients_of([item]), entity=f"review/{item_id}")
    session.commit()
    return item


@router.post("/review/{item_id}", response_model=OutcomeOut)
def decide_review(item_id: ReviewItemId, body: DecisionIn, ctx: ContextDep, session: WriteSessionDep,
                  principal: Principal = Depends(require(MPI_REVIEW))) -> dict[str, Any]:
    """Settle a possible match; the decision sticks through later updates and relinks."""
    index = PatientIndex(session, ctx.trusts)
    try:
        outcome = index.resolve_review(item_id, body.decision, actor=_actor(principal))
    except PriorscanError as exc:
        raise http_error(exc) from exc
    record(session, principal.agent, action="U", event_type="rest", subtype="mpi-review-decision",
           regional_patient_id=outcome.regional_id, entity=f"review/{item_id}",
           detail={"decision": body.decision})
    session.commit()
    return _out(outcome)


def _pair_operation(operation: str, body: PairIn, ctx: ContextDep, session: Session,
                    principal: Principal) -> dict[str, Any]:
    index = PatientIndex(session, ctx.trusts)
    try:
        a, b = _key(index, body.a), _key(index, body.b)
        if operation == "link":
            # the mpi-review scope is held by the people who decide identity (or tools acting for them): their
            # link is a person's decision, the one way two valid NHS numbers become one patient
            outcome = index.link(a, b, actor=_actor(principal), event="manual link", by_person=True)
        else:
            outcome = index.unlink(a, b, actor=_actor(principal), event="manual unlink")
    except PriorscanError as exc:
        raise http_error(exc) from exc
    record(session, principal.agent, action="U", event_type="rest", subtype=f"mpi-{operation}",
           regional_patient_id=outcome.regional_id)
    session.commit()
    return _out(outcome)


@router.post("/link", response_model=OutcomeOut)
def link(body: PairIn, ctx: ContextDep, session: WriteSessionDep,
         principal: Principal = Depends(require(MPI_REVIEW))) -> dict[str, Any]:
    """The two records are the same person: their regional patients become one."""
    return _pair_operation("link", body, ctx, session, principal)


@router.post("/unlink", response_model=OutcomeOut)
def unlink(body: PairIn, ctx: ContextDep, session: WriteSessionDep,
           principal: Principal = Depends(require(MPI_REVIEW))) -> dict[str, Any]:
    """The two records are different people: ``b`` gets a regional patient of its own."""
    return _pair_operation("unlink", body, ctx, session, principal)


@router.post("/unmerge", response_model=OutcomeOut)
def unmerge(body: UnmergeIn, ctx: ContextDep, session: WriteSessionDep,
            principal: Principal = Depends(require(MPI_REVIEW))) -> dict[str, Any]:
    """Undo a merge: the retired record is active again, with a regional patient of its own."""
    index = PatientIndex(session, ctx.trusts)
    try:
        outcome = index.unmerge(_key(index, body.survivor), _key(index, body.retired), actor=_actor(principal))
    except PriorscanError as exc:
        raise http_error(exc) from exc
    record(session, principal.agent, action="U", event_type="rest", subtype="mpi-unmerge",
           regional_patient_id=outcome.regional_id)
    session.commit()
    return _out(outcome)


@router.get("/patients/{regional_id}/history", response_model=HistoryOut)
def history(regional_id: str, ctx: ContextDep, session: SessionDep,
            principal: Principal = Depends(require(MPI_REVIEW))) -> dict[str, Any]:
    """Every link change of the patient's records, oldest first."""
    patient = PatientIndex(session, ctx.trusts).regional_patient(regional_id)
    if patient is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such regional patient")
    events = link_history(session, regional_id)
    record(session, principal.agent, action="R", event_type="rest", subtype="mpi-history",
           regional_patient_id=regional_id, entity=f"Patient/{regional_id}")
    session.commit()
    return {"regionalId": regional_id, "events": events}
