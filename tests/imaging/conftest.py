"""Fixtures of the imaging tests: the trusts, a session factory on each backend, real vendor RDSRs, a real Orthanc.

- ``vendor_rdsr``: the fluoroscopy RDSRs shipped (MIT licence) inside the ``pyskindose`` wheel, fetched from PyPI
  at test time into the git-ignored ``.cache/`` (never committed) and read out of the zip;
- ``orthanc``: Debian's Orthanc with its DICOMweb plugin, started on a free loopback port with a throwaway
  configuration and storage, stopped at teardown.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from priorscan.db import session_factory
from priorscan.trusts import TrustRegistry, default_trusts

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "pyskindose"
PYSKINDOSE = "pyskindose==25.1.1"  # pinned: the expected values in test_imaging_rdsr.py are read from these files
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
def vendor_rdsr(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The four fluoroscopy RDSRs of the pyskindose wheel (Philips Allura Clarity, Siemens AXIOM-Artis), by name."""
    wheels = sorted(CACHE.glob("pyskindose-25.1.1-*.whl"))
    if not wheels:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", PYSKINDOSE, "-d", str(CACHE)],
                       check=True, timeout=300)
        wheels = sorted(CACHE.glob("pyskindose-25.1.1-*.whl"))
    out = tmp_path_factory.mktemp("vendor_rdsr")
    files: dict[str, Path] = {}
    with zipfile.ZipFile(wheels[0]) as wheel:
        for name in wheel.namelist():
            if name.startswith("pyskindose/example_data/RDSR/") and name.endswith(".dcm"):
                target = out / Path(name).name
                target.write_bytes(wheel.read(name))
                files[target.stem] = target
    assert len(files) == 4, sorted(files)
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


@contextmanager
def running_orthanc(tmp_path: Path, **extra: object) -> Iterator[Orthanc]:
    """A fresh Orthanc with DICOMweb on a free loopback port, stopped on exit; ``extra`` adds configuration
    (``DicomModalities``, ``LuaScripts`` ...)."""
    if not ORTHANC.exists() or not DICOMWEB_PLUGIN.exists():
        pytest.fail("Orthanc with its DICOMweb plugin is required (scripts/setup-system.sh installs it)",
                    pytrace=False)
    port = _free_port()
    storage = tmp_path / "orthanc-storage"
    storage.mkdir(parents=True)
    config = tmp_path / "orthanc.json"
    config.write_text(json.dumps({
        "Name": "priorscan-test", "HttpPort": port, "DicomPort": _free_port(), "DicomServerEnabled": False,
        "StorageDirectory": str(storage), "IndexDirectory": str(storage), "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "AuthenticationEnabled": False,
        "RemoteAccessAllowed": False, "HttpCompressionEnabled": False, **extra,
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


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    """A fresh Orthanc with DICOMweb on a free loopback port (no DICOM listener), stopped at teardown."""
    with running_orthanc(tmp_path) as server:
        yield server
