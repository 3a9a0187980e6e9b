"""The relink's spare core (:mod:`mpi.spare_core`): rows split over a forked child give the one call's result."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
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


def test_work_beside_is_done_by_another_process_only_within_the_spare_core() -> None:
    """Within :func:`spare_core`, :func:`beside` computes in a forked child while this process goes on; outside it,
    this process computes when the result is asked for."""
    assert spare_core.beside(os.getpid).result() == os.getpid()
    with spare_core.spare_core():
        pending = spare_core.beside(os.getpid)
        assert os.getpid() != pending.result() > 0
        with spare_core.beside(os.getpid) as unused:  # never asked for: ended with the block
            pass
        assert unused.result() == os.getpid()  # asked for after all: computed here
    assert not spare_core.splitting


def test_work_beside_whose_child_fails_or_hangs_is_done_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that fails, or sends nothing long after the result is asked for, leaves the work to this process
    (the hung child here would sleep for ten minutes)."""
    parent = os.getpid()

    def failing() -> int:
        if os.getpid() != parent:
            raise RuntimeError("the child fails")
        return 7

    def hanging() -> int:
        if os.getpid() != parent:
            time.sleep(600)
        return 8

    monkeypatch.setattr(spare_core, "PATIENCE_FLOOR_S", 1.0)
    started = time.monotonic()
    with spare_core.spare_core():
        assert spare_core.beside(failing).result() == 7
        assert spare_core.beside(hanging).result() == 8
    assert time.monotonic() - started < 300


def test_a_relink_explaining_on_the_spare_core_writes_the_same_links_events_and_review_items(
        store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The relink's blocked pairs found by a forked child while it trains, and its explanations (of every link it
    writes and every review item) by another while it writes the patients: the same trained model, clusters, link
    states, scores and explanations on the records and their link events, and the same review items, as computed in
    this process."""
    from mpi import batch
    from mpi.tables import LinkEvent, ReviewItem, SourceRecord
    from priorscan.db import make_engine, session_factory

    engine = make_engine(store_url)  # both backends (a PostgreSQL connection stays open across the forks)
    session = session_factory(engine)()
    bulk_load(session, make_population(700, seed=5).records)  # enough records to train
    session.commit()
    real = spare_core.beside
    marker = tmp_path / "explained-by"

    def watched(compute: Any) -> Any:
        def compute_and_mark() -> Any:
            with marker.open("a") as out:
                out.write(f"{os.getpid()}\n")
            return compute()
        return real(compute_and_mark)

    def relinked() -> tuple[Any, ...]:
        result = batch.relink(session, seed=3)
        records = session.execute(select(SourceRecord.id, SourceRecord.regional_patient_id, SourceRecord.link_state,
                                         SourceRecord.link_score, SourceRecord.link_weights)
                                  .order_by(SourceRecord.id)).all()
        first_of: dict[str, int] = {}
        clusters = [first_of.setdefault(rid, record_id) for record_id, rid, *_ in records]
        links = [(record_id, state, score, weights) for record_id, _, state, score, weights in records]
        events = sorted((e.source_record_id, e.link_state, e.score, json.dumps(e.weights, sort_keys=True))
                        for e in session.scalars(select(LinkEvent)))
        reviews = sorted((r.source_record_id, r.candidate_record_id, r.score, json.dumps(r.weights, sort_keys=True),
                          r.status) for r in session.scalars(select(ReviewItem)))
        session.rollback()
        assert result.trained
        return result.model_version, clusters, links, events, reviews, result.pairs_scored

    monkeypatch.setattr(batch, "beside", spare_core.Pending)  # computed here
    here = relinked()
    monkeypatch.setattr(batch, "beside", watched)
    apart = relinked()
    children = marker.read_text().split()
    assert len(children) == 2 and str(os.getpid()) not in children  # children blocked and explained
    assert len(here[3]) > 500 and any(weights for *_, weights in here[2])  # links explained
    assert apart == here
    session.close()
    engine.dispose()
