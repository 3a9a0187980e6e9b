"""``priorscan demo``: starts afresh without touching foreign files; finds a patient whose request raises an alert."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from api.cli.demo import curl_command, find_candidates, repeat_a_study, request_body, sqlite_path, start_afresh
from api.context import AppContext
from priorscan.errors import ConfigurationError


def test_only_sqlite_files_are_accepted() -> None:
    assert sqlite_path("sqlite:///./demo.db") == Path("./demo.db")
    assert sqlite_path("sqlite:////tmp/x/demo.db") == Path("/tmp/x/demo.db")
    for url in ("postgresql+psycopg://postgres@127.0.0.1/demo", "sqlite://", "sqlite:///:memory:"):
        with pytest.raises(ConfigurationError, match="SQLite file"):
            sqlite_path(url)


def test_previous_demo_is_removed(tmp_path: Path, context: AppContext) -> None:
    from priorscan.audit import SYSTEM, record
    from priorscan.db import session_scope

    with session_scope(context.sessions) as session:
        record(session, SYSTEM, action="C", event_type="demo", subtype="build")
    db = sqlite_path(context.settings.db)
    region = tmp_path / "demo-region"
    (region / "truth").mkdir(parents=True)
    (region / "hl7").mkdir()
    context.engine.dispose()
    start_afresh(db, region)
    assert not db.exists() and not region.exists()


def test_a_store_that_is_not_a_demo_is_left_alone(tmp_path: Path, context: AppContext) -> None:
    db = sqlite_path(context.settings.db)
    with pytest.raises(ConfigurationError, match="not a demo store"):
        start_afresh(db, tmp_path / "demo-region")
    assert db.exists()
    other = tmp_path / "notes.db"
    with sqlite3.connect(other) as conn:
        conn.execute("create table notes (x text)")
    with pytest.raises(ConfigurationError, match="not a demo store"):
        start_afresh(other, tmp_path / "demo-region")
    not_sqlite = tmp_path / "readme.db"
    not_sqlite.write_text("hello")
    with pytest.raises(ConfigurationError):
        start_afresh(not_sqlite, tmp_path / "demo-region")
    assert other.exists() and not_sqlite.exists()


def test_a_folder_that_is_not_a_region_is_left_alone(tmp_path: Path) -> None:
    region = tmp_path / "demo-region"
    region.mkdir()
    (region / "thesis.docx").write_text("precious")
    with pytest.raises(ConfigurationError, match="not a synthetic region"):
        start_afresh(tmp_path / "new.db", region)
    assert (region / "thesis.docx").exists()


def _patient_with_study(context: AppContext, regional_id: str, nhs: str, *, modality: str, region: str,
                        days_ago: int, trusts: tuple[str, ...] = ("RA2", "RTK"), status: str = "completed") -> None:
    from imaging.tables import Study
    from mpi.tables import RegionalPatient, SourceRecord

    with context.sessions() as session:
        session.add(RegionalPatient(id=regional_id, nhs_number=nhs))
        records = [SourceRecord(namespace=f"urn:{trust}", local_id=regional_id, trust_ods=trust,
                                regional_patient_id=regional_id) for trust in trusts]
        session.add_all(records)
        session.flush()
        session.add(Study(study_instance_uid=f"2.25.{abs(hash(regional_id))}", source_record_id=records[0].id,
                          performing_trust=trusts[0], modality=modality, body_region=region, status=status,
                          study_date=date.today() - timedelta(days=days_ago)))
        session.commit()


def test_candidates_are_recent_completed_ct_or_xr_most_recent_first(context: AppContext) -> None:
    _patient_with_study(context, "RPCT10", "9990000010", modality="CT", region="chest", days_ago=10)
    _patient_with_study(context, "RPCT40", "9990000040", modality="CT", region="chest", days_ago=40)  # too old
    _patient_with_study(context, "RPXR03", "9990000003", modality="XR", region="chest", days_ago=3)
    _patient_with_study(context, "RPXR20", "9990000020", modality="XR", region="chest", days_ago=20)
    _patient_with_study(context, "RPMR05", "9990000005", modality="MR", region="head", days_ago=5)  # not CT/XR
    _patient_with_study(context, "RPSC02", "9990000002", modality="CT", region="head", days_ago=2, status="scheduled")
    found = find_candidates(context)
    assert [(c["nhs"], c["modality"]) for c in found] == [("9990000003", "XR"), ("9990000010", "CT"),
                                                          ("9990000020", "XR")]
    first = found[1]
    assert first["performing_trust"] == "RA2" and first["requesting_trust"] == "RTK"  # asked from another trust
    body = request_body(first, "DEMO-1")
    assert body["patient"]["identifiers"] == [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000010"}]
    assert body["request"] == {"modality": "CT", "bodySite": "chest", "priority": "routine", "requestingTrust": "RTK",
                               "placerOrderNumber": "DEMO-1"}


def test_a_region_without_a_recent_study_gets_a_repeat_of_its_latest(context: AppContext) -> None:
    """A small region, or one whose calendar was quiet lately, holds no CT or X-ray from the last 30 days; the demo
    must still print a request that raises an alert, so it adds a repeat of the latest such study through the FHIR
    ImagingStudy adapter, two days before the demo's today (whatever day the suite runs on)."""
    from sqlalchemy import select

    from imaging.tables import Study
    from mpi.tables import SourceRecord

    _patient_with_study(context, "RPCT90", "9990000090", modality="CT", region="chest", days_ago=90)
    _patient_with_study(context, "RPMR01", "9990000001", modality="MR", region="head", days_ago=1)  # not CT/XR
    assert find_candidates(context) == []
    assert repeat_a_study(context) == "CT chest"
    found = find_candidates(context)
    assert [(c["nhs"], c["modality"], c["bodySite"]) for c in found] == [("9990000090", "CT", "chest")]
    with context.sessions() as session:
        repeated = session.execute(select(Study, SourceRecord.regional_patient_id).join(
            SourceRecord, Study.source_record_id == SourceRecord.id).where(
            Study.study_date == date.today() - timedelta(days=2))).one()
    assert repeated[1] == "RPCT90" and repeated[0].performing_trust == "RA2"
    assert repeated[0].study_instance_uid.startswith("2.25.")
    later = date.today() + timedelta(days=400)  # nothing recent then: the repeat is the latest, and is repeated
    assert find_candidates(context, today=later) == [] and repeat_a_study(context, today=later) == "CT chest"
    assert len(find_candidates(context, today=later)) == 1


def test_a_region_without_any_ct_or_xr_gets_no_repeat(context: AppContext) -> None:
    _patient_with_study(context, "RPMR02", "9990000002", modality="MR", region="head", days_ago=1)
    assert repeat_a_study(context) is None


def test_curl_command_is_ready_to_paste() -> None:
    body = {"patient": {"name": {"family": "O'Brien"}}, "request": {"modality": "CT"}}
    command = curl_command("http://127.0.0.1:8000", "ps_abc", body)
    assert command.startswith("curl -sS -X POST http://127.0.0.1:8000/api/v1/duplicate-check")
    assert "Authorization: Bearer ps_abc" in command and "O'\\''Brien" in command


def test_demo_builds_a_small_region_and_prints_what_a_newcomer_needs(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, func, select
    from sqlalchemy.orm import Session

    from api.http.deps import token_hash
    from priorscan.tables import ApiClient

    db = f"sqlite:///{tmp_path / 'demo.db'}"

    def demo(people: int) -> str:
        argv = [sys.executable, "-m", "priorscan.cli", "--db", db, "demo", "--people", str(people), "--no-serve",
                "--port", "8123", "--mllp-port", "2599"]
        result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    out = demo(40)  # seed 7: 40 people include a recent CT or X-ray within its warning window
    for expected in ("http://127.0.0.1:8123/ui/", "http://127.0.0.1:8123/docs", "http://127.0.0.1:8123/fhir/metadata",
                     "127.0.0.1:2599", "admin token", "username  radiographer.", "password  ",
                     "a duplicate-check request that raises an alert",
                     "curl -sS -X POST http://127.0.0.1:8123/api/v1/duplicate-check"):
        assert expected in out, expected
    assert "not verified" not in out  # the demo asked the duplicate check itself and got a warning
    token = out.split("admin token (every scope):")[1].split()[0]
    assert (tmp_path / "demo-region" / "truth").is_dir()

    demo(5)  # a rebuild starts afresh: the first build's token is gone
    engine = create_engine(db)
    try:
        with Session(engine) as session:
            gone = session.scalar(select(func.count()).select_from(ApiClient)
                                  .where(ApiClient.token_hash == token_hash(token)))
    finally:
        engine.dispose()
    assert gone == 0


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_demos_example_raises_a_warning_whatever_the_seed(tmp_path: Path, seed: int) -> None:
    """The demo's region is drawn relative to today; whichever day and seed, the example it prints is one the
    running duplicate check answered with a warning (it failed when identity split people in a small region)."""
    argv = [sys.executable, "-m", "priorscan.cli", "--db", f"sqlite:///{tmp_path / 'demo.db'}", "demo", "--people",
            "40", "--seed", str(seed), "--no-serve"]
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "a duplicate-check request that raises an alert" in result.stdout
    assert "not verified" not in result.stdout
