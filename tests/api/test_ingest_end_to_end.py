"""``priorscan ingest`` with the real handlers (HL7 service, FHIR service, imaging adapters) on a real store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from api_factories import ADT, dicom_json_dataset, fhir_patient, hl7, write_dicom
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

Cli = Callable[..., tuple[int, str, str]]


def test_ingest_loads_identity_before_the_studies_that_need_it(tmp_path: Path, store_url: str, run_cli: Cli) -> None:
    from imaging.tables import Study
    from mpi.tables import SourceRecord
    from priorscan.tables import DeadLetter

    feed = tmp_path / "feed"
    write_dicom(feed / "a-images" / "IM0001", study_uid="2.25.424242")  # sorted first, applied after identity
    (feed / "b-qido.json").write_text(json.dumps([dicom_json_dataset("2.25.434343")]))
    (feed / "c-broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    (feed / "z-adt.hl7").write_text(hl7(ADT, "E2E-1").replace("\r", "\n") + "\n")
    status, out, err = run_cli("--db", store_url, "ingest", str(feed), "--no-progress")

    assert status == 1, out + err  # the broken DICOM file is a rejection
    assert "ADT^A04" in out and "c-broken.dcm" in out
    assert "3 item(s) accepted, 1 rejected" in out
    engine = create_engine(store_url)
    try:
        with Session(engine) as session:
            record = session.scalars(select(SourceRecord).where(SourceRecord.local_id == "AB123456")).one()
            study = session.scalars(select(Study).where(Study.study_instance_uid == "2.25.424242")).one()
            assert record.regional_patient_id is not None
            assert study.source_record_id is not None
            linked = session.get(SourceRecord, study.source_record_id)
            assert linked is not None and linked.regional_patient_id == record.regional_patient_id
            assert session.scalars(select(DeadLetter)).all() == []  # nothing from HL7 was refused
    finally:
        engine.dispose()


def test_ingest_loads_fhir_ndjson_and_bundles(tmp_path: Path, sqlite_url: str, run_cli: Cli) -> None:
    feed = tmp_path / "fhir"
    feed.mkdir()
    (feed / "patients.ndjson").write_text("\n".join(json.dumps(fhir_patient(f"AB00000{i}")) for i in range(3)) + "\n")
    (feed / "bundle.json").write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0b1c7c3e-0000-4000-8000-000000000001", "resource": fhir_patient("AB999999"),
         "request": {"method": "POST", "url": "Patient"}}]}))
    status, out, err = run_cli("--db", sqlite_url, "ingest", str(feed), "--no-progress")
    assert status == 0, out + err
    assert "4 item(s) accepted, 0 rejected" in out and "Patient" in out
