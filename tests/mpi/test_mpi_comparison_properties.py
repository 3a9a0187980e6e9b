"""Properties of the comparison levels added for generality (issue 17): a crossed family name, the middle name, and
a residence whose postcode and address both nearly agree; and stored models realigned when a comparison gains a level.

Records are drawn from small vocabularies so that equal, crossed, initial and nearly-equal values happen often.
Every property is checked on both paths the scorer has: the real-time frame of a few records (values) and the
batch relink's coded frame (similarities once per distinct pair of codes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpi import comparisons
from mpi.comparisons import (
    AddressComparison,
    FamilyNameComparison,
    MiddleNameComparison,
    PostcodeComparison,
    ResidenceComparison,
    default_comparisons,
)
from mpi.frames import frame_from_records, frame_of_few
from mpi.model import PRIOR_KNOWLEDGE, Model, realign
from mpi.normalise import MatchRecord, to_match_record

NAMES = ["Whitfield", "Whitfeild", "Eleanor", "Margaret", "Van Wijk", "Van", "James", "Okonkwo", "Smith Jones",
         "Jones", "Grace", "G", "Rose", "R", None]
POSTCODES = ["GU1 4AB", "GU1 4AD", "GU2 7XH", "2615", "2614", None]
ADDRESSES = ["12 Mill Lane, Guildford", "12 Mill Lane, Guildfrd, Surrey", "14 Mill Lane, Guildford",
             "3 Oak Road", "Flat 1, 12 Mill Lane, Guildford", "12 Milllane, Guil dford", "14 Mill Lane, Guidlford",
             "Flat 2, 12 Mill Lane, Guildford", "12 Mill Road, Guildford", None]


@st.composite
def records(draw: Any) -> MatchRecord:
    first = draw(st.sampled_from(NAMES))
    middle = draw(st.sampled_from(NAMES))
    given = " ".join(part for part in (first, middle if first else None) if part) or None
    return to_match_record(draw(st.integers(1, 10_000)), {
        "family": draw(st.sampled_from(NAMES)), "given": given, "postcode": draw(st.sampled_from(POSTCODES)),
        "address": draw(st.sampled_from(ADDRESSES))})


def both_paths(comparison: comparisons.Comparison, rows: list[MatchRecord],
               monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    """The levels of every ordered pair of ``rows`` on the real-time and on the batch (coded) path."""
    n = len(rows)
    left, right = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    few = frame_of_few(rows)
    small = comparison.levels(few.take(left), few.take(right))
    coded = frame_from_records(rows)
    with monkeypatch.context() as patch:
        patch.setattr(comparisons, "DISTINCT_FROM", 0)  # similarities once per distinct pair, as in a chunk
        batch = comparison.levels(coded.take(left), coded.take(right))
    return small, batch


def symmetric(levels: np.ndarray, n: int) -> bool:
    square = levels.reshape(n, n)
    return bool((square == square.T).all())


@settings(max_examples=60, deadline=None)
@given(st.lists(records(), min_size=2, max_size=12))
def test_family_name_crossed_is_one_path_symmetric_and_means_a_crossed_name(rows: list[MatchRecord]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        small, batch = both_paths(FamilyNameComparison(), rows, patch)
    np.testing.assert_array_equal(small, batch)
    assert symmetric(small, len(rows))
    crossed = FamilyNameComparison.labels.index("crossed")
    for k in np.flatnonzero(small == crossed):
        a, b = rows[k // len(rows)], rows[k % len(rows)]
        assert a.family != b.family
        pairs = [(a.given, b.family), (b.given, a.family)]
        assert any(g and f and comparisons._crossed(g, f, 0.92) for g, f in pairs)


@settings(max_examples=60, deadline=None)
@given(st.lists(records(), min_size=2, max_size=12))
def test_middle_name_is_one_path_symmetric_and_only_differing_counts_where_first_names_agree(
        rows: list[MatchRecord]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        small, batch = both_paths(MiddleNameComparison(), rows, patch)
    np.testing.assert_array_equal(small, batch)
    assert symmetric(small, len(rows))
    exact, differ = MiddleNameComparison.labels.index("exact"), MiddleNameComparison.labels.index("else")
    for k, level in enumerate(small):
        a, b = rows[k // len(rows)], rows[k % len(rows)]
        if not a.middle or not b.middle:
            assert level == comparisons.NULL
        if a.middle and b.middle and a.given == b.given:  # under one first name only a difference is evidence
            assert level in (comparisons.NULL, differ)
            assert (level == differ) == (a.middle.split()[0][:1] != b.middle.split()[0][:1]
                                         or (len(a.middle.split()[0]) > 1 and len(b.middle.split()[0]) > 1
                                             and a.middle.split()[0] != b.middle.split()[0]))
        if level == exact:
            assert a.middle == b.middle and len(a.middle.split()[0]) > 1


@settings(max_examples=60, deadline=None)
@given(st.lists(records(), min_size=2, max_size=12))
def test_residence_both_nearly_is_a_near_postcode_and_a_partial_address(rows: list[MatchRecord]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        small, batch = both_paths(ResidenceComparison(), rows, patch)
        postcode, _ = both_paths(PostcodeComparison(), rows, patch)
        address, _ = both_paths(AddressComparison(), rows, patch)
    np.testing.assert_array_equal(small, batch)
    assert symmetric(small, len(rows))
    nearly = small == ResidenceComparison.labels.index("both-nearly")
    expected = (postcode == PostcodeComparison.labels.index("sector-or-one-edit")) & (
        address == AddressComparison.labels.index("partial"))
    np.testing.assert_array_equal(nearly, expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(records(), min_size=2, max_size=12))
def test_address_alike_only_with_house_numbers_agreeing(rows: list[MatchRecord]) -> None:
    """Addresses with slips in their words (letter pairs alike) are similar or partly alike on both paths, never
    when their house or flat numbers disagree (a neighbour, another flat)."""
    with pytest.MonkeyPatch.context() as patch:
        small, batch = both_paths(AddressComparison(), rows, patch)
    np.testing.assert_array_equal(small, batch)
    assert symmetric(small, len(rows))
    alike = (small == AddressComparison.labels.index("similar")) | (small == AddressComparison.labels.index("partial"))
    for k in np.flatnonzero(alike):
        a, b = rows[k // len(rows)], rows[k % len(rows)]
        assert comparisons._same_numbers(a.address, b.address)
        assert a.address != b.address


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_stored_model_lacking_a_level_is_realigned_by_label(data: Any) -> None:
    model = Model.default()
    stored = model.to_dict()
    index = data.draw(st.integers(0, len(stored["comparisons"]) - 1))
    entry = stored["comparisons"][index]
    drop = data.draw(st.integers(0, len(entry["labels"]) - 1))
    name = entry["name"]
    for key in ("labels", "m", "u"):
        entry[key] = [v for i, v in enumerate(entry[key]) if i != drop]
    if name in stored.get("u_household", {}):
        stored["u_household"][name] = [v for i, v in enumerate(stored["u_household"][name]) if i != drop]
    again = Model.from_dict(stored)
    comparison = again.comparisons[index]
    assert len(again.m[index]) == len(again.u[index]) == comparison.levels_count
    kept = [i for i in range(comparison.levels_count) if i != drop]
    # the levels it knew keep their proportions; the new one takes prior knowledge, as far as the sum allows
    ratios = np.asarray(again.m[index])[kept] / np.asarray(entry["m"])
    np.testing.assert_allclose(ratios, ratios[0])
    assert again.m[index][drop] > 0 and sum(again.m[index]) == pytest.approx(sum(entry["m"]))
    assert again.version != model.version and "realigned" in again.training
    if name in again.u_household:
        assert len(again.u_household[name]) == comparison.levels_count


def test_realign_keeps_values_already_in_order() -> None:
    labels = FamilyNameComparison.labels
    values = list(PRIOR_KNOWLEDGE["family"][0])
    assert realign(values, labels, labels, values) == values
    assert realign(values, [], labels, values) == values  # labels unknown: as they are
    assert Model.from_dict(Model.default().to_dict()).version == Model.default().version


def test_every_default_comparison_has_prior_knowledge_for_each_level() -> None:
    for comparison in default_comparisons():
        m, u = PRIOR_KNOWLEDGE[comparison.name]
        assert len(m) == len(u) == comparison.levels_count, comparison.name
        assert sum(m) == pytest.approx(1.0) and sum(u) == pytest.approx(1.0, abs=1e-4), comparison.name


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([n.upper() for n in NAMES if n] + ["SMITH\tJONES", "JONES\u3000SMITH",
                                                                               "JAMES VAN", "WHITFIEL"]),
                          st.sampled_from([n.upper() for n in NAMES if n] + ["VAN  WIJK", "SMITH\tJONES",
                                                                               "EL EANOR"])),
                min_size=1, max_size=40))
def test_crossed_names_of_many_pairs_at_once_are_the_crossed_names_pair_by_pair(pairs: list[tuple[str, str]]) -> None:
    """The batch's crossed-name test over many pairs at once (Jaro–Winkler in C, the word test only for family
    names of several words) decides every pair as the test of one pair does: a given name equal to the family
    name, one of its words (whatever space splits them) or within a slip of it."""
    given_names = np.asarray([g for g, _ in pairs], dtype=object)
    family_names = np.asarray([f for _, f in pairs], dtype=object)
    expected = [comparisons._crossed(g, f, 0.92) for g, f in pairs]
    assert comparisons._crossed_each(given_names, family_names, 0.92).tolist() == expected
