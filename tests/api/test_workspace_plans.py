"""The workspace's queries are served by indexes on PostgreSQL: a worklist or a live poll must not walk years of
orders or every alert. The store holds 100,000 orders of five trusts over five years and 10,000 alerts, analysed,
and the planner's own choice is read (EXPLAIN) for every statement the worklist and a live poll run."""

from __future__ import annotations

from datetime import UTC, datetime

from fixed_dates import AS_OF
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from api.workspace import ChangeFeed, WorklistQuery, read_worklist


def plans_of(pg_url: str, work) -> list[str]:  # type: ignore[no-untyped-def]
    """The plans of every SELECT ``work`` runs on imaging_order or alert (EXPLAIN of each, seqscan off)."""
    from sqlalchemy import event

    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    seen: list[tuple[str, object]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def keep(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and ("imaging_order" in statement or "alert" in statement):
            seen.append((statement, parameters))

    with Session(engine) as session:
        work(session)
        event.remove(engine, "before_cursor_execute", keep)
        plans = []
        for statement, parameters in seen:
            rows = session.connection().exec_driver_sql("EXPLAIN " + statement, parameters).all()  # type: ignore[arg-type]
            plans.append("\n".join(r[0] for r in rows))
    engine.dispose()
    return plans


FILL = [
    """INSERT INTO imaging_order (requesting_trust, placer_order_number, status, modality, body_region, ordered_at,
                                  created_at, updated_at)
       SELECT (ARRAY['RTK','RXC','RPC','RA2','RYR'])[1 + mod(n, 5)], 'P' || n, 'completed', 'CT', 'head',
              now() - mod(n, 1826) * interval '1 day', now() - mod(n, 1826) * interval '1 day',
              now() - mod(n, 1826) * interval '1 day'
       FROM generate_series(1, 100000) AS n""",
    """INSERT INTO alert (id, identity, requesting_trust, placer_order_number, channel, verdict, request, priors,
                          rules_version, status, created_by, created_at, updated_at)
       SELECT 'a' || n, 'confirmed', (ARRAY['RTK','RXC','RPC','RA2','RYR'])[1 + mod(n, 5)], 'P' || (n * 10), 'hl7',
              'warning', '{}', '[]', 'v', 'acknowledged', 'bench', now() - mod(n, 1826) * interval '1 day',
              now() - mod(n, 1826) * interval '1 day'
       FROM generate_series(1, 10000) AS n""",
    "ANALYZE",
]


def test_the_worklist_and_the_live_poll_use_indexes(pg_url: str) -> None:
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        for statement in FILL:
            connection.exec_driver_sql(statement)
    engine.dispose()
    worklist = plans_of(pg_url, lambda s: read_worklist(s, WorklistQuery("RTK", AS_OF), timezone="Europe/London"))
    live = plans_of(pg_url, lambda s: ChangeFeed(datetime.now(UTC)).read(s, "RTK"))
    assert len(worklist) == 3 and len(live) == 2
    for plan in worklist + live:
        assert "Seq Scan on imaging_order" not in plan and "Seq Scan on alert" not in plan, plan
    assert any("ix_imaging_order_trust_ordered" in p for p in worklist), worklist
    assert any("ix_imaging_order_trust_updated" in p for p in worklist + live)
    assert any("ix_alert_trust_updated" in p for p in live), live
