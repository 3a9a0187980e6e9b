"""IHE IOCM (Imaging Object Change Management) rejection notes: what they reject, and what that does to a study.

A rejection note is a Key Object Selection document (SOP class 1.2.840.10008.5.1.4.1.1.88.59) whose title, the
Concept Name Code Sequence (0040,A043), is one of the rejection codes of DICOM CID 7011 (coding scheme DCM). It names
the instances it rejects in its Current Requested Procedure Evidence Sequence (0040,A375): per study, per series
(Referenced Series Sequence (0008,1115)), the Referenced SOP Sequence (0008,1199).

What a rejection does here (:data:`REJECTION_REASONS`; a judgement for the clinical safety officer, recorded in the
hazard log):

============  ======================================  ===============================  ============================
code          title                                   shown as a prior                 its dose
============  ======================================  ===============================  ============================
113001        Rejected for Quality Reasons            no, once all its images are      kept: the exposure happened
113037        Rejected for Patient Safety Reasons     no, once all its images are      removed: not to be used
113038        Incorrect Modality Worklist Entry       no, once all its images are      removed: another person's
113039        Data Retention Policy Expired           no, once all its images are      kept: the exposure happened
============  ======================================  ===============================  ============================

A study is withdrawn from the priors when every object of it that the index knows (other than key object notes) is
rejected; an object rejected alone (one bad view of four) only loses its own dose contribution where the reason says
so. Pure: no storage (:mod:`imaging.withdrawal` applies a note to the store).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.tag import Tag

from imaging.rdsr import _sequence, raw_text

KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
CONCEPT_NAME = Tag(0x0040, 0xA043)
EVIDENCE = Tag(0x0040, 0xA375)
REFERENCED_SERIES = Tag(0x0008, 0x1115)
REFERENCED_SOP = Tag(0x0008, 0x1199)
REFERENCED_SOP_UID = Tag(0x0008, 0x1155)
STUDY_UID = Tag(0x0020, 0x000D)
SERIES_UID = Tag(0x0020, 0x000E)
SOP_UID = Tag(0x0008, 0x0018)
SOP_CLASS = Tag(0x0008, 0x0016)
MODALITY = Tag(0x0008, 0x0060)
CODE_VALUE = Tag(0x0008, 0x0100)
MEANING = Tag(0x0008, 0x0104)


@dataclass(frozen=True)
class RejectionReason:
    """One rejection title of DICOM CID 7011 and what it does to the dose of the objects it names."""

    code: str
    meaning: str
    keeps_dose: bool  # the exposure happened to this patient: the dose stays in their record

    @property
    def label(self) -> str:
        return f"{self.code} {self.meaning}"


REJECTION_REASONS: dict[str, RejectionReason] = {r.code: r for r in (
    RejectionReason("113001", "Rejected for Quality Reasons", keeps_dose=True),
    RejectionReason("113037", "Rejected for Patient Safety Reasons", keeps_dose=False),
    RejectionReason("113038", "Incorrect Modality Worklist Entry", keeps_dose=False),
    RejectionReason("113039", "Data Retention Policy Expired", keeps_dose=True),
)}
_BY_MEANING = {r.meaning.lower(): r for r in REJECTION_REASONS.values()}
#: The withdrawal of a study deleted from the PACS it was listed on (found by reconciliation).
DELETED_FROM_PACS = "deleted from the PACS"


@dataclass(frozen=True)
class RejectedInstance:
    study_instance_uid: str
    series_instance_uid: str | None
    sop_instance_uid: str


@dataclass(frozen=True)
class RejectionNote:
    """A rejection note as read: its reason and the instances it names."""

    reason: RejectionReason
    note_uid: str | None
    instances: tuple[RejectedInstance, ...] = field(default_factory=tuple)

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys(i.study_instance_uid for i in self.instances))


def is_key_object(ds: Dataset) -> bool:
    """Whether ``ds`` is a Key Object Selection document (by SOP class, or modality KO)."""
    return raw_text(ds, SOP_CLASS) == KEY_OBJECT_SELECTION or (raw_text(ds, MODALITY) or "").upper() == "KO"


def rejection_reason(ds: Dataset) -> RejectionReason | None:
    """The rejection reason a key object's title states, by code value (any scheme) or by its meaning."""
    for item in _sequence(ds, CONCEPT_NAME):
        value = (raw_text(item, CODE_VALUE) or "").strip()
        if value in REJECTION_REASONS:
            return REJECTION_REASONS[value]
        meaning = (raw_text(item, MEANING) or "").strip().lower()
        if meaning in _BY_MEANING:
            return _BY_MEANING[meaning]
    return None


def read_rejection_note(ds: Dataset) -> RejectionNote | None:
    """The rejection note ``ds`` is, or None for any other object (a key object of another title included).

    Instances are read from the Current Requested Procedure Evidence Sequence; an item without a SOP Instance UID is
    skipped (it names nothing that could be rejected).
    """
    if not is_key_object(ds):
        return None
    reason = rejection_reason(ds)
    if reason is None:
        return None
    instances: list[RejectedInstance] = []
    for study in _sequence(ds, EVIDENCE):
        study_uid = (raw_text(study, STUDY_UID) or raw_text(ds, STUDY_UID) or "").strip()
        if not study_uid:
            continue
        for series in _sequence(study, REFERENCED_SERIES):
            series_uid = raw_text(series, SERIES_UID)
            for item in _sequence(series, REFERENCED_SOP):
                sop = (raw_text(item, REFERENCED_SOP_UID) or "").strip()
                if sop:
                    instances.append(RejectedInstance(study_uid, series_uid, sop))
    return RejectionNote(reason, raw_text(ds, SOP_UID), tuple(dict.fromkeys(instances)))


def most_severe(reasons: list[RejectionReason]) -> RejectionReason | None:
    """The reason that says most about a study: one that removes dose before one that keeps it."""
    if not reasons:
        return None
    return sorted(reasons, key=lambda r: (r.keeps_dose, r.code))[0]
