"""notebooks/mpi_accuracy.ipynb executed as code (nbclient, the venv's ipykernel) against a small linked store with
its truth, through the package front (:func:`mpi.build_report`)."""

from __future__ import annotations

import csv
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from bench.mpi_population import make_population
from mpi import bulk_load, relink
from priorscan.db import make_engine, session_factory

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "mpi_accuracy.ipynb"


def test_notebook_runs_against_the_store(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    population = make_population(400, seed=8)
    engine = make_engine(sqlite_url)
    with session_factory(engine)() as session:
        bulk_load(session, population.records)
        relink(session)
        session.commit()
    engine.dispose()
    with open(tmp_path / "persons.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", "system", "value"])
        writer.writerows(population.truth)
    monkeypatch.setenv("PRIORSCAN_DB", sqlite_url)  # the kernel inherits it; the parameter cell reads the settings
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                   ).execute()
    text = "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.get("outputs", []))
    assert f"{len(population.records)} records" in text
    assert '"suggested_threshold"' in text and "strongest level" in text
    images = sum(1 for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
                 if "image/png" in output.get("data", {}))
    assert images == 5
    assert (tmp_path / "mpi-report" / "summary.json").exists()
