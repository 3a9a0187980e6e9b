"""The one unit of work, on SQLite and PostgreSQL: commit on success, rollback on error, SQLite writers taking turns,
the whole unit run again after a race, and reads whose audit commit skips the WAL flush on PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from imaging.tables import ImagingOrder
from priorscan.db import make_engine, session_factory
from priorscan.errors import BusyError, PriorscanError
from priorscan.unit_of_work import unit_of_work, writer_turn

ORDER = {"requesting_trust": "RTK", "placer_order_number": "P1", "modality": "CT"}


def _orders(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(ImagingOrder)).scalar_one())


@pytest.mark.parametrize("write", [True, False], ids=["writer", "reader"])
def test_a_unit_commits_what_its_work_did(engine: Engine, write: bool) -> None:
    with unit_of_work(session_factory(engine), write=write) as session:
        session.add(ImagingOrder(**ORDER))
    assert _orders(engine) == 1


def test_a_unit_that_raises_keeps_nothing_and_the_error_goes_on(engine: Engine) -> None:
    with pytest.raises(PriorscanError, match="refused"), unit_of_work(session_factory(engine), write=True) as session:
        session.add(ImagingOrder(**ORDER))
        session.flush()
        raise PriorscanError("refused")
    assert _orders(engine) == 0


def test_sqlite_writing_units_of_one_process_take_turns(engine: Engine) -> None:
    sessions = session_factory(engine)
    inside: list[int] = []
    overlap: list[bool] = []

    def write(n: int) -> None:
        with unit_of_work(sessions, write=True):
            inside.append(n)
            overlap.append(len(inside) > 1)
            time.sleep(0.02)
            inside.remove(n)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # SQLite: never two writers inside at once; PostgreSQL (many writers, settled by its locks) does not queue them
    assert any(overlap) is (engine.dialect.name != "sqlite")
    assert len(overlap) == 4


def test_writer_turn_shares_the_lock_of_writing_units(engine: Engine) -> None:
    """A session already in a transaction takes the same turn as a writing unit (SQLite only)."""
    if engine.dialect.name != "sqlite":
        return
    sessions = session_factory(engine)
    entered = threading.Event()
    with sessions() as session, writer_turn(session):
        waiting = threading.Thread(target=lambda: (unit_of_work(sessions, write=True).run(lambda s: None),
                                                   entered.set()))
        waiting.start()
        assert not entered.wait(0.2)  # the writing unit waits for the turn held here
    waiting.join(5)
    assert entered.is_set()


def test_a_race_runs_the_whole_unit_again(engine: Engine) -> None:
    calls: list[int] = []

    def work(session: Session) -> str:
        calls.append(1)
        session.add(ImagingOrder(**{**ORDER, "placer_order_number": f"P{len(calls)}"}))
        if len(calls) == 1:  # the first attempt meets a concurrent insert of the same key
            raise IntegrityError("INSERT", {}, Exception("duplicate key"))
        return "done"

    assert unit_of_work(session_factory(engine), write=True, attempts=3).run(work) == "done"
    assert len(calls) == 2
    with session_factory(engine)() as session:  # the failed attempt was rolled back whole
        assert session.scalars(select(ImagingOrder.placer_order_number)).all() == ["P2"]


def test_a_store_busy_on_every_attempt_is_a_busy_error_with_its_cause(engine: Engine) -> None:
    calls: list[int] = []

    def work(session: Session) -> None:
        calls.append(1)
        raise OperationalError("UPDATE", {}, Exception("database is locked"))

    with pytest.raises(BusyError) as raised:
        unit_of_work(session_factory(engine), write=True, attempts=3).run(work)
    assert len(calls) == 3
    assert raised.value.code == "busy"
    assert isinstance(raised.value.__cause__, OperationalError)


def test_other_errors_are_not_retried(engine: Engine) -> None:
    calls: list[int] = []

    def work(session: Session) -> None:
        calls.append(1)
        raise PriorscanError("a refusal, not a race")

    with pytest.raises(PriorscanError, match="a refusal"):
        unit_of_work(session_factory(engine), write=True, attempts=3).run(work)
    assert len(calls) == 1


def test_retries_need_a_function_to_run_again(engine: Engine) -> None:
    with pytest.raises(TypeError), unit_of_work(session_factory(engine), attempts=2):
        pass  # pragma: no cover - never entered
    with pytest.raises(ValueError):
        unit_of_work(session_factory(engine), attempts=0)


def test_a_read_commits_its_audit_without_waiting_for_the_wal_flush_on_postgresql(engine: Engine) -> None:
    def setting(session: Session) -> str:
        if engine.dialect.name != "postgresql":
            return "n/a"
        return str(session.execute(text("SHOW synchronous_commit")).scalar_one())

    sessions = session_factory(engine)
    expected = ("off", "on") if engine.dialect.name == "postgresql" else ("n/a", "n/a")
    assert (unit_of_work(sessions, durable=False).run(setting), unit_of_work(sessions).run(setting)) == expected


@pytest.mark.parametrize(("immediate", "others_may_write"), [
    (True, False),  # BEGIN IMMEDIATE: SQLite's write lock from the first statement (identity, HL7, imaging)
    (False, True),  # the check: this process's turn only, other processes write until this unit writes
], ids=["immediate", "deferred"])
def test_sqlite_write_lock_is_taken_first_only_when_asked(sqlite_url: str, immediate: bool,
                                                          others_may_write: bool) -> None:
    engine = make_engine(sqlite_url)
    try:
        with unit_of_work(session_factory(engine), write=True, immediate=immediate) as session:
            session.execute(select(ImagingOrder.id)).all()
            with engine.connect() as other:  # as another process would, without waiting
                other.exec_driver_sql("PRAGMA busy_timeout=0")
                try:
                    other.exec_driver_sql("BEGIN IMMEDIATE")
                    other.exec_driver_sql("ROLLBACK")
                    wrote = True
                except OperationalError:
                    wrote = False
        assert wrote is others_may_write
    finally:
        engine.dispose()
