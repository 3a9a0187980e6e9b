"""Feeds: ADT throughput over MLLP, and ``$ihe-pix`` / ``$match`` latency over HTTP, on SQLite and PostgreSQL.

Usage::

    python -m bench feeds [--backends sqlite,postgresql] [--only mllp|queries]
                          [--messages 6000] [--connections 5] [--preload 100000]
                          [--records 1000000] [--pix 2000] [--match 1000] [--seed 7] [--json FILE]

Both parts run a real ``priorscan serve`` process (``python -m priorscan.cli serve``) on a fresh store, so the client
here does not share the server's interpreter:

- **MLLP**: the store is first loaded with ``--preload`` source records (bulk SQL, below); then ``--connections``
  trust feeds send ``--messages`` ADT messages between them over MLLP with the ``hl7`` package's client, one message
  at a time per connection as interface engines do: new registrations (A04; a fifth of them people already known at
  another trust, so link-on-write has a match to find), updates (A08 with a new address) and A31 person updates, in
  HL7 2.3, 2.4 and 2.5 dialects. Every message is linked on write and committed before its ACK. Throughput is
  messages acknowledged AA per second of wall time after a warm-up; the server's CPU time per message (from
  ``/proc``, with its MLLP writer processes) is reported beside it, as it bounds the rate this machine can give
  and varies far less with the load of other work. Then, in this process on the same store, 600 further messages:
  one per commit (``process_message``), in groups of ``--connections`` per commit (``process_messages``, what the
  listener does under load) and the identity work alone, each with its rate and CPU time per message.
- **Queries**: the store is loaded with ``--records`` source records (bulk SQL), then ``$ihe-pix`` (a hospital number
  of a random person) and ``$match`` (a random person, exact, with a misspelt family name, or without NHS number and
  with another postcode) are timed one request at a time over HTTP with a keep-alive client.

Bulk loading: a synthetic population (Faker en_GB name and postcode pools, numpy draws; 1 to 3 trusts per person)
is written with :func:`mpi.batch.bulk_load` (multi-row INSERTs of source records with their match fields and
blocking keys), then one regional patient per person is inserted and the records assigned to it with one UPDATE
(``UPDATE … FROM`` a temporary table on PostgreSQL, an executemany on SQLite), then the store is settled as a running
one would be (:func:`bench.stores.settle`: ``VACUUM (ANALYZE)`` on PostgreSQL). No HL7 is parsed and no record is
scored while loading.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.stores import settle

DEFAULT_PG_ADMIN = os.environ.get("PRIORSCAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TRUSTS = ("RTK", "RXC", "RA2", "RYR", "RPC")
#: How each trust's PAS writes HL7 (version, where the ODS code qualifies the hospital number, segment end).
DIALECTS = {"RTK": ("2.4", "CX4", "\r"), "RXC": ("2.3", "CX6", "\n"), "RA2": ("2.5", "CX4", "\r"),
            "RYR": ("2.5", "CX6", "\n"), "RPC": ("2.4", "CX4", "\r")}


# --- a synthetic population -------------------------------------------------------------------------------------

@dataclass
class Population:
    """People as numpy columns (compact enough for millions), with the pools their values come from."""

    families: list[str]
    givens: dict[str, list[str]]
    postcodes: list[str]
    streets: list[str]
    family: np.ndarray
    given: np.ndarray
    sex: np.ndarray  # 0 female, 1 male
    born: np.ndarray  # date ordinal
    postcode: np.ndarray
    house: np.ndarray
    street: np.ndarray
    has_nhs: np.ndarray
    trusts: list[tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.family)

    def nhs(self, person: int) -> str | None:
        return nhs_number(person) if self.has_nhs[person] else None

    def hospital_number(self, person: int, trust: str) -> str:
        return hospital_number(person, trust)

    def fields(self, person: int) -> dict[str, Any]:
        sex = "male" if self.sex[person] else "female"
        return {"family": self.families[self.family[person]], "given": self.givens[sex][self.given[person]],
                "sex": sex, "birth_date": date.fromordinal(int(self.born[person])),
                "postcode": self.postcodes[self.postcode[person]],
                "address": f"{self.house[person]} {self.streets[self.street[person]]}"}

    def records(self) -> int:
        return sum(len(t) for t in self.trusts)


_NHS_BASES: list[int] = []


def nhs_number(person: int) -> str:
    """A valid NHS number in the 999 test range, distinct per person for the first 909 091 people (every nine-digit
    base 999xxxxxx with a valid Modulus 11 check digit, in order; beyond them the numbers repeat).

    The n-th person takes the n-th valid base, so no two people share a number. Stepping on to the next base when a
    check digit is impossible (as this did before 2026-12-07) gave about one person in eleven the next person's
    number, and a store fed as HL7, where the number arrives verified, merged them.
    """
    from mpi.nhs_number import check_digit

    if not _NHS_BASES:  # the Modulus 11 sum of 999xxxxxx over all a million bases at once
        n = np.arange(1_000_000)
        total = (10 + 9 + 8) * 9 + sum(((n // 10 ** (5 - i)) % 10) * (7 - i) for i in range(6))
        _NHS_BASES.extend(n[(11 - total % 11) != 10].tolist())
    base = f"999{_NHS_BASES[person % len(_NHS_BASES)]:06d}"
    return base + str(check_digit(base))


def hospital_number(person: int, trust: str) -> str:
    """A hospital number in the trust's own pattern (priorscan/data/trusts.toml)."""
    return {"RTK": f"BN{person:06d}", "RXC": f"E{person:07d}", "RPC": f"Q{person:06d}", "RA2": f"{person:08d}",
            "RYR": f"K{person:07d}"}[trust]


def make_population(people: int, seed: int) -> Population:
    from faker import Faker

    fake = Faker("en_GB")
    Faker.seed(seed)
    rng = np.random.default_rng(seed)
    families = list(dict.fromkeys(fake.last_name().upper() for _ in range(6000)))
    givens = {"female": list(dict.fromkeys(fake.first_name_female().upper() for _ in range(2500))),
              "male": list(dict.fromkeys(fake.first_name_male().upper() for _ in range(2500)))}
    postcodes = list(dict.fromkeys(fake.postcode() for _ in range(40000)))
    streets = [fake.street_name().upper() for _ in range(3000)]
    sex = rng.integers(0, 2, people)
    given = np.where(sex == 1, rng.integers(0, len(givens["male"]), people),
                     rng.integers(0, len(givens["female"]), people))
    start, end = date(1925, 1, 1).toordinal(), date(2024, 12, 31).toordinal()
    counts = rng.choice([1, 2, 3], size=people, p=[0.6, 0.3, 0.1])
    trusts = [tuple(rng.choice(TRUSTS, size=int(k), replace=False)) for k in counts]
    # Zipf-like surname frequencies: a few names are very common, as in a real population
    weights = 1.0 / np.arange(1, len(families) + 1) ** 0.9
    family = rng.choice(len(families), size=people, p=weights / weights.sum())
    return Population(families, givens, postcodes, streets, family, given, sex, rng.integers(start, end, people),
                      rng.integers(0, len(postcodes), people), rng.integers(1, 200, people),
                      rng.integers(0, len(streets), people), rng.random(people) > 0.05, trusts)


def people_for(records: int) -> int:
    return max(1, int(records / 1.5))


# --- bulk loading -----------------------------------------------------------------------------------------------

def regional_id(person: int) -> str:
    return f"RPB{person:09d}"


def bulk_load_population(url: str, population: Population, *, upto: int | None = None) -> tuple[int, float]:
    """Load people ``0 .. upto`` as linked source records (see the module docstring); (records, seconds)."""
    from sqlalchemy import func, insert, select, text

    from mpi.batch import bulk_load
    from mpi.records import Demographics
    from mpi.tables import RegionalPatient, SourceRecord
    from priorscan.db import make_engine, session_factory
    from priorscan.trusts import default_trusts

    trusts = default_trusts()
    upto = len(population) if upto is None else upto
    started = time.perf_counter()
    engine = make_engine(url)
    sessions = session_factory(engine)
    owners: list[int] = []

    def demographics() -> Iterator[Demographics]:
        for person in range(upto):
            values = population.fields(person)
            for trust in population.trusts[person]:
                owners.append(person)
                yield Demographics(namespace=trusts.by_ods(trust).fhir_system,
                                   local_id=hospital_number(person, trust), trust_ods=trust,
                                   nhs_number=population.nhs(person),
                                   nhs_verification="01" if population.has_nhs[person] else None, **values)

    with sessions() as session:
        first = (session.scalar(select(func.max(SourceRecord.id))) or 0) + 1
        count = bulk_load(session, demographics(), source_kind="bench")
        batch: list[dict[str, Any]] = []
        for person in range(upto):
            values = population.fields(person)
            batch.append({"id": regional_id(person), "status": "active", "nhs_number": population.nhs(person),
                          **{k: values[k] for k in ("family", "given", "birth_date", "sex", "postcode", "address")}})
            if len(batch) >= 20000:
                session.execute(insert(RegionalPatient), batch)
                batch.clear()
        if batch:
            session.execute(insert(RegionalPatient), batch)
        pairs = [(first + n, regional_id(person)) for n, person in enumerate(owners)]
        if engine.dialect.name == "postgresql":
            session.execute(text("CREATE TEMP TABLE bench_assign (record_id bigint, regional_id varchar(24))"))
            cursor = session.connection().connection.cursor()  # psycopg: COPY is the fast way in
            with cursor.copy("COPY bench_assign (record_id, regional_id) FROM STDIN") as copy:
                for pair in pairs:
                    copy.write_row(pair)
            session.execute(text("UPDATE source_record s SET regional_patient_id = a.regional_id, "
                                 "link_state = 'match', linked_by = 'bench' FROM bench_assign a "
                                 "WHERE s.id = a.record_id"))
        else:
            session.connection().exec_driver_sql(
                "UPDATE source_record SET regional_patient_id = ?, link_state = 'match', linked_by = 'bench' "
                "WHERE id = ?", [(rid, record) for record, rid in pairs])
        if engine.dialect.name == "postgresql":  # rows were inserted with explicit ids: move the sequence past them
            session.execute(text("SELECT setval(pg_get_serial_sequence('source_record', 'id'), "
                                 "(SELECT max(id) FROM source_record))"))
        session.commit()
    settle(engine)
    engine.dispose()
    return count, time.perf_counter() - started


# --- stores and servers -----------------------------------------------------------------------------------------

@contextlib.contextmanager
def fresh_store(backend: str, workdir: Path, pg_admin: str) -> Iterator[str]:
    """A migrated, empty store; PostgreSQL databases are dropped afterwards."""
    from sqlalchemy import create_engine

    from priorscan.db import open_store

    if backend == "sqlite":
        path = workdir / f"bench_{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite:///{path}"
        open_store(url).dispose()
        try:
            yield url
        finally:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    Path(str(path) + suffix).unlink()
        return
    name = f"priorscan_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = pg_admin.rsplit("/", 1)[0] + "/" + name
    open_store(url).dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(url: str, workdir: Path, *, mllp: bool) -> Iterator[tuple[int, int, int]]:
    """``priorscan serve`` in its own process; yields (HTTP port, MLLP port, process id)."""
    http_port, mllp_port = free_port(), free_port() if mllp else 0
    log_path = workdir / f"serve_{http_port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "priorscan.cli", "--db", url, "serve", "--port",
                                    str(http_port), "--mllp-port", str(mllp_port)], stdout=log, stderr=log,
                                   env={**os.environ, "PRIORSCAN_DB": url})
        try:
            deadline = time.monotonic() + 120
            for port in (p for p in (http_port, mllp_port) if p):
                while True:
                    if process.poll() is not None:
                        raise RuntimeError(f"priorscan serve exited; see {log_path}")
                    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"priorscan serve did not start; see {log_path}")
                    time.sleep(0.1)
            yield http_port, mllp_port, process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {"n": len(ordered), "median_ms": round(statistics.median(ordered), 2), "p95_ms": round(at(0.95), 2),
            "p99_ms": round(at(0.99), 2), "max_ms": round(ordered[-1], 2)}


# --- MLLP throughput --------------------------------------------------------------------------------------------

def _pid(population: Population, person: int, trust: str, *, moved: bool = False) -> str:
    values = population.fields(person)
    version, where, _ = DIALECTS[trust]
    local = hospital_number(person, trust)
    ids = f"{local}^^^{trust}^MR" if where == "CX4" else f"{local}^^^^MR^{trust}"
    nhs = population.nhs(person)
    if nhs:
        ids += f"~{nhs}^^^NHS^NH"
    house = values["address"] if not moved else f"{int(values['address'].split()[0]) + 1} NEW ROAD"
    postcode = values["postcode"] if not moved else population.postcodes[(population.postcode[person] + 7)
                                                                        % len(population.postcodes)]
    fields = ["PID", "1", "", ids, "", f"{values['family']}^{values['given']}^^^", "",
              values["birth_date"].strftime("%Y%m%d"), "M" if values["sex"] == "male" else "F", "", "",
              f"{house}^^GUILDFORD^SURREY^{postcode}^GBR^H", "", "01483 000000^PRN^PH"]
    fields += [""] * (32 - len(fields)) + (["NSTS01" if nhs else "NSTS07"] if version != "2.3" else [])
    return "|".join(fields).rstrip("|")


def adt_message(population: Population, person: int, trust: str, trigger: str, control: str, when: datetime, *,
                moved: bool = False) -> str:
    version, _, end = DIALECTS[trust]
    stamp = when.strftime("%Y%m%d%H%M%S")
    segments = [f"MSH|^~\\&|PAS|{trust}|PRIORSCAN|REGION|{stamp}||ADT^{trigger}|{control}|P|{version}",
                f"EVN|{trigger}|{stamp}", _pid(population, person, trust, moved=moved), "PV1|1|O"]
    if version == "2.3" and population.has_nhs[person]:
        segments.append("ZPI|1|01")
    return end.join(segments) + end


def feed_messages(population: Population, preloaded: int, total: int, seed: int) -> list[tuple[str, str]]:
    """(trust, ADT message) in sending order: half new people, a fifth people known at another trust, the rest
    updates."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    when = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
    new_person = preloaded
    for n in range(total):
        kind = rng.random()
        when += timedelta(seconds=1)
        control = f"B{n:09d}"
        if kind < 0.5:  # a new registration
            person, trust = new_person, rng.choice(TRUSTS)
            new_person += 1
            out.append((trust, adt_message(population, person, trust, "A04", control, when)))
        elif kind < 0.7:  # someone known at one trust registers at another
            person = rng.randrange(preloaded)
            others = [t for t in TRUSTS if t not in population.trusts[person]] or list(TRUSTS)
            trust = rng.choice(others)
            out.append((trust, adt_message(population, person, trust, "A04", control, when)))
        else:  # an update of a known record: moved house
            person = rng.randrange(preloaded)
            trust = rng.choice(population.trusts[person])
            trigger = "A08" if kind < 0.9 else "A31"
            out.append((trust, adt_message(population, person, trust, trigger, control, when, moved=True)))
    return out


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree_cpu_seconds(pid: int) -> float:
    """:func:`process_cpu_seconds` of a process and of its live children (``serve``'s MLLP writer processes)."""
    total = process_cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            total += process_cpu_seconds(int(entry.name))
    return total


def in_process_rates(url: str, messages: list[str], *, batch: int) -> dict[str, float]:
    """Single-thread, in-process rates on the same store (a third of ``messages`` each): the whole feed service one
    message per commit, the same with ``batch`` messages per commit (the listener's group commit), and the identity
    work alone; with the CPU time each took per message."""
    from api.context import AppContext
    from api.feeds.hl7_service import Incoming, process_message, process_messages
    from mpi import PatientIndex, apply_adt, read_adt
    from priorscan.audit import Agent
    from priorscan.hl7v2 import parse_message
    from priorscan.settings import Settings

    context = AppContext.open(Settings(db=url), upgrade=False)
    agent = Agent("feed", "bench")
    third = len(messages) // 3
    parts = [messages[:third], messages[third:2 * third], messages[2 * third:]]
    out: dict[str, float] = {}

    def timed(name: str, count: int, work: Any) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        work()
        out[f"{name}_per_second"] = round(count / (time.perf_counter() - started), 1)
        out[f"{name}_cpu_ms_per_message"] = round(1000 * (time.process_time() - cpu) / count, 2)

    def one_by_one() -> None:
        for message in parts[0]:
            process_message(context, message, channel="bench", agent=agent)

    def grouped() -> None:
        for n in range(0, len(parts[1]), batch):
            process_messages(context, [Incoming(m, agent) for m in parts[1][n:n + batch]], channel="bench")

    def identity() -> None:
        for message in parts[2]:
            with context.sessions() as session:
                apply_adt(PatientIndex(session, context.trusts),
                          read_adt(parse_message(message), context.trusts), actor="bench")
                session.commit()

    timed("process_message", len(parts[0]), one_by_one)
    timed(f"process_messages_{batch}_per_commit", len(parts[1]), grouped)
    timed("identity_work_only", len(parts[2]), identity)
    context.engine.dispose()
    return out


def mllp_throughput(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from hl7.client import MLLPClient

    needed = people_for(args.preload) + args.messages + 400
    population = make_population(needed, args.seed)
    preload_people = people_for(args.preload)
    with fresh_store(backend, workdir, args.pg_admin) as url:
        loaded, load_s = bulk_load_population(url, population, upto=preload_people)
        ordered = feed_messages(population, preload_people, args.messages + 200 + 600, args.seed)
        baseline = [message for _, message in ordered[-600:]]
        warm: dict[str, list[str]] = {t: [] for t in TRUSTS}
        timed: dict[str, list[str]] = {t: [] for t in TRUSTS}
        for n, (trust, message) in enumerate(ordered[:-600]):
            (warm if n < 200 else timed)[trust].append(message)
        trusts = [t for t in TRUSTS if timed[t]][: args.connections]
        with serve(url, workdir, mllp=True) as (_, mllp_port, server_pid):
            codes: Counter[str] = Counter()
            latencies: list[float] = []
            lock = threading.Lock()

            def run(trust: str, messages: list[str]) -> None:
                with MLLPClient("127.0.0.1", mllp_port) as client:
                    for message in messages:
                        t0 = time.perf_counter()
                        reply = client.send_message(message)
                        while not reply.endswith(b"\x1c\x0d"):
                            reply += client.socket.recv(4096)
                        elapsed = (time.perf_counter() - t0) * 1000
                        code = reply.split(b"MSA|", 1)[1][:2].decode()
                        with lock:
                            codes[code] += 1
                            latencies.append(elapsed)

            for trust in trusts:
                run(trust, warm[trust])
            codes.clear()
            latencies.clear()
            threads = [threading.Thread(target=run, args=(t, timed[t])) for t in trusts]
            started, cpu_before = time.perf_counter(), process_tree_cpu_seconds(server_pid)
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
            server_cpu = process_tree_cpu_seconds(server_pid) - cpu_before
        sent = sum(len(timed[t]) for t in trusts)
        load = [round(x, 1) for x in os.getloadavg()]
        rates = in_process_rates(url, baseline, batch=len(trusts))
    return {"backend": backend, "preloaded_records": loaded, "preload_seconds": round(load_s, 1),
            "messages": sent, "connections": len(trusts), "seconds": round(wall, 2),
            "messages_per_second": round(codes.get("AA", 0) / wall, 1), "ack_codes": dict(codes),
            "server_cpu_ms_per_message": round(1000 * server_cpu / max(1, sent), 2),
            "per_message": percentiles(latencies), "load_average": load, "single_thread_in_process": rates}


# --- query latency ----------------------------------------------------------------------------------------------

def _token(url: str, scopes: list[str]) -> str:
    from api.http.deps import token_hash
    from priorscan.db import make_engine, session_factory
    from priorscan.tables import ApiClient

    token = "ps_" + secrets.token_urlsafe(24)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        session.add(ApiClient(name="bench", token_hash=token_hash(token), scopes=scopes))
        session.commit()
    engine.dispose()
    return token


def _probe(population: Population, person: int, rng: random.Random) -> dict[str, Any]:
    values = population.fields(person)
    family, postcode, nhs = values["family"], values["postcode"], population.nhs(person)
    variant = rng.randrange(3)
    if variant == 1 and len(family) > 3:  # a misspelt family name
        i = rng.randrange(1, len(family) - 1)
        family = family[:i] + family[i + 1] + family[i] + family[i + 2:]
    elif variant == 2:  # no NHS number, moved house
        nhs, postcode = None, population.postcodes[(population.postcode[person] + 11) % len(population.postcodes)]
    resource: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family, "given": [values["given"]]}],
                                "gender": values["sex"], "birthDate": values["birth_date"].isoformat(),
                                "address": [{"postalCode": postcode}]}
    if nhs:
        resource["identifier"] = [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}]
    return {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": resource},
                                                        {"name": "count", "valueInteger": 5}]}


def query_latency(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import httpx

    from priorscan.trusts import default_trusts

    trusts = default_trusts()
    population = make_population(people_for(args.records), args.seed)
    rng = random.Random(args.seed)
    with fresh_store(backend, workdir, args.pg_admin) as url:
        loaded, load_s = bulk_load_population(url, population)
        token = _token(url, ["system/Patient.rs"])
        with serve(url, workdir, mllp=False) as (http_port, _, _):
            base = f"http://127.0.0.1:{http_port}/fhir"
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
            with httpx.Client(headers=headers, timeout=30) as client:
                def pix() -> float:
                    person = rng.randrange(len(population))
                    trust = rng.choice(population.trusts[person])
                    source = f"{trusts.by_ods(trust).fhir_system}|{hospital_number(person, trust)}"
                    t0 = time.perf_counter()
                    response = client.get(f"{base}/Patient/$ihe-pix", params={"sourceIdentifier": source})
                    elapsed = (time.perf_counter() - t0) * 1000
                    assert response.status_code == 200, response.text
                    return elapsed

                hits = 0

                def match() -> float:
                    nonlocal hits
                    person = rng.randrange(len(population))
                    body = _probe(population, person, rng)
                    t0 = time.perf_counter()
                    response = client.post(f"{base}/Patient/$match", json=body)
                    elapsed = (time.perf_counter() - t0) * 1000
                    assert response.status_code == 200, response.text
                    entries = response.json().get("entry") or []
                    hits += bool(entries and entries[0]["resource"]["id"] == regional_id(person))
                    return elapsed

                for _ in range(50):
                    pix()
                    match()
                hits = 0
                pix_ms = [pix() for _ in range(args.pix)]
                match_ms = [match() for _ in range(args.match)]
    return {"backend": backend, "records": loaded, "people": len(population), "load_seconds": round(load_s, 1),
            "load_average": [round(x, 1) for x in os.getloadavg()],
            "ihe_pix": percentiles(pix_ms), "match": percentiles(match_ms),
            "match_top1_is_the_person": round(hits / max(1, args.match), 3)}


# --- main -------------------------------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench feeds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--only", choices=["mllp", "queries"])
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--connections", type=int, default=5)
    parser.add_argument("--preload", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--pix", type=int, default=2000)
    parser.add_argument("--match", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="priorscan-bench-feeds-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"command": "python -m bench feeds " + " ".join(argv), "cpus": os.cpu_count(),
                               "load_average_before": [round(x, 1) for x in os.getloadavg()],
                               "started": datetime.now(UTC).isoformat(timespec="seconds"), "mllp": [], "queries": []}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if args.only in (None, "mllp"):
            result = mllp_throughput(backend, args, workdir)
            results["mllp"].append(result)
            print(json.dumps(result), flush=True)
        if args.only in (None, "queries"):
            result = query_latency(backend, args, workdir)
            results["queries"].append(result)
            print(json.dumps(result), flush=True)
    results["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    with io.StringIO() as out:
        for r in results["mllp"]:
            out.write(f"MLLP {r['backend']:<10} {r['messages']} msgs / {r['connections']} connections: "
                      f"{r['messages_per_second']} AA/s; per message median {r['per_message']['median_ms']} ms, "
                      f"p95 {r['per_message']['p95_ms']} ms, p99 {r['per_message']['p99_ms']} ms\n")
        for r in results["queries"]:
            out.write(f"FHIR {r['backend']:<10} {r['records']} records: $ihe-pix median {r['ihe_pix']['median_ms']} "
                      f"p95 {r['ihe_pix']['p95_ms']} p99 {r['ihe_pix']['p99_ms']} ms; $match median "
                      f"{r['match']['median_ms']} p95 {r['match']['p95_ms']} p99 {r['match']['p99_ms']} ms\n")
        print(out.getvalue(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
