"""Evidence of whole patients for a review item: the birth date and the given name each patient's records agree on.

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

The given name is read the same way, as a second field (H-ID-59): when each patient's records that hold a given
name all hold one, at least two on both sides, and the two names differ, "one person" needs at least ``k`` = the
fewer of the two sides' named records independent errors of the name, and the patients' weight adds (k - 1) x the
given name's weight at the pair's level, again only a level weighing against (a level the model weighs for one
person, a nickname, adds nothing). Twin sisters Charlotte Z and Leia Z Rivera, born on one day, each held as a
patient of two records, are two people. Unlike a birth date, a given name can change in a life (a preferred name
taken up): one person held as two patients of two records or more under each name, with nothing else (an NHS
number) weighing strongly for one person, is then not put to a steward: the residual risk of H-ID-59. Where both
fields apply, their added weights add (the model's own assumption that fields err independently).

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


def _one_given_name(frame: Frame, labels: IntArray, rows: IntArray) -> pd.DataFrame:
    """Per patient label of ``rows`` whose records' given names (where held) are all one name: ``(given,
    witnesses)``, the witnesses being the records that hold it."""
    given = pd.DataFrame({"label": labels[rows], "given": frame["given"][rows]})
    given = given[given["given"] != ""]
    per = given.groupby("label")["given"].agg(["nunique", "first", "size"])
    per = per[per["nunique"] == 1]
    return pd.DataFrame(
        {"given": per["first"].to_numpy(), "witnesses": per["size"].to_numpy(dtype=np.int64)}, index=per.index
    )


def consensus_given_names(frame: Frame, labels: IntArray, wanted: IntArray) -> pd.DataFrame:
    """Per patient label of ``wanted`` whose records' given names are all one name: ``(given, witnesses)``, indexed
    by label (a patient whose records hold no given name, or two, is left out)."""
    return _one_given_name(frame, labels, np.flatnonzero(np.isin(labels, wanted)))


def consensus_birth_dates(frame: Frame, labels: IntArray, wanted: IntArray) -> pd.DataFrame:
    """Per patient label of ``wanted`` whose records' full birth dates are all one date, and whose records' given
    names are all one name: ``(year, month, day, witnesses)``, indexed by label (a patient with no full date, or
    with two dates or two given names, is left out: a patient whose records hold two given names may hold a
    relative's record, whose date, a copy of its own patient's, witnesses nothing of the item's person)."""
    rows = np.flatnonzero(np.isin(labels, wanted))
    one_name = _one_given_name(frame, labels, rows).index
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


def _both_sides(
    consensus: pd.DataFrame, label_left: IntArray, label_right: IntArray, columns: list[str]
) -> tuple[NDArray[np.bool_], IntArray]:
    """Which items have a consensus of two witnesses or more on both sides, differing in ``columns``; and the
    fewer witnesses of the two sides (0 elsewhere)."""
    consensus = consensus[consensus["witnesses"] >= MIN_WITNESSES]
    known = np.isin(label_left, consensus.index) & np.isin(label_right, consensus.index)
    witnesses = np.zeros(len(label_left), dtype=np.int64)
    items = np.flatnonzero(known)
    if len(items) == 0:
        return known, witnesses
    side_left, side_right = consensus.loc[label_left[items]], consensus.loc[label_right[items]]
    differ = (side_left[columns].to_numpy() != side_right[columns].to_numpy()).any(axis=1)
    known[items] = differ
    witnesses[items] = np.where(
        differ, np.minimum(side_left["witnesses"].to_numpy(), side_right["witnesses"].to_numpy()), 0
    )
    return known, witnesses


def patients_weight(
    model: Model, frame: Frame, labels: IntArray, left: IntArray, right: IntArray
) -> NDArray[np.float64]:
    """The weight of "one person" for the patients of the pairs ``(left[i], right[i])`` (rows of ``frame``,
    ``labels`` their patients), read with the birth dates and the given names of their patients' other records
    (module docstring): NaN where the patients say nothing more than the pair (fewer than two witnesses on a side,
    no consensus, one date and one name, or a given-name level that does not weigh against)."""
    out = np.full(len(left), np.nan)
    birth, given = model.index_of("birth_date"), model.index_of("given")
    if len(left) == 0 or birth is None:
        return out
    label_left, label_right = labels[left], labels[right]
    wanted = np.unique(np.concatenate([label_left, label_right]))
    by_date, date_errors = _both_sides(
        consensus_birth_dates(frame, labels, wanted), label_left, label_right, ["year", "month", "day"]
    )
    by_name = np.zeros(len(left), dtype=bool)
    name_errors = np.zeros(len(left), dtype=np.int64)
    if given is not None:
        by_name, name_errors = _both_sides(
            consensus_given_names(frame, labels, wanted), label_left, label_right, ["given"]
        )
    items = np.flatnonzero(by_date | by_name)
    if len(items) == 0:
        return out
    # the item's pair as it reads with each side's consensus date (its given names are the consensus, or none)
    pair_left, pair_right = frame.take(left[items]), frame.take(right[items])
    dated = by_date[items]
    if dated.any():
        for side, labels_of in ((pair_left, label_left), (pair_right, label_right)):
            dates = consensus_birth_dates(frame, labels, labels_of[items][dated])
            for part in ("year", "month", "day"):
                column = side[f"birth_{part}"].copy()
                column[dated] = dates.loc[labels_of[items][dated], part].to_numpy(dtype=column.dtype)
                side[f"birth_{part}"] = column
    scored = score_frames(model, pair_left, pair_right, resolve_ambiguity=False)
    weight = scored.weight.astype(np.float64)
    weight += (date_errors[items] - 1).clip(0) * np.minimum(scored.field_weights[:, birth].astype(np.float64), 0.0)
    named = by_name[items]
    if given is not None:
        name_against = np.minimum(scored.field_weights[:, given].astype(np.float64), 0.0)
        weight += (name_errors[items] - 1).clip(0) * name_against
        named &= name_against < 0  # a name level weighing for one person (a nickname) says nothing more
    out[items[dated | named]] = weight[dated | named]
    return out


def two_people(model: Model, frame: Frame, labels: IntArray, left: IntArray, right: IntArray) -> NDArray[np.bool_]:
    """Which review items ``(left[i], right[i])`` the birth dates of their patients' records put apart: the
    patients' weight (:func:`patients_weight`) below the possible threshold."""
    threshold = model.possible_threshold
    below = math.log2(threshold / (1.0 - threshold)) if 0.0 < threshold < 1.0 else -math.inf
    weight = patients_weight(model, frame, labels, left, right)
    return ~np.isnan(weight) & (np.nan_to_num(weight, nan=np.inf) < below)


__all__ = ["MIN_WITNESSES", "consensus_birth_dates", "consensus_given_names", "patients_weight", "two_people"]
