"""Every stored study, a batch at a time, each batch one unit of work: how the maintenance commands that read stored
studies again (``priorscan imaging recheck-not-patient``, ``priorscan imaging reread-procedures``) walk the index."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from imaging.tables import Study
from priorscan.unit_of_work import unit_of_work


def study_batches(sessions: sessionmaker[Session], batch: int,
                  dry_run: bool) -> Iterator[tuple[Session, list[int]]]:
    """The ids of every stored study in order, ``batch`` at a time, each with the session of its unit of work
    (committed after the caller's work on the batch; rolled back instead on a dry run)."""
    after = 0
    while True:
        with unit_of_work(sessions, write=not dry_run) as session:
            ids = list(session.scalars(select(Study.id).where(Study.id > after).order_by(Study.id)
                                       .limit(max(1, batch))))
            if not ids:
                return
            yield session, ids
            if dry_run:
                session.rollback()
        after = ids[-1]
