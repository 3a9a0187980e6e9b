"""HL7 ACKs in the message's own encoding and version, enhanced acknowledgement mode, local time, and the modality of
studies known from results: through the MLLP socket and ``POST /hl7``."""

from __future__ import annotations

from datetime import UTC, date, datetime

import httpx
import pytest
from feeds_factories import RTK, Ack, adt, control_id, exchange, pid, record_of, send_raw
from hl7.client import MLLPClient
from sqlalchemy import select

from imaging.tables import Study
from mpi.records import RecordKey
from priorscan.tables import DeadLetter


def frame(message: str) -> bytes:
    return b"\x0b" + message.encode() + b"\x1c\r"


def fields(ack: str, name: str, sep: str = "|") -> list[str]:
    return next((line.split(sep) for line in ack.strip("\x0b\x1c\r").split("\r") if line.startswith(name + sep)),
                [])


# --- the ACK ----------------------------------------------------------------------------------------------------

def test_the_ack_uses_the_messages_own_encoding_characters(mllp_sqlite) -> None:
    message = adt("A99", version="2.5").replace("^~\\&", "#~\\&", 1).replace("ADT^A99", "ADT#A99")
    (ack,) = send_raw(mllp_sqlite.port, frame(message), timeout=60)
    assert fields(ack.text, "MSH")[1] == "#~\\&"
    assert fields(ack.text, "MSH")[8] == "ACK#A99#ACK"
    assert fields(ack.text, "MSA")[1] == "AR"
    err = fields(ack.text, "ERR")
    assert err[2] == "MSH#1#9#1#2" and err[3].split("#")[0] == "201"  # location and code in the message's encoding
    assert "^" not in ack.text


@pytest.mark.parametrize("processing", ["P", "T", "D"])
def test_the_ack_echoes_the_processing_id(mllp_sqlite, processing: str) -> None:
    message = adt("A08", pid("AB700001^^^RTK^MR")).replace("|P|2.4", f"|{processing}|2.4", 1)
    with MLLPClient("127.0.0.1", mllp_sqlite.port) as client:
        ack = exchange(client, message)
    assert fields(ack.text, "MSH")[10] == processing


@pytest.mark.parametrize(("version", "err"), [
    ("2.3", ["ERR", "PID^1^7^102&Data type error&HL70357"]),
    ("2.4", ["ERR", "PID^1^7^102&Data type error&HL70357"]),
    ("2.5", ["ERR", "", "PID^1^7", "102^Data type error^HL70357", "E", "hl7.datatype^^99PRIORSCAN", "", "",
             "PID-7 is not a valid date"]),
    ("2.5.1", ["ERR", "", "PID^1^7", "102^Data type error^HL70357", "E", "hl7.datatype^^99PRIORSCAN", "", "",
               "PID-7 is not a valid date"]),
])
def test_the_err_segment_follows_the_messages_version(mllp_sqlite, version: str, err: list[str]) -> None:
    message = adt("A08", pid("AB700002^^^RTK^MR", dob="19801301"), version=version)
    with MLLPClient("127.0.0.1", mllp_sqlite.port) as client:
        ack = exchange(client, message)
    assert ack.code == "AE" and fields(ack.text, "ERR") == err
    assert fields(ack.text, "MSH")[11] == version


def enhanced(accept: str, application: str, **kwargs) -> str:  # type: ignore[no-untyped-def]
    message = adt("A04", **kwargs)
    first, rest = message.split("\r", 1)
    return first + f"|||{accept}|{application}\r" + rest


@pytest.mark.parametrize(("accept", "application", "expected"), [
    ("AL", "NE", ["CA"]),
    ("AL", "AL", ["CA", "AA"]),
    ("NE", "AL", ["AA"]),
    ("SU", "ER", ["CA"]),
])
def test_enhanced_mode_gets_the_acknowledgements_it_asks_for(mllp, accept: str, application: str,
                                                             expected: list[str]) -> None:
    number = f"AB71{len(expected)}{accept}{application}"
    message = enhanced(accept, application, control=control_id())
    message = message.replace("AB123456^^^RTK^MR", f"{number}^^^RTK^MR")
    acks = send_raw(mllp.port, frame(message), timeout=60)
    assert [a.code for a in acks] == expected
    assert {a.control_id for a in acks} == {message.split("|")[9]}
    assert record_of(mllp, RecordKey(RTK, number)) is not None  # every CA came after the commit
    again = send_raw(mllp.port, frame(message), timeout=60)  # a repeat: the same acknowledgements, applied once
    assert [a.text for a in again] == [a.text for a in acks]


def test_enhanced_mode_refusals(mllp_sqlite) -> None:
    bad_date = enhanced("AL", "AL", control=control_id()).replace("|19800102|", "|19801302|")
    accept_ack, application_ack = send_raw(mllp_sqlite.port, frame(bad_date), timeout=60)
    assert (accept_ack.code, application_ack.code, application_ack.error_code) == ("CA", "AE", "102")  # kept
    unsupported = enhanced("AL", "AL", control=control_id()).replace("ADT^A04", "ADT^A99")
    (reject,) = send_raw(mllp_sqlite.port, frame(unsupported), timeout=60)
    assert (reject.code, reject.error_code) == ("CR", "201")
    with mllp_sqlite.context.sessions() as session:
        assert len(session.scalars(select(DeadLetter)).all()) == 2


def test_post_hl7_answers_every_acknowledgement_asked_for(live_server_sqlite) -> None:
    token = live_server_sqlite.token(["priorscan/hl7"])
    reply = httpx.post(f"{live_server_sqlite.base_url}/hl7", content=enhanced("AL", "AL", control=control_id()),
                       headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"})
    assert reply.status_code == 200
    assert [line.split("|")[1] for line in reply.text.split("\r") if line.startswith("MSA|")] == ["CA", "AA"]


# --- time -------------------------------------------------------------------------------------------------------

def test_a_message_time_without_offset_is_london_time(mllp) -> None:
    key = RecordKey(RTK, "AB720001")
    registered = adt("A04", pid("AB720001^^^RTK^MR", name="SUMMER^ONE"), event_time="20260801003000+0100")
    earlier = adt("A08", pid("AB720001^^^RTK^MR", name="WINTER^TWO"), event_time="20260801000000")
    with MLLPClient("127.0.0.1", mllp.port) as client:
        assert exchange(client, registered).code == "AA"
        # 00:00 local (BST) is 23:00 UTC, half an hour before the registration: out of order, kept in history only
        assert exchange(client, earlier).code == "AA"
    stored = record_of(mllp, key)
    assert stored is not None and stored.family == "SUMMER"
    assert stored.last_event_at == datetime(2026, 7, 31, 23, 30, tzinfo=UTC)


def oru(uid: str, observed: str, *, section: str = "CT", procedure: str = "CTHEAD^CT HEAD^LOCAL") -> str:
    obr = ["OBR", "1", "P1", "F1", procedure, "", "", observed] + [""] * 16 + [section, "F"]
    return "\r".join([
        f"MSH|^~\\&|RIS|RTK|PRIORSCAN|REGION|{observed}||ORU^R01|{control_id()}|P|2.4",
        "PID|1||AB730001^^^RTK^MR||TESTER^JANE||19700101|F", "|".join(obr),
        f"ZDS|{uid}^RIS^Application^DICOM"]) + "\r"


@pytest.mark.parametrize(("observed", "study_date", "instant"), [
    ("20260801003000", date(2026, 8, 1), datetime(2026, 7, 31, 23, 30, tzinfo=UTC)),  # local time (BST)
    ("20260801003000+0100", date(2026, 8, 1), datetime(2026, 7, 31, 23, 30, tzinfo=UTC)),  # the same, said
    ("20260731233000+0000", date(2026, 8, 1), datetime(2026, 7, 31, 23, 30, tzinfo=UTC)),  # UTC: London's date
    ("20260115003000", date(2026, 1, 15), datetime(2026, 1, 15, 0, 30, tzinfo=UTC)),  # GMT
])
def test_a_result_is_dated_on_the_local_calendar(live_server, observed: str, study_date: date,
                                                 instant: datetime) -> None:
    uid = "1.2.826.0.1.3680043.10.73." + observed[:14]
    token = live_server.token(["priorscan/hl7"])
    reply = httpx.post(f"{live_server.base_url}/hl7", content=oru(uid, observed),
                       headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"})
    assert Ack(reply.text).code == "AA"
    with live_server.context.sessions() as session:
        study = session.scalars(select(Study).where(Study.study_instance_uid == uid)).one()
    assert (study.study_date, study.study_datetime) == (study_date, instant)


# --- results carry their modality ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("section", "procedure", "modality"), [
    ("CT", "CTHEAD^CT HEAD^LOCAL", "CT"),  # OBR-24 says it
    ("RAD", "MRKNEL^MRI LEFT KNEE^LOCAL", "MR"),  # OBR-24 names radiology only: the procedure says it
    ("", "USABDO^US ABDOMEN^LOCAL", "US"),  # no OBR-24 at all
    ("RX", "XCHES^XR CHEST^LOCAL", "DX"),  # HL7 table 0074 RX (radiograph)
])
def test_a_study_known_from_its_result_has_a_modality_in_fhir(live_server_sqlite, section: str, procedure: str,
                                                              modality: str) -> None:
    uid = f"1.2.826.0.1.3680043.10.74.{len(section)}{len(procedure)}"
    token = live_server_sqlite.token(["priorscan/hl7", "system/ImagingStudy.rs"])
    headers = {"Authorization": f"Bearer {token}"}
    reply = httpx.post(f"{live_server_sqlite.base_url}/hl7", content=oru(uid, "20260301101500", section=section,
                                                                        procedure=procedure),
                       headers={**headers, "Content-Type": "text/plain"})
    assert Ack(reply.text).code == "AA"
    study = httpx.get(f"{live_server_sqlite.base_url}/fhir/ImagingStudy/{uid}", headers=headers)
    assert study.status_code == 200
    assert study.json()["modality"] == [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": modality}]
