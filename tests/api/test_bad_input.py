"""Hostile input over HTTP and on the command line: NUL characters, deep JSON, identifiers kept out of the log."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pytest
from api_factories import fhir_patient

NHS = "9434765919"
NAME = "Quixotevale"
DEEP = ("[" * 100_000 + "]" * 100_000).encode()
DEEP_OBJECT = ('{"resourceType": "Patient", "extension": ' + "[" * 50_000 + "]" * 50_000 + "}").encode()


def _patient_with_nul() -> dict[str, object]:
    patient = fhir_patient("AB120001")
    patient["name"] = [{"family": NAME + "\u0000x", "given": ["Ann"]}]
    patient["identifier"] = [*patient["identifier"], {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}]
    return patient


def test_nul_characters_are_refused_with_4xx_and_nothing_identifying_is_logged(live_server, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    headers = {"Authorization": f"Bearer {live_server.token()}"}
    base = live_server.base_url
    answers = [
        httpx.post(base + "/fhir/Patient", json=_patient_with_nul(), headers=headers),
        httpx.put(base + "/fhir/Patient/p-nul", json={**_patient_with_nul(), "id": "p-nul"}, headers=headers),
        httpx.post(base + "/api/v1/duplicate-check", headers=headers, json={
            "patient": {"identifiers": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
                        "name": {"family": NAME + "\u0000", "given": ["Ann"]}},
            "request": {"modality": "CT", "bodySite": "head", "placerOrderNumber": "o\u00001"}}),
        httpx.get(base + "/fhir/Patient", params={"family": NAME + "\u0000"}, headers=headers),
    ]
    for answer in answers:
        assert answer.status_code < 500, (answer.request.url.path, answer.status_code, answer.text[:300])
    assert answers[0].status_code in (400, 422)
    server_log = "\n".join(caplog.handler.format(r) for r in caplog.records
                           if not r.name.startswith(("httpx", "httpcore")))  # the test's own client logs its URLs
    assert NAME not in server_log and NHS not in server_log


@pytest.mark.parametrize("path", ["/fhir/Patient", "/fhir", "/fhir/Patient/$match", "/fhir/ImagingStudy",
                                  "/fhir/ServiceRequest", "/api/v1/duplicate-check", "/fhir/DiagnosticReport"])
@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "in-a-resource"])
def test_deep_json_is_4xx(live_server_sqlite, path: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
    answer = httpx.post(live_server_sqlite.base_url + path, content=body, timeout=60,
                        headers={"Authorization": f"Bearer {live_server_sqlite.token()}",
                                 "Content-Type": "application/fhir+json"})
    assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text[:300])


def test_ingest_reports_a_deeply_nested_file_and_goes_on(run_cli, sqlite_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "feed"
    folder.mkdir()
    (folder / "a_deep.json").write_bytes(DEEP_OBJECT)
    (folder / "b_array.json").write_bytes(DEEP)
    (folder / "c_corrupt.json").write_bytes(b'{"resourceType": "Patient", "name": [{"family": "x"')
    (folder / "d_good.json").write_text(json.dumps(fhir_patient("AB120002")))
    status, out, err = run_cli("--db", sqlite_url, "ingest", str(folder))
    assert status == 1, (out, err)
    assert "Traceback" not in out + err
    report = out + err
    assert "a_deep.json" in report and "b_array.json" in report and "c_corrupt.json" in report
    status, out, _ = run_cli("--db", sqlite_url, "export", "xref")
    assert "AB120002" in out, "the good file after the bad ones was loaded"


def test_a_database_error_logged_with_its_traceback_names_no_value(pg_url: str) -> None:
    """PostgreSQL quotes the row in a unique violation (DETAIL: Key (...)=(...)); the log line blanks it."""
    import io

    from sqlalchemy import text

    from priorscan import logs
    from priorscan.db import make_engine

    stream = io.StringIO()
    logs.configure("INFO", "json", stream=stream)
    engine = make_engine(pg_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TEMP TABLE t (nhs text PRIMARY KEY, family text)"))
            connection.execute(text("INSERT INTO t VALUES (:n, :f)"), {"n": NHS, "f": NAME})
            try:
                connection.execute(text("INSERT INTO t VALUES (:n, :f)"), {"n": NHS, "f": NAME})
            except Exception:
                logging.getLogger("priorscan.test").exception("insert failed")
    finally:
        engine.dispose()
        logs.configure("INFO", "json")
    written = stream.getvalue()
    assert "insert failed" in written and "UniqueViolation" in written
    assert NHS not in written and NAME not in written


@pytest.mark.parametrize("patient", [
    {"name": {"family": "ZEBEDEE\u0000"}, "identifiers": [{"system": "https://fhir.nhs.uk/Id/nhs-number",
                                                           "value": "9990001235"}]},  # refused whole: all quoted
    {"name": {"family": "ZEBEDEE"}, "birthDate": "ZEBEDEE-9990001235"},  # one field refused: its value quoted
], ids=["body-refused-whole", "one-field-refused"])
def test_a_422_does_not_quote_the_patient_it_refused(live_server_sqlite, patient: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    """Before, FastAPI's 422 quoted the input of each error: for a body refused whole, the patient's name and NHS
    number, which interface engines keep in their logs of answers."""
    token = live_server_sqlite.token()
    answer = httpx.post(live_server_sqlite.base_url + "/api/v1/duplicate-check", timeout=30,
                        json={"patient": patient, "request": {"modality": "CT", "bodySite": "chest"}},
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][0] == "body", "where the error is, still said"
    assert "ZEBEDEE" not in answer.text and "9990001235" not in answer.text


def test_control_characters_of_a_path_are_escaped_in_the_access_log(live_server_sqlite, caplog) -> None:  # type: ignore[no-untyped-def]
    """Before, ``/fhir/Patient/a%0d%0a...`` wrote a CR LF into the access log line: a forged line in a text log."""
    caplog.set_level(logging.INFO)
    headers = {"Authorization": f"Bearer {live_server_sqlite.token()}"}
    forged = "/fhir/Patient/a%0d%0a2026-12-07T00:00:00Z [info] GET /forged 200%00"
    assert httpx.get(live_server_sqlite.base_url + forged, headers=headers).status_code == 404
    deadline = time.monotonic() + 20  # the line is written once the answer is sent, so perhaps after it arrived
    while not (lines := [r.getMessage() for r in caplog.records
                         if r.name == "priorscan.access" and "/fhir/Patient/a" in r.getMessage()]):
        assert time.monotonic() < deadline, "no access log line"
        time.sleep(0.05)
    (line,) = lines
    assert line.isprintable() and "\\r\\n2026-12-07" in line and "\\x00" in line, line


def test_an_nhs_number_in_a_path_does_not_reach_the_access_log(live_server_sqlite, caplog) -> None:  # type: ignore[no-untyped-def]
    """Hazard log H-SEC-08: the access log wrote the path as sent, and a FHIR client whose logical ids are NHS numbers
    (``GET /fhir/Patient/9434765919``, or written 3 3 4) put them in the log; a study UID's digits are kept."""
    caplog.set_level(logging.INFO)
    headers = {"Authorization": f"Bearer {live_server_sqlite.token()}"}
    paths = ("/fhir/Patient/9434765919", "/fhir/Patient/943%20476%205919/_history/1",
             "/fhir/ImagingStudy/1.2.826.0.1.3680043.8.498.1217")
    for path in paths:
        assert httpx.get(live_server_sqlite.base_url + path, headers=headers).status_code in (400, 404)
    deadline = time.monotonic() + 20  # each line is written once its answer is sent
    while len(lines := [r.getMessage() for r in caplog.records if r.name == "priorscan.access"
                        and "GET /fhir/" in r.getMessage()]) < len(paths):
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    text = "\n".join(lines)
    assert "9434765919" not in text and "943 476 5919" not in text, text
    assert text.count("[nhs-number]") == 2 and "1.2.826.0.1.3680043.8.498.1217" in text
