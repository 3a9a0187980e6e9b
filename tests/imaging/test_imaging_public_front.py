"""imaging's public front: the names other packages and notebooks import exist and are exported."""

from __future__ import annotations

import imaging


def test_every_exported_name_exists() -> None:
    assert len(set(imaging.__all__)) == len(imaging.__all__)
    for name in imaging.__all__:
        assert hasattr(imaging, name), name


def test_what_the_duplicate_check_and_notebooks_use_is_exported() -> None:
    assert {"BODY_REGIONS", "REGION_GROUPS", "comparable_regions", "laterality_compatible", "normalise_procedure",
            "studies_frame", "ingest_dicom_file", "ingest_dicom_json", "apply_oru", "apply_imaging_study"} <= set(
        imaging.__all__)
