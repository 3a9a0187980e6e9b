"""``priorscan synth`` end to end, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from synth_feeds import read_csv

from priorscan.cli import CliContext, build_parser
from priorscan.errors import InputError
from priorscan.settings import Settings
from regionsynth.cli import run_synth
from tests.fixed_dates import AS_OF


def _priorscan() -> list[str]:
    script = Path(sys.executable).parent / "priorscan"
    return [str(script)] if script.exists() else [sys.executable, "-m", "priorscan.cli"]


def test_synth_writes_a_region(tmp_path: Path) -> None:
    out = tmp_path / "x"
    result = subprocess.run([*_priorscan(), "synth", "--people", "200", "--out", str(out), "--seed", "1",
                             "--as-of", AS_OF.isoformat()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "wrote a synthetic region" in result.stdout
    persons = read_csv(out / "truth" / "persons.csv")
    assert persons and set(persons[0]) == {"person_id", "system", "value"}
    assert list(out.glob("hl7/*/adt.hl7")) and list(out.glob("fhir/*/*")) and list(out.glob("dicom/*/*"))
    assert {p.name for p in (out / "truth").iterdir()} >= {"persons.csv", "people.csv", "studies.csv", "repeats.csv",
                                                          "merges.csv", "manifest.json"}


def test_synth_refuses_a_bad_as_of_date(tmp_path: Path) -> None:
    args = build_parser().parse_args(["synth", "--people", "5", "--out", str(tmp_path / "y"), "--as-of", "30/06/2025"])
    with pytest.raises(InputError, match="--as-of"):
        run_synth(args, CliContext(Settings()))
    assert not (tmp_path / "y").exists()
