"""What one message says about one study, whichever feed sent it (DICOM, QIDO-RS, HL7 ORU, FHIR ImagingStudy).

The adapters fill a :class:`StudyFacts`; :class:`imaging.index.StudyIndex` merges it into the stored study. Fields
left ``None`` mean *not said*, so a later or a thinner message never erases what an earlier one told.

:func:`named_procedure` reads which examination the facts name, from the best evidence they carry, in this order
(a source is used only when every better one leaves the body region unknown):

1. procedure codes found in the code table (``code``);
2. the study description, then the other descriptions: requested procedure, performed procedure step, the dose
   report's Procedure Reported and its acquisitions' Acquisition Protocols, series description, protocol name
   (``description``);
3. coded anatomy: the dose report's Target Regions (CT localizers left out), Anatomic Region Sequence, Body Part
   Examined, and a mammography view (``anatomy``); a mammogram is always of the breast.

Laterality comes from the text or code, and from every image's (Image) Laterality and every dose event's: sides seen
on different images add up (left and right images make ``both``), so a study is never narrowed to one side that its
images contradict. Nothing is guessed: what none of these sources names stays unknown, and is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING

from imaging import regions as rg
from imaging.dose import DoseEvent
from imaging.identity import PatientIdentity
from imaging.procedures import (
    UNKNOWN,
    NormalisedProcedure,
    ProcedureCode,
    normalise_description,
    normalise_modality,
    normalise_procedure,
)
from imaging.rdsr import DoseReport

if TYPE_CHECKING:
    from imaging.codetables import CodeTable

SCHEDULED = "scheduled"
IN_PROGRESS = "in-progress"
COMPLETED = "completed"
CANCELLED = "cancelled"
STATUSES = (SCHEDULED, IN_PROGRESS, COMPLETED, CANCELLED)
#: A later status replaces an earlier one only when it ranks at least as high (cancelled is always applied).
STATUS_RANK = {SCHEDULED: 0, IN_PROGRESS: 1, COMPLETED: 2, CANCELLED: 3}

ANATOMY = "anatomy"
#: How good the evidence of a normalisation is: a later statement replaces an earlier one only when at least as good.
NORMALISATION_RANK = {"code": 3, "description": 2, ANATOMY: 1, UNKNOWN: 0}


@dataclass
class StudyFacts:
    """One feed's statement about one study."""

    study_instance_uid: str
    source: str  # dicom | qido | oru | fhir
    patient: PatientIdentity = field(default_factory=PatientIdentity)
    performing_trust: str | None = None  # ODS code
    accession_number: str | None = None
    modalities: list[str] = field(default_factory=list)  # as sent (DICOM Modality, ModalitiesInStudy, OBR-24)
    modality_hint: str | None = None  # what a dose report says it describes, used until an image says better
    description: str | None = None
    procedure_codes: list[ProcedureCode] = field(default_factory=list)
    body_part: str | None = None  # DICOM Body Part Examined, FHIR series.bodySite
    laterality: str | None = None  # DICOM (Image) Laterality, FHIR series.laterality
    study_date: date | None = None  # the London calendar date
    study_datetime: datetime | None = None  # UTC
    status: str | None = None
    status_corrects: bool = False  # a corrected result (OBR-25 C) or an amended resource may lower the status
    patient_age_years: int | None = None
    sop_instance_uid: str | None = None  # the object's own (DICOM objects and WADO-RS metadata only)
    series_instance_uid: str | None = None
    sop_class_uid: str | None = None
    dose_events: list[DoseEvent] = field(default_factory=list)  # from image headers
    dose_report: DoseReport | None = None  # from an RDSR
    procedure_texts: list[str] = field(default_factory=list)  # further descriptions, best first (see module doc)
    anatomy: list[str] = field(default_factory=list)  # body regions stated by coded anatomy, best first
    lateralities: list[str] = field(default_factory=list)  # sides stated per image or dose event
    notes: list[str] = field(default_factory=list)  # what could not be read (no identifiers)
    manufacturer: str | None = None  # the device that made the object (Manufacturer, Model, Station Name)
    model_name: str | None = None
    station_name: str | None = None
    #: What a DICOMweb source lists of the study (its URL, the fingerprint of its answer, its instance count), kept
    #: when this statement completes the study's reading: a study listed again is no longer deleted.
    remote: tuple[str, str, int | None] | None = None
    #: Where the statement says the study is not a patient's examination (a QA, physics or phantom test), as
    #: ``field: what it said`` (:mod:`imaging.not_patient`); None: the feed's adapter did not look, and the index
    #: reads the description and patient it carries.
    not_patient: list[str] | None = None

    @property
    def kind(self) -> str:
        return "RDSR" if self.dose_report is not None else {"dicom": "DICOM", "qido": "DICOM JSON",
                                                             "oru": "ORU^R01", "fhir": "ImagingStudy"}[self.source]


def combine_laterality(*sides: str | None) -> str | None:
    """The side of everything ``sides`` name: left and right make both; ``none`` and unknown add nothing.

    >>> combine_laterality("left", None, "right")
    'both'
    """
    named = {s for s in (rg.normalise_laterality(v) if v not in rg.LATERALITIES else v for v in sides if v)
             if s in (rg.LEFT, rg.RIGHT, rg.BOTH)}
    if not named:
        return None
    if rg.BOTH in named or {rg.LEFT, rg.RIGHT} <= named:
        return rg.BOTH
    return named.pop()


def _from_anatomy(anatomy: Sequence[str], modality: str | None) -> NormalisedProcedure:
    """One procedure from the body regions coded anatomy names (combined as a description naming them would be)."""
    words = " ".join(region.replace("-", " ") for region in dict.fromkeys(anatomy))
    result = normalise_description(f"{modality or ''} {words}".strip(), modality)
    if result.normalisation == UNKNOWN:
        return NormalisedProcedure(modality=normalise_modality(modality) or result.modality)
    return replace(result, normalisation=ANATOMY)


def named_procedure(facts: StudyFacts, *, description: str | None, codes: Sequence[ProcedureCode],
                    modality: str | None, table: CodeTable | None = None) -> NormalisedProcedure:
    """The examination ``facts`` name (see the module docstring for the order of evidence).

    Parameters
    ----------
    facts : StudyFacts
        The statement being applied.
    description : str or None
        The study description (the stored one, which the first statement set).
    codes : sequence of ProcedureCode
        Procedure codes in order of preference.
    modality : str or None
        The study's normalised modality.
    table : CodeTable, optional
        The code table.

    Returns
    -------
    NormalisedProcedure
        ``normalisation`` is ``code``, ``description``, ``anatomy`` or ``unknown``; ``laterality`` includes the
        sides the images and dose events state.
    """
    result = normalise_procedure(codes, description, modality_hint=modality, table=table)
    if result.normalisation == UNKNOWN:
        for text in facts.procedure_texts:
            found = normalise_description(text, modality)
            if found.normalisation != UNKNOWN:
                result = found
                break
    if result.normalisation == UNKNOWN and facts.anatomy:
        result = _from_anatomy(facts.anatomy, modality)
    if result.normalisation == UNKNOWN and normalise_modality(modality) == "MG":
        result = replace(result, modality="MG", body_region="breast", regions=("breast",), normalisation=ANATOMY)
    if rg.is_paired(result.body_region):
        side = combine_laterality(result.laterality, facts.laterality, *facts.lateralities)
        if side is None:  # a side named only in another description of the same part ("Thigh Right")
            group = rg.region_group(result.body_region)
            side = combine_laterality(*(found.laterality for text in facts.procedure_texts
                                        if rg.region_group((found := normalise_description(text, modality)).body_region)
                                        == group))
        result = replace(result, laterality=side)
    return result
