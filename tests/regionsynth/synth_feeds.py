"""Readers for the generated feeds, shared by the regionsynth tests: messages, resources, files and identifiers."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset

from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry

_SEGMENT_END = re.compile(r"\r\n|\r|\n")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def hl7_messages(path: Path) -> list[str]:
    """The messages of an HL7 file (MLLP-framed or not, CR or LF segment ends), segments joined with CR."""
    text = path.read_text(encoding="utf-8").replace("\x0b", "").replace("\x1c", "")
    messages: list[list[str]] = []
    for segment in _SEGMENT_END.split(text):
        if not segment:
            continue
        if segment.startswith("MSH") or not messages:
            messages.append([])
        messages[-1].append(segment)
    return ["\r".join(m) for m in messages]


def segments(message: str, name: str) -> list[list[str]]:
    return [s.split("|") for s in message.split("\r") if s.startswith(name + "|")]


def field(segment: list[str], n: int) -> str:
    """Field ``n`` of a segment (for MSH, ``n`` counts the separator as MSH-1)."""
    index = n - 1 if segment[0] == "MSH" else n
    return segment[index] if index < len(segment) else ""


def cx_identifiers(value: str, trusts: TrustRegistry) -> list[tuple[str, str]]:
    """``(system, value)`` for each CX repetition: NHS numbers by CX.4/CX.5, hospital numbers by CX.4 or CX.6."""
    out = []
    for repetition in value.split("~"):
        parts = repetition.split("^") + [""] * 6
        number, authority, kind, facility = parts[0], parts[3], parts[4], parts[5]
        if not number:
            continue
        if kind == "NH" and authority == "NHS":
            out.append((NHS_NUMBER_SYSTEM, number))
        elif kind == "MR":
            out.append((trusts.namespace(authority or facility), number))
        else:
            raise AssertionError(f"unexpected CX identifier type {kind!r}")
    return out


def hl7_identifiers(message: str, trusts: TrustRegistry) -> list[tuple[str, str]]:
    found = []
    for pid in segments(message, "PID"):
        found += cx_identifiers(field(pid, 3), trusts)
    for mrg in segments(message, "MRG"):
        found += cx_identifiers(field(mrg, 1), trusts)
    return found


def fhir_resources(path: Path) -> Iterator[dict[str, Any]]:
    """Resources of a Bundle file or of an NDJSON file."""
    if path.suffix == ".ndjson":
        for line in path.read_text(encoding="utf-8").splitlines():
            yield json.loads(line)
        return
    bundle = json.loads(path.read_text(encoding="utf-8"))
    for entry in bundle["entry"]:
        yield entry["resource"]


def fhir_files(region: Path) -> list[Path]:
    return sorted(p for p in (region / "fhir").rglob("*") if p.is_file())


def fhir_identifiers(resource: dict[str, Any]) -> list[tuple[str, str]]:
    found = [(i["system"], i["value"]) for i in resource.get("identifier", [])
             if resource["resourceType"] == "Patient"]
    subject = resource.get("subject", {}).get("identifier")
    if subject:
        found.append((subject["system"], subject["value"]))
    for link in resource.get("link", []):
        other = link["other"]["identifier"]
        found.append((other["system"], other["value"]))
    return found


def dicom_files(region: Path) -> list[Path]:
    return sorted(p for p in (region / "dicom").rglob("*") if p.is_file())


def dicom_identifiers(ds: Dataset, trusts: TrustRegistry) -> list[tuple[str, str]]:
    found = [(trusts.namespace(ds.IssuerOfPatientID), ds.PatientID)]
    for other in ds.get("OtherPatientIDsSequence", []):
        assert other.IssuerOfPatientID == "NHS"
        found.append((NHS_NUMBER_SYSTEM, other.PatientID))
    return found


def read_dicom(path: Path) -> Dataset:
    return dcmread(path)


def content_items(ds: Dataset) -> Iterator[Dataset]:
    """Every content item of a structured report, depth first."""
    for item in ds.get("ContentSequence", []):
        yield item
        yield from content_items(item)


def concept(item: Dataset) -> str:
    return item.ConceptNameCodeSequence[0].CodeValue


def children(item: Dataset, code: str) -> list[Dataset]:
    return [c for c in item.get("ContentSequence", []) if concept(c) == code]


def numeric(item: Dataset) -> tuple[float, str]:
    measured = item.MeasuredValueSequence[0]
    return float(measured.NumericValue), measured.MeasurementUnitsCodeSequence[0].CodeValue
