"""A server's SQLite store is checkpointed by a thread of its own, not by the commit that crosses the threshold."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from priorscan.db import make_engine


def _wal_pages(engine) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        busy, log_pages, checkpointed = connection.exec_driver_sql("PRAGMA wal_checkpoint(NOOP)").one()
    return log_pages, checkpointed


def _write(engine, rows: int) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"))
        connection.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "x" * 500} for _ in range(rows)])


def test_commits_leave_the_checkpoint_to_the_background_thread(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}", background_checkpoint=True)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        _write(engine, 20_000)  # well past SQLite's default threshold of 1 000 pages
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            log_pages, checkpointed = _wal_pages(engine)
            if log_pages > 0 and checkpointed == log_pages:
                break
            time.sleep(0.1)
        assert log_pages > 1000 and checkpointed == log_pages  # all of it copied back, by the checkpointer
    finally:
        engine.dispose()
    threads_after = [t for t in __import__("threading").enumerate() if t.name == "sqlite-wal-checkpointer"]
    time.sleep(0.7)
    assert all(not t.is_alive() for t in threads_after)  # disposing the engine stops its checkpointer


def test_without_the_option_sqlite_checkpoints_on_commit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    finally:
        engine.dispose()
