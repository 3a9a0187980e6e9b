"""Hostile input as hypothesis strategies, shared by the fuzz tests (``tests/fuzz``) and ``python -m bench fuzz``:
FHIR resources of every shape and DICOM objects broken in the ways files and networks break them."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import strategies as st

#: The fields each FHIR resource is fuzzed in, and the endpoints that take it.
FHIR_FIELDS = {
    "Patient": ["identifier", "name", "birthDate", "gender", "address", "telecom", "extension", "link", "active",
                "deceasedBoolean", "meta", "id"],
    "ImagingStudy": ["identifier", "subject", "started", "modality", "series", "procedureCode", "status", "id",
                     "numberOfInstances", "location"],
    "ServiceRequest": ["identifier", "subject", "code", "status", "intent", "requester", "reasonCode", "bodySite",
                       "priority", "authoredOn", "extension"],
}
FHIR_ENDPOINTS = {"Patient": ["/fhir/Patient", "/fhir/Patient/$match"], "ImagingStudy": ["/fhir/ImagingStudy"],
                  "ServiceRequest": ["/fhir/ServiceRequest"]}

#: Any JSON value: text with control characters, huge and odd numbers, nesting a few levels deep.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)


@st.composite
def hostile_resources(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A resource type and a resource of it whose fields hold any JSON value."""
    kind = draw(st.sampled_from(sorted(FHIR_FIELDS)))
    chosen = draw(st.lists(st.sampled_from(FHIR_FIELDS[kind]), max_size=5, unique=True))
    resource: dict[str, Any] = {"resourceType": kind}
    for field in chosen:
        resource[field] = draw(json_values)
    return kind, resource


def dicom_bytes(patient_id: str) -> bytes:
    """A small, valid CT Part 10 object (no pixels) of ``patient_id`` at RTK."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.IssuerOfPatientID, ds.Modality, ds.StudyDate = patient_id, "RTK", "CT", "20250101"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@st.composite
def corrupt_dicom(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` truncated, with bytes flipped or spliced in, or replaced by garbage."""
    data = bytearray(valid)
    how = draw(st.sampled_from(["truncate", "flip", "splice", "garbage"]))
    if how == "truncate":
        return bytes(data[:draw(st.integers(0, len(data)))])
    if how == "garbage":
        return draw(st.binary(max_size=2048))
    if how == "splice":
        at = draw(st.integers(128, len(data)))
        return bytes(data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:])
    for _ in range(draw(st.integers(1, 16))):
        data[draw(st.integers(128, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)
