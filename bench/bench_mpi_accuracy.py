"""MPI accuracy on a synthetic population: ``python -m bench mpi_accuracy [--people 100000] [--seed 1]``.

Builds the population (:mod:`bench.mpi_population`), loads it into a fresh store, runs the batch relink
(``priorscan link``: training, scoring, clustering) and measures it against the truth with ``priorscan evaluate``'s
code, plus the twins check (no twin pair in one regional patient). Optionally ``--febrl`` does the same on the
public FEBRL dataset4a+4b, independent evidence that nothing is tuned to our own generator.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from bench.mpi_data import FEBRL_NAMESPACE, febrl, febrl_demographics, febrl_person
from bench.mpi_population import make_population
from mpi.batch import bulk_load, relink
from mpi.evaluate import evaluate_store
from mpi.tables import SourceRecord
from priorscan.db import open_store, session_factory


def _store(url: str | None) -> str:
    if url:
        return url
    return f"sqlite:///{Path(tempfile.mkdtemp(prefix='priorscan-bench-')) / 'mpi.db'}"


def run_synthetic(people: int, seed: int, db: str | None) -> dict[str, object]:
    started = time.perf_counter()
    population = make_population(people, seed=seed)
    built = time.perf_counter() - started
    engine = open_store(_store(db))
    with session_factory(engine)() as session:
        mark = time.perf_counter()
        bulk_load(session, population.records)
        session.commit()
        loaded = time.perf_counter() - mark
        result = relink(session)
        session.commit()
        truth = {(ns, local): person for person, ns, local in population.truth}
        evaluation = evaluate_store(session, truth)
        regional = {f"{ns}|{local}": rid for ns, local, rid in session.execute(
            select(SourceRecord.namespace, SourceRecord.local_id, SourceRecord.regional_patient_id)).all()}
    patients_of: dict[str, set[str]] = {}
    for person, ns, local in population.truth:
        patients_of.setdefault(person, set()).add(regional[f"{ns}|{local}"])
    twins = [(p.person_id, p.twin_of) for p in population.people if p.twin_of]
    twins_merged = sum(1 for a, b in twins if patients_of.get(a, set()) & patients_of.get(b, set()))
    engine.dispose()
    return {"dataset": f"synthetic people={people} seed={seed}", "records": len(population.records),
            "generate_s": round(built, 1), "load_s": round(loaded, 1), "relink": result.as_dict(),
            "evaluation": evaluation.as_dict(), "twin_pairs": len(twins), "twin_pairs_merged": twins_merged}


def run_febrl(db: str | None) -> dict[str, object]:
    table = pd.concat([febrl("dataset4a"), febrl("dataset4b")], ignore_index=True)
    engine = open_store(_store(db))
    with session_factory(engine)() as session:
        bulk_load(session, febrl_demographics(table))
        session.commit()
        result = relink(session)
        session.commit()
        truth = {(FEBRL_NAMESPACE, rid): febrl_person(rid) for rid in table["rec_id"]}
        evaluation = evaluate_store(session, truth)
    engine.dispose()
    return {"dataset": "FEBRL dataset4a+4b", "relink": result.as_dict(), "evaluation": evaluation.as_dict()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench mpi_accuracy")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", help="store URL (default: a new SQLite file)")
    parser.add_argument("--febrl", action="store_true", help="also run FEBRL dataset4a+4b")
    parser.add_argument("--only-febrl", action="store_true")
    args = parser.parse_args(argv)
    results = []
    if not args.only_febrl:
        results.append(run_synthetic(args.people, args.seed, args.db))
    if args.febrl or args.only_febrl:
        results.append(run_febrl(None))
    print(json.dumps(results, indent=2, default=str))
    return 0
