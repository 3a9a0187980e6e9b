"""The active matching model: read once per process and version, its version checked at most once a second."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from mpi.engine import Model
from mpi.tables import MatchModel

_MODEL_CACHE: dict[str, Model] = {}

_ACTIVE_VERSION: list[tuple[str | None, float, int]] = []

MODEL_CHECK_S = 1.0


def forget_active_model() -> None:
    """Read the active model's version again on next use (after training in this process)."""
    _ACTIVE_VERSION.clear()


_DEFAULT_MODEL = Model.default()


def active_model(session: Session) -> Model:
    """The active trained model (cached per version), or the default model before any training."""
    # the version only, at most once a second: the parameters (with term-frequency tables) are read once per
    # process and version; a newly trained model takes effect everywhere within a second
    now = time.monotonic()
    if _ACTIVE_VERSION and now - _ACTIVE_VERSION[0][1] < MODEL_CHECK_S and _ACTIVE_VERSION[0][2] == id(session.bind):
        version = _ACTIVE_VERSION[0][0]
    else:
        version = session.scalars(select(MatchModel.version).where(MatchModel.active.is_(True))
                                  .order_by(MatchModel.created_at.desc())).first()
        _ACTIVE_VERSION[:] = [(version, now, id(session.bind))]
    if version is None:
        return _DEFAULT_MODEL
    model = _MODEL_CACHE.get(version)
    if model is None:
        parameters = session.scalars(select(MatchModel.parameters).where(MatchModel.version == version)).one()
        model = Model.from_dict(parameters)
        _MODEL_CACHE.clear()
        _MODEL_CACHE[version] = model
    return model


__all__ = ["MODEL_CHECK_S", "active_model", "forget_active_model"]
