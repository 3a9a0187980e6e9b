"""Where a record goes: the linking rules of every write path in one pure function (:func:`place`).

Link-on-write (a new record, an update of a known one, on either store) scores the record against the members of
its candidate patients (:class:`mpi.index_store.ClusterScores`) and asks :func:`place` where it belongs, given the
manual decisions that name it. The identity operations that a feed or a person asks for (merge, link, relink) join
patients by decision, not by score; :func:`nhs_numbers_disagree` is the rule they must keep. The batch relink
(:mod:`mpi.batch`) decides the same pairs with the same scorer and decision rules (:func:`mpi.decisions.decide_many`)
and the same integrity check (:func:`mpi.linkage.is_conflict`), over every pair at once.

The rules:

- a record joins an existing regional patient only on a *match* with one of its records and when no record of
  that patient conflicts with it (a different valid, verified NHS number, a manual no-match, a pair weighing
  against a match): one weak middle record never chains two people together; among several such patients, the
  one with the strongest pair;
- a manual match sticks: the patient holding a record a person matched it with is joined whatever the scores;
  a manual no-match keeps it out of that record's patient;
- otherwise the best *possible* match (a match breaking a patient's integrity counts as possible) is reviewed:
  the record stays alone, with a review item;
- with neither, the record stays alone: state ``match`` (with its own patient), or ``no-match`` when a person
  separated it from someone.

"Alone" means the record's present patient if it has no other active member, else a new one (the caller knows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mpi.decisions import MATCH_CODE, POSSIBLE_CODE
from mpi.engine import MATCH, NO_MATCH, POSSIBLE, PairScore
from mpi.index_store import ClusterScores


@dataclass(frozen=True)
class Placement:
    """Where a record goes.

    ``join`` is the regional patient to join, or None when the record stays alone (its own patient). ``score`` is
    the pair the link records (the best match, or the possible match under review). ``review`` is the possible
    match to put to a person: (the other record's id, the pair's score).
    """

    state: str  # match | possible-match | no-match
    join: str | None
    score: PairScore | None
    review: tuple[int, PairScore] | None

    @property
    def probability(self) -> float | None:
        return self.score.probability if self.score else None

    def target(self, previous: str | None, *, alone: bool, new_id: str) -> str:
        """The regional patient the record ends in: the one it joins, else its present one when it is that
        patient's only active member (``alone``), else ``new_id``."""
        if self.join is not None:
            return self.join
        return previous if previous is not None and alone else new_id


def place(scores: ClusterScores, manual: Mapping[int, str]) -> Placement:
    """Where a scored record goes, by the rules above (``manual``: the other record of each manual decision
    naming it, with the decision)."""
    best: tuple[str, int] | None = None
    possible: int | None = None
    weight = scores.scored.weight if scores.scored is not None else np.zeros(0)
    for regional_id, rows in scores.groups().items():
        if any(manual.get(scores.flat[i][1]) == NO_MATCH for i in rows):
            continue
        top = max(rows, key=lambda i: weight[i])
        if any(manual.get(scores.flat[i][1]) == MATCH for i in rows):
            return Placement(MATCH, regional_id, scores.pair(top), None)
        code = int(scores.codes[top])
        intact = not scores.conflict[rows].any()
        if code == MATCH_CODE and intact:
            if best is None or weight[top] > weight[best[1]]:
                best = (regional_id, top)
        elif code >= POSSIBLE_CODE:  # a match that breaks the cluster's integrity is reviewed
            if possible is None or weight[top] > weight[possible]:
                possible = top
    if best is not None:
        return Placement(MATCH, best[0], scores.pair(best[1]), None)
    if possible is not None:
        score = scores.pair(possible)
        return Placement(POSSIBLE, None, score, (scores.flat[possible][1], score))
    return Placement(NO_MATCH if NO_MATCH in manual.values() else MATCH, None, None, None)


def link_changed(previous: str | None, target: str, *, state: str, old_state: str | None,
                 manual_changed: bool) -> bool:
    """Whether a placement changes the record's link (and so is recorded as a link event)."""
    return previous != target or old_state != state or manual_changed


def nhs_numbers_disagree(first: set[str], second: set[str]) -> bool:
    """Whether two patients' valid NHS numbers say they are different people: each holds a number the other
    lacks (a patient without a valid number, or whose numbers the other already holds, adds no conflict). Such
    patients become one only by a person's decision."""
    return bool(first - second) and bool(second - first)


__all__ = ["Placement", "link_changed", "nhs_numbers_disagree", "place"]
