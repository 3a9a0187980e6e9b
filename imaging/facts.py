"""What one message says about one study, whichever feed sent it (DICOM, QIDO-RS, HL7 ORU, FHIR ImagingStudy).

The adapters fill a :class:`StudyFacts`; :class:`imaging.index.StudyIndex` merges it into the stored study. Fields
left ``None`` mean *not said*, so a later or a thinner message never erases what an earlier one told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from imaging.dose import DoseEvent
from imaging.identity import PatientIdentity
from imaging.procedures import ProcedureCode
from imaging.rdsr import DoseReport

SCHEDULED = "scheduled"
IN_PROGRESS = "in-progress"
COMPLETED = "completed"
CANCELLED = "cancelled"
STATUSES = (SCHEDULED, IN_PROGRESS, COMPLETED, CANCELLED)
#: A later status replaces an earlier one only when it ranks at least as high (cancelled is always applied).
STATUS_RANK = {SCHEDULED: 0, IN_PROGRESS: 1, COMPLETED: 2, CANCELLED: 3}


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
    study_date: date | None = None
    study_datetime: datetime | None = None
    status: str | None = None
    status_corrects: bool = False  # a corrected result (OBR-25 C) or an amended resource may lower the status
    patient_age_years: int | None = None
    sop_instance_uid: str | None = None  # the object's own (DICOM objects and WADO-RS metadata only)
    series_instance_uid: str | None = None
    sop_class_uid: str | None = None
    dose_events: list[DoseEvent] = field(default_factory=list)  # from image headers
    dose_report: DoseReport | None = None  # from an RDSR
    notes: list[str] = field(default_factory=list)  # what could not be read (no identifiers)
    #: What a DICOMweb source lists of the study (its URL, the fingerprint of its answer, its instance count), kept
    #: when this statement completes the study's reading: a study listed again is no longer deleted.
    remote: tuple[str, str, int | None] | None = None

    @property
    def kind(self) -> str:
        return "RDSR" if self.dose_report is not None else {"dicom": "DICOM", "qido": "DICOM JSON",
                                                             "oru": "ORU^R01", "fhir": "ImagingStudy"}[self.source]
