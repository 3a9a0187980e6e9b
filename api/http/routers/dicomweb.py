"""DICOMweb STOW-RS: ``POST /dicomweb/studies`` (and ``/dicomweb/studies/{study}``), scope ``system/ImagingStudy.c``.

The body is ``multipart/related; type="application/dicom"``: one DICOM Part 10 object per part. Each object is
indexed from its header (:func:`api.feeds.dicom_receiver.receive`: committed before it counts as stored; a failure is a
dead letter) and the answer is the Store Instances Response of PS3.18 as DICOM JSON (``application/dicom+json``):

- Referenced SOP Sequence (0008,1199): each stored object's SOP Class (0008,1150) and Instance (0008,1155) UIDs;
- Failed SOP Sequence (0008,1198): each failed object's UIDs (when readable) and its Failure Reason (0008,1197):
  0xA700 out of resources (the store was busy: send it again), 0xC000 cannot understand, 0x0110 processing failure,
  0xA900 an object of another study than the one in the path;
- status 200 when every object was stored, 202 when some were, 409 when none was; 400 for a body that is not
  multipart, 415 for another media type than ``application/dicom``, 406 (nothing stored) when the Accept header
  allows no DICOM JSON (``application/dicom+xml`` only, say).

Parts are spooled to temporary files as they stream in (a part larger than :data:`SPOOL_BYTES` goes to disk), so a
large request does not sit in memory; the objects are then indexed in a worker thread, up to
:data:`api.feeds.dicom_receiver.MAX_GROUP` objects per transaction (each object alone again if a group fails).
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass, field
from typing import IO, Any

from fastapi import APIRouter, Depends, Request, Response
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from starlette.concurrency import run_in_threadpool

from api.context import AppContext
from api.feeds.dicom_receiver import CANNOT_UNDERSTAND, MAX_GROUP, Received, read_header, receive_many
from api.http.deps import ContextDep, Principal, require
from imaging import raw_text
from priorscan.audit import Agent
from priorscan.outcome import ItemOutcome

router = APIRouter(tags=["dicomweb"])
log = logging.getLogger(__name__)

CHANNEL = "stow-rs"
SCOPE = "system/ImagingStudy.c"
DICOM_JSON = "application/dicom+json"
SPOOL_BYTES = 8 * 1024 * 1024
WRONG_STUDY = 0xA900
_SOP_CLASS, _SOP_INSTANCE, _FAILURE_REASON = "00081150", "00081155", "00081197"
_REFERENCED, _FAILED, _RETRIEVE_URL = "00081199", "00081198", "00081190"


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    body: IO[bytes] = field(default_factory=lambda: tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))
    size: int = 0


#: A multipart boundary as RFC 2046 (section 5.1.1) allows it: 1 to 70 characters of its set, not ending in a space.
BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


class TooManyParts(Exception):
    """The body holds more parts than ``settings.dicomweb_max_parts``."""


class _RelatedParts:
    """Collects the parts of a multipart/related body fed to it chunk by chunk (at most ``max_parts``).

    A preamble (text before the first delimiter line, which some MIME writers put there) is skipped unread, as RFC 2046
    (5.1.1) says a reader must: the parser is fed from the first delimiter line on. At most the delimiter's length is
    held while looking for it.
    """

    def __init__(self, boundary: str, max_parts: int) -> None:
        self.parts: list[_Part] = []
        self._max_parts = max_parts
        self._delimiter = b"--" + boundary.encode("latin-1")
        self._preamble: bytearray | None = bytearray()  # None once the first delimiter line was found
        self._at_start = True  # whether the held preamble bytes begin the body
        self._field = b""
        self._value = b""
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_part_data": self._data, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
        })

    def _begin(self) -> None:
        if len(self.parts) >= self._max_parts:  # each part costs a file and, if unreadable, a dead letter
            raise TooManyParts
        self.parts.append(_Part())

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self.parts[-1]
        part.body.write(data[start:end])
        part.size += end - start

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        name = self._field.decode("latin-1").strip().lower()
        self.parts[-1].headers[name] = self._value.decode("latin-1").strip()
        self._field = self._value = b""

    def write(self, chunk: bytes) -> None:
        if self._preamble is not None:
            self._preamble += chunk
            held = bytes(self._preamble)
            if self._at_start and held.startswith(self._delimiter):
                first = 0
            else:
                first = held.find(b"\n" + self._delimiter)
                if first < 0:
                    keep = len(self._delimiter)  # a delimiter line may begin in this chunk and end in the next
                    if len(self._preamble) > keep:
                        del self._preamble[:-keep]
                        self._at_start = False
                    return
                first += 1
            self._preamble = None
            chunk = held[first:]
        self._parser.write(chunk)

    def close(self) -> None:
        for part in self.parts:
            part.body.close()


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    """A Content-Type's media type (lower case) and its parameters (quotes removed)."""
    kind, *params = [p.strip() for p in value.split(";")]
    parsed = {}
    for param in params:
        name, _, raw = param.partition("=")
        parsed[name.strip().lower()] = raw.strip().strip('"')
    return kind.lower(), parsed


#: The media ranges of an Accept header that the Store Instances Response (DICOM JSON) satisfies.
_ACCEPTED_RANGES = ("*/*", "application/*", DICOM_JSON, "application/json")


def _accepts_dicom_json(accept: str | None) -> bool:
    """Whether an Accept header allows the DICOM JSON response (no header, or an empty one, allows anything)."""
    if not accept or not accept.strip():
        return True
    for media_range in accept.split(","):
        kind, params = _media_type(media_range)
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 1.0
        if kind in _ACCEPTED_RANGES and quality > 0:
            return True
    return False


def _problem(status: int, text: str) -> Response:
    return Response(text + "\n", status_code=status, media_type="text/plain")


def _reference(received: Received) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if received.sop_class_uid:
        item[_SOP_CLASS] = {"vr": "UI", "Value": [received.sop_class_uid]}
    if received.sop_instance_uid:
        item[_SOP_INSTANCE] = {"vr": "UI", "Value": [received.sop_instance_uid]}
    return item


def _store_all(context: AppContext, parts: list[_Part], study_uid: str | None, agent: Agent,
               source: str) -> list[Received]:
    """Index the request's objects in one unit of work (each alone if that fails); statuses in request order."""
    results: list[Received | None] = [None] * len(parts)
    wanted: list[tuple[int, bytes]] = []
    for position, part in enumerate(parts):
        kind, _ = _media_type(part.headers.get("content-type", "application/dicom"))
        part.body.seek(0)
        data = part.body.read()
        if kind != "application/dicom":
            results[position] = Received(CANNOT_UNDERSTAND, ItemOutcome.rejected(
                "DICOM", f"part of media type {kind[:60]} (expected application/dicom)", "dicom"))
            continue
        if study_uid is not None:
            try:
                header = read_header(data)
            except Exception:  # unreadable: receive_many() reports and dead-letters it
                header = None
            if header is not None and (raw_text(header, (0x0020, 0x000D)) or "").strip() != study_uid:
                results[position] = Received(WRONG_STUDY, ItemOutcome.rejected(
                    "DICOM", "object of another study than the request's", "dicom"),
                    raw_text(header, (0x0008, 0x0016)), raw_text(header, (0x0008, 0x0018)))
                continue
        wanted.append((position, data))
    for start in range(0, len(wanted), MAX_GROUP):
        group = wanted[start:start + MAX_GROUP]
        received = receive_many(context, [data for _, data in group], channel=CHANNEL, source=source, agent=agent)
        for (position, _), result in zip(group, received, strict=True):
            results[position] = result
    return [r for r in results if r is not None]


async def _stow(request: Request, ctx: AppContext, principal: Principal, study_uid: str | None) -> Response:
    if not _accepts_dicom_json(request.headers.get("accept")):  # PS3.18: before anything is stored
        return _problem(406, f"the Store Instances Response is {DICOM_JSON} only; the Accept header does not allow it")
    kind, params = _media_type(request.headers.get("content-type", ""))
    if kind != "multipart/related":
        return _problem(415 if kind else 400, 'expected multipart/related; type="application/dicom"')
    if params.get("type", "application/dicom").lower() != "application/dicom":
        return _problem(415, "only application/dicom parts are accepted (not DICOM JSON with bulk data)")
    boundary = params.get("boundary")
    if not boundary:
        return _problem(400, "multipart/related without a boundary")
    if not BOUNDARY.fullmatch(boundary):  # the parser refuses a long one by raising: it was a 500
        return _problem(400, "the multipart boundary is not valid (1 to 70 characters, RFC 2046)")
    max_parts = ctx.settings.dicomweb_max_parts
    collected = _RelatedParts(boundary, max_parts)
    try:
        try:
            async for chunk in request.stream():
                collected.write(chunk)
        except MultipartParseError:
            return _problem(400, "the multipart body could not be read")
        except TooManyParts:
            return _problem(413, f"more than {max_parts} parts in one request: send them in several")
        parts = [p for p in collected.parts if p.size]
        if not parts:
            return _problem(400, "no DICOM objects in the request")
        agent = principal.agent
        source = f"{principal.kind}:{principal.name}"[:200] + (f"@{principal.address}" if principal.address else "")
        results = await run_in_threadpool(_store_all, ctx, parts, study_uid, agent, source)
    finally:
        collected.close()
    stored = [r for r in results if r.stored]
    failed = [r for r in results if not r.stored]
    body: dict[str, Any] = {}
    if stored:
        body[_REFERENCED] = {"vr": "SQ", "Value": [_reference(r) for r in stored]}
    if failed:
        body[_FAILED] = {"vr": "SQ", "Value": [
            {**_reference(r), _FAILURE_REASON: {"vr": "US", "Value": [r.status]}} for r in failed]}
    status = 200 if not failed else 202 if stored else 409
    log.info("STOW-RS: %d object(s) stored, %d failed", len(stored), len(failed))
    return Response(json.dumps(body), status_code=status, media_type=DICOM_JSON)


_BODY = {"requestBody": {"required": True, "content": {
    'multipart/related; type="application/dicom"': {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("/dicomweb/studies", response_model=None, openapi_extra=_BODY,
             responses={200: {"content": {DICOM_JSON: {}}, "description": "every object stored"},
                        202: {"description": "some objects stored"}, 409: {"description": "none stored"}})
async def store_instances(request: Request, ctx: ContextDep,
                          principal: Principal = Depends(require(SCOPE))) -> Response:
    """STOW-RS: store DICOM objects (headers indexed, pixel data not kept)."""
    return await _stow(request, ctx, principal, None)


@router.post("/dicomweb/studies/{study}", response_model=None, openapi_extra=_BODY,
             responses={200: {"content": {DICOM_JSON: {}}, "description": "every object stored"},
                        202: {"description": "some objects stored"}, 409: {"description": "none stored"}})
async def store_study_instances(study: str, request: Request, ctx: ContextDep,
                                principal: Principal = Depends(require(SCOPE))) -> Response:
    """STOW-RS into one study: an object of another study fails with reason 0xA900."""
    return await _stow(request, ctx, principal, study.strip())
