"""Batch relink side by side with Splink (DuckDB): ``python -m bench mpi_batch_vs_splink [--people N]``.

The same records (the synthetic population, written once to Parquet) go through:

- **priorscan**: normalisation, blocking, training (u from random pairs, m by EM, term frequencies, derived
  threshold), scoring of every blocked pair, clustering with the integrity check: :mod:`mpi.linkage` in memory,
  exactly what ``priorscan link`` runs between reading and writing the store;
- **Splink 5 (DuckDB)**: a model of the same fields (NHS number, names with term frequencies, birth date, sex,
  and postcode, address and phone read together as one residence comparison, since Splink treats its comparisons
  as independent and a household shares all three), the same kinds of blocking rules, u by random sampling (10M
  pairs), m by EM on two blocking rules, prediction (0.2) and clustering (0.95) at the values of Splink's own
  tutorials;
- **Splink lean**: the same without address and phone (a common Splink set-up on UK data).

Each engine runs in its own process, timed from the Parquet file to clusters, with its peak memory; both are
scored by the same pairwise F1 against the truth.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.mpi_data import CACHE
from bench.mpi_population import make_population
from mpi.evaluate import pairwise_metrics


def dataset(people: int, seed: int) -> Path:
    """The population as Parquet (cached): one row per source record with its true person."""
    path = CACHE / f"mpi-batch-{people}-{seed}.parquet"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    population = make_population(people, seed=seed)
    records = population.records
    columns: dict[str, Any] = {"unique_id": np.arange(len(records), dtype=np.int64),
                               "person_id": [person for person, _, _ in population.truth]}
    for name in ("nhs_number", "nhs_verification", "given", "family", "birth_date", "sex", "postcode", "address",
                 "phone"):  # column by column: a dict per record would double the peak at millions of records
        values = [getattr(record, name) for record in records]
        columns[name] = [str(v) if v else None for v in values] if name == "birth_date" else values
    del population, records
    pd.DataFrame(columns).to_parquet(path)
    return path


def run_priorscan(path: Path) -> dict[str, Any]:
    from mpi.blocking import blocked_pairs
    from mpi.frames import frame_from_table, table_from_stored
    from mpi.linkage import link_frame
    from mpi.normalise import to_match_record
    from mpi.training import train

    table = pd.read_parquet(path)
    started = time.perf_counter()
    stored: list[dict[str, Any]] = []
    columns = [c for c in table.columns if c not in ("unique_id", "person_id")]
    for start in range(0, len(table), 50_000):  # in slices: a million dicts at once would dominate the peak
        raw = table.iloc[start:start + 50_000][columns].astype(object)
        raw = raw.where(raw.notna(), None)
        stored.extend(to_match_record(None, row).as_stored() for row in raw.to_dict("records"))
    record_ids = table["unique_id"].to_numpy()
    del table, raw
    fields = table_from_stored(record_ids.tolist(), stored)
    del stored  # what the store would hold: only the normalised fields are read back
    frame = frame_from_table(fields)
    normalised = time.perf_counter()
    left, right = blocked_pairs(frame)
    blocked = time.perf_counter()
    model = train(frame, (left, right))
    trained = time.perf_counter()
    linkage = link_frame(frame, model, left, right, derive_threshold=True)
    done = time.perf_counter()
    return {"labels": linkage.labels, "pairs_scored": int(len(left)), "review_queue": int(len(linkage.review_left)),
            "timings": {"normalise_s": normalised - started, "block_s": blocked - normalised,
                        "train_s": trained - blocked, "link_s": done - trained,
                        "relink_s": done - normalised, "total_s": done - started}}


def splink_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The records as Splink's comparisons read them (upper case, postcode without its space)."""
    frame = table.drop(columns=["person_id"]).copy()
    names = frame["given"].fillna("").str.split(" ", n=1)
    frame["first_name"] = names.str[0].str.upper().replace("", None)
    frame["surname"] = frame["family"].str.upper()
    frame["postcode"] = frame["postcode"].str.upper().str.replace(" ", "", regex=False)
    frame["address"] = frame["address"].str.upper()
    return frame


def splink_settings(*, lean: bool) -> Any:
    """Splink's model of the same fields, with the same kinds of blocking rules (see the module docstring).

    Splink multiplies its comparisons' Bayes factors as if the fields were independent, and a household shares its
    postcode, its address and often its phone: as three comparisons they counted one home three times and merged
    households (F1 0.55 before 2026-12-07). The full model reads the three through one comparison, ``residence``
    (postcode and address; postcode; address; phone; else), as priorscan's own residence comparison does; the lean
    model leaves address and phone out (a common Splink set-up on UK data)."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.ExactMatch("nhs_number"),
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.ExactMatch("sex"),
            cl.PostcodeComparison("postcode") if lean else splink_residence(),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("nhs_number"),
            block_on("birth_date", "substr(first_name, 1, 1)"),
            block_on("birth_date", "substr(surname, 1, 1)"),
            block_on("first_name", "surname"),
            block_on("postcode", "surname"),
            block_on("postcode", "first_name"),
        ],
        retain_intermediate_calculation_columns=False,
    )


def splink_residence() -> Any:
    """One Splink comparison over what a household shares (postcode, address, phone), its levels in order of
    strength; the first that holds wins."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    return cl.CustomComparison(output_column_name="residence", comparison_levels=[
        cll.NullLevel("postcode"),
        cll.And(cll.ExactMatchLevel("postcode"), cll.JaroWinklerLevel("address", 0.9)),
        cll.ExactMatchLevel("postcode"),
        cll.JaroWinklerLevel("address", 0.9),
        cll.ExactMatchLevel("phone"),
        cll.ElseLevel(),
    ])


#: Random pairs Splink estimates u from (its guidance: 1e7 or more for large inputs).
SPLINK_U_PAIRS = 1e7


def splink_link(linker: Any) -> Any:
    """Train ``linker`` (prior, u by sampling, m by EM on two rules) and cluster its predictions; returns the
    clusters (a Splink table)."""
    from splink import block_on

    linker.training.estimate_probability_two_random_records_match(
        [block_on("nhs_number"), block_on("first_name", "surname", "birth_date")], recall=0.9)
    linker.training.estimate_u_using_random_sampling(max_pairs=SPLINK_U_PAIRS)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("first_name", "surname"))
    predictions = linker.inference.predict(threshold_match_probability=0.2)
    return linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, 0.95)


def run_splink(path: Path, *, lean: bool = False) -> dict[str, Any]:
    from splink import Linker
    from splink.backends.duckdb import DuckDBAPI

    table = pd.read_parquet(path)
    started = time.perf_counter()
    db_api = DuckDBAPI()
    data = db_api.register(splink_frame(table))
    linker = Linker(data, splink_settings(lean=lean), log_level=40)
    clusters = splink_link(linker).as_pandas_dataframe()
    done = time.perf_counter()
    label_of = dict(zip(clusters["unique_id"], clusters["cluster_id"], strict=True))
    labels = [label_of.get(uid, f"alone-{uid}") for uid in table["unique_id"]]
    return {"labels": labels, "timings": {"total_s": done - started}}


def child(engine: str, path: Path) -> None:
    result = run_priorscan(path) if engine == "priorscan" else run_splink(path, lean=engine == "splink-lean")
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    truth = pd.read_parquet(path, columns=["person_id"])["person_id"].to_numpy()
    metrics = pairwise_metrics(truth, np.asarray(result.pop("labels"), dtype=object))
    result.update({k: metrics[k] for k in ("records", "precision", "recall", "f1", "people_wrongly_merged",
                                           "false_merge_rate", "missed_link_rate")})
    if "review_queue" in result:
        result["review_queue_rate"] = result["review_queue"] / metrics["records"]
    print(json.dumps(result))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench mpi_batch_vs_splink")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--engine", choices=["priorscan", "splink", "splink-lean"],
                        help="run one engine here (used internally)")
    parser.add_argument("--engines", default="priorscan,splink,splink-lean")
    args = parser.parse_args(argv)
    path = dataset(args.people, args.seed)
    if args.engine:
        child(args.engine, path)
        return 0
    results = {}
    for engine in args.engines.split(","):
        done = subprocess.run([sys.executable, "-m", "bench", "mpi_batch_vs_splink", "--people", str(args.people),
                               "--seed", str(args.seed), "--engine", engine], capture_output=True, text=True)
        if done.returncode != 0:
            results[engine] = {"error": done.stderr[-2000:]}
            continue
        results[engine] = json.loads(done.stdout.strip().splitlines()[-1])
    report = {"people": args.people, "seed": args.seed, **results}
    print(json.dumps(report, indent=2))
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path(f"bench/results/mpi_batch_vs_splink_{args.people}.json").write_text(json.dumps(report, indent=2))
    return 0
