"""Hostile input as hypothesis strategies, shared by the fuzz tests (``tests/fuzz``) and ``python -m bench fuzz``:
FHIR resources of every shape and DICOM objects broken in the ways files and networks break them; and
:data:`WIRE_PROBES`, hand-written hostile requests (bytes as an attacker sends them, not JSON a client library
would make) that found faults over real sockets (2026-12-07), each answered 4xx without quoting the patient it names.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
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


@dataclass(frozen=True)
class WireProbe:
    """One hostile HTTP request: sent with an admin token, it must be answered below 500, quoting no patient."""

    name: str
    method: str
    path: str
    body: bytes = b""
    content_type: str = "application/json"


#: A patient the probes name (never to be quoted back in an answer).
PROBE_FAMILY, PROBE_NHS_NUMBER = "ZEBEDEE", "9990001235"
_PATIENT = json.dumps({"resourceType": "Patient", "name": [{"family": PROBE_FAMILY}], "identifier": [
    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": PROBE_NHS_NUMBER}], "birthDate": "1970-01-01"}).encode()
_CHECK = json.dumps({"patient": {"name": {"family": PROBE_FAMILY}, "identifiers": [
    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": PROBE_NHS_NUMBER}]},
    "request": {"modality": "CT", "bodySite": "chest"}}).encode()
_FHIR, _STOW = "application/fhir+json", 'multipart/related; type="application/dicom"; boundary='


def _json_probes(path: str, body: bytes, content_type: str) -> list[WireProbe]:
    head = body[:-1]
    return [WireProbe(f"{path} {name}", "POST", path, data, content_type) for name, data in [
        ("nested 100 000 deep", b"[" * 100_000 + b"]" * 100_000),
        ("nested in a field", head + b',"x":' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
        ("a 100 000-digit number", head + b',"birthDate":' + b"9" * 100_000 + b"}"),
        ("1e999999", head + b',"birthDate":1e999999}'),
        ("NaN and -Infinity", head + b',"x":NaN,"y":-Infinity}'),
        ("a key twice", head + b',"birthDate":"1970-01-01","birthDate":{}}'),
        ("invalid UTF-8", body.replace(PROBE_FAMILY.encode(), b"ZEB\xff\xfeE")),
        ("overlong UTF-8", body.replace(PROBE_FAMILY.encode(), b"ZEB\xc0\xaf\xe0\x80\xafE")),
        ("a lone surrogate", body.replace(PROBE_FAMILY.encode(), b"ZEB\\ud800E")),
        ("an escaped NUL", body.replace(PROBE_FAMILY.encode(), b"ZEB\\u0000E")),
        ("a raw NUL", body.replace(PROBE_FAMILY.encode(), b"ZEB\x00E")),
        ("UTF-16", body.decode().encode("utf-16")),
        ("a bare number", b"12"),
        ("nothing", b""),
    ]]


WIRE_PROBES: list[WireProbe] = [
    *_json_probes("/fhir/Patient", _PATIENT, _FHIR),
    *_json_probes("/fhir", _PATIENT.replace(b'"Patient"', b'"Bundle","type":"transaction","entry":[]', 1), _FHIR),
    *_json_probes("/api/v1/duplicate-check", _CHECK, "application/json"),
    WireProbe("search of a thousand parameters (a 503)", "GET",
              "/fhir/Patient?" + "&".join(f"family=a{n}" for n in range(1000))),
    WireProbe("search of a thousand alternatives", "GET", "/fhir/Patient?family=" + ",".join(map(str, range(1000)))),
    WireProbe("a CRLF in an id", "GET", "/fhir/Patient/a%0d%0aX-Injected:%201"),
    WireProbe("a traversal in an id", "GET", "/fhir/Patient/..%2f..%2fetc%2fpasswd"),
    WireProbe("a traversal in the page's files", "GET", "/ui/static/..%2f..%2f..%2fetc%2fpasswd"),
    WireProbe("STOW-RS boundary of 5000 characters (a 500)", "POST", "/dicomweb/studies",
              b"--" + b"b" * 5000 + b"\r\n\r\nxx", _STOW + "b" * 5000),
    WireProbe("STOW-RS with an empty boundary", "POST", "/dicomweb/studies", b"----\r\n", _STOW + '""'),
    WireProbe("STOW-RS boundary not in the body", "POST", "/dicomweb/studies", b"--b\r\n\r\nxx\r\n--b--", _STOW + "zz"),
    WireProbe("STOW-RS with no final boundary", "POST", "/dicomweb/studies",
              b"--b\r\nContent-Type: application/dicom\r\n\r\nxxxx", _STOW + "b"),
    WireProbe("STOW-RS nested multipart", "POST", "/dicomweb/studies",
              b"--b\r\nContent-Type: multipart/related; boundary=c\r\n\r\n--c\r\n\r\nxx\r\n--c--\r\n--b--",
              _STOW + "b"),
    WireProbe("STOW-RS of 20 000 one-byte parts (minutes of work)", "POST", "/dicomweb/studies",
              b"--b\r\nContent-Type: application/dicom\r\n\r\nx\r\n" * 20_000 + b"--b--", _STOW + "b"),
    WireProbe("HL7 with a NUL as field separator", "POST", "/hl7", b"MSH\x00^~\\&\x00PAS", "text/plain"),
    WireProbe("HL7 of only MSH|", "POST", "/hl7", b"MSH|", "text/plain"),
]
