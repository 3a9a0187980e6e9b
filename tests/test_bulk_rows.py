"""The bulk load's many-rows helpers (:mod:`priorscan.bulk_rows`) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from mpi import SourceRecord, table_of
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


# dates and timestamps a load meets: the batch's time (microseconds), a whole second, a time given in another zone
# (written in UTC), a date before 1900 and one of a leap day
_WHEN = [datetime(2026, 12, 7, 21, 38, 13, 241887, tzinfo=UTC), datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
         datetime(2026, 3, 29, 1, 30, 0, 5, tzinfo=timezone(timedelta(hours=-5)))]
_BORN = [date(1899, 12, 31), date(2024, 2, 29), date(2018, 8, 20)]


def test_dates_and_timestamps_go_into_copy_as_the_text_psycopg_writes_for_them(pg_url: str) -> None:
    """The COPY bytes of a row whose dates and timestamps were converted to text (:func:`copy_text`, in a worker or
    once per distinct value) are the bytes the store's own connection writes for the values themselves, and the
    text reads back (:func:`from_copy_text`) as the value the driver gives back."""
    from psycopg._copy_base import TextFormatter
    from psycopg.adapt import Transformer

    from priorscan.bulk_rows import RowConverter, copy_text, from_copy_text
    from priorscan.db import make_engine
    from priorscan.tables import AuditEvent

    engine = make_engine(pg_url)
    try:
        with engine.connect() as connection:
            raw = connection.connection.driver_connection
            records = table_of(SourceRecord)
            columns = ("birth_date", "family", "last_event_at", "created_at")
            rows = [{"birth_date": born, "family": "O'NEIL\tJR", "last_event_at": when, "created_at": None}
                    for born, when in zip(_BORN, _WHEN, strict=True)]
            converted = [RowConverter(connection.dialect, records, columns)(row) for row in rows]
            assert all(isinstance(values[0], str) and isinstance(values[2], str) for values in converted)
            as_objects, as_text = TextFormatter(Transformer(raw)), TextFormatter(Transformer(raw))
            for row, values in zip(rows, converted, strict=True):
                as_objects.write_row([row[c].astimezone(UTC) if isinstance(row[c], datetime) else row[c]
                                      for c in columns])
                as_text.write_row(values)
            assert bytes(as_text.end()) == bytes(as_objects.end())
            for when in _WHEN:
                text = copy_text(when)
                assert from_copy_text(table_of(AuditEvent).c.recorded_at.type)(text) == when
                assert connection.exec_driver_sql(f"SELECT '{text}'::timestamptz").scalar_one() == when
            for born in _BORN:
                assert from_copy_text(records.c.birth_date.type)(copy_text(born)) == born
            assert from_copy_text(records.c.family.type) is None
    finally:
        engine.dispose()


def test_dates_and_timestamps_written_in_bulk_read_back_as_given(session: Session) -> None:
    """COPY (PostgreSQL, the dates and timestamps sent as text) and the multi-row INSERT (SQLite) store the values
    given: the records' birth dates and event times, the audit rows' times, by insert_rows and update_rows."""
    from sqlalchemy import select

    from priorscan.bulk_rows import reserve_ids, update_rows
    from priorscan.tables import AuditEvent

    connection = session.connection()
    records = table_of(SourceRecord)
    ids = reserve_ids(connection, records, len(_WHEN))
    now = utcnow()
    insert_rows(connection, records, [
        {"id": record_id, "namespace": "RTK", "local_id": f"L{record_id}", "source_kind": "hl7", "version": 1,
         "birth_date": born, "last_event_at": when, "created_at": now, "updated_at": now, "provisional": False,
         "active": True, "link_manual": False, "nhs_number_valid": False}
        for record_id, born, when in zip(ids, _BORN, _WHEN, strict=True)])
    insert_rows(connection, table_of(AuditEvent), [
        {"action": "C", "event_type": "hl7", "subtype": "ADT^A28", "outcome": "0", "agent_kind": "system",
         "agent_name": "test", "recorded_at": when} for when in _WHEN])
    update_rows(connection, records, [{"id": record_id, "updated_at": when}
                                      for record_id, when in zip(ids, reversed(_WHEN), strict=True)])
    stored = {row.id: row for row in connection.execute(select(records).where(records.c.id.in_(ids)))}
    assert [stored[i].birth_date for i in ids] == _BORN
    assert [stored[i].last_event_at for i in ids] == _WHEN
    assert [stored[i].updated_at for i in ids] == list(reversed(_WHEN))
    assert [stored[i].created_at for i in ids] == [now] * len(ids)
    assert sorted(connection.execute(select(table_of(AuditEvent).c.recorded_at)).scalars()) == sorted(_WHEN)
