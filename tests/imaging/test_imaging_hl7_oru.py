"""imaging.hl7_oru: ORU^R01 results and order status as statements about studies (the caller commits)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from imaging.hl7_oru import apply_oru
from imaging.tables import ImagingOrder, Study
from priorscan.audit import Agent
from priorscan.db import make_engine, session_factory
from priorscan.hl7v2 import parse_message
from priorscan.trusts import TrustRegistry

AGENT = Agent("feed", "ris")
UID = "1.2.826.0.1.3680043.10.2.1"


def oru(*segments: str, facility: str = "RTK", control: str = "C1") -> str:
    msh = f"MSH|^~\\&|RIS|{facility}|PRIORSCAN|REGION|20240105120000||ORU^R01|{control}|P|2.4"
    return "\r".join([msh, *segments]) + "\r"


PID = "PID|1||AB123456^^^RTK^MR~9434765919^^^NHS^NH||TESTER^JANE||19700101|F"


@pytest.fixture
def session(sqlite_url: str) -> Iterator[Session]:
    engine = make_engine(sqlite_url)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


def apply(session: Session, trusts: TrustRegistry, text: str):  # type: ignore[no-untyped-def]
    return apply_oru(session, trusts, parse_message(text), agent=AGENT)


@pytest.mark.parametrize(("uid_segment", "reason"), [
    (f"ZDS|{UID}^RIS^Application^DICOM", "IHE ZDS-1"),
    (f"OBX|1|ST|110180^Study Instance UID^DCM||{UID}||||||F", "an OBX naming the Study Instance UID by DCM code"),
    (f"OBX|1|ST|STUDY_INSTANCE_UID^Study Instance UID^L||{UID}||||||F", "an OBX naming it by local text"),
])
def test_final_result_indexes_the_study(session: Session, trusts: TrustRegistry, uid_segment: str,
                                        reason: str) -> None:
    text = oru(PID, "ORC|RE|P100|F200||CM", "OBR|1|P100|F200|CTHEAD^CT HEAD W/O^LOCAL|||20240105101500|||||||||||"
               "ACC9||||||F|CT", uid_segment)
    outcome = apply(session, trusts, text)
    assert outcome.accepted, (outcome.reason, reason)
    study = session.scalars(select(Study)).one()
    assert (study.study_instance_uid, study.accession_number, study.performing_trust) == (UID, "ACC9", "RTK")
    assert (study.status, study.modality, study.body_region, study.contrast) == ("completed", "CT", "head", False)
    assert str(study.study_date) == "2024-01-05"
    assert outcome.detail["regionalPatientId"] and outcome.detail["studyInstanceUids"] == [UID]


def test_a_cancelled_result_cancels_and_a_correction_reopens(session: Session, trusts: TrustRegistry) -> None:
    zds = f"ZDS|{UID}^RIS^Application^DICOM"
    apply(session, trusts, oru(PID, "OBR|1|P1|F1|CTHEAD^CT HEAD^LOCAL" + "|" * 21 + "F", zds))
    apply(session, trusts, oru(PID, "OBR|1|P1|F1|CTHEAD^CT HEAD^LOCAL" + "|" * 21 + "X", zds, control="C2"))
    assert session.scalars(select(Study.status)).one() == "cancelled"
    apply(session, trusts, oru(PID, "OBR|1|P1|F1|CTHEAD^CT HEAD^LOCAL" + "|" * 21 + "C", zds, control="C3"))
    assert session.scalars(select(Study.status)).one() == "completed"  # a correction may lower the status


def test_without_a_uid_the_known_accession_is_used(session: Session, trusts: TrustRegistry) -> None:
    apply(session, trusts, oru(PID, "OBR|1|P1|F1|XCHES^XR CHEST^LOCAL" + "|" * 14 + "ACC7" + "|" * 7 + "F",
                               f"ZDS|{UID}^RIS^Application^DICOM"))
    outcome = apply(session, trusts, oru(PID, "OBR|1|P1|F1|XCHES^XR CHEST^LOCAL" + "|" * 14 + "ACC7" + "|" * 7 + "X",
                                         control="C2"))
    assert outcome.accepted and session.scalars(select(Study.status)).one() == "cancelled"


def test_without_a_uid_an_order_status_is_carried_to_the_order(session: Session, trusts: TrustRegistry) -> None:
    session.add(ImagingOrder(requesting_trust="RTK", placer_order_number="P55", status="active"))
    session.flush()
    outcome = apply(session, trusts, oru(PID, "ORC|SC|P55|F55||CM", "OBR|1|P55|F55|XCHES^XR CHEST^LOCAL"))
    assert outcome.accepted
    assert session.scalars(select(ImagingOrder.status)).one() == "completed"


def test_without_any_key_the_message_is_rejected(session: Session, trusts: TrustRegistry) -> None:
    outcome = apply(session, trusts, oru(PID, "OBR|1|P9|F9|XCHES^XR CHEST^LOCAL" + "|" * 21 + "F"))
    assert not outcome.accepted and outcome.error_code == "hl7.required"
    assert "AB123456" not in (outcome.reason or "")  # reasons never name a patient


@pytest.mark.parametrize(("pid", "namespace"), [
    ("PID|1||AB123456^^^RTK^MR", "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"),  # ODS in CX.4
    ("PID|1||K1234567^^^^MR^RYR", "https://fhir.uhsussex.nhs.uk/Id/hospital-number"),  # ODS in CX.6
    ("PID|1||Q123456^^^^MR", "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"),  # unqualified: MSH-4
    # the sending trust's own number keys it, as in ADT and ORM (one PID reader: mpi.read_pid)
    ("PID|1||X9^^^RXC^MR~AB123456^^^RTK^MR", "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"),
])
def test_pid3_is_qualified_as_in_adt(session: Session, trusts: TrustRegistry, pid: str, namespace: str) -> None:
    apply(session, trusts, oru(pid, "OBR|1|P1|F1|XCHES^XR CHEST^LOCAL", f"ZDS|{UID}^RIS^Application^DICOM"))
    assert session.scalars(select(Study.patient_issuer)).one() == namespace
