"""The bulk load's many-rows helpers (:mod:`priorscan.bulk_rows`) on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from mpi import table_of
from priorscan.bulk_rows import held_keys, insert_rows
from priorscan.db import utcnow
from priorscan.tables import HL7MessageLog


def test_held_keys_finds_exactly_the_keys_held(session: Session) -> None:
    log = table_of(HL7MessageLog)
    now = utcnow()
    insert_rows(session.connection(), log, [
        {"sending_application": app, "sending_facility": "RTK", "control_id": control, "message_type": "ADT^A28",
         "ack_code": "AA", "ack_text": "", "received_at": now} for app, control in (("PAS", "1"), ("PAS", "2"),
                                                                                   ("EPR", "1"))])
    columns = ("sending_application", "sending_facility", "control_id")
    asked = [("PAS", "RTK", "1"), ("PAS", "RTK", "1"),  # asked twice: found once
             ("PAS", "RTK", "3"),  # not held
             ("EPR", "RXC", "1"),  # each value held, but not together
             ("EPR", "RTK", "1")]
    assert held_keys(session.connection(), log, columns, asked) == {("PAS", "RTK", "1"), ("EPR", "RTK", "1")}
    assert held_keys(session.connection(), log, columns, []) == set()


def test_insert_tables_writes_what_insert_rows_writes_whether_few_rows_or_many(session: Session) -> None:
    """Few rows (one pipeline of INSERTs on PostgreSQL) and many (COPY) give the same rows, JSON and UTC timestamps
    included, in each table given."""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import select

    from priorscan.bulk_rows import FEW_ROWS, insert_tables
    from priorscan.tables import AuditEvent
    from priorscan.writes import with_defaults

    log, audit = table_of(HL7MessageLog), table_of(AuditEvent)
    local = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=1)))  # stored as 00:30 UTC

    def logs(prefix: str, count: int) -> list[dict[str, object]]:
        return [{"sending_application": prefix, "sending_facility": "RTK", "control_id": str(n),
                 "message_type": "ADT^A28", "ack_code": "AA", "ack_text": "", "received_at": local}
                for n in range(count)]

    def audits(actor: str, count: int) -> list[dict[str, object]]:
        return [{"recorded_at": local, "action": "C", "event_type": "dicom", "subtype": "CT", "agent_kind": "feed",
                 "agent_name": actor, "source_address": None, "regional_patient_id": None,
                 "entity": f"ImagingStudy/{n}", "outcome": "0", "detail": {"n": n, "source": "dicom"}}
                for n in range(count)]

    connection = session.connection()
    for name, count in (("few", 3), ("many", FEW_ROWS + 1)):
        insert_tables(connection, [(log, logs(name, count)), (audit, [with_defaults(audit, row)
                                                                      for row in audits(name, count)])])
    written = session.execute(select(log.c.sending_application, log.c.received_at)).all()
    assert sorted((app, at.astimezone(UTC)) for app, at in written) == sorted(
        [("few", local.astimezone(UTC))] * 3 + [("many", local.astimezone(UTC))] * (FEW_ROWS + 1))
    details = session.execute(select(audit.c.agent_name, audit.c.detail, audit.c.recorded_at)).all()
    assert sorted((actor, detail["n"]) for actor, detail, _ in details) == sorted(
        [("few", n) for n in range(3)] + [("many", n) for n in range(FEW_ROWS + 1)])
    assert {at.astimezone(UTC) for _, _, at in details} == {local.astimezone(UTC)}


def test_a_duplicate_key_written_past_sqlalchemy_is_an_integrity_error(session: Session) -> None:
    """A write sent through the driver (COPY or a pipeline of INSERTs on PostgreSQL, the driver's executemany on
    SQLite) that breaks a unique key raises SQLAlchemy's IntegrityError, as a statement would: the fall-backs catch
    that (a pushed group racing another writer goes through the per-message path). Raised as the driver's own
    error it escaped them, and one of eight concurrent STOW-RS requests failed whole on PostgreSQL."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    from priorscan.bulk_rows import FEW_ROWS, insert_tables

    log = table_of(HL7MessageLog)
    now = utcnow()
    rows = [{"sending_application": "PAS", "sending_facility": "RTK", "control_id": str(n), "message_type": "ADT^A28",
             "ack_code": "AA", "ack_text": "", "received_at": now, "content_digest": "0" * 64}
            for n in range(FEW_ROWS + 1)]
    insert_rows(session.connection(), log, rows[:1])
    session.commit()
    for few_or_many in (rows[:3], rows):  # a pipeline of INSERTs, then COPY (PostgreSQL)
        with pytest.raises(IntegrityError):
            insert_tables(session.connection(), [(log, few_or_many)])
        session.rollback()
    with pytest.raises(IntegrityError):
        insert_rows(session.connection(), log, rows[:2])
    session.rollback()


def test_update_rows_does_the_callers_work_while_the_server_updates_and_raises_the_updates_failure(
        session: Session, engine: Engine) -> None:
    """``meanwhile`` (the relink's next rows, converted) runs while PostgreSQL applies the ``UPDATE``: here the
    update waits for a row another transaction holds, and ``meanwhile`` sees it waiting and lets it go, which it
    could not do if the update ran before it (after it, on SQLite, where the update is this process's own work). Its
    result is returned; the update's failure (a unique key broken) is raised as SQLAlchemy raises it."""
    import time

    import pytest
    from sqlalchemy import select, text
    from sqlalchemy.exc import IntegrityError

    from priorscan.bulk_rows import update_rows

    log = table_of(HL7MessageLog)
    now = utcnow()
    insert_rows(session.connection(), log, [
        {"sending_application": "PAS", "sending_facility": "RTK", "control_id": str(n), "message_type": "ADT^A28",
         "ack_code": "AA", "ack_text": "", "received_at": now, "content_digest": "0" * 64} for n in range(3)])
    session.commit()
    ids = session.scalars(select(log.c.id).order_by(log.c.id)).all()
    postgresql = engine.dialect.name == "postgresql"
    seen: list[str] = []
    with engine.connect() as blocker, engine.connect() as watcher:
        if postgresql:
            session.execute(text("SET LOCAL lock_timeout = '60s'"))  # a regression fails, it does not hang
            blocker.execute(text("SELECT id FROM hl7_message_log WHERE id = :id FOR UPDATE"), {"id": ids[0]})

        def meanwhile() -> str:
            if postgresql:
                for _ in range(600):
                    if watcher.execute(text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND query LIKE 'UPDATE \"hl7_message_log\"%'")).scalar_one():
                        seen.append("the update waiting")
                        break
                    time.sleep(0.1)
                blocker.rollback()
            return "prepared"

        result = update_rows(session.connection(), log, [{"id": i, "ack_code": "AE"} for i in ids],
                             meanwhile=meanwhile)
    assert result == "prepared"
    assert seen == (["the update waiting"] if postgresql else [])
    assert session.scalars(select(log.c.ack_code)).all() == ["AE"] * 3
    session.commit()
    with pytest.raises(IntegrityError):  # control ids 0 and 1 of one sender: the log's unique key
        update_rows(session.connection(), log, [{"id": ids[1], "control_id": "0"}], meanwhile=lambda: "prepared")
    session.rollback()
