"""The matching engine's front: what :mod:`mpi.service` and the batch relink use.

The engine is split by concept, as Splink's linker is: :mod:`mpi.normalise` (records → :class:`MatchRecord`),
:mod:`mpi.comparisons` (declarative comparison levels), :mod:`mpi.model` (m, u, prior, term frequencies,
thresholds), :mod:`mpi.training` (EM), :mod:`mpi.blocking` (indexed keys), :mod:`mpi.scoring` (the one vectorised
scorer) and :mod:`mpi.decisions` (thresholds and the NHS-number rules).
"""

from __future__ import annotations

from mpi.blocking import MAX_BLOCK_SIZE, blocking_keys
from mpi.decisions import MATCH, NO_MATCH, POSSIBLE, decide, decide_many
from mpi.model import Model
from mpi.normalise import MatchRecord, to_match_record
from mpi.scoring import PairScore, ScoredPairs, score_candidates, score_frames

__all__ = [
    "MATCH",
    "MAX_BLOCK_SIZE",
    "NO_MATCH",
    "POSSIBLE",
    "MatchRecord",
    "Model",
    "PairScore",
    "ScoredPairs",
    "blocking_keys",
    "decide",
    "decide_many",
    "score_candidates",
    "score_frames",
    "to_match_record",
]
