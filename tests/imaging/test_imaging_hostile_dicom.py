"""A small hostile DICOM object cannot hold the service: a deflate bomb, or bytes that are no dataset at all, are
refused before they are read, through every door (file, STOW-RS, C-STORE) (hazard log H-SEC-10).

The deflated object is pydicom's public ``image_dfl.dcm`` (Deflated Explicit VR Little Endian, PS3.5 A.5). Before,
pydicom inflated a deflated dataset whole into memory: the same file with a private element of zeros past
:data:`imaging.MAX_INFLATED_BYTES` is about 70 kB on the wire and was inflated to all of it (a larger one exhausted
memory); and a few megabytes of zeros sent as a DICOM object were read by force as hundreds of thousands of empty
elements, seconds of CPU each megabyte, before being refused for naming no study.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom import dcmwrite
from pydicom.data import get_testdata_file
from pydicom.errors import InvalidDicomError
from pynetdicom import AE
from sqlalchemy import select

import imaging.dicom_bytes
from api.context import AppContext
from api.feeds.dicom_scp import StoreScp
from imaging import MAX_INFLATED_BYTES, read_header_bytes
from imaging.tables import Study
from priorscan.settings import Settings
from priorscan.tables import DeadLetter

DEFLATED = Path(str(get_testdata_file("image_dfl.dcm")))
CANNOT_UNDERSTAND = 0xC000


def _bomb() -> pydicom.Dataset:
    """pydicom's deflated file with a private element of zeros one byte past the limit."""
    ds = pydicom.dcmread(DEFLATED)
    ds.private_block(0x0009, "PRIORSCAN TEST", create=True).add_new(0x00, "OB", bytes(MAX_INFLATED_BYTES + 1))
    return ds


def _encoded(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _encoded(_bomb())


@pytest.fixture
def no_whole_inflation(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydicom inflates a deflated dataset with ``zlib.decompress`` in one piece: that must not happen to a bomb."""
    def whole(*_: object) -> bytes:
        raise AssertionError("a deflated dataset was inflated whole")

    monkeypatch.setattr(zlib, "decompress", whole)


def test_the_public_deflated_file_is_still_read() -> None:
    ds = read_header_bytes(DEFLATED.read_bytes())
    assert ds.StudyInstanceUID == pydicom.dcmread(DEFLATED).StudyInstanceUID


def test_a_deflate_bomb_is_refused_before_it_is_inflated(bomb: bytes, no_whole_inflation: None) -> None:
    assert len(bomb) < 1 << 20  # under a megabyte on the wire
    with pytest.raises(InvalidDicomError, match="inflates past"):
        read_header_bytes(bomb)


def test_bytes_that_do_not_begin_as_a_dataset_are_not_read_by_force(monkeypatch: pytest.MonkeyPatch) -> None:
    def forced(*_: object, **options: object) -> None:
        raise AssertionError(f"read with {options}")

    monkeypatch.setattr(imaging.dicom_bytes, "dcmread", forced)
    with pytest.raises(InvalidDicomError, match="do not begin as a dataset"):
        read_header_bytes(bytes(4 << 20))


def test_ingest_reports_a_deflate_bomb_and_goes_on(tmp_path: Path, sqlite_url: str, bomb: bytes,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from priorscan.cli import main

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bomb.dcm").write_bytes(bomb)
    (tmp_path / "in" / "image_dfl.dcm").write_bytes(DEFLATED.read_bytes())
    assert main(["--db", sqlite_url, "ingest", str(tmp_path / "in")]) == 1
    out = capsys.readouterr().out
    assert "1 item(s) accepted, 1 rejected" in out and "inflates past" in out and "bomb.dcm" in out


def test_stow_rs_refuses_a_deflate_bomb_and_stores_the_rest(live_server_sqlite, bomb: bytes) -> None:  # type: ignore[no-untyped-def]
    token = live_server_sqlite.token(["system/ImagingStudy.c"])
    boundary = "hostile"
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
                    for part in (bomb, DEFLATED.read_bytes())) + f"--{boundary}--\r\n".encode()
    response = httpx.post(live_server_sqlite.base_url + "/dicomweb/studies", content=body, timeout=120,
                          headers={"Authorization": f"Bearer {token}",
                                   "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert [i["00081197"]["Value"][0] for i in answer["00081198"]["Value"]] == [CANNOT_UNDERSTAND]
    assert len(answer["00081199"]["Value"]) == 1
    with live_server_sqlite.context.sessions() as session:
        letters = list(session.scalars(select(DeadLetter)))
    assert [d.error_code for d in letters] == ["dicom.corrupt"] and "inflates past" in letters[0].reason


@pytest.fixture
def scp(sqlite_url: str) -> Iterator[tuple[AppContext, StoreScp]]:
    context = AppContext.open(Settings(db=sqlite_url, env="test"))
    server = StoreScp(context, "127.0.0.1", 0).start()
    yield context, server
    server.stop()
    context.engine.dispose()


def test_c_store_refuses_a_deflate_bomb_with_cannot_understand(scp: tuple[AppContext, StoreScp]) -> None:
    context, server = scp
    bomb, image = _bomb(), pydicom.dcmread(DEFLATED)
    syntax = image.file_meta.TransferSyntaxUID
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(image.SOPClassUID, [syntax])
    association = ae.associate("127.0.0.1", server.port, ae_title="PRIORSCAN")
    assert association.is_established
    try:
        statuses = [int(association.send_c_store(ds).Status) for ds in (bomb, image)]
    finally:
        association.release()
    assert statuses == [CANNOT_UNDERSTAND, 0]
    with context.sessions() as session:
        assert [s.study_instance_uid for s in session.scalars(select(Study))] == [image.StudyInstanceUID]
        letters = list(session.scalars(select(DeadLetter)))
    assert len(letters) == 1 and "inflates past" in letters[0].reason
