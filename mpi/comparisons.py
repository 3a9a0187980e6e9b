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

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from rapidfuzz import fuzz, process
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

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
    return -1 if n >= PARALLEL_FROM else 1


def similarity(left: Column, right: Column, scorer: Any, where: NDArray[np.bool_] | None = None
               ) -> NDArray[np.float32]:
    """``scorer`` applied to each pair (rapidfuzz ``cpdist``: vectorised, in C), only where ``where`` holds."""
    if where is not None:
        out = np.zeros(len(left), dtype=np.float32)
        idx = np.flatnonzero(where)
        if len(idx):
            out[idx] = similarity(left[idx], right[idx], scorer)
        return out
    if len(left) == 0:
        return np.zeros(0, dtype=np.float32)
    return process.cpdist(left, right, scorer=scorer, dtype=np.float32,  # type: ignore[no-any-return]
                          workers=_workers(len(left)))


def jaro_winkler(left: Column, right: Column, where: NDArray[np.bool_] | None = None) -> NDArray[np.float32]:
    """Jaro–Winkler similarity of each pair (only where ``where`` holds, 0 elsewhere)."""
    return similarity(left, right, JaroWinkler.normalized_similarity, where)


def edit_distance(left: Column, right: Column, where: NDArray[np.bool_] | None = None) -> NDArray[np.int32]:
    """Damerau–Levenshtein distance of each pair (only where ``where`` holds; a large number elsewhere)."""
    if where is not None:
        out = np.full(len(left), 1_000, dtype=np.int32)
        idx = np.flatnonzero(where)
        if len(idx):
            out[idx] = edit_distance(left[idx], right[idx])
        return out
    if len(left) == 0:
        return np.zeros(0, dtype=np.int32)
    return process.cpdist(left, right, scorer=DamerauLevenshtein.distance, dtype=np.int32,  # type: ignore
                          workers=_workers(len(left)))


def pairwise(func: Callable[[str, str], bool], left: Column, right: Column,
             mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``func`` applied to the pairs selected by ``mask`` (False elsewhere); for the rarer, costlier checks."""
    out = np.zeros(len(left), dtype=bool)
    idx = np.flatnonzero(mask)
    if len(idx):
        out[idx] = [func(a, b) for a, b in zip(left[idx], right[idx], strict=True)]
    return out


class Comparison:
    """Base of every comparison: columns read, level labels, and the vectorised level computation."""

    kind: ClassVar[str]
    name: str
    labels: ClassVar[tuple[str, ...]]
    tf_column: ClassVar[str | None] = None  # column whose value frequency adjusts level ``tf_level``
    tf_level: ClassVar[int] = 0
    shared_by_household: ClassVar[bool] = False  # where one lives and how to call them: evidence, not identity
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
        a, b = left["nhs_number"], right["nhs_number"]
        null = ~(left["nhs_valid"] & right["nhs_valid"]) | absent(left, "nhs_number") | absent(right, "nhs_number")
        return _assign([a == b], null)


@dataclass
class FamilyNameComparison(Comparison):
    """Family names: exact; given and family swapped; words shared (double-barrelled, hyphenated, run together);
    close spelling; same sound; distant spelling; else."""

    kind: ClassVar[str] = "family-name"
    labels: ClassVar[tuple[str, ...]] = ("exact", "swapped", "words-shared", "jaro-winkler>=0.92", "phonetic",
                                         "jaro-winkler>=0.80", "else")
    tf_column: ClassVar[str | None] = "family"
    name: str = "family"
    close: float = 0.92
    distant: float = 0.80

    def levels(self, left: Columns, right: Columns) -> Levels:
        a, b = left["family"], right["family"]
        null = absent(left, "family") | absent(right, "family")
        exact = a == b
        swapped = swapped_names(left, right) & ~exact
        rest = ~(null | exact | swapped)
        # only a name of several words (or a pair differing by spaces) can share words without being equal
        shared = pairwise(_words_shared, a, b, rest & (left["family_multi"] | right["family_multi"]))
        jw = jaro_winkler(a, b, rest & ~shared)
        phonetic = (left["family_ph"] == right["family_ph"]) & ~absent(left, "family_ph")
        return _assign([exact, swapped, shared, jw >= self.close, phonetic, jw >= self.distant], null)


def swapped_names(left: Columns, right: Columns, close: float = 0.92) -> NDArray[np.bool_]:
    """Given and family names written the other way round (allowing a slip in each: Jaro–Winkler ≥ ``close``)."""
    cross = ~(absent(left, "given") | absent(right, "family") | absent(left, "family") | absent(right, "given"))
    out = np.zeros(len(cross), dtype=bool)
    idx = np.flatnonzero(cross & (left["given"] != right["given"]))
    if len(idx):
        one = jaro_winkler(left["given"][idx], right["family"][idx]) >= close
        two = jaro_winkler(left["family"][idx], right["given"][idx]) >= close
        out[idx] = one & two
    return out


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
        a, b = left["given"], right["given"]
        null = absent(left, "given") | absent(right, "given")
        exact = a == b
        swapped = swapped_names(left, right) & ~exact
        nickname = nickname_related(left["nick_ids"], right["nick_ids"])
        jw = jaro_winkler(a, b, ~(null | exact | swapped | nickname))
        phonetic = (left["given_ph"] == right["given_ph"]) & ~absent(left, "given_ph")
        initial = (((left["given_len"] == 1) | (right["given_len"] == 1))
                   & (left["given_initial"] == right["given_initial"]))
        middle = ((a == right["middle1"]) | (b == left["middle1"])) & ~null
        return _assign([exact, swapped, nickname, jw >= self.close, phonetic, initial | middle, jw >= self.distant],
                       null)


def nickname_related(left: NDArray[np.int32], right: NDArray[np.int32]) -> NDArray[np.bool_]:
    """Rows where either name (slot 0) is among the other's related names (ids padded with -1)."""
    out = np.zeros(len(left), dtype=bool)
    left_self, right_self = left[:, 0], right[:, 0]
    for slot in range(1, left.shape[1]):
        out |= (left[:, slot] == right_self) | (right[:, slot] == left_self)
    return out & (left_self >= 0)


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
        a, b = left[self.column], right[self.column]
        return _assign([a == b], absent(left, self.column) | absent(right, self.column))


@dataclass
class PostcodeComparison(Comparison):
    """Postcodes: exact; same sector (UK) or one edit apart (elsewhere); same district (UK) or same leading
    characters (elsewhere); else. A non-UK code is compared as the string it was given."""

    kind: ClassVar[str] = "postcode"
    labels: ClassVar[tuple[str, ...]] = ("exact", "sector-or-one-edit", "district-or-prefix", "else")
    tf_column: ClassVar[str | None] = "postcode"
    shared_by_household: ClassVar[bool] = True
    name: str = "postcode"

    def levels(self, left: Columns, right: Columns) -> Levels:
        a, b = left["postcode"], right["postcode"]
        null = absent(left, "postcode") | absent(right, "postcode")
        both_uk = left["postcode_uk"] & right["postcode_uk"]
        exact = a == b
        sector = both_uk & (left["sector"] == right["sector"])
        district = both_uk & (left["district"] == right["district"])
        other = ~both_uk & ~null
        one_edit = other & (edit_distance(a, b, other & ~exact) <= 1)
        prefix = other & pairwise(_same_prefix, a, b, other & ~exact & ~one_edit)
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
    name: str = "address"
    similar: float = 90.0
    partial: float = 70.0

    def levels(self, left: Columns, right: Columns) -> Levels:
        # addresses are stored with their words sorted, so a plain ratio is a token-sort ratio
        a, b = left["address"], right["address"]
        null = absent(left, "address") | absent(right, "address")
        exact = a == b
        rest = ~(null | exact)
        ratio = similarity(a, b, fuzz.ratio, rest)
        maybe_subset = rest & (ratio >= 40) & (ratio < self.similar)
        set_ratio = ratio.copy()
        idx = np.flatnonzero(maybe_subset)
        if len(idx):
            set_ratio[idx] = process.cpdist(a[idx], b[idx], scorer=fuzz.token_set_ratio, dtype=np.float32)
        numbers = pairwise(_same_numbers, a, b, rest & (set_ratio >= self.partial))
        similar = numbers & ((ratio >= self.similar) | (set_ratio >= 99.9))  # or one holds all the other's words
        partial = numbers & (set_ratio >= self.partial)
        return _assign([exact, similar, partial], null)


def _same_numbers(a: str, b: str) -> bool:
    """House and flat numbers agree (a neighbour at 14 is not the person at 12)."""
    na = [w for w in a.split() if any(c.isdigit() for c in w)]
    nb = [w for w in b.split() if any(c.isdigit() for c in w)]
    return not na or not nb or set(na) <= set(nb) or set(nb) <= set(na)


@dataclass
class PhoneComparison(Comparison):
    """Phone numbers (digits): exact; one edit apart; else."""

    kind: ClassVar[str] = "phone"
    labels: ClassVar[tuple[str, ...]] = ("exact", "one-edit", "else")
    shared_by_household: ClassVar[bool] = True
    name: str = "phone"

    def levels(self, left: Columns, right: Columns) -> Levels:
        a, b = left["phone"], right["phone"]
        null = absent(left, "phone") | absent(right, "phone")
        exact = a == b
        return _assign([exact, ~exact & ~null & (edit_distance(a, b, ~exact & ~null) <= 1)], null)


@dataclass
class ResidenceComparison(Comparison):
    """Where the person lives, postcode and address together (they are not independent evidence: a household
    shares both): both agree; the postcode only; the address only; nearby (same sector or district, or an address
    partly alike); else."""

    kind: ClassVar[str] = "residence"
    labels: ClassVar[tuple[str, ...]] = ("postcode-and-address", "postcode", "address", "nearby", "else")
    tf_column: ClassVar[str | None] = "postcode"
    tf_level: ClassVar[int] = 1
    shared_by_household: ClassVar[bool] = True
    name: str = "residence"

    def levels(self, left: Columns, right: Columns) -> Levels:
        postcode = PostcodeComparison().levels(left, right)
        address = AddressComparison().levels(left, right)
        address_agrees = (address == 0) | (address == 1)
        same_postcode = postcode == 0
        nearby = (postcode == 1) | (postcode == 2) | (address == 2)
        return _assign([same_postcode & address_agrees, same_postcode, address_agrees, nearby],
                       (postcode == NULL) & (address == NULL))


def default_comparisons() -> list[Comparison]:
    """The comparisons of priorscan's model, in scoring order."""
    return [NhsNumberComparison(), FamilyNameComparison(), GivenNameComparison(), BirthDateComparison(),
            ExactComparison(name="sex", column="sex"), ResidenceComparison(), PhoneComparison()]
