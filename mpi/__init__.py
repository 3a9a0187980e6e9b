"""Master patient index: one regional patient per person across the five trusts.

Public front: other packages and notebooks import from here only (an import-linter contract in ``.importlinter``
holds them to it). What it offers:

- writing: :class:`PatientIndex` (link-on-write), HL7 ADT (:func:`read_adt`, :func:`apply_adt`), FHIR Patient
  (:func:`read_patient`, :func:`source_patient`), batch :func:`relink` and :func:`bulk_load`; the store writer
  (:func:`store_writer_for`, :class:`StoreWriter`) through which a bulk load writes new records unlinked
  (:func:`unlinked_record`, :class:`UnlinkedRecord`);
- the read side: FHIR Patient read, PDQm search, ``$match`` and PIXm (:func:`read_patient_resource`,
  :func:`search_patients`, :func:`match_patients`, :func:`pix_query`), references to patients
  (:func:`resolve_patient_reference`), the review queue and link history;
- the schema other packages key their rows to (:class:`RegionalPatient`, :class:`SourceRecord`,
  :class:`SourceIdentifier`);
- the model (:class:`Model`, :func:`decide`) and the command-line entry points (``run_*``).
"""

from mpi.batch import RelinkResult, WrittenUnlinked, bulk_load, keys_refreshed, relink
from mpi.cli import run_evaluate, run_export_xref, run_link
from mpi.engine import MATCH, NO_MATCH, POSSIBLE, MatchRecord, Model, PairScore, decide, to_match_record
from mpi.evaluate import Evaluation, evaluate_store, read_truth
from mpi.fhir_patient import (
    FHIR_ID,
    FHIR_ID_SYSTEM,
    is_regional_id,
    parse_source_resource_id,
    read_patient,
    source_patient,
    source_resource_id,
)
from mpi.fhir_patient import outcome as operation_outcome
from mpi.fhir_queries import (
    conditional_matches,
    find_source_record,
    identifiers_of,
    match_patients,
    pix_query,
    read_patient_resource,
    resolve_patient_reference,
    search_patients,
    unsupported_parameters,
)
from mpi.hl7_adt import AdtMessage, AdtOutcome, apply_adt, read_adt, sender_domains
from mpi.hl7_pid import AdtError, PatientContext, PatientIdentifier, patient_context, read_identifiers, read_pid
from mpi.nhs_number import check_digit, is_valid_nhs_number, normalise_nhs_number
from mpi.record_columns import UnlinkedRecord, UnlinkedRows, unlinked_record
from mpi.records import DELETE, Demographics, RecordKey
from mpi.report import build_report
from mpi.review import QUEUE_ORDERS, link_history, review_item, review_queue, waterfall
from mpi.service import LinkOutcome, MatchCandidate, PatientIndex, Resolution, active_model
from mpi.store_writer import StoreWriter, UnlinkedConverter, store_writer_for
from mpi.tables import RegionalPatient, SourceIdentifier, SourceRecord, linkage_tables, relink_tables, table_of
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
    "WrittenUnlinked",
    "active_model",
    "keys_refreshed",
    "apply_adt",
    "build_report",
    "bulk_load",
    "decide",
    "evaluate_store",
    "is_valid_nhs_number",
    "link_history",
    "linkage_tables",
    "normalise_nhs_number",
    "patient_context",
    "read_adt",
    "read_identifiers",
    "read_pid",
    "read_truth",
    "relink",
    "relink_tables",
    "review_item",
    "review_queue",
    "sender_domains",
    "to_match_record",
    "waterfall",
    "write_xref",
    "StoreWriter",
    "UnlinkedConverter",
    "UnlinkedRecord",
    "UnlinkedRows",
    "store_writer_for",
    "unlinked_record",
    "FHIR_ID",
    "FHIR_ID_SYSTEM",
    "is_regional_id",
    "parse_source_resource_id",
    "read_patient",
    "source_patient",
    "source_resource_id",
    "operation_outcome",
    "conditional_matches",
    "find_source_record",
    "identifiers_of",
    "match_patients",
    "pix_query",
    "read_patient_resource",
    "resolve_patient_reference",
    "search_patients",
    "unsupported_parameters",
    "check_digit",
    "QUEUE_ORDERS",
    "RegionalPatient",
    "SourceIdentifier",
    "SourceRecord",
    "table_of",
    "run_evaluate",
    "run_export_xref",
    "run_link",
]
