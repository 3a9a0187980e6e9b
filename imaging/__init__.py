"""The regional imaging index: every study from the five trusts, linked to its regional patient, with its dose.

Public front: other packages and notebooks import from here only. Modules:

- :mod:`imaging.regions` — the body-region and laterality vocabulary shared with the duplicate check;
- :mod:`imaging.procedures`, :mod:`imaging.codetables` — procedure normalisation from codes and free text;
- :mod:`imaging.rdsr` — reading radiation dose SRs; :mod:`imaging.units` — vendor units;
- :mod:`imaging.dicom_study` — reading DICOM headers; :mod:`imaging.dicom_time` — DICOM dates and times (London);
- :mod:`imaging.facts` — what one message says about a study, and which procedure it names;
- :mod:`imaging.dose` — dose arithmetic (pure); :mod:`imaging.reference` — coefficients and DRLs (data);
- :mod:`imaging.index` — the study index service; :mod:`imaging.adapters`, :mod:`imaging.hl7_oru`,
  :mod:`imaging.fhir_imaging`, :mod:`imaging.dicomweb` — the feeds; :mod:`imaging.queries`,
  :mod:`imaging.analytics` — reading it back.
"""

from imaging.adapters import ingest_dicom_file, ingest_dicom_json
from imaging.analytics import drl_frame, studies_frame
from imaging.codetables import CodeTable, default_code_table, load_code_table
from imaging.dose import DoseEvent, DoseSummary, compare_with_drl, drl_category, summarise
from imaging.fhir_imaging import apply_imaging_study, to_fhir
from imaging.hl7_oru import apply_oru
from imaging.index import StudyIndex
from imaging.procedures import (
    MODALITIES,
    NormalisedProcedure,
    ProcedureCode,
    normalise_description,
    normalise_modality,
    normalise_procedure,
)
from imaging.queries import Timeline, TimelineEntry, patient_timeline, search_studies
from imaging.rdsr import DoseReport, parse_dose_report
from imaging.reference import effective_dose_coefficients, national_drls
from imaging.regions import (
    BODY_REGIONS,
    LATERALITIES,
    REGION_GROUPS,
    comparable_regions,
    laterality_compatible,
    normalise_laterality,
    overlaps,
    region_group,
    same_group,
)
from imaging.reports import PriorDetail, conclusion_of, link_report, prior_details

__all__ = [
    "BODY_REGIONS",
    "LATERALITIES",
    "MODALITIES",
    "REGION_GROUPS",
    "CodeTable",
    "DoseEvent",
    "DoseReport",
    "DoseSummary",
    "NormalisedProcedure",
    "PriorDetail",
    "ProcedureCode",
    "StudyIndex",
    "Timeline",
    "TimelineEntry",
    "apply_imaging_study",
    "apply_oru",
    "comparable_regions",
    "compare_with_drl",
    "conclusion_of",
    "default_code_table",
    "drl_category",
    "drl_frame",
    "effective_dose_coefficients",
    "ingest_dicom_file",
    "ingest_dicom_json",
    "laterality_compatible",
    "link_report",
    "load_code_table",
    "national_drls",
    "normalise_description",
    "normalise_laterality",
    "normalise_modality",
    "normalise_procedure",
    "overlaps",
    "parse_dose_report",
    "patient_timeline",
    "prior_details",
    "region_group",
    "same_group",
    "search_studies",
    "studies_frame",
    "summarise",
    "to_fhir",
]
