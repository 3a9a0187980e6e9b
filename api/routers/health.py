"""Liveness: ``GET /healthz`` answers 200 when the store answers (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from api.deps import ContextDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(ctx: ContextDep) -> dict[str, str]:
    with ctx.engine.connect() as conn:
        conn.execute(text("select 1"))
    return {"status": "ok"}
