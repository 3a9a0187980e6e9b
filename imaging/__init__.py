"""The regional imaging index: every study from the five trusts, linked to its regional patient, with its dose.

Public front: other packages and notebooks import from here only. Modules:

- :mod:`imaging.regions` — the body-region and laterality vocabulary shared with the duplicate check;
- :mod:`imaging.procedures`, :mod:`imaging.codetables` — procedure normalisation from codes and free text;
- :mod:`imaging.rdsr` — reading radiation dose SRs; :mod:`imaging.units` — vendor units;
- :mod:`imaging.dicom_bytes` — a DICOM object's bytes read as a header, within bounds;
  :mod:`imaging.dicom_study` — reading DICOM headers; :mod:`imaging.dicom_time` — DICOM dates and times (London);
- :mod:`imaging.facts` — what one message says about a study, and which procedure it names;
- :mod:`imaging.dose` — dose arithmetic (pure); :mod:`imaging.reference` — coefficients and DRLs (data);
- :mod:`imaging.index` — the study index service; :mod:`imaging.bulk` — studies of a bulk load, written in bulk;
  :mod:`imaging.adapters`, :mod:`imaging.hl7_oru`,
  :mod:`imaging.fhir_imaging`, :mod:`imaging.dicomweb` — the feeds; :mod:`imaging.queries`,
  :mod:`imaging.analytics` — reading it back.
"""

from typing import TYPE_CHECKING

from priorscan.lazy_front import lazy_front

if TYPE_CHECKING:  # the names this front offers, each imported on first use (priorscan.lazy_front)
    from imaging import charts
    from imaging.adapters import (
        apply_many,
        ingest_dicom_datasets,
        ingest_dicom_file,
        ingest_dicom_json,
        read_dicom_header,
    )
    from imaging.analytics import (
        CUMULATIVE_THRESHOLDS_MSV,
        ROLLING_WINDOWS_DAYS,
        cumulative_per_patient,
        drl_audit,
        drl_frame,
        exceedances,
        monthly,
        rolling_peaks,
        shared_identity_share,
        studies_by,
        studies_frame,
    )
    from imaging.bulk import StudyGroup, load_studies
    from imaging.cli import run_export_studies, run_recheck_not_patient, run_reread_procedures
    from imaging.codetables import CodeTable, canonical_system, default_code_table, load_code_table
    from imaging.dicom_bytes import (
        MAX_INFLATED_BYTES,
        READ_ERRORS,
        RefusedObject,
        before_pixels,
        begins_like_a_dataset,
        identified,
        inflate,
        read_header_bytes,
        why_unreadable,
    )
    from imaging.dicomweb import run_poll
    from imaging.dose import DoseEvent, DoseSummary, compare_with_drl, drl_category, summarise
    from imaging.fhir_imaging import apply_imaging_study, to_fhir
    from imaging.fhir_report import apply_diagnostic_report
    from imaging.fhir_report import to_fhir as report_to_fhir
    from imaging.hl7_oru import apply_oru
    from imaging.index import StudyIndex
    from imaging.not_patient_store import RecheckReport, decide_not_patient, recheck_not_patient
    from imaging.procedure_reread import RereadReport, reread_procedures
    from imaging.procedures import (
        MODALITIES,
        NormalisedProcedure,
        ProcedureCode,
        normalise_description,
        normalise_modality,
        normalise_procedure,
    )
    from imaging.queries import (
        Timeline,
        TimelineEntry,
        analytics_rows,
        normalisation_counts,
        patient_timeline,
        pseudonym,
        regional_id_of,
        search_studies,
    )
    from imaging.rdsr import DoseReport, body_structure_region, body_structure_side, parse_dose_report, raw_text
    from imaging.reference import effective_dose_coefficients, national_drls
    from imaging.regions import (
        BODY_REGIONS,
        LATERALITIES,
        REGION_GROUPS,
        comparable_regions,
        is_paired,
        join_regions,
        laterality_compatible,
        normalise_laterality,
        overlaps,
        region_group,
        region_parts,
        same_group,
        split_regions,
    )
    from imaging.reports import PriorDetail, conclusion_of, link_report, prior_details
    from imaging.tables import ImagingOrder, Study, StudyReport

__all__ = [
    "BODY_REGIONS",
    "CUMULATIVE_THRESHOLDS_MSV",
    "CodeTable",
    "DoseEvent",
    "DoseReport",
    "DoseSummary",
    "ImagingOrder",
    "LATERALITIES",
    "MAX_INFLATED_BYTES",
    "MODALITIES",
    "NormalisedProcedure",
    "READ_ERRORS",
    "PriorDetail",
    "RecheckReport",
    "RereadReport",
    "RefusedObject",
    "ProcedureCode",
    "REGION_GROUPS",
    "ROLLING_WINDOWS_DAYS",
    "Study",
    "StudyGroup",
    "StudyIndex",
    "StudyReport",
    "Timeline",
    "TimelineEntry",
    "analytics_rows",
    "apply_many",
    "apply_diagnostic_report",
    "apply_imaging_study",
    "apply_oru",
    "before_pixels",
    "begins_like_a_dataset",
    "body_structure_region",
    "body_structure_side",
    "canonical_system",
    "charts",
    "comparable_regions",
    "compare_with_drl",
    "conclusion_of",
    "decide_not_patient",
    "cumulative_per_patient",
    "default_code_table",
    "drl_audit",
    "drl_category",
    "drl_frame",
    "effective_dose_coefficients",
    "exceedances",
    "identified",
    "inflate",
    "ingest_dicom_datasets",
    "ingest_dicom_file",
    "ingest_dicom_json",
    "is_paired",
    "join_regions",
    "laterality_compatible",
    "link_report",
    "load_studies",
    "load_code_table",
    "monthly",
    "national_drls",
    "normalisation_counts",
    "normalise_description",
    "normalise_laterality",
    "normalise_modality",
    "normalise_procedure",
    "overlaps",
    "parse_dose_report",
    "patient_timeline",
    "prior_details",
    "pseudonym",
    "raw_text",
    "read_dicom_header",
    "read_header_bytes",
    "recheck_not_patient",
    "reread_procedures",
    "region_group",
    "region_parts",
    "regional_id_of",
    "report_to_fhir",
    "rolling_peaks",
    "run_export_studies",
    "run_poll",
    "run_recheck_not_patient",
    "run_reread_procedures",
    "same_group",
    "search_studies",
    "shared_identity_share",
    "split_regions",
    "studies_by",
    "studies_frame",
    "summarise",
    "to_fhir",
    "why_unreadable",
]

__getattr__, __dir__ = lazy_front(__name__)
