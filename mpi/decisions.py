"""Decisions: match, possible match or no match for a scored pair, and the NHS-number rules on top of the weights.

The thresholds are the model's posterior probabilities (see :mod:`mpi.model`): *match* at or above
``match_threshold``, *possible match* at or above ``possible_threshold``, else *no match*. On top of the weights:

1. Two different valid NHS numbers that are both verified (status 01) are never linked automatically, nor
   proposed for review: *no match* (a hard conflict).
2. Two different valid NHS numbers not both verified weigh strongly against a link and can at most be a
   *possible match* (a person decides).
3. The same valid NHS number is the strongest evidence but never enough alone: without agreement on family name,
   given name or birth date the pair is at most a *possible match* (a number keyed into another patient's
   record). A number that fails the Modulus 11 check carries no weight at all.
4.–6. (Retired.) Twins, a parent and a child of one name, and relatives who share a home are no longer told
   apart by hand rules: the model learns how the people of one home look to each other (how often they share a
   family name, a birth date, a first name, a sex: ``u_household``, and the share of one person among pairs at
   one home), and weighs the person's own fields against the household rather than against strangers
   (:mod:`mpi.model`, "Households"). Twins are kept apart, or sent to review, by the twin rate the store shows.
7. What a household shares (postcode, address, phone) can support a link but never make one against the person's
   own identifiers: when the weights of NHS number, names, birth date and sex add up against a match, the pair
   is *no match* however much the residence agrees. At one home this is the pair's own weight (the person's
   fields there are already weighed against the household).
8. No given name to compare (or only its initial) and no NHS number agreeing leaves only what a same-sex twin
   shares (family name, birth date, sex, residence, phone): nothing tells the person from a twin. No birth date to
   compare leaves only what a father and a son of one name share (names, sex, residence, phone). When the record
   lacking the given name, all but its initial, or the birth date is also probable with a record of someone else
   whom the evidence keeps apart from its partner (the other twin; a parent of the same name), it could belong to
   either: at most a *possible match*, unless the pair is a match even knowing the record is at most one of them
   (:func:`mpi.scoring.exclusive_probability`: the pair's odds against the odds of every partner kept apart from
   its own; a record equally like two twins falls below one half, one near-certain with one person and a bare
   possible with another stays a match).

0. The same valid NHS number, verified (status 01, traced on the Personal Demographics Service) on both records, is
   one person: *match*, whatever the weights and the rules below, and from the first record on (it needs no
   trained model). Only a person's decision parts such records. The one exception is rule 3's case, a verified
   number on a record agreeing on neither name nor birth date: that is a *possible match* whatever the weights
   (a person decides; the records are neither merged nor left apart silently).

Manual decisions, which override all of this, are applied by the service and the batch relink, not here.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mpi.model import Model
from mpi.scoring import PairScore, ScoredPairs

MATCH = "match"
POSSIBLE = "possible-match"
NO_MATCH = "no-match"

#: Codes of :func:`decide_many`.
NO_MATCH_CODE, POSSIBLE_CODE, MATCH_CODE = 0, 1, 2
STATES = (NO_MATCH, POSSIBLE, MATCH)


def derive_match_threshold(probabilities: NDArray[np.float64], *, target_precision: float = 0.999,
                           floor: float = 0.98, ceiling: float = 0.999) -> float:
    """The lowest match threshold at which the model expects the precision of automatic links to reach the target.

    Among pairs linked at threshold *t*, the expected share of true matches is the mean posterior probability of
    those pairs. Over the scored blocked pairs, the threshold is lowered from ``ceiling`` while that expected
    precision stays at or above ``target_precision``, never below ``floor`` (a pair the model gives less than 98%
    is not linked automatically whatever the rest look like: the mean hides the doubtful tail).
    """
    p = np.sort(probabilities[probabilities >= floor])[::-1]
    if len(p) == 0:
        return ceiling
    expected_precision = np.cumsum(p) / np.arange(1, len(p) + 1)
    ok = np.flatnonzero(expected_precision >= target_precision)
    if len(ok) == 0:
        return ceiling
    return float(min(ceiling, max(floor, p[ok[-1]])))


def decide_many(scored: ScoredPairs, model: Model) -> NDArray[np.int8]:
    """The decision code of every pair (0 no match, 1 possible match, 2 match)."""
    p = scored.probability
    codes = np.where(p >= model.match_threshold, MATCH_CODE,
                     np.where(p >= model.possible_threshold, POSSIBLE_CODE, NO_MATCH_CODE)).astype(np.int8)
    capped = scored.nhs_different | scored.nhs_unsupported | scored.ambiguous
    codes[capped] = np.minimum(codes[capped], POSSIBLE_CODE)
    codes[scored.hard_conflict | (scored.personal_weight < 0)] = NO_MATCH_CODE
    verified = scored.nhs_verified_same
    codes[verified & ~scored.nhs_unsupported] = MATCH_CODE
    codes[verified & scored.nhs_unsupported] = POSSIBLE_CODE
    return codes


def decide(score: PairScore, model: Model) -> str:
    """match / possible-match / no-match for one scored pair (the same rules as :func:`decide_many`)."""
    if score.nhs_verified_same:
        return POSSIBLE if score.guard == "nhs-number-unsupported" else MATCH
    if score.hard_conflict:
        return NO_MATCH
    if score.personal_weight < 0:
        return NO_MATCH
    if score.probability >= model.match_threshold and score.guard is None:
        return MATCH
    if score.probability >= model.possible_threshold:
        return POSSIBLE
    return NO_MATCH
