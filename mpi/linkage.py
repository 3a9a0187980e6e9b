"""Batch linkage as a pure function: normalised records + blocked pairs + model + manual decisions → clusters.

Pairs are scored in chunks by the same vectorised scorer as real time (:func:`mpi.scoring.score_frames`), decided by
the same rules (:func:`mpi.decisions.decide_many`), and clustered with the integrity check of
:mod:`mpi.clustering`; review items of two patients whose records' birth dates put them apart are left out
(:mod:`mpi.patient_evidence`). No database here: :mod:`mpi.batch` loads the rows and writes the result, and the same
function could run on one partition of a larger engine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from mpi.clustering import AGAINST, LOW, cluster
from mpi.decisions import MATCH_CODE, POSSIBLE_CODE, decide_many, derive_match_threshold
from mpi.frames import Frame
from mpi.model import Model
from mpi.patient_evidence import two_people
from mpi.scoring import ScoredPairs, ambiguous_pairs, evidence_against, evidence_apart, score_frames, weak_records

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
CHUNK = 1_000_000
#: The lowest posterior :func:`mpi.decisions.derive_match_threshold` reads.
DERIVATION_FLOOR = 0.98


@dataclass
class Linkage:
    """The result of linking one frame of records."""

    model: Model  # the model the decisions used (its threshold derived here when asked)
    labels: IntArray  # cluster label per row (rows with one label are one person)
    probability: FloatArray  # per row: probability of its strongest match link inside its cluster (nan: none)
    partner: IntArray  # per row: the other row of that link (-1: none), whose pair explains the row's link
    review_left: IntArray
    review_right: IntArray
    review_probability: FloatArray
    review_weight: FloatArray
    pairs_scored: int
    match_links: int
    components_rebuilt: int
    timings: dict[str, float] = field(default_factory=dict)
    # per review item: sent by rule 8 (``could-be-either``), which its explanation names
    review_ambiguous: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    # possible matches not opened: two patients whose records' birth dates or given names put them apart
    # (mpi.patient_evidence)
    reviews_apart: int = 0


def _pair_codes(a: IntArray, b: IntArray, size: int) -> IntArray:
    low, high = np.minimum(a, b), np.maximum(a, b)
    return low * size + high  # type: ignore[no-any-return]


def is_conflict(model: Model, scored: ScoredPairs) -> NDArray[np.bool_]:
    """Pairs that may not share a patient without a person's decision (the cluster integrity rule, see
    :mod:`mpi.clustering`): different valid NHS numbers, weights (all, or the person's own) adding up against, or
    a posterior below the possible threshold (:func:`mpi.scoring.evidence_apart`)."""
    return evidence_apart(model, scored)


def conflict_kind(model: Model, scored: ScoredPairs) -> NDArray[np.int8]:
    """How pairs conflict, for :func:`mpi.clustering.cluster`: evidence against (:func:`mpi.scoring.evidence_against`)
    is :data:`~mpi.clustering.AGAINST`; a posterior merely below the possible threshold is
    :data:`~mpi.clustering.LOW`."""
    against = evidence_against(model, scored)
    return np.where(against, AGAINST, np.where(evidence_apart(model, scored), LOW, 0)).astype(np.int8)


def link_frame(frame: Frame, model: Model, left: IntArray, right: IntArray, *,
               manual_match: tuple[IntArray, IntArray] | None = None,
               manual_no_match: tuple[IntArray, IntArray] | None = None, chunk: int = CHUNK,
               derive_threshold: bool = False) -> Linkage:
    """Score the blocked pairs ``(left[i], right[i])`` of ``frame`` and cluster the records.

    With ``derive_threshold``, the model's match threshold is first derived from the posteriors of these very
    pairs (:func:`mpi.decisions.derive_match_threshold`): one scoring pass serves both; the model used is returned
    in :attr:`Linkage.model`. Only pairs at or above the possible threshold are kept from each chunk (below it a
    pair is no match whatever the rules say, and the threshold derivation reads only posteriors above its floor),
    so memory follows the probable pairs, not the blocked ones.
    """
    started = time.perf_counter()
    size = frame.size
    floor = min(model.possible_threshold, DERIVATION_FLOOR)
    kept: list[tuple[IntArray, IntArray, ScoredPairs]] = []
    for start in range(0, len(left), chunk):
        a, b = left[start:start + chunk], right[start:start + chunk]
        scored = score_frames(model, frame.take(a), frame.take(b), resolve_ambiguity=False)
        scored.levels = scored.levels[:0]  # only the decisions' inputs are kept
        scored.field_weights = scored.field_weights[:0]
        keep = (scored.probability >= floor) | scored.nhs_verified_same  # one person whatever the probability
        kept.append((a[keep], b[keep], scored.subset(keep)))
        del scored
    if kept:
        p_left = np.concatenate([k[0] for k in kept])
        p_right = np.concatenate([k[1] for k in kept])
        probable = ScoredPairs.concatenate([k[2] for k in kept])
    else:
        p_left = p_right = np.zeros(0, dtype=np.int64)
        probable = score_frames(model, frame.take(p_left), frame.take(p_right))
    kept.clear()
    # pairs in one canonical order (by their rows), so that ties between equal weights are broken the same way
    # whatever order the pairs were found in: the Spark engine, which finds them partition by partition, gets the
    # same clusters, partners and review items (:mod:`mpi.spark`)
    canonical = np.lexsort((p_right, p_left))
    p_left, p_right, probable = p_left[canonical], p_right[canonical], probable.subset(canonical)
    if derive_threshold:
        threshold = derive_match_threshold(probable.probability)
        model = model.evolve(match_threshold=threshold,
                             training={**model.training, "match_threshold_derived_from_pairs": int(len(left))})
    # a record without a given name is checked against all its probable partners at once, across chunks
    probable.ambiguous = ambiguous_pairs(model, frame.take(p_left), frame.take(p_right), probable.undistinguished
                                         & (probable.probability >= model.possible_threshold), probable.probability)
    codes = decide_many(probable, model)
    is_match, is_possible = codes == MATCH_CODE, codes == POSSIBLE_CODE
    m_left, m_right = p_left[is_match], p_right[is_match]
    m_prob, m_weight = probable.probability[is_match], probable.weight[is_match]
    p_left, p_right = p_left[is_possible], p_right[is_possible]
    p_prob, p_weight = probable.probability[is_possible], probable.weight[is_possible]
    p_ambiguous = probable.ambiguous[is_possible]
    del probable, codes
    scored_at = time.perf_counter()

    forbidden = np.zeros(0, dtype=np.int64)
    decided = np.zeros(0, dtype=np.int64)
    if manual_no_match is not None and len(manual_no_match[0]):
        forbidden = np.unique(_pair_codes(*manual_no_match, size))
        keep = ~np.isin(_pair_codes(m_left, m_right, size), forbidden)
        m_left, m_right, m_prob, m_weight = m_left[keep], m_right[keep], m_prob[keep], m_weight[keep]
    edge_left, edge_right, strength = m_left, m_right, m_weight.astype(np.float64)
    if manual_match is not None and len(manual_match[0]):
        edge_left = np.concatenate([edge_left, manual_match[0]])
        edge_right = np.concatenate([edge_right, manual_match[1]])
        strength = np.concatenate([strength, np.full(len(manual_match[0]), np.inf)])
        decided = _pair_codes(*manual_match, size)
    decided = np.concatenate([decided, forbidden])
    order = np.lexsort((np.maximum(edge_left, edge_right), np.minimum(edge_left, edge_right)))
    edge_left, edge_right, strength = edge_left[order], edge_right[order], strength[order]

    def conflicts(a: IntArray, b: IntArray) -> NDArray[np.int8]:
        out = np.zeros(len(a), dtype=np.int8)
        for start in range(0, len(a), chunk):
            sa, sb = a[start:start + chunk], b[start:start + chunk]
            out[start:start + chunk] = conflict_kind(model, score_frames(model, frame.take(sa), frame.take(sb),
                                                                         resolve_ambiguity=False))
        if len(forbidden):
            out[np.isin(_pair_codes(a, b, size), forbidden)] = AGAINST
        return out

    labels, rebuilt = cluster(size, edge_left, edge_right, strength, conflicts, firm=~weak_records(frame, model))
    clustered_at = time.perf_counter()

    probability = np.full(size, -1.0)
    partner = np.full(size, -1, dtype=np.int64)
    inside = labels[m_left] == labels[m_right]
    # each row's strongest link inside its cluster: both ends of every link, the strongest last for each row
    rows = np.concatenate([m_left[inside], m_right[inside]])
    others = np.concatenate([m_right[inside], m_left[inside]])
    strength = np.concatenate([m_weight[inside], m_weight[inside]])
    order = np.lexsort((strength, rows))
    last = np.r_[rows[order][1:] != rows[order][:-1], True] if len(order) else np.zeros(0, dtype=bool)
    best = order[last]
    partner[rows[best]] = others[best]
    probability[rows[best]] = np.concatenate([m_prob[inside], m_prob[inside]])[best]
    probability[probability < 0] = np.nan
    # possible matches, and match links the integrity check refused, between different patients go to review
    r_left = np.concatenate([p_left, m_left[~inside]])
    r_right = np.concatenate([p_right, m_right[~inside]])
    r_prob = np.concatenate([p_prob, m_prob[~inside]])
    r_weight = np.concatenate([p_weight, m_weight[~inside]])
    r_ambiguous = np.concatenate([p_ambiguous, np.zeros(int((~inside).sum()), dtype=bool)])
    apart = labels[r_left] != labels[r_right]
    if len(decided):
        apart &= ~np.isin(_pair_codes(r_left, r_right, size), decided)
    r_left, r_right, r_prob, r_weight = r_left[apart], r_right[apart], r_prob[apart], r_weight[apart]
    r_ambiguous = r_ambiguous[apart]
    # one review per pair of patients: the strongest pair
    order = np.argsort(-r_weight, kind="stable")
    patient_pairs = _pair_codes(labels[r_left[order]], labels[r_right[order]], size)
    _, first = np.unique(patient_pairs, return_index=True)
    pick = order[first]
    # two patients whose records each agree on a birth date or a given name, and differ on it, are two people
    # (H-ID-55, H-ID-59)
    apart = two_people(model, frame, labels, r_left[pick], r_right[pick])
    pick = pick[~apart]
    return Linkage(model=model, labels=labels, probability=probability, partner=partner, review_left=r_left[pick],
                   review_right=r_right[pick],
                   review_probability=r_prob[pick], review_weight=r_weight[pick], pairs_scored=int(len(left)),
                   match_links=int(len(m_left)), components_rebuilt=rebuilt,
                   timings={"score_s": scored_at - started, "cluster_s": clustered_at - scored_at,
                            "total_s": time.perf_counter() - started}, review_ambiguous=r_ambiguous[pick],
                   reviews_apart=int(apart.sum()))
