"""Fixtures of the fuzz and fault tests (the project root first on ``sys.path``: see tests/dedupe/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
for _name in ("priorscan", "mpi", "imaging", "dedupe", "api", "regionsynth"):
    if _name in sys.modules and getattr(sys.modules[_name], "__file__", None) is None:
        del sys.modules[_name]
