"""A phone number or a home that many records share is not one household's (hazard H-ID-33).

A PAS that keys ``01483 000000`` when it has no number, a switchboard or a surgery's number on every record, a care
home with a hundred residents: read as "one home", every pair holding them took the household prior (most pairs at
one home are one person), and strangers of one family name were merged. Found on a trust's HL7 extract in which
every PID-13 carried the same number: 370 of 20 000 people merged with another.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bench.mpi_population import make_population
from mpi.blocking import key_table, pairs_from_keys
from mpi.frames import frame_from_table, table_from_stored
from mpi.linkage import link_frame
from mpi.model import Model, home_key
from mpi.normalise import normalise_address, normalise_phone, to_match_record
from mpi.scoring import comparison_levels
from mpi.training import HOME_CAP, shared_homes, train

SWITCHBOARD = "01483 571122"  # a real-looking number: only how many records hold it tells it from a home's


@pytest.mark.parametrize("keyed", ["01483 000000", "01483000000", "07999 999999", "00000 000000", "01234 567890",
                                   "0123456789", "1111122222"])
def test_a_number_keyed_to_fill_the_field_is_no_number(keyed: str) -> None:
    assert normalise_phone(keyed) is None


@pytest.mark.parametrize(("real", "digits"), [("01483 571122", "01483571122"), ("+44 7700 900123", "07700900123"),
                                              ("020 7946 0000", "02079460000")])
def test_a_real_number_is_kept(real: str, digits: str) -> None:
    assert normalise_phone(real) == digits


@pytest.mark.parametrize("none", ["No fixed abode", "NFA", "Address not known", "UNKNOWN", "n/a"])
def test_an_address_saying_there_is_none_is_no_address(none: str) -> None:
    assert normalise_address(none) is None


def test_a_pseudo_postcode_names_no_home() -> None:
    """The NHS's ZZ99 pseudo-postcodes (no fixed abode, not known, abroad) are shared by everyone they describe."""
    for pseudo in ("ZZ99 3VZ", "zz993wz", "ZZ99 3CZ"):
        assert to_match_record(None, {"postcode": pseudo}).postcode is None
    assert to_match_record(None, {"postcode": "GU2 7XX"}).postcode == "GU2 7XX"


def _extract(people: int, phone: str | None) -> tuple[list[dict], list[int]]:
    """A trust extract as the bench's HL7 extract carries it (one record per person per trust, NHS numbers
    verified), every record with ``phone``; and the person of each record."""
    from bench.bench_feeds import make_population

    population = make_population(people, 7)
    records, truth = [], []
    for person in range(people):
        values = population.fields(person)
        nhs = population.nhs(person)
        for _trust in population.trusts[person]:
            records.append({**values, "phone": phone, "nhs_number": nhs, "nhs_verification": "01" if nhs else None})
            truth.append(person)
    return records, truth


def _linked(records: list[dict], truth: list[int], **shared: list[str]) -> tuple[Model, int, int]:
    """Train on and link ``records`` (with ``shared`` values forced when given); the model, the people merged
    with another, and the records in review."""
    match = [to_match_record(i, r) for i, r in enumerate(records)]
    table = table_from_stored(list(range(len(match))), [m.as_stored() for m in match])
    frame = frame_from_table(table)
    left, right = pairs_from_keys(key_table(table))
    model = train(frame, (left, right))
    if shared:
        model = model.evolve(**shared)
    linkage = link_frame(frame, model, left, right)
    people = np.asarray(truth)
    merged = sum(len(set(people[linkage.labels == label])) - 1 for label in np.unique(linkage.labels))
    return model, merged, len(set(linkage.review_left) | set(linkage.review_right))


def test_a_number_every_record_carries_sends_no_one_to_review_and_merges_no_one() -> None:
    """Every record of a 5 000-person extract given one switchboard number: the model learns it is shared (held by
    far more records than a household) and compares it as none, so the links are those of the extract without a
    number: no one merged, no one in review. Scored as one home (the number not learnt shared), 133 records went
    to review here, and at 20 000 people 370 people were merged with another (BENCHMARKS.md)."""
    records, truth = _extract(5000, SWITCHBOARD)
    model, merged, review = _linked(records, truth)
    assert model.shared_phone == ["01483571122"], model.training.get("shared_homes")
    assert (merged, review) == (0, 0)
    _, _, review_naive = _linked(records, truth, shared_phone=[])
    assert review_naive > 50, "the control is what keeps them out of review"
    placeholder, truth = _extract(5000, "01483 000000")
    assert _linked(placeholder, truth)[1:] == (0, 0), "a number keyed to fill the field is no number at all"


@pytest.fixture(scope="module")
def population():  # type: ignore[no-untyped-def]
    return make_population(1500, seed=21)


def test_without_learning_the_shared_number_strangers_sharing_it_are_one_home(population) -> None:  # type: ignore[no-untyped-def]
    """What the control prevents: scored as before (the shared number not learnt), pairs of different people who
    share only the switchboard number and a family name read as one home and take the household prior."""
    records = [replace(r, phone=SWITCHBOARD) for r in population.records]
    match = [to_match_record(i, r.__dict__) for i, r in enumerate(records)]
    table = table_from_stored(list(range(len(match))), [m.as_stored() for m in match])
    frame = frame_from_table(table)
    left, right = pairs_from_keys(key_table(table))
    model = train(frame, (left, right))
    truth = np.asarray([t[0] for t in population.truth])
    apart = truth[left] != truth[right]
    phone = model.index_of("phone")
    assert phone is not None
    learnt = comparison_levels(model, frame.take(left[apart]), frame.take(right[apart]))
    assert (learnt[:, phone] == -1).all(), "the shared number is compared as none"
    naive = comparison_levels(model.evolve(shared_phone=[]), frame.take(left[apart]), frame.take(right[apart]))
    assert (naive[:, phone] == 0).all(), "without it, every pair of strangers agrees exactly on the number"


def test_a_care_home_is_read_by_its_postcode_alone(population) -> None:  # type: ignore[no-untyped-def]
    """Forty residents of one care home (one postcode, one address, different people): the home is learnt shared,
    and a pair of its residents agrees on the residence at the postcode level only (weighed by how many records
    hold the postcode), not as one home."""
    records = list(population.records[:400])
    home = {"postcode": "GU1 1AA", "address": "Sunnyside Care Home, 1 Mill Lane"}
    for k in range(HOME_CAP + 10):
        records[k * 9] = replace(records[k * 9], **home)
    match = [to_match_record(i, r.__dict__) for i, r in enumerate(records)]
    table = table_from_stored(list(range(len(match))), [m.as_stored() for m in match])
    frame = frame_from_table(table)
    phones, homes, run = shared_homes(frame, records=frame.size)
    key = home_key("GU1 1AA", normalise_address(home["address"], home["postcode"]))
    assert homes == [key], run
    model = Model.default().evolve(shared_home=homes, shared_phone=phones)
    residence = model.index_of("residence")
    assert residence is not None
    pair = (np.array([0]), np.array([9]))
    labels = model.comparisons[residence].labels
    assert comparison_levels(model, frame.take(pair[0]), frame.take(pair[1]))[0, residence] == labels.index(
        "postcode")
    naive = comparison_levels(Model.default(), frame.take(pair[0]), frame.take(pair[1]))
    assert naive[0, residence] == labels.index("postcode-and-address")


def test_a_sample_scales_the_cap() -> None:
    """Trained on a fifth of the store, a number held by 10 records of the sample is held by about 50 in the store:
    shared. At full size 10 records are a household's."""
    from mpi.frames import frame_from_records
    from tests.mpi.mpi_factories import match_record

    frame = frame_from_records([match_record(i, phone="01483 571122" if i < 10 else None) for i in range(40)])
    assert shared_homes(frame, records=200)[0] == ["01483571122"]
    assert shared_homes(frame, records=40)[0] == []


def test_the_shared_values_round_trip_and_change_the_version() -> None:
    model = Model.default()
    learnt = model.evolve(shared_phone=["01483571122"], shared_home=["GU1 1AA|1 HOME LANE"])
    again = Model.from_dict(learnt.to_dict())
    assert again.shared_phone == ["01483571122"] and again.shared_home == ["GU1 1AA|1 HOME LANE"]
    assert again.version == learnt.version != model.version


@pytest.mark.parametrize("digit", "0123456789")
def test_an_nhs_number_of_one_digit_ten_times_is_no_number(digit: str) -> None:
    """Every one of them passes Modulus 11; none is issued; systems key them for "not known"."""
    from mpi.nhs_number import check_digit, is_valid_nhs_number

    number = digit * 10
    assert check_digit(number[:9]) == int(digit), "it passes the check"
    assert not is_valid_nhs_number(number)
    assert is_valid_nhs_number("9434765919")


def test_strangers_keyed_with_a_placeholder_nhs_number_stay_apart(index) -> None:  # type: ignore[no-untyped-def]
    """Two people whose PAS keyed ``0000000000`` for a number not known: the number is no evidence, so each is a
    patient of their own and nothing goes to review (as a shared verified number, it linked them or sent them to
    review)."""
    from datetime import date

    from mpi_factories import TRUST_A, TRUST_B, demographics

    first = index.upsert(demographics(TRUST_A, "P1", nhs_number="0000000000", nhs_verification="01", given="Ada",
                                      family="Penrose", birth_date=date(1955, 2, 3), postcode="GU1 1AA",
                                      address="1 High St", phone=None), event="t", actor="feed")
    other = index.upsert(demographics(TRUST_B, "P2", nhs_number="0000000000", nhs_verification="01", given="Bert",
                                      family="Quist", birth_date=date(1987, 9, 10), sex="male", postcode="BN1 1AA",
                                      address="2 Sea Rd", phone=None), event="t", actor="feed")
    assert first.regional_id != other.regional_id
    assert other.review_item_id is None
    assert index.find_records("https://fhir.nhs.uk/Id/nhs-number", "0000000000") == []


class _Counted(str):
    """A string that counts how often it is compared for equality."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        _Counted.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_finding_shared_values_does_not_compare_every_value_with_every_shared_one() -> None:
    """A frame's vocabulary and the model's shared phones and homes both grow with the store: compared all with all
    (``np.isin`` on Python objects does), the relink of 2 M records spent most of its time finding them."""
    records = 2_000
    stored = [to_match_record(None, {"given": "Ada", "family": "Penrose", "postcode": "GU1 1AA",
                                     "address": f"{n} High Street", "phone": f"01483 {100000 + n}"}).as_stored()
              for n in range(records)]
    frame = frame_from_table(table_from_stored(list(range(1, records + 1)), stored))
    for column in ("phone", "address"):
        frame.vocab[column] = np.array([None if v is None else _Counted(v) for v in frame.vocab[column]],
                                       dtype=object)
    phones = [f"01483{100000 + n}" for n in range(0, records, 10)]
    homes = [home_key("GU1 1AA", normalise_address(f"{n} High Street")) for n in range(0, records, 10)]
    model = Model.default().evolve(shared_phone=phones, shared_home=homes)

    _Counted.comparisons = 0
    shared_phone, shared_home = model.shared(frame, "phone"), model.shared(frame, "home")

    assert np.flatnonzero(shared_phone).tolist() == list(range(0, records, 10))
    assert np.flatnonzero(shared_home).tolist() == list(range(0, records, 10))
    assert _Counted.comparisons <= 2 * records  # all with all: 2 x 2 000 x 200
