"""Bulk load (``priorscan backfill``): items per second, time, database size and peak memory as the region grows.

Usage::

    python -m bench bulk extract [--backend sqlite|postgresql] [--people 100000] [--format hl7|fhir]
                                 [--workers 2] [--seed 7] [--json FILE]
    python -m bench bulk dicom [--backend sqlite|postgresql] [--objects 4000] [--workers 2] [--json FILE]
    python -m bench bulk region [--backend sqlite|postgresql] [--people 2000] [--json FILE]

- **extract**: a PAS extract as a trust joining the region brings it: one HL7 ADT^A28 (``--format hl7``) or one FHIR
  Patient NDJSON line (``--format fhir``) per source record of ``--people`` synthetic people (1 to 3 trusts each, the
  population of ``python -m bench feeds``), written by streaming to files, then loaded into a fresh store by
  ``priorscan backfill`` in its own process. Reported: items per second of the identity stage (read, normalise,
  write) and of the whole load with its batch relink (train and link), the stages' seconds, the store's size and
  the peak memory of the load's processes (the largest resident set among them).
- **dicom**: ``--objects`` DICOM files (CT with RDSR, radiographs with DAP, mammograms; :mod:`bench.bench_imaging`)
  loaded the same way: objects per second of the imaging stage.
- **region**: a ``regionsynth`` region (HL7 feeds with ORU, FHIR, DICOM) by ``backfill`` and by ``ingest``.

Every run prints its figures as JSON on stdout (and into ``--json FILE``), with the load average when it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bench_feeds import DEFAULT_PG_ADMIN, adt_message, fresh_store, hospital_number, make_population

FHIR_SYSTEMS = {"RTK": "https://fhir.rtk.nhs.uk/Id/mrn", "RXC": "https://fhir.rxc.nhs.uk/Id/mrn",
                "RPC": "https://fhir.rpc.nhs.uk/Id/mrn", "RA2": "https://fhir.ra2.nhs.uk/Id/mrn",
                "RYR": "https://fhir.ryr.nhs.uk/Id/mrn"}
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


def _patient(population: Any, person: int, trust: str) -> dict[str, Any]:
    values = population.fields(person)
    identifiers: list[dict[str, Any]] = [{"system": FHIR_SYSTEMS[trust], "value": hospital_number(person, trust)}]
    nhs = population.nhs(person)
    if nhs:
        identifiers.append({"system": NHS_SYSTEM, "value": nhs})
    return {"resourceType": "Patient", "identifier": identifiers,
            "name": [{"family": values["family"], "given": [values["given"]]}], "gender": values["sex"],
            "birthDate": values["birth_date"].isoformat(),
            "address": [{"line": [values["address"]], "postalCode": values["postcode"]}]}


def write_extract(root: Path, people: int, fmt: str, seed: int) -> int:
    """One file per trust; the number of items written."""
    population = make_population(people, seed)
    when = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    handles: dict[str, Any] = {}
    count = 0
    with contextlib.ExitStack() as stack:
        for trust in FHIR_SYSTEMS:
            folder = root / fmt / trust
            folder.mkdir(parents=True)
            name = "adt-extract.hl7" if fmt == "hl7" else "patients.ndjson"
            handles[trust] = stack.enter_context(open(folder / name, "w", encoding="utf-8", newline=""))
        for person in range(people):
            for trust in population.trusts[person]:
                count += 1
                if fmt == "hl7":
                    handles[trust].write(adt_message(population, person, trust, "A28", f"X{count:09d}", when))
                else:
                    handles[trust].write(json.dumps(_patient(population, person, trust)) + "\n")
    return count


def _db_size(url: str) -> int:
    if url.startswith("sqlite"):
        path = Path(url.split("sqlite:///", 1)[1])
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    finally:
        engine.dispose()


def read_report(report: str) -> dict[str, Any]:
    """What ``priorscan backfill`` printed: wall and CPU seconds per stage, items accepted and rejected."""
    stages = {name: float(value) for name, value in re.findall(
        r"(\w+) ([\d.]+) s", report.split("stages:")[-1].split("CPU:")[0])} if "stages:" in report else {}
    cpu = {name: float(value) for name, value in re.findall(r"(\w+) ([\d.]+) s", report.split("CPU:")[-1])} \
        if "CPU:" in report else {}
    accepted = re.search(r"(\d+) item\(s\) accepted, (\d+) rejected", report)
    return {"stages_s": stages, "stages_cpu_s": cpu, "accepted": int(accepted.group(1)) if accepted else None,
            "rejected": int(accepted.group(2)) if accepted else None}


def run_load(url: str, paths: list[Path], command: str = "backfill", extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run ``priorscan backfill`` (or ``ingest``) in its own process; its report, seconds, peak memory."""
    argv = [sys.executable, "-m", "priorscan.cli", "--db", url, command, *map(str, paths), "--no-progress", *extra]
    env = {**os.environ, "PRIORSCAN_LOG_LEVEL": "WARNING"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = done.stdout
    return {"exit": done.returncode, "seconds": round(seconds, 2), **read_report(report),
            "peak_rss_mb": round(after.ru_maxrss / 1024, 1), "cpu_s": round(
                (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 1),
            "db_bytes": _db_size(url), "report_tail": report.strip().splitlines()[-4:],
            "stderr_tail": done.stderr.strip().splitlines()[-3:] if done.returncode not in (0, 1) else []}


@contextlib.contextmanager
def _store(backend: str, workdir: Path) -> Iterator[str]:
    with fresh_store(backend, workdir, DEFAULT_PG_ADMIN) as url:
        yield url


def bench_extract(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started = time.monotonic()
    items = write_extract(workdir, args.people, args.format, args.seed)
    written = time.monotonic() - started
    with _store(args.backend, workdir) as url:
        result = run_load(url, [workdir / args.format], extra=("--workers", str(args.workers)))
    identity = result["stages_s"].get("identity") or float("nan")
    identity_cpu = result["stages_cpu_s"].get("identity") or float("nan")
    return {"what": f"{args.format} extract", "backend": args.backend, "people": args.people, "items": items,
            "generate_s": round(written, 1), "identity_items_per_s": round(items / identity, 1),
            "identity_items_per_cpu_s": round(items / identity_cpu, 1),
            "whole_load_items_per_s": round(items / result["seconds"], 1), **result}


def bench_dicom(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from bench.bench_imaging import write_objects

    (workdir / "dicom").mkdir()
    files = write_objects(workdir / "dicom", args.objects)
    with _store(args.backend, workdir) as url:
        result = run_load(url, [workdir / "dicom"], extra=("--workers", str(args.workers)))
    imaging = result["stages_s"].get("imaging") or float("nan")
    imaging_cpu = result["stages_cpu_s"].get("imaging") or float("nan")
    return {"what": "DICOM headers", "backend": args.backend, "objects": len(files),
            "imaging_objects_per_s": round(len(files) / imaging, 1),
            "imaging_objects_per_cpu_s": round(len(files) / imaging_cpu, 1),
            "whole_load_objects_per_s": round(len(files) / result["seconds"], 1), **result}


def bench_region(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    region = workdir / "region"
    subprocess.run([sys.executable, "-m", "priorscan.cli", "synth", "--people", str(args.people), "--out",
                    str(region), "--seed", str(args.seed)], check=True, capture_output=True)
    inputs = [region / name for name in ("hl7", "fhir", "dicom")]
    out: dict[str, Any] = {"what": "regionsynth region", "backend": args.backend, "people": args.people}
    for command in ("backfill", "ingest"):
        with _store(args.backend, workdir / command) as url:
            out[command] = run_load(url, inputs, command)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench bulk")
    parser.add_argument("what", choices=("extract", "dicom", "region"))
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--format", choices=("hl7", "fhir"), default="hl7")
    parser.add_argument("--objects", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
        workdir = Path(tmp)
        (workdir / "backfill").mkdir()
        (workdir / "ingest").mkdir()
        run = {"extract": bench_extract, "dicom": bench_dicom, "region": bench_region}[args.what]
        result = {"load_average_at_start": [round(x, 2) for x in load], **run(args, workdir),
                  "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0
