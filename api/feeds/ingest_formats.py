"""What a file holds, told by its content: HL7 v2, FHIR JSON or NDJSON, DICOM, DICOM JSON, or none of these.

Detection reads the first few kilobytes only (extensions are hints that feeds get wrong). The readers here stream one
file at a time and yield its items (one HL7 message, one FHIR resource or NDJSON line, one DICOM JSON dataset) with
where they came from; they never apply anything.

Each item belongs to a *phase* of loading, so that identity arrives before studies and studies before orders:

==========  ==================================================================
identity    HL7 ADT, FHIR Patient (and Bundles holding only identity)
imaging     DICOM, DICOM JSON, HL7 ORU, FHIR ImagingStudy
orders      HL7 ORM/OMI, FHIR ServiceRequest, and whatever is not recognised
==========  ==================================================================

Anything unrecognised goes to the last phase so that its handler rejects it with a reason: nothing is dropped.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from priorscan import json_input
from priorscan.hl7v2 import decode_message

SNIFF_BYTES = 8192
_READ_CHUNK = 1 << 16


class Phase(enum.IntEnum):
    IDENTITY = 1
    IMAGING = 2
    ORDERS = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class FileFormat(enum.Enum):
    HL7V2 = "HL7 v2"
    FHIR_JSON = "FHIR JSON"
    FHIR_NDJSON = "FHIR NDJSON"
    DICOM = "DICOM"
    DICOM_JSON = "DICOM JSON"
    EMPTY = "empty"
    UNKNOWN = "unknown"


#: The phases in which items of each format may occur (a file is re-read once per phase it may hold items of).
FORMAT_PHASES: dict[FileFormat, tuple[Phase, ...]] = {
    FileFormat.HL7V2: (Phase.IDENTITY, Phase.IMAGING, Phase.ORDERS),
    FileFormat.FHIR_NDJSON: (Phase.IDENTITY, Phase.IMAGING, Phase.ORDERS),
    FileFormat.DICOM: (Phase.IMAGING,),
    FileFormat.DICOM_JSON: (Phase.IMAGING,),
}

HL7_PHASES = {"ADT": Phase.IDENTITY, "ORU": Phase.IMAGING, "ORM": Phase.ORDERS, "OMI": Phase.ORDERS,
              "OMG": Phase.ORDERS}
FHIR_PHASES = {"Patient": Phase.IDENTITY, "ImagingStudy": Phase.IMAGING, "ServiceRequest": Phase.ORDERS}

_DICOM_TAG_KEY = re.compile(rb'^\s*\[?\s*\{\s*"[0-9A-Fa-f]{8}"\s*:')
_FHIR_TYPE = re.compile(r'"resourceType"\s*:\s*"([A-Za-z]+)"')
_SEGMENT_END = re.compile(rb"\r\n|[\r\n\x0b\x1c]")
_HL7_START = re.compile(rb"^(?:\xef\xbb\xbf)?[\s\x0b]*(MSH|FHS|BHS)[|^~\\&#]")
_BATCH_SEGMENTS = (b"FHS", b"BHS", b"BTS", b"FTS")


@dataclass(frozen=True)
class Detected:
    """The format of a file, and the phases it may hold items of."""

    path: Path
    format: FileFormat
    phases: tuple[Phase, ...]
    reason: str | None = None  # why a file is EMPTY or UNKNOWN


def detect(path: Path) -> Detected:
    """Tell the format of ``path`` from its first bytes (and, for JSON, its resource types)."""
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head.strip(b" \t\r\n\x00\x0b\x1c\xef\xbb\xbf"):
        return Detected(path, FileFormat.EMPTY, (), "empty file")
    if len(head) >= 132 and head[128:132] == b"DICM":
        return Detected(path, FileFormat.DICOM, FORMAT_PHASES[FileFormat.DICOM])
    if _HL7_START.match(head):
        return Detected(path, FileFormat.HL7V2, FORMAT_PHASES[FileFormat.HL7V2])
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"{", b"["):
        return _detect_json(path, text)
    from imaging import begins_like_a_dataset  # here: its module imports pydicom, which an HL7 or FHIR load never uses

    if begins_like_a_dataset(head):
        return Detected(path, FileFormat.DICOM, FORMAT_PHASES[FileFormat.DICOM])
    return Detected(path, FileFormat.UNKNOWN, (),
                    "not a recognised format (HL7 v2, FHIR JSON or NDJSON, DICOM, DICOM JSON)")


def _detect_json(path: Path, head: bytes) -> Detected:
    if _DICOM_TAG_KEY.match(head):
        return Detected(path, FileFormat.DICOM_JSON, FORMAT_PHASES[FileFormat.DICOM_JSON])
    if head[:1] == b"{" and _is_ndjson(path):
        return Detected(path, FileFormat.FHIR_NDJSON, FORMAT_PHASES[FileFormat.FHIR_NDJSON])
    types = fhir_resource_types(path)
    if not types:
        return Detected(path, FileFormat.UNKNOWN, (), "JSON without FHIR resourceType or DICOM tags")
    return Detected(path, FileFormat.FHIR_JSON, (fhir_phase_of_types(types),))


def _is_ndjson(path: Path) -> bool:
    """Whether the first line is a whole JSON object and more non-blank lines follow."""
    with open(path, "rb") as handle:
        first = handle.readline().strip().lstrip(b"\xef\xbb\xbf")
        if not (first.startswith(b"{") and first.endswith(b"}")):
            return False
        try:
            if not isinstance(json_input.loads(first), dict):
                return False
        except ValueError:  # not JSON, or nested too deeply to be a line of NDJSON
            return False
        return any(line.strip() for line in handle)


def fhir_resource_types(path: Path) -> set[str]:
    """Every ``resourceType`` named in a JSON file, found without building the document."""
    found: set[str] = set()
    tail = ""
    with open(path, encoding="utf-8", errors="replace") as handle:
        while chunk := handle.read(_READ_CHUNK):
            window = tail + chunk
            found.update(_FHIR_TYPE.findall(window))
            tail = window[-64:]
    return found


def fhir_phase_of_types(types: set[str]) -> Phase:
    """The phase of resources of ``types`` applied together: the latest phase among them (identity before imaging
    before orders); types that are none of Patient, ImagingStudy, ServiceRequest do not move it, and with none of
    those at all it is the last phase."""
    return max((FHIR_PHASES[t] for t in types if t in FHIR_PHASES), default=Phase.ORDERS)


def fhir_phase(resource: dict[str, Any]) -> Phase:
    """The phase of one parsed resource (a Bundle by the resources it holds)."""
    kind = resource.get("resourceType")
    if kind == "Bundle":
        types = {str(entry.get("resource", {}).get("resourceType"))
                 for entry in resource.get("entry") or [] if isinstance(entry, dict)
                 and isinstance(entry.get("resource"), dict)}
        return fhir_phase_of_types(types)
    return FHIR_PHASES.get(str(kind), Phase.ORDERS)


# --- HL7 v2 -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HL7Item:
    """One message of a file (segments joined by CR, framing removed), or text found outside any message."""

    text: str
    position: int  # 1-based message number in the file
    message_type: str  # MSH-9.1, e.g. ADT; "" when there is no MSH
    phase: Phase
    event: str = ""  # MSH-9.1^MSH-9.2, e.g. ADT^A04
    problem: str | None = None  # why its bytes are not text (``text`` then holds them as ISO 8859-1)


def _segments(path: Path) -> Iterator[bytes]:
    """The segments of a file, split at CR, LF, CRLF and MLLP framing bytes, streamed in chunks."""
    pending = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            parts = _SEGMENT_END.split(pending + chunk)
            pending = parts.pop()
            yield from parts
    if pending:
        yield pending


def message_event_of(msh: bytes) -> tuple[str, str]:
    """MSH-9.1 and MSH-9.1^MSH-9.2 of an MSH segment, read by hand (``("", "")`` when absent)."""
    if len(msh) < 8:
        return "", ""
    separator = msh[3:4]
    component = msh[4:5] or b"^"
    fields = msh.split(separator)
    if len(fields) < 9:
        return "", ""
    parts = [p.strip().decode("ascii", errors="replace").upper() for p in fields[8].split(component)[:2]]
    return parts[0], "^".join(p for p in parts if p)


def hl7_messages(path: Path) -> Iterator[HL7Item]:
    """The messages of an HL7 v2 file: split at each MSH, with or without MLLP framing, any segment ends.

    Text before the first MSH (other than batch headers FHS/BHS/BTS/FTS) is yielded as an item without message type,
    so that it is reported rather than lost.
    """
    current: list[bytes] = []
    stray: list[bytes] = []
    position = 0

    def item(segments: list[bytes]) -> HL7Item:
        kind, event = message_event_of(segments[0])
        decoded = decode_message(b"\r".join(segments))
        return HL7Item(decoded.text, position, kind, HL7_PHASES.get(kind, Phase.ORDERS), event, decoded.problem)

    for raw in _segments(path):
        segment = raw.strip(b" \t\x00").lstrip(b"\xef\xbb\xbf")
        if not segment:
            continue
        if segment.startswith(b"MSH"):
            if current:
                yield item(current)
            position += 1
            current = [segment]
        elif segment[:3] in _BATCH_SEGMENTS and len(segment) > 3 and not segment[3:4].isalnum():
            continue
        elif current:
            current.append(segment)
        else:
            stray.append(segment)
            if len(stray) == 1:
                position += 1
                yield HL7Item(decode_message(segment[:200]).text, position, "", Phase.ORDERS)
    if current:
        yield item(current)


# --- FHIR -----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JsonItem:
    """One parsed JSON object of a file (a resource, an NDJSON line, a DICOM JSON dataset), or why it is unreadable."""

    value: dict[str, Any] | None
    position: int  # line (NDJSON) or array index + 1; 0 for a whole-file object
    phase: Phase
    problem: str | None = None


def ndjson_items(path: Path) -> Iterator[JsonItem]:
    """The lines of an NDJSON file, each parsed on its own (blank lines skipped)."""
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json_input.loads(line)
            except json_input.JsonInputError as exc:
                yield JsonItem(None, number, Phase.ORDERS, f"line is not usable JSON: {exc}")
                continue
            if not isinstance(value, dict) or "resourceType" not in value:
                yield JsonItem(None, number, Phase.ORDERS, "line is not a FHIR resource (no resourceType)")
                continue
            yield JsonItem(value, number, fhir_phase(value))


def _load_json(path: Path) -> Any:
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        return json_input.loads(handle.read())


def fhir_json_items(path: Path) -> Iterator[JsonItem]:
    """The resource in a FHIR JSON file (or each resource of a top-level JSON array)."""
    try:
        value = _load_json(path)
    except ValueError as exc:
        yield JsonItem(None, 0, Phase.ORDERS, f"file is not usable JSON: {exc}")
        return
    values = value if isinstance(value, list) else [value]
    for index, resource in enumerate(values, start=1 if isinstance(value, list) else 0):
        if not isinstance(resource, dict) or "resourceType" not in resource:
            yield JsonItem(None, index, Phase.ORDERS, "not a FHIR resource (no resourceType)")
        else:
            yield JsonItem(resource, index, fhir_phase(resource))


def dicom_json_items(path: Path) -> Iterator[JsonItem]:
    """The datasets of a DICOM JSON file (a QIDO-RS result array, or a single dataset object)."""
    try:
        value = _load_json(path)
    except ValueError as exc:
        yield JsonItem(None, 0, Phase.IMAGING, f"file is not usable JSON: {exc}")
        return
    values = value if isinstance(value, list) else [value]
    for index, dataset in enumerate(values, start=1):
        if not isinstance(dataset, dict) or not all(re.fullmatch(r"[0-9A-Fa-f]{8}", key) for key in dataset):
            yield JsonItem(None, index, Phase.IMAGING, "not a DICOM JSON dataset (keys must be 8-digit tags)")
        else:
            yield JsonItem(dataset, index, Phase.IMAGING)
