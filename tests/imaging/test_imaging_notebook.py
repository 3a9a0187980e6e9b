"""notebooks/dose_overview.ipynb executed as code (nbclient, the venv's ipykernel) against a small synthetic store,
and imaging.analytics, which it reads through."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from imaging_factories import HEAD, HEAD_PHANTOM, CtEvent, ct_rdsr, write
from nbclient import NotebookClient

from imaging import drl_frame, studies_frame
from imaging.adapters import ingest_dicom_file
from priorscan.audit import Agent
from priorscan.db import make_engine, session_factory
from priorscan.trusts import default_trusts

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def build_store(url: str, tmp_path: Path) -> None:
    engine = make_engine(url)
    sessions, trusts, agent = session_factory(engine), default_trusts(), Agent("user", "test")
    people = {"AA000001": ("SMITH^JOHN", "19600101", "M"), "AA000002": ("JONES^MARY", "19850505", "F")}
    studies = [  # (patient id, study uid, events, description)
        ("AA000001", "1.2.3.60.1", [CtEvent("8", "300")], "CT CHEST"),
        ("AA000001", "1.2.3.60.2", [CtEvent("50", "800", region=HEAD, phantom=HEAD_PHANTOM)], "CT HEAD"),
        ("AA000002", "1.2.3.60.3", [CtEvent("7", "250")], "CT CHEST"),
    ]
    for patient_id, uid, events, description in studies:
        total = str(sum(float(e.dlp) for e in events))
        name, born, sex = people[patient_id]
        ds = ct_rdsr(events, dlp_total=total, study_uid=uid, patient_id=patient_id, description=description,
                     name=name, birth_date=born, sex=sex)
        assert ingest_dicom_file(sessions, trusts, write(ds, tmp_path / uid), agent=agent).accepted
    engine.dispose()


def test_studies_frame(sqlite_url: str, tmp_path: Path) -> None:
    build_store(sqlite_url, tmp_path)
    frame = studies_frame(sqlite_url, pseudonym_key=b"k")
    assert len(frame) == 3 and frame["patient"].nunique() == 2
    assert set(frame["drl_category"]) == {"ct-chest", "ct-head"}
    head = frame[frame["drl_category"] == "ct-head"].iloc[0]
    assert head["dlp_drl_ratio"] == pytest.approx(800 / 790) and bool(head["above_drl"])
    assert "AA000001" not in frame.to_string()  # no identifiers in the frame
    assert set(drl_frame()["category"]) >= {"ct-head", "ctpa", "ct-kub"}


def test_notebooks_read_the_store_and_add_up_its_doses(sqlite_url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    build_store(sqlite_url, tmp_path)
    monkeypatch.setenv("PRIORSCAN_DB", sqlite_url)  # the kernel inherits it; the parameter cell is left empty
    texts = {}
    for name in ("dose_overview.ipynb", "cumulative_dose.ipynb"):
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        NotebookClient(notebook, timeout=180, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        texts[name] = "\n".join(str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
                                for cell in notebook.cells if cell.cell_type == "code"
                                for output in cell.get("outputs", []))
        assert any("image/png" in output.get("data", {}) for cell in notebook.cells
                   if cell.cell_type == "code" for output in cell.get("outputs", [])), f"{name} shows no figure"
    assert "3 studies of 2 patients" in texts["dose_overview.ipynb"]
    assert "1.013" in texts["dose_overview.ipynb"]  # the head's median DLP 800 over the DRL 790, in the audit
    # 0.0145 × 300 (chest) + 0.0019 × 800 (head, 16 cm): the first patient's cumulative estimate
    assert "5.87" in texts["cumulative_dose.ipynb"]
