"""A real Orthanc for the imaging tests: Debian's Orthanc with its DICOMweb plugin, on free loopback ports, with a
throwaway configuration and storage (``running_orthanc``; the ``orthanc`` fixture of conftest uses it)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


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


