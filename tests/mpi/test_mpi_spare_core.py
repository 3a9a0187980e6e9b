"""The relink's spare core (:mod:`mpi.spare_core`): rows split over a forked child give the one call's result."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from sqlalchemy.orm import Session

from bench.mpi_population import make_population
from mpi import spare_core
from mpi.batch import bulk_load, load_table
from mpi.blocking import blocked_pairs
from mpi.frames import frame_from_table
from mpi.linkage import link_frame
from mpi.model import Model
from mpi.scoring import comparison_levels
from mpi.training import train


def _pid_of_each_row(start: int, stop: int) -> np.ndarray:
    return np.full(stop - start, os.getpid(), dtype=np.int64)


def test_rows_are_split_over_a_second_process_only_within_the_spare_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Within :func:`spare_core` the second half of the rows is computed by another process and joined in order;
    outside it, and below :data:`SPLIT_FROM` rows, by this one."""
    monkeypatch.setattr(spare_core, "SPLIT_FROM", 10)
    assert set(spare_core.in_two(_pid_of_each_row, 40).tolist()) == {os.getpid()}
    with spare_core.spare_core():
        split = spare_core.in_two(_pid_of_each_row, 41)
        assert set(spare_core.in_two(_pid_of_each_row, 9).tolist()) == {os.getpid()}  # below the bound
    assert len(split) == 41 and set(split[:20].tolist()) == {os.getpid()}
    assert len(set(split[20:].tolist())) == 1 and split[20] != os.getpid()
    assert not spare_core.splitting


def test_a_child_that_fails_leaves_its_rows_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A split never changes a result: when the child fails, this process computes the child's rows itself."""
    parent = os.getpid()

    def rows(start: int, stop: int) -> np.ndarray:
        if os.getpid() != parent:
            raise RuntimeError("the child fails")
        return np.arange(start, stop)

    monkeypatch.setattr(spare_core, "SPLIT_FROM", 10)
    with spare_core.spare_core():
        assert spare_core.in_two(rows, 30).tolist() == list(range(30))


def test_a_child_that_hangs_is_killed_and_its_rows_computed_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that sends nothing long after this process finished its own half is taken for hung: it is killed
    and its rows computed here, so a relink cannot hang on it (the child here would sleep for ten minutes)."""
    parent = os.getpid()

    def rows(start: int, stop: int) -> np.ndarray:
        if os.getpid() != parent:
            time.sleep(600)
        return np.arange(start, stop)

    monkeypatch.setattr(spare_core, "SPLIT_FROM", 10)
    monkeypatch.setattr(spare_core, "PATIENCE_FLOOR_S", 1.0)
    started = time.monotonic()
    with spare_core.spare_core():
        assert spare_core.in_two(rows, 30).tolist() == list(range(30))
    assert time.monotonic() - started < 300
    assert not spare_core.splitting


def test_training_and_linking_on_the_spare_core_give_the_same_model_and_clusters(
        session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """Comparison levels split over two processes (the bound lowered so that a small population's pairs are split):
    the same levels, the same trained model (its content hash) and the same clusters as in one process."""
    bulk_load(session, make_population(400, seed=5).records)
    session.commit()
    table = load_table(session)

    def relinked() -> tuple[np.ndarray, str, np.ndarray]:
        frame = frame_from_table(table)
        left, right = blocked_pairs(frame)
        model = train(frame, base=Model.default(), records=len(table))
        linkage = link_frame(frame, model, left, right, derive_threshold=True)
        return comparison_levels(model, frame.take(left), frame.take(right)), linkage.model.version, linkage.labels

    levels, version, labels = relinked()
    monkeypatch.setattr(spare_core, "SPLIT_FROM", 500)
    with spare_core.spare_core():
        split_levels, split_version, split_labels = relinked()
    assert len(levels) > 1_000  # split at least once
    np.testing.assert_array_equal(split_levels, levels)
    assert split_version == version
    np.testing.assert_array_equal(split_labels, labels)
