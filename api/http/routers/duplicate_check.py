"""The duplicate check over HTTP: ``POST /api/v1/duplicate-check`` (DESIGN.md section 6), scope
``priorscan/duplicate-check``. FHIR ``POST /fhir/ServiceRequest``, which runs the same check on the resource it
stores, is :mod:`api.http.routers.service_request`.

Order entry calls ``/api/v1/duplicate-check`` for every imaging request, so its route is ``async`` and makes one hop
to a worker thread for all of its blocking work (session, check, commit), its dependencies run on the event loop
(:mod:`api.http.deps`), and it answers with JSON it serialises itself (:func:`json_response`) rather than having FastAPI
validate the outcome against ``response_model`` again: the model documents the answer.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from api.auth.scopes import DUPLICATE_CHECK
from api.context import AppContext
from api.http.deps import ContextDep, Principal, require
from api.http.errors import http_error  # noqa: F401 - also the name other routers import from here
from dedupe import (
    CheckRequest,
    PatientQuery,
    ProcedureCode,
    ProcedureQuery,
    RequestReason,
    active_rules,
    run_check,
)
from priorscan import json_input
from priorscan.audit import Agent
from priorscan.errors import PriorscanError
from priorscan.unit_of_work import unit_of_work

router = APIRouter(tags=["duplicate check"])


# --- errors -----------------------------------------------------------------------------------------------------

def json_response(content: Any, status_code: int = status.HTTP_200_OK, headers: dict[str, str] | None = None,
                  media_type: str = "application/json") -> Response:
    """``content`` (dicts, lists, strings, numbers) as a JSON answer, serialised in one pass by pydantic-core (a
    non-finite number becomes ``null``: the answer stays valid JSON)."""
    return Response(to_json(content, inf_nan_mode="null"), status_code=status_code, headers=headers,
                    media_type=media_type)


def requesting_trust(ctx: AppContext, value: str | None, acting_trust: str | None = None) -> str | None:
    """The ODS code of the requesting trust (any alias accepted); 422 for a trust outside the consortium.

    ``acting_trust`` is the trust of a caller who works at one: theirs when the request names none, and 403 when it
    names another (nobody raises alerts in another trust's queue).
    """
    if not value:
        return acting_trust
    trust = ctx.trusts.resolve(value)
    if trust is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"unknown requesting trust; expected one of {', '.join(ctx.trusts.ods_codes)}")
    if acting_trust is not None and trust.ods != acting_trust:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="you may request for your own trust only")
    return trust.ods


# --- the contract's shapes ----------------------------------------------------------------------------------------

class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Coding(_Model):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class Identifier(_Model):
    system: str = Field(min_length=1, max_length=300)
    value: str = Field(min_length=1, max_length=200)


class HumanName(_Model):
    family: str | None = None
    given: list[str] = []


class PatientIn(_Model):
    identifiers: list[Identifier] = []
    name: HumanName | None = None
    birthDate: date | None = None
    sex: str | None = None
    postcode: str | None = None


class RequestIn(_Model):
    code: Coding | None = None
    modality: str | None = Field(default=None, max_length=16)
    bodySite: str | None = Field(default=None, max_length=200)
    laterality: str | None = Field(default=None, max_length=40)
    priority: str | None = Field(default=None, max_length=40)
    reason: str | None = Field(default=None, max_length=2000)
    reasonCode: list[Coding] = Field(default=[], description="coded reasons (e.g. SNOMED CT), added to the contract")
    pregnant: bool | None = Field(default=None, description="an explicit pregnancy answer, added to the contract")
    requestingTrust: str | None = None
    placerOrderNumber: str | None = Field(default=None, max_length=64)
    requestedAt: datetime | None = Field(default=None, description="when the request was made (default: now)")

    @field_validator("requestedAt")
    @classmethod
    def _plausible_moment(cls, value: datetime | None) -> datetime | None:
        """Between 1900 and 2200: a moment at the edge of the calendar cannot be moved into the trusts' time zone
        (found by ``python -m bench fuzz``: year 1 with an offset overflowed, 500)."""
        if value is not None and not 1900 <= value.year <= 2200:
            raise ValueError("requestedAt must lie between 1900 and 2200")
        return value


class DuplicateCheckIn(_Model):
    patient: PatientIn = PatientIn()
    request: RequestIn

    @model_validator(mode="before")
    @classmethod
    def _plain_json(cls, data: Any) -> Any:
        """No NUL character (PostgreSQL cannot store one) and no absurd nesting, whatever the field (422)."""
        return json_input.check(data, max_depth=16)


class PriorOut(_Model):
    studyInstanceUid: str | None
    accessionNumber: str | None
    trust: str | None
    studyDate: str | None
    daysAgo: int
    modality: str | None
    bodySite: str | None
    laterality: str | None
    description: str | None
    effectiveDoseMsv: float | None
    severity: Literal["warning", "info"]
    rule: str
    viewerUrl: str | None
    status: str | None = None
    kind: str | None = None
    placerOrderNumber: str | None = None
    trustName: str | None = None
    match: str | None = None
    ruleText: str | None = None
    circumstances: list[str] = []


class DuplicateCheckOut(_Model):
    regionalPatientId: str | None
    identity: Literal["confirmed", "probable", "unknown"]
    verdict: Literal["warning", "info", "clear"]
    priors: list[PriorOut]
    alertId: str | None
    alertStatus: str | None = None
    identityCandidates: list[str] = []
    rulesVersion: str
    requestDate: str
    request: dict[str, Any]


def check_request(ctx: AppContext, body: DuplicateCheckIn, acting_trust: str | None = None) -> CheckRequest:
    """The API body as a :class:`dedupe.CheckRequest` (422 when it names no procedure; 403 when a caller who works at
    ``acting_trust`` names another requesting trust)."""
    wanted = body.request
    if not ((wanted.code and wanted.code.code) or (wanted.modality and wanted.bodySite)):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail="request needs a code, or a modality and a bodySite")
    name = body.patient.name or HumanName()
    patient = PatientQuery(identifiers=tuple((i.system, i.value) for i in body.patient.identifiers),
                           family=name.family, given=tuple(name.given), birth_date=body.patient.birthDate,
                           sex=body.patient.sex, postcode=body.patient.postcode)
    code = wanted.code
    codes = tuple(f"{c.system}|{c.code}" if c.system else c.code for c in wanted.reasonCode if c.code)
    procedure = ProcedureQuery(
        codes=(ProcedureCode(code.system, code.code, code.display),) if code and code.code else (),
        modality=wanted.modality, body_site=wanted.bodySite, laterality=wanted.laterality,
        description=code.display if code else None, priority=wanted.priority,
        reason=RequestReason(wanted.reason, codes, wanted.pregnant),
        requesting_trust=requesting_trust(ctx, wanted.requestingTrust, acting_trust),
        placer_order_number=wanted.placerOrderNumber,
        requested_at=wanted.requestedAt)
    return CheckRequest(patient, procedure, channel="api")


def checked(ctx: AppContext, request: CheckRequest, agent: Agent) -> dict[str, Any]:
    """Run one check in its own unit of work, committed before the answer is given (blocking: a worker thread's)."""
    try:
        with unit_of_work(ctx.sessions, write=True, immediate=False) as session:
            outcome = run_check(session, ctx.trusts, active_rules(ctx.settings.rules_file), request, agent=agent)
    except PriorscanError as exc:
        raise http_error(exc) from exc
    return outcome.as_json()


@router.post("/api/v1/duplicate-check", response_model=DuplicateCheckOut)
async def duplicate_check(body: DuplicateCheckIn, ctx: ContextDep,
                          principal: Principal = Depends(require(DUPLICATE_CHECK))) -> Response:
    """Comparable recent priors for one imaging request, from every trust, with the alert they raise."""
    request = check_request(ctx, body, principal.trust_ods)
    return json_response(await run_in_threadpool(checked, ctx, request, principal.agent))
