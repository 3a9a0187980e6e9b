"""The outcome of handling one input item (an HL7 message, a FHIR resource, a DICOM object), for counts and replies."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ItemOutcome:
    """What became of one item: accepted or rejected (with a reason that names no patient)."""

    accepted: bool
    kind: str  # e.g. "ADT^A08", "Patient", "DICOM", "RDSR", "ImagingStudy", "ORM^O01"
    reason: str | None = None
    error_code: str | None = None
    detail: dict[str, object] = field(default_factory=dict)  # e.g. {"regionalPatientId": ..., "ack": ...}

    @classmethod
    def ok(cls, kind: str, **detail: object) -> ItemOutcome:
        return cls(True, kind, detail=dict(detail))

    @classmethod
    def rejected(cls, kind: str, reason: str, error_code: str = "input", **detail: object) -> ItemOutcome:
        return cls(False, kind, reason, error_code, dict(detail))
