"""The package's public front: every exported name exists, and the engine's front keeps the service's interface."""

from __future__ import annotations

import mpi
import mpi.engine


def test_every_exported_name_exists() -> None:
    assert sorted(mpi.__all__) == sorted(set(mpi.__all__))
    for name in mpi.__all__:
        assert getattr(mpi, name) is not None, name


def test_engine_front_names() -> None:
    for name in ("MatchRecord", "PairScore", "to_match_record", "blocking_keys", "Model", "decide"):
        assert name in mpi.engine.__all__
    model = mpi.engine.Model.default()
    assert 0 < model.possible_threshold < model.match_threshold < 1
    assert set(model.to_dict()) >= {"version", "comparisons", "prior", "match_threshold", "possible_threshold"}
