"""Duplicate check at regional scale: ``python -m bench dedupe COMMAND [--backend sqlite|postgresql] ...``.

Commands
--------
``build``    fill a store by bulk SQL (no ORM, no Python loop over rows): ``--patients`` regional patients with two
             source records each at different trusts (NHS number and hospital numbers), ``--studies`` studies over
             ten years with the consortium's modality mix (REFERENCE.md), and ``--orders`` outstanding orders.
``http``     serve the store with ``--servers`` ``priorscan serve`` processes and drive ``POST /api/v1/duplicate-check``
             (or ``--endpoint cds``: ``POST /cds-services/order-sign`` with ES384-signed JWTs) from ``--clients``
             concurrent keep-alive HTTP clients: first open loop at ``--rate`` requests per second for ``--seconds``
             (latency measured from each request's scheduled time, so a slow server cannot hide queueing), then closed
             loop as fast as the clients go (throughput). The clients share the cores with the servers, so they are
             kept cheap: every request (body, headers, CDS JWT) is serialised before a phase's clock starts, and a
             minimal HTTP/1.1 client sends it on a kept-alive socket (``client_cpu_ms_per_request`` is reported).
             ``--client wrk`` drives the closed loop with ``wrk`` instead (C; a Lua script makes each check with a
             fresh placer order number; ``--endpoint check`` only; install it with ``apt-get install -y wrk``).
``inprocess`` the CPU time of the check (or of a CDS ``order-sign`` call) in process, without HTTP: ``--checks``
             requests like ``http``'s, optionally under cProfile (``--profile``, printed to stderr).
``plan``     the query plans of the check's queries on the built store (indexes, not scans).
``quality``  ``priorscan synth`` + ``priorscan ingest`` + recall and precision against ``truth/repeats.csv``.

Every request carries a new placer order number, as order entry does, so each check also records an outstanding
order and, when priors are found, raises an alert: the write path is measured, not only the read path.
Results are printed as JSON and written to ``bench/results/dedupe-*.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from api.http.deps import token_hash
from bench.stores import persistent_store_url, settle
from mpi.nhs_number import check_digit
from priorscan.db import make_engine, migrate, session_factory
from priorscan.tables import ApiClient, CdsTrustedIssuer
from priorscan.trusts import NHS_NUMBER_SYSTEM, default_trusts

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench-dedupe"
RESULTS = ROOT / "bench" / "results"
TOKEN = "ps_bench_dedupe_not_a_secret"
TRUSTS = ("RTK", "RXC", "RPC", "RA2", "RYR")
CDS_ISSUER = "https://ehr.bench.example.nhs.uk"
CHUNK = 1_000_000
CHECK_PATH = "/api/v1/duplicate-check"
CDS_PATH = "/cds-services/order-sign"

#: What order entry asks for (modality, body site, laterality), weighted roughly as the consortium's activity.
REQUESTS = [("XR", "chest", None)] * 12 + [("CT", "head", None)] * 6 + [("CT", "abdomen and pelvis", None)] * 4 + \
    [("US", "abdomen", None)] * 6 + [("XR", "knee", "left"), ("XR", "wrist", "right"), ("XR", "lumbar spine", None),
                                     ("MR", "knee", "right"), ("MR", "head", None), ("MR", "lumbar spine", None),
                                     ("CT", "CTPA", None), ("CT", "chest", None), ("MG", "breast", "both"),
                                     ("US", "pelvis", None), ("XR", "ankle", "left"), ("NM", "whole body", None)]


# --- the store --------------------------------------------------------------------------------------------------

def store_url(backend: str, patients: int, studies: int) -> str:
    return persistent_store_url(backend, CACHE / f"dedupe-{patients}-{studies}.db",
                                f"priorscan_bench_dedupe_{patients}_{studies}")


class Dialect:
    """The few SQL expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, name: str) -> None:
        self.pg = name == "postgresql"

    def series(self, start: int, stop: int) -> str:
        if self.pg:
            return f"generate_series({start}::bigint, {stop}::bigint) AS s(i)"
        return (f"(WITH RECURSIVE s(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM s WHERE i < {stop}) "
                "SELECT i FROM s) AS s")

    def pad(self, expr: str, width: int) -> str:
        return f"lpad(({expr})::text, {width}, '0')" if self.pg else f"printf('%0{width}d', {expr})"

    def digit(self, expr: str, k: int) -> str:
        return f"substr({expr}, {k}, 1)::int" if self.pg else f"CAST(substr({expr}, {k}, 1) AS INTEGER)"

    def text(self, expr: str) -> str:
        return f"({expr})::text" if self.pg else f"CAST({expr} AS TEXT)"

    def days_ago(self, expr: str) -> str:
        return f"(CURRENT_DATE - ({expr})::int)" if self.pg else f"date('now', '-' || ({expr}) || ' days')"

    def at_ten(self, day: str) -> str:
        return f"(({day})::timestamp + interval '10 hours')" if self.pg else f"({day} || ' 10:00:00.000000')"

    @property
    def now(self) -> str:
        return "now()" if self.pg else "strftime('%Y-%m-%d %H:%M:%f000', 'now')"

    def trust(self, expr: str) -> str:
        whens = " ".join(f"WHEN {n} THEN '{ods}'" for n, ods in enumerate(TRUSTS))
        return f"(CASE ({expr}) % 5 {whens} END)"


def nhs_number_of(patient: int) -> str | None:
    """The NHS number the bench store gives regional patient ``patient`` (None when its check digit would be 10)."""
    nine = f"9{patient:08d}"
    digit = check_digit(nine)
    return None if digit is None else nine + str(digit)


def hospital_number_of(patient: int) -> str:
    return f"H{patient:08d}"


def _region_case(m: str, r: str) -> str:
    """Body region by modality bucket ``m`` and region bucket ``r`` (0-99)."""
    xr = (f"CASE WHEN {r} < 40 THEN 'chest' WHEN {r} < 50 THEN 'lumbar-spine' WHEN {r} < 55 THEN 'cervical-spine' "
          f"WHEN {r} < 60 THEN 'pelvis' WHEN {r} < 63 THEN 'head' WHEN {r} < 70 THEN 'knee' "
          f"WHEN {r} < 76 THEN 'wrist' WHEN {r} < 81 THEN 'ankle' WHEN {r} < 86 THEN 'hip' "
          f"WHEN {r} < 90 THEN 'shoulder' WHEN {r} < 94 THEN 'hand' WHEN {r} < 97 THEN 'foot' ELSE 'abdomen' END")
    us = (f"CASE WHEN {r} < 45 THEN 'abdomen' WHEN {r} < 75 THEN 'pelvis' WHEN {r} < 85 THEN 'neck' "
          f"WHEN {r} < 92 THEN 'breast' ELSE 'lower-limb' END")
    ct = (f"CASE WHEN {r} < 35 THEN 'head' WHEN {r} < 55 THEN 'chest' WHEN {r} < 75 THEN 'abdomen-pelvis' "
          f"WHEN {r} < 85 THEN 'chest-abdomen-pelvis' WHEN {r} < 91 THEN 'pulmonary-angiography' "
          f"WHEN {r} < 96 THEN 'cervical-spine' ELSE 'face' END")
    mr = (f"CASE WHEN {r} < 35 THEN 'head' WHEN {r} < 55 THEN 'lumbar-spine' WHEN {r} < 70 THEN 'knee' "
          f"WHEN {r} < 78 THEN 'cervical-spine' WHEN {r} < 85 THEN 'shoulder' WHEN {r} < 92 THEN 'pelvis' "
          "ELSE 'abdomen' END")
    return (f"CASE {m} WHEN 'XR' THEN {xr} WHEN 'US' THEN {us} WHEN 'CT' THEN {ct} WHEN 'MR' THEN {mr} "
            f"WHEN 'MG' THEN 'breast' WHEN 'NM' THEN CASE WHEN {r} < 60 THEN 'whole-body' ELSE 'chest' END "
            "ELSE 'abdomen' END")


_PAIRED = "('knee','wrist','ankle','hip','shoulder','hand','foot','breast','lower-limb')"
_DOSE = ("CASE WHEN modality = 'CT' THEN (CASE body_region WHEN 'head' THEN 1.5 WHEN 'chest' THEN 4.2 "
         "WHEN 'abdomen-pelvis' THEN 8.1 WHEN 'chest-abdomen-pelvis' THEN 10.0 WHEN 'pulmonary-angiography' THEN 4.5 "
         "WHEN 'cervical-spine' THEN 2.0 ELSE 0.8 END) WHEN modality = 'XR' THEN (CASE body_region "
         "WHEN 'chest' THEN 0.015 WHEN 'lumbar-spine' THEN 0.7 WHEN 'pelvis' THEN 0.4 WHEN 'abdomen' THEN 0.5 "
         "ELSE 0.01 END) WHEN modality = 'MG' THEN 0.4 WHEN modality = 'NM' THEN 3.0 WHEN modality = 'RF' THEN 2.0 "
         "ELSE NULL END")


def build(url: str, patients: int, studies: int, orders: int) -> dict[str, Any]:
    """Fill the store by bulk SQL unless it already holds ``studies`` studies; timings and counts."""
    engine = make_engine(url)
    migrate(engine)
    d = Dialect(engine.dialect.name)
    with engine.connect() as conn:
        have = conn.execute(text("select count(*) from study")).scalar() or 0
    if have >= studies:
        engine.dispose()
        return {"built": False, "studies": have}
    trusts = default_trusts()
    timings: dict[str, float] = {}
    nine = "n9"
    checksum = " + ".join(f"{d.digit(nine, k)} * {11 - k}" for k in range(1, 10))
    nhs = (f"CASE WHEN 11 - (({checksum}) % 11) = 11 THEN {nine} || '0' WHEN 11 - (({checksum}) % 11) = 10 "
           f"THEN NULL ELSE {nine} || {d.text(f'11 - (({checksum}) % 11)')} END")
    namespace = " ".join(f"WHEN '{ods}' THEN '{trusts.by_ods(ods).fhir_system}'" for ods in TRUSTS)
    statements: list[tuple[str, str, int]] = []
    for start in range(1, patients + 1, CHUNK):
        stop = min(patients, start + CHUNK - 1)
        statements.append(("regional_patient", f"""
            INSERT INTO regional_patient (id, status, nhs_number, family, given, birth_date, sex, postcode,
                                          created_at, updated_at)
            SELECT 'RB' || {d.pad('i', 10)}, 'active', nhs, 'FAMILY' || {d.text('i % 50000')},
                   'GIVEN' || {d.text('i % 3000')}, {d.days_ago('3000 + (i * 7919) % 32000')},
                   CASE WHEN i % 2 = 0 THEN 'female' ELSE 'male' END, 'GU1 ' || {d.text('i % 10')} || 'AA',
                   {d.now}, {d.now}
            FROM (SELECT i, {nhs} AS nhs FROM (SELECT i, '9' || {d.pad('i', 8)} AS {nine}
                                                FROM {d.series(start, stop)}) AS q) AS p""", stop - start + 1))
        for k in (0, 1):
            trust = d.trust(f"i + {2 * k}")
            statements.append(("source_record", f"""
                INSERT INTO source_record (id, namespace, local_id, trust_ods, source_kind, provisional, active,
                                           merged_into_id, nhs_number, nhs_number_valid, nhs_verification,
                                           regional_patient_id, link_state, link_manual, version, created_at,
                                           updated_at)
                SELECT 2 * i - 1 + {k}, CASE t {namespace} END, 'H' || {d.pad('i', 8)}, t, 'hl7', false, true, NULL,
                       rp.nhs_number, rp.nhs_number IS NOT NULL, '01', rp.id, 'match', false, 1, {d.now}, {d.now}
                FROM (SELECT i, {trust} AS t FROM {d.series(start, stop)}) AS s
                JOIN regional_patient rp ON rp.id = 'RB' || {d.pad('i', 10)}""", stop - start + 1))
    m = ("CASE WHEN mb < 470 THEN 'XR' WHEN mb < 705 THEN 'US' WHEN mb < 855 THEN 'CT' WHEN mb < 940 THEN 'MR' "
         "WHEN mb < 970 THEN 'MG' WHEN mb < 990 THEN 'NM' ELSE 'RF' END")
    for start in range(1, studies + 1, CHUNK):
        stop = min(studies, start + CHUNK - 1)
        statements.append(("study", f"""
            INSERT INTO study (id, study_instance_uid, source_record_id, performing_trust, accession_number, status,
                               modality, body_region, laterality, description, normalisation, study_date,
                               study_datetime, effective_dose_msv, created_at, updated_at)
            SELECT i, '2.25.9' || {d.text('i')}, sr, t, t || {d.pad('i', 9)},
                   CASE WHEN sb < 3 THEN 'cancelled' WHEN sb < 5 THEN 'scheduled' ELSE 'completed' END,
                   modality, body_region,
                   CASE WHEN body_region = 'breast' THEN 'both' WHEN body_region IN {_PAIRED}
                        THEN (CASE i % 2 WHEN 0 THEN 'left' ELSE 'right' END) ELSE 'none' END,
                   modality || ' ' || body_region, 'description', day, {d.at_ten('day')}, {_DOSE}, {d.now}, {d.now}
            FROM (SELECT i, sr, sb, {d.trust('(sr + 1) / 2 + 2 * ((sr + 1) % 2)')} AS t, modality,
                         {_region_case('modality', 'rb')} AS body_region,
                         CASE WHEN sb BETWEEN 3 AND 4 THEN {d.days_ago('-(i % 30)')}
                              ELSE {d.days_ago('(i * 22695477) % 3650')} END AS day
                  FROM (SELECT i, sr, sb, rb, {m} AS modality
                        FROM (SELECT i, 2 * (((i * 2654435761) % {patients}) + 1) - 1 + (i / 7) % 2 AS sr,
                                     (i * 7919 + 13) % 1000 AS sb, (i * 40503) % 1000 AS mb,
                                     ((i * 69069) / 1000) % 100 AS rb
                              FROM {d.series(start, stop)}) AS a) AS b) AS c""", stop - start + 1))
    statements.append(("imaging_order", f"""
        INSERT INTO imaging_order (requesting_trust, placer_order_number, source_record_id, status, priority,
                                   modality, body_region, laterality, description, ordered_at, created_at,
                                   updated_at)
        SELECT {d.trust('i')}, 'BO' || {d.pad('i', 9)}, 2 * (((i * 40503) % {patients}) + 1) - 1, 'active',
               'routine', 'CT', 'chest', 'none', 'CT chest', {d.at_ten(d.days_ago('i % 60'))}, {d.now}, {d.now}
        FROM {d.series(1, orders)}""", orders))
    for table, sql, rows in statements:
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text(sql))
        timings[table] = timings.get(table, 0.0) + time.perf_counter() - started
        print(f"  {table}: {rows} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with engine.begin() as conn:
        if d.pg:
            for table in ("source_record", "study"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    settle(engine)
    timings["settle"] = time.perf_counter() - started  # ANALYZE, and VACUUM on PostgreSQL
    engine.dispose()
    return {"built": True, "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "total_s": round(sum(timings.values()), 1)}


def cds_key_file(url: str) -> Path:
    """Where the CDS signing key of the store at ``url`` is written (one per store: other stores keep theirs)."""
    name = url.rsplit("/", 1)[-1].removesuffix(".db")
    return CACHE / f"cds-key-{name}.pem"


def prepare(url: str) -> None:
    """The schema brought up to date (once, before several servers start on it), the bench's API client and the
    trusted CDS issuer (a fresh ES384 key each run, written for the clients)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    key = ec.generate_private_key(ec.SECP384R1())
    cds_key_file(url).write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "bench", "alg": "ES384"}
    engine = make_engine(url)
    migrate(engine)
    with session_factory(engine)() as session:
        if session.scalars(select(ApiClient).where(ApiClient.token_hash == token_hash(TOKEN))).first() is None:
            session.add(ApiClient(name="bench-dedupe", token_hash=token_hash(TOKEN),
                                  scopes=["priorscan/duplicate-check", "priorscan/alerts"]))
        issuer = session.scalars(select(CdsTrustedIssuer).where(CdsTrustedIssuer.issuer == CDS_ISSUER)).first()
        if issuer is None:
            session.add(CdsTrustedIssuer(issuer=CDS_ISSUER, jwks={"keys": [jwk]}))
        else:
            issuer.jwks = {"keys": [jwk]}
        session.commit()
    engine.dispose()


# --- the load ---------------------------------------------------------------------------------------------------

def check_body(rng: random.Random, patients: int) -> dict[str, Any]:
    patient = rng.randint(1, patients)
    modality, site, side = rng.choice(REQUESTS)
    number = nhs_number_of(patient)
    if number is not None and rng.random() < 0.7:
        identifier = {"system": NHS_NUMBER_SYSTEM, "value": number}
    else:
        ods = TRUSTS[patient % 5]
        identifier = {"system": default_trusts().by_ods(ods).fhir_system, "value": hospital_number_of(patient)}
    request = {"modality": modality, "bodySite": site, "requestingTrust": rng.choice(TRUSTS),
               "placerOrderNumber": f"B{uuid.uuid4().hex[:20]}", "priority": "routine"}
    if side:
        request["laterality"] = side
    return {"patient": {"identifiers": [identifier]}, "request": request}


class CdsSigner:
    def __init__(self, url: str) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = serialization.load_pem_private_key(cds_key_file(url).read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.key = key

    def token(self, audience: str) -> str:
        import jwt

        now = int(time.time())
        # signed before a phase starts: valid for the phase (at most 180 s) and the preparation, within the 5 minutes
        # CDS Hooks allows
        return jwt.encode({"iss": CDS_ISSUER, "aud": audience, "iat": now, "exp": now + 280,
                           "jti": uuid.uuid4().hex}, self.key, algorithm="ES384", headers={"kid": "bench"})


def cds_body(rng: random.Random, patients: int) -> dict[str, Any]:
    check = check_body(rng, patients)
    modality, site = check["request"]["modality"], check["request"]["bodySite"]
    draft = {"resourceType": "ServiceRequest", "id": check["request"]["placerOrderNumber"], "status": "draft",
             "intent": "order", "code": {"text": f"{modality} {site}"},
             "orderDetail": [{"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM",
                                          "code": modality}]}],
             "subject": {"reference": "Patient/ehr-1"},
             "requester": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                          "value": check["request"]["requestingTrust"]}}}
    return {"hookInstance": str(uuid.uuid4()), "hook": "order-sign",
            "context": {"userId": "Practitioner/1", "patientId": "ehr-1", "draftOrders": {
                "resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]}},
            "prefetch": {"patient": {"resourceType": "Patient", "identifier": check["patient"]["identifiers"]}}}


_VERDICT = re.compile(rb'"verdict":\s*"(\w+)"')


def request_bytes(endpoint: str, port: int, body: dict[str, Any], auth: str) -> bytes:
    """One whole HTTP/1.1 request, serialised before the clock starts."""
    path = CDS_PATH if endpoint == "cds" else CHECK_PATH
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {auth}\r\nContent-Length: {len(payload)}\r\n\r\n")
    return head.encode("ascii") + payload


def verdict_of(endpoint: str, payload: bytes) -> str:
    """The verdict of a check, or whether a CDS answer carries cards, read without parsing the whole answer."""
    if endpoint == "cds":
        return "no-card" if b'"cards":[]' in payload else "card"
    found = _VERDICT.search(payload)
    return found.group(1).decode() if found else "unknown"


class Connection:
    """A minimal keep-alive HTTP/1.1 client over one socket: sends prepared bytes, reads a response with
    ``Content-Length`` (what uvicorn sends for JSON). Far less Python per request than ``http.client``, whose header
    parsing would compete with the servers for the same cores."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = self._open()

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def reopen(self) -> None:
        self.close()
        self.sock = self._open()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request, return its status and body (OSError / ValueError when the answer is not HTTP)."""
        self.sock.sendall(request)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            buffer += chunk
        head, _, body = buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = next((int(line.split(b":", 1)[1]) for line in lines[1:]
                       if line[:15].lower() == b"content-length:"), None)
        if length is None:
            raise ValueError("a response without Content-Length")
        while len(body) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            body += chunk
        return status, body


class Client(threading.Thread):
    """One keep-alive HTTP client; open loop on its own schedule, or closed loop, sending requests prepared before
    the clock started (bodies, and for CDS the signed JWTs). Should it run out (closed loop faster than
    ``--prebuild-rate``), it prepares more on the way and counts them."""

    def __init__(self, number: int, port: int, endpoint: str, patients: int, schedule: list[float] | None,
                 until: float, signer: CdsSigner | None, prepared: int) -> None:
        super().__init__(daemon=True)
        self.rng = random.Random(number)
        self.port, self.endpoint, self.patients = port, endpoint, patients
        self.schedule, self.until = schedule, until
        self.signer = signer
        self.latencies: list[float] = []
        self.lateness: list[float] = []
        self.verdicts: dict[str, int] = {}
        self.errors = 0
        self.prepared_late = 0
        self.requests = [self.prepare() for _ in range(len(schedule) if schedule is not None else prepared)]

    def prepare(self) -> bytes:
        if self.signer is not None:
            token = self.signer.token(f"http://127.0.0.1:{self.port}{CDS_PATH}")
            return request_bytes("cds", self.port, cds_body(self.rng, self.patients), token)
        return request_bytes("check", self.port, check_body(self.rng, self.patients), TOKEN)


    def run(self) -> None:
        conn = Connection(self.port)
        planned = iter(self.schedule) if self.schedule is not None else None
        prepared = iter(self.requests)
        due: float | None = None
        while True:
            if planned is not None:
                due = next(planned, None)
                if due is None:
                    break
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            elif time.perf_counter() >= self.until:
                break
            request = next(prepared, None)
            if request is None:
                request = self.prepare()
                self.prepared_late += 1
            started = time.perf_counter()
            try:
                status, payload = conn.exchange(request)
            except (OSError, ValueError):
                self.errors += 1
                conn.reopen()
                continue
            ended = time.perf_counter()
            if status != 200:
                self.errors += 1
                continue
            self.latencies.append(ended - started)
            if due is not None:
                self.lateness.append(ended - due)  # from the scheduled time: queueing in the client counts too
            verdict = verdict_of(self.endpoint, payload)
            self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1
        conn.close()


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 1) if ordered else 0.0


def _summary(clients: list[Client], seconds: float) -> dict[str, Any]:
    latencies = [x for c in clients for x in c.latencies]
    corrected = [x for c in clients for x in c.lateness] or latencies
    verdicts: dict[str, int] = {}
    for c in clients:
        for k, v in c.verdicts.items():
            verdicts[k] = verdicts.get(k, 0) + v
    return {"requests": len(latencies), "errors": sum(c.errors for c in clients),
            "throughput_per_s": round(len(latencies) / seconds, 1),
            "latency_ms": {"p50": _ms(latencies, 50), "p95": _ms(latencies, 95), "p99": _ms(latencies, 99),
                           "mean": round(1000 * statistics.fmean(latencies), 1) if latencies else 0.0},
            "latency_from_schedule_ms": {"p50": _ms(corrected, 50), "p95": _ms(corrected, 95),
                                         "p99": _ms(corrected, 99)},
            "verdicts": verdicts, "prepared_during_run": sum(c.prepared_late for c in clients)}


def drive(ports: list[int], args: argparse.Namespace, url: str, rate: float | None, seconds: float,
          seed: int = 0) -> dict[str, Any]:
    """Run ``args.clients`` clients for ``seconds``; each phase takes its own ``seed``, so that one phase's orders do
    not become the next phase's outstanding orders for the very same patients. Every request is prepared before the
    clock starts; the load generator's own CPU per request is reported (it shares the cores with the servers)."""
    clients = args.clients
    signer = CdsSigner(url) if args.endpoint == "cds" else None
    if signer is not None and seconds > 180:
        raise SystemExit("--endpoint cds: a phase may last at most 180 s (its JWTs are signed before it starts)")
    prebuild_rate = args.prebuild_rate or (400.0 if args.endpoint == "cds" else 800.0)
    per_client = int(prebuild_rate * seconds / clients) + 1
    threads = []
    for n in range(clients):
        schedule = None
        if rate:
            interval = clients / rate
            schedule = [n * interval / clients + k * interval for k in range(int(seconds / interval))]
        threads.append(Client(seed * 1000 + n, ports[n % len(ports)], args.endpoint, args.patients, schedule,
                              0.0, signer, per_client))
    start = time.perf_counter() + 0.2
    for t in threads:  # schedules are relative until now: preparing the requests took a while
        t.schedule = [start + at for at in t.schedule] if t.schedule is not None else None
        t.until = start + seconds
    cpu = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    duration = time.perf_counter() - start  # the real duration: a slow server stretches it
    result = _summary(threads, duration)
    result["client_cpu_ms_per_request"] = round(1000 * (time.process_time() - cpu) / max(1, result["requests"]), 3)
    return result


# --- wrk (optional load generator: C, closed loop only) -------------------------------------------------------

WRK_INSTALL = "apt-get install -y wrk  (as root; Debian/Ubuntu package 'wrk')"


def wrk_script(patients: int, nonce: str) -> str:
    """A wrk Lua script sending duplicate checks like :func:`check_body`: a random patient by NHS number (70%) or
    hospital number, a procedure from :data:`REQUESTS`, and a fresh placer order number per request."""
    trusts = default_trusts()
    systems = ", ".join(f'"{trusts.by_ods(ods).fhir_system}"' for ods in TRUSTS)
    wanted = ", ".join("{" + ", ".join(json.dumps(x) if x else "nil" for x in (m, site, side)) + "}"
                       for m, site, side in REQUESTS)
    return f"""-- generated by bench/bench_dedupe.py: fresh placer order number per request
local TRUSTS = {{{", ".join(f'"{t}"' for t in TRUSTS)}}}
local SYSTEMS = {{{systems}}}
local REQUESTS = {{{wanted}}}
local PATIENTS = {patients}
local NONCE = "{nonce}"
local counter = 0
local next_id = 0
local headers = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {TOKEN}"}}

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
end

function init(args)
  math.randomseed(os.time() + id * 7919)
end

local function nhs_number(p)
  local nine = string.format("9%08d", p)
  local total = 0
  for k = 1, 9 do total = total + tonumber(nine:sub(k, k)) * (11 - k) end
  local check = 11 - (total % 11)
  if check == 11 then check = 0 end
  if check == 10 then return nil end
  return nine .. tostring(check)
end

request = function()
  counter = counter + 1
  local p = math.random(1, PATIENTS)
  local number = nhs_number(p)
  local identifier
  if number ~= nil and math.random() < 0.7 then
    identifier = string.format('{{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"%s"}}', number)
  else
    identifier = string.format('{{"system":"%s","value":"H%08d"}}', SYSTEMS[(p % 5) + 1], p)
  end
  local wanted = REQUESTS[math.random(1, #REQUESTS)]
  local side = ""
  if wanted[3] ~= nil then side = string.format(',"laterality":"%s"', wanted[3]) end
  local body = string.format(
    '{{"patient":{{"identifiers":[%s]}},"request":{{"modality":"%s","bodySite":"%s","requestingTrust":"%s",' ..
    '"placerOrderNumber":"W%s-%d-%d","priority":"routine"%s}}}}',
    identifier, wanted[1], wanted[2], TRUSTS[math.random(1, 5)], NONCE, id, counter, side)
  return wrk.format("POST", "{CHECK_PATH}", headers, body)
end

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status +
    summary.errors.timeout
  io.write(string.format('WRK-RESULT {{"requests":%d,"duration_us":%d,"errors":%d,"non_2xx":%d,' ..
    '"p50_us":%d,"p95_us":%d,"p99_us":%d,"mean_us":%.1f}}\\n', summary.requests, summary.duration, errors,
    summary.errors.status, latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean))
end
"""


def drive_wrk(ports: list[int], args: argparse.Namespace, seconds: float, seed: int) -> dict[str, Any]:
    """Closed loop with ``wrk`` (``--clients`` connections over the servers' ports, two threads per port at most).
    Debian's wrk cannot pace requests, so there is no paced phase with it."""
    import shutil
    import tempfile

    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit(f"--client wrk needs wrk on PATH: {WRK_INSTALL}")
    script = Path(tempfile.mkstemp(suffix=".lua", prefix="bench-dedupe-")[1])
    script.write_text(wrk_script(args.patients, f"{seed}x{os.getpid()}"))
    try:
        runs = []
        per_port = max(1, args.clients // len(ports))
        for port in ports:  # one wrk per server port, all at once
            runs.append(subprocess.Popen([wrk, "-t", str(min(2, per_port)), "-c", str(per_port), "-d",
                                          f"{int(seconds)}s", "--latency", "-s", str(script),
                                          f"http://127.0.0.1:{port}"], stdout=subprocess.PIPE, text=True))
        results = []
        for run in runs:
            out, _ = run.communicate(timeout=seconds + 60)
            line = next((x for x in out.splitlines() if x.startswith("WRK-RESULT ")), None)
            if line is None:
                raise RuntimeError("wrk printed no result:\n" + out[-2000:])
            results.append(json.loads(line.split(" ", 1)[1]))
    finally:
        script.unlink(missing_ok=True)
    requests = sum(r["requests"] for r in results)
    duration = max(r["duration_us"] for r in results) / 1e6
    return {"client": "wrk", "requests": requests, "errors": sum(r["errors"] for r in results),
            "throughput_per_s": round(requests / duration, 1),
            # percentiles per wrk process; with one per server, the worst of them is reported
            "latency_ms": {q: round(max(r[f"{q}_us"] for r in results) / 1000, 1) for q in ("p50", "p95", "p99")}}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_servers(url: str, count: int) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    """``count`` ``priorscan serve`` processes on free ports (HTTP only), sharing the store."""
    env = dict(os.environ, PRIORSCAN_DB=url, PRIORSCAN_ENV="test", PRIORSCAN_LOG_LEVEL="WARNING")
    processes, ports = [], []
    log = open(CACHE / "servers.log", "ab")  # noqa: SIM115 - closed with the processes
    for _ in range(count):
        port = _free_port()
        processes.append(subprocess.Popen([str(ROOT / ".venv" / "bin" / "priorscan"), "serve", "--host",
                                           "127.0.0.1", "--port", str(port), "--mllp-port", "0"],
                                          env=env, stdout=log, stderr=log))
        ports.append(port)
    deadline = time.time() + 60
    for port in ports:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("the servers did not start; see " + str(CACHE / "servers.log"))
            time.sleep(0.2)
    return processes, ports


def stop_servers(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (Linux /proc), so a figure per request survives a busy machine."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def run_http(url: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.client == "wrk" and args.endpoint == "cds":
        raise SystemExit("--client wrk drives --endpoint check only (CDS JWTs are signed by the Python client)")
    prepare(url)
    processes, ports = start_servers(url, args.servers)
    pids = [p.pid for p in processes]
    try:
        phase = int(time.time()) % 100000 * 10  # new patients each run and each phase
        drive(ports, args, url, None, 5, seed=phase)  # warm-up: caches, pools
        results = {}
        phases = (("paced", args.rate), ("closed_loop", None)) if args.client == "python" else (("closed_loop", None),)
        for n, (name, rate) in enumerate(phases, start=1):
            load, cpu = _load(), cpu_seconds(pids)
            if args.client == "wrk":
                result = drive_wrk(ports, args, args.seconds, seed=phase + n)
            else:
                result = drive(ports, args, url, rate, args.seconds, seed=phase + n)
            used = cpu_seconds(pids) - cpu
            result["server_cpu_ms_per_request"] = round(1000 * used / max(1, result["requests"]), 2)
            result["load_average_before"] = load
            results[name] = result
    finally:
        stop_servers(processes)
    return results


# --- in process ---------------------------------------------------------------------------------------------------

def _check_request(body: dict[str, Any]) -> Any:
    """A :func:`check_body` as the :class:`dedupe.CheckRequest` the API would build from it."""
    from dedupe import CheckRequest, PatientQuery, ProcedureQuery

    wanted = body["request"]
    return CheckRequest(PatientQuery(identifiers=tuple((i["system"], i["value"])
                                                       for i in body["patient"]["identifiers"])),
                        ProcedureQuery(modality=wanted["modality"], body_site=wanted["bodySite"],
                                       laterality=wanted.get("laterality"), priority=wanted["priority"],
                                       requesting_trust=wanted["requestingTrust"],
                                       placer_order_number=wanted["placerOrderNumber"]), channel="api")


def in_process(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """CPU time of the check itself, without HTTP: ``run_check`` + commit (``--endpoint check``), or CDS JWT
    verification + ``run_hook`` + commit (``--endpoint cds``), ``--checks`` times after a warm-up of 50;
    ``--profile`` adds cProfile's top functions by cumulative and by own time."""
    import cProfile
    import io
    import pstats

    from dedupe import (
        CDS_HOOKS,
        active_rules,
        patient_from_resource,
        run_check,
        run_hook,
        verify_cds_jwt,
    )
    from priorscan.audit import Agent
    from priorscan.unit_of_work import unit_of_work

    prepare(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    trusts, rules, agent = default_trusts(), active_rules(None), Agent("client", "bench-dedupe")
    rng = random.Random(int(time.time()))
    signer = CdsSigner(url) if args.endpoint == "cds" else None
    audience = "http://127.0.0.1/cds-services/order-sign"
    assert "order-sign" in CDS_HOOKS

    def requests(count: int) -> list[tuple[Any, str | None]]:
        """Bodies (and signed tokens) made before the clock starts: the client's work is not measured."""
        if signer is None:
            return [(_check_request(check_body(rng, args.patients)), None) for _ in range(count)]
        return [(cds_body(rng, args.patients), signer.token(audience)) for _ in range(count)]

    def one(request: Any, token: str | None) -> str:
        if token is None:
            with unit_of_work(sessions, write=True, immediate=False) as session:  # as the route runs it
                outcome = run_check(session, trusts, rules, request, agent=agent)
            return outcome.verdict
        client = verify_cds_jwt(token, sessions, audiences=[audience])
        patient = patient_from_resource(request["prefetch"]["patient"])
        with unit_of_work(sessions, write=True, immediate=False) as session:
            result = run_hook(session, trusts, rules, "order-sign", request, patient,
                              agent=Agent("client", f"cds:{client.issuer}"))
        return "card" if result.cards else "no-card"

    for request, token in requests(50):
        one(request, token)
    measured = requests(args.checks)
    verdicts: dict[str, int] = {}
    profiler = cProfile.Profile() if args.profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    for request, token in measured:
        verdict = one(request, token)
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    if profiler is not None:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    engine.dispose()
    result: dict[str, Any] = {"endpoint": args.endpoint, "checks": args.checks,
                              "cpu_ms_per_check": round(1000 * cpu / args.checks, 3),
                              "wall_ms_per_check": round(1000 * wall / args.checks, 3), "verdicts": verdicts,
                              "load_average": _load(), "profiled": bool(profiler)}
    if profiler is not None:
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(40)
            print(out.getvalue(), file=sys.stderr)
    return result


# --- plans and quality --------------------------------------------------------------------------------------------

def plans(url: str) -> dict[str, list[str]]:
    """EXPLAIN of the check's own queries, with real parameter values."""
    from sqlalchemy.dialects import postgresql, sqlite

    from dedupe.alerts import _ALERT_OF_ORDER
    from dedupe.priors import _EXAMS

    engine = make_engine(url)
    dialect = postgresql.dialect() if engine.dialect.name == "postgresql" else sqlite.dialect()
    params = {"regional_id": "RB0000012345", "since": date(2020, 1, 1), "trust": "RXC", "placer": "X"}
    found: dict[str, list[str]] = {}
    with engine.connect() as conn:
        prefix = "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
        for name, statement in (("patient_exams", _EXAMS), ("alert_of_order", _ALERT_OF_ORDER)):
            bound = statement.params({k: v for k, v in params.items() if k in statement.compile().params})
            sql = str(bound.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            found[name] = [" | ".join(str(c) for c in row) for row in conn.exec_driver_sql(prefix + sql)]
        nhs = nhs_number_of(12345) or ""
        mark = "%s" if engine.dialect.name == "postgresql" else "?"
        found["source_record_by_nhs_number"] = [" | ".join(str(c) for c in row) for row in conn.exec_driver_sql(
            f"{prefix}SELECT id FROM source_record WHERE nhs_number = {mark}", (nhs,))]
    engine.dispose()
    return found


def quality(people: int, seed: int) -> dict[str, Any]:
    from dedupe import evaluate_repeats
    from priorscan.cli import main as priorscan

    region = CACHE / f"region-{people}-{seed}"
    url = f"sqlite:///{CACHE / f'region-{people}-{seed}.db'}"
    timings = {}
    if not (region / "truth" / "repeats.csv").exists():
        started = time.perf_counter()
        priorscan(["synth", "--people", str(people), "--out", str(region), "--seed", str(seed)])
        timings["synth_s"] = round(time.perf_counter() - started, 1)
    engine = make_engine(url)
    migrate(engine)
    with engine.connect() as conn:
        loaded = conn.execute(text("select count(*) from imaging_order")).scalar()
    if not loaded:
        started = time.perf_counter()
        priorscan(["--db", url, "ingest", "--no-progress", *[str(p) for p in sorted(region.iterdir())
                                                              if p.name != "truth"]])
        timings["ingest_s"] = round(time.perf_counter() - started, 1)
    with session_factory(engine)() as session:
        figures = evaluate_repeats(session, region / "truth" / "repeats.csv")
    engine.dispose()
    return {"people": people, "seed": seed, **timings, **figures.as_dict()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dedupe", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "http", "inprocess", "plan", "quality"])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--patients", type=int, default=1_500_000)
    parser.add_argument("--studies", type=int, default=10_000_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--endpoint", choices=["check", "cds"], default="check")
    parser.add_argument("--servers", type=int, default=2, help="priorscan serve processes")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--client", choices=["python", "wrk"], default="python",
                        help=f"http: the load generator (wrk: closed loop, --endpoint check only; {WRK_INSTALL})")
    parser.add_argument("--prebuild-rate", type=float, default=None,
                        help="http: requests per second of a closed-loop phase prepared in advance "
                             "(default 800 for checks, 400 for CDS, whose JWTs take longer to sign)")
    parser.add_argument("--rate", type=float, default=300.0, help="paced requests per second (all clients)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--checks", type=int, default=1000, help="inprocess: checks measured")
    parser.add_argument("--profile", action="store_true", help="inprocess: run under cProfile")
    parser.add_argument("--people", type=int, default=1500, help="quality: people of the synthetic region")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.command == "quality":
        result: dict[str, Any] = quality(args.people, args.seed)
    else:
        url = store_url(args.backend, args.patients, args.studies)
        if args.command == "build":
            result = build(url, args.patients, args.studies, args.orders)
        elif args.command == "plan":
            result = plans(url)
        elif args.command == "inprocess":
            result = in_process(url, args)
        else:
            result = run_http(url, args)
        result = {"backend": args.backend, "patients": args.patients, "studies": args.studies, **result}
    if args.command == "http":
        result.update(endpoint=args.endpoint, servers=args.servers, clients=args.clients, rate=args.rate,
                      seconds=args.seconds, client=args.client)
    print(json.dumps(result, indent=2))
    endpoint = args.endpoint if args.command in ("http", "inprocess") else ""
    name = f"dedupe-{args.command}-{endpoint}-{args.backend}-{int(time.time())}"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    return 0
