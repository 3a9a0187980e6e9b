"""Real-time link-on-write latency: ``python -m bench mpi_realtime [--records 1000000] [--backend sqlite|postgresql]``.

Builds (once, cached) a store of ``--records`` source records from the synthetic population, linked by the batch
relink, then sends ``--queries`` new records one at a time through :meth:`mpi.PatientIndex.upsert` in process,
each in its own transaction (upsert + link-on-write + commit), and reports the latency distribution. Half the
queries are new records of people already known (with the generator's usual errors), half are new people.

Every run measures a copy of the cached store (a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL),
dropped afterwards: the queries of one run do not grow the known people's patients for the next.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from bench.mpi_data import CACHE
from bench.mpi_population import ErrorRates, _record_of, make_people, make_population
from bench.stores import PG_ADMIN, persistent_store_url, settle
from mpi import Demographics, PatientIndex
from mpi.batch import bulk_load, relink
from mpi.tables import SourceRecord
from priorscan.db import make_engine, migrate, session_factory
from priorscan.trusts import default_trusts

RECORDS_PER_PERSON = 1.855  # what make_population gives on average


def store_url(backend: str, records: int, seed: int) -> str:
    return persistent_store_url(backend, CACHE / f"bench-mpi-{records}-{seed}.db",
                                f"priorscan_bench_mpi_{records}_{seed}")


def build(url: str, records: int, seed: int, *, relink_store: bool = False) -> dict[str, float]:
    """Load and link the store unless it already holds the records.

    By default the loaded records are grouped into regional patients by the truth (quick to build, and the
    candidate sets and patient sizes that link-on-write meets are the real ones); ``relink_store`` runs the batch
    relink instead (trains and saves a model too).
    """
    engine = make_engine(url)
    migrate(engine)
    timings: dict[str, float] = {}
    with session_factory(engine)() as session:
        have = session.scalar(select(func.count()).select_from(SourceRecord)) or 0
        if have < records:
            started = time.perf_counter()
            population = make_population(int(records / RECORDS_PER_PERSON) + 1, seed=seed)
            timings["generate_s"] = time.perf_counter() - started
            started = time.perf_counter()
            truth = population.truth[:records]
            bulk_load(session, population.records[:records],
                      regional_ids=None if relink_store else [f"RP{person}" for person, _, _ in truth])
            session.commit()
            timings["load_s"] = time.perf_counter() - started
            started = time.perf_counter()
            if relink_store:
                result = relink(session)
                timings.update({f"relink_{k}": v for k, v in result.timings.items()})
            else:  # a model trained on a sample of the store, as `priorscan link` would save
                train_sample(session, population.records[:records], seed)
            session.commit()
            timings["model_s"] = time.perf_counter() - started
            started = time.perf_counter()
            settle(engine)
            timings["settle_s"] = time.perf_counter() - started
    engine.dispose()
    return timings


def train_sample(session: Session, records: list[Demographics], seed: int, size: int = 200_000) -> None:
    """Train on a random sample of the records and save the model as the active one."""
    from mpi.batch import save_model, with_derived_threshold
    from mpi.blocking import key_table, pairs_from_keys
    from mpi.frames import frame_from_table, table_from_stored
    from mpi.normalise import to_match_record
    from mpi.training import train

    sample = random.Random(seed).sample(records, min(size, len(records)))
    normalised = [to_match_record(i, r.__dict__) for i, r in enumerate(sample)]
    table = table_from_stored([r.record_id or 0 for r in normalised], [r.as_stored() for r in normalised])
    frame = frame_from_table(table)
    left, right = pairs_from_keys(key_table(table))
    model = with_derived_threshold(train(frame, (left, right), seed=seed), frame, left, right)
    save_model(session, model, records=len(records))


@contextlib.contextmanager
def working_copy(url: str) -> Iterator[str]:
    """A copy of the store at ``url`` for one run, removed afterwards."""
    if url.startswith("sqlite:///"):
        source = Path(url.removeprefix("sqlite:///"))
        engine = make_engine(url)
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        copy = source.with_name(f"{source.stem}-run{os.getpid()}.db")
        shutil.copyfile(source, copy)
        try:
            yield f"sqlite:///{copy}"
        finally:
            for leftover in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
                leftover.unlink(missing_ok=True)
        return
    database = url.rsplit("/", 1)[1]
    copy_name = f"{database}_run{os.getpid()}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{copy_name}" TEMPLATE "{database}"'))
    try:
        yield url.rsplit("/", 1)[0] + "/" + copy_name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{copy_name}"'))
        admin.dispose()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def measure(url: str, records: int, seed: int, queries: int) -> dict[str, object]:
    rng = random.Random(seed + 99)
    run = f"{time.time():.0f}"  # new local ids on every run: each query registers a new record
    rates = ErrorRates()
    known = make_people(max(1, queries // 2), random.Random(seed), rates)  # the first people of the population
    strangers = make_people(queries, random.Random(seed + 7), rates)[queries // 2:]
    engine = make_engine(url, background_checkpoint=True)  # as `priorscan serve` runs
    factory = session_factory(engine)
    trusts = default_trusts()
    latencies: list[float] = []
    cpu: list[float] = []  # this thread's CPU time: what the latency is on a machine nobody else loads
    states: dict[str, int] = {}
    with factory() as session:  # warm the model cache and the connection pool
        PatientIndex(session, trusts)
    for n in range(queries):
        person = known[n // 2] if n % 2 == 0 and n // 2 < len(known) else strangers[n // 2 % len(strangers)]
        record = _record_of(person, rng, rates, "https://fhir.ryr.nhs.uk/Id/bench", f"Q{run}-{n}", "RYR",
                            later=True)
        started, cpu_started = time.perf_counter(), time.thread_time()
        with factory() as session:
            outcome = PatientIndex(session, trusts).upsert(record, event="ADT^A04", actor="bench")
            session.commit()
        latencies.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - cpu_started) * 1000)
        states[outcome.link_state] = states.get(outcome.link_state, 0) + 1
    engine.dispose()
    return {"queries": queries, "median_ms": round(statistics.median(latencies), 2),
            "p95_ms": round(percentile(latencies, 95), 2), "p99_ms": round(percentile(latencies, 99), 2),
            "max_ms": round(max(latencies), 2), "mean_ms": round(statistics.fmean(latencies), 2),
            "cpu_median_ms": round(statistics.median(cpu), 2), "cpu_p95_ms": round(percentile(cpu, 95), 2),
            "cpu_p99_ms": round(percentile(cpu, 99), 2), "load_average": os.getloadavg(), "states": states}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench mpi_realtime")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", help="use this store instead of the cached one")
    parser.add_argument("--relink", action="store_true", help="build the store with the batch relink")
    args = parser.parse_args(argv)
    url = args.db or store_url(args.backend, args.records, args.seed)
    timings = build(url, args.records, args.seed, relink_store=args.relink)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        count = session.scalar(select(func.count()).select_from(SourceRecord))
    engine.dispose()
    with working_copy(url) as copy:
        measured = measure(copy, args.records, args.seed, args.queries)
    result = {"backend": args.backend, "source_records": count, "build": timings, **measured}
    print(json.dumps(result, indent=2))
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path(f"bench/results/mpi_realtime_{args.backend}_{args.records}.json").write_text(json.dumps(result, indent=2))
    return 0
