"""The write helpers the check relies on, on SQLite and PostgreSQL: the database settles races, and an upsert keeps
what it is not told. (SQLite writers queueing in-process is the unit of work's: tests/test_unit_of_work.py.)"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from imaging.tables import ImagingOrder
from priorscan.writes import insert_unless_exists, upsert


def test_insert_unless_exists_reports_whether_the_row_went_in(session: Session) -> None:
    row = {"requesting_trust": "RTK", "placer_order_number": "P1", "modality": "CT"}
    assert insert_unless_exists(session, ImagingOrder, row, ("requesting_trust", "placer_order_number")) is True
    assert insert_unless_exists(session, ImagingOrder, {**row, "modality": "MR"},
                                ("requesting_trust", "placer_order_number")) is False
    stored = session.scalars(select(ImagingOrder)).one()
    assert (stored.modality, stored.status) == ("CT", "active")  # the column default applied on the first insert
    assert stored.created_at is not None


def test_upsert_keeps_what_it_is_not_told_and_overwrites_what_it_must(session: Session) -> None:
    keys = ("requesting_trust", "placer_order_number")
    upsert(session, ImagingOrder, {"requesting_trust": "RXC", "placer_order_number": "P2", "modality": "CT",
                              "body_region": "head", "status": "active"}, keys)
    upsert(session, ImagingOrder, {"requesting_trust": "RXC", "placer_order_number": "P2", "modality": None,
                              "body_region": "chest", "status": "cancelled"}, keys, overwrite=("status",))
    session.expire_all()
    stored = session.scalars(select(ImagingOrder)).one()
    assert (stored.modality, stored.body_region, stored.status) == ("CT", "chest", "cancelled")
