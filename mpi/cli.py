"""``priorscan link``, ``priorscan evaluate`` and ``priorscan export xref``: the MPI's command-line edges."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from priorscan.audit import Agent, record
from priorscan.errors import InputError

if TYPE_CHECKING:
    from priorscan.cli import CliContext

CLI_AGENT = Agent("user", "cli")


def run_link(args: argparse.Namespace, ctx: CliContext) -> int:
    """Relink every source record with a freshly trained model (``--no-train``: the active model), in this process
    or (``--engine spark``) on Apache Spark."""
    from mpi.batch import relink
    from priorscan.db import session_factory
    from priorscan.unit_of_work import unit_of_work

    engine_name = getattr(args, "engine", None) or "local"
    master = getattr(args, "master", None)
    if master and engine_name != "spark":
        raise InputError("--master names a Spark cluster: use it with --engine spark", code="input.link-master")
    train = not getattr(args, "no_train", False)
    with unit_of_work(session_factory(ctx.engine)) as session:
        if engine_name == "spark":
            from mpi.spark import LOCAL_MASTER, spark_relink, spark_session

            spark = spark_session(master, driver_memory=getattr(args, "driver_memory", None))
            master = master or LOCAL_MASTER
            print(f"engine: spark ({master}, Spark {spark.version})", flush=True)
            try:
                result = spark_relink(session, spark, ctx.settings.db, train=train, actor="priorscan link")
            finally:
                spark.stop()
        else:
            print("engine: local (this process)", flush=True)
            result = relink(session, train=train, actor="priorscan link")
        record(session, CLI_AGENT, action="U", event_type="rest", subtype="mpi-relink",
               detail={"records": result.records, "changed": result.records_changed, "engine": engine_name,
                       "model_version": result.model_version, "trained": result.trained})
    print(f"linked {result.records} source records into {result.patients} regional patients "
          f"({result.records_changed} changed, {result.review_items} to review) with model {result.model_version} "
          f"in {result.timings.get('total_s', 0.0):.1f} s")
    if result.trained:
        print(f"model: {result.model_description}, trained now and active from here on")
    else:
        why = result.training_note or "--no-train"
        print(f"model: {result.model_description}, kept: {why}")
    return 0


def run_evaluate(args: argparse.Namespace, ctx: CliContext) -> int:
    """Measure the store's links against ``--truth persons.csv``."""
    from mpi.evaluate import evaluate_store, read_truth
    from priorscan.db import session_factory
    from priorscan.unit_of_work import unit_of_work

    report = getattr(args, "report", None)
    if not getattr(args, "truth", None):
        if report:
            return _report(args, ctx, None)
        raise InputError("--truth FILE is required (persons.csv: person_id,system,value), or --report DIR")
    truth = read_truth(Path(args.truth), ctx.trusts)
    if report:
        return _report(args, ctx, truth)
    with unit_of_work(session_factory(ctx.engine)) as session:
        evaluation = evaluate_store(session, truth)
        record(session, CLI_AGENT, action="R", event_type="rest", subtype="mpi-evaluate")
    figures = evaluation.as_dict()
    if getattr(args, "json", False):
        print(json.dumps(figures, indent=2))
        return 0
    labels = {"precision": "pairwise precision", "recall": "pairwise recall", "f1": "pairwise F1",
              "false_merge_rate": "people wrongly merged (share)", "missed_link_rate": "people with missed links "
              "(share)", "review_queue": "review queue (open items)", "review_queue_rate": "review queue per record",
              "blocking_recall": "blocking recall"}
    for key, value in figures.items():
        text = f"{value:.6f}" if isinstance(value, float) else str(value)
        print(f"{labels.get(key, key.replace('_', ' '))}: {text}")
    return 0


def _report(args: argparse.Namespace, ctx: CliContext, truth: dict[tuple[str, str], str] | None) -> int:
    """``--report DIR``: the accuracy charts and their figures (pseudonymised), and ``--sample`` pairs to label."""
    from mpi.report import build_report
    from priorscan.db import session_factory
    from priorscan.unit_of_work import unit_of_work

    out = Path(args.report)
    with unit_of_work(session_factory(ctx.engine)) as session:
        summary = build_report(session, out, truth=truth, sample=max(0, int(getattr(args, "sample", 0) or 0)))
        record(session, CLI_AGENT, action="R", event_type="rest", subtype="mpi-accuracy-report",
               detail={"records": summary["records"], "sample_opened": summary.get("sample_opened", 0)})
    labelled = summary.get("labelled") or {}
    print(f"accuracy report for model {summary['model_version']} ({summary['records']} records) written to {out}")
    if labelled:
        print(f"labelled pairs: {labelled['pairs']} ({labelled['same_person']} one person); suggested threshold: "
              f"{labelled['suggested_threshold']}")
    if summary.get("sample_opened"):
        print(f"{summary['sample_opened']} pairs near the threshold opened for labelling on /ui/review")
    return 0


def run_export_xref(args: argparse.Namespace, ctx: CliContext) -> int:
    """Write ``regional_id,system,value,link_state`` CSV to stdout."""
    from mpi.xref import write_xref
    from priorscan.db import session_factory
    from priorscan.unit_of_work import unit_of_work

    with unit_of_work(session_factory(ctx.engine)) as session:
        rows = write_xref(session, sys.stdout)
        record(session, CLI_AGENT, action="E", event_type="export", subtype="xref-export", detail={"rows": rows})
    sys.stdout.flush()
    return 0
