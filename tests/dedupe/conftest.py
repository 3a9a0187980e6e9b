"""Fixtures of the dedupe tests: the trusts, a session on each backend, a live server with a bearer token.

The test folders are named after the packages they test (``tests/dedupe``, ``tests/mpi`` ...). With ``tests/`` on
``sys.path`` (pytest puts it there for ``tests/conftest.py``), Python would import those folders as namespace
packages in place of the real ones whenever the project root is not on ``sys.path`` too, and ``from dedupe import``
would fail. The project root goes first here, and a package already shadowed is forgotten so that the next import
finds the real one. (A ``pythonpath = ["."]`` in pytest's configuration would make this unnecessary.)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
for _name in ("priorscan", "mpi", "imaging", "dedupe", "api", "regionsynth"):
    if _name in sys.modules and getattr(sys.modules[_name], "__file__", None) is None:
        del sys.modules[_name]

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from sqlalchemy import Engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from priorscan.db import session_factory  # noqa: E402
from priorscan.trusts import TrustRegistry, default_trusts  # noqa: E402


@pytest.fixture(scope="session")
def trusts() -> TrustRegistry:
    return default_trusts()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session on each backend (SQLite and PostgreSQL)."""
    with session_factory(engine)() as session:
        yield session
