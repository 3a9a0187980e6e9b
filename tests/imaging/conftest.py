"""Fixtures of the imaging tests: the trusts, a session factory on each backend, real vendor files, a real Orthanc.

- ``vendor_rdsr``: the fluoroscopy RDSRs shipped (MIT licence) inside the ``pyskindose`` wheel, and
  ``openrem_files``: the CT, DX, MG, NM and RF dose reports and images of OpenREM's test suite (GPL-3.0, in its wheel);
  both fetched from PyPI at test time by :mod:`bench.vendor_dicom` into the git-ignored ``.cache/`` (never
  committed) and read out of the archive;
- ``orthanc``: Debian's Orthanc with its DICOMweb plugin, started on a free loopback port with a throwaway
  configuration and storage, stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from orthanc_runner import Orthanc, running_orthanc
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bench import vendor_dicom
from priorscan.db import session_factory
from priorscan.trusts import TrustRegistry, default_trusts


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
    """OpenREM 1.0.0b3's test files (CT, DX, MG, NM, RF dose reports and images of many vendors), by file name."""
    files = {path.name: path for path in vendor_dicom.files("openrem")}
    assert len(files) >= 40, sorted(files)
    return files


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    """A fresh Orthanc with DICOMweb on a free loopback port (no DICOM listener), stopped at teardown."""
    with running_orthanc(tmp_path) as server:
        yield server
