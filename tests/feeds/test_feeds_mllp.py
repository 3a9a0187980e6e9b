"""The MLLP listener over real sockets (hl7.client.MLLPClient), on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import hl7
import pytest
from feeds_factories import RTK, RXC, Ack, adt, control_id, exchange, pid, record_of, send_raw
from hl7.client import MLLPClient
from sqlalchemy import func, select

from api.feeds.mllp import Frame, MllpFramer
from mpi.records import RecordKey
from mpi.service import PatientIndex
from mpi.tables import SourceIdentifier, SourceRecord, SourceRecordVersion
from priorscan.hl7v2 import DecodedMessage, decode_message
from priorscan.tables import AuditEvent, DeadLetter, HL7MessageLog


def versions_of(server, key: RecordKey) -> list[SourceRecordVersion]:
    with server.context.sessions() as session:
        found = PatientIndex(session, server.context.trusts).get_record(key)
        assert found is not None
        return list(session.scalars(select(SourceRecordVersion).where(
            SourceRecordVersion.source_record_id == found.id).order_by(SourceRecordVersion.id)))


def regional_of(server, key: RecordKey) -> str:
    found = record_of(server, key)
    assert found is not None and found.regional_patient_id
    with server.context.sessions() as session:
        survivor = PatientIndex(session, server.context.trusts).regional_patient(found.regional_patient_id)
        assert survivor is not None
        return survivor.id


# --- accepted messages ------------------------------------------------------------------------------------------

def test_aa_comes_after_commit_and_echoes_the_control_id(mllp) -> None:
    control = control_id()
    message = adt("A04", pid("AB100001^^^RTK^MR~9990000018^^^NHS^NH", name="SMITH^JOHN^PAUL^^MR"), control=control)
    with MLLPClient("127.0.0.1", mllp.port) as client:
        ack = exchange(client, message)
    assert (ack.code, ack.control_id) == ("AA", control)
    assert ack.segment("ERR") == []
    stored = record_of(mllp, RecordKey(RTK, "AB100001"))  # a fresh session sees it: committed before the ACK
    assert stored is not None
    assert (stored.family, stored.given, stored.nhs_number, stored.source_kind) == (
        "SMITH", "JOHN PAUL", "9990000018", "hl7")
    with mllp.context.sessions() as session:
        audit = session.scalars(select(AuditEvent).where(AuditEvent.event_type == "hl7")).all()
    assert [(a.subtype, a.regional_patient_id, a.outcome) for a in audit] == [
        ("ADT^A04", stored.regional_patient_id, "0")]


def test_a_repeat_gets_the_original_ack_and_is_not_applied_twice(mllp) -> None:
    message = adt("A08", pid("AB100002^^^RTK^MR"))
    with MLLPClient("127.0.0.1", mllp.port) as client:
        first = exchange(client, message)
        again = exchange(client, message)
    assert first.code == "AA"
    assert again.text == first.text  # the very same ACK, byte for byte
    assert len(versions_of(mllp, RecordKey(RTK, "AB100002"))) == 1


def test_another_message_under_a_used_control_id_is_applied_and_a_resend_is_not(mllp) -> None:
    """A sender whose MSH-10 counter started again (or a template with a fixed id) sends another message under a
    used MSH-10: it is applied, not answered with the first one's ACK and dropped. A re-send of a message, even
    stamped with a new MSH-7 by the interface engine, is still a repeat: applied once."""
    control = control_id()
    first = adt("A08", pid("AB100012^^^RTK^MR", name="SMITH^JOHN"), control=control)
    other = adt("A08", pid("AB100013^^^RTK^MR", name="JONES^MARY", sex="F"), control=control)
    msh, rest = other.split("\r", 1)
    fields = msh.split("|")
    fields[6] = "20240101120500"  # MSH-7: stamped again by the engine that re-sends it
    restamped = "|".join(fields) + "\r" + rest
    with MLLPClient("127.0.0.1", mllp.port) as client:
        acks = [exchange(client, message) for message in (first, other, restamped)]
    assert [a.code for a in acks] == ["AA"] * 3
    assert acks[2].text == acks[1].text  # the re-send got the ACK of the message it repeats
    assert len(versions_of(mllp, RecordKey(RTK, "AB100012"))) == 1
    assert len(versions_of(mllp, RecordKey(RTK, "AB100013"))) == 1  # applied once, not dropped, not twice
    with mllp.context.sessions() as session:
        logged = session.scalars(select(HL7MessageLog).where(HL7MessageLog.control_id == control)).all()
    assert len(logged) == 2 and {row.ack_code for row in logged} == {"AA"}  # one row per message


def _restamped(message: str, time: str) -> str:
    msh, rest = message.split("\r", 1)
    fields = msh.split("|")
    fields[6] = time  # MSH-7: stamped again by the engine that re-sends it
    return "|".join(fields) + "\r" + rest


def test_a_late_resend_of_the_first_message_under_a_reused_control_id_is_not_applied_again(mllp) -> None:
    """H-HL7-13: the log kept one row per sender and MSH-10, which the second message under the id took over, so a
    late re-send of the first was applied again: here an older name written over the newer one."""
    control = control_id()
    first = adt("A08", pid("AB100014^^^RTK^MR", name="SMITH^JOHN"), control=control)
    newer = adt("A08", pid("AB100014^^^RTK^MR", name="SMITH^JONATHAN"), control=control)
    with MLLPClient("127.0.0.1", mllp.port) as client:
        acks = [exchange(client, message) for message in (first, newer, _restamped(first, "20240101120500"),
                                                          _restamped(newer, "20240101120600"))]
    assert [a.code for a in acks] == ["AA"] * 4
    assert acks[2].text == acks[0].text and acks[3].text == acks[1].text  # each re-send got its own message's ACK
    record = record_of(mllp, RecordKey(RTK, "AB100014"))
    assert record is not None and record.given == "JONATHAN"  # the late re-send did not put the old name back
    assert len(versions_of(mllp, RecordKey(RTK, "AB100014"))) == 2


def test_concurrent_copies_of_one_message_are_applied_once(mllp) -> None:
    message = adt("A28", pid("AB100003^^^RTK^MR"))

    def send() -> Ack:
        with MLLPClient("127.0.0.1", mllp.port) as client:
            return exchange(client, message)

    with ThreadPoolExecutor(6) as pool:
        acks = list(pool.map(lambda _: send(), range(6)))
    assert {a.code for a in acks} == {"AA"}
    assert len({a.text for a in acks}) == 1  # every copy got the ACK of the one that was applied
    assert len(versions_of(mllp, RecordKey(RTK, "AB100003"))) == 1
    with mllp.context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(HL7MessageLog)) == 1


def test_many_connections_are_served_at_once_with_acks_in_order(mllp) -> None:
    def feed(trust: int) -> list[tuple[str, str]]:
        pairs = []
        with MLLPClient("127.0.0.1", mllp.port) as client:
            for n in range(8):
                control = control_id()
                message = adt("A04", pid(f"AB{trust:02d}{n:04d}^^^RTK^MR", name=f"PERSON{trust}X{n}^ANN",
                                         dob=f"19{50 + trust}0{n + 1}01"), control=control)
                pairs.append((control, exchange(client, message).control_id))
        return pairs

    started = time.monotonic()
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(feed, range(5)))
    assert all(sent == acked for pairs in results for sent, acked in pairs)
    assert time.monotonic() - started < 60
    with mllp.context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(SourceRecord)) == 40


@pytest.mark.parametrize("segment_end", ["\r", "\n", "\r\n"], ids=["CR", "LF", "CRLF"])
def test_segment_ends(mllp_sqlite, segment_end: str) -> None:
    message = adt("A31", pid("A1000001^^^^MR^RXC", name="JONES^MARY"), facility="RXC", version="2.3",
                  segment_end=segment_end)
    with MLLPClient("127.0.0.1", mllp_sqlite.port) as client:
        assert exchange(client, message).code == "AA"
    stored = record_of(mllp_sqlite, RecordKey(RXC, "A1000001"))
    assert stored is not None and (stored.family, stored.given) == ("JONES", "MARY")


@pytest.mark.parametrize(("version", "ids", "status_segments", "status"), [
    ("2.3", "9990000018^^^NHS^NH~A1000002^^^^MR^RXC", ["ZPI|1|01"], "01"),  # CX.6 authority, status in a Z-segment
    ("2.4", "AB100004^^^RTK^MR~9990000018^^^NHS^NH", ["ZU9|x|y"], None),  # CX.4 authority, an unknown Z-segment
    ("2.5.1", "AB100005^^^RTK^MR~9990000018^^^NHS^NH", [], "02"),  # PID-32
])
def test_versions_dialects_and_z_segments(mllp_sqlite, version: str, ids: str, status_segments: list[str],
                                          status: str | None) -> None:
    facility = "RXC" if "RXC" in ids else "RTK"
    message = adt("A28", pid(ids, pid32="NSTS02" if version == "2.5.1" else ""), *status_segments,
                  facility=facility, version=version)
    with MLLPClient("127.0.0.1", mllp_sqlite.port) as client:
        assert exchange(client, message).code == "AA"
    key = RecordKey(RXC, "A1000002") if facility == "RXC" else RecordKey(RTK, ids.split("^")[0])
    stored = record_of(mllp_sqlite, key)
    assert stored is not None and (stored.nhs_number, stored.nhs_verification) == ("9990000018", status)


def test_repeated_pid3_escapes_and_quoted_null(mllp_sqlite) -> None:
    key = RecordKey(RTK, "AB100006")
    first = adt("A04", pid("AB100006^^^RTK^MR~9990000018^^^NHS^NH~A1000006^^^^MR^RXC",
                           name="O\\S\\NEILL^SEAN", phone="01483 111111"), event_time="20240101100000")
    update = adt("A08", pid("AB100006^^^RTK^MR", name="O\\S\\NEILL^SEAN", phone='""', address=""),
                 event_time="20240102100000")
    with MLLPClient("127.0.0.1", mllp_sqlite.port) as client:
        assert exchange(client, first).code == "AA"
        assert exchange(client, update).code == "AA"
    stored = record_of(mllp_sqlite, key)
    assert stored is not None
    assert stored.family == "O^NEILL"
    assert stored.phone is None  # "" deleted it
    assert stored.postcode == "GU1 1AA"  # an empty PID-11 was not sent: kept
    with mllp_sqlite.context.sessions() as session:
        found = PatientIndex(session, mllp_sqlite.context.trusts).find_records(RXC, "A1000006")
    assert [r.id for r in found] == [stored.id]


def test_an_older_update_arriving_late_does_not_overwrite_a_newer_one(mllp) -> None:
    key = RecordKey(RTK, "AB100007")
    newer = adt("A08", pid("AB100007^^^RTK^MR", name="NEWNAME^ANN"), event_time="20240105120000")
    older = adt("A08", pid("AB100007^^^RTK^MR", name="OLDNAME^ANN"), event_time="20240103120000")
    with MLLPClient("127.0.0.1", mllp.port) as client:
        assert exchange(client, newer).code == "AA"
        assert exchange(client, older).code == "AA"  # accepted: kept in history, not applied
    stored = record_of(mllp, key)
    assert stored is not None and stored.family == "NEWNAME"
    assert [v.applied for v in versions_of(mllp, key)] == [True, False]


def test_a40_naming_an_unknown_patient_is_kept_and_resolves_to_the_survivor(mllp) -> None:
    survivor, retired = RecordKey(RTK, "AB200001"), RecordKey(RTK, "AB200002")
    with MLLPClient("127.0.0.1", mllp.port) as client:
        assert exchange(client, adt("A04", pid("AB200001^^^RTK^MR"), event_time="20240101100000")).code == "AA"
        ack = exchange(client, adt("A40", pid("AB200001^^^RTK^MR"), "MRG|AB200002^^^RTK^MR",
                                   event_time="20240102100000"))
        assert ack.code == "AA"
        late = exchange(client, adt("A08", pid("AB200002^^^RTK^MR", name="LATE^MESSAGE"),
                                    event_time="20240103100000"))
        assert late.code == "AA"
    gone = record_of(mllp, retired)
    keep = record_of(mllp, survivor)
    assert gone is not None and keep is not None
    assert (gone.active, gone.merged_into_id) == (False, keep.id)
    assert regional_of(mllp, retired) == regional_of(mllp, survivor)


def test_a40_whose_pid_carries_identifiers_only_keeps_the_persons_details(mllp) -> None:
    """Some PAS send an A40 whose PID names the survivor by its identifiers alone. When the index has never seen
    the survivor, its details are the merged-away record's (the trust says they are one person): the regional
    patient keeps its name, birth date and sex, and a demographic search still finds them (H-ID-47)."""
    survivor, retired = RecordKey(RTK, "AB200021"), RecordKey(RTK, "AB200022")
    with MLLPClient("127.0.0.1", mllp.port) as client:
        assert exchange(client, adt("A04", pid("AB200022^^^RTK^MR", name="WYNNE-JONES^CERI^ANN", dob="19610923",
                                               sex="F"), event_time="20240101100000")).code == "AA"
        merge = adt("A40", pid("AB200021^^^RTK^MR", name="", dob="", sex="", address="", phone=""),
                    "MRG|AB200022^^^RTK^MR", event_time="20240102100000")
        assert exchange(client, merge).code == "AA"
    keep, gone = record_of(mllp, survivor), record_of(mllp, retired)
    assert keep is not None and gone is not None and (gone.active, gone.merged_into_id) == (False, keep.id)
    assert (keep.family, keep.given, str(keep.birth_date), keep.sex) == ("WYNNE-JONES", "CERI ANN", "1961-09-23",
                                                                         "female")
    with mllp.context.sessions() as session:
        patient = PatientIndex(session, mllp.context.trusts).regional_patient(regional_of(mllp, survivor))
        assert patient is not None
        assert (patient.family, str(patient.birth_date), patient.sex) == ("WYNNE-JONES", "1961-09-23", "female")


def test_a40_merges_two_known_patients(mllp) -> None:
    with MLLPClient("127.0.0.1", mllp.port) as client:
        exchange(client, adt("A04", pid("AB200003^^^RTK^MR", name="ALPHA^ONE", dob="19700101")))
        exchange(client, adt("A04", pid("AB200004^^^RTK^MR", name="BETA^TWO", dob="19710101")))
        assert regional_of(mllp, RecordKey(RTK, "AB200003")) != regional_of(mllp, RecordKey(RTK, "AB200004"))
        assert exchange(client, adt("A40", pid("AB200003^^^RTK^MR"), "MRG|AB200004^^^RTK^MR")).code == "AA"
    assert regional_of(mllp, RecordKey(RTK, "AB200003")) == regional_of(mllp, RecordKey(RTK, "AB200004"))


def test_a24_links_and_a37_unlinks(mllp) -> None:
    first, second = RecordKey(RTK, "AB300001"), RecordKey(RTK, "AB300002")
    with MLLPClient("127.0.0.1", mllp.port) as client:
        exchange(client, adt("A04", pid("AB300001^^^RTK^MR", name="GAMMA^THREE", dob="19600101")))
        exchange(client, adt("A04", pid("AB300002^^^RTK^MR", name="DELTA^FOUR", dob="19610101")))
        assert regional_of(mllp, first) != regional_of(mllp, second)
        link = adt("A24", pid("AB300001^^^RTK^MR", name=""), pid("AB300002^^^RTK^MR", name="", set_id="2"))
        assert exchange(client, link).code == "AA"
        assert regional_of(mllp, first) == regional_of(mllp, second)
        unlink = adt("A37", pid("AB300001^^^RTK^MR", name=""), pid("AB300002^^^RTK^MR", name="", set_id="2"))
        assert exchange(client, unlink).code == "AA"
    assert regional_of(mllp, first) != regional_of(mllp, second)


@pytest.mark.parametrize(("message", "location"), [
    (adt("A40", pid("AB310001^^^RTK^MR", name=""), "MRG|A3100001^^^RXC^MR"), "MRG^1^1"),
    (adt("A24", pid("AB310001^^^RTK^MR", name=""), pid("A3100001^^^^MR^RXC", name="", set_id="2")), "PID^2^3"),
    (adt("A37", pid("AB310001^^^RTK^MR", name=""), pid("A3100001^^^^MR^RXC", name="", set_id="2")), "PID^2^3"),
    (adt("A47", pid("AB310001^^^RTK^MR", name=""), "MRG|A3100001^^^RXC^MR"), "MRG^1^1"),
], ids=["A40", "A24", "A37", "A47"])
def test_a_feed_may_not_merge_link_or_change_another_trusts_numbers(mllp, message: str, location: str) -> None:
    rtk, rxc = RecordKey(RTK, "AB310001"), RecordKey(RXC, "A3100001")
    with MLLPClient("127.0.0.1", mllp.port) as client:
        exchange(client, adt("A04", pid("AB310001^^^RTK^MR~9990000018^^^NHS^NH", name="ONE^ANNA", dob="19600101")))
        exchange(client, adt("A04", pid("A3100001^^^RXC^MR~9990000026^^^NHS^NH", name="TWO^BEN", dob="19610101"),
                             facility="RXC"))
        before = (regional_of(mllp, rtk), regional_of(mllp, rxc))
        ack = exchange(client, message)  # sent by RTK's PAS (MSH-4), naming RXC's hospital number
    assert (ack.code, ack.error_code, ack.error_location) == ("AR", "207", location)
    assert (regional_of(mllp, rtk), regional_of(mllp, rxc)) == before
    assert record_of(mllp, rxc) is not None and record_of(mllp, RecordKey(RTK, "AB310001")) is not None
    with mllp.context.sessions() as session:
        letters = session.scalars(select(DeadLetter)).all()
    assert [(d.error_code, d.status) for d in letters] == [("hl7.foreign-domain", "new")]


def test_a47_changes_the_identifier_of_a_record(mllp) -> None:
    with MLLPClient("127.0.0.1", mllp.port) as client:
        exchange(client, adt("A04", pid("AB400001^^^RTK^MR", name="EPSILON^FIVE")))
        before = regional_of(mllp, RecordKey(RTK, "AB400001"))
        assert exchange(client, adt("A47", pid("AB400009^^^RTK^MR", name="EPSILON^FIVE"),
                                    "MRG|AB400001^^^RTK^MR")).code == "AA"
    moved = record_of(mllp, RecordKey(RTK, "AB400009"))
    assert moved is not None and moved.regional_patient_id == before
    with mllp.context.sessions() as session:  # the replaced number is retired (use old): it names nobody any more
        index = PatientIndex(session, mllp.context.trusts)
        assert index.find_records(RTK, "AB400001") == []
        assert index.resolve([(RTK, "AB400001")], None).regional_id is None
        assert [(i.value, i.use) for i in session.scalars(select(SourceIdentifier).where(
            SourceIdentifier.source_record_id == moved.id))] == [("AB400001", "old")]


# --- refused messages -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("message", "code", "error", "location"), [
    (adt("A08", pid("AB500001^^^RTK^MR", dob="19801301")), "AE", "102", "PID^1^7"),  # a bad birth date
    (adt("A08", pid("9990000018^^^NHS^NH")), "AE", "101", "PID^1^3"),  # no hospital number
    (adt("A08", "PV1|1|O"), "AE", "100", "PID^1"),  # no PID segment
    (adt("A99"), "AR", "201", "MSH^1^9"),  # an event the index does not take (v2.4: ERR-1 names the field)
    (adt("A99", version="2.5"), "AR", "201", "MSH^1^9^1^2"),  # v2.5: ERR-2 the component, in its own slot
    (adt("A08").replace("ADT^A08", "QRY^A19"), "AR", "200", "MSH^1^9"),  # a message type it does not take
    (adt("A08").replace("|2.4\r", "|3.0\r", 1), "AR", "203", "MSH^1^12"),  # not HL7 v2
], ids=["bad-date", "no-hospital-number", "no-pid", "unsupported-event", "unsupported-event-2.5",
        "unsupported-type", "version"])
def test_refusals_carry_err_and_are_dead_lettered(mllp_sqlite, message: str, code: str, error: str,
                                                  location: str) -> None:
    with MLLPClient("127.0.0.1", mllp_sqlite.port) as client:
        ack = exchange(client, message)
    assert (ack.code, ack.error_code, ack.error_location) == (code, error, location)
    assert ack.control_id == message.split("|")[9]
    with mllp_sqlite.context.sessions() as session:
        letters = session.scalars(select(DeadLetter)).all()
        logged = session.scalars(select(HL7MessageLog)).all()
    assert [(d.channel, d.content_type, d.status) for d in letters] == [("mllp", "hl7v2", "new")]
    assert letters[0].raw.startswith("MSH|") and letters[0].reason
    assert "19801301" not in letters[0].reason and "9990000018" not in letters[0].reason
    assert [(e.ack_code, e.control_id) for e in logged] == [(code, ack.control_id)]


def test_a_refused_message_sent_again_is_processed_afresh(mllp) -> None:
    control = control_id()
    bad = adt("A08", pid("AB500002^^^RTK^MR", dob="19801301"), control=control)
    fixed = adt("A08", pid("AB500002^^^RTK^MR", dob="19801231"), control=control)
    with MLLPClient("127.0.0.1", mllp.port) as client:
        assert exchange(client, bad).code == "AE"
        assert exchange(client, fixed).code == "AA"
        assert exchange(client, fixed).code == "AA"  # and from now on it is a repeat
    assert len(versions_of(mllp, RecordKey(RTK, "AB500002"))) == 1
    with mllp.context.sessions() as session:
        letters = session.scalars(select(DeadLetter)).all()
        logged = session.scalars(select(HL7MessageLog).order_by(HL7MessageLog.id)).all()
    assert [(d.channel, d.error_code) for d in letters] == [("mllp", "hl7.datatype")]
    assert [(e.control_id, e.ack_code) for e in logged] == [(control, "AE"), (control, "AA")]  # a row per message


def test_text_without_msh_is_refused_with_ar(mllp_small) -> None:
    acks = send_raw(mllp_small.port, b"\x0bPID|1||AB1^^^RTK^MR\r\x1c\x0d")
    assert [a.code for a in acks] == ["AR"]
    with mllp_small.context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DeadLetter)) == 1


def test_an_oversized_message_is_refused_and_the_connection_stays_usable(mllp_small) -> None:
    big = adt("A08", pid("AB600001^^^RTK^MR"), "ZXX|" + "X" * 10_000)
    small = adt("A08", pid("AB600002^^^RTK^MR"))
    with MLLPClient("127.0.0.1", mllp_small.port) as client:
        refused = exchange(client, big)
        accepted = exchange(client, small)
    assert (refused.code, refused.control_id) == ("AR", big.split("|")[9])
    assert "exceeds the maximum" in refused.segment("MSA")[3]
    assert accepted.code == "AA"
    assert record_of(mllp_small, RecordKey(RTK, "AB600001")) is None
    with mllp_small.context.sessions() as session:
        letter = session.scalars(select(DeadLetter)).one()
    assert letter.error_code == "hl7.too-large" and len(letter.raw) <= 4096


def test_pipelined_messages_and_bytes_outside_frames(mllp_small) -> None:
    messages = [adt("A08", pid(f"AB70000{n}^^^RTK^MR")) for n in range(3)]
    payload = b"noise\r\n" + b"".join(b"\x0b" + m.encode() + b"\x1c\x0d" for m in messages)
    acks = send_raw(mllp_small.port, payload)
    assert [a.control_id for a in acks] == [m.split("|")[9] for m in messages]
    assert {a.code for a in acks} == {"AA"}


def _batch_frame(*messages: str, file_header: bool = True, segment_end: str = "\r") -> bytes:
    """A batch (FHS F1 / BHS B1 ... BTS / FTS, as an interface engine sends one) in one MLLP frame."""
    head = ["BHS|^~\\&|PAS|RTK|PRIORSCAN|REGION|20240101120000||||B1"]
    tail = [f"BTS|{len(messages)}"]
    if file_header:
        head.insert(0, "FHS|^~\\&|PAS|RTK|PRIORSCAN|REGION|20240101120000||||F1")
        tail.append("FTS|1")
    body = segment_end.join(head) + segment_end + "".join(m.replace("\r", segment_end) for m in messages)
    return b"\x0b" + (body + segment_end.join(tail) + segment_end).encode() + b"\x1c\x0d"


def _batch_answer(port: int, payload: bytes) -> hl7.File:
    """The one frame that answers a batch, read by an independent reader (python-hl7) as a file of batches."""
    acks = send_raw(port, payload, timeout=60)  # the first message waits for the writer process to start
    assert len(acks) == 1, "a batch in one frame is answered in one frame"
    return hl7.parse_file(acks[0].text.strip("\x0b\x1c\r\n"))


def test_a_batch_in_one_frame_gets_a_batch_of_acks_one_per_message_each_applied_or_refused_alone(mllp) -> None:
    """HL7 batch protocol (v2.5.1 2.10.3) over MLLP: FHS/BHS ... BTS/FTS in one frame. Each message is handled as if
    it had come alone (the good one applied and committed before the answer, the bad ones refused with their own
    AE/AR and ERR and dead-lettered), and the answer is a batch of ACKs naming the sender's file and batch control IDs
    (FHS-12, BHS-12), one ACK per message with MSA-2 echoing its MSH-10. The same batch sent again is answered with
    the same ACKs and applies nothing twice."""
    good, no_number, unsupported = control_id(), control_id(), control_id()
    payload = _batch_frame(adt("A04", pid("AB910001^^^RTK^MR", name="BATCH^ONE"), control=good),
                           adt("A08", pid("9990000018^^^NHS^NH"), control=no_number),
                           adt("A99", control=unsupported))
    answer = _batch_answer(mllp.port, payload)
    assert (str(answer.header[12]), str(answer.trailer[1])) == ("F1", "1")
    [batch] = answer
    assert (str(batch.header[12]), str(batch.trailer[1])) == ("B1", "3")
    msa = [(str(m.segment("MSA")[1]), str(m.segment("MSA")[2])) for m in batch]
    assert msa == [("AA", good), ("AE", no_number), ("AR", unsupported)]
    assert [len(m.segments("ERR")) if code != "AA" else 0 for m, (code, _) in zip(batch, msa, strict=True)] == [0, 1, 1]
    stored = record_of(mllp, RecordKey(RTK, "AB910001"))
    assert stored is not None and stored.family == "BATCH"
    with mllp.context.sessions() as session:
        letters = session.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
    assert [(d.channel, d.raw.split("|")[9]) for d in letters] == [("mllp", no_number), ("mllp", unsupported)]

    again = _batch_answer(mllp.port, payload)
    assert [str(m.segment("MSA")) for m in again[0]] == [str(m.segment("MSA")) for m in batch]
    assert len(versions_of(mllp, RecordKey(RTK, "AB910001"))) == 1


def test_a_batch_without_file_header_with_lf_ends_and_a_stray_segment(mllp_sqlite) -> None:
    """BHS ... BTS only (no FHS), LF segment ends, a segment before the first MSH: the stray segment is refused (AR,
    dead letter) rather than dropped, the message after it applied, and the answer has no FHS/FTS."""
    control = control_id()
    payload = _batch_frame("ZXX|stray\r" + adt("A28", pid("AB910002^^^RTK^MR"), control=control),
                           file_header=False, segment_end="\n")
    acks = send_raw(mllp_sqlite.port, payload, timeout=60)
    assert len(acks) == 1 and acks[0].text.strip("\x0b").startswith("BHS|")
    batch = hl7.parse_batch(acks[0].text.strip("\x0b\x1c\r\n"))
    assert [(str(m.segment("MSA")[1]), str(m.segment("MSA")[2])) for m in batch] == [("AR", ""), ("AA", control)]
    assert str(batch.trailer[1]) == "2" and "FTS" not in acks[0].text
    assert record_of(mllp_sqlite, RecordKey(RTK, "AB910002")) is not None
    with mllp_sqlite.context.sessions() as session:
        assert [d.raw for d in session.scalars(select(DeadLetter))] == ["ZXX|stray\r"]


def test_an_idle_connection_is_closed(mllp_small) -> None:
    with socket.create_connection(("127.0.0.1", mllp_small.port), timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(10) == b""  # the server closed it after mllp_idle_timeout_s (0.5 s)
        assert time.monotonic() - started < 8


def test_latin1_message_is_decoded_and_answered_in_kind(mllp_small) -> None:
    message = adt("A08", pid("AB800001^^^RTK^MR", name="BJÖRK^ZOË"))
    message = message.replace("|P|2.4", "|P|2.4|||||8859/1", 1)
    acks = send_raw(mllp_small.port, b"\x0b" + message.encode("latin-1") + b"\x1c\x0d")
    assert [a.code for a in acks] == ["AA"]
    stored = record_of(mllp_small, RecordKey(RTK, "AB800001"))
    assert stored is not None and (stored.family, stored.given) == ("BJÖRK", "ZOË")


# --- framing (pure) ---------------------------------------------------------------------------------------------

def test_framer_cuts_frames_across_chunks() -> None:
    framer = MllpFramer(max_bytes=100)
    assert framer.feed(b"junk\x0bMSH|A") == []
    assert framer.feed(b"BC\x1c") == [Frame(b"MSH|ABC", 7)]
    assert framer.feed(b"\x0d\x0bMSH|D\x1c\x0d\x0bMSH|E\x1c\x0d") == [Frame(b"MSH|D", 5), Frame(b"MSH|E", 5)]
    assert framer.discarded == 4


def test_framer_restarts_on_a_new_start_block_and_marks_oversized_frames() -> None:
    framer = MllpFramer(max_bytes=4)
    assert framer.feed(b"\x0bMSH|broken\x0bMSH\x1c\x0d") == [Frame(b"MSH", 3)]
    assert framer.feed(b"\x0bMSH|TOOLONG\x1c\x0d") == [Frame(b"MSH|", 11, oversized=True)]


def test_decode_follows_msh18() -> None:
    assert decode_message("MSH|^~\\&|A|B|C|D|1||ADT^A08|1|P|2.4|||||UNICODE UTF-8\rPID|É".encode()).encoding == "utf-8"
    assert decode_message(b"MSH|^~\\&|A|B|C|D|1||ADT^A08|1|P|2.4|||||8859/1\rPID|\xc9").text.endswith("É")
    # no MSH-18: UTF-8, else Windows-1252 (what UK PAS feeds send without saying so)
    assert decode_message(b"MSH|^~\\&|A\rPID|\xc9") == DecodedMessage("MSH|^~\\&|A\rPID|É", "cp1252")
