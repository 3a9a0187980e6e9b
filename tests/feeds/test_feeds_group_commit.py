"""Group commit: several HL7 messages applied with one commit; a batch with a bad message is applied again with a
savepoint per message, so that the bad one is refused alone (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from feeds_factories import RTK, Ack, adt, exchange, pid
from hl7.client import MLLPClient
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from api.feeds.hl7_service import Incoming, process_messages
from mpi.records import RecordKey
from mpi.service import PatientIndex
from mpi.tables import SourceRecord, SourceRecordVersion
from priorscan.audit import Agent
from priorscan.errors import IdentityError
from priorscan.tables import DeadLetter, HL7MessageLog

AGENT = Agent("feed", "test")


def incoming(*messages: str) -> list[Incoming]:
    return [Incoming(m, AGENT, "test") for m in messages]


def stored(context, local_id: str) -> SourceRecord | None:  # type: ignore[no-untyped-def]
    with context.sessions() as session:
        return PatientIndex(session, context.trusts).get_record(RecordKey(RTK, local_id))


def version_count(context, local_id: str) -> int:  # type: ignore[no-untyped-def]
    with context.sessions() as session:
        return session.scalar(select(func.count()).select_from(SourceRecordVersion).join(
            SourceRecord, SourceRecord.id == SourceRecordVersion.source_record_id).where(
            SourceRecord.local_id == local_id)) or 0


def commits_during(context, work):  # type: ignore[no-untyped-def]
    """Run ``work`` and count the transactions the store committed meanwhile."""
    count = 0

    def on_commit(_connection) -> None:  # type: ignore[no-untyped-def]
        nonlocal count
        count += 1

    event.listen(context.engine, "commit", on_commit)
    try:
        result = work()
    finally:
        event.remove(context.engine, "commit", on_commit)
    return result, count


def test_a_batch_is_committed_once_and_every_message_gets_its_own_aa(context) -> None:
    messages = [adt("A04", pid(f"GC10000{n}^^^RTK^MR", name=f"BATCHPERSON{n}^ANN", dob=f"1970010{n + 1}"))
                for n in range(4)]
    outcomes, commits = commits_during(context, lambda: process_messages(context, incoming(*messages),
                                                                         channel="test"))
    assert commits == 1  # one commit for the four messages, not four
    assert [Ack(o.detail["ack"]).code for o in outcomes] == ["AA"] * 4
    assert [Ack(o.detail["ack"]).control_id for o in outcomes] == [m.split("|")[9] for m in messages]
    for n in range(4):  # committed when the outcomes are returned: a fresh session sees every record
        assert stored(context, f"GC10000{n}") is not None


def test_a_clean_batch_takes_no_savepoints(context) -> None:
    messages = [adt("A04", pid(f"GC60000{n}^^^RTK^MR", name=f"CLEAN{n}^GUS", dob=f"1990040{n + 1}"))
                for n in range(3)]
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(context.engine, "before_cursor_execute", seen)
    try:
        outcomes, commits = commits_during(context, lambda: process_messages(context, incoming(*messages),
                                                                             channel="test"))
    finally:
        event.remove(context.engine, "before_cursor_execute", seen)
    assert commits == 1 and [Ack(o.detail["ack"]).code for o in outcomes] == ["AA"] * 3
    assert not [s for s in statements if "SAVEPOINT" in s.upper()]


def test_a_bad_message_in_a_batch_is_refused_alone(context, monkeypatch: pytest.MonkeyPatch) -> None:
    real_upsert = PatientIndex.upsert

    def failing_upsert(self, demographics, **kwargs):  # type: ignore[no-untyped-def]
        outcome = real_upsert(self, demographics, **kwargs)  # it writes first: the savepoint must undo it
        if demographics.local_id == "GC200002":
            raise IdentityError("the application refused this record")
        return outcome

    monkeypatch.setattr(PatientIndex, "upsert", failing_upsert)
    messages = [adt("A04", pid(f"GC20000{n}^^^RTK^MR", name=f"NEIGHBOUR{n}^BEN", dob=f"1960020{n + 1}"))
                for n in range(1, 5)]
    outcomes = process_messages(context, incoming(*messages), channel="test")
    codes = [Ack(o.detail["ack"]).code for o in outcomes]
    assert codes == ["AA", "AE", "AA", "AA"]
    refused = Ack(outcomes[1].detail["ack"])
    assert refused.segment("ERR") and refused.control_id == messages[1].split("|")[9]
    assert stored(context, "GC200002") is None  # its own writes were rolled back with its savepoint
    assert all(stored(context, f"GC20000{n}") is not None for n in (1, 3, 4))  # its neighbours were not lost
    with context.sessions() as session:
        letters = session.scalars(select(DeadLetter)).all()
        logged = {row.control_id: row.ack_code for row in session.scalars(select(HL7MessageLog))}
    assert len(letters) == 1 and letters[0].raw.strip() == messages[1].strip()
    assert logged == {m.split("|")[9]: code for m, code in zip(messages, codes, strict=True)}


def test_a_repeat_inside_one_batch_gets_the_original_ack_and_is_applied_once(context) -> None:
    message = adt("A04", pid("GC300001^^^RTK^MR", name="REPEATED^CARL", dob="19550505"))
    other = adt("A04", pid("GC300002^^^RTK^MR", name="BETWEEN^DORA", dob="19560606"))
    outcomes, commits = commits_during(context, lambda: process_messages(
        context, incoming(message, other, message), channel="test"))
    assert commits == 1
    first, _, again = outcomes
    assert Ack(first.detail["ack"]).code == "AA" and not first.detail["duplicate"]
    assert again.detail["duplicate"] and again.detail["ack"] == first.detail["ack"]  # byte for byte
    assert version_count(context, "GC300001") == 1


def test_an_older_update_later_in_the_same_batch_does_not_overwrite(context) -> None:
    register = adt("A04", pid("GC400001^^^RTK^MR", name="ORDER^EVE", dob="19700707"), event_time="20240101090000")
    process_messages(context, incoming(register), channel="test")
    newer = adt("A08", pid("GC400001^^^RTK^MR", name="ORDER^EVE", dob="19700707",
                           address="2 NEW ST^^GUILDFORD^SURREY^GU2 2BB^GBR^H"), event_time="20240103090000")
    older = adt("A08", pid("GC400001^^^RTK^MR", name="ORDER^EVE", dob="19700707",
                           address="9 OLD ST^^GUILDFORD^SURREY^GU9 9ZZ^GBR^H"), event_time="20240102090000")
    outcomes = process_messages(context, incoming(newer, older), channel="test")
    assert [Ack(o.detail["ack"]).code for o in outcomes] == ["AA", "AA"]
    assert [o.detail["applied"] for o in outcomes] == [True, False]
    record = stored(context, "GC400001")
    assert record is not None and record.address.startswith("2 NEW ST") and record.postcode == "GU2 2BB"
    assert version_count(context, "GC400001") == 3  # the late one is kept in history


def test_a_batch_whose_commit_fails_is_applied_message_by_message(context, monkeypatch: pytest.MonkeyPatch) -> None:
    real_commit = Session.commit
    failed = []

    def commit_failing_once(self: Session) -> None:
        if not failed:
            failed.append(True)
            raise OperationalError("COMMIT", {}, Exception("database is locked"))
        real_commit(self)

    monkeypatch.setattr(Session, "commit", commit_failing_once)
    messages = [adt("A04", pid(f"GC50000{n}^^^RTK^MR", name=f"RETRIED{n}^FAY", dob=f"1980030{n + 1}"))
                for n in range(3)]
    outcomes = process_messages(context, incoming(*messages), channel="test")
    assert failed  # the batch's commit did fail
    assert [Ack(o.detail["ack"]).code for o in outcomes] == ["AA"] * 3
    assert all(version_count(context, f"GC50000{n}") == 1 for n in range(3))


def test_over_mllp_an_aa_is_only_sent_for_committed_work(mllp) -> None:
    """Five feeds at once (their messages share commits): whenever an AA arrives, a fresh session sees the work."""
    unseen: list[str] = []
    guard = threading.Lock()

    def feed(trust: int) -> None:
        with MLLPClient("127.0.0.1", mllp.port) as client:
            for n in range(12):
                local = f"GC6{trust}{n:04d}"
                ack = exchange(client, adt("A04", pid(f"{local}^^^RTK^MR", name=f"FEED{trust}^N{n}",
                                                      dob=f"19{60 + trust}01{n + 10}")))
                assert ack.code == "AA"
                if stored(mllp.context, local) is None:
                    with guard:
                        unseen.append(local)

    with ThreadPoolExecutor(5) as pool:
        list(pool.map(feed, range(5)))
    assert unseen == []
    with mllp.context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(HL7MessageLog)) == 60


def test_a_batch_recognises_a_late_resend_of_any_message_under_a_reused_control_id(context) -> None:
    """H-HL7-13 in one group commit: two messages under one MSH-10 and a re-send of the first each get their own
    outcome (the re-send its message's ACK, not applied again); a second batch re-sending both applies nothing."""
    first = adt("A08", pid("GC200001^^^RTK^MR", name="SMITH^JOHN"), control="GCREUSE1")
    newer = adt("A08", pid("GC200001^^^RTK^MR", name="SMITH^JONATHAN"), control="GCREUSE1")
    outcomes = process_messages(context, incoming(first, newer, first), channel="mllp")
    assert [o.accepted for o in outcomes] == [True] * 3
    assert [o.detail["duplicate"] for o in outcomes] == [False, False, True]
    assert outcomes[2].detail["ack"] == outcomes[0].detail["ack"]
    again = process_messages(context, incoming(newer, first), channel="mllp")
    assert [o.detail["duplicate"] for o in again] == [True, True]
    record = stored(context, "GC200001")
    assert record is not None and record.given == "JONATHAN" and version_count(context, "GC200001") == 2
    with context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(HL7MessageLog).where(
            HL7MessageLog.control_id == "GCREUSE1")) == 2
