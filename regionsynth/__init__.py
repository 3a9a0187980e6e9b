"""A synthetic five-trust region: people, their trust records with realistic errors, HL7 v2 and FHIR feeds, DICOM
with dose reports, orders, and the ground truth that says who is who and which orders repeat which studies.

Public front: other packages, tests and notebooks import from here only.
"""

from regionsynth.cli import run_synth
from regionsynth.region import RegionRequest, generate_region
from regionsynth.settings import ErrorRates, SynthSettings, TrustFeedProfile, Volumes

__all__ = ["ErrorRates", "RegionRequest", "SynthSettings", "TrustFeedProfile", "Volumes", "generate_region",
           "run_synth"]
