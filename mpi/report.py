"""``priorscan evaluate --report DIR``: the accuracy charts for the integration team, as static images.

Reads the store (the active model, every active record's match fields, the blocked pairs, the regional patients,
the stewards' decisions, and a ground truth when given), computes the figures of :mod:`mpi.accuracy` and writes:

- ``m_u.png``: m and u (and u among the people of one home) per comparison level, and the weight of each level;
- ``weights.png``: the histogram of the blocked pairs' match weights, with the match and possible thresholds;
- ``threshold.png``: precision and recall against the threshold over the labelled pairs (stewards' decisions on
  review items, and every blocked pair when a truth file is given), with the threshold the labels suggest;
- ``clusters.png``: regional patients by number of records;
- ``linkability.png``: records alone in their regional patient, and the fields that records lack;
- ``summary.json``: the figures behind the charts.

With ``sample``, up to that many pairs near the match threshold, not yet decided nor in one regional patient, are
opened as review items: the stewards label them on the review page (``/ui/review``), and the next report's
precision and recall against the threshold read their decisions.

Pseudonymised: nothing written holds a name, an NHS number, a hospital number or an address: only counts,
weights, probabilities, comparison levels and the model's version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from mpi.accuracy import (
    cluster_sizes,
    linkability,
    model_levels,
    sample_near_threshold,
    suggested_threshold,
    threshold_curve,
    weight_histogram,
)
from mpi.model import Model
from mpi.store_writer import store_writer_for
from mpi.tables import ManualDecision, ReviewItem, SourceRecord

#: Blocked pairs scored for the weight histogram and the truth's curve (a uniform sample above this).
MAX_PAIRS = 500_000


def _scored_pairs(model: Model, frame: Any, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from mpi.scoring import score_frames

    if len(left) == 0:
        return np.zeros(0), np.zeros(0)
    scored = score_frames(model, frame.take(left), frame.take(right), resolve_ambiguity=False)
    return scored.weight, scored.probability


def build_report(session: Session, out: Path, *, truth: Mapping[tuple[str, str], str] | None = None,
                 sample: int = 0, seed: int = 0) -> dict[str, Any]:
    """Write the charts and ``summary.json`` into ``out``; open ``sample`` review items to label. Returns the
    summary."""
    from mpi.batch import load_table
    from mpi.blocking import blocked_pairs
    from mpi.frames import frame_from_table
    from mpi.scoring import explanations
    from mpi.service import active_model
    from priorscan.db import utcnow

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    model = active_model(session)
    table = load_table(session)
    summary: dict[str, Any] = {"model_version": model.version, "model": model.describe(),
                               "match_threshold": model.match_threshold,
                               "possible_threshold": model.possible_threshold, "records": int(len(table)),
                               "comparisons": model_levels(model)}
    if table.empty:
        _draw(out, summary, None, None, None)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    frame = frame_from_table(table)
    left, right = blocked_pairs(frame)
    summary["blocked_pairs"] = int(len(left))
    if len(left) > MAX_PAIRS:
        pick = np.sort(rng.choice(len(left), MAX_PAIRS, replace=False))
        left, right = left[pick], right[pick]
    weight, probability = _scored_pairs(model, frame, left, right)
    summary["weights"] = weight_histogram(weight)

    regional = table["regional_patient_id"].to_numpy(dtype=object)
    row_of = {int(r): i for i, r in enumerate(table["record_id"].tolist())}
    # labels: the stewards' decisions, and the truth over every scored pair when there is one
    decided = session.execute(select(ManualDecision.record_a_id, ManualDecision.record_b_id,
                                     ManualDecision.decision)).all()
    pairs = [(row_of[a], row_of[b], d == "match") for a, b, d in decided if a in row_of and b in row_of]
    label_p = np.zeros(0)
    label_y = np.zeros(0, dtype=bool)
    if pairs:
        a = np.asarray([p[0] for p in pairs], dtype=np.int64)
        b = np.asarray([p[1] for p in pairs], dtype=np.int64)
        _, label_p = _scored_pairs(model, frame, a, b)
        label_y = np.asarray([p[2] for p in pairs], dtype=bool)
    summary["labelled_by_stewards"] = len(pairs)
    if truth:
        keys = session.execute(select(SourceRecord.id, SourceRecord.namespace, SourceRecord.local_id)
                               .where(SourceRecord.active.is_(True))).all()
        person_of = {row_of[rid]: truth.get((ns, local)) for rid, ns, local in keys if rid in row_of}
        people = np.asarray([person_of.get(i) for i in range(len(table))], dtype=object)
        known = (people[left] != None) & (people[right] != None)  # noqa: E711 (elementwise over objects)
        label_p = np.concatenate([label_p, probability[known]])
        label_y = np.concatenate([label_y, people[left][known] == people[right][known]])
        summary["labelled_by_truth"] = int(known.sum())
    curve = threshold_curve(label_p, label_y.astype(bool)) if len(label_p) else None
    if curve is not None:
        summary["labelled"] = {"pairs": curve.labelled, "same_person": curve.same_person,
                               "suggested_threshold": suggested_threshold(curve)}

    sizes = cluster_sizes(regional)
    counts = np.bincount(np.unique(regional.astype(str), return_inverse=True)[1])
    alone = counts[np.unique(regional.astype(str), return_inverse=True)[1]] == 1
    present = {"nhs_number": frame["nhs_valid"].astype(bool), "family": frame["family"] != "",
               "given": frame["given"] != "", "birth_date": frame["birth_year"] > 0,
               "postcode": frame["postcode"] != "", "address": frame["address"] != ""}
    summary["cluster_sizes"] = sizes
    summary["linkability"] = linkability(present, alone)

    if sample > 0:
        summary["sample_opened"] = _open_sample(session, model, frame, table, left, right, probability, sample,
                                                rng, explanations, utcnow())
    _draw(out, summary, curve, sizes, summary["linkability"])
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _open_sample(session: Session, model: Model, frame: Any, table: Any, left: np.ndarray, right: np.ndarray,
                 probability: np.ndarray, count: int, rng: np.random.Generator, explain: Any, now: Any) -> int:
    """Open review items for pairs near the threshold that no one has decided and that are in two patients."""
    regional = table["regional_patient_id"].to_numpy(dtype=object)
    ids = table["record_id"].to_numpy()
    taken = {(min(a, b), max(a, b)) for a, b in session.execute(select(ManualDecision.record_a_id,
                                                                       ManualDecision.record_b_id)).all()}
    taken |= {(min(a, b), max(a, b)) for a, b in session.execute(
        select(ReviewItem.source_record_id, ReviewItem.candidate_record_id)
        .where(ReviewItem.status == "open")).all()}
    apart = regional[left] != regional[right]
    free = np.asarray([(min(int(ids[a]), int(ids[b])), max(int(ids[a]), int(ids[b]))) not in taken
                       for a, b in zip(left.tolist(), right.tolist(), strict=True)], dtype=bool)
    candidates = np.flatnonzero(apart & free)
    chosen = candidates[sample_near_threshold(probability[candidates], count, threshold=model.match_threshold,
                                              rng=rng)]
    if not len(chosen):
        return 0
    explained = explain(model, frame.take(left[chosen]), frame.take(right[chosen]))
    writer = store_writer_for(session)
    for i, e in zip(chosen.tolist(), explained, strict=True):
        writer.insert_review({"source_record_id": int(ids[left[i]]), "candidate_record_id": int(ids[right[i]]),
                              "candidate_regional_id": regional[right[i]], "score": float(probability[i]),
                              "weights": {**e, "guard": "labelled-sample"}, "model_version": model.version,
                              "status": "open", "created_at": now})
    return int(len(chosen))


def _draw(out: Path, summary: dict[str, Any], curve: Any, sizes: dict[int, int] | None,
          linkable: dict[str, Any] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comparisons = summary["comparisons"]
    figure, axes = plt.subplots(len(comparisons), 1, figsize=(9, 2.2 * len(comparisons)), squeeze=False)
    for axis, comparison in zip(axes[:, 0], comparisons, strict=True):
        labels = [level["label"] for level in comparison["levels"]]
        x = np.arange(len(labels))
        axis.bar(x - 0.27, [level["m"] for level in comparison["levels"]], 0.27, label="m (same person)")
        axis.bar(x, [level["u"] for level in comparison["levels"]], 0.27, label="u (different people)")
        household = [level["u_household"] for level in comparison["levels"]]
        if all(h is not None for h in household):
            axis.bar(x + 0.27, household, 0.27, label="u at one home (relatives)")
        axis.set_yscale("log")
        axis.set_ylim(1e-9, 1.5)
        axis.set_xticks(x, labels, fontsize=7)
        axis.set_title(comparison["comparison"], fontsize=9, loc="left")
    widest = max(axes[:, 0], key=lambda a: len(a.get_legend_handles_labels()[0]))
    figure.legend(*widest.get_legend_handles_labels(), fontsize=7, loc="upper right")
    figure.suptitle(f"m and u per comparison level, model {summary['model_version']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(out / "m_u.png", dpi=110)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(9, 4))
    histogram = summary.get("weights") or {"edges": [], "counts": []}
    if histogram["counts"]:
        edges = np.asarray(histogram["edges"])
        axis.bar(edges[:-1], histogram["counts"], width=np.diff(edges), align="edge", color="#005eb8")
        axis.set_yscale("log")
    for name, colour in (("match_threshold", "#007f3b"), ("possible_threshold", "#8a5300")):
        p = summary[name]
        axis.axvline(np.log2(p / (1 - p)), color=colour, linestyle="--", label=f"{name.replace('_', ' ')} {p:.4g}")
    axis.set_xlabel("match weight (bits)")
    axis.set_ylabel("blocked pairs")
    axis.legend(fontsize=8)
    axis.set_title("Match weights of the blocked pairs", fontsize=10)
    figure.tight_layout()
    figure.savefig(out / "weights.png", dpi=110)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(9, 4))
    if curve is not None and curve.labelled:
        weights = np.log2(np.clip(curve.thresholds, 1e-12, 1 - 1e-12) / np.clip(1 - curve.thresholds, 1e-12, None))
        axis.plot(weights, curve.precision, label="precision", color="#007f3b")
        axis.plot(weights, curve.recall, label="recall (of the labelled pairs that are one person)",
                  color="#005eb8")
        suggested = summary.get("labelled", {}).get("suggested_threshold")
        if suggested is not None:
            axis.axvline(np.log2(suggested / (1 - suggested)), color="#c0392b", linestyle="--",
                         label=f"suggested threshold {suggested:.4g}")
        axis.set_title(f"Precision and recall against the threshold, {curve.labelled} labelled pairs", fontsize=10)
    else:
        axis.text(0.5, 0.5, "no labelled pairs yet: settle review items, or give --truth", ha="center",
                  va="center", transform=axis.transAxes)
    p = summary["match_threshold"]
    axis.axvline(np.log2(p / (1 - p)), color="#212b32", linestyle=":", label=f"match threshold {p:.4g}")
    axis.set_xlabel("threshold (match weight, bits)")
    axis.set_ylim(-0.02, 1.02)
    axis.legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    figure.savefig(out / "threshold.png", dpi=110)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(9, 4))
    if sizes:
        axis.bar(list(sizes), list(sizes.values()), color="#005eb8")
        axis.set_xticks(list(sizes))
        axis.set_yscale("log")
    axis.set_xlabel("records per regional patient")
    axis.set_ylabel("regional patients")
    axis.set_title("Cluster sizes", fontsize=10)
    figure.tight_layout()
    figure.savefig(out / "clusters.png", dpi=110)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(9, 4))
    if linkable:
        names = list(linkable["lacking"])
        x = np.arange(len(names))
        axis.bar(x - 0.2, [linkable["lacking"][n]["all"] for n in names], 0.4, label="records lacking it")
        axis.bar(x + 0.2, [linkable["lacking"][n]["alone"] for n in names], 0.4,
                 label="of those, alone in their regional patient")
        axis.set_xticks(x, names)
        axis.set_title(f"Unlinked and unlinkable records: {linkable['alone']} of {linkable['records']} records alone; "
                       f"{linkable['too_thin_to_link']} lack a family name or birth date", fontsize=9)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "linkability.png", dpi=110)
    plt.close(figure)
