"""Fixtures of the imaging tests: the trusts, a session factory on each backend, real vendor RDSRs, a real Orthanc.

- ``vendor_rdsr``: the fluoroscopy RDSRs shipped (MIT licence) inside the ``pyskindose`` wheel, fetched from PyPI
  at test time into the git-ignored ``.cache/`` (never committed) and read out of the zip;
- ``orthanc``: Debian's Orthanc with its DICOMweb plugin, started on a free loopback port with a throwaway
  configuration and storage, stopped at teardown.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from orthanc_runner import Orthanc, running_orthanc
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


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    """A fresh Orthanc with DICOMweb on a free loopback port (no DICOM listener), stopped at teardown."""
    with running_orthanc(tmp_path) as server:
        yield server
