"""Health probes for orchestrators and load balancers (no authentication, no patient data).

- ``GET /healthz`` (liveness): the process answers and its store answers a trivial query. A failing liveness probe
  means "restart me".
- ``GET /readyz`` (readiness): the process can do its work: the store is reachable, its schema is at the newest
  migration this program ships (a worker started before a migration, or against a store not yet migrated, is
  not ready), and the MLLP writer (threads and writer processes), once started, is alive. 503 with the failing
  checks otherwise, so that a load balancer routes around a starting or failing worker without restarting it.
"""

from __future__ import annotations

import importlib
import sys
from functools import lru_cache
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.http.deps import ContextDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(ctx: ContextDep) -> dict[str, str]:
    with ctx.engine.connect() as conn:
        conn.execute(text("select 1"))
    return {"status": "ok"}


@lru_cache(maxsize=1)
def _shipped_heads() -> frozenset[str]:
    """The newest migration revisions this program ships (read once per process)."""
    from alembic.script import ScriptDirectory

    from priorscan.db import alembic_config

    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def readiness(ctx: Any) -> tuple[bool, dict[str, Any]]:
    """Every readiness check with its result, and whether all passed."""
    checks: dict[str, Any] = {}
    try:
        with ctx.engine.connect() as conn:
            current = {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
        checks["database"] = {"ok": True}
        heads = _shipped_heads()
        checks["schema"] = {"ok": current == heads, "current": sorted(current), "expected": sorted(heads)}
    except SQLAlchemyError as exc:
        checks["database"] = {"ok": False, "error": type(exc.orig if hasattr(exc, "orig") else exc).__name__}
        checks["schema"] = {"ok": False, "error": "database unreachable"}
    mllp = sys.modules.get("api.feeds.mllp")  # only a process that serves MLLP has a writer to check
    health = importlib.import_module("api.feeds.mllp").writer_health(ctx) if mllp is not None else None
    checks["mllp_writer"] = health if health is not None else {"ok": True, "started": False}
    return all(check["ok"] for check in checks.values()), checks


@router.get("/readyz", responses={503: {"description": "not ready; the failing checks are named"}})
def readyz(ctx: ContextDep) -> JSONResponse:
    ready, checks = readiness(ctx)
    return JSONResponse({"status": "ready" if ready else "not-ready", "checks": checks},
                        status_code=200 if ready else 503)
