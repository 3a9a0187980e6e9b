"""``priorscan serve``: HTTP and MLLP in one process, clean shutdown on SIGTERM/SIGINT, no query strings in logs."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from api_factories import free_port


@contextmanager
def serving(db_url: str, *extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "priorscan.cli", "--db", db_url, "serve", "--port", str(port),
                                *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start: {process.communicate(timeout=5)}")
            time.sleep(0.1)
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


@pytest.mark.parametrize(("signum", "mllp"), [(signal.SIGTERM, True), (signal.SIGINT, False)],
                         ids=["SIGTERM-with-MLLP", "SIGINT-without-MLLP"])
def test_serve_shuts_down_cleanly_and_logs_no_query_strings(sqlite_url: str, signum: int, mllp: bool) -> None:
    mllp_port = free_port() if mllp else 0
    with serving(sqlite_url, "--mllp-port", str(mllp_port)) as (process, base):
        assert httpx.get(base + "/ui/").status_code == 200
        httpx.get(base + "/healthz", params={"identifier": "https://fhir.nhs.uk/Id/nhs-number|9990001235"})
        httpx.get(base + "/ui/session", params={"family": "TESTER"})
        if mllp:
            with socket.create_connection(("127.0.0.1", mllp_port), timeout=5):
                pass
        process.send_signal(signum)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "shutting down" in err and "stopped" in err
    assert ("MLLP listening" in err) is mllp
    assert "GET /healthz 200" in err and "GET /ui/session 401" in err  # the access log names the path only
    assert "9990001235" not in err and "TESTER" not in err and "nhs-number" not in err


def test_several_workers_are_refused_with_advice(capsys: pytest.CaptureFixture[str]) -> None:
    from api.http.server import run_serve

    status = run_serve(argparse.Namespace(workers=2, host="127.0.0.1", port=0, mllp_port=0), ctx=None)  # type: ignore[arg-type]
    assert status == 2 and "load balancer" in capsys.readouterr().err


def test_serve_with_a_dicom_port_stores_pushed_objects_and_stops_cleanly(sqlite_url: str) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    from pynetdicom import AE

    dicom_port = free_port()
    with serving(sqlite_url, "--mllp-port", "0", "--dicom-port", str(dicom_port)) as (process, _):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = "1.2.826.0.1.3680043.10.8.1", generate_uid(), "CT"
        ds.PatientID, ds.IssuerOfPatientID, ds.PatientName, ds.StudyDate = "AB123456", "RTK", "TESTER^JANE", "20240105"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ae = AE(ae_title="MODALITY1")
        ae.add_requested_context(ds.SOPClassUID)
        association = ae.associate("127.0.0.1", dicom_port, ae_title="PRIORSCAN")
        assert association.is_established
        assert int(association.send_c_store(ds).Status) == 0
        association.release()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "DICOM C-STORE SCP PRIORSCAN listening" in err
    assert "TESTER" not in err and "AB123456" not in err
    from priorscan.db import make_engine

    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from study").scalar() == 1
    engine.dispose()
