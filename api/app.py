"""The FastAPI application: one router per resource, errors as JSON (FHIR routes as OperationOutcome)."""

from __future__ import annotations

import importlib
import logging

from fastapi import FastAPI

from api import storage_errors
from api.context import AppContext
from api.guard import Guard

log = logging.getLogger(__name__)

#: Router modules, each exposing ``router`` (an APIRouter); included in this order.
ROUTER_MODULES = (
    "api.routers.health",
    "api.routers.duplicate_check",
    "api.routers.alerts",
    "api.routers.cds",
    "api.routers.fhir",
    "api.routers.oauth",
    "api.routers.imaging",
    "api.routers.dicomweb",
    "api.routers.hl7",
    "api.routers.mpi",
    "api.routers.workspace",
    "api.routers.ui",
    "api.routers.operations",
)


def create_app(context: AppContext) -> FastAPI:
    """Build the app around an opened :class:`AppContext` (refused in production without a public base URL)."""
    context.settings.require_serving_safely()
    app = FastAPI(title="priorscan", version="0.1.0",
                  description="Regional imaging index and duplicate-scan detector for five NHS trusts")
    app.state.context = context
    app.add_middleware(Guard, context=context)  # first added, innermost: inside the request log and its metrics
    for name in ROUTER_MODULES:
        module = importlib.import_module(name)
        app.include_router(module.router)
        install = getattr(module, "install", None)
        if install is not None:  # exception handlers, middleware, static files owned by that router
            install(app)
    storage_errors.install(app)  # a refused value 422, the database away 503: never a 500
    return app
