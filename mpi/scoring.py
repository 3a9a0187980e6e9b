"""The one scorer: comparison levels, weights, probabilities and guards for many pairs at once.

Real time scores one incoming record against its candidates as a frame of a few dozen pairs; batch scores millions
of blocked pairs in chunks. Both call :func:`score_frames`, so a pair gets the same score on either path.

Guards are the rules of :mod:`mpi.decisions` that the weights alone cannot express, computed here per pair:

- *hard conflict*: two different valid NHS numbers, both verified (status 01);
- *verified same*: the same valid NHS number, verified (status 01) on both records: one person, whatever the
  weights and the other guards (a person's decision alone can part them), unless the number is unsupported
  (below), when a person decides;
- *different NHS numbers*: two different valid numbers, not both verified;
- *NHS number unsupported*: the same valid NHS number but no agreement on family name, given name or birth date
  (a number keyed into the wrong patient's record);
- *sibling*, *names differ*, *birth date differs*: the shapes of twins (family names and birth date agreeing, given
  names not), of two people whose names both differ, of a parent and a child (full birth dates two parts apart).
  Kept as flags for callers; they no longer cap a decision (rules 4–6 of :mod:`mpi.decisions` are retired): at
  one home the person's own fields are weighed against the household (``u_household``, :mod:`mpi.model`);
- *personal evidence*: the sum of the weights of the person's own identifiers (NHS number, names, birth date,
  sex), leaving out what a household shares (residence, phone); at one home, the pair's weight itself;
- *undistinguished*: no given name (or only its initial) or no birth date to compare, and no NHS number agreeing.
  Without the given name, what is left (family name, birth date, sex, residence, phone) is exactly what a same-sex
  twin shares; without the birth date, what is left (names, sex, residence, phone) is what a father and a son of
  one name share: nothing in the pair tells the person from that relative;
- *ambiguous*: an undistinguished pair whose weak record (lacking the given name, all but its initial, or the
  birth date: :func:`weak_records`) is also probable (at least the possible threshold) with a record of someone
  else, whom the evidence keeps apart from this pair's other record (two twins, or a parent and a child of one
  name), and the pair is no match once the record is known to be at most one of them
  (:func:`exclusive_probability`): it could be either, so neither is automatic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mpi.blocking import pairs_within_runs
from mpi.comparisons import NULL, MiddleNameComparison, PostcodeComparison, equal
from mpi.frames import Frame, probe_pairs
from mpi.model import M_FLOOR, Model
from mpi.normalise import MatchRecord
from mpi.spare_core import in_two

#: Levels (by label) that count as agreement for the guards.
_AGREES = {
    "family": ("exact", "swapped", "words-shared", "jaro-winkler>=0.92", "phonetic"),
    "given": ("exact", "swapped", "nickname", "jaro-winkler>=0.92", "phonetic", "initial-or-middle"),
    "birth_date": ("exact", "day-month-transposed", "one-part-different", "partial-agrees"),
}


@dataclass(frozen=True)
class PairScore:
    """How alike two records are: the total match weight (log2 Bayes factor), its probability, and why."""

    weight: float
    probability: float
    field_weights: dict[str, float] = field(default_factory=dict)
    levels: dict[str, str] = field(default_factory=dict)
    hard_conflict: str | None = None  # "nhs-number": never link automatically
    personal_weight: float = 0.0  # the weights of the person's own identifiers (not residence or phone)
    guard: str | None = None  # sibling | different-nhs-numbers | nhs-number-unsupported | birth-date-differs ...
    nhs_verified_same: bool = False  # the same valid NHS number, verified on both: one person whatever the weights


@dataclass
class ScoredPairs:
    """Scores of many pairs, as arrays (row ``i`` is pair ``i``)."""

    levels: NDArray[np.int8]  # (pairs, comparisons), -1 where data is missing
    field_weights: NDArray[np.float32]  # (pairs, comparisons)
    weight: NDArray[np.float64]
    probability: NDArray[np.float64]
    hard_conflict: NDArray[np.bool_]
    nhs_exact: NDArray[np.bool_]
    nhs_different: NDArray[np.bool_]
    nhs_unsupported: NDArray[np.bool_]
    sibling: NDArray[np.bool_]
    birth_differs: NDArray[np.bool_]
    names_differ: NDArray[np.bool_]
    personal_weight: NDArray[np.float64]  # weights of the person's own identifiers (not residence or phone)
    # no given name to compare, no NHS number agreeing (none known: all False)
    undistinguished: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    # undistinguished, and probable with two people the evidence keeps apart (none known: all False)
    ambiguous: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    # the same valid NHS number, verified (01) on both records: one person whatever the weights (none known: False)
    nhs_verified_same: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        for name in ("undistinguished", "ambiguous", "nhs_verified_same"):
            if len(getattr(self, name)) != len(self.weight):
                setattr(self, name, np.zeros(len(self.weight), dtype=bool))

    def subset(self, keep: NDArray[np.bool_] | NDArray[np.int64]) -> ScoredPairs:
        """The pairs where ``keep`` holds, or at the positions ``keep`` lists (levels and field weights only if
        still held)."""
        def part(values: NDArray[Any]) -> NDArray[Any]:
            return values[keep] if len(values) == len(keep) else values

        return ScoredPairs(**{f.name: part(getattr(self, f.name)) for f in fields(self)})

    @staticmethod
    def concatenate(parts: Sequence[ScoredPairs]) -> ScoredPairs:
        """One set of pairs from several (levels and field weights kept only if every part holds them)."""
        def joined(name: str) -> NDArray[Any]:
            arrays = [getattr(p, name) for p in parts]
            if name in ("levels", "field_weights") and any(len(a) != len(p) for a, p in zip(arrays, parts,
                                                                                            strict=True)):
                return np.zeros((0, arrays[0].shape[1]), dtype=arrays[0].dtype)
            return np.concatenate(arrays)

        return ScoredPairs(**{f.name: joined(f.name) for f in fields(ScoredPairs)})

    def __len__(self) -> int:
        return len(self.weight)

    def guard_of(self, i: int) -> str | None:
        if self.nhs_different[i]:
            return "different-nhs-numbers"
        if self.nhs_unsupported[i]:
            return "nhs-number-unsupported"
        if self.ambiguous[i]:
            return "could-be-either"
        return None


def comparison_levels(model: Model, left: Frame, right: Frame) -> NDArray[np.int8]:
    """The level of every pair on every comparison, ``(pairs, comparisons)``.

    A given or family name the model learnt to be a stand-in (:attr:`mpi.model.Model.stand_in_given`: ``DAUGHTER``;
    :attr:`~mpi.model.Model.stand_in_family`: ``OCCUPANT``) is compared as none: it says nothing of who the person is.
    """
    if left.size == 0:
        return np.zeros((0, len(model.comparisons)), dtype=np.int8)

    def rows(start: int, stop: int) -> NDArray[np.int8]:
        if start == 0 and stop == left.size:
            return _comparison_levels(model, left, right)
        part = np.arange(start, stop, dtype=np.int64)
        return _comparison_levels(model, left.take(part), right.take(part))

    return in_two(rows, left.size)  # a batch relink's pairs split over its idle core (mpi.spare_core)


def _comparison_levels(model: Model, left: Frame, right: Frame) -> NDArray[np.int8]:
    levels = np.stack([c.levels(left, right) for c in model.comparisons], axis=1)
    for column, values in (("given", model.stand_in_given), ("family", model.stand_in_family)):
        index = model.index_of(column)
        if index is not None and values:
            levels[model.stand_in(left, column) | model.stand_in(right, column), index] = NULL
    for index, comparison in enumerate(model.comparisons):
        if comparison.name in ("phone", "residence"):
            levels[:, index] = shared_homes_as_none(model, comparison.name, levels[:, index], left, right)
    middle_away_from_home(model, levels, left, right)
    return levels


def middle_away_from_home(model: Model, levels: NDArray[np.int8], left: Frame, right: Frame) -> None:
    """Where the first given names agree, an agreeing middle name is evidence of one person *away from one home*.

    :class:`mpi.comparisons.MiddleNameComparison` gives no level to middle names that agree under one first name:
    relatives who share a first name (a son named after his father) share the middle one too. Those relatives live
    together; two records of one first name at two homes are one person who moved (or was keyed at another
    address) or two people of one name, and for those the middle names are the evidence the comparison reads
    everywhere else (m from one person's records, u from random pairs; a family name shared away from home weighs
    them against the mixture of relatives and strangers that :func:`_kin_evidence` learns). So where the records
    do not give one home (:func:`one_home`) and both carry a birth date, the agreement levels of the middle names
    alone (:meth:`~mpi.comparisons.MiddleNameComparison.levels_whatever_the_first_names`) are restored in place.
    At one home agreement stays no evidence, and so it does where either record lacks the birth date: the pair is
    then undistinguished (rule 8), and an agreeing middle name must not stand in for the date that tells a parent
    from a child of one name (on pseudopeople it linked two ``TIMOTHY J WILLIAMS`` and chained two girls of one
    name, born three years apart, through a record without a birth date). Pure and per pair: real time, the batch
    relink, training and the Spark relink read the same levels.
    """
    index, given = model.index_of("middle"), model.index_of("given")
    comparison = model.comparisons[index] if index is not None else None
    if given is None or comparison is None or not isinstance(comparison, MiddleNameComparison) or not len(levels):
        return
    # agreement was withheld only where both hold a middle name and the first given names are equal; a given name
    # compared as none (a stand-in, ``DAUGHTER``) is no first name to agree under
    rows = np.flatnonzero((levels[:, index] == NULL) & ~left["middle__missing"] & ~right["middle__missing"]
                          & (levels[:, given] != NULL) & (left["birth_year"] > 0) & (right["birth_year"] > 0)
                          & ~one_home(model, levels))
    if not len(rows):
        return
    a, b = left.take(rows), right.take(rows)
    rows = rows[equal(a, b, "given")]
    if len(rows):
        levels[rows, index] = comparison.levels_whatever_the_first_names(left.take(rows), right.take(rows))


def shared_homes_as_none(model: Model, name: str, levels: NDArray[np.int8], left: Frame, right: Frame
                         ) -> NDArray[np.int8]:
    """``levels`` of comparison ``name`` with a phone number or a home more records share than one household holds
    (:attr:`Model.shared_phone`, :attr:`Model.shared_home`: a switchboard, a care home, a hostel) read as saying
    nothing of one home (H-ID-33): the phone is compared as none, and the residence by its postcode alone (how many
    records hold the postcode still weighs it)."""
    if name == "phone" and model.shared_phone:
        return np.where(model.shared(left, "phone") | model.shared(right, "phone"), NULL, levels).astype(np.int8)
    if name != "residence" or not model.shared_home:
        return levels
    rows = np.flatnonzero(model.shared(left, "home") | model.shared(right, "home"))
    if not len(rows):
        return levels
    residence = model.comparisons[model.index_of("residence") or 0]
    labels = residence.labels
    postcode = PostcodeComparison().levels(left.take(rows), right.take(rows))
    by_postcode = np.array([labels.index("postcode"), labels.index("nearby"), labels.index("nearby"),
                            labels.index("else"), NULL], dtype=np.int8)  # exact, sector, district, else, none
    out = levels.copy()
    out[rows] = by_postcode[postcode]
    return out


def _level_in(model: Model, levels: NDArray[np.int8], index: int, wanted: Sequence[str]) -> NDArray[np.bool_]:
    """Whether each pair's level on comparison ``index`` is one of the labels ``wanted`` (False where missing)."""
    labels = model.comparisons[index].labels
    # one flag per level, and a last one (False) that the missing level -1 indexes
    flags = np.zeros(len(labels) + 1, dtype=bool)
    flags[[labels.index(label) for label in wanted if label in labels]] = True
    return flags[levels[:, index]]  # type: ignore[no-any-return]


def _agrees(model: Model, levels: NDArray[np.int8], name: str) -> NDArray[np.bool_]:
    index = model.index_of(name)
    if index is None:
        return np.zeros(len(levels), dtype=bool)
    return _level_in(model, levels, index, _AGREES[name])


def _level_is(model: Model, levels: NDArray[np.int8], name: str, label: str) -> NDArray[np.bool_]:
    index = model.index_of(name)
    if index is None:
        return np.zeros(len(levels), dtype=bool)
    return levels[:, index] == model.comparisons[index].labels.index(label)  # type: ignore[no-any-return]


#: A given name held by at least this many records of the store is a name in its own right, not a slip.
COMMON_NAME_COUNT = 5


def _distinct_common_names(model: Model, levels: NDArray[np.int8], left: Frame, right: Frame) -> NDArray[np.bool_]:
    """Given names of distant spelling but both common names in the store (``JOHN``/``JOSH``, ``MARIA``/``MARION``):
    two names, as twins are given, rather than one name keyed wrongly."""
    index = model.index_of("given")
    table = model.tf.get("given")
    out = np.zeros(len(levels), dtype=bool)
    if index is None or not table:
        return out
    # only names no closer than a distant spelling: a close one (Jon/John) is more often one name keyed wrongly
    alike = _level_in(model, levels, index, ("jaro-winkler>=0.80",))
    rows = np.flatnonzero(alike)
    if len(rows):
        def common(side: Frame) -> NDArray[np.bool_]:
            if "given" in side.vocab and "given__code" in side:
                key = ("common-given", model.version)
                flags = side.cache.get(key)
                if flags is None:
                    flags = side.cache[key] = np.fromiter(
                        (table.get(v, 0) >= COMMON_NAME_COUNT for v in side.vocab["given"]), dtype=bool)
                return flags[side["given__code"][rows]]  # type: ignore[no-any-return]
            return np.fromiter((table.get(v, 0) >= COMMON_NAME_COUNT for v in side["given"][rows]), dtype=bool,
                               count=len(rows))

        out[rows] = common(left) & common(right)
    return out


def _one_swap(model: Model, levels: NDArray[np.int8], field_weights: NDArray[np.float32]) -> None:
    """Names written the other way round are one event, seen by both name comparisons: it weighs once (the family
    name's ``swapped`` level), not twice."""
    family, given = model.index_of("family"), model.index_of("given")
    if family is None or given is None:
        return
    both = ((levels[:, family] == model.comparisons[family].labels.index("swapped"))
            & (levels[:, given] == model.comparisons[given].labels.index("swapped")))
    field_weights[both, given] = 0.0


def _kin_evidence(model: Model, levels: NDArray[np.int8], field_weights: NDArray[np.float32], left: Frame,
                  same_family: NDArray[np.bool_]) -> None:
    """Records of one family name but not of one home: the people they could be are the name's other holders,
    and for a rare name those are mostly one family.

    Of ``c`` records holding a family name, a record has about ``kin_per_record`` relatives among the other
    ``c - 1`` (learnt from the households, :func:`mpi.training.estimate_u_household`), so a pair of different people
    sharing the name is relatives with chance ``k = min(1, kin_per_record / (c - 1))``, strangers otherwise. The
    person's own fields (given name, birth date, sex) are then weighed against that mixture, ``k · u_household +
    (1 - k) · u``: two holders of a rare name born on one day may be twins living apart; two John Smiths born on
    one day are not thereby related.
    """
    family = model.index_of("family")
    if family is None:
        return
    exact = same_family & (levels[:, family] == model.comparisons[family].tf_level)
    rows = np.flatnonzero(exact)
    if not len(rows):
        return
    holders = np.maximum(_term_frequency(model, "family", left, rows) * model.tf_total, 2.0)
    kin = np.minimum(1.0, model.kin_per_record / (holders - 1.0))
    for index in model.household_tables():
        comparison = model.comparisons[index]
        if comparison.name == "family":
            continue
        column = levels[rows, index]
        present = column != NULL
        if not present.any():
            continue
        at, level = rows[present], column[present].astype(np.int64)
        u = np.asarray(model.u[index])[level]
        if comparison.tf_column and comparison.tf_column in model.tf:
            tf_rows = level == comparison.tf_level
            if tf_rows.any():
                u = u.copy()
                u[tf_rows] = _term_frequency(model, comparison.tf_column, left, at[tf_rows])
        u_household = np.asarray(model.u_household[comparison.name])[level]
        mixed = kin[present] * u_household + (1.0 - kin[present]) * u
        m = np.maximum(np.asarray(model.m[index])[level], M_FLOOR)
        field_weights[at, index] = np.log2(m / np.maximum(mixed, 1e-12))


def _household_evidence(model: Model, levels: NDArray[np.int8], field_weights: NDArray[np.float32],
                        household: NDArray[np.bool_]) -> None:
    """For pairs whose records give one home, what the home says: the model's household prior.

    Among pairs of records at one home the model has learnt the share that are one person
    (:attr:`Model.household_prior`); the home is what puts a pair among them, so with the prior it weighs exactly
    that share's log-odds. The other comparisons a household shares (a phone) add nothing more: relatives share
    them too, and the household prior counts them already. The person's own comparisons (family and given names,
    birth date, sex) then weigh against the other people of a home (``u_household``), not against strangers.
    """
    rows = np.flatnonzero(household)
    pending = np.ones(len(rows), dtype=bool)  # rows whose home is not yet weighed
    for index, comparison in enumerate(model.comparisons):
        if not comparison.shared_by_household:
            continue
        field_weights[rows, index] = 0.0
        if comparison.home_levels:  # the first comparison saying "one home" carries the household prior
            here = pending & _level_in(model, levels[rows], index, comparison.home_levels)
            field_weights[rows[here], index] = model.household_weight - model.prior_weight
            pending &= ~here


def one_home(model: Model, levels: NDArray[np.int8]) -> NDArray[np.bool_]:
    """Pairs whose records give one home (a comparison shared by a household at one of its ``home_levels``)."""
    out = np.zeros(len(levels), dtype=bool)
    for index, comparison in enumerate(model.comparisons):
        if comparison.home_levels:
            out |= _level_in(model, levels, index, comparison.home_levels)
    return out


def _term_frequency(model: Model, column: str, side: Frame, rows: NDArray[np.int64]) -> NDArray[np.float64]:
    if column in side.vocab and f"{column}__code" in side:
        return model.term_frequency_of_codes(column, side.origin, side[f"{column}__code"][rows])
    return model.term_frequency(column, side[column][rows])


def evidence_against(model: Model, scored: ScoredPairs) -> NDArray[np.bool_]:
    """Pairs whose evidence is *against* one person: different valid NHS numbers, or weights (all, or the person's
    own) adding up against a match. Unlike a posterior that is merely low (too little evidence for), no third
    record can outweigh it (:func:`mpi.clustering.cluster`)."""
    against = (scored.hard_conflict | scored.nhs_different
               | (scored.weight - model.prior_weight < 0) | (scored.personal_weight < 0))
    return against & ~(scored.nhs_verified_same & ~scored.nhs_unsupported)  # type: ignore[no-any-return]


def evidence_apart(model: Model, scored: ScoredPairs) -> NDArray[np.bool_]:
    """Pairs the evidence says are different people, so they may not share a patient without a person's decision:
    evidence against (:func:`evidence_against`), or a posterior below the possible threshold (the model puts them
    more likely two people than one: a chain of links through other records must not join them, as it joined a
    father and a son of one name through a record without a birth date)."""
    low = (scored.probability < model.possible_threshold) & ~(scored.nhs_verified_same & ~scored.nhs_unsupported)
    return evidence_against(model, scored) | low  # type: ignore[no-any-return]


#: Weak records with more probable partners than this are not checked further (a placeholder).
AMBIGUITY_PARTNERS = 30


def weak_records(side: Frame, model: Model | None = None) -> NDArray[np.bool_]:
    """Rows of ``side`` lacking what tells a person from a close relative: the given name, or all but its initial
    (a twin), or the birth date (a parent or a child of one name). With ``model``, a given name it learnt to be a
    stand-in (:attr:`mpi.model.Model.stand_in_given`) is no given name."""
    weak = side["given__missing"] | (side["given_len"] == 1) | (side["birth_year"] == 0)
    if model is not None and model.stand_in_given:
        weak = weak | model.stand_in(side)
    return weak  # type: ignore[no-any-return]


def exclusive_probability(weak: NDArray[np.int64], partner: NDArray[np.int64], probability: NDArray[np.float64],
                          owner: NDArray[np.int64], first: NDArray[np.int64], second: NDArray[np.int64]
                          ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The probability that the weak record ``weak[i]`` is the person of ``partner[i]``, knowing that it is at most one
    of two partners the evidence keeps apart.

    ``probability[i]`` is the pair's posterior on its own (odds ``o = p / (1 - p)`` against "neither"). The pairs
    ``(owner[j], first[j], second[j])`` name two partners of one weak record that are two people
    (:func:`evidence_apart`): the record is one of them, the other or neither, never both. With the odds of each
    against "neither" from its own comparison, the probability of ``partner[i]`` among those exclusive answers is
    ``o / (1 + o + Σ o_alt)``, the sum over every partner kept apart from ``partner[i]``. A record equally like two
    twins comes out below one half; one that is a near-certain match with one person and a bare possible with
    another stays a match. Where no partner is kept apart, the pair's own probability. Pure, order-independent:
    the batch relink, link-on-write and the Spark relink compute it alike.

    Returns the probabilities and which pairs have a rival (a partner kept apart from theirs).
    """
    out = probability.astype(np.float64, copy=True)
    if len(owner) == 0 or len(weak) == 0:
        return out, np.zeros(len(weak), dtype=bool)
    width = int(max(weak.max(), partner.max(), owner.max(), first.max(), second.max())) + 1
    code = weak.astype(np.int64) * width + partner
    order = np.argsort(code, kind="stable")
    odds = probability / np.maximum(1.0 - probability, 1e-300)

    def at(o: NDArray[np.int64], x: NDArray[np.int64]) -> NDArray[np.int64]:
        found = order[np.clip(np.searchsorted(code[order], o * width + x), 0, len(code) - 1)]
        if not np.array_equal(code[found], o * width + x):
            raise ValueError("every partner kept apart must be a partner of its weak record")
        return found  # type: ignore[no-any-return]

    # the alternatives summed in one order (by weak record, then partner), whoever supplies them
    alt_for = np.concatenate([at(owner, first), at(owner, second)])
    alt_from = np.concatenate([at(owner, second), at(owner, first)])
    ranked = np.lexsort((partner[alt_from], partner[alt_for], weak[alt_for]))
    alternatives = np.zeros(len(weak), dtype=np.float64)
    np.add.at(alternatives, alt_for[ranked], odds[alt_from[ranked]])
    rivalled = alternatives > 0
    out[rivalled] = odds[rivalled] / (1.0 + odds[rivalled] + alternatives[rivalled])
    return out, rivalled


def ambiguous_pairs(model: Model, left: Frame, right: Frame, candidate: NDArray[np.bool_],
                    probability: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Which ``candidate`` pairs (undistinguished and probable) are *ambiguous*: their weak record (without a given
    name or a birth date, :func:`weak_records`) has probable candidate pairs with two records that the evidence
    keeps apart (:func:`evidence_apart`), and the pair is not a match once the record is known to be at most one
    of them (:func:`exclusive_probability` below the match threshold).

    Pairs are grouped by the weak record (either side); within a group, every two partners are
    scored against each other. Needs both sides to be rows of one frame (real time: the probe against its
    candidates; batch: every probable pair at once). ``probability``: each pair's posterior.
    """
    out = np.zeros(len(candidate), dtype=bool)
    origin = left.origin
    if candidate.sum() < 2 or origin is not right.origin:
        return out
    pairs = np.flatnonzero(candidate)
    left_rows, right_rows = left.rows[pairs], right.rows[pairs]
    left_weak, right_weak = weak_records(left, model)[pairs], weak_records(right, model)[pairs]
    weak = np.concatenate([left_rows[left_weak], right_rows[right_weak]])
    partner = np.concatenate([right_rows[left_weak], left_rows[right_weak]])
    pair_p = np.concatenate([probability[pairs][left_weak], probability[pairs][right_weak]])
    order = np.lexsort((partner, weak))
    weak, partner, pair_p = weak[order], partner[order], pair_p[order]
    fresh = np.r_[True, (weak[1:] != weak[:-1]) | (partner[1:] != partner[:-1])]
    weak, partner, pair_p = weak[fresh], partner[fresh], pair_p[fresh]
    first: list[NDArray[np.int64]] = []
    second: list[NDArray[np.int64]] = []
    owner: list[NDArray[np.int64]] = []
    for a, b in pairs_within_runs(weak, AMBIGUITY_PARTNERS):
        first.append(partner[a])
        second.append(partner[b])
        owner.append(weak[a])
    if not first:
        return out
    pa, pb, whose = np.concatenate(first), np.concatenate(second), np.concatenate(owner)
    apart = evidence_apart(model, score_frames(model, origin.take(pa), origin.take(pb), resolve_ambiguity=False))
    if not apart.any():
        return out
    exclusive, rivalled = exclusive_probability(weak, partner, pair_p, whose[apart], pa[apart], pb[apart])
    torn = rivalled & (exclusive < model.match_threshold)
    torn_codes = weak[torn] * (origin.size + 1) + partner[torn]
    as_left = left_weak & np.isin(left_rows * (origin.size + 1) + right_rows, torn_codes)
    as_right = right_weak & np.isin(right_rows * (origin.size + 1) + left_rows, torn_codes)
    out[pairs] = as_left | as_right
    return out


def score_levels(model: Model, levels: NDArray[np.int8], left: Frame, right: Frame, *,
                 resolve_ambiguity: bool = True) -> ScoredPairs:
    """Weights, probabilities and guards of pairs whose levels are known.

    With ``resolve_ambiguity``, pairs of a record without a given name are checked against each other
    (:func:`ambiguous_pairs`); the batch relink checks them once over all its probable pairs instead.
    """
    family_tables = model.same_family_tables()
    household_tables = model.household_tables()
    family = _agrees(model, levels, "family")
    # names written the other way round agree for the guards, but two different people whose names are each
    # other's swapped hold two family names: they are not of one family, so what they share is weighed against
    # everyone (``u``), as :func:`mpi.training.estimate_u_same_family` never sees such pairs among its own
    same_family = family & ~_level_is(model, levels, "family", "swapped") if family_tables else None
    household = one_home(model, levels) if household_tables else None
    field_weights = np.empty(levels.shape, dtype=np.float32)
    for index, (comparison, table) in enumerate(zip(model.comparisons, model.weight_tables(), strict=True)):
        column = levels[:, index]
        # the missing level (-1) reads the table's last entry, then is set to no weight (one column at a time:
        # a batch chunk holds a million pairs)
        weights = table[column]
        if same_family is not None and index in family_tables:
            weights = np.where(same_family, family_tables[index][column], weights)
        if household is not None and index in household_tables:
            weights = np.where(household, household_tables[index][column], weights)
        field_weights[:, index] = np.where(column != NULL, weights, 0.0)
        if comparison.tf_column and model.tf_total and not (same_family is not None and index in family_tables):
            level = comparison.tf_level
            exact = column == level
            if household is not None and index in household_tables:
                exact &= ~household  # among relatives, how common a name is in the region says nothing
            exact = np.flatnonzero(exact)
            if len(exact):
                share = _term_frequency(model, comparison.tf_column, left, exact)
                m_exact = max(model.m[index][level], M_FLOOR)
                field_weights[exact, index] = np.log2(m_exact / share)
    _one_swap(model, levels, field_weights)
    if household is not None and model.kin_per_record > 0 and model.tf_total:
        _kin_evidence(model, levels, field_weights, left, family & ~household)
    if household is not None and household.any():
        _household_evidence(model, levels, field_weights, household)
    weight = model.prior_weight + field_weights.sum(axis=1, dtype=np.float64)
    personal = [i for i, c in enumerate(model.comparisons) if not c.shared_by_household]
    personal_weight = field_weights[:, personal].sum(axis=1, dtype=np.float64)
    if household is not None:
        # at one home the person's own fields are already weighed against the other people of the home, after
        # the household prior: what they say together is the pair's weight itself
        personal_weight = np.where(household, weight, personal_weight)
    probability = 1.0 / (1.0 + np.exp2(-np.clip(weight, -200, 200)))

    nhs_exact = _level_is(model, levels, "nhs_number", "exact")
    nhs_else = _level_is(model, levels, "nhs_number", "else")
    both_verified = left["nhs_verified"] & right["nhs_verified"]
    hard_conflict = nhs_else & both_verified
    given, birth = (_agrees(model, levels, name) for name in ("given", "birth_date"))
    # a given name entirely different, or none to compare while the sexes differ
    given_index = model.index_of("given")
    given_missing = levels[:, given_index] == NULL if given_index is not None else np.zeros(len(levels), bool)
    given_differs = (_level_is(model, levels, "given", "else")
                     | (given_missing & _level_is(model, levels, "sex", "else"))
                     | _distinct_common_names(model, levels, left, right))
    born_same_day = (_level_is(model, levels, "birth_date", "exact")
                     | _level_is(model, levels, "birth_date", "day-month-transposed"))
    sibling = given_differs & born_same_day & family
    names_differ = given_differs & _level_is(model, levels, "family", "else")
    birth_index = model.index_of("birth_date")
    birth_missing = levels[:, birth_index] == NULL if birth_index is not None else np.zeros(len(levels), bool)
    initial_only = (left["given_len"] == 1) | (right["given_len"] == 1)
    undistinguished = (given_missing | initial_only | birth_missing) & ~nhs_exact
    scored = ScoredPairs(levels=levels, field_weights=field_weights, weight=weight, probability=probability,
                         hard_conflict=hard_conflict, nhs_exact=nhs_exact, nhs_different=nhs_else & ~hard_conflict,
                         nhs_unsupported=nhs_exact & ~(family | given | birth), sibling=sibling,
                         birth_differs=_level_is(model, levels, "birth_date", "else") & ~nhs_exact,
                         names_differ=names_differ, personal_weight=personal_weight, undistinguished=undistinguished,
                         nhs_verified_same=nhs_exact & both_verified)
    if resolve_ambiguity:
        scored.ambiguous = ambiguous_pairs(model, left, right,
                                           undistinguished & (probability >= model.possible_threshold), probability)
    return scored


def score_frames(model: Model, left: Frame, right: Frame, *, resolve_ambiguity: bool = True) -> ScoredPairs:
    """Score pairs ``(left[i], right[i])`` (see :func:`score_levels`)."""
    return score_levels(model, comparison_levels(model, left, right), left, right,
                        resolve_ambiguity=resolve_ambiguity)


def pair_score(model: Model, scored: ScoredPairs, i: int) -> PairScore:
    """One pair of ``scored`` as a :class:`PairScore` (its explanation keyed by comparison name)."""
    weights: dict[str, float] = {}
    labels: dict[str, str] = {}
    for index, comparison in enumerate(model.comparisons):
        level = int(scored.levels[i, index])
        if level == NULL:
            continue
        weights[comparison.name] = round(float(scored.field_weights[i, index]), 3)
        labels[comparison.name] = comparison.labels[level]
    return PairScore(weight=float(scored.weight[i]), probability=float(scored.probability[i]), field_weights=weights,
                     levels=labels, hard_conflict="nhs-number" if scored.hard_conflict[i] else None,
                     guard=scored.guard_of(i), personal_weight=float(scored.personal_weight[i]),
                     nhs_verified_same=bool(scored.nhs_verified_same[i]))


def score_candidates(model: Model, probe: MatchRecord, candidates: Sequence[MatchRecord]) -> list[PairScore]:
    """Score ``probe`` against each candidate (real time), in the candidates' order."""
    if not candidates:
        return []
    scored = score_frames(model, *probe_pairs(probe, candidates))
    return [pair_score(model, scored, i) for i in range(len(candidates))]


def explanation(model: Model, score: PairScore) -> dict[str, Any]:
    """What a link, a possible match or a review item stores about the pair that made it: the prior's weight, each
    comparison's level and weight, the total, the probability, the guard and the model's version (JSON-able).

    The weights add up: ``prior_weight + Σ field_weights = weight``. :func:`mpi.review.waterfall` lays them out in
    order for people.
    """
    return {"model_version": model.version, "prior_weight": round(model.prior_weight, 3),
            "field_weights": dict(score.field_weights), "levels": dict(score.levels),
            "weight": round(score.weight, 3), "probability": score.probability, "guard": score.guard}


def with_rule_8(explained: dict[str, Any], ambiguous: bool) -> dict[str, Any]:
    """A review item's explanation naming rule 8 (``could-be-either``) where it sent the pair to review.

    The relinks explain their review items afresh, pair by pair (:func:`explanations`), where rule 8 cannot be seen:
    it weighs the pair against the weak record's other partners. Link-on-write scores the probe against all its
    candidates and names it itself; the relinks pass on what their decisions found, so a steward reads why the item
    is in review (a posterior at or above the match threshold with no guard reads as a match left undone). An NHS
    number's guard, which precedes it (:meth:`ScoredPairs.guard_of`), is kept."""
    if ambiguous and explained.get("guard") is None:
        return {**explained, "guard": "could-be-either"}
    return explained


def explanations(model: Model, left: Frame, right: Frame) -> list[dict[str, Any]]:
    """:func:`explanation` of every pair ``(left[i], right[i])`` (scored afresh; the batch relink keeps only the
    decisions' inputs of its millions of pairs, and explains the few it stores)."""
    if left.size == 0:
        return []
    return explained_pairs(model, score_frames(model, left, right, resolve_ambiguity=False))


def explained_pairs(model: Model, scored: ScoredPairs) -> list[dict[str, Any]]:
    """``explanation(model, pair_score(model, scored, i))`` for every pair ``i`` of ``scored``, read from the arrays'
    lists: a relink explains every link it writes, and indexing the arrays value by value cost more than the rest
    of its write-back's rows."""
    comparisons = [(comparison.name, comparison.labels) for comparison in model.comparisons]
    prior_weight = round(model.prior_weight, 3)
    guards = [None if not (different or unsupported or ambiguous) else "different-nhs-numbers" if different
              else "nhs-number-unsupported" if unsupported else "could-be-either" for different, unsupported, ambiguous
              in zip(scored.nhs_different.tolist(), scored.nhs_unsupported.tolist(), scored.ambiguous.tolist(),
                     strict=True)]
    found = []
    made: dict[tuple[tuple[int, ...], tuple[float, ...]], tuple[dict[str, float], dict[str, str]]] = {}
    for levels, weights, weight, probability, guard in zip(
            scored.levels.tolist(), scored.field_weights.tolist(), scored.weight.tolist(),
            scored.probability.tolist(), guards, strict=True):
        key = (tuple(levels), tuple(weights))  # pairs of the same levels mostly weigh the same: made once
        known = made.get(key)
        if known is None:
            field_weights: dict[str, float] = {}
            labels: dict[str, str] = {}
            for (name, names), level, field_weight in zip(comparisons, levels, weights, strict=True):
                if level == NULL:
                    continue
                field_weights[name] = round(field_weight, 3)
                labels[name] = names[level]
            known = made[key] = (field_weights, labels)
        found.append({"model_version": model.version, "prior_weight": prior_weight,
                      "field_weights": dict(known[0]), "levels": dict(known[1]), "weight": round(weight, 3),
                      "probability": probability, "guard": guard})
    return found
