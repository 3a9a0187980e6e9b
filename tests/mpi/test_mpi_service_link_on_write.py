"""The write path's look-ups in few statements (link-on-write), on SQLite and PostgreSQL: the candidates and their
patients in one statement, manual decisions and open reviews read with the record itself."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from mpi_factories import NHS_OTHER, TRUST_A, TRUST_B, demographics
from sqlalchemy import event, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from mpi import MatchRecord, PatientIndex, RecordKey
from mpi.batch import bulk_load
from mpi.engine import MAX_BLOCK_SIZE, blocking_keys
from mpi.index_store import _candidate_clusters_sql
from mpi.tables import BlockingKey, LinkEvent, RegionalPatient, ReviewItem, SourceRecord, SourceRecordVersion
from priorscan.db import make_engine, session_factory
from priorscan.trusts import default_trusts


@pytest.fixture
def sessions(store_url: str) -> Iterator[Session]:
    engine = make_engine(store_url)
    yield session_factory(engine)  # type: ignore[misc]
    engine.dispose()


def crowd(session: Session) -> None:
    """More people of one name and birth date than a block may hold (their shared keys are skipped), two records
    each, and a few people of their own."""
    people = MAX_BLOCK_SIZE // 2 + 2
    records, owners = [], []
    for n in range(people):
        for trust in (TRUST_A, TRUST_B):
            records.append(demographics(trust, f"S{n}", nhs_number=None, nhs_verification=None, family="Smith",
                                        given="John", birth_date=date(1980, 1, 1), postcode=f"GU{n % 9 + 1} {n}AB",
                                        address=f"{n} High Street", phone=None))
            owners.append(f"RPS{n:05d}")
    for n, family in enumerate(("Okonkwo", "Whitfield", "Nakamura")):
        records.append(demographics(TRUST_A, f"O{n}", family=family, given="Ada", postcode="RH1 1AA",
                                    nhs_number=None, birth_date=date(1990, 5, n + 1)))
        owners.append(f"RPO{n:05d}")
    bulk_load(session, records, regional_ids=owners)
    session.commit()


def two_step(index: PatientIndex, probe: MatchRecord, exclude: int | None, also: list[int]) -> dict[str, list[int]]:
    ids = index.candidate_ids(probe, exclude=exclude)
    ids.extend(i for i in also if i not in ids)
    return {rid: sorted(m.record_id or 0 for m in members)
            for rid, members in index.store._clusters_of(ids, exclude=exclude).items()}


def one_step(index: PatientIndex, probe: MatchRecord, exclude: int | None, also: list[int]) -> dict[str, list[int]]:
    return {rid: sorted(m.record_id or 0 for m in members)
            for rid, members in index.candidate_clusters(probe, exclude=exclude, also=also).items()}


def test_candidates_and_their_patients_in_one_statement_as_in_two(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        crowd(session)
        index = PatientIndex(session, default_trusts())
        rows = session.execute(select(SourceRecord.id, SourceRecord.match_fields).order_by(SourceRecord.id)).all()
        stranger = rows[-1].id
        probes = [(MatchRecord.from_stored(rid, stored), exclude, also)
                  for rid, stored in (rows[0], rows[7], rows[-2])
                  for exclude, also in ((None, []), (rid, []), (rid, [stranger]), (None, [rows[1].id]))]
        seen_over_cap = False
        for probe, exclude, also in probes:
            assert one_step(index, probe, exclude, also) == two_step(index, probe, exclude, also)
            seen_over_cap = seen_over_cap or any(
                len(session.scalars(select(BlockingKey.source_record_id).where(BlockingKey.key == key)).all())
                > MAX_BLOCK_SIZE for key in blocking_keys(probe))
        assert seen_over_cap  # the crowd's shared keys were skipped by both
        assert one_step(index, probes[0][0], None, [])  # and the crowd still finds its own (postcode, address)


def test_the_statement_is_built_once_per_key_count() -> None:
    assert _candidate_clusters_sql(3) is _candidate_clusters_sql(3)
    assert _candidate_clusters_sql(3) is not _candidate_clusters_sql(4)


def test_an_update_supersedes_the_open_review_of_its_record(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        index = PatientIndex(session, default_trusts())
        index.upsert(demographics(TRUST_A, "A1"), event="t", actor="feed")
        doubtful = index.upsert(demographics(TRUST_B, "B1", nhs_number=NHS_OTHER, nhs_verification="02"),
                                event="t", actor="feed")
        assert doubtful.review_item_id is not None
        session.commit()
    with sessions() as session:  # a fresh session: the record is updated with plain statements
        index = PatientIndex(session, default_trusts())
        index.upsert(demographics(TRUST_B, "B1", nhs_number=NHS_OTHER, nhs_verification="02",
                                  family="Quux", given="Zed", birth_date=date(2001, 1, 1), postcode="ZZ9 9ZZ",
                                  address="1 Nowhere", phone=None), event="t", actor="feed")
        session.commit()
        first = session.get(ReviewItem, doubtful.review_item_id)
        assert first is not None and first.status == "superseded"


def test_an_update_respects_a_manual_no_match(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        index = PatientIndex(session, default_trusts())
        a = index.upsert(demographics(TRUST_A, "A1"), event="t", actor="feed")
        doubtful = index.upsert(demographics(TRUST_B, "B1", nhs_number=NHS_OTHER, nhs_verification="02"),
                                event="t", actor="feed")
        assert doubtful.review_item_id is not None
        index.resolve_review(doubtful.review_item_id, "no-match", actor="reviewer")
        session.commit()
    with sessions() as session:  # the other record, not itself decided by hand, is updated with plain statements
        index = PatientIndex(session, default_trusts())
        again = index.upsert(demographics(TRUST_A, "A1", address="14 Mill Lane, Guildford"), event="t",
                             actor="feed")
        session.commit()
        assert again.review_item_id is None  # the decision stands: the pair is not proposed again
        b = index.require_record(RecordKey(TRUST_B, "B1"))
        assert again.regional_id == a.regional_id != b.regional_patient_id


def test_a_new_record_is_written_with_its_version_keys_and_link_event(sessions) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL the rows (and the regional patient the record founds) go in one statement (data-modifying
    CTEs); SQLite writes them one by one. Either way the same rows are stored."""
    with sessions() as session:
        statements: list[str] = []
        connection = session.connection()
        event.listen(connection, "before_cursor_execute", lambda *args: statements.append(args[2]))
        placed = PatientIndex(session, default_trusts()).upsert(
            demographics(TRUST_A, "NEW1", nhs_number=None, nhs_verification=None), event="ADT^A04", actor="feed")
        writes = [s for s in statements if s.lstrip().upper().startswith("INSERT") or "new_record" in s]
        # the new patient, the record, its version, its keys, its link event
        assert len(writes) == (1 if session.get_bind().dialect.name == "postgresql" else 5)
        session.commit()
    with sessions() as session:
        record = session.get(SourceRecord, placed.source_record_id)
        assert record is not None and record.regional_patient_id == placed.regional_id and record.version == 1
        patient = session.get(RegionalPatient, placed.regional_id)
        assert patient is not None and patient.status == "active" and patient.family == record.family
        stored_keys = set(session.scalars(select(BlockingKey.key).where(
            BlockingKey.source_record_id == record.id)))
        assert stored_keys and stored_keys == blocking_keys(MatchRecord.from_stored(record.id, record.match_fields))
        versions = session.scalars(select(SourceRecordVersion).where(
            SourceRecordVersion.source_record_id == record.id)).all()
        assert [(v.version, v.event, v.applied, v.demographics["local_id"]) for v in versions] == [
            (1, "ADT^A04", True, "NEW1")]
        events = session.scalars(select(LinkEvent).where(LinkEvent.source_record_id == record.id)).all()
        assert [(e.from_regional_id, e.to_regional_id, e.link_state, e.manual, e.actor) for e in events] == [
            (None, placed.regional_id, placed.link_state, False, "feed")]
        assert events[0].at.tzinfo is not None and events[0].weights is None  # typed values, NULL JSON kept NULL


def test_a_value_too_long_for_its_column_is_refused_not_cut_short(store_url: str) -> None:
    """PostgreSQL enforces VARCHAR lengths (SQLite does not): the one-statement insert must not truncate instead."""
    pg_url = store_url if store_url.startswith("postgresql") else None
    if pg_url is None:
        return  # nothing to enforce on SQLite; the PostgreSQL run of this test is the check
    engine = make_engine(pg_url)
    try:
        with session_factory(engine)() as session, pytest.raises(DBAPIError):
            PatientIndex(session, default_trusts()).upsert(
                demographics(TRUST_A, "LONG1", nhs_number=None, nhs_verification=None), event="ADT^A04",
                actor="x" * 201)
    finally:
        engine.dispose()



def test_a_record_joining_a_patient_updates_its_golden_record_in_the_same_statement(sessions) -> None:  # type: ignore[no-untyped-def]
    """The second record of a person joins the first one's patient; the patient's golden record takes its newer
    address. On PostgreSQL the golden record's update goes with the record's inserts, in one statement."""
    trusts = default_trusts()
    with sessions() as session:
        first = PatientIndex(session, trusts).upsert(
            demographics(TRUST_A, "J1", event_at=datetime(2024, 1, 1, tzinfo=UTC)), event="ADT^A04", actor="feed")
        session.commit()
    with sessions() as session:
        statements: list[str] = []
        event.listen(session.connection(), "before_cursor_execute", lambda *args: statements.append(args[2]))
        second = PatientIndex(session, trusts).upsert(
            demographics(TRUST_B, "J2", address="3 New Road, Guildford", event_at=datetime(2024, 6, 1, tzinfo=UTC)),
            event="ADT^A04", actor="feed")
        writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE")) or "new_record" in s]
        assert len(writes) == (1 if session.get_bind().dialect.name == "postgresql" else 5)
        session.commit()
    assert second.regional_id == first.regional_id and second.link_state == "match"
    with sessions() as session:
        patient = session.get(RegionalPatient, first.regional_id)
        assert patient is not None and patient.address == "3 New Road, Guildford" and patient.status == "active"
        assert patient.created_at is not None and patient.updated_at > patient.created_at


def test_an_update_replaces_the_blocking_keys_that_changed(sessions) -> None:  # type: ignore[no-untyped-def]
    """A move (new postcode and address) and then the loss of the birth date: the stored keys are always exactly the
    record's keys (PostgreSQL replaces them in one statement, SQLite reads them first)."""
    trusts = default_trusts()

    def stored_keys(session: Session, record_id: int) -> set[str]:
        return set(session.scalars(select(BlockingKey.key).where(BlockingKey.source_record_id == record_id)))

    with sessions() as session:
        placed = PatientIndex(session, trusts).upsert(demographics(TRUST_A, "K1"), event="ADT^A04", actor="feed")
        session.commit()
        before = stored_keys(session, placed.source_record_id)
    for change in ({"postcode": "BN1 1AA", "address": "2 Sea Road, Brighton"}, {"birth_date": None}):
        with sessions() as session:
            PatientIndex(session, trusts).upsert(demographics(TRUST_A, "K1", **change), event="ADT^A08",
                                                 actor="feed")
            session.commit()
        with sessions() as session:
            record = session.get(SourceRecord, placed.source_record_id)
            assert record is not None
            expected = blocking_keys(MatchRecord.from_stored(record.id, record.match_fields))
            assert stored_keys(session, record.id) == expected
            assert expected != before  # the change did touch the keys
            before = expected


def test_link_on_write_joins_a_copy_to_its_original_despite_an_earlier_copy(sessions) -> None:  # type: ignore[no-untyped-def]
    """The original, then a copy with the birth year's digits transposed, then a copy from after a move with the
    first name misspelt: the two copies alone are more likely two people than one, but the original, carrying the
    given name and the birth date and a match with both, vouches for them (as the batch relink clusters them)."""
    base = {"nhs_number": None, "nhs_verification": None, "phone": None}
    trusts = default_trusts()
    with sessions() as session:
        index = PatientIndex(session, trusts)
        original = index.upsert(demographics(TRUST_A, "C1", **base), event="t", actor="feed")
        first = index.upsert(demographics(TRUST_B, "C2", birth_date=date(1987, 3, 14), address="12 Guildford Lane",
                                          **base), event="t", actor="feed")
        second = index.upsert(demographics(TRUST_B, "C3", given="Elenor Grace", postcode="TN2 1AA",
                                           address="3 Oak Road", **base), event="t", actor="feed")
        session.commit()
    assert original.regional_id == first.regional_id == second.regional_id
    assert second.link_state == "match"


@pytest.mark.parametrize("others, scored", [
    (MAX_BLOCK_SIZE - 1, True),  # with the new record, the keys are held by exactly the cap: they are used
    (MAX_BLOCK_SIZE, False),  # with it, one over the cap: skipped, before it is written as after
])
def test_a_key_over_the_cap_counts_the_record_itself_on_create_and_on_update(sessions, others: int,
                                                                             scored: bool) -> None:  # type: ignore[no-untyped-def]
    """A new record's candidates are read before it is written, an update's after its keys are: the cap counts the
    record as a holder of its keys either way (as the batch relink counts it), and the bound on candidates never
    counts it, so both see the same blocks (the update's own keys, held by it alone, used to spend the bound)."""
    crowd = [demographics(TRUST_A, f"S{n}", nhs_number=None, nhs_verification=None, family="Smith", given="John",
                          birth_date=date(1980, 1, 1), postcode=f"GU{n % 9 + 1} {n % 10}A{chr(65 + n % 26)}",
                          address=f"{n} High Street", phone=None) for n in range(others)]
    newcomer = demographics(TRUST_B, "NEW", nhs_number=None, nhs_verification=None, family="Smith", given="John",
                            birth_date=date(1980, 1, 1), postcode="ZE2 9QQ", address="1 Far Lane", phone=None)
    with sessions() as session:
        bulk_load(session, crowd, regional_ids=[f"RPS{n:05d}" for n in range(others)])
        session.commit()
        index = PatientIndex(session, default_trusts())
        created = index.upsert(newcomer, event="t", actor="feed")
        stored = session.get(SourceRecord, created.source_record_id)
        assert stored is not None
        shared = [key for key in blocking_keys(MatchRecord.from_stored(0, stored.match_fields))
                  if key.startswith(("d:", "nm:"))]  # the newcomer shares only these keys with the crowd
        assert shared and all(len(session.scalars(select(BlockingKey.source_record_id)
                                                  .where(BlockingKey.key == key)).all()) == others + 1
                              for key in shared)
        updated = index.upsert(replace(newcomer, phone="01483 000 000"), event="t", actor="feed")
        session.commit()
        assert (created.score is not None) is scored
        assert (updated.score is not None) is scored
        assert (created.link_state, created.regional_id) == (updated.link_state, updated.regional_id)
