"""The batch relink on Spark beside the single-machine relink: ``python -m bench mpi_spark [--people N]``.

The synthetic population (:mod:`bench.mpi_population`, as ``mpi_batch_vs_splink`` writes it) is normalised once
into Parquet (record id, the match fields the store holds, the true person; by worker processes, one per core;
both files cached by people and seed in ``~/.cache/priorscan``), then linked by:

- **local**: :func:`mpi.blocking.blocked_pairs`, :func:`mpi.training.train_if_supported` (on the records
  :func:`mpi.training.in_training_sample` chooses), :func:`mpi.linkage.link_frame` in one process, what
  ``priorscan link`` runs between reading and writing the store;
- **spark**: :func:`mpi.spark.relink.link_records` on ``local[*]`` (or ``--master``), with ``--driver-memory``
  (the JVM's heap, which in local mode also runs the tasks), reading the Parquet file, writing the clusters back
  to Parquet: what ``priorscan link --engine spark`` runs between reading and writing the store;
- **splink-spark**: Splink 5 on the same Spark (``SparkAPI`` with its similarity UDF jar), with the fields,
  comparisons, blocking and training of ``mpi_batch_vs_splink``'s DuckDB run, reading the raw records' Parquet file.

Each engine runs in its own process, timed from the Parquet file to clusters, with the peak memory of its driver
process and of the JVM, and the CPU seconds of the whole process tree (driver, JVM, Python workers); all are scored
by the same pairwise F1 against the truth, and their clusters are compared record by record with the local
relink's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.bench_mpi_batch_vs_splink import dataset
from bench.mpi_data import CACHE
from mpi.evaluate import pairwise_metrics
from mpi.training import TRAINING_SAMPLE


def normalised(people: int, seed: int) -> Path:
    """The population's records as the store holds them (cached): ``record_id``, match fields, ``person_id``.

    Normalised (:func:`mpi.normalise.to_match_record`, ~0.25 ms of CPU a record) in slices by worker processes,
    one per core, the slices put back in order: the same table as one process makes."""
    path = CACHE / f"mpi-spark-{people}-{seed}.parquet"
    if path.exists():
        return path
    table = pd.read_parquet(dataset(people, seed))
    columns = [c for c in table.columns if c not in ("unique_id", "person_id")]
    slices = [table.iloc[start:start + NORMALISE_SLICE] for start in range(0, len(table), NORMALISE_SLICE)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=get_context("fork")) as pool:
        parts = list(pool.map(_normalise_slice, [(part["unique_id"].to_numpy(), part[columns]) for part in slices]))
    fields = pd.concat(parts, ignore_index=True)
    fields["person_id"] = table["person_id"].to_numpy()
    fields.to_parquet(path)
    return path


#: Records normalised by one worker's task.
NORMALISE_SLICE = 50_000


def _normalise_slice(part: tuple[np.ndarray, pd.DataFrame]) -> pd.DataFrame:
    from mpi.frames import table_from_stored
    from mpi.normalise import to_match_record

    record_ids, raw = part
    raw = raw.astype(object)
    raw = raw.where(raw.notna(), None)
    stored = [to_match_record(None, row).as_stored() for row in raw.to_dict("records")]
    return table_from_stored(record_ids.tolist(), stored)


def _canonical(record_ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each record's cluster named by its smallest record id (the engines name clusters differently)."""
    smallest = pd.Series(record_ids).groupby(labels).transform("min")
    return smallest.to_numpy(dtype=np.int64)


def run_local(path: Path, out: Path, *, training_sample: int) -> dict[str, Any]:
    from mpi.blocking import blocked_pairs
    from mpi.frames import frame_from_table
    from mpi.linkage import link_frame
    from mpi.model import Model
    from mpi.training import sampled_frame, train_if_supported

    started = time.perf_counter()
    table = pd.read_parquet(path).drop(columns=["person_id"])
    frame = frame_from_table(table)
    loaded = time.perf_counter()
    left, right = blocked_pairs(frame)
    blocked = time.perf_counter()
    model, note = train_if_supported(len(table), lambda: sampled_frame(table, frame, sample=training_sample),
                                     base=Model.default(), blocked_pairs=len(left), seed=0)
    trained = time.perf_counter()
    linkage = link_frame(frame, model, left, right, derive_threshold=note is None)
    done = time.perf_counter()
    record_ids = table["record_id"].to_numpy(dtype=np.int64)
    pd.DataFrame({"record_id": record_ids, "label": record_ids[linkage.labels]}).to_parquet(out)
    return {"pairs_scored": int(len(left)), "match_links": linkage.match_links,
            "review_items": int(len(linkage.review_left)), "model_version": linkage.model.version,
            "trained_on": model.training.get("sampled_records", model.training.get("records")),
            "cpu_s": _tree_cpu_s(os.getpid()),
            "timings": {"load_s": loaded - started, "block_s": blocked - loaded, "train_s": trained - blocked,
                        "link_s": done - trained, "total_s": done - started}}


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of process ``pid`` and every live descendant (with the children each has reaped): the driver,
    for Spark also its JVM, which in ``local[*]`` runs the tasks, and the Python workers the JVM starts."""
    parent_of: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent_of[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    tree, frontier = {pid}, [pid]
    while frontier:
        children = [child for child, parent in parent_of.items() if parent in frontier and child not in tree]
        tree.update(children)
        frontier = children
    return sum(ticks.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float | None:
    """The peak resident memory of process ``pid`` (Linux ``VmHWM``), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_spark(path: Path, out: Path, *, master: str | None, driver_memory: str | None,
              training_sample: int, shuffle_partitions: int | None = None) -> dict[str, Any]:
    from mpi.model import Model
    from mpi.spark import spark_session
    from mpi.spark.columns import MATCH_COLUMNS
    from mpi.spark.relink import SLICE_RECORDS, link_records

    started = time.perf_counter()
    spark = spark_session(master, driver_memory=driver_memory, shuffle_partitions=shuffle_partitions)
    up = time.perf_counter()
    records = spark.read.parquet(str(path)).select("record_id", *MATCH_COLUMNS)
    count = records.count()
    # in slices of record ids, as `priorscan link --engine spark` reads the store (mpi.spark.relink.relink): read as
    # the file lies, 2 M records made one or two tasks, whose blocking ran out of a 512 MB heap
    partitions = max(spark.sparkContext.defaultParallelism * 2, count // SLICE_RECORDS + 1)
    records = records.repartitionByRange(partitions, "record_id").cache()
    records.count()
    loaded = time.perf_counter()
    linked = link_records(records, Model.default(), count=count, train=True, seed=0, training_sample=training_sample)
    linked.labels.write.mode("overwrite").parquet(str(out))
    done = time.perf_counter()
    heap = spark.sparkContext.getConf().get("spark.driver.memory", "1g (Spark's default)")
    version = spark.version
    jvm = spark.sparkContext._jvm
    pid = int(jvm.java.lang.ProcessHandle.current().pid()) if jvm is not None else 0
    jvm_peak = _peak_rss_mb(pid)
    cpu = _tree_cpu_s(os.getpid())
    spark.stop()
    return {"pairs_scored": linked.pairs_scored, "match_links": linked.match_links,
            "review_items": None, "model_version": linked.model.version, "spark": version,
            "trained_on": linked.model.training.get("sampled_records", linked.model.training.get("records")),
            "driver_memory": heap, "jvm_peak_rss_mb": jvm_peak, "cpu_s": cpu,
            "timings": {"start_s": up - started, "load_s": loaded - up, **linked.timings,
                        "link_s": done - loaded, "total_s": done - up}}


def run_splink_spark(raw: Path, out: Path, *, master: str | None, driver_memory: str | None) -> dict[str, Any]:
    """Splink 5 on Spark with the same fields and rules as ``mpi_batch_vs_splink`` (its DuckDB run), the records
    read and prepared by Spark (as ``splink_frame`` prepares them for DuckDB), never collected on the driver."""
    from pyspark.sql import functions as F
    from splink import Linker
    from splink.backends.spark import SparkAPI, similarity_jar_location

    from bench.bench_mpi_batch_vs_splink import splink_link, splink_settings
    from mpi.spark import spark_session

    started = time.perf_counter()
    spark = spark_session(master, driver_memory=driver_memory, config={"spark.jars": similarity_jar_location()})
    spark.sparkContext.setCheckpointDir(str(CACHE / "spark-checkpoints"))  # Splink checkpoints its tables
    up = time.perf_counter()
    first = F.upper(F.split(F.coalesce(F.col("given"), F.lit("")), " ").getItem(0))
    records = (spark.read.parquet(str(raw)).drop("person_id")
               .withColumn("first_name", F.when(first != "", first))
               .withColumn("surname", F.upper("family"))
               .withColumn("postcode", F.regexp_replace(F.upper("postcode"), " ", ""))
               .withColumn("address", F.upper("address"))).cache()
    records.count()
    loaded = time.perf_counter()
    db_api = SparkAPI(spark_session=spark)
    linker = Linker(db_api.register(records), splink_settings(lean=False), log_level=40)
    clusters = splink_link(linker).as_spark_dataframe()
    clusters.selectExpr("cast(unique_id as long) as record_id", "cast(cluster_id as string) as label") \
        .write.mode("overwrite").parquet(str(out))
    done = time.perf_counter()
    jvm = spark.sparkContext._jvm
    pid = int(jvm.java.lang.ProcessHandle.current().pid()) if jvm is not None else 0
    jvm_peak = _peak_rss_mb(pid)
    cpu = _tree_cpu_s(os.getpid())
    heap = spark.sparkContext.getConf().get("spark.driver.memory", "1g (Spark's default)")
    spark.stop()
    return {"driver_memory": heap, "jvm_peak_rss_mb": jvm_peak, "cpu_s": cpu,
            "timings": {"start_s": up - started, "load_s": loaded - up, "link_s": done - loaded,
                        "total_s": done - up}}


def labels_path(engine: str, args: argparse.Namespace) -> Path:
    """Where ``engine`` writes its clusters: a Spark run's name says its driver memory, so that a small-driver run
    does not overwrite the default one's (the local relink's has none)."""
    heap = f"-{args.driver_memory}" if args.driver_memory and engine != "local" else ""
    return CACHE / f"mpi-spark-labels-{engine}{heap}-{args.people}-{args.seed}.parquet"


def child(engine: str, path: Path, args: argparse.Namespace) -> None:
    out = labels_path(engine, args)
    if engine == "local":
        result = run_local(path, out, training_sample=args.training_sample)
    elif engine == "splink-spark":
        result = run_splink_spark(dataset(args.people, args.seed), out, master=args.master,
                                  driver_memory=args.driver_memory)
    else:
        result = run_spark(path, out, master=args.master, driver_memory=args.driver_memory,
                           training_sample=args.training_sample, shuffle_partitions=args.shuffle_partitions)
    # VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec
    result["driver_peak_rss_mb"] = _peak_rss_mb(os.getpid())
    labels = pd.read_parquet(out).sort_values("record_id")
    truth = pd.read_parquet(path, columns=["record_id", "person_id"]).sort_values("record_id")
    metrics = pairwise_metrics(truth["person_id"].to_numpy(dtype=object), labels["label"].to_numpy())
    result.update({k: metrics[k] for k in ("records", "precision", "recall", "f1", "people_wrongly_merged")})
    result["labels"] = str(out)
    print(json.dumps(result))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench mpi_spark")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--engines", default="local,spark,splink-spark")
    parser.add_argument("--master", help="the Spark master (default local[*])")
    parser.add_argument("--driver-memory", help="spark.driver.memory, e.g. 512m")
    parser.add_argument("--training-sample", type=int, default=TRAINING_SAMPLE,
                        help="records both engines train on (about; mpi.training.TRAINING_SAMPLE)")
    parser.add_argument("--shuffle-partitions", type=int,
                        help="spark.sql.shuffle.partitions (default: mpi.spark.spark_session's, 4 per core locally)")
    parser.add_argument("--engine", choices=["local", "spark", "splink-spark"],
                        help="run one engine here (used internally)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    path = normalised(args.people, args.seed)
    prepared = time.perf_counter() - started
    if args.engine:
        child(args.engine, path, args)
        return 0
    results: dict[str, Any] = {}
    for engine in args.engines.split(","):
        command = [sys.executable, "-m", "bench", "mpi_spark", "--people", str(args.people), "--seed",
                   str(args.seed), "--engine", engine]
        if args.master:
            command += ["--master", args.master]
        if args.driver_memory:
            command += ["--driver-memory", args.driver_memory]
        command += ["--training-sample", str(args.training_sample)]
        if args.shuffle_partitions:
            command += ["--shuffle-partitions", str(args.shuffle_partitions)]
        load_before = os.getloadavg()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            # the whole log kept: the cause (a JVM's OutOfMemoryError) is often far above the last lines
            log = Path("bench/results") / f"mpi_spark_{args.people}_{engine}_{int(time.time())}.stderr"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(done.stderr)
            results[engine] = {"error": done.stderr[-3000:], "log": str(log),
                               "load_average": {"before": load_before, "after": os.getloadavg()}}
            continue
        results[engine] = json.loads(done.stdout.strip().splitlines()[-1])
        results[engine]["load_average"] = {"before": load_before, "after": os.getloadavg()}
    local_labels = results.get("local", {}).get("labels")
    if "local" not in results and labels_path("local", args).exists():
        # compared with an earlier local run's clusters of the same records (its code may be older: see its time)
        local_labels = str(labels_path("local", args))
        results["local_labels_from_earlier_run"] = {
            "path": local_labels, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                            time.gmtime(Path(local_labels).stat().st_mtime))}
    if local_labels:
        local = pd.read_parquet(local_labels).sort_values("record_id")
        local_clusters = _canonical(local["record_id"].to_numpy(), local["label"].to_numpy())
        for engine in [e for e in results if e != "local" and "labels" in results[e]]:
            other = pd.read_parquet(results[engine]["labels"]).sort_values("record_id")
            clusters = _canonical(other["record_id"].to_numpy(), other["label"].to_numpy())
            results[f"{engine}_records_in_other_clusters_than_local"] = int((clusters != local_clusters).sum())
    size = pd.read_parquet(path, columns=["record_id"]).shape[0]
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    report = {"people": args.people, "records": size, "seed": args.seed, "commit": commit, "prepare_s": prepared,
              "parquet_mb": path.stat().st_size / 2**20, **results}
    print(json.dumps(report, indent=2))
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    suffix = (f"_{args.driver_memory}" if args.driver_memory else "") + ("_" + args.engines.replace(",", "-"))
    Path(f"bench/results/mpi_spark_{args.people}{suffix}.json").write_text(json.dumps(report, indent=2))
    return 0
