"""Fixtures of the imaging tests: the trusts, a session factory on each backend, real vendor RDSRs, a real Orthanc.

- ``vendor_rdsr``: the fluoroscopy RDSRs shipped (MIT licence) inside the ``pyskindose`` wheel, and
  ``openrem_files``: the CT, DX, MG and RF dose reports and images of OpenREM's test suite (GPL-3.0, in its sdist);
  both fetched from PyPI at test time by :mod:`bench.vendor_dicom` into the git-ignored ``.cache/`` (never
  committed) and read out of the archive;
- ``orthanc``: Debian's Orthanc with its DICOMweb plugin, started on a free loopback port with a throwaway
  configuration and storage, stopped at teardown.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bench import vendor_dicom
from priorscan.db import session_factory
from priorscan.trusts import TrustRegistry, default_trusts

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


@pytest.fixture(scope="session")
def trusts() -> TrustRegistry:
    return default_trusts()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """A session factory on each backend (the ``engine`` fixture is parametrised over SQLite and PostgreSQL)."""
    return session_factory(engine)


@pytest.fixture(scope="session")
def vendor_rdsr() -> dict[str, Path]:
    """The four fluoroscopy RDSRs of pyskindose 25.1.1 (Philips Allura Clarity, Siemens AXIOM-Artis), by name.

    The version is pinned (``bench.vendor_dicom.SOURCES``): the expected values in the tests are read from these
    files."""
    files = {path.stem: path for path in vendor_dicom.files("pyskindose") if path.parent.name == "RDSR"}
    assert len(files) == 4, sorted(files)
    return files


@pytest.fixture(scope="session")
def openrem_files() -> dict[str, Path]:
    """OpenREM 0.10.0's test files (CT, DX, MG, RF dose reports and images of many vendors), by file name."""
    files = {path.name: path for path in vendor_dicom.files("openrem")}
    assert len(files) >= 40, sorted(files)
    return files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Orthanc:
    """A running Orthanc: its base URL and DICOMweb root."""

    url: str
    process: subprocess.Popen[bytes]

    @property
    def dicomweb(self) -> str:
        return self.url + "/dicom-web"

    def upload(self, path: Path) -> str:
        """Store one DICOM file (REST ``POST /instances``); returns Orthanc's instance id."""
        response = httpx.post(self.url + "/instances", content=path.read_bytes(), timeout=30)
        response.raise_for_status()
        return str(response.json()["ID"])


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    """A fresh Orthanc with DICOMweb on a free loopback port (no DICOM listener), stopped at teardown."""
    if not ORTHANC.exists() or not DICOMWEB_PLUGIN.exists():
        pytest.fail("Orthanc with its DICOMweb plugin is required (scripts/setup-system.sh installs it)",
                    pytrace=False)
    port = _free_port()
    storage = tmp_path / "orthanc-storage"
    storage.mkdir()
    config = tmp_path / "orthanc.json"
    config.write_text(json.dumps({
        "Name": "priorscan-test", "HttpPort": port, "DicomPort": _free_port(), "DicomServerEnabled": False,
        "StorageDirectory": str(storage), "IndexDirectory": str(storage), "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "AuthenticationEnabled": False,
        "RemoteAccessAllowed": False, "HttpCompressionEnabled": False,
    }))
    log = (tmp_path / "orthanc.log").open("wb")
    process = subprocess.Popen([str(ORTHANC), str(config)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/system", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Orthanc did not start; see " + str(tmp_path / "orthanc.log"))
            time.sleep(0.1)
        yield Orthanc(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()
