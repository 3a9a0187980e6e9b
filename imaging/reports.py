"""A study's report, and what the duplicate check shows beside each prior: the report's conclusion and where to view.

- :func:`link_report` keeps one report (an HL7 ORU's OBX text, a FHIR DiagnosticReport) against its study, one row
  per source and report id, a later version replacing an earlier one (a corrected or amended report);
- :func:`conclusion_of` is the pure rule for the text shown: the report's own conclusion (FHIR ``conclusion``, an
  OBX of a conclusion or impression), else the part of the text after an "Impression:", "Conclusion:" or
  "Opinion:" heading, else the text's first :data:`CONCLUSION_CHARS` characters;
- :func:`prior_details` reads, in one query, what the duplicate check adds to each prior it shows: the patient
  identifier the PACS knows the study by (for the viewer launch) and the latest report that is not cancelled.

Nothing here commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from imaging.tables import Study, StudyReport

CONCLUSION_CHARS = 400
_HEADING = re.compile(r"(?im)^\s*(impression|conclusions?|opinion|summary)\s*[:\-]\s*")
#: Report statuses that say nothing about the patient (a cancelled or withdrawn report).
VOID_STATUSES = ("cancelled", "entered-in-error")


@dataclass(frozen=True)
class PriorDetail:
    """What the duplicate check shows beside one prior, beyond the study's own fields."""

    patient_namespace: str | None
    patient_local_id: str | None
    report_id: str | None = None  # the stored report's number (its FHIR id)
    report_source: str | None = None
    report_status: str | None = None
    report_conclusion: str | None = None
    report_issued: datetime | None = None


def conclusion_of(conclusion: str | None, text: str | None) -> str | None:
    """The conclusion to show: the one stated, else the text after its impression heading, else its beginning."""
    stated = (conclusion or "").strip()
    if stated:
        return stated[:CONCLUSION_CHARS]
    body = (text or "").strip()
    if not body:
        return None
    headings = list(_HEADING.finditer(body))  # the last one: impressions come at the end of a report
    chosen = body[headings[-1].end():] if headings else body
    chosen = re.sub(r"\s+", " ", chosen).strip()
    if len(chosen) > CONCLUSION_CHARS:
        chosen = chosen[:CONCLUSION_CHARS - 1].rstrip() + "…"
    return chosen or None


def link_report(session: Session, study: Study, *, source: str, report_id: str, status: str | None,
                conclusion: str | None, text: str | None, issued_at: datetime | None) -> StudyReport:
    """Keep a study's report (created, or replacing the earlier version with the same source and id)."""
    row = session.scalars(select(StudyReport).where(StudyReport.source == source[:10],
                                                    StudyReport.report_id == report_id[:200])).first()
    if row is None:
        row = StudyReport(source=source[:10], report_id=report_id[:200], study_id=study.id)
        session.add(row)
    fill_report(row, study, status=status, conclusion=conclusion, text=text, issued_at=issued_at)
    session.flush()
    return row


def fill_report(row: StudyReport, study: Study, *, status: str | None, conclusion: str | None, text: str | None,
                issued_at: datetime | None) -> None:
    """Set a report row from one version of the report (created or replacing the earlier version)."""
    row.study_id = study.id
    row.status = (status or "")[:20] or None
    row.text = text
    row.conclusion = conclusion_of(conclusion, text)
    row.issued_at = issued_at


def prior_details(session: Session, study_uids: list[str]) -> dict[str, PriorDetail]:
    """For each study UID: the patient identifier it follows and its latest report that is not void (one query)."""
    if not study_uids:
        return {}
    rows = session.execute(
        select(Study.study_instance_uid, Study.patient_issuer, Study.patient_local_id, StudyReport.id,
               StudyReport.source, StudyReport.status, StudyReport.conclusion, StudyReport.issued_at,
               StudyReport.updated_at)
        .outerjoin(StudyReport, StudyReport.study_id == Study.id)
        .where(Study.study_instance_uid.in_(study_uids))).all()
    details: dict[str, PriorDetail] = {}
    ranks: dict[str, tuple[bool, datetime | None, datetime | None]] = {}
    for uid, issuer, local_id, report_id, source, status, conclusion, issued, updated in rows:
        base = details.setdefault(uid, PriorDetail(issuer, local_id))
        if report_id is None or (status or "") in VOID_STATUSES:
            continue
        rank = (True, issued or updated, updated)
        best = ranks.get(uid)
        if best is None or _later(rank, best):
            ranks[uid] = rank
            details[uid] = PriorDetail(base.patient_namespace, base.patient_local_id, str(report_id), source, status,
                                       conclusion, issued)
    return details


def _later(a: tuple[bool, datetime | None, datetime | None], b: tuple[bool, datetime | None, datetime | None]) -> bool:
    def key(value: tuple[bool, datetime | None, datetime | None]) -> tuple[float, float]:
        return (value[1].timestamp() if value[1] else 0.0, value[2].timestamp() if value[2] else 0.0)

    return key(a) > key(b)
