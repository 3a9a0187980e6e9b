"""Clustering: pairwise decisions → regional patients, without chaining two people through one weak record.

Naive transitive closure of match links lets one record that half-matches two people join them. Here:

1. the connected components of *match* links (plus manual links) are found;
2. in each component of three or more records, every pair is scored; a component with no *conflict* (a pair the
   evidence says are different people: different valid NHS numbers, field weights adding up against a match, a
   posterior below the possible threshold, or a manual no-match) is one patient. A posterior that is merely low
   (too little evidence for, none adding up against: a *low* conflict) is no conflict when a third record of the
   component that carries the given name and the birth date (a *firm* record, not :func:`mpi.scoring.weak_records`)
   is linked as a match to both: that record vouches for the two on every field that tells relatives apart, as the
   original of two differently corrupted copies does. A chain through a record lacking one of them (a father and a
   son of one name joined through a record without a birth date) still breaks;
3. a component with a conflict is rebuilt greedily: its match links, strongest first (manual links before all),
   join two groups only when no pair across them conflicts.

Everything is pure numpy over record rows; :mod:`mpi.batch` supplies the rows and writes the result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
#: ``conflicts(left_rows, right_rows)`` → how each of those pairs conflicts: :data:`NONE`, :data:`LOW` (a posterior
#: below the possible threshold only) or :data:`AGAINST` (evidence against, a manual no-match); booleans mean
#: :data:`AGAINST`.
ConflictFn = Callable[[IntArray, IntArray], NDArray[np.int8] | NDArray[np.bool_]]
NONE, LOW, AGAINST = 0, 1, 2


def connected_components(size: int, left: IntArray, right: IntArray) -> IntArray:
    """The component label (its smallest row) of every row, over undirected edges ``left[i] — right[i]``."""
    labels = np.arange(size, dtype=np.int64)
    if len(left) == 0:
        return labels
    while True:
        low = np.minimum(labels[left], labels[right])
        before = labels.copy()
        np.minimum.at(labels, left, low)
        np.minimum.at(labels, right, low)
        while True:  # pointer jumping: every row points at its root
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(before, labels):
            return labels


def within_pairs(labels: IntArray, rows: IntArray) -> tuple[IntArray, IntArray]:
    """Every pair of ``rows`` that share a label."""
    order = rows[np.argsort(labels[rows], kind="stable")]
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    lefts, rights = [], []
    for size in np.unique(sizes):
        if size < 2:
            continue
        group = starts[sizes == size]
        a, b = np.triu_indices(int(size), k=1)
        lefts.append(order[(group[:, None] + a).ravel()])
        rights.append(order[(group[:, None] + b).ravel()])
    if not lefts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(lefts), np.concatenate(rights)


def vouched(left: IntArray, right: IntArray, firm: NDArray[np.bool_], pair_left: IntArray,
            pair_right: IntArray) -> NDArray[np.bool_]:
    """Which pairs ``(pair_left[i], pair_right[i])`` have a third, *firm* record linked to both by a link of
    ``left — right``."""
    if len(pair_left) == 0:
        return np.zeros(0, dtype=bool)
    wanted = np.unique(np.concatenate([pair_left, pair_right]))
    near: dict[int, set[int]] = {int(r): set() for r in wanted}
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        if b in near and firm[a]:
            near[b].add(a)
        if a in near and firm[b]:
            near[a].add(b)
    return np.array([bool((near[x] & near[y]) - {x, y}) for x, y in zip(pair_left.tolist(), pair_right.tolist(),
                                                                          strict=True)], dtype=bool)


def cluster(size: int, left: IntArray, right: IntArray, strength: NDArray[np.float64], conflicts: ConflictFn,
            firm: NDArray[np.bool_] | None = None) -> tuple[IntArray, int]:
    """Cluster rows over match links with the integrity check; returns (label per row, components rebuilt).

    Parameters
    ----------
    size
        Number of rows.
    left, right, strength
        Match links and their strength (match weight; manual links ``inf``).
    conflicts
        Says which pairs of rows conflict and how (scores them as needed).
    firm
        Rows carrying the given name and the birth date; a *low* conflict vouched for by a firm row linked to both
        (:func:`vouched`) is no conflict. Without it, every conflict counts.
    """
    labels = connected_components(size, left, right)
    counts = np.bincount(labels, minlength=size)
    big_rows = np.flatnonzero(counts[labels] >= 3)
    if len(big_rows) == 0:
        return labels, 0
    pair_left, pair_right = within_pairs(labels, big_rows)
    kind = np.asarray(conflicts(pair_left, pair_right)).astype(np.int8)
    bad = kind > NONE
    if firm is not None and (kind == LOW).any():
        low = np.flatnonzero(kind == LOW)
        in_low = np.isin(labels[left], np.unique(labels[pair_left[low]]))
        bad[low[vouched(left[in_low], right[in_low], firm, pair_left[low], pair_right[low])]] = False
    if not bad.any():
        return labels, 0
    broken = np.unique(labels[pair_left[bad]])
    conflict_set = {(int(a), int(b)) for a, b in zip(pair_left[bad], pair_right[bad], strict=True)}
    conflict_set |= {(b, a) for a, b in conflict_set}
    in_broken = np.isin(labels[left], broken)
    order = np.argsort(-strength[in_broken], kind="stable")
    edge_left, edge_right = left[in_broken][order], right[in_broken][order]
    broken_rows = np.flatnonzero(np.isin(labels, broken))
    labels[broken_rows] = broken_rows
    members: dict[int, list[int]] = {int(r): [int(r)] for r in broken_rows}
    for a, b in zip(edge_left.tolist(), edge_right.tolist(), strict=True):
        root_a, root_b = int(labels[a]), int(labels[b])
        if root_a == root_b:
            continue
        group_a, group_b = members[root_a], members[root_b]
        if any((x, y) in conflict_set for x in group_a for y in group_b):
            continue
        keep, gone = (root_a, root_b) if root_a < root_b else (root_b, root_a)
        for row in members[gone]:
            labels[row] = keep
        members[keep] = members[keep] + members.pop(gone)
    return labels, int(len(broken))
