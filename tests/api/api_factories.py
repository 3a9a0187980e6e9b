"""Factories for the tests of api/: users, alerts, priors, sample HL7/FHIR/DICOM inputs, a threaded app server."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from api.context import AppContext

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_user(context: AppContext, username: str = "rad.one", *, password: str = PASSWORD,
              role: str = "radiographer", trust: str | None = "RTK") -> None:
    """Add a person who signs in to the web page."""
    from api.auth.accounts import create_user
    from priorscan.audit import SYSTEM
    from priorscan.db import session_scope

    with session_scope(context.sessions) as session:
        create_user(session, context.trusts, username=username, password=password, role=role, trust=trust,
                    agent=SYSTEM)


def make_prior(**overrides: Any) -> dict[str, Any]:
    """A prior as the duplicate check returns it."""
    study_date = date.today() - timedelta(days=12)
    prior = {"studyInstanceUid": f"2.25.{uuid.uuid4().int}", "accessionNumber": "RA2-ACC-1", "trust": "RA2",
             "studyDate": study_date.isoformat(), "daysAgo": 12, "modality": "CT", "bodySite": "chest",
             "laterality": None, "description": "CT CHEST WITH CONTRAST", "effectiveDoseMsv": 5.8,
             "severity": "warning", "rule": "ct-trunk", "viewerUrl": "https://pacs.region.example.nhs.uk/viewer?"
             "trust=RA2&StudyInstanceUIDs=2.25.1"}
    prior.update(overrides)
    return prior


def make_alert(context: AppContext, **overrides: Any) -> str:
    """Insert an open alert directly into the store and return its id."""
    from dedupe.tables import Alert

    alert_id = str(uuid.uuid4())
    values: dict[str, Any] = {
        "id": alert_id, "regional_patient_id": "RPTEST0000001", "identity": "confirmed", "requesting_trust": "RTK",
        "placer_order_number": f"ORD-{uuid.uuid4().hex[:6]}", "channel": "api", "verdict": "warning",
        "request": {"modality": "CT", "bodySite": "chest", "laterality": None, "priority": "routine",
                    "requestingTrust": "RTK", "code": {"display": "CT chest"}},
        "priors": [make_prior()], "rules_version": "test", "status": "open", "created_by": "test",
        "created_at": datetime.now(UTC),
    }
    values.update(overrides)
    with context.sessions() as session:
        session.add(Alert(**values))
        session.commit()
    return alert_id


class AppServer:
    """Any ASGI app served by uvicorn in a thread on a free loopback port (Starlette's TestClient is deprecated)."""

    def __init__(self, app: Any) -> None:
        import threading

        import uvicorn

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> AppServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the probe server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# --- sample input files ---------------------------------------------------------------------------------------------

ADT = ("MSH|^~\\&|PAS|RTK|PRIORSCAN|REGION|20250101120000||ADT^A04^ADT_A01|{cid}|P|2.4\r"
       "EVN|A04|20250101120000\r"
       "PID|1||AB123456^^^RTK^MR~9990001235^^^NHS^NH||TESTER^ALEX||19700101|F|||1 HIGH ST^^GUILDFORD^^GU1 1AA")
ORU = ("MSH|^~\\&|RIS|RTK|PRIORSCAN|REGION|20250102120000||ORU^R01|{cid}|P|2.4\r"
       "PID|1||AB123456^^^RTK^MR\r"
       "OBR|1|P1|F1|CTCHE^CT Chest|||20250102110000")
ORM = ("MSH|^~\\&|EPR|RTK|PRIORSCAN|REGION|20250103120000||ORM^O01|{cid}|P|2.4\r"
       "PID|1||AB123456^^^RTK^MR\r"
       "ORC|NW|ORD1\r"
       "OBR|1|ORD1||CTCHE^CT Chest")


def hl7(template: str, cid: str = "1") -> str:
    return template.format(cid=cid)


def fhir_patient(local_id: str = "AB123456") -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [
        {"system": "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number", "value": local_id}],
        "name": [{"family": "Tester", "given": ["Alex"]}], "birthDate": "1970-01-01", "gender": "female"}


def fhir_imaging_study() -> dict[str, Any]:
    return {"resourceType": "ImagingStudy", "status": "available",
            "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:2.25.1"}],
            "subject": {"identifier": {"system": "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number",
                                       "value": "AB123456"}}}


def fhir_service_request() -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "code": {"text": "CT chest"},
            "subject": {"identifier": {"system": "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number",
                                       "value": "AB123456"}}}


def dicom_dataset(study_uid: str | None = None, patient_id: str = "AB123456", issuer: str = "RTK",
                  modality: str = "CT") -> Any:
    """A minimal CT image header (no pixels), with file meta."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = patient_id
    ds.IssuerOfPatientID = issuer
    ds.PatientName = "TESTER^ALEX"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.Modality = modality
    ds.StudyDate = (date.today() - timedelta(days=3)).strftime("%Y%m%d")
    ds.StudyTime = "101500"
    ds.AccessionNumber = "RTK-ACC-1"
    ds.StudyDescription = "CT CHEST"
    ds.BodyPartExamined = "CHEST"
    ds.InstitutionName = "Ashford"
    return ds


def write_dicom(path: Path, *, preamble: bool = True, **kwargs: Any) -> Path:
    import pydicom

    ds = dicom_dataset(**kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.preamble = None
        pydicom.dcmwrite(path, ds, enforce_file_format=False)
    return path


def dicom_json_dataset(study_uid: str = "2.25.77") -> dict[str, Any]:
    return {"0020000D": {"vr": "UI", "Value": [study_uid]}, "00080060": {"vr": "CS", "Value": ["CT"]},
            "00100020": {"vr": "LO", "Value": ["AB123456"]}, "00100021": {"vr": "LO", "Value": ["RTK"]},
            "00080020": {"vr": "DA", "Value": ["20250101"]}}
