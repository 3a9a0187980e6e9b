"""The cross-reference export (DESIGN.md contract): ``regional_id,system,value,link_state``.

One row per current source identifier (a record's own ``namespace|local_id`` and every further identifier it was
sent with) and one per NHS number, each with the regional patient it belongs to now (merges followed). An NHS number
held by records of one patient appears once for that patient.

An identifier replaced by a change of identifier (ADT A47, kept on its record with use ``old`` for its history) is
not exported: it names nobody any more (PIXm and the resolver ignore it too), and the PAS may give it to another
person, whose record would then be a second row for one identifier.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from mpi.tables import RegionalPatient, SourceIdentifier, SourceRecord
from priorscan.csv_cells import neutral_row
from priorscan.trusts import NHS_NUMBER_SYSTEM

HEADER = ("regional_id", "system", "value", "link_state")


def xref_rows(session: Session) -> Iterator[tuple[str, str, str, str]]:
    """The rows of the export, ordered by regional id."""
    retired: dict[str, str | None] = {rid: into for rid, into in session.execute(
        select(RegionalPatient.id, RegionalPatient.merged_into_id).where(RegionalPatient.status == "retired"))}

    def survivor(regional_id: str) -> str:
        hops = 0
        while hops < 50 and (into := retired.get(regional_id)):
            regional_id = into
            hops += 1
        return regional_id

    records = session.execute(select(SourceRecord.id, SourceRecord.regional_patient_id, SourceRecord.namespace,
                                     SourceRecord.local_id, SourceRecord.link_state, SourceRecord.nhs_number,
                                     SourceRecord.nhs_number_valid)
                              .where(SourceRecord.regional_patient_id.is_not(None))
                              .order_by(SourceRecord.regional_patient_id, SourceRecord.id)).all()
    extra: dict[int, list[tuple[str, str]]] = {}
    for record_id, system, value in session.execute(select(SourceIdentifier.source_record_id,
                                                           SourceIdentifier.system, SourceIdentifier.value)
                                                    .where(SourceIdentifier.use.is_(None))):
        extra.setdefault(record_id, []).append((system, value))
    rows: list[tuple[str, str, str, str]] = []
    nhs_seen: set[tuple[str, str]] = set()
    for record_id, regional_id, namespace, local_id, state, nhs, valid in records:
        regional = survivor(regional_id)
        state = state or "match"
        rows.append((regional, namespace, local_id, state))
        for system, value in extra.get(record_id, []):
            rows.append((regional, system, value, state))
        if nhs and valid and (regional, nhs) not in nhs_seen:
            nhs_seen.add((regional, nhs))
            rows.append((regional, NHS_NUMBER_SYSTEM, nhs, state))
    rows.sort(key=lambda r: (r[0], r[1] != NHS_NUMBER_SYSTEM, r[1], r[2]))
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        if row[:3] not in seen:
            seen.add(row[:3])
            yield row


def write_xref(session: Session, out: TextIO) -> int:
    """Write the CSV to ``out``; returns the number of rows. A cell a spreadsheet would read as a formula is written
    with a quote before it (:mod:`priorscan.csv_cells`): identifiers come from the feeds as sent."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    count = 0
    for row in xref_rows(session):
        writer.writerow(neutral_row(row))
        count += 1
    return count
