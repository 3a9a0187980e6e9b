"""Master patient index: one regional patient per person across the five trusts.

Public front: other packages and notebooks import from here only.
"""

from mpi.engine import MATCH, NO_MATCH, POSSIBLE
from mpi.nhs_number import is_valid_nhs_number, normalise_nhs_number
from mpi.records import DELETE, Demographics, RecordKey
from mpi.service import LinkOutcome, MatchCandidate, PatientIndex, Resolution, active_model

__all__ = [
    "DELETE",
    "MATCH",
    "NO_MATCH",
    "POSSIBLE",
    "Demographics",
    "LinkOutcome",
    "MatchCandidate",
    "PatientIndex",
    "RecordKey",
    "Resolution",
    "active_model",
    "is_valid_nhs_number",
    "normalise_nhs_number",
]
