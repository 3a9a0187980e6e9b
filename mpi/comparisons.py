"""Comparisons: for one field, which *level* of agreement a pair of records reaches.

Each comparison is a small declarative class on :class:`Comparison`: it names the columns of
:class:`mpi.normalise.MatchRecord` it reads, lists its levels from the strongest agreement to ``else``, and computes
the level of many pairs at once over numpy columns (``-1`` where either side is missing: no evidence either way).
The real-time path and the batch path call the same :meth:`Comparison.levels`, so a pair gets one level whichever
path scores it. A comparison serialises to a dict (``kind`` plus its settings) as part of the model.

The first matching level wins, in the order listed. Levels marked in ``tf_levels`` get a term-frequency adjustment
(an exact agreement on a rare surname says more than on ``SMITH``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from rapidfuzz import fuzz, process
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

from mpi import spare_core
from mpi.identifier_systems import OWN_KEY, split_tokens

Column = NDArray[Any]
Columns = Mapping[str, Column]
Levels = NDArray[np.int8]

NULL = -1


def absent(columns: Columns, name: str) -> NDArray[np.bool_]:
    """Where ``columns[name]`` is missing (precomputed by :mod:`mpi.frames` when it can be)."""
    flag = f"{name}__missing"
    if flag in columns:
        return columns[flag]
    values = columns[name]
    return (values == "") if values.dtype == object else (values == 0)  # type: ignore[no-any-return]


#: Pairs at or above this count are compared on every core; fewer on one (threads cost more than they save).
PARALLEL_FROM = 20_000


def _workers(n: int) -> int:
    # while a relink's rows are split over two processes (mpi.spare_core), each is one core's work already
    return -1 if n >= PARALLEL_FROM and not spare_core.splitting else 1


def similarity(left: Column, right: Column, scorer: Any) -> NDArray[np.float32]:
    """``scorer`` applied to each pair (rapidfuzz ``cpdist``: vectorised, in C)."""
    if len(left) == 0:
        return np.zeros(0, dtype=np.float32)
    return process.cpdist(left, right, scorer=scorer, dtype=np.float32,  # type: ignore[no-any-return]
                          workers=_workers(len(left)))


def shares_vocabulary(left: Columns, right: Columns) -> bool:
    """Whether both sides are rows of one :class:`mpi.frames.Frame`, so their value codes can be compared."""
    origin = getattr(left, "origin", None)
    return origin is not None and origin is getattr(right, "origin", None)


def equal(left: Columns, right: Columns, name: str, right_name: str | None = None) -> NDArray[np.bool_]:
    """``left[name] == right[right_name or name]``, on value codes when both sides share a vocabulary."""
    other = right_name or name
    if other == name and shares_vocabulary(left, right) and f"{name}__code" in left:
        return left[f"{name}__code"] == right[f"{name}__code"]  # type: ignore[no-any-return]
    return left[name] == right[other]  # type: ignore[no-any-return]


#: Fewer pairs than this are computed directly (finding the distinct pairs costs more than it saves).
DISTINCT_FROM = 512


def per_distinct_pair(left: Columns, right: Columns, names: tuple[str, str], where: NDArray[np.bool_],
                      compute: Callable[[Column, Column], NDArray[Any]], fill: Any, dtype: Any,
                      on_codes: Callable[[Any, NDArray[Any], NDArray[Any]], NDArray[Any]] | None = None
                      ) -> NDArray[Any]:
    """``compute(values_a, values_b)`` for the pairs selected by ``where`` (``fill`` elsewhere), evaluated once per
    distinct pair of values: among a million blocked pairs, the same two names or addresses recur many times.

    ``on_codes(origin, codes_a, codes_b)``, when given, computes the same from the values' codes in the frame both
    sides come from (for what is derived from a value once per frame).
    """
    out = np.full(len(where), fill, dtype=dtype)
    idx = np.flatnonzero(where)
    if not len(idx):
        return out
    a_name, b_name = names
    coded = shares_vocabulary(left, right) and f"{a_name}__code" in left
    if coded and on_codes is not None and len(idx) < DISTINCT_FROM:
        out[idx] = on_codes(left.origin, left[f"{a_name}__code"][idx],  # type: ignore[attr-defined]
                            right[f"{b_name}__code"][idx])
        return out
    if not coded or len(idx) < DISTINCT_FROM:
        out[idx] = compute(left[a_name][idx], right[b_name][idx])
        return out
    ca = left[f"{a_name}__code"][idx].astype(np.int64)
    cb = right[f"{b_name}__code"][idx].astype(np.int64)
    if a_name == b_name:  # the scorers are symmetric: (x, y) and (y, x) are one pair
        ca, cb = np.minimum(ca, cb), np.maximum(ca, cb)
    vocab = left.origin.vocab  # type: ignore[attr-defined]
    width = len(vocab[b_name]) + 1
    inverse, distinct = pd.factorize(ca * width + cb)
    if on_codes is not None:
        values = on_codes(left.origin, distinct // width, distinct % width)  # type: ignore[attr-defined]
    else:
        values = compute(vocab[a_name][distinct // width], vocab[b_name][distinct % width])
    out[idx] = np.asarray(values, dtype=dtype)[inverse]
    return out


def _jaro_winkler(a: Column, b: Column) -> NDArray[np.float32]:
    return similarity(a, b, JaroWinkler.normalized_similarity)


def _edit_distance(a: Column, b: Column) -> NDArray[np.int32]:
    if len(a) == 0:
        return np.zeros(0, dtype=np.int32)
    return process.cpdist(a, b, scorer=DamerauLevenshtein.distance, dtype=np.int32,  # type: ignore
                          workers=_workers(len(a)))


def _each(func: Callable[[str, str], bool]) -> Callable[[Column, Column], NDArray[np.bool_]]:
    def apply(a: Column, b: Column) -> NDArray[np.bool_]:
        return np.fromiter((func(x, y) for x, y in zip(a, b, strict=True)), dtype=bool, count=len(a))
    return apply


def pairwise(func: Callable[[str, str], bool], left: Column, right: Column,
             mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``func`` applied to the pairs selected by ``mask`` (False elsewhere); for the rarer, costlier checks."""
    out = np.zeros(len(left), dtype=bool)
    idx = np.flatnonzero(mask)
    if len(idx):
        out[idx] = _each(func)(left[idx], right[idx])
    return out


class Comparison:
    """Base of every comparison: columns read, level labels, and the vectorised level computation."""

    kind: ClassVar[str]
    name: str
    labels: ClassVar[tuple[str, ...]]
    tf_column: ClassVar[str | None] = None  # column whose value frequency adjusts level ``tf_level``
    tf_level: ClassVar[int] = 0
    shared_by_household: ClassVar[bool] = False  # where one lives and how to call them: evidence, not identity
    home_levels: ClassVar[tuple[str, ...]] = ()  # levels saying two records give one home (for household u)
    registry: ClassVar[dict[str, type[Comparison]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Comparison.registry[cls.kind] = cls

    @property
    def levels_count(self) -> int:
        return len(self.labels)

    def levels(self, left: Columns, right: Columns) -> Levels:
        """The level of each pair (``left[i]`` with ``right[i]``); ``-1`` where either side is missing."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}  # type: ignore[call-overload]

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Comparison:
        settings = dict(data)
        cls = Comparison.registry[settings.pop("kind")]
        return cls(**settings)


def _assign(conditions: list[NDArray[np.bool_]], null: NDArray[np.bool_]) -> Levels:
    """Level = index of the first true condition, ``len(conditions)`` (``else``) otherwise, -1 where null."""
    n = len(null)
    out = np.full(n, len(conditions), dtype=np.int8)
    for level in range(len(conditions) - 1, -1, -1):
        out[conditions[level]] = level
    out[null] = NULL
    return out


@dataclass
class NhsNumberComparison(Comparison):
    """Both NHS numbers valid (Modulus 11): the same, or different. A number failing the check is no evidence.

    Whether two *different* numbers were both verified (a hard conflict) is decided in :mod:`mpi.decisions`.
    """

    kind: ClassVar[str] = "nhs-number"
    labels: ClassVar[tuple[str, ...]] = ("exact", "else")
    name: str = "nhs_number"

    def levels(self, left: Columns, right: Columns) -> Levels:
        null = ~(left["nhs_valid"] & right["nhs_valid"]) | absent(left, "nhs_number") | absent(right, "nhs_number")
        return _assign([equal(left, right, "nhs_number")], null)


@dataclass
class FamilyNameComparison(Comparison):
    """Family names: exact; given and family swapped; words shared (double-barrelled, hyphenated, run together);
    close spelling; same sound; distant spelling; crossed (one record's family name is the other's given name, or
    its given name the other's family name: one name keyed into the wrong field, the other lost or replaced);
    else.

    A crossed name is one event seen from the family name only (the given names then usually disagree, and weigh
    as they do); whether it is evidence of one person, and how much, is learnt like every level (m by EM, u from
    random pairs, and among the people of one home).
    """

    kind: ClassVar[str] = "family-name"
    labels: ClassVar[tuple[str, ...]] = ("exact", "swapped", "words-shared", "jaro-winkler>=0.92", "phonetic",
                                         "jaro-winkler>=0.80", "crossed", "else")
    tf_column: ClassVar[str | None] = "family"
    name: str = "family"
    close: float = 0.92
    distant: float = 0.80

    def levels(self, left: Columns, right: Columns) -> Levels:
        null = absent(left, "family") | absent(right, "family")
        exact = equal(left, right, "family")
        swapped = swapped_names(left, right) & ~exact
        rest = ~(null | exact | swapped)
        # only a name of several words (or a pair differing by spaces) can share words without being equal
        shared = per_distinct_pair(left, right, ("family", "family"), rest & (left["family_multi"]
                                   | right["family_multi"]), _each(_words_shared), False, bool)
        jw = per_distinct_pair(left, right, ("family", "family"), rest & ~shared, _jaro_winkler, 0.0, np.float32)
        phonetic = equal(left, right, "family_ph") & ~absent(left, "family_ph")
        crossed = crossed_names(left, right, rest & ~shared & (jw < self.distant) & ~phonetic, self.close)
        return _assign([exact, swapped, shared, jw >= self.close, phonetic, jw >= self.distant, crossed], null)


def crossed_names(left: Columns, right: Columns, where: NDArray[np.bool_], close: float = 0.92
                  ) -> NDArray[np.bool_]:
    """Where one record's given name is the other's family name (or one of its words), or its family name the
    other's given name, allowing a slip (Jaro–Winkler ≥ ``close``): only the pairs selected by ``where``."""
    out = np.zeros(len(where), dtype=bool)
    for a, b in ((left, right), (right, left)):
        usable = where & ~out & ~absent(a, "given") & ~absent(b, "family")
        out |= per_distinct_pair(a, b, ("given", "family"), usable,
                                 lambda given, family: _crossed_each(given, family, close), False, bool)
    return out


def _crossed(given: str, family: str, close: float) -> bool:
    """A given name that is the family name, one of its words, or the family name with a slip."""
    if given == family or given in family.split():
        return True
    return bool(JaroWinkler.normalized_similarity(given, family) >= close)


def _crossed_each(given: Column, family: Column, close: float) -> NDArray[np.bool_]:
    """:func:`_crossed` of each pair: Jaro–Winkler of every pair at once (rapidfuzz, in C, in double precision as
    the single call gives it), and the word test in Python only where it can still decide, a family name of
    several words (the same name is Jaro–Winkler 1). Random pairs (the training's u) meet this on almost every
    pair, where a call per pair in Python was the largest part of the training's CPU."""
    if len(given) == 0:
        return np.zeros(0, dtype=bool)
    out = np.asarray(process.cpdist(given, family, scorer=JaroWinkler.normalized_similarity, dtype=np.float64,
                                    workers=_workers(len(given)))) >= close
    codes, names = pd.factorize(np.asarray(family, dtype=object))
    several = np.fromiter((len(name.split()) > 1 for name in names.tolist()), dtype=bool, count=len(names))
    for i in np.flatnonzero(~out & several[codes]).tolist():
        if given[i] in family[i].split():
            out[i] = True
    return out


def swapped_names(left: Columns, right: Columns, close: float = 0.92) -> NDArray[np.bool_]:
    """Given and family names written the other way round (allowing a slip in each: Jaro–Winkler ≥ ``close``)."""
    cross = ~(absent(left, "given") | absent(right, "family") | absent(left, "family") | absent(right, "given"))
    where = cross & ~equal(left, right, "given")
    one = per_distinct_pair(left, right, ("given", "family"), where, _jaro_winkler, 0.0, np.float32) >= close
    two = per_distinct_pair(left, right, ("family", "given"), where & one, _jaro_winkler, 0.0, np.float32) >= close
    return one & two


def _words_shared(a: str, b: str) -> bool:
    """One name's words all appear in the other's (``SMITH`` in ``SMITH JONES``), or they differ only by spaces."""
    if a.replace(" ", "") == b.replace(" ", ""):
        return True
    wa, wb = set(a.split()), set(b.split())
    return bool(wa and wb) and (wa <= wb or wb <= wa)


@dataclass
class GivenNameComparison(Comparison):
    """First given names: exact; swapped with family; nickname (William/Bill); close spelling; same sound; an initial
    or a middle name used as the first; distant spelling; else."""

    kind: ClassVar[str] = "given-name"
    labels: ClassVar[tuple[str, ...]] = ("exact", "swapped", "nickname", "jaro-winkler>=0.92", "phonetic",
                                         "initial-or-middle", "jaro-winkler>=0.80", "else")
    tf_column: ClassVar[str | None] = "given"
    name: str = "given"
    close: float = 0.92
    distant: float = 0.80

    def levels(self, left: Columns, right: Columns) -> Levels:
        null = absent(left, "given") | absent(right, "given")
        exact = equal(left, right, "given")
        swapped = swapped_names(left, right) & ~exact
        rest = ~(null | exact | swapped)
        nickname = per_distinct_pair(left, right, ("nick", "nick"), rest, _nicknames, False, bool,
                                     on_codes=_nicknames_by_code)
        jw = per_distinct_pair(left, right, ("given", "given"), rest & ~nickname, _jaro_winkler, 0.0, np.float32)
        phonetic = equal(left, right, "given_ph") & ~absent(left, "given_ph")
        initial = (((left["given_len"] == 1) | (right["given_len"] == 1))
                   & (left["given_initial"] == right["given_initial"]))
        middle = (_is_middle_name(left, right) | _is_middle_name(right, left)) & ~null
        return _assign([exact, swapped, nickname, jw >= self.close, phonetic, initial | middle, jw >= self.distant],
                       null)


#: Names of a nickname key list considered (the name itself and its direct relations).
NICK_SLOTS = 16


def _nickname_ids(values: Column, index: dict[str, int]) -> NDArray[np.int32]:
    """Ids of each value's names (a name then its related names, space separated), padded with -1."""
    out = np.full((len(values), NICK_SLOTS), -1, dtype=np.int32)
    known: dict[str, list[int]] = {}  # a value recurs (real time: the probe's on every row)
    for row, keys in enumerate(values.tolist()):
        if keys:
            ids = known.get(keys)
            if ids is None:
                ids = known[keys] = [index.setdefault(key, len(index)) for key in keys.split(" ")[:NICK_SLOTS]]
            out[row, :len(ids)] = ids
    return out


def _nicknames(a: Column, b: Column) -> NDArray[np.bool_]:
    """Nickname relation between values of ``nick``."""
    index: dict[str, int] = {}
    return nickname_related(_nickname_ids(a, index), _nickname_ids(b, index))


def _nicknames_by_code(origin: Any, a: NDArray[Any], b: NDArray[Any]) -> NDArray[np.bool_]:
    ids = origin.cache.get("nick_ids")
    if ids is None:  # once per frame: the ids of every distinct value of ``nick``
        ids = origin.cache["nick_ids"] = _nickname_ids(origin.vocab["nick"], {})
    return nickname_related(ids[a], ids[b])


def _is_middle_name(side: Columns, other: Columns) -> NDArray[np.bool_]:
    """Where ``side``'s first given name is ``other``'s first middle name."""
    if shares_vocabulary(side, other) and "middle1__given_code" in other:
        return side["given__code"] == other["middle1__given_code"]  # type: ignore[no-any-return]
    if "middle1" in other:  # an uncoded frame (mpi.frames.frame_of_few) holds the first middle name itself
        middle = other["middle1"]
    else:
        middle = np.asarray([v.split(" ", 1)[0] for v in other["middle"]], dtype=object)
    return (side["given"] == middle) & (middle != "")  # type: ignore[no-any-return]


def nickname_related(left: NDArray[np.int32], right: NDArray[np.int32]) -> NDArray[np.bool_]:
    """Rows where either name (slot 0) is among the other's related names (ids padded with -1)."""
    left_self, right_self = left[:, 0], right[:, 0]
    related = (left[:, 1:] == right_self[:, None]).any(axis=1) | (right[:, 1:] == left_self[:, None]).any(axis=1)
    return related & (left_self >= 0)  # type: ignore[no-any-return]


@dataclass
class MiddleNameComparison(Comparison):
    """Further given names (middle names, as HL7 PID-5.3 and FHIR's second ``given`` carry them): the same, spelled
    out; the first agreeing as far as both go (an initial and a name it begins, ``J`` and ``JAMES``; or the same first
    middle name, the rest differing); else. Missing on either side (most records hold none): no evidence. Where
    the first given names agree, only ``else`` is evidence (two people of one name); agreement there is none here,
    and the scorer restores it away from one home where both records carry a birth date
    (:func:`mpi.scoring.middle_away_from_home`).

    Among relatives a middle name is shared now and then (a son named after his father); how often is learnt among
    the people of one home like the other personal fields (:func:`mpi.training.estimate_u_household`).
    """

    kind: ClassVar[str] = "middle-name"
    labels: ClassVar[tuple[str, ...]] = ("exact", "initial-or-first", "else")
    name: str = "middle"

    def levels(self, left: Columns, right: Columns) -> Levels:
        level = self.levels_whatever_the_first_names(left, right)
        # where the first given names agree, an agreeing middle name is no further evidence: relatives who share a
        # first name (a son named after his father) share the middle one too, far more often than strangers. A
        # middle name that differs still is: one person's records rarely differ in it (it is dropped, cut to an
        # initial or joined by a second one, all agreeing as far as both go), two people of one name often do
        agreeing = (level >= 0) & (level != self.labels.index("else"))
        return np.where(agreeing & equal(left, right, "given"), NULL, level).astype(np.int8)  # type: ignore[no-any-return]

    def levels_whatever_the_first_names(self, left: Columns, right: Columns) -> Levels:
        """The levels of the middle names alone, also where the first given names agree (what one person's records
        show: :func:`mpi.training.estimate_m_middle`)."""
        null = absent(left, "middle") | absent(right, "middle")
        exact = equal(left, right, "middle")
        level = per_distinct_pair(left, right, ("middle", "middle"), ~(null | exact),
                                  _each_value(_middle_level, np.int8), 2, np.int8)
        # an initial alone agreeing with an initial alone is the second level, not a spelled-out agreement
        initials = per_distinct_pair(left, right, ("middle", "middle"), exact & ~null, _each(_initial_only), False,
                                     bool)
        return _assign([exact & ~initials, initials | (level == 1)], null)


def _initial_only(a: str, _b: str) -> bool:
    return len(a.split(" ", 1)[0]) == 1


def _middle_level(a: str, b: str) -> int:
    """1 when the first middle names agree as far as both go (an initial and a name it begins, or the same name),
    2 otherwise."""
    fa, fb = a.split(" ", 1)[0], b.split(" ", 1)[0]
    if fa == fb or ((len(fa) == 1 or len(fb) == 1) and fa[:1] == fb[:1]):
        return 1
    return 2


def _each_value(func: Callable[[str, str], Any], dtype: Any) -> Callable[[Column, Column], NDArray[Any]]:
    """``func`` of each pair of values, as an array of ``dtype``."""
    def apply(a: Column, b: Column) -> NDArray[Any]:
        return np.fromiter((func(x, y) for x, y in zip(a, b, strict=True)), dtype=dtype, count=len(a))
    return apply


@dataclass
class BirthDateComparison(Comparison):
    """Birth dates: exact; day and month transposed; one part different; the known parts of a partial date agree;
    else."""

    kind: ClassVar[str] = "birth-date"
    labels: ClassVar[tuple[str, ...]] = ("exact", "day-month-transposed", "one-part-different", "partial-agrees",
                                         "else")
    name: str = "birth_date"

    def levels(self, left: Columns, right: Columns) -> Levels:
        ya, ma, da = left["birth_year"], left["birth_month"], left["birth_day"]
        yb, mb, db = right["birth_year"], right["birth_month"], right["birth_day"]
        null = (ya == 0) | (yb == 0)
        full = (ma > 0) & (mb > 0) & (da > 0) & (db > 0)
        same_y, same_m, same_d = ya == yb, ma == mb, da == db
        exact = full & same_y & same_m & same_d
        transposed = full & same_y & (da == mb) & (ma == db) & (da != ma)
        # a slip in one part: one digit of the year or day keyed wrong, or the month; a different birthday in
        # another year is not a slip (1954-05-04 and 1983-05-04 are two people born on the same day of the year)
        year_slip = _one_digit_apart(ya, yb, 4)
        day_slip = _one_digit_apart(da, db, 2)
        one_part = full & ((same_y & same_m & day_slip) | (same_y & same_d) | (same_m & same_d & year_slip))
        partial = ~full & same_y & ((ma == 0) | (mb == 0) | same_m) & ((da == 0) | (db == 0) | same_d)
        return _assign([exact, transposed, one_part, partial], null)


def _one_digit_apart(a: NDArray[np.int32], b: NDArray[np.int32], width: int) -> NDArray[np.bool_]:
    """Numbers whose ``width`` decimal digits differ in exactly one place, or by two adjacent digits swapped."""
    differing = np.zeros(len(a), dtype=np.int32)
    digits_a, digits_b = [], []
    for place in range(width):
        da_, db_ = (a // 10 ** place) % 10, (b // 10 ** place) % 10
        digits_a.append(da_)
        digits_b.append(db_)
        differing += da_ != db_
    swapped = np.zeros(len(a), dtype=bool)
    for place in range(width - 1):
        swapped |= ((differing == 2) & (digits_a[place] == digits_b[place + 1])
                    & (digits_a[place + 1] == digits_b[place]))
    return (differing == 1) | swapped  # type: ignore[no-any-return]


@dataclass
class ExactComparison(Comparison):
    """One column, exact or else (sex)."""

    kind: ClassVar[str] = "exact"
    labels: ClassVar[tuple[str, ...]] = ("exact", "else")
    name: str = "sex"
    column: str = "sex"

    def levels(self, left: Columns, right: Columns) -> Levels:
        return _assign([equal(left, right, self.column)], absent(left, self.column) | absent(right, self.column))


@dataclass
class PostcodeComparison(Comparison):
    """Postcodes: exact; same sector (UK) or one edit apart (elsewhere); same district (UK) or same leading
    characters (elsewhere); else. A non-UK code is compared as the string it was given."""

    kind: ClassVar[str] = "postcode"
    labels: ClassVar[tuple[str, ...]] = ("exact", "sector-or-one-edit", "district-or-prefix", "else")
    tf_column: ClassVar[str | None] = "postcode"
    shared_by_household: ClassVar[bool] = True
    home_levels: ClassVar[tuple[str, ...]] = ()
    name: str = "postcode"

    def levels(self, left: Columns, right: Columns) -> Levels:
        null = absent(left, "postcode") | absent(right, "postcode")
        both_uk = left["postcode_uk"] & right["postcode_uk"]
        exact = equal(left, right, "postcode")
        sector = both_uk & equal(left, right, "sector")
        district = both_uk & equal(left, right, "district")
        other = ~both_uk & ~null
        pair = ("postcode", "postcode")
        one_edit = other & (per_distinct_pair(left, right, pair, other & ~exact, _edit_distance, 1_000, np.int32) <= 1)
        prefix = other & per_distinct_pair(left, right, pair, other & ~exact & ~one_edit, _each(_same_prefix), False,
                                           bool)
        return _assign([exact, sector | one_edit, district | prefix], null)


def _same_prefix(a: str, b: str) -> bool:
    n = max(len(a), len(b)) - 1
    return n >= 2 and a[:n] == b[:n]


@dataclass
class AddressComparison(Comparison):
    """Free-text addresses: exact; the same words in any order, or one address's words all within the other's
    (``Flat 1, 12 Mill Lane``), house numbers agreeing; most words shared; else."""

    kind: ClassVar[str] = "address"
    labels: ClassVar[tuple[str, ...]] = ("exact", "similar", "partial", "else")
    shared_by_household: ClassVar[bool] = True
    home_levels: ClassVar[tuple[str, ...]] = ("exact", "similar")
    name: str = "address"
    similar: float = 90.0
    partial: float = 70.0

    def levels(self, left: Columns, right: Columns) -> Levels:
        # addresses are stored with their words sorted, so a plain ratio is a token-sort ratio
        null = absent(left, "address") | absent(right, "address")
        exact = equal(left, right, "address")
        rest = ~(null | exact)
        pair = ("address", "address")
        ratio = per_distinct_pair(left, right, pair, rest, _scored(fuzz.ratio), 0.0, np.float32)
        maybe_subset = rest & (ratio >= 40) & (ratio < self.similar)
        set_ratio = np.where(maybe_subset, per_distinct_pair(left, right, pair, maybe_subset,
                                                             _scored(fuzz.token_set_ratio), 0.0, np.float32), ratio)
        # one address keyed with a word split, run together or mistyped (``COPLANDDRIVE``): its words sort
        # elsewhere and the ratio drops, while the letter pairs within its words barely change
        slipped = rest & (ratio < self.similar) & (set_ratio < 99.9)
        dice = 100 * per_distinct_pair(left, right, pair, slipped & (set_ratio >= 40),
                                       _each_value(bigram_dice, np.float64), 0.0, np.float64,
                                       on_codes=_bigram_dice_by_code)
        numbers = per_distinct_pair(left, right, pair, rest & ((set_ratio >= self.partial) | (dice >= self.partial)),
                                    _each(_same_numbers), False, bool)
        similar = numbers & ((ratio >= self.similar) | (set_ratio >= 99.9) | (dice >= self.similar))
        partial = numbers & ((set_ratio >= self.partial) | (dice >= self.partial))
        return _assign([exact, similar, partial], null)


def _scored(scorer: Any) -> Callable[[Column, Column], NDArray[np.float32]]:
    def apply(a: Column, b: Column) -> NDArray[np.float32]:
        return similarity(a, b, scorer)
    return apply


_DIGITS = re.compile(r"\d+")


def _same_numbers(a: str, b: str) -> bool:
    """House and flat numbers agree (a neighbour at 14 is not the person at 12): the numbers of one address all
    among the other's (``VILLA2`` and ``VILLA 2`` both hold 2, ``05`` and ``5`` are one number)."""
    na, nb = frozenset(house_numbers(a)), frozenset(house_numbers(b))
    return not na or not nb or na <= nb or nb <= na


def _both_numbered(a: str, b: str) -> bool:
    """Both addresses hold a house or flat number (a run of digits)."""
    return bool(house_numbers(a)) and bool(house_numbers(b))


@lru_cache(maxsize=1 << 16)
def house_numbers(address: str | None) -> tuple[str, ...]:
    """The house and flat numbers of a normalised address, the one reading of them (the comparisons here and the
    ``ph:`` blocking keys): its runs of digits (``VILLA2`` holds 2), leading zeros dropped (``05 MILL LANE`` is
    number 5), distinct, in order. Once per address: one address meets many in a batch."""
    if not address:
        return ()
    return tuple(dict.fromkeys(run.lstrip("0") or "0" for run in _DIGITS.findall(address)))


@lru_cache(maxsize=1 << 16)
def street_words(address: str) -> str:
    """A normalised address without its house and flat numbers (its street, building and locality words, still
    sorted): what the households of one street share."""
    return " ".join(word for word in (_DIGITS.sub("", w) for w in address.split()) if word)


def _same_street(a: str, b: str) -> bool:
    """Part of two addresses agrees beyond what a postcode says: their words apart from the numbers alike (the
    ratio of the words, or the Dice coefficient of their letter pairs, at least :data:`STREET_ALIKE`, or two words
    or more of one all among the other's: one street, another house number), or the same house and flat numbers
    on both sides (one number, the street written otherwise or replaced)."""
    na, nb = house_numbers(a), house_numbers(b)
    if na and nb and frozenset(na) == frozenset(nb):
        return True
    sa, sb = street_words(a), street_words(b)
    if not sa or not sb:
        return False
    shorter, longer = sorted((sa.split(), sb.split()), key=len)
    if len(shorter) >= 2 and set(shorter) <= set(longer):  # a building or a locality added or dropped
        return True
    return fuzz.ratio(sa, sb) >= STREET_ALIKE or 100 * bigram_dice(sa, sb) >= STREET_ALIKE


#: How alike two addresses' words apart from their numbers are to name one street (as ``partial`` addresses).
STREET_ALIKE = 70.0


@lru_cache(maxsize=1 << 16)
def _bigrams(text: str) -> tuple[Counter[str], int]:
    """The letter pairs within the words of a text, and how many (once per text: one address meets many)."""
    pairs = Counter(word[i:i + 2] for word in text.split() for i in range(len(word) - 1))
    return pairs, sum(pairs.values())


def bigram_dice(a: str, b: str) -> float:
    """Dice coefficient of the letter pairs within the words of two texts (as multisets): insensitive to word
    order and to a word split or run together, and one mistyped letter costs at most two pairs."""
    (ga, na), (gb, nb) = _bigrams(a), _bigrams(b)
    if not na + nb:
        return 0.0
    shared = sum(min(ga[pair], gb[pair]) for pair in ga.keys() & gb.keys())  # the multisets' intersection
    return 2 * shared / (na + nb)


#: Pairs of addresses whose letter pairs are intersected at once (bounds the memory of one step).
_DICE_CHUNK = 16_384
#: Set bits per byte value.
_POPCOUNT = np.asarray([bin(value).count("1") for value in range(256)], dtype=np.uint8)


#: Every code point that :meth:`str.isspace` holds for (and so :meth:`str.split` splits on): none lies above
#: U+3000, the ideographic space.
_WHITESPACE = np.asarray([c for c in range(0x3001) if chr(c).isspace()], dtype=np.int64)


def _bigram_tokens(texts: NDArray[Any]) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Each text's letter pairs as token ids, a pair seen ``k`` times as ``k`` tokens ((pair, 1) .. (pair, k)), so
    that the multisets' intersection is the count of tokens two texts share: (offsets, tokens, how many pairs).

    The letter pairs of :func:`_bigrams` (two neighbouring characters, neither a space, within one text: the pairs
    within its words), found over every text at once as code points rather than text by text in Python (once per
    frame: the relink's training met it as a third of its CPU at 20 000 people)."""
    values = [str(text) for text in texts.tolist()]
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    ends = np.cumsum(lengths)
    points = np.frombuffer("".join(values).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    in_word = ~np.isin(points, _WHITESPACE)
    starts_pair = in_word[:-1] & in_word[1:] if len(points) else np.zeros(0, dtype=bool)
    last = ends[(lengths > 0) & (ends < len(points))] - 1  # a text's last character: no pair across texts
    starts_pair[last] = False
    where = np.flatnonzero(starts_pair)
    text = np.searchsorted(ends, where, side="right")
    pair = (points[where] << 21) | points[where + 1]  # code points take 21 bits
    order = np.lexsort((pair, text))
    text, pair = text[order], pair[order]
    first = np.r_[True, (text[1:] != text[:-1]) | (pair[1:] != pair[:-1])] if len(pair) else np.zeros(0, bool)
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(pair)), 0))
    seen_before = np.arange(len(pair)) - group_start  # k - 1 for the k-th time a text holds the pair
    tokens, _ = pd.factorize(pair * (int(seen_before.max(initial=0)) + 1) + seen_before)
    totals = np.bincount(text, minlength=len(values)).astype(np.int64)
    offsets = np.r_[0, np.cumsum(totals)].astype(np.int64)
    return offsets, np.asarray(tokens, dtype=np.int64), totals


def _bigram_dice_by_code(origin: Any, a: NDArray[Any], b: NDArray[Any]) -> NDArray[np.float64]:
    """:func:`bigram_dice` of the addresses with codes ``a`` and ``b`` in ``origin``'s vocabulary: the same
    integers (letter pairs shared, letter pairs in each) and so the same values, each text's pairs held as bits
    and the shared ones counted per pair of texts, not pair by pair in Python."""
    found = origin.cache.get("address_bigrams")
    if found is None:  # once per frame: the letter pairs of every distinct address
        found = origin.cache["address_bigrams"] = _bigram_tokens(origin.vocab["address"])
    offsets, tokens, totals = found
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    texts = np.unique(np.concatenate([a, b]))
    width = (int(tokens.max()) >> 3) + 1 if len(tokens) else 1
    starts, lengths = offsets[texts], offsets[texts + 1] - offsets[texts]
    rows = np.repeat(np.arange(len(texts)), lengths)
    within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    held = tokens[np.repeat(starts, lengths) + within]
    bits = np.zeros((len(texts), width), dtype=np.uint8)
    np.bitwise_or.at(bits, (rows, held >> 3), (1 << (held & 7)).astype(np.uint8))
    row_a, row_b = np.searchsorted(texts, a), np.searchsorted(texts, b)
    shared = np.zeros(len(a), dtype=np.int64)
    for start in range(0, len(a), _DICE_CHUNK):
        part = slice(start, start + _DICE_CHUNK)
        shared[part] = _POPCOUNT[bits[row_a[part]] & bits[row_b[part]]].sum(axis=1, dtype=np.int64)
    both = totals[a] + totals[b]
    out = np.zeros(len(a), dtype=np.float64)
    some = both > 0
    out[some] = (2 * shared[some]).astype(np.float64) / both[some].astype(np.float64)
    return out


@dataclass
class PhoneComparison(Comparison):
    """Phone numbers (digits): exact; one edit apart; else."""

    kind: ClassVar[str] = "phone"
    labels: ClassVar[tuple[str, ...]] = ("exact", "one-edit", "else")
    shared_by_household: ClassVar[bool] = True
    home_levels: ClassVar[tuple[str, ...]] = ("exact",)  # a landline rings in one home
    name: str = "phone"

    def levels(self, left: Columns, right: Columns) -> Levels:
        null = absent(left, "phone") | absent(right, "phone")
        exact = equal(left, right, "phone")
        distance = per_distinct_pair(left, right, ("phone", "phone"), ~exact & ~null, _edit_distance, 1_000, np.int32)
        return _assign([exact, ~exact & ~null & (distance <= 1)], null)


@dataclass
class ResidenceComparison(Comparison):
    """Where the person lives, postcode and address together (they are not independent evidence: a household
    shares both): both agree (the same postcode and the address alike, or partly alike with house or flat numbers
    on both sides, the same ones: a postcode and a number name one home, and the words left room for slips); the
    postcode and part of the address, not one home (:func:`_same_street`: the words apart from the numbers alike,
    another house number or a named house; or the same numbers with the street written otherwise); the postcode
    only; the address only; both nearly (the postcode in the same sector or one character off, and the address
    partly alike with its house numbers agreeing: one home keyed with slips in both, where a neighbour has another
    house number); nearby (same sector or district, or an address partly alike); else.

    How much *the postcode and part of the address* says is learnt, like every level: in a UK postcode (about
    fifteen addresses, mostly of one street) it is little more than the postcode, while a postcode covering a town
    says much more; a house number mistyped or a street replaced keeps one person's records there (H-ID-42). It is
    not one home (``home_levels``): neighbours are two households."""

    kind: ClassVar[str] = "residence"
    labels: ClassVar[tuple[str, ...]] = ("postcode-and-address", "postcode-and-part", "postcode", "address",
                                         "both-nearly", "nearby", "else")
    tf_column: ClassVar[str | None] = "postcode"
    tf_level: ClassVar[int] = 2
    shared_by_household: ClassVar[bool] = True
    home_levels: ClassVar[tuple[str, ...]] = ("postcode-and-address", "address")
    name: str = "residence"

    def levels(self, left: Columns, right: Columns) -> Levels:
        postcode = PostcodeComparison().levels(left, right)
        address = AddressComparison().levels(left, right)
        address_agrees = (address == 0) | (address == 1)
        same_postcode = postcode == 0
        partial_address = address == 2
        nearby = (postcode == 1) | (postcode == 2) | partial_address
        pair = ("address", "address")
        # a partly alike address is one home at one postcode only when both sides hold a number (which
        # ``partial`` already requires to agree): two named houses of one street share a postcode
        numbered = per_distinct_pair(left, right, pair, same_postcode & partial_address, _each(_both_numbered),
                                     False, bool)
        address_agrees = address_agrees | numbered
        street = per_distinct_pair(left, right, pair, same_postcode & ~address_agrees & (address != NULL),
                                   _each(_same_street), False, bool)
        return _assign([same_postcode & address_agrees, same_postcode & street, same_postcode, address_agrees,
                        (postcode == 1) & partial_address, nearby],
                       (postcode == NULL) & (address == NULL))


@dataclass
class IdentifierComparison(Comparison):
    """Identifiers other than the NHS number (:mod:`mpi.identifier_systems`): ``shared`` when one record's further
    identifier is the other's key or one of its further identifiers (a cross-reference: an ADT from one trust
    listing the patient's hospital number at another; one registry's number on both); ``else`` when one record's
    further identifier is of a system the other carries too and no value is shared (conflicting in one system).
    No evidence when neither carries a further identifier, or when they carry no system in common (two keys of
    one trust are two records to compare, not two conflicting numbers). m and u are learnt like every level.

    ``shared_values``: identifiers held by more records than one person holds (a placeholder, a family's or an
    insurance group's number: :func:`mpi.training.shared_identifiers`), learnt from the store and compared as
    none (hazard H-ID-61, as H-ID-33 for phones).
    """

    kind: ClassVar[str] = "identifier"
    labels: ClassVar[tuple[str, ...]] = ("shared", "else")
    name: str = "identifier"
    shared_values: list[str] = field(default_factory=list)

    def levels(self, left: Columns, right: Columns) -> Levels:
        # every record holds its own key; only a pair where one side holds a further identifier can be evidence,
        # so most pairs (no further identifier on either side) are settled without comparing tokens
        null = absent(left, "identifiers") | absent(right, "identifiers") | ~(_further(left) | _further(right))
        common = frozenset(self.shared_values)
        return per_distinct_pair(  # type: ignore[no-any-return]
            left, right, ("identifiers", "identifiers"), ~null,
            _each_value(lambda a, b: identifier_level(a, b, common), np.int8), NULL, np.int8)


def _holds_further(values: Column) -> NDArray[np.bool_]:
    return np.fromiter((any(not token.startswith(OWN_KEY) for token in value.split()) for value in values), dtype=bool,
                       count=len(values))


def _further(side: Columns) -> NDArray[np.bool_]:
    """Whether each record holds a further identifier (beyond its own key), once per distinct value when coded."""
    origin = getattr(side, "origin", None)
    if origin is not None and "identifiers__code" in side and "identifiers" in origin.vocab:
        flags = origin.cache.get("identifiers-further")
        if flags is None:
            flags = origin.cache["identifiers-further"] = _holds_further(origin.vocab["identifiers"])
        return flags[side["identifiers__code"]]  # type: ignore[no-any-return]
    return _holds_further(side["identifiers"])


def _systems(tokens: frozenset[str]) -> set[str]:
    return {token.split("|", 1)[0] for token in tokens}


def identifier_level(a: str, b: str, shared_values: frozenset[str] = frozenset()) -> int:
    """:class:`IdentifierComparison`'s level of two records' stored identifier tokens: 0 shared, 1 conflicting in
    one system, -1 no evidence. Symmetric."""
    own_a, further_a = split_tokens(a)
    own_b, further_b = split_tokens(b)
    further_a, further_b = further_a - shared_values, further_b - shared_values
    if not (further_a or further_b):
        return NULL
    all_a = further_a | ({own_a} - shared_values if own_a else set())
    all_b = further_b | ({own_b} - shared_values if own_b else set())
    if all_a & all_b:
        return 0
    if _systems(further_a) & _systems(frozenset(all_b)) or _systems(further_b) & _systems(frozenset(all_a)):
        return 1
    return NULL


def default_comparisons() -> list[Comparison]:
    """The comparisons of priorscan's model, in scoring order."""
    return [NhsNumberComparison(), FamilyNameComparison(), GivenNameComparison(), MiddleNameComparison(),
            BirthDateComparison(), ExactComparison(name="sex", column="sex"), ResidenceComparison(), PhoneComparison(),
            IdentifierComparison()]
