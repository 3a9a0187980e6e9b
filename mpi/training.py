"""Training: term frequencies, u from random pairs, m by expectation maximisation over blocked pairs.

Everything is learnt from the store's own records, with no labelled pairs:

1. *Term frequencies* of family names, given names and postcodes: how many records hold each value.
2. *u* (the chance of each level between different people) from random pairs of records: almost every random
   pair is two different people, so level frequencies among them estimate u directly.
3. *m* (the chance of each level for the same person) and the share of matches among blocked pairs by EM, with u
   held fixed (as Splink does): the E-step gives each pair its probability of being a match from the current m,
   the M-step re-estimates m as the level frequencies weighted by those probabilities. EM runs over the distinct
   level patterns with their counts, so millions of pairs cost no more than a few thousand patterns.
4. The *prior* (the chance that two random records are the same person) = expected matching pairs among blocked
   pairs / all pairs of records.

Estimates are smoothed towards the prior-knowledge values (a few dozen pseudo-observations), so a small store
still gets a sensible model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mpi.frames import Frame
from mpi.model import M_FLOOR, U_FLOOR, Model
from mpi.scoring import comparison_levels

log = logging.getLogger(__name__)

TF_COLUMNS = ("family", "given", "postcode")
#: Pseudo-observations pulling estimates towards prior knowledge.
SMOOTHING = 20.0


def term_frequencies(frame: Frame, columns: tuple[str, ...] = TF_COLUMNS,
                     min_count: int = 2) -> tuple[dict[str, dict[str, int]], int]:
    """Counts of values held by at least ``min_count`` records, per column, and the number of records."""
    tables: dict[str, dict[str, int]] = {}
    for column in columns:
        values, counts = np.unique(frame[column][frame[column] != ""].astype(str), return_counts=True)
        keep = counts >= min_count
        tables[column] = {str(v): int(c) for v, c in zip(values[keep], counts[keep], strict=True)}
    return tables, frame.size


def random_pairs(size: int, count: int, rng: np.random.Generator) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``count`` random pairs of distinct rows."""
    if size < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    left = rng.integers(0, size, count)
    right = rng.integers(0, size - 1, count)
    right = right + (right >= left)  # never a row with itself
    return left, right


def _smoothed(counts: NDArray[np.float64], prior: list[float], floor: float) -> list[float]:
    total = counts.sum()
    estimate = (counts + SMOOTHING * np.asarray(prior)) / (total + SMOOTHING)
    estimate = np.maximum(estimate, floor)
    return [float(x) for x in estimate / estimate.sum()]


def level_counts(levels: NDArray[np.int8], levels_count: int, weights: NDArray[np.float64] | None = None
                 ) -> NDArray[np.float64]:
    present = levels >= 0
    return np.bincount(levels[present].astype(np.int64), weights=None if weights is None else weights[present],
                       minlength=levels_count).astype(np.float64)


def estimate_u(model: Model, frame: Frame, *, pairs: int = 1_000_000, seed: int = 0) -> list[list[float]]:
    """u per comparison level from random pairs of ``frame``'s records."""
    n = frame.size
    count = min(pairs, n * (n - 1) // 2)
    left, right = random_pairs(n, count, np.random.default_rng(seed))
    levels = comparison_levels(model, frame.take(left), frame.take(right))
    return [_smoothed(level_counts(levels[:, i], c.levels_count), model.u[i], U_FLOOR)
            for i, c in enumerate(model.comparisons)]


@dataclass
class EMResult:
    m: list[list[float]]
    match_share: float  # share of matches among the pairs EM ran over
    iterations: int
    converged: bool


def expectation_maximisation(model: Model, levels: NDArray[np.int8], u: list[list[float]], *,
                             max_iterations: int = 50, tolerance: float = 1e-5) -> EMResult:
    """m and the match share by EM over ``levels`` (pairs × comparisons), u fixed."""
    patterns, counts = np.unique(levels, axis=0, return_counts=True)
    counts = counts.astype(np.float64)
    m = [list(x) for x in model.m]
    share = 0.01
    log_u = [np.log(np.maximum(np.asarray(x), U_FLOOR)) for x in u]
    converged = False
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 (read after the loop)
        log_bf = np.zeros(len(patterns))
        for i in range(patterns.shape[1]):
            column = patterns[:, i]
            present = column >= 0
            log_m = np.log(np.maximum(np.asarray(m[i]), M_FLOOR))
            log_bf[present] += log_m[column[present]] - log_u[i][column[present]]
        logit = np.log(share / (1 - share)) + log_bf
        posterior = 1.0 / (1.0 + np.exp(-np.clip(logit, -500, 500)))
        weighted = posterior * counts
        new_share = float(np.clip(weighted.sum() / counts.sum(), 1e-9, 1 - 1e-9))
        new_m = [_smoothed(level_counts(patterns[:, i], c.levels_count, weighted), model.m[i], M_FLOOR)
                 for i, c in enumerate(model.comparisons)]
        change = max(abs(a - b) for old, new in zip(m, new_m, strict=True) for a, b in zip(old, new, strict=True))
        m, share = new_m, new_share
        if change < tolerance:
            converged = True
            break
    return EMResult(m=m, match_share=share, iterations=iteration, converged=converged)


def train(frame: Frame, pairs: tuple[NDArray[np.int64], NDArray[np.int64]], *, base: Model | None = None,
          u_pairs: int = 1_000_000, em_pairs: int = 2_000_000, seed: int = 0) -> Model:
    """A model trained on ``frame``'s records, with EM over the blocked ``pairs`` (a sample when many).

    Parameters
    ----------
    frame
        Every record to link (normalised).
    pairs
        The blocked pairs ``(left rows, right rows)`` the linker will score.
    base
        Comparisons, thresholds and starting values (the default model when ``None``).
    """
    base = base or Model.default()
    tf, total = term_frequencies(frame)
    u = estimate_u(base, frame, pairs=u_pairs, seed=seed)
    left, right = pairs
    n_pairs = len(left)
    if n_pairs > em_pairs:
        pick = np.random.default_rng(seed + 1).choice(n_pairs, em_pairs, replace=False)
        left, right = left[pick], right[pick]
    levels = comparison_levels(base, frame.take(left), frame.take(right))
    start = Model(comparisons=base.comparisons, m=base.m, u=u, prior=base.prior)
    result = expectation_maximisation(start, levels, u)
    all_pairs = frame.size * (frame.size - 1) / 2
    expected_matches = result.match_share * n_pairs
    prior = float(np.clip(expected_matches / max(all_pairs, 1.0), 1e-12, 0.5))
    training: dict[str, Any] = {
        "kind": "em", "records": int(frame.size), "blocked_pairs": int(n_pairs), "em_pairs": int(len(left)),
        "u_pairs": int(min(u_pairs, all_pairs)), "em_iterations": result.iterations, "em_converged": result.converged,
        "match_share_blocked": result.match_share, "expected_matching_pairs": expected_matches,
    }
    log.info("trained on %d records: %d blocked pairs, EM %d iterations, prior %.3g", frame.size, n_pairs,
             result.iterations, prior)
    return Model(comparisons=base.comparisons, m=result.m, u=u, prior=prior, match_threshold=base.match_threshold,
                 possible_threshold=base.possible_threshold, tf=tf, tf_total=total, training=training)
