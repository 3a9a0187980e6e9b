"""The read side of the patient index: resolution for requests and $match, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mpi_factories import NHS_OTHER, NHS_THIRD, TRUST_A, TRUST_B, demographics
from sqlalchemy import event, update
from sqlalchemy.orm import Session

from mpi import POSSIBLE, PatientIndex, RecordKey
from mpi.tables import RegionalPatient, SourceIdentifier, SourceRecord
from priorscan.db import make_engine, session_factory
from priorscan.trusts import NHS_NUMBER_SYSTEM, default_trusts


@pytest.fixture
def store(store_url: str) -> Iterator[PatientIndex]:
    engine = make_engine(store_url)
    with session_factory(engine)() as session:
        yield PatientIndex(session, default_trusts())
    engine.dispose()


def retire_chain(session: Session, *ids: str) -> None:
    """Patients ``ids[0] -> ids[1] -> ...`` merged each into the next (the last one stays active)."""
    for rid in ids:
        if session.get(RegionalPatient, rid) is None:
            session.add(RegionalPatient(id=rid, status="active"))
    session.flush()
    for gone, into in zip(ids, ids[1:], strict=False):
        session.execute(update(RegionalPatient).where(RegionalPatient.id == gone).values(
            status="retired", merged_into_id=into))
    session.flush()


def point_at(session: Session, key: RecordKey, regional_id: str) -> None:
    session.execute(update(SourceRecord).where(SourceRecord.namespace == key.namespace,
                                               SourceRecord.local_id == key.local_id)
                    .values(regional_patient_id=regional_id))
    session.flush()
    session.expire_all()


def test_survivors_follow_merges_to_the_end(store: PatientIndex) -> None:
    retire_chain(store.session, "RPCHAIN1", "RPCHAIN2", "RPCHAIN3")
    retire_chain(store.session, "RPLOOPA", "RPLOOPB", "RPLOOPA")  # a loop must end (after 20 hops, as before)
    found = store.survivors(["RPCHAIN1", "RPCHAIN2", "RPCHAIN3", "RPNOBODY", "RPLOOPA"])
    assert found["RPCHAIN1"] == found["RPCHAIN2"] == found["RPCHAIN3"] == "RPCHAIN3"
    assert found["RPNOBODY"] is None
    loop = store.regional_patient("RPLOOPA")
    assert loop is not None and found["RPLOOPA"] == loop.id  # the same answer as the one-at-a-time look-up


def test_resolve_follows_a_stale_pointer_to_the_surviving_patient(store: PatientIndex) -> None:
    placed = store.upsert(demographics(TRUST_A, "A1"), event="t", actor="feed")
    retire_chain(store.session, "RPOLD0001", "RPOLD0002", placed.regional_id)
    point_at(store.session, RecordKey(TRUST_A, "A1"), "RPOLD0001")
    by_hospital_number = store.resolve([(TRUST_A, "A1")], None)
    assert (by_hospital_number.regional_id, by_hospital_number.identity) == (placed.regional_id, "confirmed")
    by_nhs_number = store.resolve([(NHS_NUMBER_SYSTEM, "943 476 5919")], None)
    assert by_nhs_number.regional_id == placed.regional_id
    assert store.patients_known_by(TRUST_A, " A1 ") == [placed.regional_id]  # as $match uses it


def test_resolving_an_active_patient_costs_one_statement(store: PatientIndex) -> None:
    placed = store.upsert(demographics(TRUST_A, "A1"), event="t", actor="feed")
    store.session.add(SourceIdentifier(source_record_id=placed.source_record_id, system=TRUST_A, value="A1"))
    store.session.flush()  # the record's own key again as a further identifier: found once, not twice
    statements: list[str] = []
    connection = store.session.connection()
    event.listen(connection, "before_cursor_execute", lambda *args: statements.append(args[2]))
    for identifiers in ([(NHS_NUMBER_SYSTEM, "9434765919")], [(TRUST_A, "A1")]):
        statements.clear()
        found = store.resolve(identifiers, None)
        assert (found.regional_id, found.identity) == (placed.regional_id, "confirmed")
        assert len(statements) == 1  # the record and its patient's status together: no second look-up
    statements.clear()
    assert store.patients_known_by(TRUST_A, "A1") == [placed.regional_id]
    assert len(statements) == 1


def test_resolve_reports_a_possible_match_identity_as_probable(store: PatientIndex) -> None:
    store.upsert(demographics(TRUST_A, "A1"), event="t", actor="feed")
    doubtful = store.upsert(demographics(TRUST_B, "B1", nhs_number=NHS_OTHER, nhs_verification="02"), event="t",
                            actor="feed")
    assert doubtful.link_state == POSSIBLE
    found = store.resolve([(TRUST_B, "B1")], None)
    assert (found.regional_id, found.identity, found.candidates) == (
        doubtful.regional_id, "probable", [doubtful.regional_id])


def test_resolve_by_a_further_identifier_and_by_several(store: PatientIndex) -> None:
    first = store.upsert(demographics(TRUST_A, "A1"), event="t", actor="feed")
    other = store.upsert(demographics(TRUST_B, "B9", given="Rupert", family="Okafor", birth_date="1990-10-02",
                                      nhs_number=NHS_THIRD, sex="male", postcode="BN1 1AA", address="2 Sea Road",
                                      phone=None), event="t", actor="feed")
    assert first.regional_id != other.regional_id
    store.session.add(SourceIdentifier(source_record_id=other.source_record_id, system=TRUST_B, value="OLD9"))
    store.session.flush()
    assert store.resolve([(TRUST_B, "OLD9")], None).regional_id == other.regional_id
    assert store.patients_known_by(TRUST_B, "OLD9") == [other.regional_id]
    assert store.patients_known_by(TRUST_B, "NOSUCH") == []
    both = store.resolve([(TRUST_A, "A1"), (TRUST_B, "B9"), (NHS_NUMBER_SYSTEM, NHS_THIRD)], None)
    # two patients: the one more identifiers point at first, and never confirmed
    assert (both.regional_id, both.identity, both.candidates) == (
        other.regional_id, "probable", [other.regional_id, first.regional_id])
    assert store.resolve([(TRUST_A, "NOSUCH")], None).identity == "unknown"


def test_match_keeps_the_best_and_names_surviving_patients(store: PatientIndex) -> None:
    household = [("Eleanor Grace", "1978-03-14"), ("Thomas", "1975-07-02"), ("Amelia", "2006-11-30"),
                 ("Oliver", "2009-01-19")]  # one address, four people: blocked together, scored apart
    placed = [store.upsert(demographics(TRUST_A, f"A{n}", nhs_number=None, given=given, birth_date=born,
                                        phone=None), event="t", actor="feed")
              for n, (given, born) in enumerate(household)]
    assert len({p.regional_id for p in placed}) == 4
    query = demographics("query", "q", nhs_number=None, given="Eleanor", birth_date="1978-03-14", phone=None)
    everyone = store.match(query, count=50)
    assert len(everyone) >= 2
    probabilities = [m.probability for m in everyone]
    assert probabilities == sorted(probabilities, reverse=True)
    top_two = store.match(query, count=2)
    assert [(m.regional_id, m.probability, m.grade) for m in top_two] == [
        (m.regional_id, m.probability, m.grade) for m in everyone[:2]]
    # a record still pointing at a merged-away patient is reported under the survivor
    best = everyone[0].regional_id
    retire_chain(store.session, "RPGONE0001", best)
    record = next(p for p in placed if p.regional_id == best)
    store.session.execute(update(SourceRecord).where(SourceRecord.id == record.source_record_id)
                          .values(regional_patient_id="RPGONE0001"))
    store.session.flush()
    again = store.match(query, count=50)
    assert [(m.regional_id, m.probability, m.grade) for m in again] == [
        (m.regional_id, m.probability, m.grade) for m in everyone]
