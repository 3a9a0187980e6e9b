"""The hard cases of REFERENCE.md, each through link-on-write with its expected decision.

Every case starts from one patient (Eleanor Grace Whitfield, see :func:`mpi_factories.demographics`) known at one
trust, then sends a second record from another trust (or the same one) and checks where it lands.
"""

from __future__ import annotations

from typing import Any

import pytest
from mpi_factories import NHS_OTHER, TRUST_A, TRUST_B, demographics

from mpi import MATCH, NO_MATCH, POSSIBLE, PatientIndex

# A record that matches nobody gets a regional patient of its own; its link_state says how sure that is.


def second(index: PatientIndex, local_id: str = "B1", namespace: str = TRUST_B, **fields: Any):  # type: ignore
    index.upsert(demographics(), event="ADT^A04", actor="test")
    return index.upsert(demographics(namespace, local_id, **fields), event="ADT^A04", actor="test")


def regional_of(index: PatientIndex, namespace: str, local_id: str) -> str:
    from mpi import RecordKey

    record = index.get_record(RecordKey(namespace, local_id))
    assert record is not None and record.regional_patient_id
    return record.regional_patient_id


@pytest.mark.parametrize(("fields", "why"), [
    ({"given": "Ellie"}, "nickname (Eleanor/Ellie) with everything else the same"),
    ({"family": "Whitfield-Jones"}, "double-barrelled name gained"),
    ({"family": "Whitfield Jones", "nhs_number": None}, "double-barrelled, written with a space, no NHS number"),
    ({"given": "Whitfield", "family": "Eleanor"}, "given and family swapped"),
    ({"birth_date": "1978-14-03"}, "day and month transposed"),
    ({"birth_date": "1978-03-04", "nhs_number": None}, "one digit of the day keyed wrongly"),
    ({"nhs_number": "9434765918"}, "mistyped NHS number (fails the check: no evidence)"),
    ({"nhs_number": None, "nhs_verification": None}, "missing NHS number (overseas visitor)"),
    ({"postcode": "TN2 5QR", "address": "4 Pembury Road, Tunbridge Wells", "phone": None}, "moved house"),
    ({"family": "Okafor", "postcode": "BN1 1AA", "address": "9 Marine Parade, Brighton", "phone": None},
     "surname changed on marriage and moved; NHS number, given name and birth date agree"),
    ({"family": "Okafor", "nhs_number": None}, "surname changed on marriage, same address, no NHS number"),
])
def test_hard_cases_that_are_the_same_person(index: PatientIndex, fields: dict[str, Any], why: str) -> None:
    outcome = second(index, **fields)
    assert outcome.link_state == MATCH, why
    assert outcome.regional_id == regional_of(index, TRUST_A, "A1"), why


def test_within_trust_duplicate_registration_is_linked(index: PatientIndex) -> None:
    outcome = second(index, "A2", TRUST_A, given="Eleanor", nhs_number=None)
    assert outcome.link_state == MATCH
    assert outcome.regional_id == regional_of(index, TRUST_A, "A1")


@pytest.mark.parametrize(("fields", "expected", "why"), [
    ({"given": "Margaret", "nhs_number": NHS_OTHER, "sex": "female"}, NO_MATCH,
     "twins: same family name, birth date and address, their own verified NHS numbers"),
    ({"given": "Thomas", "nhs_number": None, "sex": "male"}, NO_MATCH,
     "twin-like record of the other sex without an NHS number: given name and sex tell them apart"),
    ({"given": "Margaret", "nhs_number": None}, POSSIBLE,
     "same-sex twin-like record without an NHS number: relatives at one home share a birth date (twins), a "
     "person decides"),
    ({"given": None, "nhs_number": None, "nhs_verification": None}, POSSIBLE,
     "no given name and no NHS number at the same home: a same-sex twin cannot be ruled out before the store has "
     "learnt how often relatives share a birth date (the shipped prior model), so a person decides"),
    ({"nhs_number": NHS_OTHER}, NO_MATCH, "identical demographics, two different verified NHS numbers"),
    ({"nhs_number": NHS_OTHER, "nhs_verification": "02"}, POSSIBLE,
     "different valid NHS numbers, one not verified: strong evidence against, review"),
    ({"given": "Patricia", "birth_date": "1951-09-30", "nhs_number": None}, NO_MATCH,
     "mother of the same family name at the same address: different birth date and given name"),
])
def test_hard_cases_that_must_not_be_linked(index: PatientIndex, fields: dict[str, Any], expected: str,
                                            why: str) -> None:
    outcome = second(index, **fields)
    assert outcome.regional_id != regional_of(index, TRUST_A, "A1"), why
    if expected == POSSIBLE:
        assert outcome.link_state == POSSIBLE and outcome.review_item_id is not None, why
    else:  # a patient of its own, nothing to review
        assert outcome.link_state != POSSIBLE and outcome.review_item_id is None, why


def test_common_names_with_different_birth_dates_stay_apart(index: PatientIndex) -> None:
    john = {"family": "Smith", "given": "John", "sex": "male", "nhs_number": None, "address": None, "phone": None}
    a = index.upsert(demographics(TRUST_A, "S1", birth_date="1960-01-01", postcode="GU1 1AA", **john), event="t",
                     actor="test")
    b = index.upsert(demographics(TRUST_B, "S2", birth_date="1971-06-12", postcode="GU2 7XH", **john), event="t",
                     actor="test")
    c = index.upsert(demographics(TRUST_B, "S3", birth_date="1960-01-01", postcode="GU1 1AA", **john), event="t",
                     actor="test")
    assert a.regional_id != b.regional_id
    assert c.regional_id == a.regional_id and c.link_state == MATCH


def test_a_weak_middle_record_does_not_chain_two_people(index: PatientIndex) -> None:
    # A: verified NHS number. B: no NHS number, no address: matches A and would match C. C: another verified number.
    a = index.upsert(demographics(TRUST_A, "A1"), event="t", actor="test")
    b = index.upsert(demographics(TRUST_B, "B1", nhs_number=None, postcode=None, address=None, phone=None),
                     event="t", actor="test")
    assert b.regional_id == a.regional_id
    c = index.upsert(demographics(TRUST_B, "C1", nhs_number=NHS_OTHER, postcode=None, address=None, phone=None),
                     event="t", actor="test")
    assert c.regional_id != a.regional_id, "C matches B but conflicts with A: the patient's integrity holds"


def test_review_item_explains_itself(index: PatientIndex) -> None:
    from mpi.tables import ReviewItem

    outcome = second(index, nhs_number=NHS_OTHER, nhs_verification="02")
    assert outcome.review_item_id is not None
    item = index.session.get(ReviewItem, outcome.review_item_id)
    assert item is not None and item.status == "open"
    assert item.weights["levels"]["nhs_number"] == "else"
    assert item.weights["field_weights"]["birth_date"] > 0
    assert item.weights["guard"] == "different-nhs-numbers"


def test_opposite_sex_twin_without_a_given_name_is_not_linked(index: PatientIndex) -> None:
    outcome = second(index, given=None, sex="male", nhs_number=None)
    assert outcome.regional_id != regional_of(index, TRUST_A, "A1")


def test_a_record_without_given_name_or_nhs_number_joins_neither_twin(index: PatientIndex) -> None:
    eleanor = index.upsert(demographics(TRUST_A, "A1"), event="t", actor="test")
    margaret = index.upsert(demographics(TRUST_A, "A2", given="Margaret", nhs_number=NHS_OTHER), event="t",
                            actor="test")
    assert eleanor.regional_id != margaret.regional_id
    outcome = index.upsert(demographics(TRUST_B, "B1", given=None, nhs_number=None, nhs_verification=None),
                           event="t", actor="test")
    assert outcome.regional_id not in (eleanor.regional_id, margaret.regional_id)
    assert outcome.link_state == POSSIBLE and outcome.review_item_id is not None


def test_a_record_without_birth_date_or_nhs_number_joins_neither_father_nor_son_of_one_name(
        index: PatientIndex) -> None:
    father = index.upsert(demographics(TRUST_A, "A1", given="John", sex="male", birth_date="1950-06-02"), event="t",
                          actor="test")
    son = index.upsert(demographics(TRUST_A, "A2", given="John", sex="male", birth_date="1979-11-23",
                                    nhs_number=NHS_OTHER), event="t", actor="test")
    assert father.regional_id != son.regional_id
    outcome = index.upsert(demographics(TRUST_B, "B1", given="John", sex="male", birth_date=None, nhs_number=None,
                                        nhs_verification=None), event="t", actor="test")
    assert outcome.regional_id not in (father.regional_id, son.regional_id)
    assert outcome.link_state == POSSIBLE and outcome.review_item_id is not None


def test_no_given_name_with_the_same_nhs_number_is_still_linked(index: PatientIndex) -> None:
    outcome = second(index, given=None)
    assert outcome.link_state == MATCH, "the NHS number agrees: it tells the person from a twin"
    assert outcome.regional_id == regional_of(index, TRUST_A, "A1")


def test_a_record_without_birth_date_joins_the_one_person_it_is_near_certain_with(session) -> None:  # type: ignore
    """Link-on-write decides rule 8 as the batch relink does
    (``test_batch_links_a_record_without_birth_date_to_the_one_person_it_is_near_certain_with``): near-certain with
    Eleanor, a bare possible with Elena whom the evidence keeps apart from her, it joins Eleanor."""
    from mpi.model import Model
    from priorscan.trusts import default_trusts

    index = PatientIndex(session, default_trusts(), Model.default().evolve(match_threshold=0.98))
    none = {"nhs_number": None, "nhs_verification": None}
    eleanor = index.upsert(demographics(TRUST_A, "A1", **none), event="t", actor="test")
    elena = index.upsert(demographics(TRUST_A, "A3", given="Elena", family="Whitfeld", birth_date="1950-06-02",
                                      nhs_number=NHS_OTHER, phone=None), event="t", actor="test")
    assert eleanor.regional_id != elena.regional_id
    outcome = index.upsert(demographics(TRUST_B, "B1", birth_date=None, **none), event="t", actor="test")
    assert outcome.regional_id == eleanor.regional_id and outcome.link_state == MATCH
