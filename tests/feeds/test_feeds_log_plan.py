"""The idempotency look-up of a group-committed batch is index searches, never a scan of the growing message log."""

from __future__ import annotations

from pathlib import Path

from api.feeds.hl7_service import _log_entries_locked
from priorscan.db import open_store


def test_batch_idempotency_lookup_searches_the_log_index(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        params = {f"{part}{n}": f"{part}-{n}" for n in range(5) for part in "afc"}
        statement = _log_entries_locked(5).params(**params)
        sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as connection:
            plan = [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
    finally:
        engine.dispose()
    assert not any(step.startswith("SCAN hl7_message_log") for step in plan), plan
    assert sum("USING INDEX" in step for step in plan) == 5, plan
