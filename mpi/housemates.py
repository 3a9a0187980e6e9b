"""A birth date held by a housemate: evidence across the records of one home (hazard H-ID-48).

A record's birth date is sometimes another member of the household's: a baby registered with its mother's date of
birth, a form filled in for the whole family with one date copied down, a receptionist picking the wrong person of
the home from a list. The record then disagrees with the person's other records on the birth date, and the
disagreement says little about whether it is the same person: the date is simply not theirs.

What the store shows of it, per record (:func:`housemate_dates`): among the active records at its home (the same
normalised postcode and address) holding its very birth date, there is a record of *another* given name (its first
given name differing, and its sound too, so ``ANN`` and ``ANNA`` are one name; an initial alone is nobody else's
name), and *no other* record of its own given name (nor of its initial alone): the date is held at the home by
someone else, and by no other record of this person there. A nickname (``BILL`` for ``WILLIAM``) counts as
another name here; how often that misleads is in what the model learns. Twins
registered once each at home show the same thing; how often, and so how much a pair whose birth dates disagree
while one side's is a housemate's still says, is learnt by the model like every level (the birth-date comparison's
``housemate`` level: m by EM, u against random pairs and against the people of one home,
:mod:`mpi.training`), not set by hand.

The flag is computed over a set of records, identically by every engine: the batch relink over every active
record (:func:`with_housemate_dates` on its table), link-on-write over the records at the homes and birth dates of
a probe and its candidates (one indexed query, :meth:`mpi.index_store.IndexStore.housemate_flags`), and the Spark
relink per group of one home and birth date (:func:`mpi.spark.relink.with_housemate_dates`). Each calls
:func:`housemate_dates` on the records of whole groups, so the flag depends only on the group's records.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

#: The frame column holding the flag.
COLUMN = "dob_housemate"
#: The columns :func:`housemate_dates` reads.
READS = ("postcode", "address", "dob", "given", "given_ph")


def _valid(dob: str) -> bool:
    try:
        date.fromisoformat(dob)
    except ValueError:
        return False
    return True


def eligible(address: NDArray[Any], dob: NDArray[Any]) -> NDArray[np.bool_]:
    """Records that have a home to share a birth date in: an address, and a whole, valid birth date."""
    codes, values = pd.factorize(np.asarray(dob, dtype=object))
    valid = np.fromiter((isinstance(v, str) and len(v) == 10 and _valid(v) for v in values), dtype=bool,
                        count=len(values))
    return (np.asarray(address, dtype=object) != "") & (codes >= 0) & valid[np.maximum(codes, 0)]


def housemate_dates(postcode: NDArray[Any], address: NDArray[Any], dob: NDArray[Any], given: NDArray[Any],
                    given_ph: NDArray[Any]) -> NDArray[np.bool_]:
    """Per record: its birth date is held at its home by a record of another given name, and by no other record of
    its own given name (columns of normalised match fields, missing values ``""``; see the module's docstring)."""
    n = len(dob)
    out = np.zeros(n, dtype=bool)
    given = np.asarray(given, dtype=object)
    usable = np.flatnonzero(eligible(address, dob) & (given != ""))
    if len(usable) < 2:
        return out
    first = given[usable].astype(str)
    # a given name of one letter (an initial) may be anyone's of that initial: never another person's name, and
    # the person's own when it is their initial
    initial = np.char.str_len(first.astype("U")) == 1
    ph = np.asarray(given_ph, dtype=object)[usable].astype(str)
    name = np.where(initial, "i:" + first, np.where(ph != "", "p:" + ph, "g:" + first))
    home = (np.asarray(postcode, dtype=object)[usable].astype(str) + "|" + np.asarray(address, dtype=object)[
        usable].astype(str) + "|" + np.asarray(dob, dtype=object)[usable].astype(str))
    group, _ = pd.factorize(home)
    group_key = pd.Series(group).astype(str).to_numpy(dtype=object)
    named = np.bincount(group, weights=(~initial).astype(np.float64)).astype(np.int64)  # whole names per group
    same, _ = pd.factorize(group_key + "#" + name.astype(object))
    holders_of_name = np.bincount(same)
    # records of one letter at the group, per initial: ``i:`` + the initial is the name key of such a record
    own_initial, _ = pd.factorize(group_key + "#i:" + np.asarray([v[:1] for v in first], dtype=object))
    initials_held = np.bincount(own_initial, weights=initial.astype(np.float64), minlength=len(first))
    out[usable] = (~initial & (holders_of_name[same] == 1) & (initials_held[own_initial] == 0)
                   & (named[group] - holders_of_name[same] >= 1))
    return out


def with_housemate_dates(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (every record of a store, or of whole groups of one home and birth date) with :data:`COLUMN`."""
    table[COLUMN] = housemate_dates(*(table[name].fillna("").astype(object).to_numpy() if name in table
                                      else np.full(len(table), "", dtype=object) for name in READS))
    return table


def of_records(records: Sequence[Any]) -> NDArray[np.bool_]:
    """:func:`housemate_dates` of :class:`mpi.normalise.MatchRecord` objects."""
    columns = [np.asarray(["" if getattr(r, name) is None else getattr(r, name) for r in records], dtype=object)
               for name in READS]
    return housemate_dates(*columns)
