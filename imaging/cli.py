"""``priorscan export studies``: one CSV row per study with its dose summary, to standard output."""

from __future__ import annotations

import argparse
import csv
import sys
from typing import TYPE_CHECKING

from imaging.queries import EXPORT_COLUMNS, export_rows
from priorscan.audit import Agent, record
from priorscan.csv_cells import neutral_mapping
from priorscan.db import session_factory
from priorscan.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from priorscan.cli import CliContext


def run_export_studies(args: argparse.Namespace, ctx: CliContext) -> int:
    """Write ``study_instance_uid,regional_id,trust,modality,...`` (DESIGN.md section 6) for every study.

    Empty cells mean unknown; DLP in mGy·cm, DAP in Gy·m², CTDIvol and AGD in mGy, effective dose in mSv (an
    estimate). A cell a spreadsheet would read as a formula is written with a quote before it
    (:mod:`priorscan.csv_cells`; numbers unchanged). The export is audited.
    """
    writer = csv.DictWriter(sys.stdout, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    count = unknown = unresolved = 0
    with unit_of_work(session_factory(ctx.engine)) as session:
        for row in export_rows(session):
            writer.writerow(neutral_mapping(row))
            count += 1
            unknown += row["normalisation"] in ("", "unknown")
            unresolved += bool(row["patient_unresolved"])
        record(session, Agent("user", "cli"), action="E", event_type="export", subtype="studies-export",
               detail={"rows": count})
    sys.stdout.flush()
    print(f"exported {count} studies ({unknown} with a procedure that could not be normalised, {unresolved} "
          "without an identified patient)", file=sys.stderr)
    return 0


def run_recheck_not_patient(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan imaging recheck-not-patient [--dry-run] [--batch N]``: read every stored study again for what
    says it is a QA, physics or phantom test, with the current configuration
    (:func:`imaging.not_patient_store.recheck_not_patient`); prints each study flagged, unflagged or whose evidence
    changed, with why, then the counts."""
    from imaging.not_patient_store import recheck_not_patient

    report = recheck_not_patient(session_factory(ctx.engine), ctx.trusts, agent=Agent("user", "cli"),
                     batch=getattr(args, "batch", 1000), dry_run=getattr(args, "dry_run", False))
    print(report.render())
    return 0


def run_reread_procedures(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan imaging reread-procedures [--dry-run] [--batch N]``: read every stored study's procedure again
    (modality, body region, laterality, contrast) from its stored code, description and modality with the current
    normaliser (:func:`imaging.procedure_reread.reread_procedures`); prints each study read differently, then the
    counts. Run once after an upgrade that changes the normaliser."""
    from imaging.procedure_reread import reread_procedures

    report = reread_procedures(session_factory(ctx.engine), ctx.trusts, agent=Agent("user", "cli"),
                               batch=getattr(args, "batch", 1000), dry_run=getattr(args, "dry_run", False))
    print(report.render())
    return 0
