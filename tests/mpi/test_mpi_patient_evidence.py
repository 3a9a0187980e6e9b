"""Evidence of whole patients for a review item (:mod:`mpi.patient_evidence`): two patients whose records each agree
on a birth date, and differ on it, are two people, and their pair is not put to a steward (H-ID-55); a patient of one
dated record is reviewed exactly as before."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from mpi_factories import match_record
from sqlalchemy import select
from sqlalchemy.orm import Session

from mpi import Demographics
from mpi.frames import Frame, frame_from_records
from mpi.linkage import link_frame
from mpi.model import Model
from mpi.normalise import MatchRecord
from mpi.patient_evidence import consensus_birth_dates, consensus_given_names, patients_weight, two_people
from mpi.scoring import score_frames

#: Two men of one full name and middle initial, no NHS number or phone: nothing but the birth date and the home
#: tells them apart, as pseudopeople's namesakes (James J Romero born 1991 and another born 1974).
NAMESAKE = {
    "nhs_number": None,
    "nhs_verification": None,
    "phone": None,
    "given": "James J",
    "family": "Romero",
    "sex": "male",
}
FIRST = {"birth_date": "1991-04-02", "postcode": "GU1 4AB", "address": "12 Mill Lane", **NAMESAKE}
SECOND = {"birth_date": "1974-09-17", "postcode": "TN2 5QR", "address": "4 Pembury Road", **NAMESAKE}


def _model() -> Model:
    """The shipped model with a prior that puts the namesakes' pair in review (posterior ~0.85) and each man's own
    records far above the match threshold."""
    return Model.default().evolve(prior=1 / (1 + 2**8), match_threshold=0.98)


def _records(*specs: tuple[str, dict[str, str | None]]) -> list[MatchRecord]:
    """Records of ``(local id, fields)``, their ids in order from 1."""
    return [match_record(i, local_id=local_id, **fields) for i, (local_id, fields) in enumerate(specs, start=1)]


def _all_pairs(records: list[MatchRecord]) -> tuple[Frame, np.ndarray, np.ndarray]:
    left, right = np.triu_indices(len(records), k=1)
    return frame_from_records(records), left.astype(np.int64), right.astype(np.int64)


def _reviewed(records: list[MatchRecord], model: Model | None = None) -> tuple[np.ndarray, list[tuple[int, int]], int]:
    frame, left, right = _all_pairs(records)
    linkage = link_frame(frame, model or _model(), left, right)
    return (
        linkage.labels,
        sorted(zip(linkage.review_left.tolist(), linkage.review_right.tolist(), strict=True)),
        linkage.reviews_apart,
    )


@pytest.mark.parametrize(
    "first, second",
    [
        (2, 2),  # each man twice: the pair needs two independent errors of the date to be one person
        (2, 3),  # the fewer dated records of the two sides count
        (4, 2),
    ],
)
def test_two_patients_each_agreeing_on_another_birth_date_are_not_put_to_review(first: int, second: int) -> None:
    records = [match_record(i + 1, local_id=f"F{i}", **FIRST) for i in range(first)] + [
        match_record(first + i + 1, local_id=f"S{i}", **SECOND) for i in range(second)
    ]
    labels, reviewed, apart = _reviewed(records)
    assert len(set(labels[:first].tolist())) == 1 and len(set(labels[first:].tolist())) == 1
    assert labels[0] != labels[first], "two people, never linked"
    assert reviewed == [] and apart == 1, "their one review item is not opened"


def test_one_record_with_an_odd_birth_date_is_still_reviewed_against_a_patient_agreeing_on_another() -> None:
    """A record on its own (link-on-write's case too) is one record: its odd date is one error, what the pair's own
    weight already says; the pair goes to review as before (most such items are one person)."""
    records = _records(("F0", FIRST), ("F1", FIRST), ("S0", SECOND))
    labels, reviewed, apart = _reviewed(records)
    assert labels[0] == labels[1] != labels[2]
    assert reviewed == [(0, 2)] and apart == 0


def test_a_patient_whose_records_disagree_on_the_birth_date_gives_no_consensus_and_is_reviewed() -> None:
    """The second man's two records hold two dates (one of them a slip of the day): no date of his to weigh as
    several witnesses, so the pair is reviewed."""
    slipped = {**SECOND, "birth_date": "1974-09-18"}
    records = _records(("F0", FIRST), ("F1", FIRST), ("S0", SECOND), ("S1", slipped))
    frame, _, _ = _all_pairs(records)
    labels = np.array([0, 0, 2, 2], dtype=np.int64)
    assert consensus_birth_dates(frame, labels, np.array([0, 2])).index.tolist() == [0]
    assert not two_people(_model(), frame, labels, np.array([0]), np.array([2]))[0]


def test_a_date_level_that_weighs_for_one_person_adds_nothing() -> None:
    """Day and month transposed on every record of one side is a slip the model weighs for one person: several
    records making it is no further evidence against (the patients' weight is the pair's)."""
    transposed = {**FIRST, "birth_date": "1991-02-04"}
    records = _records(("F0", FIRST), ("F1", FIRST), ("S0", transposed), ("S1", transposed))
    frame, _, _ = _all_pairs(records)
    model = _model()
    labels = np.array([0, 0, 2, 2], dtype=np.int64)
    pair = score_frames(model, frame.take(np.array([0])), frame.take(np.array([2])), resolve_ambiguity=False)
    assert pair.field_weights[0, model.index_of("birth_date")] > 0
    assert patients_weight(model, frame, labels, np.array([0]), np.array([2]))[0] == pytest.approx(pair.weight[0])


def test_the_patients_weight_counts_one_error_per_witness_of_the_smaller_side() -> None:
    """weight = the pair's weight with each side's consensus date + (k - 1) x the date's weight, k = the fewer dated
    records of the two patients; a record without a birth date is no witness, and the item's own record may be it
    (its pair is read with its patient's date)."""
    undated = {**SECOND, "birth_date": None}
    records = _records(("F0", FIRST), ("F1", FIRST), ("F2", FIRST), ("S0", undated), ("S1", SECOND), ("S2", SECOND))
    frame, _, _ = _all_pairs(records)
    model = _model()
    labels = np.array([0, 0, 0, 3, 3, 3], dtype=np.int64)
    dated = score_frames(model, frame.take(np.array([0])), frame.take(np.array([4])), resolve_ambiguity=False)
    birth = dated.field_weights[0, model.index_of("birth_date")]
    assert birth < 0
    weight = patients_weight(model, frame, labels, np.array([0]), np.array([3]))[0]
    assert weight == pytest.approx(dated.weight[0] + birth, rel=1e-6), "k = 2: the second side's two dated records"
    threshold = model.possible_threshold
    assert two_people(model, frame, labels, np.array([0]), np.array([3]))[0] == (
        weight < math.log2(threshold / (1 - threshold))
    )


def test_a_relink_opens_no_review_item_for_two_namesakes_and_keeps_them_apart(session: Session) -> None:
    from mpi_factories import TRUST_A, TRUST_B, demographics

    from mpi.batch import bulk_load, relink, save_model
    from mpi.tables import ReviewItem, SourceRecord

    def person(namespace: str, local_id: str, fields: dict[str, str | None]) -> Demographics:
        return demographics(
            namespace, local_id, **{**fields, "birth_date": date.fromisoformat(str(fields["birth_date"]))}
        )

    bulk_load(
        session,
        [
            person(TRUST_A, "F0", FIRST),
            person(TRUST_B, "F1", FIRST),
            person(TRUST_A, "S0", SECOND),
            person(TRUST_B, "S1", SECOND),
        ],
    )
    save_model(session, _model(), records=4)
    session.commit()
    result = relink(session, train=False)
    session.commit()
    patients = dict(session.execute(select(SourceRecord.local_id, SourceRecord.regional_patient_id)).all())
    assert patients["F0"] == patients["F1"] != patients["S0"] == patients["S1"]
    assert result.review_items == 0
    assert session.scalars(select(ReviewItem).where(ReviewItem.status == "open")).all() == []


def test_a_patient_whose_records_hold_two_given_names_witnesses_nothing_and_is_reviewed() -> None:
    """A sister's record whose birth date was copied from her sister's (Aria A Dorsey keyed with Ariana's date)
    sits in Ariana's patient; its pair with Aria's own patient is one person. Ariana's patient, holding two given
    names, may hold a relative's record: its dates witness nothing of Aria, and the item is reviewed (pseudopeople
    seed 5 hid two such items before this was read)."""
    sister = {
        **NAMESAKE,
        "given": "Ariana A",
        "family": "Dorsey",
        "sex": "female",
        "birth_date": "1996-04-29",
        "postcode": "GU1 4AB",
        "address": "12 Mill Lane",
    }
    copied = {**sister, "given": "Aria A"}
    aria = {**copied, "birth_date": "2019-08-28", "postcode": "TN2 5QR", "address": "4 Pembury Road"}
    records = _records(("R0", sister), ("R1", sister), ("C0", copied), ("A0", aria), ("A1", aria))
    frame, _, _ = _all_pairs(records)
    labels = np.array([0, 0, 0, 3, 3], dtype=np.int64)
    assert consensus_birth_dates(frame, labels, np.array([0, 3])).index.tolist() == [3]
    assert not two_people(_model(), frame, labels, np.array([2]), np.array([3]))[0]
    one_name = np.array([0, 0, 2, 3, 3], dtype=np.int64)  # without the copy, Ariana's patient is one name again
    assert consensus_birth_dates(frame, one_name, np.array([0, 3])).index.tolist() == [0, 3]


#: Twin sisters of one family name, middle initial and birth date, no NHS number or phone, living apart: only their
#: given names tell them apart, as pseudopeople's Charlotte Z and Leia Z Rivera.
TWIN = {
    "nhs_number": None,
    "nhs_verification": None,
    "phone": None,
    "family": "Rivera",
    "sex": "female",
    "birth_date": "2009-06-14",
}
CHARLOTTE = {**TWIN, "given": "Charlotte Z", "postcode": "GU1 4AB", "address": "12 Mill Lane"}
LEIA = {**TWIN, "given": "Leia Z", "postcode": "TN2 5QR", "address": "4 Pembury Road"}


def _twins_model() -> Model:
    """The shipped model with a prior that puts the twins' pair in review (posterior ~0.8) and each sister's own
    records far above the match threshold."""
    return Model.default().evolve(prior=1 / (1 + 2**18), match_threshold=0.98)


@pytest.mark.parametrize(
    "first, second",
    [
        (2, 2),  # each sister twice: one person needs two independent errors of the given name
        (3, 2),  # the fewer records holding the name count
    ],
)
def test_two_patients_each_holding_another_given_name_are_not_put_to_review(first: int, second: int) -> None:
    records = [match_record(i + 1, local_id=f"C{i}", **CHARLOTTE) for i in range(first)] + [
        match_record(first + i + 1, local_id=f"L{i}", **LEIA) for i in range(second)
    ]
    labels, reviewed, apart = _reviewed(records, _twins_model())
    assert len(set(labels[:first].tolist())) == 1 and len(set(labels[first:].tolist())) == 1
    assert labels[0] != labels[first], "two people, never linked"
    assert reviewed == [] and apart == 1, "their one review item is not opened"


def test_one_record_with_another_given_name_is_still_reviewed_against_a_patient_holding_one() -> None:
    """A record on its own is one witness: its odd given name is one error, what the pair already says."""
    labels, reviewed, apart = _reviewed(_records(("C0", CHARLOTTE), ("C1", CHARLOTTE), ("L0", LEIA)), _twins_model())
    assert labels[0] == labels[1] != labels[2]
    assert reviewed == [(0, 2)] and apart == 0


def test_the_patients_weight_counts_one_error_per_holder_of_the_given_name_on_the_smaller_side() -> None:
    """weight = the pair's weight + (k - 1) x the given name's weight, k = the fewer records holding a given name
    on the two sides; a record without a given name is no witness."""
    unnamed = {**LEIA, "given": None}
    records = _records(
        ("C0", CHARLOTTE), ("C1", CHARLOTTE), ("C2", CHARLOTTE), ("L0", unnamed), ("L1", LEIA), ("L2", LEIA)
    )
    frame, _, _ = _all_pairs(records)
    model = _twins_model()
    labels = np.array([0, 0, 0, 3, 3, 3], dtype=np.int64)
    pair = score_frames(model, frame.take(np.array([0])), frame.take(np.array([4])), resolve_ambiguity=False)
    given = pair.field_weights[0, model.index_of("given")]
    assert given < 0
    weight = patients_weight(model, frame, labels, np.array([0]), np.array([4]))[0]
    assert weight == pytest.approx(pair.weight[0] + given, rel=1e-6), "k = 2: the second side's two named records"
    assert consensus_given_names(frame, labels, np.array([0, 3]))["witnesses"].tolist() == [3, 2]


@pytest.mark.parametrize(
    "other_given, reason",
    [
        ("Lottie Z", "a nickname of Charlotte: a level the model weighs for one person adds nothing"),
        ("Charlotte Z", "one given name on both sides: nothing more than the pair"),
    ],
)
def test_a_given_name_that_does_not_weigh_against_says_nothing_more(other_given: str, reason: str) -> None:
    other = {**LEIA, "given": other_given}
    records = _records(("C0", CHARLOTTE), ("C1", CHARLOTTE), ("L0", other), ("L1", other))
    frame, _, _ = _all_pairs(records)
    labels = np.array([0, 0, 2, 2], dtype=np.int64)
    assert np.isnan(patients_weight(_twins_model(), frame, labels, np.array([0]), np.array([2]))[0]), reason


def test_a_patient_whose_records_hold_two_given_names_gives_no_name_to_weigh() -> None:
    """Leia's patient holding a record of another given name (a relative's, or one mistyped) has no consensus name:
    the item is reviewed."""
    mia = {**LEIA, "given": "Mia Z"}
    records = _records(("C0", CHARLOTTE), ("C1", CHARLOTTE), ("L0", LEIA), ("L1", LEIA), ("M0", mia))
    frame, _, _ = _all_pairs(records)
    labels = np.array([0, 0, 2, 2, 2], dtype=np.int64)
    assert consensus_given_names(frame, labels, np.array([0, 2])).index.tolist() == [0]
    assert not two_people(_twins_model(), frame, labels, np.array([0]), np.array([2]))[0]
