"""Reliability of the HTTP API under hostile input: the longer run of tests/fuzz, with audit coverage of patient reads.

``python -m bench fuzz [--examples N] [--fhir N] [--dicom N] [--db URL]`` serves priorscan on a fresh store (SQLite
in a temporary folder unless ``--db`` names an empty PostgreSQL database), seeds a few patients, studies, alerts and
an identity review item, then

1. runs schemathesis over every operation of the OpenAPI schema (DICOMweb apart: its bodies are DICOM), ``--examples``
   generated requests each, authenticated with an admin token, counting 5xx answers and answers the schema does not
   document;
2. posts ``--fhir`` hostile FHIR resources (hypothesis: any JSON in the fields of Patient, ImagingStudy,
   ServiceRequest, alone and in transaction Bundles) to the FHIR endpoints;
3. posts ``--dicom`` corrupt DICOM objects (truncated, flipped, spliced, garbage) to STOW-RS;
4. reads a patient through every read endpoint that shows one, and counts the reads the audit trail holds under that
   patient (the coverage of "who looked at my record", target 100%).

A crash is the server thread dying or a connection refused or reset mid-request; the run ends with ``/healthz``.
Prints one line per part and a JSON summary; exit status 1 when any 5xx, crash or unaudited read was seen.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import date
from typing import Any

import httpx

from bench.hostile import FHIR_ENDPOINTS, corrupt_dicom, dicom_bytes, hostile_resources


class Server:
    """priorscan served by uvicorn in a thread (as the tests' LiveServer)."""

    def __init__(self, db_url: str) -> None:
        import socket

        import uvicorn

        from api.context import AppContext
        from api.http.app import create_app
        from priorscan.settings import Settings

        self.context = AppContext.open(Settings(db=db_url, env="test"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(self.context), host="127.0.0.1", port=self.port,
                                                    log_level="error", lifespan="on"))  # 500s with their traceback
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)

    def token(self, scopes: list[str] | None = None, client: str = "bench-fuzz") -> str:
        from api.http.deps import token_hash
        from priorscan.tables import ApiClient

        token = "ps_" + secrets.token_urlsafe(24)
        with self.context.sessions() as session:
            session.add(ApiClient(name=client, token_hash=token_hash(token), scopes=scopes or ["*"]))
            session.commit()
        return token

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.context.engine.dispose()


class Tally:
    """Inputs tried, answers by status class, 5xx, undocumented answers and crashes, for one part of the run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tried = 0
        self.statuses: Counter[str] = Counter()
        self.server_errors: list[str] = []
        self.undocumented: Counter[str] = Counter()
        self.crashes = 0

    def answer(self, where: str, response: Any, documented: set[str] | None = None) -> None:
        """Count one answer (an httpx or requests response; None when the connection failed: a crash)."""
        self.tried += 1
        if response is None:
            self.crashes += 1
            return
        code = str(response.status_code)
        self.statuses[code[0] + "xx"] += 1
        if response.status_code >= 500:
            self.server_errors.append(f"{where} {code}")
        if documented is not None and code not in documented and f"{code[0]}XX" not in documented \
                and "default" not in documented:
            self.undocumented[f"{where} {code}"] += 1

    def summary(self) -> dict[str, Any]:
        return {"inputs": self.tried, "statuses": dict(self.statuses), "5xx": len(self.server_errors),
                "crashes": self.crashes, "undocumented": sum(self.undocumented.values()),
                "examples_5xx": sorted(set(self.server_errors))[:10],
                "examples_undocumented": [k for k, _ in self.undocumented.most_common(10)]}


def _send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
    try:
        return client.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
        return None


# --- seed -------------------------------------------------------------------------------------------------------------

def seed(server: Server) -> str:
    """A few patients with studies and an alert, and a possible match for the review queue; one regional id shown."""
    from mpi import Demographics, PatientIndex

    base = {"family": "Whitfield", "given": "Eleanor", "birth_date": date(1978, 3, 14), "sex": "female",
            "postcode": "GU1 4AB", "address": "12 Mill Lane"}
    rtk, rxc = (server.context.trusts.by_ods(o).fhir_system for o in ("RTK", "RXC"))
    with server.context.sessions() as session:
        index = PatientIndex(session, server.context.trusts)
        first = index.upsert(Demographics(rtk, "AB100001", nhs_number="9434765919", nhs_verification="01", **base),
                             event="bench", actor="bench")
        index.upsert(Demographics(rxc, "B1000001", nhs_number="9434765870", nhs_verification="02", **base),
                     event="bench", actor="bench")
        session.commit()
        regional = str(first.regional_id)
    token = server.token()
    headers = {"Authorization": f"Bearer {token}"}
    study = {"resourceType": "ImagingStudy", "status": "available", "started": f"{date.today().isoformat()}T09:00:00Z",
             "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:2.25." + str(uuid.uuid4().int)}],
             "subject": {"identifier": {"system": rtk, "value": "AB100001"}},
             "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}],
             "procedureCode": [{"text": "CT HEAD"}], "description": "CT HEAD"}
    httpx.post(server.base_url + "/fhir/ImagingStudy", json=study, headers=headers, timeout=30)
    check = {"patient": {"identifiers": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}]},
             "request": {"modality": "CT", "bodySite": "head", "requestingTrust": "RTK", "placerOrderNumber": "B-1"}}
    httpx.post(server.base_url + "/api/v1/duplicate-check", json=check, headers=headers, timeout=30)
    return regional


# --- the parts --------------------------------------------------------------------------------------------------------

def run_schemathesis(server: Server, token: str, examples: int) -> Tally:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    tally = Tally("openapi")
    headers = {"Authorization": f"Bearer {token}"}
    raw = httpx.get(server.base_url + "/openapi.json", headers=headers, timeout=30).json()
    schema = schemathesis.openapi.from_dict(raw)
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.startswith("/dicomweb/"):
            continue
        documented = {str(code) for code in (raw["paths"][operation.path][operation.method.lower()]
                                             .get("responses") or {})}
        _fuzz_operation(server, tally, headers, operation, documented, examples, given, settings, HealthCheck)
    return tally


def _fuzz_operation(server: Server, tally: Tally, headers: dict[str, str], operation: Any, documented: set[str],
                    examples: int, given: Any, settings: Any, health_checks: Any) -> None:
    """``examples`` generated requests to one operation (a function of its own: each closes over its operation)."""
    where = f"{operation.method.upper()} {operation.path}"

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(health_checks))
    @given(operation.as_strategy())
    def one(case: Any) -> None:
        try:
            response = case.call(base_url=server.base_url, headers=headers, timeout=30, allow_redirects=False)
        except Exception:  # a connection dropped mid-request counts as a crash
            tally.answer(where, None)
            return
        tally.answer(where, response, documented)

    one()


def run_hostile_fhir(server: Server, token: str, count: int) -> Tally:
    from hypothesis import HealthCheck, given, settings

    tally = Tally("fhir")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    with httpx.Client(timeout=30) as client:
        @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(hostile_resources())
        def one(drawn: tuple[str, dict[str, Any]]) -> None:
            kind, body = drawn
            bundle = {"resourceType": "Bundle", "type": "transaction",
                      "entry": [{"resource": body, "request": {"method": "POST", "url": kind}}]}
            tally.answer("POST /fhir", _send(client, "POST", server.base_url + "/fhir", json=bundle, headers=headers))
            for path in FHIR_ENDPOINTS[kind]:
                tally.answer(f"POST {path}", _send(client, "POST", server.base_url + path, json=body,
                                                   headers=headers))

        one()
    return tally


def run_corrupt_dicom(server: Server, token: str, count: int) -> Tally:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    tally = Tally("dicom")
    valid = dicom_bytes("AB100001")

    with httpx.Client(timeout=30) as client:
        @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(corrupt_dicom(valid), min_size=1, max_size=3))
        def one(parts: list[bytes]) -> None:
            boundary = uuid.uuid4().hex
            body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n"
                            for p in parts) + b"--" + boundary.encode() + b"--\r\n"
            headers = {"Authorization": f"Bearer {token}",
                       "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}
            tally.answer("POST /dicomweb/studies",
                         _send(client, "POST", server.base_url + "/dicomweb/studies", content=body, headers=headers))

        one()
    return tally


#: Every read endpoint that shows a patient, as (what, method, path or a function of the regional id, body).
def patient_reads(regional: str, rtk: str) -> list[tuple[str, str, str, Any]]:
    return [
        ("FHIR Patient read", "GET", f"/fhir/Patient/{regional}", None),
        ("FHIR Patient search", "GET", f"/fhir/Patient?identifier={rtk}|AB100001", None),
        ("FHIR $match", "POST", "/fhir/Patient/$match",
         {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": {
             "resourceType": "Patient", "identifier": [{"system": rtk, "value": "AB100001"}],
             "name": [{"family": "Whitfield", "given": ["Eleanor"]}], "birthDate": "1978-03-14"}}]}),
        ("PIXm", "GET", f"/fhir/Patient/$ihe-pix?sourceIdentifier={rtk}|AB100001", None),
        ("ImagingStudy search", "GET", f"/fhir/ImagingStudy?patient={regional}", None),
        ("timeline", "GET", f"/api/v1/patients/{regional}/timeline", None),
        ("alerts list", "GET", "/api/v1/alerts", None),
        ("identity review queue", "GET", "/api/v1/mpi/review", None),
        ("link history", "GET", f"/api/v1/mpi/patients/{regional}/history", None),
        ("workspace patient", "GET", f"/api/v1/workspace/patients/{regional}", None),
    ]


def run_audit_coverage(server: Server, regional: str) -> dict[str, Any]:
    """Each read of the seeded patient, and whether the audit trail holds it under that patient."""
    from sqlalchemy import func, select

    from priorscan.tables import AuditEvent

    rtk = server.context.trusts.by_ods("RTK").fhir_system
    results = {}
    with httpx.Client(timeout=30) as client:
        for what, method, path, body in patient_reads(regional, rtk):
            reader = f"bench-reader-{uuid.uuid4().hex[:8]}"
            token = server.token(client=reader)
            answer = client.request(method, server.base_url + path, json=body,
                                    headers={"Authorization": f"Bearer {token}"})
            with server.context.sessions() as session:
                audited = session.scalar(select(func.count()).select_from(AuditEvent).where(
                    AuditEvent.agent_name == reader, AuditEvent.regional_patient_id == regional)) or 0
            results[what] = {"status": answer.status_code, "audited": audited > 0}
    shown = [r for r in results.values() if r["status"] == 200]
    covered = sum(1 for r in shown if r["audited"])
    return {"reads": len(shown), "audited": covered,
            "coverage_pct": round(100.0 * covered / len(shown), 1) if shown else None,
            "not_audited": [w for w, r in results.items() if r["status"] == 200 and not r["audited"]],
            "not_shown": [f"{w} ({r['status']})" for w, r in results.items() if r["status"] != 200]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=60, help="generated requests per OpenAPI operation")
    parser.add_argument("--fhir", type=int, default=400, help="hostile FHIR resources")
    parser.add_argument("--dicom", type=int, default=200, help="corrupt DICOM requests to STOW-RS")
    parser.add_argument("--db", default=None, help="an empty PostgreSQL database URL (default: SQLite in a temp dir)")
    args = parser.parse_args(argv)
    from priorscan.db import make_engine, migrate

    folder = tempfile.TemporaryDirectory()
    url = args.db or f"sqlite:///{folder.name}/fuzz.db"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    server = Server(url)
    started = time.perf_counter()
    try:
        regional = seed(server)
        token = server.token()
        coverage = run_audit_coverage(server, regional)  # before the fuzzing adds patients of its own
        print(f"audit coverage of patient reads: {coverage}", flush=True)
        parts = [run_schemathesis(server, token, args.examples), run_hostile_fhir(server, token, args.fhir),
                 run_corrupt_dicom(server, token, args.dicom)]
        for part in parts:
            print(f"{part.name}: {json.dumps(part.summary())}", flush=True)
        alive = server.thread.is_alive() and httpx.get(server.base_url + "/healthz", timeout=10).status_code == 200
    finally:
        server.stop()
        folder.cleanup()
    summary = {"backend": url.split(":", 1)[0], "seconds": round(time.perf_counter() - started, 1),
               "inputs": sum(p.tried for p in parts), "5xx": sum(len(p.server_errors) for p in parts),
               "undocumented": sum(sum(p.undocumented.values()) for p in parts),
               "crashes": sum(p.crashes for p in parts) + (0 if alive else 1), "server_alive": alive,
               "audit_coverage_pct": coverage["coverage_pct"]}
    print(json.dumps(summary), flush=True)
    bad = summary["5xx"] or summary["crashes"] or coverage["not_audited"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
