"""Identity operations: merge, unmerge, link, unlink, change of identifier, manual decisions that stick, history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from mpi_factories import NHS_OTHER, TRUST_A, TRUST_B, TRUST_C, demographics
from sqlalchemy import Engine, select

from mpi import MATCH, NO_MATCH, PatientIndex, RecordKey
from mpi.batch import relink
from mpi.placement import nhs_numbers_disagree
from mpi.tables import LinkEvent, RegionalPatient, SourceIdentifier
from priorscan.db import session_factory
from priorscan.errors import LinkConflictError
from priorscan.trusts import default_trusts


def two_people(index: PatientIndex, *, nhs_number: str | None = NHS_OTHER) -> tuple[str, str]:
    a = index.upsert(demographics(TRUST_A, "A1"), event="ADT^A04", actor="feed")
    b = index.upsert(demographics(TRUST_B, "B1", given="Rupert", family="Okafor", birth_date="1990-10-02",
                                  nhs_number=nhs_number, sex="male", postcode="BN1 1AA", address="2 Sea Road",
                                  phone=None), event="ADT^A04", actor="feed")
    assert a.regional_id != b.regional_id
    return a.regional_id, b.regional_id


def test_link_joins_two_patients_and_sticks_through_relink(index: PatientIndex) -> None:
    _, _ = two_people(index)
    outcome = index.link(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_B, "B1"), actor="clerk", by_person=True)
    a = index.require_record(RecordKey(TRUST_A, "A1"))
    assert outcome.regional_id == a.regional_patient_id
    relink(index.session)
    a = index.require_record(RecordKey(TRUST_A, "A1"))
    b = index.require_record(RecordKey(TRUST_B, "B1"))
    assert a.regional_patient_id == b.regional_patient_id, "a manual link survives a batch relink"


def test_unlink_separates_and_sticks_through_updates_and_relink(index: PatientIndex) -> None:
    index.upsert(demographics(TRUST_A, "A1"), event="ADT^A04", actor="feed")
    joined = index.upsert(demographics(TRUST_B, "B1"), event="ADT^A04", actor="feed")
    assert joined.link_state == MATCH
    index.unlink(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_B, "B1"), actor="clerk")
    again = index.upsert(demographics(TRUST_B, "B1", phone="01483 555 999"), event="ADT^A08", actor="feed")
    a = index.require_record(RecordKey(TRUST_A, "A1"))
    assert again.regional_id != a.regional_patient_id, "an update does not undo a manual unlink"
    relink(index.session)
    a = index.require_record(RecordKey(TRUST_A, "A1"))
    b = index.require_record(RecordKey(TRUST_B, "B1"))
    assert a.regional_patient_id != b.regional_patient_id, "nor does a batch relink"


def test_merge_and_unmerge(index: PatientIndex) -> None:
    first, second = two_people(index, nhs_number=None)
    index.merge(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_B, "B1"), actor="pas")
    gone = index.require_record(RecordKey(TRUST_B, "B1"))
    assert gone.active is False and gone.regional_patient_id == first
    retired = index.session.get(RegionalPatient, second)
    assert retired is not None and retired.status == "retired" and retired.merged_into_id == first
    assert index.regional_patient(second).id == first  # type: ignore[union-attr]
    outcome = index.unmerge(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_B, "B1"), actor="clerk")
    assert outcome.regional_id != first and outcome.link_state == NO_MATCH


_ANOTHER_PERSON = {"given": "Rupert", "family": "Okafor", "birth_date": date(1990, 10, 2), "nhs_number": None,
                   "sex": "male", "postcode": "BN1 1AA", "address": "2 Sea Road, Brighton", "phone": "01273 555 777"}


@pytest.fixture
def index_on_each_store(engine: Engine) -> Iterator[PatientIndex]:
    with session_factory(engine)() as session:
        yield PatientIndex(session, default_trusts())


def test_unmerge_takes_back_everything_a_wrong_merge_brought(index_on_each_store: PatientIndex) -> None:
    """A PAS merges two hospital numbers of different people (A40); the merge brings the retired number's other
    records along. The unmerge gives the person back their regional patient with every record the merge moved and
    every record that joined through them since; the survivor keeps only its own."""
    index = index_on_each_store
    survivor = index.upsert(demographics(TRUST_A, "A1"), event="ADT^A04", actor="feed")
    person = index.upsert(demographics(TRUST_A, "A2", **_ANOTHER_PERSON), event="ADT^A04", actor="feed")
    elsewhere = index.upsert(demographics(TRUST_B, "B1", **_ANOTHER_PERSON), event="ADT^A04", actor="feed")
    assert elsewhere.regional_id == person.regional_id != survivor.regional_id
    index.merge(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_A, "A2"), actor="pas")
    assert index.require_record(RecordKey(TRUST_B, "B1")).regional_patient_id == survivor.regional_id
    index.upsert(demographics(TRUST_C, "C1", **_ANOTHER_PERSON), event="ADT^A04", actor="feed")

    index.unmerge(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_A, "A2"), actor="clerk")

    def patient_of(namespace: str, local_id: str) -> str | None:
        return index.require_record(RecordKey(namespace, local_id)).regional_patient_id

    assert patient_of(TRUST_A, "A2") == person.regional_id, "the person's regional id comes back"
    assert patient_of(TRUST_B, "B1") == person.regional_id, "with the record the merge brought"
    assert patient_of(TRUST_C, "C1") == person.regional_id, "and the record that joined through them since"
    assert patient_of(TRUST_A, "A1") == survivor.regional_id
    restored = index.session.get(RegionalPatient, person.regional_id)
    assert restored is not None and restored.status == "active" and restored.merged_into_id is None
    assert [r.local_id for r in index.records_of(survivor.regional_id)] == ["A1"]
    relink(index.session)
    assert patient_of(TRUST_A, "A2") == patient_of(TRUST_B, "B1") == patient_of(TRUST_C, "C1")
    assert patient_of(TRUST_A, "A2") != patient_of(TRUST_A, "A1"), "the unmerge sticks through a relink"


def test_change_of_identifier_keeps_the_patient(index: PatientIndex) -> None:
    a = index.upsert(demographics(TRUST_A, "A1"), event="ADT^A04", actor="feed")
    index.change_identifier(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_A, "A1-NEW"), actor="pas")
    moved = index.require_record(RecordKey(TRUST_A, "A1-NEW"))
    assert moved.regional_patient_id == a.regional_id
    assert index.find_records(TRUST_A, "A1") == []  # the replaced number is retired: it finds nobody
    assert index.resolve([(TRUST_A, "A1")], None).regional_id is None


def test_history_records_who_and_why(index: PatientIndex) -> None:
    two_people(index)
    index.link(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_B, "B1"), actor="clerk", by_person=True)
    b = index.require_record(RecordKey(TRUST_B, "B1"))
    events = list(index.session.scalars(select(LinkEvent).where(LinkEvent.source_record_id == b.id)
                                        .order_by(LinkEvent.id)))
    assert [e.actor for e in events] == ["feed", "clerk"]
    assert events[0].reason.startswith("link-on-write") and events[0].model_version
    assert events[-1].manual is True and events[-1].reason == "ADT^A24"


def test_review_decision_match_joins_and_no_match_sticks(index: PatientIndex) -> None:
    index.upsert(demographics(TRUST_A, "A1"), event="t", actor="feed")
    doubtful = index.upsert(demographics(TRUST_B, "B1", nhs_number=NHS_OTHER, nhs_verification="02"), event="t",
                            actor="feed")
    assert doubtful.review_item_id is not None
    outcome = index.resolve_review(doubtful.review_item_id, "match", actor="reviewer")
    a = index.require_record(RecordKey(TRUST_A, "A1"))
    assert outcome.regional_id == a.regional_patient_id

    index.upsert(demographics(TRUST_C_NS, "C1", nhs_number=NHS_OTHER, nhs_verification="02"), event="t", actor="f")
    item = index.upsert(demographics(TRUST_C_NS, "C1", nhs_number=NHS_OTHER, nhs_verification="02"), event="t",
                        actor="f").review_item_id
    if item is not None:
        index.resolve_review(item, "no-match", actor="reviewer")
        again = index.upsert(demographics(TRUST_C_NS, "C1", nhs_number=NHS_OTHER, nhs_verification="02",
                                          phone="01483 000 000"), event="t", actor="f")
        assert again.regional_id != a.regional_patient_id


def test_resolve_for_requests(index: PatientIndex) -> None:
    a = index.upsert(demographics(TRUST_A, "A1"), event="t", actor="feed")
    found = index.resolve([("https://fhir.nhs.uk/Id/nhs-number", "943 476 5919")], None)
    assert (found.regional_id, found.identity) == (a.regional_id, "confirmed")
    by_demographics = index.resolve([], demographics("query", "q", nhs_number=None))
    assert by_demographics.regional_id == a.regional_id and by_demographics.identity == "confirmed"
    nobody = index.resolve([], demographics("query", "q", nhs_number=None, given="Zed", family="Quux",
                                            birth_date="2001-01-01"))
    assert nobody.identity == "unknown"


TRUST_C_NS = "https://fhir.rpc.nhs.uk/Id/mrn"


# --- two valid NHS numbers become one patient only by a person's decision (hazard H-ID-03) -------------------------

def _patients_of(index: PatientIndex, *keys: RecordKey) -> set[str | None]:
    return {index.require_record(key).regional_patient_id for key in keys}


def test_a_feed_never_merges_or_links_two_valid_nhs_numbers(index: PatientIndex) -> None:
    first, second = two_people(index)
    a, b = RecordKey(TRUST_A, "A1"), RecordKey(TRUST_B, "B1")
    for operation in (index.merge, index.link):
        with pytest.raises(LinkConflictError):
            operation(a, b, actor="hl7:PAS@RTK")
    with pytest.raises(LinkConflictError):
        index.change_identifier(b, a, actor="hl7:PAS@RXC")  # an A47 onto an existing record is a merge
    with pytest.raises(LinkConflictError):
        index.relink(b, first, actor="batch")
    assert _patients_of(index, a) == {first} and _patients_of(index, b) == {second}
    assert index.manual_decisions(index.require_record(a).id) == {}, "a refused operation records no decision"


def test_a_person_may_join_two_valid_nhs_numbers(index: PatientIndex) -> None:
    first, _ = two_people(index)
    a, b = RecordKey(TRUST_A, "A1"), RecordKey(TRUST_B, "B1")
    index.merge(a, b, actor="user:reviewer", by_person=True)
    assert _patients_of(index, a, b) == {first}


def test_a_feed_may_merge_when_the_numbers_agree_or_one_side_has_none(index: PatientIndex) -> None:
    first, _ = two_people(index, nhs_number=None)
    index.link(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_B, "B1"), actor="hl7:PAS@RTK")
    assert _patients_of(index, RecordKey(TRUST_A, "A1"), RecordKey(TRUST_B, "B1")) == {first}


def test_nhs_numbers_disagree_only_when_each_side_has_one_the_other_lacks() -> None:
    assert nhs_numbers_disagree({"1"}, {"2"})
    assert not nhs_numbers_disagree(set(), {"2"})
    assert not nhs_numbers_disagree({"1"}, {"1", "2"})  # the second already holds both: nothing new is joined
    assert nhs_numbers_disagree({"1", "3"}, {"1", "2"})


def test_the_identifier_replaced_by_a47_is_kept_as_old(index: PatientIndex) -> None:
    index.upsert(demographics(TRUST_A, "A1"), event="ADT^A04", actor="feed")
    index.change_identifier(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_A, "A1-NEW"), actor="pas")
    moved = index.require_record(RecordKey(TRUST_A, "A1-NEW"))
    kept = index.session.scalars(select(SourceIdentifier).where(SourceIdentifier.source_record_id == moved.id)).all()
    assert [(i.system, i.value, i.use) for i in kept] == [(TRUST_A, "A1", "old")]
    again = index.upsert(demographics(TRUST_A, "A1", given="Other", family="Person", nhs_number=None,
                                      birth_date="2001-01-01"), event="ADT^A04", actor="feed")
    assert again.source_record_id != moved.id, "a message naming the replaced number is about a record of its own"
