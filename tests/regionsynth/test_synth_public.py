"""The package's public front."""

from __future__ import annotations

import regionsynth


def test_exported_names_exist() -> None:
    assert sorted(regionsynth.__all__) == ["ErrorRates", "RegionRequest", "SynthSettings", "TrustFeedProfile",
                                           "Volumes", "generate_region", "run_synth"]
    for name in regionsynth.__all__:
        assert getattr(regionsynth, name) is not None


def test_settings_round_trip_through_json() -> None:
    settings = regionsynth.SynthSettings()
    again = regionsynth.SynthSettings.model_validate_json(settings.model_dump_json())
    assert again == settings
    assert settings.errors.missing_nhs_number == 0.08 and settings.errors.mistyped_nhs_number == 0.002
