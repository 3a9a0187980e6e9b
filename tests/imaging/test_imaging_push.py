"""DICOM pushed to priorscan: the C-STORE SCP (pynetdicom's SCU as the sender, and a real Orthanc forwarding to it)
and STOW-RS (dicomweb-client's STOW over a real HTTP server). A success status only after commit; failures are
dead letters with a failure status; 401/403 as the rest of the API."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from imaging_factories import CT_IMAGE, XRAY_DOSE_SR, CtEvent, ct_image, ct_rdsr, write
from orthanc_runner import running_orthanc
from pydicom import dcmwrite
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from requests.exceptions import HTTPError
from sqlalchemy import select

from api.context import AppContext
from api.feeds.dicom_scp import StoreScp
from api.http.routers.dicomweb import _RelatedParts
from imaging.tables import Study, StudyInstance
from priorscan.settings import Settings
from priorscan.tables import DeadLetter

ORTHANC_FORWARD_LUA = """
function OnStoredInstance(instanceId, tags, metadata, origin)
  SendToModality(instanceId, 'priorscan')
end
"""


@pytest.fixture
def context(store_url: str) -> Iterator[AppContext]:
    ctx = AppContext.open(Settings(db=store_url, env="test"))
    yield ctx
    ctx.engine.dispose()


@pytest.fixture
def scp(context: AppContext) -> Iterator[StoreScp]:
    server = StoreScp(context, "127.0.0.1", 0).start()
    yield server
    server.stop()


def encoded(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def send(port: int, datasets: list[Dataset], *, called: str = "PRIORSCAN", calling: str = "MODALITY1") -> list[int]:
    """C-STORE each dataset over one association; the status of each."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    for sop_class in {ds.SOPClassUID for ds in datasets}:
        ae.add_requested_context(sop_class)
    association = ae.associate("127.0.0.1", port, ae_title=called)
    assert association.is_established
    try:
        return [int(association.send_c_store(ds).Status) for ds in datasets]
    finally:
        association.release()


def stored(context: AppContext, uid: str) -> Study | None:
    with context.sessions() as session:
        return session.scalars(select(Study).where(Study.study_instance_uid == uid)).first()


def dead_letters(context: AppContext) -> list[DeadLetter]:
    with context.sessions() as session:
        return list(session.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def test_c_store_indexes_each_object_before_its_success_status(context: AppContext, scp: StoreScp) -> None:
    uid = "1.2.826.0.1.3680043.10.7.1"
    image = ct_image(study_uid=uid, description="CT HEAD", ctdivol=40.0)
    report = ct_rdsr([CtEvent("40.0", "700.0", region=("T-D1100", "SRT", "Head"))], dlp_total="700.0",
                     study_uid=uid, description="CT HEAD")
    assert send(scp.port, [image, report]) == [0x0000, 0x0000]
    study = stored(context, uid)  # the status came after the commit: a fresh session sees the study
    assert study is not None and (study.modality, study.body_region, study.dlp_total_mgycm) == ("CT", "head", 700.0)
    with context.sessions() as session:
        instances = {i.sop_instance_uid: i for i in session.scalars(select(StudyInstance))}
    assert set(instances) == {image.SOPInstanceUID, report.SOPInstanceUID}
    assert instances[report.SOPInstanceUID].dose["report"]  # what the RDSR added is remembered
    assert send(scp.port, [image]) == [0x0000]  # sent again: one study, one instance row
    with context.sessions() as session:
        assert len(list(session.scalars(select(StudyInstance)))) == 2
        assert len(list(session.scalars(select(Study)))) == 1
    assert dead_letters(context) == []


def test_c_store_failures_get_a_failure_status_and_a_dead_letter(context: AppContext, scp: StoreScp) -> None:
    without_study = ct_image(study_uid="1.2.826.0.1.3680043.10.7.2")
    del without_study.StudyInstanceUID
    good = ct_image(study_uid="1.2.826.0.1.3680043.10.7.3")
    assert send(scp.port, [without_study, good]) == [0xC000, 0x0000]
    kept = dead_letters(context)
    assert [(d.channel, d.content_type, d.error_code) for d in kept] == [("dicom", "dicom-json", "dicom")]
    assert "Study Instance UID" in kept[0].reason and "MODALITY1@127.0.0.1" == kept[0].source
    header = json.loads(kept[0].raw)
    assert header["00080018"]["Value"] == [without_study.SOPInstanceUID]  # replayable DICOM JSON, no pixels


def test_c_store_refuses_another_called_ae_title_and_answers_echo(scp: StoreScp) -> None:
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(Verification)
    refused = ae.associate("127.0.0.1", scp.port, ae_title="NOTPRIORSCAN")
    assert not refused.is_established and refused.is_rejected
    association = ae.associate("127.0.0.1", scp.port, ae_title="PRIORSCAN")
    try:
        assert int(association.send_c_echo().Status) == 0
    finally:
        association.release()


def test_a_configured_calling_ae_title_qualifies_patient_ids_without_issuer(tmp_path: Path, sqlite_url: str) -> None:
    packaged = Path(Settings().trusts_file).read_text(encoding="utf-8")
    trusts_file = tmp_path / "trusts.toml"
    trusts_file.write_text(packaged.replace('dicom_issuer = "RPC"',
                                            'dicom_issuer = "RPC"\ndicom_ae_titles = ["QVH_CT1"]'), encoding="utf-8")
    assert "QVH_CT1" in trusts_file.read_text(encoding="utf-8")
    context = AppContext.open(Settings(db=sqlite_url, env="test", trusts_file=trusts_file))
    server = StoreScp(context, "127.0.0.1", 0).start()
    try:
        uid = "1.2.826.0.1.3680043.10.7.4"
        assert send(server.port, [ct_image(study_uid=uid, issuer=None, patient_id="Q123456")],
                    calling="QVH_CT1") == [0]
        assert stored(context, uid).patient_issuer == "https://fhir.qvh.nhs.uk/Id/hospital-number"  # type: ignore[union-attr]
        other = "1.2.826.0.1.3680043.10.7.5"
        assert send(server.port, [ct_image(study_uid=other, issuer=None, patient_id="Q123456")],
                    calling="SOMEONE") == [0]
        assert stored(context, other).patient_unresolved  # type: ignore[union-attr]  # kept, never guessed
    finally:
        server.stop()
        context.engine.dispose()


def test_orthanc_forwards_what_it_stores_to_the_c_store_scp(context: AppContext, scp: StoreScp,
                                                            tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.10.7.6"
    with running_orthanc(tmp_path / "orthanc", DicomServerEnabled=True,
                         DicomModalities={"priorscan": ["PRIORSCAN", "127.0.0.1", scp.port]},
                         LuaScripts=[str(_lua(tmp_path))]) as orthanc:
        orthanc.upload(write(ct_image(study_uid=uid, description="CT CHEST"), tmp_path / "a.dcm"))
        orthanc.upload(write(ct_rdsr([CtEvent("8.0", "300.0")], dlp_total="300.0", study_uid=uid,
                                     description="CT CHEST"), tmp_path / "b.dcm"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            study = stored(context, uid)
            if study is not None and study.dlp_total_mgycm == 300.0:
                break
            time.sleep(0.2)
    assert study is not None and (study.body_region, study.dlp_total_mgycm, study.dose_source) == (
        "chest", 300.0, "rdsr")


def _lua(tmp_path: Path) -> Path:
    path = tmp_path / "forward.lua"
    path.write_text(ORTHANC_FORWARD_LUA, encoding="utf-8")
    return path


# --- STOW-RS --------------------------------------------------------------------------------------------------------

def test_stow_rs_stores_each_instance_and_answers_per_instance(live_server) -> None:  # type: ignore[no-untyped-def]
    token = live_server.token(["system/ImagingStudy.c"])
    client = DICOMwebClient(url=live_server.base_url + "/dicomweb", headers={"Authorization": f"Bearer {token}"})
    uid = "1.2.826.0.1.3680043.10.7.7"
    image = ct_image(study_uid=uid, description="CT ABDOMEN")
    report = ct_rdsr([CtEvent("12.0", "450.0")], dlp_total="450.0", study_uid=uid, description="CT ABDOMEN")
    answer = client.store_instances([image, report])
    referenced = {item.ReferencedSOPInstanceUID: item.ReferencedSOPClassUID for item in answer.ReferencedSOPSequence}
    assert referenced == {image.SOPInstanceUID: CT_IMAGE, report.SOPInstanceUID: XRAY_DOSE_SR}
    assert "FailedSOPSequence" not in answer
    study = stored(live_server.context, uid)
    assert study is not None and (study.body_region, study.dlp_total_mgycm) == ("abdomen", 450.0)


def _multipart(parts: list[tuple[str, bytes]], boundary: str = "priorscan-boundary") -> tuple[bytes, str]:
    body = b"".join(f"--{boundary}\r\nContent-Type: {kind}\r\n\r\n".encode() + data + b"\r\n" for kind, data in parts)
    return body + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


def test_stow_rs_skips_a_preamble_before_the_first_boundary(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    """RFC 2046 5.1.1: a reader must ignore what comes before the first delimiter line; MIME writers often put a
    preamble there ("This is a multi-part message in MIME format."). It was refused with 400."""
    token = live_server_sqlite.token(["system/ImagingStudy.c"])
    image = ct_image(study_uid="1.2.826.0.1.3680043.10.7.61")
    body, content_type = _multipart([("application/dicom", encoded(image))])
    response = httpx.post(live_server_sqlite.base_url + "/dicomweb/studies",
                          content=b"This is a multi-part message in MIME format.\r\n--not-the-boundary\r\n\r\n" + body,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": content_type}, timeout=30)
    assert response.status_code == 200, response.text
    assert [i["00081155"]["Value"][0] for i in response.json()["00081199"]["Value"]] == [image.SOPInstanceUID]
    assert stored(live_server_sqlite.context, "1.2.826.0.1.3680043.10.7.61") is not None


@pytest.mark.parametrize(("accept", "status"), [
    ("application/dicom+xml", 406),  # PS3.18: none of the acceptable media types is supported (was 200 with JSON)
    ("application/dicom+json, application/dicom+xml;q=0.5", 200),
    ("application/dicom+json;q=0", 406),  # explicitly not acceptable
    ("*/*", 200),
    ("application/json", 200),
])
def test_stow_rs_answers_406_when_accept_allows_no_dicom_json(live_server_sqlite, accept: str,  # type: ignore[no-untyped-def]
                                                              status: int) -> None:
    token = live_server_sqlite.token(["system/ImagingStudy.c"])
    uid = f"1.2.826.0.1.3680043.10.7.{70 + len(accept)}"
    body, content_type = _multipart([("application/dicom", encoded(ct_image(study_uid=uid)))])
    response = httpx.post(live_server_sqlite.base_url + "/dicomweb/studies", content=body, timeout=30, headers={
        "Authorization": f"Bearer {token}", "Content-Type": content_type, "Accept": accept})
    assert response.status_code == status, response.text
    assert (stored(live_server_sqlite.context, uid) is not None) == (status == 200), "406: nothing stored"


@pytest.mark.parametrize("preamble", [b"", b"preamble\r\n"], ids=["none", "preamble"])
def test_related_parts_find_the_first_delimiter_line_across_chunks(preamble: bytes) -> None:
    """Fed one byte at a time (the delimiter line split over many chunks), with and without a preamble."""
    body, _ = _multipart([("application/dicom", b"first"), ("application/dicom", b"second")], boundary="b")
    collected = _RelatedParts("b", max_parts=10)
    for byte in preamble + body:
        collected.write(bytes([byte]))
    contents = []
    for part in collected.parts:
        part.body.seek(0)
        contents.append(part.body.read())
    collected.close()
    assert contents == [b"first", b"second"]


def test_stow_rs_reports_failed_instances_with_their_reason(live_server) -> None:  # type: ignore[no-untyped-def]
    token = live_server.token(["system/ImagingStudy.c"])
    good = ct_image(study_uid="1.2.826.0.1.3680043.10.7.8")
    no_study = ct_image(study_uid="1.2.826.0.1.3680043.10.7.9")
    del no_study.StudyInstanceUID
    body, content_type = _multipart([("application/dicom", encoded(good)), ("application/dicom", encoded(no_study)),
                                     ("application/dicom", b"not DICOM at all" * 20)])
    response = httpx.post(live_server.base_url + "/dicomweb/studies", content=body,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": content_type}, timeout=30)
    assert response.status_code == 202 and response.headers["content-type"].startswith("application/dicom+json")
    answer = response.json()
    assert [i["00081155"]["Value"][0] for i in answer["00081199"]["Value"]] == [good.SOPInstanceUID]
    failed = answer["00081198"]["Value"]
    assert [(i.get("00081155", {}).get("Value", [None])[0], i["00081197"]["Value"][0]) for i in failed] == [
        (no_study.SOPInstanceUID, 0xC000), (None, 0xC000)]
    kinds = sorted(d.content_type for d in dead_letters(live_server.context))
    assert kinds == ["dicom", "dicom-json"]  # the unreadable bytes and the refused header, both kept

    body, content_type = _multipart([("application/dicom", encoded(no_study))])
    response = httpx.post(live_server.base_url + "/dicomweb/studies", content=body,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": content_type}, timeout=30)
    assert response.status_code == 409 and "00081199" not in response.json()


def test_stow_rs_into_a_study_refuses_objects_of_another(live_server) -> None:  # type: ignore[no-untyped-def]
    token = live_server.token(["system/ImagingStudy.c"])
    client = DICOMwebClient(url=live_server.base_url + "/dicomweb", headers={"Authorization": f"Bearer {token}"})
    mine, other = ct_image(study_uid="1.2.826.0.1.3680043.10.7.10"), ct_image(study_uid="1.2.826.0.1.3680043.10.7.11")
    answer = client.store_instances([mine, other], study_instance_uid="1.2.826.0.1.3680043.10.7.10")
    assert [i.ReferencedSOPInstanceUID for i in answer.ReferencedSOPSequence] == [mine.SOPInstanceUID]
    assert [(i.ReferencedSOPInstanceUID, i.FailureReason) for i in answer.FailedSOPSequence] == [
        (other.SOPInstanceUID, 0xA900)]
    assert stored(live_server.context, "1.2.826.0.1.3680043.10.7.11") is None


def test_stow_rs_is_authenticated_scoped_and_typed(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    server = live_server_sqlite
    body, content_type = _multipart([("application/dicom", encoded(ct_image()))])
    url = server.base_url + "/dicomweb/studies"
    assert httpx.post(url, content=body, headers={"Content-Type": content_type}).status_code == 401
    reader = server.token(["system/ImagingStudy.rs"], client="reader")
    assert httpx.post(url, content=body, headers={"Content-Type": content_type,
                                                  "Authorization": f"Bearer {reader}"}).status_code == 403
    writer = server.token(["system/ImagingStudy.c"], client="writer")
    auth = {"Authorization": f"Bearer {writer}"}
    assert httpx.post(url, content=b"{}", headers={**auth, "Content-Type": "application/json"}).status_code == 415
    assert httpx.post(url, content=body, headers={**auth, "Content-Type": content_type.replace(
        "application/dicom", "application/dicom+json")}).status_code == 415
    client = DICOMwebClient(url=server.base_url + "/dicomweb", headers={"Authorization": f"Bearer {reader}"})
    with pytest.raises(HTTPError):
        client.store_instances([ct_image()])
    with server.context.sessions() as session:
        assert session.scalars(select(Study)).first() is None


def test_objects_from_concurrent_associations_share_transactions_and_all_commit(context: AppContext,
                                                                                  scp: StoreScp) -> None:
    import threading

    batches = [[ct_image(study_uid=f"1.2.826.0.1.3680043.10.7.20.{a}", description="CT CHEST") for _ in range(10)]
               for a in range(4)]
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda b=batch: statuses.extend(send(scp.port, b, calling=f"MOD{len(b)}")))
               for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [0] * 40
    with context.sessions() as session:
        assert len(list(session.scalars(select(StudyInstance)))) == 40
        assert len(list(session.scalars(select(Study)))) == 4


def test_a_group_with_a_refused_object_is_applied_one_by_one(context: AppContext,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from api.feeds.dicom_receiver import receive_many
    from imaging.index import StudyIndex
    from priorscan.audit import Agent
    from priorscan.errors import DicomError

    bad = "1.2.826.0.1.3680043.10.7.30.2"
    original = StudyIndex.apply

    def refusing(self, facts, *, actor):  # type: ignore[no-untyped-def]
        if facts.study_instance_uid == bad:
            raise DicomError("refused by the index", code="dicom")
        return original(self, facts, actor=actor)

    monkeypatch.setattr(StudyIndex, "apply", refusing)
    objects = [encoded(ct_image(study_uid=f"1.2.826.0.1.3680043.10.7.30.{n}")) for n in (1, 2, 3)]
    results = receive_many(context, objects, channel="stow-rs", source="test", agent=Agent("client", "test"))
    assert [r.status for r in results] == [0x0000, 0xC000, 0x0000]
    assert stored(context, "1.2.826.0.1.3680043.10.7.30.1") is not None
    assert stored(context, "1.2.826.0.1.3680043.10.7.30.3") is not None
    assert stored(context, bad) is None
    assert [d.reason for d in dead_letters(context)] == ["refused by the index"]


#: Real dose reports cut short as a failed transfer leaves them, at a byte where the header still reads but the
#: content tree does not (pydicom parses a sequence when it is first used): OSError "no tag to read", struct.error
TRUNCATED_REPORTS = [("CT-RDSR-Toshiba_DoseCheck.dcm", 1765), ("CT-RDSR-Toshiba_DoseCheck.dcm", 7712),
                     ("CT-RDSR-GEPixelMed.dcm", 2790), ("CT-RDSR-Siemens-Continued-1.dcm", 8978)]


@pytest.mark.parametrize(("name", "cut"), TRUNCATED_REPORTS)
def test_a_truncated_dose_report_is_refused_alone_and_the_objects_pushed_with_it_are_stored(
        context: AppContext, openrem_files: dict[str, Path], tmp_path: Path, name: str, cut: int) -> None:
    """The error a truncated report raised while its content tree was read escaped the reader and failed every object
    of its STOW-RS request or C-STORE group (0x0110, none stored); ``priorscan ingest``'s own entry point raised."""
    from api.feeds.dicom_receiver import receive_many
    from imaging import ingest_dicom_file
    from priorscan.audit import Agent

    truncated = openrem_files[name].read_bytes()[:cut]
    images = [ct_image(study_uid=f"1.2.826.0.1.3680043.10.7.31.{n}") for n in (1, 2)]
    results = receive_many(context, [encoded(images[0]), truncated, encoded(images[1])], channel="stow-rs",
                           source="test", agent=Agent("client", "test"))
    assert [r.status for r in results] == [0x0000, 0xC000, 0x0000]
    assert all(stored(context, image.StudyInstanceUID) is not None for image in images)
    assert "could not be read" in (results[1].outcome.reason or "")
    assert len(dead_letters(context)) == 1
    path = tmp_path / "cut.dcm"
    path.write_bytes(truncated)
    outcome = ingest_dicom_file(context.sessions, context.trusts, path, agent=Agent("user", "test"))
    assert not outcome.accepted and outcome.error_code == "dicom"


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99",
                                    "1.2.840.10008.1.2.2"])
def test_c_store_reads_the_dataset_in_the_transfer_syntax_it_was_sent_in(context: AppContext, scp: StoreScp,
                                                                         syntax: str) -> None:
    """The SCP hands on the dataset's bytes as they came (no file meta); the writer makes the Part 10 object from the
    presentation context's transfer syntax: implicit and explicit VR, deflated, big endian."""
    uid = f"1.2.826.0.1.3680043.10.7.40.{syntax.rsplit('.', 1)[1]}"
    image = ct_image(study_uid=uid, description="CT CHEST", ctdivol=9.0)
    if getattr(image, "file_meta", None) is not None:
        image.file_meta.TransferSyntaxUID = syntax  # pynetdicom encodes the dataset in the syntax its meta names
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(image.SOPClassUID, [syntax])
    association = ae.associate("127.0.0.1", scp.port, ae_title="PRIORSCAN")
    assert association.is_established
    try:
        assert association.accepted_contexts[0].transfer_syntax == [syntax]
        assert int(association.send_c_store(image).Status) == 0
    finally:
        association.release()
    study = stored(context, uid)
    assert study is not None and (study.modality, study.body_region) == ("CT", "chest")
    with context.sessions() as session:
        instance = session.scalars(select(StudyInstance)).one()
    assert (instance.sop_instance_uid, instance.sop_class_uid) == (image.SOPInstanceUID, image.SOPClassUID)


def test_c_store_indexes_in_a_writer_process_and_a_dead_writer_answers_out_of_resources(context: AppContext) -> None:
    import os
    import signal

    server = StoreScp(context, "127.0.0.1", 0, processes=1).start()
    try:
        writer = server._writer.processes if server._writer is not None else None
        assert writer is not None
        deadline = time.monotonic() + 60
        while not writer.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        [pid] = writer.pids()
        assert pid != os.getpid()
        first = "1.2.826.0.1.3680043.10.7.41.1"
        assert send(server.port, [ct_image(study_uid=first, description="CT HEAD")]) == [0]
        assert stored(context, first) is not None  # committed by the writer process before the status
        os.kill(pid, signal.SIGKILL)
        while writer.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        lost = "1.2.826.0.1.3680043.10.7.41.2"
        assert send(server.port, [ct_image(study_uid=lost, description="CT HEAD")]) == [0xA700]  # send it again
        assert stored(context, lost) is None
        assert send(server.port, [ct_image(study_uid=lost, description="CT HEAD")]) == [0]  # fresh writers
        assert stored(context, lost) is not None
    finally:
        server.stop()


def test_an_association_acknowledges_at_once() -> None:
    """A sender with Nagle's algorithm on (storescu, pynetdicom) waits for the command's acknowledgement before the
    dataset: the SCP's socket sends statuses at once and acknowledges every read at once (bench pacs push measures
    what it is worth)."""
    import socket
    from types import SimpleNamespace

    from api.feeds.dicom_scp import _prompt_acknowledgements

    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as sender:
        accepted, _ = server.accept()
        with accepted:
            transport = SimpleNamespace(socket=accepted)
            _prompt_acknowledgements(SimpleNamespace(assoc=SimpleNamespace(dul=SimpleNamespace(socket=transport))))
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            sender.sendall(b"x")
            assert transport.socket.recv(1) == b"x"
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK), "quick acknowledgements per read"
            assert transport.socket.fileno() == accepted.fileno()  # select() and close() still reach the socket


def test_every_success_status_from_concurrent_associations_finds_its_object_committed(context: AppContext) -> None:
    """Objects of four associations at once through a writer process, which gathers its groups from its pipe: the
    moment a success status reaches its sender, a fresh session of another process's connection finds the object."""
    import threading

    server = StoreScp(context, "127.0.0.1", 0, processes=1).start()
    seen: list[tuple[int, bool]] = []

    def sender(association_number: int) -> None:
        ae = AE(ae_title=f"MOD{association_number}")
        ae.add_requested_context(CT_IMAGE)
        association = ae.associate("127.0.0.1", server.port, ae_title="PRIORSCAN")
        assert association.is_established
        try:
            for n in range(8):
                image = ct_image(study_uid=f"1.2.826.0.1.3680043.10.7.50.{association_number}.{n % 2}")
                status = int(association.send_c_store(image).Status)
                with context.sessions() as session:
                    found = session.scalars(select(StudyInstance).where(
                        StudyInstance.sop_instance_uid == image.SOPInstanceUID)).first() is not None
                seen.append((status, found))
        finally:
            association.release()

    try:
        threads = [threading.Thread(target=sender, args=(a,)) for a in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.stop()
    assert seen == [(0, True)] * 32


def test_a_writer_process_that_dies_holding_objects_answers_them_out_of_resources(context: AppContext) -> None:
    """An object written into a writer's pipe whose worker then dies before committing it: its sender gets 0xA700
    (send it again), and the store does not hold it."""
    import os
    import signal
    import threading

    server = StoreScp(context, "127.0.0.1", 0, processes=1).start()
    try:
        writer = server._writer.processes if server._writer is not None else None
        assert writer is not None
        warm = "1.2.826.0.1.3680043.10.7.51.1"
        assert send(server.port, [ct_image(study_uid=warm)]) == [0]  # the worker is up and has its store
        [pid] = writer.pids()
        os.kill(pid, signal.SIGSTOP)  # it takes nothing more from its pipe
        held = "1.2.826.0.1.3680043.10.7.51.2"
        statuses: list[int] = []
        thread = threading.Thread(target=lambda: statuses.extend(send(server.port, [ct_image(study_uid=held)])))
        thread.start()
        deadline = time.monotonic() + 60
        while not writer.waiting and time.monotonic() < deadline:  # the object is in the pipe, its sender waits
            time.sleep(0.02)
        assert writer.waiting
        os.kill(pid, signal.SIGKILL)
        thread.join(timeout=60)
        assert statuses == [0xA700]
        assert stored(context, held) is None
    finally:
        server.stop()


def test_a_pushed_group_reads_its_held_studies_once_however_many_it_names(context: AppContext) -> None:
    """The studies a group's objects update are found (and row-locked), and their rejections and instances read, in
    one statement each for the whole group, not one per study: the same rows are written."""
    from sqlalchemy import event

    from api.feeds.dicom_receiver import receive_many
    from priorscan.audit import Agent
    from priorscan.tables import AuditEvent

    agent = Agent("client", "test")
    held = [f"1.2.826.0.1.3680043.10.7.40.{n}" for n in range(3)]
    first = receive_many(context, [encoded(ct_image(study_uid=uid, ctdivol=10.0)) for uid in held], channel="stow-rs",
                         source="test", agent=agent)
    assert [r.status for r in first] == [0x0000] * 3
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, ctx, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()))

    group = [ct_image(study_uid=uid, ctdivol=30.0) for uid in held] + [
        ct_image(study_uid="1.2.826.0.1.3680043.10.7.40.9")]  # and a study new to the store
    event.listen(context.engine, "before_cursor_execute", seen)
    try:
        second = receive_many(context, [encoded(ds) for ds in group], channel="stow-rs", source="test", agent=agent)
    finally:
        event.remove(context.engine, "before_cursor_execute", seen)
    assert [r.status for r in second] == [0x0000] * 4
    study_reads = [s for s in statements if s.startswith("SELECT study.id, study.study_instance_uid")]
    assert len(study_reads) == 1  # was one to tell held from new, then one a held study
    assert len([s for s in statements if "FROM instance_rejection" in s]) == 1  # was one for new, one a held study
    assert len([s for s in statements if "FROM study_instance" in s]) == 1  # was one for new, one for held
    if context.engine.dialect.name == "postgresql":
        assert "FOR UPDATE OF study" in study_reads[0]  # held studies locked as before, all at once
    with context.sessions() as session:
        studies = {s.study_instance_uid: s for s in session.scalars(select(Study))}
        assert len(list(session.scalars(select(StudyInstance)))) == 7
        assert len(list(session.scalars(select(AuditEvent).where(AuditEvent.event_type == "dicom")))) == 7
    assert [studies[uid].ctdivol_mgy for uid in held] == [30.0] * 3  # the highest CTDIvol of each study's images
    assert len(studies) == 4


@pytest.fixture
def pg_context(pg_url: str) -> Iterator[AppContext]:
    """An application context on PostgreSQL, for what only PostgreSQL does."""
    ctx = AppContext.open(Settings(db=pg_url, env="test"))
    yield ctx
    ctx.engine.dispose()


def test_a_pushed_group_on_postgresql_writes_its_rows_without_copy(pg_context: AppContext,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A pushed group's few rows go as INSERT statements in one pipeline (one round trip), not by COPY (two a
    table; COPY is PostgreSQL's); the rows are those COPY wrote."""
    context = pg_context
    import psycopg

    from api.feeds.dicom_receiver import receive_many
    from priorscan.audit import Agent

    def no_copy(*args: object, **kwargs: object) -> None:
        raise AssertionError("COPY used for a pushed group")

    monkeypatch.setattr(psycopg.Cursor, "copy", no_copy)
    uid = "1.2.826.0.1.3680043.10.7.41.1"
    report = ct_rdsr([CtEvent("40.0", "700.0", region=("T-D1100", "SRT", "Head"))], dlp_total="700.0",
                     study_uid=uid, description="CT HEAD")
    images = [ct_image(study_uid=uid, description="CT HEAD", ctdivol=40.0) for _ in range(2)]
    results = receive_many(context, [encoded(ds) for ds in [*images, report]], channel="stow-rs", source="test",
                           agent=Agent("client", "test"))
    assert [r.status for r in results] == [0x0000] * 3
    study = stored(context, uid)
    assert study is not None and (study.irradiation_events, study.dlp_total_mgycm) == (1, 700.0)
    with context.sessions() as session:
        assert len(list(session.scalars(select(StudyInstance)))) == 3


@pytest.mark.parametrize(("boundary", "why"), [
    ("b" * 71, "longer than RFC 2046's 70 (the parser raised on more than 256: a 500)"),
    ("b" * 5000, "far longer"),
    ("ends-in-space ", "a space at the end"),
], ids=["71-characters", "5000-characters", "space-at-the-end"])
def test_stow_rs_refuses_an_invalid_boundary_with_400(live_server_sqlite, boundary: str, why: str) -> None:  # type: ignore[no-untyped-def]
    token = live_server_sqlite.token(["system/ImagingStudy.c"])
    body, content_type = _multipart([("application/dicom", encoded(ct_image()))], boundary=boundary)
    response = httpx.post(live_server_sqlite.base_url + "/dicomweb/studies", content=body, timeout=30, headers={
        "Authorization": f"Bearer {token}", "Content-Type": content_type.replace(f"boundary={boundary}",
                                                                                 f'boundary="{boundary}"')})
    assert response.status_code == 400, why
    assert dead_letters(live_server_sqlite.context) == [], "nothing stored nor dead-lettered"


def test_stow_rs_refuses_more_parts_than_the_limit_before_storing_any(live_server_with) -> None:  # type: ignore[no-untyped-def]
    """Before, a 4 MB body of 100 000 one-byte parts kept the server busy for over three minutes, writing a dead
    letter for each part."""
    server = live_server_with(dicomweb_max_parts=3)
    token = server.token(["system/ImagingStudy.c"])
    auth = {"Authorization": f"Bearer {token}"}
    images = [ct_image(study_uid=f"1.2.826.0.1.3680043.10.7.{20 + n}") for n in range(4)]
    body, content_type = _multipart([("application/dicom", encoded(image)) for image in images])
    response = httpx.post(server.base_url + "/dicomweb/studies", content=body, timeout=30,
                          headers={**auth, "Content-Type": content_type})
    assert response.status_code == 413, response.text
    assert all(stored(server.context, image.StudyInstanceUID) is None for image in images), "no partial write"
    body, content_type = _multipart([("application/dicom", encoded(image)) for image in images[:3]])
    assert httpx.post(server.base_url + "/dicomweb/studies", content=body, timeout=30,
                      headers={**auth, "Content-Type": content_type}).status_code == 200
