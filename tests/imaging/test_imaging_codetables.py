"""imaging.codetables: NICIP, SNOMED CT and LOINC Playbook style CSV files, and the curated map shipped as data."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from imaging.codetables import CURATED_MAP, LOINC, NICIP, SNOMED, canonical_system, default_code_table, load_code_table
from imaging.procedures import normalise_description
from priorscan.errors import ConfigurationError


def test_curated_rows_agree_with_their_own_display_text() -> None:
    """Each curated row's explicit attributes say what its display text says (a check on the curation)."""
    with CURATED_MAP.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    for row in rows:
        read = normalise_description(row["display"], row["modality"])
        assert read.body_region == row["body_region"], row
        if row["laterality"]:
            assert read.laterality in (row["laterality"], None), row


@pytest.mark.parametrize(("system", "expected"), [
    ("SCT", SNOMED), ("http://snomed.info/sct", SNOMED), ("LN", LOINC), ("http://loinc.org", LOINC),
    ("NICIP", NICIP), ("urn:nhs:nicip", NICIP), ("99LOCAL", "99LOCAL"), (None, "")])
def test_canonical_system(system: str | None, expected: str) -> None:
    assert canonical_system(system) == expected


def test_default_table_finds_codes_with_and_without_their_system() -> None:
    table = default_code_table()
    assert table.lookup("SCT", "71651007").body_region == "breast"
    assert table.lookup(None, "24725-4").body_region == "head"  # unambiguous without a system
    assert table.lookup("LN", "no-such-code") is None


def test_nicip_style_file(tmp_path: Path) -> None:
    path = tmp_path / "nicip.csv"
    path.write_text("NICIP Code,NICIP Short Name\nXWRIL,XR Wrist Lt\nCCAPC,CT Chest abdomen and pelvis with contrast\n"
                    "ZZZZZ,Something unreadable\n", encoding="utf-8")
    table = load_code_table(path)
    wrist = table.lookup("NICIP", "XWRIL")
    assert (wrist.modality, wrist.body_region, wrist.laterality) == ("XR", "wrist", "left")
    cap = table.lookup("NICIP", "CCAPC")
    assert (cap.modality, cap.body_region, cap.contrast) == ("CT", "chest-abdomen-pelvis", True)
    assert table.lookup("NICIP", "ZZZZZ").body_region is None  # kept, but normalises to unknown


def test_snomed_style_file_with_explicit_columns(tmp_path: Path) -> None:
    path = tmp_path / "sct.tsv"
    path.write_text("conceptId\tterm\tbody_region\tlaterality\n12345\tSomething imaged\tknee\tright\n",
                    encoding="utf-8")
    entry = load_code_table(path).lookup("http://snomed.info/sct", "12345")
    assert (entry.body_region, entry.laterality) == ("knee", "right")


def test_playbook_rows_per_part(tmp_path: Path) -> None:
    path = tmp_path / "LoincRsnaRadiologyPlaybook.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["LoincNumber", "LongCommonName", "PartNumber", "PartTypeName", "PartName"])
        writer.writerow(["99999-1", "MR Knee - left WO contrast", "LP1", "Rad.Modality.Modality type", "MR"])
        writer.writerow(["99999-1", "MR Knee - left WO contrast", "LP2", "Rad.Anatomic Location.Imaging Focus", "Knee"])
        writer.writerow(["99999-1", "MR Knee - left WO contrast", "LP3", "Rad.Anatomic Location.Laterality", "Left"])
    entry = load_code_table(path).lookup("LN", "99999-1")
    assert (entry.modality, entry.body_region, entry.laterality, entry.contrast) == ("MR", "knee", "left", False)


def test_a_file_without_a_code_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,colour\nx,y\n", encoding="utf-8")
    with pytest.raises(ConfigurationError):
        load_code_table(path)
