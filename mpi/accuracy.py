"""Accuracy figures for the integration team: what the charts of ``priorscan evaluate --report`` show, as data.

Pure functions over the model, scored pairs, cluster labels and labelled pairs; no database, no files (the
report, :mod:`mpi.report`, reads the store and draws). Nothing here holds a name or an NHS number: pairs are
source record ids, and what a chart shows is counts, weights and probabilities.

- :func:`model_levels`: m and u per comparison level (what the model believes of each level);
- :func:`weight_histogram`: how the blocked pairs' match weights spread, with the thresholds;
- :func:`threshold_curve`: precision and recall of "link at or above *t*" over labelled pairs, for every *t*;
- :func:`suggested_threshold`: the lowest threshold whose labelled precision reaches the target;
- :func:`cluster_sizes` and :func:`linkability`: records per regional patient; records that could not be
  linked to anyone, and the fields they lack;
- :func:`sample_near_threshold`: pairs to label, drawn near the match threshold where labels teach most.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mpi.model import Model


def model_levels(model: Model) -> list[dict[str, Any]]:
    """Per comparison: its levels with m, u (and u among the people of one home, where learnt) and the weight."""
    out = []
    for comparison, m, u, table in zip(model.comparisons, model.m, model.u, model.weight_tables(), strict=True):
        household = model.u_household.get(comparison.name)
        out.append({"comparison": comparison.name, "levels": [
            {"label": label, "m": float(mi), "u": float(ui), "weight": float(w),
             "u_household": float(household[i]) if household else None}
            for i, (label, mi, ui, w) in enumerate(zip(comparison.labels, m, u, table, strict=True))]})
    return out


def weight_histogram(weights: NDArray[np.float64], *, bins: int = 60) -> dict[str, Any]:
    """Counts of match weights in equal bins (edges included)."""
    finite = weights[np.isfinite(weights)]
    if len(finite) == 0:
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(finite, bins=bins)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


@dataclass(frozen=True)
class ThresholdCurve:
    """Precision and recall over labelled pairs if every pair at or above ``thresholds[i]`` were linked."""

    thresholds: NDArray[np.float64]
    precision: NDArray[np.float64]
    recall: NDArray[np.float64]
    labelled: int
    same_person: int


def threshold_curve(probability: NDArray[np.float64], same_person: NDArray[np.bool_]) -> ThresholdCurve:
    """Precision and recall against the threshold over labelled pairs (``same_person[i]`` is pair ``i``'s label).

    Recall is over the labelled pairs that are one person: on a sample drawn near the threshold it says how many
    of *those* a threshold would link, not the store's recall.
    """
    order = np.argsort(-probability, kind="stable")
    p, truth = probability[order], same_person[order].astype(np.float64)
    linked = np.arange(1, len(p) + 1, dtype=np.float64)
    true_linked = np.cumsum(truth)
    positives = max(float(truth.sum()), 1.0)
    # one point per distinct probability: the last pair of a run of equal probabilities
    last = np.r_[p[1:] != p[:-1], True] if len(p) else np.zeros(0, dtype=bool)
    return ThresholdCurve(thresholds=p[last], precision=(true_linked / linked)[last],
                          recall=(true_linked / positives)[last], labelled=int(len(p)),
                          same_person=int(truth.sum()))


def suggested_threshold(curve: ThresholdCurve, *, target_precision: float = 0.999,
                        floor: float = 0.5) -> float | None:
    """The lowest threshold (not below ``floor``) at which the labelled precision still reaches the target; None
    when no threshold does or nothing is labelled."""
    ok = (curve.precision >= target_precision) & (curve.thresholds >= floor)
    if not ok.any():
        return None
    # thresholds fall along the curve: the last one that still meets the target, with all above it meeting it too
    failing = np.flatnonzero(~ok & (curve.thresholds >= floor))
    candidates = np.flatnonzero(ok)
    if len(failing):
        candidates = candidates[candidates < failing[0]]
    return float(curve.thresholds[candidates[-1]]) if len(candidates) else None


def cluster_sizes(labels: Sequence[Any]) -> dict[int, int]:
    """How many regional patients hold each number of records."""
    _, per_patient = np.unique(np.asarray(labels, dtype=object).astype(str), return_counts=True)
    sizes, patients = np.unique(per_patient, return_counts=True)
    return {int(s): int(n) for s, n in zip(sizes, patients, strict=True)}


#: Fields whose absence leaves a record hard to link, in the order a chart lists them.
LINKING_FIELDS = ("nhs_number", "family", "given", "birth_date", "postcode", "address")


def linkability(present: Mapping[str, NDArray[np.bool_]], alone: NDArray[np.bool_]) -> dict[str, Any]:
    """Records alone in their regional patient, and for each field how many records lack it (all, and alone).

    ``present[field][i]`` says whether record ``i`` holds ``field``; ``alone[i]`` whether it is the only record of
    its regional patient (nobody linked to it: a new person, or a record too thin to link).
    """
    records = len(alone)
    lacking = {name: {"all": int((~present[name]).sum()), "alone": int((~present[name] & alone).sum())}
               for name in LINKING_FIELDS if name in present}
    thin = np.zeros(records, dtype=bool)
    if "birth_date" in present and "family" in present:
        thin = ~present["birth_date"] | ~present["family"]
    return {"records": records, "alone": int(alone.sum()), "lacking": lacking,
            "too_thin_to_link": int(thin.sum()), "too_thin_and_alone": int((thin & alone).sum())}


def sample_near_threshold(probability: NDArray[np.float64], count: int, *, threshold: float,
                          rng: np.random.Generator, low: float = 0.05) -> NDArray[np.int64]:
    """Up to ``count`` pairs to label, drawn evenly over the match weight between the probabilities ``low`` and
    ``threshold``'s mirror above it: labels near the threshold say most about where it should be."""
    weight = np.log2(np.clip(probability, 1e-12, 1 - 1e-12) / np.clip(1 - probability, 1e-12, None))
    t = float(np.log2(threshold / (1 - threshold)))
    bottom = float(np.log2(low / (1 - low)))
    band = np.flatnonzero((weight >= bottom) & (weight <= 2 * t - bottom))
    if len(band) <= count:
        return band.astype(np.int64)
    # stratify by weight so a band crowded at one end still yields pairs along the whole of it
    strata = np.digitize(weight[band], np.linspace(bottom, 2 * t - bottom, 11))
    chosen: list[int] = []
    per_stratum = max(1, count // 10)
    for stratum in np.unique(strata):
        members = band[strata == stratum]
        chosen.extend(rng.choice(members, size=min(per_stratum, len(members)), replace=False).tolist())
    rest = np.setdiff1d(band, chosen)
    if len(chosen) < count and len(rest):
        chosen.extend(rng.choice(rest, size=min(count - len(chosen), len(rest)), replace=False).tolist())
    return np.asarray(sorted(chosen[:count]), dtype=np.int64)
