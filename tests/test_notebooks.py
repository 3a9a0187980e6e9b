"""The analysts' notebooks, executed as ``make notebooks`` does (papermill), against a small synthetic region.

Every notebook in ``notebooks/`` must run without error, show at least one figure, and show no name, NHS number or
hospital number: what leaves the store is pseudonymised.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.fixed_dates import AS_OF

ROOT = Path(__file__).resolve().parent.parent


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notebook_runner", ROOT / "scripts" / "notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _runner()


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    work = tmp_path_factory.mktemp("notebooks")
    url = runner.build_region(work, people=120, seed=5, as_of=AS_OF)
    return url, work


def _identifiers(truth: Path) -> list[str]:
    """Every NHS number, hospital number and name of the region (long enough not to occur by chance)."""
    found: set[str] = set()
    with (truth / "persons.csv").open(newline="") as handle:
        found |= {row["value"] for row in csv.DictReader(handle) if len(row["value"]) >= 6}
    with (truth / "people.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            for column in ("given", "middle", "family", "previous_family"):
                for word in (row.get(column) or "").split():
                    if len(word) >= 6:
                        found.add(word)
    return sorted(found)


@pytest.mark.parametrize("notebook", runner.notebooks(), ids=lambda p: p.name)
def test_notebook_runs_shows_figures_and_no_identifiers(notebook: Path, region: tuple[str, Path]) -> None:
    url, work = region
    executed = runner.execute(notebook, work / "executed", {"db_url": url})
    assert runner.figures(executed) >= 1, f"{notebook.name} shows no figure"
    shown = runner.output_text(executed)
    leaked = [value for value in _identifiers(work / "region" / "truth")
              if re.search(rf"(?<![\w]){re.escape(value)}(?![\w])", shown)]
    assert not leaked, f"{notebook.name} shows identifiers: {leaked[:5]}"


@pytest.mark.postgres
def test_a_notebook_runs_against_postgresql_by_url(pg_url: str, tmp_path: Path) -> None:
    """The analysts point a notebook at the production store by its URL (papermill parameter ``db_url``)."""
    url = runner.build_region(tmp_path, people=40, seed=6, as_of=AS_OF, url=pg_url)
    notebook = next(p for p in runner.notebooks() if p.name == "dose_overview.ipynb")
    executed = runner.execute(notebook, tmp_path / "executed", {"db_url": url})
    assert runner.figures(executed) >= 1
    leaked = [value for value in _identifiers(tmp_path / "region" / "truth")
              if re.search(rf"(?<![\w]){re.escape(value)}(?![\w])", runner.output_text(executed))]
    assert not leaked


def test_the_analysts_extract_as_parquet(region: tuple[str, Path], tmp_path: Path) -> None:
    import contextlib
    import io

    import pandas as pd

    from priorscan.cli import main

    url, work = region
    key = tmp_path / "key"
    key.write_bytes(b"a-key-of-at-least-sixteen-bytes")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--db", url, "export", "analytics", "--out", str(tmp_path / "x"), "--pseudonym-key-file",
                     str(key)]) == 0
    studies = pd.read_parquet(tmp_path / "x" / "studies.parquet")
    repeats = pd.read_parquet(tmp_path / "x" / "repeats.parquet")
    alerts = pd.read_parquet(tmp_path / "x" / "alerts.parquet")
    assert len(studies) > 100 and {"patient", "trust", "modality", "body_region", "effective_dose_msv",
                                   "drl_category", "scanner", "protocol", "sex", "age_band"} <= set(studies.columns)
    assert set(repeats["patient"]) <= set(studies["patient"])  # one key: the tables join on the pseudonym
    assert set(alerts["patient"].dropna()) <= set(studies["patient"]) | set(alerts["patient"].dropna())
    assert {"status", "reason_code", "dose_avoided_msv", "across_trusts"} <= set(alerts.columns)
    text = "\n".join(frame.to_csv() for frame in (studies, repeats, alerts))
    assert not [v for v in _identifiers(work / "region" / "truth") if v in text]
    again = tmp_path / "y"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["--db", url, "export", "analytics", "--out", str(again), "--format", "csv",
                     "--pseudonym-key-file", str(key)]) == 0
    assert set(pd.read_csv(again / "studies.csv")["patient"]) == set(studies["patient"])  # same key, same names
