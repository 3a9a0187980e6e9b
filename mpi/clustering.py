"""Clustering: pairwise decisions → regional patients, without chaining two people through one weak record.

Naive transitive closure of match links lets one record that half-matches two people join them. Here:

1. the connected components of *match* links (plus manual links) are found;
2. in each component of three or more records, every pair is scored; a component with no *conflict* (a pair the
   evidence says are different people: different valid NHS numbers, field weights adding up against a match, a
   posterior below the possible threshold, or a manual no-match) is one patient;
3. a component with a conflict is rebuilt greedily: its match links, strongest first (manual links before all),
   join two groups only when no pair across them conflicts.

Everything is pure numpy over record rows; :mod:`mpi.batch` supplies the rows and writes the result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
#: ``conflicts(left_rows, right_rows)`` → which of those pairs conflict.
ConflictFn = Callable[[IntArray, IntArray], NDArray[np.bool_]]


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


def cluster(size: int, left: IntArray, right: IntArray, strength: NDArray[np.float64], conflicts: ConflictFn
            ) -> tuple[IntArray, int]:
    """Cluster rows over match links with the integrity check; returns (label per row, components rebuilt).

    Parameters
    ----------
    size
        Number of rows.
    left, right, strength
        Match links and their strength (match weight; manual links ``inf``).
    conflicts
        Says which pairs of rows conflict (scores them as needed).
    """
    labels = connected_components(size, left, right)
    counts = np.bincount(labels, minlength=size)
    big_rows = np.flatnonzero(counts[labels] >= 3)
    if len(big_rows) == 0:
        return labels, 0
    pair_left, pair_right = within_pairs(labels, big_rows)
    bad = conflicts(pair_left, pair_right)
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
