"""A small DICOM Part 10 encoder for the headers the generator writes: explicit VR little endian, defined lengths.

pydicom's general-purpose writer spends most of its time on checks and conversions that generated, well-formed
headers do not need (it dominated generation time). This module encodes a dataset given as a mapping of keyword to
value, looking tags and VRs up in pydicom's data dictionary, and produces the same bytes pydicom would write (the
tests compare the two). Reading stays with pydicom.

Values: ``str`` for text VRs (DS and IS pre-formatted), ``int`` for US/UL/SS/SL, ``float`` for FD/FL, ``bytes`` for
OB, and a list of mappings for SQ.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLEMENTATION_VERSION = "REGIONSYNTH_1"
_LONG_LENGTH = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_NUMBERS = {"US": "<H", "UL": "<I", "SS": "<h", "SL": "<l", "FD": "<d", "FL": "<f"}
_ITEM = struct.pack("<HH", 0xFFFE, 0xE000)


@lru_cache(maxsize=1024)
def _tag_and_vr(keyword: str) -> tuple[int, str, bytes]:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"unknown DICOM keyword {keyword}")
    vr = dictionary_VR(tag)
    if len(vr) != 2:
        raise ValueError(f"{keyword} has an ambiguous VR ({vr}); the encoder does not write it")
    return tag, vr, struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("ascii")


def _value(vr: str, value: Any) -> bytes:
    if vr == "SQ":
        out = bytearray()
        for item in value:
            encoded = encode_dataset(item)
            out += _ITEM + struct.pack("<I", len(encoded)) + encoded
        return bytes(out)
    if vr in _NUMBERS:
        values = value if isinstance(value, list | tuple) else [value]
        return b"".join(struct.pack(_NUMBERS[vr], v) for v in values)
    if vr == "OB":
        data = bytes(value)
        return data + b"\x00" if len(data) % 2 else data
    text = "\\".join(value) if isinstance(value, list | tuple) else str(value)
    data = text.encode("ascii")
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


def encode_element(keyword: str, value: Any) -> bytes:
    """One data element: tag, VR, length and value."""
    _, vr, header = _tag_and_vr(keyword)
    data = _value(vr, value)
    if vr in _LONG_LENGTH:
        return header + b"\x00\x00" + struct.pack("<I", len(data)) + data
    return header + struct.pack("<H", len(data)) + data


def encode_dataset(dataset: Mapping[str, Any]) -> bytes:
    """A dataset's elements in tag order (elements whose value is None are left out)."""
    ordered = sorted((_tag_and_vr(k)[0], k) for k, v in dataset.items() if v is not None)
    return b"".join(encode_element(keyword, dataset[keyword]) for _, keyword in ordered)


def encode_file(dataset: Mapping[str, Any]) -> bytes:
    """A DICOM Part 10 file: preamble, ``DICM``, File Meta Information and the dataset."""
    meta = encode_dataset({
        "FileMetaInformationVersion": b"\x00\x01",
        "MediaStorageSOPClassUID": dataset["SOPClassUID"],
        "MediaStorageSOPInstanceUID": dataset["SOPInstanceUID"],
        "TransferSyntaxUID": EXPLICIT_VR_LITTLE_ENDIAN,
        "ImplementationClassUID": PYDICOM_IMPLEMENTATION_UID,
        "ImplementationVersionName": IMPLEMENTATION_VERSION,
    })
    group_length = encode_element("FileMetaInformationGroupLength", len(meta))
    return b"\x00" * 128 + b"DICM" + group_length + meta + encode_dataset(dataset)
