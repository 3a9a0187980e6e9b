"""Names in other character sets reach the patient index as the sender wrote them, through every HL7 door
(hazard log H-ID-50).

The names are pydicom's public character-set test files (``pydicom/data/charset_files``, from the DICOM standard's
examples and dclunie's test set): the bytes of each file's Patient Name, in the set its Specific Character Set names,
are put in PID-5 of an ADT message whose MSH-18 names the same set as HL7 table 0211 spells it. pydicom's own reading
of the file is the expected name. Before, MLLP read every set but ISO 8859-1 and UTF-8 as ISO 8859-1, and ``priorscan
ingest`` and ``POST /hl7`` ignored MSH-18 altogether: a Greek name arrived as ``ÄÉÏÍÕÓÉÏÓ``, a Polish ``Ł`` as
``£``, and a Japanese one was refused as holding a control character (its escape sequences).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pydicom
import pytest
from feeds_factories import RTK, Ack, send_raw
from pydicom.data import get_charset_files
from sqlalchemy import select

from mpi import SourceRecord
from priorscan.hl7v2 import decode_message
from priorscan.tables import DeadLetter

#: pydicom's file, the HL7 MSH-18 of its Specific Character Set, the component group of the name used
#: (0 alphabetic, 1 ideographic, 2 phonetic).
CHARSET_FILES = [
    ("chrGreek.dcm", "8859/7", 0),  # ISO_IR 126: Διονυσιος
    ("chrRuss.dcm", "8859/5", 0),  # ISO_IR 144: Cyrillic, with Latin look-alike letters inside
    ("chrHbrw.dcm", "8859/8", 0),  # ISO_IR 138: שרון^דבורה
    ("chrArab.dcm", "8859/6", 0),  # ISO_IR 127: قباني^لنزار
    ("chrGerm.dcm", "8859/1", 0),  # ISO_IR 100: Äneas^Rüdiger
    ("chrFren.dcm", "8859/1", 0),  # ISO_IR 100: Buc^Jérôme
    ("chrX1.dcm", "UNICODE UTF-8", 1),  # ISO_IR 192: 王^小東
    ("chrX2.dcm", "GB 18030-2000", 1),  # GB18030: 王^小东
    ("chrJapMulti.dcm", "ISO IR87", 0),  # ISO 2022 IR 87, escape sequences: やまだ^たろう
    ("chrH31.dcm", "ISO IR6~ISO IR87", 1),  # the same set after ASCII as the default: 山田^太郎
]


def _public_name(file_name: str, group: int) -> tuple[bytes, str, str | None]:
    """The Patient Name's bytes (one component group) and its family and given names as pydicom reads them."""
    path = next(Path(p) for p in get_charset_files(file_name))
    dataset = pydicom.dcmread(path)
    raw = dataset.get_item(0x00100010).value.split(b"=")[group].rstrip(b" ")
    name = dataset.PatientName.components[group]
    family, _, rest = name.partition("^")
    return raw, family, rest.split("^")[0] or None


def _message(control: str, local_id: str, charset: str, name: bytes) -> bytes:
    head = (f"MSH|^~\\&|PAS|RTK|PRIORSCAN|REGION|20241101090000||ADT^A04^ADT_A01|{control}|P|2.5||||||{charset}\r"
            "EVN|A04|20241101090000\r").encode("ascii")
    return head + f"PID|1||{local_id}^^^RTK^MR||".encode("ascii") + name + b"||19800101|F\r"


def _record(server, local_id: str) -> SourceRecord | None:  # type: ignore[no-untyped-def]
    with server.context.sessions() as session:
        return session.scalars(select(SourceRecord).where(SourceRecord.namespace == RTK,
                                                          SourceRecord.local_id == local_id)).first()


def _letters(server) -> list[DeadLetter]:  # type: ignore[no-untyped-def]
    with server.context.sessions() as session:
        return list(session.scalars(select(DeadLetter).order_by(DeadLetter.id)))


@pytest.mark.parametrize(("file_name", "charset", "group"), CHARSET_FILES)
def test_a_public_name_is_read_in_the_set_msh18_names(file_name: str, charset: str, group: int) -> None:
    raw, family, given = _public_name(file_name, group)
    decoded = decode_message(_message("C1", "X1", charset, raw))
    assert decoded.problem is None
    assert "||" + "^".join(filter(None, (family, given))) + "||" in decoded.text


def test_mllp_writes_each_public_name_to_the_index_as_pydicom_reads_it(mllp_sqlite) -> None:  # type: ignore[no-untyped-def]
    for n, (file_name, charset, group) in enumerate(CHARSET_FILES):
        raw, family, given = _public_name(file_name, group)
        [ack] = send_raw(mllp_sqlite.port, b"\x0b" + _message(f"CS1{n}", f"CS10000{n}", charset, raw) + b"\x1c\r")
        assert ack.code == "AA", (file_name, ack.text)
        record = _record(mllp_sqlite, f"CS10000{n}")
        assert record is not None and (record.family, record.given) == (family, given), file_name


def test_post_hl7_reads_msh18_as_mllp_does(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    raw, family, given = _public_name("chrGreek.dcm", 0)
    token = live_server_sqlite.token(["priorscan/hl7"])
    response = httpx.post(f"{live_server_sqlite.base_url}/hl7", content=_message("CS2", "CS000002", "8859/7", raw),
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/hl7-v2"})
    assert response.status_code == 200 and Ack(response.text).code == "AA", response.text
    record = _record(live_server_sqlite, "CS000002")
    assert record is not None and (record.family, record.given) == (family, given)


def test_ingest_reads_msh18_as_mllp_does(tmp_path: Path, sqlite_url: str) -> None:
    from priorscan.cli import main

    raw, family, given = _public_name("chrHbrw.dcm", 0)
    feed = tmp_path / "hebrew.hl7"
    feed.write_bytes(_message("CS3", "CS000003", "8859/8", raw))
    assert main(["--db", sqlite_url, "ingest", str(feed)]) == 0
    from priorscan.db import make_engine, session_factory

    engine = make_engine(sqlite_url)
    try:
        with session_factory(engine)() as session:
            record = session.scalars(select(SourceRecord).where(SourceRecord.local_id == "CS000003")).one()
            assert (record.family, record.given) == (family, given)
    finally:
        engine.dispose()


@pytest.mark.parametrize(("charset", "payload", "why"), [
    ("CNS 11643-1992", b"Wang^XiaoDong", "a set of table 0211 that priorscan does not read"),
    ("KLINGON", b"Wang^XiaoDong", "a name that is no character set"),
    ("UNICODE UTF-8", "Müller^Jörg".encode("latin-1"), "ISO 8859-1 bytes sent as UTF-8"),
    ("8859/6", b"\xe2\xc8\xc7\xe6\xea\xff", "a byte that ISO 8859-6 leaves undefined"),
])
def test_bytes_that_are_not_text_in_the_named_set_are_refused_and_kept(mllp_sqlite, charset: str,  # type: ignore[no-untyped-def]
                                                                        payload: bytes, why: str) -> None:
    message = _message("CS4", "CS000004", charset, payload)
    [ack] = send_raw(mllp_sqlite.port, b"\x0b" + message + b"\x1c\r")
    assert ack.code == "AR" and ack.error_code == "103" and ack.error_location.startswith("MSH^1^18"), why
    assert _record(mllp_sqlite, "CS000004") is None, why
    [letter] = _letters(mllp_sqlite)
    assert letter.error_code == "hl7.charset" and letter.raw.encode("latin-1") == message, why  # byte for byte


def test_no_msh18_reads_utf8_then_windows_1252() -> None:
    assert decode_message(_message("C5", "X5", "", "O’Brien^Siân".encode())).text.endswith("O’Brien^Siân||19800101|F\r")
    assert decode_message(_message("C5", "X5", "", "O’Brien^Siân".encode("cp1252"))).encoding == "cp1252"
    assert "O’Brien^Siân" in decode_message(_message("C5", "X5", "", "O’Brien^Siân".encode("cp1252"))).text


def test_mllp_reads_hex_escapes_in_the_set_msh18_names(mllp_sqlite) -> None:  # type: ignore[no-untyped-def]
    """H-HL7-12: ``\\XC4\\`` in an ISO 8859-7 message is Δ (was read as ISO 8859-1: Ä); a hex escape whose bytes are
    not text in the message's set is refused AE 102 and nothing is written (was guessed as ISO 8859-1)."""
    greek = _message("CS6", "CS000006", "8859/7", b"\\XC4\\\\XE9\\\\XEF\\\\XED\\\\XF5\\\\XF3\\\\XE9\\\\XEF\\\\XF2\\")
    [ack] = send_raw(mllp_sqlite.port, b"\x0b" + greek + b"\x1c\r")
    assert ack.code == "AA", ack.text
    record = _record(mllp_sqlite, "CS000006")
    assert record is not None and record.family == "Διονυσιος"
    [refused] = send_raw(mllp_sqlite.port, b"\x0b" + _message("CS7", "CS000007", "UNICODE UTF-8", b"JOS\\XE9\\")
                         + b"\x1c\r")
    assert refused.code == "AE" and refused.error_code == "102" and refused.error_location.startswith("PID^1^5")
    assert _record(mllp_sqlite, "CS000007") is None
    [letter] = _letters(mllp_sqlite)
    assert letter.error_code == "hl7.escape"


@pytest.mark.parametrize(("file_name", "charset"), [
    ("chrGreek.dcm", "ISO IR126"), ("chrGreek.dcm", "ISO_IR 126"), ("chrRuss.dcm", "ISO IR144"),
    ("chrHbrw.dcm", "ISO_IR 138"), ("chrFren.dcm", "ISO_IR 100"), ("chrGreek.dcm", "ISO IR6~ISO IR126"),
])
def test_msh18_naming_an_iso8859_part_by_its_iso_ir_number_is_read(file_name: str, charset: str) -> None:
    """As DICOM's Specific Character Set and RIS bridges write them (were refused AR 103, bar ISO IR100)."""
    raw, family, given = _public_name(file_name, 0)
    decoded = decode_message(_message("C8", "X8", charset, raw))
    assert decoded.problem is None
    assert "||" + "^".join(filter(None, (family, given))) + "||" in decoded.text
