"""Regions generated once per test session: a small one checked message by message, a larger one for statistics."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from priorscan.trusts import TrustRegistry, default_trusts
from regionsynth import RegionRequest, generate_region

AS_OF = date(2025, 6, 30)


@pytest.fixture(scope="session")
def trusts() -> TrustRegistry:
    return default_trusts()


@pytest.fixture(scope="session")
def small_region(tmp_path_factory: pytest.TempPathFactory, trusts: TrustRegistry) -> Path:
    """150 people: every message, resource and file of it is validated (hl7apy takes about 10 ms a message)."""
    out = tmp_path_factory.mktemp("small") / "region"
    generate_region(RegionRequest(out, people=150, seed=11, as_of=AS_OF), trusts, workers=1)
    return out


@pytest.fixture(scope="session")
def large_region(tmp_path_factory: pytest.TempPathFactory, trusts: TrustRegistry) -> Path:
    """3000 people: error rates, population shape and ground-truth consistency."""
    out = tmp_path_factory.mktemp("large") / "region"
    generate_region(RegionRequest(out, people=3000, seed=5, as_of=AS_OF), trusts, workers=0)
    return out
