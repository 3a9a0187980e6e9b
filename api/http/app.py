"""The FastAPI application: one router per resource, errors as JSON (FHIR routes as OperationOutcome)."""

from __future__ import annotations

import importlib
import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from api.context import AppContext
from api.http import storage_errors
from api.http.errors import validation_answer
from api.http.guard import PUBLIC_PATHS, Guard

log = logging.getLogger(__name__)

#: Router modules, each exposing ``router`` (an APIRouter); included in this order.
ROUTER_MODULES = (
    "api.http.routers.health",
    "api.http.routers.duplicate_check",
    "api.http.routers.service_request",
    "api.http.routers.alerts",
    "api.http.routers.cds",
    "api.http.routers.fhir",
    "api.http.routers.patient",
    "api.http.routers.oauth",
    "api.http.routers.imaging_study",
    "api.http.routers.diagnostic_report",
    "api.http.routers.imaging",
    "api.http.routers.dicomweb",
    "api.http.routers.hl7",
    "api.http.routers.mpi",
    "api.http.routers.workspace",
    "api.http.routers.ui",
    "api.http.routers.operations",
)


def create_app(context: AppContext) -> FastAPI:
    """Build the app around an opened :class:`AppContext` (refused in production without a public base URL)."""
    context.settings.require_serving_safely()
    app = FastAPI(title="priorscan", version="0.1.0",
                  description="Regional imaging index and duplicate-scan detector for five NHS trusts")
    app.state.context = context
    app.add_middleware(Guard, context=context)  # first added, innermost: inside the request log and its metrics
    app.add_exception_handler(RequestValidationError, validation_answer)  # type: ignore[arg-type]  # FHIR delegates
    for name in ROUTER_MODULES:
        module = importlib.import_module(name)
        app.include_router(module.router)
        install = getattr(module, "install", None)
        if install is not None:  # exception handlers, middleware, static files owned by that router
            install(app)
    storage_errors.install(app)  # a refused value 422, the database away 503: never a 500
    _document_common_answers(app)
    return app


#: Answers any route may give, whatever its own: the door's (:mod:`api.http.guard`), the scope check's, and the storage
#: errors' (:mod:`api.http.storage_errors`). Documented on every operation, so the schema lists every answer a client
#: can get.
COMMON_ANSWERS: dict[str, str] = {
    "400": "the body or a parameter cannot be read",
    "401": "no valid bearer token or session",
    "403": "the token lacks the scope this route needs",
    "404": "no such resource (or one the caller may not see)",
    "408": "the request body did not arrive in time (connection closed)",
    "413": "the request body is larger than the configured limit",
    "422": "a value the request holds cannot be accepted",
    "503": "the database is unavailable; try again shortly (Retry-After)",
}


def _document_common_answers(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            schema = build()
            for path, operations in schema.get("paths", {}).items():
                for operation in operations.values():
                    answers = operation.setdefault("responses", {})
                    for code, why in COMMON_ANSWERS.items():
                        if code == "401" and path in PUBLIC_PATHS:
                            continue
                        answers.setdefault(code, {"description": why})
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
