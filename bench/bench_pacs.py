"""PACS coverage benchmarks: DICOM pushed to priorscan, and a poll of a PACS that must find every study.

``python -m bench pacs push [--objects 2000] [--backend sqlite|postgresql] [--associations 4] [--batch 50]
[--writer-processes N] [--only c-store|stow-rs] [--sender dcmtk|pynetdicom]``
    Writes N header-only DICOM objects (CT series and RDSRs, radiographs, mammograms: ``bench_imaging``'s
    generator), then sends them (a) by C-STORE to ``serve --dicom-port``'s SCP over ``--associations`` concurrent
    associations (``--sender dcmtk``, the default where DCMTK is installed: a ``storescu`` process per association,
    the C sender PACS and modalities commonly run; ``--sender pynetdicom``: pynetdicom's SCU in processes of their
    own, associated before the clock starts, whose own CPU competes with the SCP's; the SCP with its writer
    processes as ``serve`` starts it unless ``--writer-processes`` says otherwise; the clock starts once they have
    started, as a running server's have), and (b) by STOW-RS to a real
    HTTP server in requests of ``--batch`` objects over as many connections, each into a fresh store. Objects/s
    counts objects whose success status came back, which is sent only after each object's commit; each line says
    how many the store holds.

``python -m bench pacs poll [--studies 10000] [--late 100] [--backend sqlite|postgresql]``
    Loads a real Orthanc (its DICOMweb plugin) with N studies (one header-only CT image each, dates spread over
    twenty years), polls it once into a fresh store (the time, and whether every study was indexed), then adds
    ``--late`` studies with old dates (late arrivals: imports, back-loaded archives) and polls until they are all
    indexed, printing the time and the number of polls against the bound the poll states.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sqlalchemy import create_engine, text

from bench.bench_imaging import write_objects
from bench.stores import PG_ADMIN

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fresh_store(backend: str, root: Path) -> Iterator[str]:
    """An empty store's URL (migrated on first open), dropped afterwards on PostgreSQL."""
    if backend == "sqlite":
        yield f"sqlite:///{root}/bench-{uuid.uuid4().hex[:6]}.db"
        return
    name = f"priorscan_bench_pacs_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _count(context, table: str) -> int:  # type: ignore[no-untyped-def]
    with context.engine.connect() as conn:
        return int(conn.execute(text(f"select count(*) from {table}")).scalar() or 0)


# --- push -----------------------------------------------------------------------------------------------------------

def _objects(root: Path, count: int) -> list[bytes]:
    paths = write_objects(root, count)
    return [p.read_bytes() for p in paths]


def _split(items: list[bytes], parts: int) -> list[list[bytes]]:
    return [items[i::parts] for i in range(parts)]


def _c_store_sender(port: int, paths: list[str], ready: Any, go: Any, failures: Any) -> None:
    """One association's worth of C-STOREs, in a process of its own (so the SCP's CPU is measured alone): it reads
    its objects and associates, then waits for every sender to be ready before sending."""
    from pynetdicom import AE

    datasets = [dcmread(p) for p in paths]
    ae = AE(ae_title="BENCH")
    for sop_class in {ds.SOPClassUID for ds in datasets}:
        ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    association = ae.associate("127.0.0.1", port, ae_title="PRIORSCAN")
    ready.wait()
    go.wait()
    try:
        for ds in datasets:
            status = association.send_c_store(ds)
            if int(getattr(status, "Status", 0xFFFF)) != 0:
                with failures.get_lock():
                    failures.value += 1
    finally:
        association.release()


def _cpu_seconds(pid: int) -> float:
    """A process's user and system CPU time so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _writers_started(pids: list[int], limit_s: float = 60.0) -> None:
    """Wait until the writer processes have started (imported, opened the store: their CPU stops growing), as a
    running ``serve``'s have, so that the clock measures pushing, not their start (a second or more of CPU each)."""
    started, last, idle = time.monotonic(), -1.0, 0
    while pids and idle < 2 and time.monotonic() - started < limit_s:
        time.sleep(0.5)
        now = sum(_cpu_seconds(pid) for pid in pids)
        idle, last = (idle + 1 if now - last < 0.03 else 0), now
    print(f"writer processes started: waited {time.monotonic() - started:.1f} s")


def _send_dcmtk(port: int, folders: list[Path]) -> tuple[int, float]:
    """Send each folder over an association of its own with DCMTK's ``storescu`` (a C SCU, as PACS and modalities
    run), all at once; the number of senders that failed and their CPU seconds."""
    before = os.times()
    senders = [subprocess.Popen(["storescu", "-aet", "BENCH", "-aec", "PRIORSCAN", "-R", "+sd", "127.0.0.1", str(port),
                                 str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for folder in folders]
    failed = 0
    for sender in senders:
        _, err = sender.communicate()
        if sender.returncode != 0:
            failed += 1
            print(f"storescu exited with {sender.returncode}: {err.decode(errors='replace')[-300:]}")
    after = os.times()
    return failed, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def bench_c_store(url: str, root: Path, objects: list[bytes], associations: int,
                  processes: int | None, sender_kind: str) -> tuple[float, int]:
    import multiprocessing

    from api.context import AppContext
    from api.feeds.dicom_scp import StoreScp
    from priorscan.settings import Settings

    context = AppContext.open(Settings(db=url, env="test"))
    scp = StoreScp(context, "127.0.0.1", 0, processes=processes).start()
    writer = scp._writer.processes if scp._writer is not None else None
    writer_pids = writer.pids() if writer is not None else []
    (root / "send").mkdir(exist_ok=True)
    paths = []
    for n, data in enumerate(objects):
        folder = root / "send" / str(n % associations)
        folder.mkdir(exist_ok=True)
        path = folder / f"{n:06d}.dcm"
        path.write_bytes(data)
        paths.append(str(path))
    _writers_started(writer_pids)
    if sender_kind == "dcmtk":
        writer_cpu = sum(_cpu_seconds(pid) for pid in writer_pids)
        started, cpu = time.perf_counter(), time.process_time()
        failed, sender_cpu = _send_dcmtk(scp.port, [root / "send" / str(a) for a in range(associations)])
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        writer_cpu = sum(_cpu_seconds(pid) for pid in writer_pids) - writer_cpu
        return _c_store_report(scp, context, len(objects), associations, elapsed, cpu, writer_pids, writer_cpu,
                               f"{failed} of {associations} storescu sender(s) failed, "
                               f"{len(objects) / max(sender_cpu, 1e-9):.0f} objects per CPU-second of the senders")
    spawn = multiprocessing.get_context("spawn")
    failures = spawn.Value("i", 0)
    ready, go = spawn.Barrier(associations + 1), spawn.Barrier(associations + 1)
    senders = [spawn.Process(target=_c_store_sender, args=(scp.port, sorted(paths)[i::associations], ready, go,
                                                           failures))
               for i in range(associations)]
    for sender in senders:
        sender.start()
    ready.wait(timeout=600)  # every sender has read its objects and holds an association
    writer_cpu = sum(_cpu_seconds(pid) for pid in writer_pids)
    started, cpu = time.perf_counter(), time.process_time()
    go.wait()
    for sender in senders:
        sender.join()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    writer_cpu = sum(_cpu_seconds(pid) for pid in writer_pids) - writer_cpu
    return _c_store_report(scp, context, len(objects), associations, elapsed, cpu, writer_pids, writer_cpu,
                           f"{failures.value} failure status(es); pynetdicom senders associated before the clock")


def _c_store_report(scp: Any, context: Any, count: int, associations: int, elapsed: float, cpu: float,
                    writer_pids: list[int], writer_cpu: float, senders: str) -> tuple[float, int]:
    scp.stop()
    stored = _count(context, "study_instance")
    context.engine.dispose()
    where = (f"{len(writer_pids)} writer process(es): {count / writer_cpu:.0f} objects per CPU-second of the "
             f"writers, {count / cpu:.0f} per CPU-second of the SCP's process" if writer_pids and writer_cpu
             else f"no writer process: {count / cpu:.0f} objects per CPU-second of the SCP's process")
    print(f"C-STORE: {stored} of {count} objects in the store after {elapsed:.1f} s over {associations} "
          f"associations: {count / elapsed:.0f} objects/s committed; {where}; {senders} "
          f"(load average {os.getloadavg()[0]:.1f})")
    return count / elapsed, stored


def bench_stow(url: str, objects: list[bytes], connections: int, batch: int) -> tuple[float, int]:
    import uvicorn

    from api.context import AppContext
    from api.http.app import create_app
    from api.http.deps import token_hash
    from priorscan.settings import Settings
    from priorscan.tables import ApiClient

    context = AppContext.open(Settings(db=url, env="test"))
    token = "ps_bench_" + uuid.uuid4().hex
    with context.sessions() as s:
        s.add(ApiClient(name="bench", token_hash=token_hash(token), scopes=["system/ImagingStudy.c"]))
        s.commit()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(context), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    boundary = "bench-boundary"
    headers = {"Authorization": f"Bearer {token}",
               "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}
    stored_ok: list[int] = []

    def body(chunk: list[bytes]) -> bytes:
        return b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
                        for data in chunk) + f"--{boundary}--\r\n".encode()

    def sender(mine: list[bytes]) -> None:
        with httpx.Client(timeout=120) as client:
            for start in range(0, len(mine), batch):
                answer = client.post(f"http://127.0.0.1:{port}/dicomweb/studies",
                                     content=body(mine[start:start + batch]), headers=headers).json()
                stored_ok.append(len((answer.get("00081199") or {}).get("Value") or []))

    threads = [threading.Thread(target=sender, args=(c,)) for c in _split(objects, connections)]
    started, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    server.should_exit = True
    thread.join(timeout=10)
    stored = _count(context, "study_instance")
    context.engine.dispose()
    print(f"STOW-RS: {sum(stored_ok)} of {len(objects)} objects stored in {elapsed:.1f} s ({connections} connections, "
          f"{batch} objects a request): {len(objects) / elapsed:.0f} objects/s committed; {stored} in the store; "
          f"{len(objects) / cpu:.0f} objects per CPU-second (client and server in this process; load average "
          f"{os.getloadavg()[0]:.1f})")
    return len(objects) / elapsed, stored


def bench_push(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "objects").mkdir()
        objects = _objects(root / "objects", args.objects)
        print(f"{len(objects)} header-only objects, {sum(map(len, objects)) / len(objects):.0f} bytes each on average; "
              f"backend {args.backend}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        if args.only != "stow-rs":
            with fresh_store(args.backend, root) as url:
                bench_c_store(url, root, objects, args.associations, args.writer_processes, args.sender)
        if args.only != "c-store":
            with fresh_store(args.backend, root) as url:
                bench_stow(url, objects, args.associations, args.batch)
    return 0


# --- poll -----------------------------------------------------------------------------------------------------------

@contextmanager
def orthanc(root: Path) -> Iterator[str]:
    """A throwaway Orthanc with DICOMweb; yields its base URL."""
    port = _free_port()
    storage = root / "orthanc"
    storage.mkdir()
    config = root / "orthanc.json"
    config.write_text(json.dumps({
        "Name": "priorscan-bench", "HttpPort": port, "DicomServerEnabled": False, "StorageDirectory": str(storage),
        "IndexDirectory": str(storage), "Plugins": [str(DICOMWEB_PLUGIN)], "AuthenticationEnabled": False,
        "RemoteAccessAllowed": False, "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "HttpCompressionEnabled": False, "ConcurrentJobs": 2}))
    log = (root / "orthanc.log").open("wb")
    # a copy of the binary under another name: until every checkout has the fixed scripts/setup-system.sh, a test
    # run elsewhere on the machine stops every process running /usr/sbin/Orthanc
    binary = root / "orthanc-bench"
    shutil.copy2(ORTHANC, binary)
    process = subprocess.Popen([str(binary), str(config)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/system", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Orthanc did not start")
            time.sleep(0.1)
        yield url
    except BaseException:
        log.flush()
        tail = (root / "orthanc.log").read_text(errors="replace").splitlines()[-15:]
        state = f"exited with status {process.poll()}" if process.poll() is not None else "was running"
        print(f"Orthanc {state}; the end of its log:\n  " + "\n  ".join(tail))
        raise
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _study(rng: random.Random, day: date, n: int) -> bytes:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = generate_uid(), generate_uid(), "CT"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = day.strftime("%Y%m%d"), "101500", f"B{n:08d}"
    ds.StudyDescription = rng.choice(("CT HEAD", "CT CHEST", "CT ABDOMEN PELVIS"))
    ds.PatientID, ds.IssuerOfPatientID = f"P{rng.randrange(10**7):07d}", rng.choice(("RTK", "RXC", "RPC", "RA2", "RYR"))
    ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "BENCH^PATIENT", "19600101", "F"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _count_uids(engine, objects: list[bytes]) -> int:  # type: ignore[no-untyped-def]
    uids = [dcmread(io.BytesIO(b), stop_before_pixels=True).StudyInstanceUID for b in objects]
    with engine.connect() as conn:
        return sum(int(conn.execute(text("select count(*) from study where study_instance_uid = :u"),
                                    {"u": uid}).scalar() or 0) for uid in uids)


def _load(url: str, studies: list[bytes]) -> float:
    started = time.perf_counter()

    def sender(mine: list[bytes]) -> None:
        with httpx.Client(timeout=60) as client:
            for data in mine:
                client.post(url + "/instances", content=data).raise_for_status()

    threads = [threading.Thread(target=sender, args=(c,)) for c in _split(studies, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def bench_poll(args: argparse.Namespace) -> int:
    from dicomweb_client.api import DICOMwebClient

    from imaging.dicomweb import poll_once
    from priorscan.db import open_store, session_factory
    from priorscan.trusts import default_trusts

    rng = random.Random(5)
    today = date(2026, 6, 15)
    with tempfile.TemporaryDirectory() as tmp, orthanc(Path(tmp)) as base, fresh_store(args.backend, Path(tmp)) as db:
        studies = [_study(rng, today - timedelta(days=rng.randrange(20 * 365)), n) for n in range(args.studies)]
        print(f"loaded {len(studies)} studies into Orthanc in {_load(base, studies):.1f} s")
        engine = open_store(db)
        sessions, trusts = session_factory(engine), default_trusts()
        client = DICOMwebClient(url=base + "/dicom-web")
        clock = datetime(today.year, today.month, today.day, 8, tzinfo=UTC)

        def poll(minutes: int):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            result = poll_once(sessions, trusts, client, source=base + "/dicom-web", today=today,
                               now=clock + timedelta(minutes=minutes), sweep_queries=args.sweep_queries)
            return result, time.perf_counter() - started

        first, seconds = poll(0)
        with engine.connect() as conn:
            indexed = int(conn.execute(text("select count(*) from study")).scalar() or 0)
        print(f"first poll: {seconds:.1f} s, {first.queries} QIDO queries; {indexed} of {args.studies} studies "
              f"indexed ({100 * indexed / args.studies:.1f}%); {first.render()}")
        late = [_study(rng, today - timedelta(days=365 + rng.randrange(15 * 365)), 10**7 + n) for n in range(args.late)]
        print(f"added {len(late)} late arrivals with old dates in {_load(base, late):.1f} s")
        polls, spent, total = 0, 0.0, args.studies + args.late
        while True:
            polls += 1
            result, seconds = poll(polls)
            spent += seconds
            with engine.connect() as conn:
                indexed = int(conn.execute(text("select count(*) from study")).scalar() or 0)
            print(f"poll {polls}: {seconds:.1f} s, {result.queries} queries, {result.new} new; {result.render()}")
            if indexed >= total or polls >= 10:
                break
        late_found = _count_uids(engine, late)
        print(f"late arrivals: {late_found} of {args.late} indexed after {polls} poll(s) "
              f"({spent:.1f} s of polling; the bound stated: {result.sweep_bound_polls} poll(s)); "
              f"{indexed} of {total} studies indexed ({100 * indexed / total:.1f}%)")
        engine.dispose()
        return 0 if indexed == total else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench pacs")
    sub = parser.add_subparsers(dest="what", required=True)
    push = sub.add_parser("push", help="C-STORE and STOW-RS objects committed per second")
    push.add_argument("--objects", type=int, default=2000)
    push.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    push.add_argument("--associations", type=int, default=4, help="concurrent associations / HTTP connections")
    push.add_argument("--batch", type=int, default=50, help="objects per STOW-RS request")
    push.add_argument("--writer-processes", type=int, default=None,
                      help="the C-STORE SCP's writer processes (default: as serve, 1 for SQLite; 0: none)")
    push.add_argument("--only", choices=("c-store", "stow-rs"), help="one of the two only")
    push.add_argument("--sender", choices=("dcmtk", "pynetdicom"),
                      default="dcmtk" if shutil.which("storescu") else "pynetdicom",
                      help="C-STORE senders: DCMTK's storescu (default when installed) or pynetdicom's SCU")
    poll = sub.add_parser("poll", help="a poll of a PACS with N studies, then late arrivals with old dates")
    poll.add_argument("--studies", type=int, default=10_000)
    poll.add_argument("--late", type=int, default=100)
    poll.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    poll.add_argument("--sweep-queries", type=int, default=50)
    args = parser.parse_args(argv)
    return bench_push(args) if args.what == "push" else bench_poll(args)
