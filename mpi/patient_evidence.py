"""Evidence of whole patients for a review item: the birth date each patient's records agree on.

A review item puts two records of two patients to a person: one pair, more likely one person than not, too
doubtful to link. Its weight reads the two records only. When each patient holds several records, the others say
more. The birth date is the field for which that is safe to read: a name changes in a life (marriage) and so does
an address (a move), consistently in every record made after it, but a birth date does not, so the records of one
person that agree on a date are independent witnesses of it, and one person's records that disagree do so by
independent errors.

So when every record of each patient that holds a full birth date holds the same one (each side's *consensus*),
with at least two such records on both sides, every given name of each patient is one name (a patient whose records
hold two given names may hold a relative's record, its birth date copied from the household: Aria A Dorsey keyed
with her sister Ariana's date sits in Ariana's patient, and her item with her own patient is one person), and the
two consensus dates differ, the hypothesis "one person" must
explain every dated record of one side as an error: at least ``k`` = the fewer of the two sides' dated records. The
pair's own weight counts one such error (the birth date's weight at the level the two dates are at: ``m / u`` of
the model); each further one is as likely again, so the patients' weight is

    weight of the item's pair with each side's consensus date  +  (k - 1) x that date's weight (when it is against)

The coincidence that those ``k`` errors all give one same wrong date is not counted: it would only add evidence
against. A level that weighs for one person (a slip of one digit, day and month transposed) adds nothing: there
several records making the same slip would be a coincidence the model has no figure for. When the patients' weight
puts them below the possible threshold (the model's own: two people more likely than one), the item is not opened:
they are two people of one name (James J Romero born 1991 and another born 1974), which no pair of their records
can tell apart. Nothing is linked by this rule; it only keeps such pairs out of the queue (H-ID-55).

A patient of one dated record (a record on its own, as link-on-write reviews it) gives ``k`` = 1: its pair's weight
is the patients' weight, and the item is opened exactly as before. Pure numpy over a :class:`~mpi.frames.Frame`;
the batch relink (:func:`mpi.linkage.link_frame`) and the Spark relink (:mod:`mpi.spark.relink`) run it on the same
review items.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mpi.frames import Frame
from mpi.model import Model
from mpi.scoring import score_frames

IntArray = NDArray[np.int64]
#: The fewest dated records each patient needs for its consensus date to count as more than one record.
MIN_WITNESSES = 2


def consensus_birth_dates(frame: Frame, labels: IntArray, wanted: IntArray) -> pd.DataFrame:
    """Per patient label of ``wanted`` whose records' full birth dates are all one date, and whose records' given
    names are all one name: ``(year, month, day, witnesses)``, indexed by label (a patient with no full date, or
    with two dates or two given names, is left out: a patient whose records hold two given names may hold a
    relative's record, whose date, a copy of its own patient's, witnesses nothing of the item's person)."""
    rows = np.flatnonzero(np.isin(labels, wanted))
    given = pd.DataFrame({"label": labels[rows], "given": frame["given"][rows]})
    given = given[given["given"] != ""]
    one_name = given.groupby("label")["given"].nunique()
    one_name = one_name.index[one_name.to_numpy() == 1]
    year = frame["birth_year"][rows].astype(np.int64)
    month = frame["birth_month"][rows].astype(np.int64)
    day = frame["birth_day"][rows].astype(np.int64)
    full = (year > 0) & (month > 0) & (day > 0)
    dated = pd.DataFrame({"label": labels[rows][full], "date": (year * 10_000 + month * 100 + day)[full]})
    per = dated.groupby("label")["date"].agg(["nunique", "first", "size"])
    per = per[(per["nunique"] == 1) & per.index.isin(one_name)]
    date = per["first"].to_numpy(dtype=np.int64)
    return pd.DataFrame(
        {
            "year": date // 10_000,
            "month": date // 100 % 100,
            "day": date % 100,
            "witnesses": per["size"].to_numpy(dtype=np.int64),
        },
        index=per.index,
    )


def patients_weight(
    model: Model, frame: Frame, labels: IntArray, left: IntArray, right: IntArray
) -> NDArray[np.float64]:
    """The weight of "one person" for the patients of the pairs ``(left[i], right[i])`` (rows of ``frame``,
    ``labels`` their patients), read with the birth dates of their patients' other records (module docstring):
    NaN where the patients' dates say nothing more than the pair's (fewer than two witnesses on a side, no
    consensus, or one date)."""
    out = np.full(len(left), np.nan)
    birth = model.index_of("birth_date")
    if len(left) == 0 or birth is None:
        return out
    label_left, label_right = labels[left], labels[right]
    consensus = consensus_birth_dates(frame, labels, np.unique(np.concatenate([label_left, label_right])))
    consensus = consensus[consensus["witnesses"] >= MIN_WITNESSES]
    known = np.isin(label_left, consensus.index) & np.isin(label_right, consensus.index)
    items = np.flatnonzero(known)
    if len(items) == 0:
        return out
    side_left = consensus.loc[label_left[items]]
    side_right = consensus.loc[label_right[items]]
    differ = (side_left[["year", "month", "day"]].to_numpy() != side_right[["year", "month", "day"]].to_numpy()).any(
        axis=1
    )
    items, side_left, side_right = items[differ], side_left[differ], side_right[differ]
    if len(items) == 0:
        return out
    # the item's pair as it reads with each side's consensus date
    pair_left, pair_right = frame.take(left[items]), frame.take(right[items])
    for side, dates in ((pair_left, side_left), (pair_right, side_right)):
        for part in ("year", "month", "day"):
            side[f"birth_{part}"] = dates[part].to_numpy(dtype=np.int32)
    scored = score_frames(model, pair_left, pair_right, resolve_ambiguity=False)
    against = np.minimum(scored.field_weights[:, birth].astype(np.float64), 0.0)
    errors = np.minimum(side_left["witnesses"].to_numpy(), side_right["witnesses"].to_numpy())
    out[items] = scored.weight + (errors - 1) * against
    return out


def two_people(model: Model, frame: Frame, labels: IntArray, left: IntArray, right: IntArray) -> NDArray[np.bool_]:
    """Which review items ``(left[i], right[i])`` the birth dates of their patients' records put apart: the
    patients' weight (:func:`patients_weight`) below the possible threshold."""
    threshold = model.possible_threshold
    below = math.log2(threshold / (1.0 - threshold)) if 0.0 < threshold < 1.0 else -math.inf
    weight = patients_weight(model, frame, labels, left, right)
    return ~np.isnan(weight) & (np.nan_to_num(weight, nan=np.inf) < below)


__all__ = ["MIN_WITNESSES", "consensus_birth_dates", "patients_weight", "two_people"]
