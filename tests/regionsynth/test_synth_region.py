"""The region as a whole: reproducible byte for byte, and careful with the folder it writes to."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pytest

from priorscan.errors import InputError
from priorscan.trusts import TrustRegistry
from regionsynth import RegionRequest, SynthSettings, generate_region


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_and_as_of_give_byte_identical_output(tmp_path: Path, trusts: TrustRegistry) -> None:
    as_of = date(2024, 2, 29)
    # different worker counts and a tiny spill budget (many sorted runs) must not change a byte
    generate_region(RegionRequest(tmp_path / "a", 300, 7, as_of), trusts, workers=0)
    generate_region(RegionRequest(tmp_path / "b", 300, 7, as_of), trusts, SynthSettings(sort_buffer_bytes=20_000),
                    workers=1)
    first, second = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert len(first) > 100
    manifest = "truth/manifest.json"
    assert {k: v for k, v in first.items() if k != manifest} == {k: v for k, v in second.items() if k != manifest}


def test_the_manifest_is_reproducible_too(tmp_path: Path, trusts: TrustRegistry) -> None:
    for name in ("a", "b"):
        generate_region(RegionRequest(tmp_path / name, 60, 3, date(2025, 1, 1)), trusts, workers=0)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")


def test_another_seed_gives_another_region(tmp_path: Path, trusts: TrustRegistry) -> None:
    for seed in (1, 2):
        generate_region(RegionRequest(tmp_path / str(seed), 60, seed, date(2025, 1, 1)), trusts, workers=0)
    persons = [(tmp_path / s / "truth" / "persons.csv").read_text() for s in ("1", "2")]
    assert persons[0] != persons[1]


def test_a_foreign_folder_is_never_overwritten(tmp_path: Path, trusts: TrustRegistry) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError):
        generate_region(RegionRequest(tmp_path, 10, 1, date(2025, 1, 1)), trusts, workers=0)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_earlier_region_is_replaced(tmp_path: Path, trusts: TrustRegistry) -> None:
    out = tmp_path / "region"
    generate_region(RegionRequest(out, 80, 1, date(2025, 1, 1)), trusts, workers=0)
    generate_region(RegionRequest(out, 20, 1, date(2025, 1, 1)), trusts, workers=0)
    people = (out / "truth" / "people.csv").read_text().splitlines()
    assert len(people) == 21


@pytest.mark.parametrize("people", [0, 2_000_000])
def test_sizes_out_of_range_are_refused(tmp_path: Path, trusts: TrustRegistry, people: int) -> None:
    with pytest.raises(InputError):
        generate_region(RegionRequest(tmp_path / "x", people, 1, date(2025, 1, 1)), trusts, workers=0)
