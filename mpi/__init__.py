"""Master patient index: one regional patient per person across the five trusts.

Public front: other packages and notebooks import from here only.
"""

from mpi.batch import RelinkResult, bulk_load, relink
from mpi.engine import MATCH, NO_MATCH, POSSIBLE, MatchRecord, Model, PairScore, decide, to_match_record
from mpi.evaluate import Evaluation, evaluate_store, read_truth
from mpi.hl7_adt import AdtMessage, AdtOutcome, apply_adt, read_adt, sender_domains
from mpi.hl7_pid import AdtError, PatientContext, PatientIdentifier, patient_context, read_identifiers, read_pid
from mpi.nhs_number import is_valid_nhs_number, normalise_nhs_number
from mpi.records import DELETE, Demographics, RecordKey
from mpi.report import build_report
from mpi.review import link_history, review_item, review_queue, waterfall
from mpi.service import LinkOutcome, MatchCandidate, PatientIndex, Resolution, active_model
from mpi.xref import write_xref

__all__ = [
    "DELETE",
    "AdtError",
    "AdtMessage",
    "AdtOutcome",
    "MATCH",
    "NO_MATCH",
    "POSSIBLE",
    "Demographics",
    "Evaluation",
    "LinkOutcome",
    "MatchCandidate",
    "MatchRecord",
    "Model",
    "PairScore",
    "PatientContext",
    "PatientIdentifier",
    "PatientIndex",
    "RecordKey",
    "RelinkResult",
    "Resolution",
    "active_model",
    "apply_adt",
    "build_report",
    "bulk_load",
    "decide",
    "evaluate_store",
    "is_valid_nhs_number",
    "link_history",
    "normalise_nhs_number",
    "patient_context",
    "read_adt",
    "read_identifiers",
    "read_pid",
    "read_truth",
    "relink",
    "review_item",
    "review_queue",
    "sender_domains",
    "to_match_record",
    "waterfall",
    "write_xref",
]
