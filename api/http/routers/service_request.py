"""FHIR ServiceRequest: ``POST /fhir/ServiceRequest`` stores the request as an outstanding order and runs the
duplicate check on it (:mod:`api.http.routers.duplicate_check` is the same check over its own JSON).

It needs the ``priorscan/duplicate-check`` scope and answers 201 with the ServiceRequest as stored; the check's
outcome travels with it three ways, so any client can read it:

- a ``contained`` OperationOutcome (``id`` ``duplicate-check``) whose issues name the verdict and each prior shown,
- an extension ``https://priorscan.nhs.uk/fhir/StructureDefinition/duplicate-check`` on the resource with
  ``verdict``, ``identity``, ``alertId`` and ``rulesVersion``,
- response headers ``X-Priorscan-Verdict`` and ``X-Priorscan-Alert-Id``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Body, Depends, Response, status

from api.auth.scopes import DUPLICATE_CHECK
from api.http.deps import ContextDep, Principal, require
from api.http.errors import http_error
from dedupe import active_rules, apply_service_request_resource
from priorscan.errors import PriorscanError
from priorscan.unit_of_work import unit_of_work

router = APIRouter(tags=["duplicate check"])


@router.post("/fhir/ServiceRequest", status_code=status.HTTP_201_CREATED, response_model=None)
def create_service_request(ctx: ContextDep, resource: dict[str, Any] = Body(...),
                           principal: Principal = Depends(require(DUPLICATE_CHECK))) -> Response:
    """Store a ServiceRequest as an outstanding order and run the duplicate check on it."""
    try:
        with unit_of_work(ctx.sessions, write=True, immediate=False) as session:
            stored, outcome = apply_service_request_resource(session, ctx.trusts,
                                                             active_rules(ctx.settings.rules_file), resource,
                                                             agent=principal.agent, acting_trust=principal.trust_ods)
    except PriorscanError as exc:
        raise http_error(exc) from exc
    headers = {"X-Priorscan-Verdict": outcome.verdict if outcome else "not-checked"}
    if outcome is not None and outcome.alert_id:
        headers["X-Priorscan-Alert-Id"] = outcome.alert_id
    return Response(json.dumps(stored), status_code=status.HTTP_201_CREATED, headers=headers,
                    media_type="application/fhir+json")
