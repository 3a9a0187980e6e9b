"""The bytes of a DICOM object read as a header, within bounds: the one reader for files, STOW-RS parts and C-STOREs.

A DICOM object comes as a Part 10 file (128-byte preamble, ``DICM``, file meta information, then the dataset), as a
dataset without preamble (old archives, some exports), or over the DICOM port as a bare dataset in the presentation
context's transfer syntax. Only the header is read (never pixel data). Two things are refused before pydicom reads a
byte of the dataset, because each would let a small hostile object hold the service:

- bytes with no preamble that do not begin as a dataset does (a little-endian (0002,xxxx) or (0008,xxxx) element):
  read by force, any bytes "parse", and a few megabytes of zeros are hundreds of thousands of empty elements that
  took seconds of CPU each megabyte before being refused for lacking a Study Instance UID;
- a deflated dataset (Deflated Explicit VR Little Endian, PS3.5 A.5) that inflates past :data:`MAX_INFLATED_BYTES`:
  pydicom inflates the whole dataset into memory before reading it, so a deflate bomb (a few hundred kilobytes that
  inflate to gigabytes) exhausted memory, then CPU. The inflated size is counted as it streams, without keeping it.

Both raise :class:`RefusedObject` (an :class:`pydicom.errors.InvalidDicomError`), which every door reports as an
object it cannot understand (STOW-RS and C-STORE 0xC000, ``priorscan ingest`` a rejected file) with its message, which
names no value, keeping the bytes as a dead letter.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filereader import _read_file_meta_info  # the file meta alone, as pydicom reads it
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian

#: Largest dataset a deflated object may inflate to. Deflate is used for structured reports and other small
#: objects (an RDSR of a long fluoroscopy is a few megabytes); pixel data travels in its own compression.
MAX_INFLATED_BYTES = 64 * 1024 * 1024
_PREAMBLE = 128
_CHUNK = 1 << 20

_PIXEL_DATA = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})  # Pixel Data, Float and Double Float Pixel Data


#: What pydicom raises on corrupt or truncated bytes, when a header is read or when an element of it is first used
#: (sequences and values are parsed lazily, so a dose report cut short reads as a header and fails in its content
#: tree): BytesLengthException, a value whose length does not fit its VR; struct.error, a length field cut short;
#: OSError, "no tag to read" inside a sequence; RuntimeError, the RecursionError of sequences nested without end
#: (found by ``python -m bench fuzz`` and by cutting real vendor files short). Reading a header changes nothing, so
#: each means this object is unreadable, and no other.
READ_ERRORS: tuple[type[BaseException], ...] = (
    InvalidDicomError, BytesLengthException, struct.error, OSError, EOFError, ValueError, TypeError, KeyError,
    IndexError, AttributeError, OverflowError, RuntimeError)


class RefusedObject(InvalidDicomError):
    """A DICOM object refused by the bounds above, before pydicom read it; the message names no value of it."""


def before_pixels(tag: BaseTag | int, vr: str | None, length: int) -> bool:
    """``stop_when`` for pydicom: stop at the pixel data."""
    return int(tag) in _PIXEL_DATA


def is_part10(head: bytes) -> bool:
    """True when ``head`` (the first 132 bytes or more) holds the preamble and ``DICM``."""
    return head[_PREAMBLE:_PREAMBLE + 4] == b"DICM"


def begins_like_a_dataset(head: bytes) -> bool:
    """A DICOM stream without preamble starts with a (0002,xxxx) or (0008,xxxx) element, little endian."""
    if len(head) < 8 or head[0:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    vr = head[4:6]
    explicit = vr.isalpha() and vr.isupper()
    implicit_length = int.from_bytes(head[4:8], "little")
    return explicit or implicit_length < 1 << 16


def inflate(data: bytes, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """A deflated dataset's bytes (raw deflate, PS3.5 A.5), refused when they inflate past ``limit``.

    Raises
    ------
    RefusedObject
        When the data is not deflate, or inflates past ``limit``.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise RefusedObject("the deflated dataset is not deflate data") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise RefusedObject(f"the deflated dataset inflates past {limit} bytes")
    return out


def _check_inflated_size(stream: BinaryIO, limit: int) -> None:
    """Count what the rest of ``stream`` inflates to, without keeping it; its position is left where it was."""
    start = stream.tell()
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    try:
        while chunk := stream.read(_CHUNK):
            data = chunk
            while data:
                total += len(inflater.decompress(data, _CHUNK))
                if total > limit:
                    raise RefusedObject(f"the deflated dataset inflates past {limit} bytes")
                data = inflater.unconsumed_tail
    except zlib.error as exc:
        raise RefusedObject("the deflated dataset is not deflate data") from exc
    finally:
        stream.seek(start)


def read_header_from(stream: BinaryIO, *, limit: int = MAX_INFLATED_BYTES) -> Dataset:
    """The header of the DICOM object in ``stream`` (Part 10, or a dataset without preamble), without pixel data.

    Raises
    ------
    RefusedObject
        When the bytes are no DICOM object, a deflated dataset inflates past ``limit``, or neither a SOP Class
        nor a Study Instance UID can be read.
    """
    start = stream.tell()
    head = stream.read(_PREAMBLE + 4)
    stream.seek(start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if is_part10(head):
            stream.seek(start + _PREAMBLE + 4)
            try:
                meta = _read_file_meta_info(stream)
            except Exception as exc:  # a file meta group pydicom cannot read: the object cannot be understood
                raise RefusedObject("the file meta information cannot be read") from exc
            if meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
                _check_inflated_size(stream, limit)
            stream.seek(start)
            ds = dcmread(stream, stop_before_pixels=True)
        elif begins_like_a_dataset(head):
            ds = dcmread(stream, stop_before_pixels=True, force=True)
        else:
            raise RefusedObject("not a DICOM object: no preamble, and the bytes do not begin as a dataset does")
    return identified(ds)


def read_header_bytes(data: bytes, *, limit: int = MAX_INFLATED_BYTES) -> Dataset:
    """:func:`read_header_from` over bytes in memory (a STOW-RS part, a C-STORE made a Part 10 object)."""
    return read_header_from(io.BytesIO(data), limit=limit)


def identified(ds: Dataset) -> Dataset:
    """``ds``, when it names a SOP Class or a Study Instance UID (without a preamble any bytes "parse")."""
    if (0x0008, 0x0016) not in ds and (0x0020, 0x000D) not in ds:
        raise RefusedObject("no SOP Class and no Study Instance UID")
    return ds


def why_unreadable(exc: BaseException) -> str:
    """What a reader's failure is called in a rejection: its type, and its message when it is one of ours (a
    third-party message may quote the bytes it read, a patient's name among them)."""
    return f"{type(exc).__name__}: {exc}" if isinstance(exc, RefusedObject) else type(exc).__name__


__all__ = ["MAX_INFLATED_BYTES", "READ_ERRORS", "RefusedObject", "before_pixels", "begins_like_a_dataset",
           "identified", "inflate", "is_part10", "read_header_bytes", "read_header_from", "why_unreadable"]
