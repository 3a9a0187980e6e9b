"""The bulk load's many-rows helpers (:mod:`priorscan.bulk_rows`) on SQLite and PostgreSQL."""

from __future__ import annotations

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
