"""Identity from the first record: a new or small region links people before it can train a model of its own.

A region starts empty: until the store holds enough records (``mpi.training.MIN_RECORDS``) the relink keeps the
shipped prior model instead of training one from too little data, and two records holding the same valid NHS
number verified on both are one person whatever the model. Driven through the command line, as a trust's first
day would be.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from mpi.model import Model
from priorscan.trusts import NHS_NUMBER_SYSTEM
from tests.fixed_dates import AS_OF


def _priorscan(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "priorscan.cli", "--db", db, *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return result


def _region(tmp_path: Path, people: int, seed: int, db: str) -> tuple[Path, str]:
    out = tmp_path / "region"
    _priorscan("synth", "--people", str(people), "--out", str(out), "--seed", str(seed), "--as-of", AS_OF.isoformat(),
               db=db)
    _priorscan("ingest", "--no-progress", *[str(p) for p in sorted(out.iterdir()) if p.name != "truth"], db=db)
    linked = _priorscan("link", db=db)
    return out, linked.stdout


@pytest.mark.parametrize(("people", "seed"), [
    pytest.param(3, 1, id="3 people: a trust's first records"),
    pytest.param(40, 7, id="40 people: the demo's region, which split 21 of 39 NHS numbers"),
    pytest.param(40, 3, id="40 people, another draw"),
])
def test_every_nhs_number_belongs_to_one_regional_patient(tmp_path: Path, sqlite_url: str, people: int,
                                                          seed: int) -> None:
    region, linked = _region(tmp_path, people, seed, sqlite_url)
    assert "shipped prior model" in linked and "too few to train" in linked  # `priorscan link` says which it used
    assert Model.default().version in linked
    xref = list(csv.DictReader(io.StringIO(_priorscan("export", "xref", db=sqlite_url).stdout)))
    with (region / "truth" / "persons.csv").open(newline="") as handle:
        owner = {(row["system"], row["value"]): row["person_id"] for row in csv.DictReader(handle)}
    holders: dict[str, set[str]] = defaultdict(set)
    for row in xref:
        if row["system"] == NHS_NUMBER_SYSTEM:
            holders[row["value"]].add(row["regional_id"])
    assert holders
    for number, regional_ids in holders.items():
        if len(regional_ids) == 1:
            continue
        # only a number keyed into another person's record may stand apart, and then never silently: the record
        # that holds it wrongly belongs to someone else by the truth, and waits for a person in the review queue
        true_owner = owner[(NHS_NUMBER_SYSTEM, number)]
        for regional_id in regional_ids:
            rows = [r for r in xref if r["regional_id"] == regional_id and r["system"] != NHS_NUMBER_SYSTEM]
            people_here = {owner.get((r["system"], r["value"])) for r in rows}
            if true_owner not in people_here:
                assert all(r["link_state"] == "possible-match" for r in rows), (number, rows)
    split = sum(1 for ids in holders.values() if len(ids) > 1)
    assert split <= max(1, len(holders) // 100), f"{split} of {len(holders)} NHS numbers split"


def test_relink_keeps_the_shipped_prior_until_the_store_supports_training(sqlite_url: str) -> None:
    import contextlib

    from bench.mpi_population import make_population
    from mpi.batch import bulk_load
    from mpi.training import MIN_RECORDS
    from priorscan.cli import main
    from priorscan.db import make_engine, session_factory

    records = make_population(800, seed=2).records

    def load(part: list) -> None:  # type: ignore[type-arg]
        engine = make_engine(sqlite_url)
        with session_factory(engine)() as session:
            bulk_load(session, part)
            session.commit()
        engine.dispose()

    def link() -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["--db", sqlite_url, "link"]) == 0
        return out.getvalue()

    load(records[:300])
    first = link()
    assert "the shipped prior model" in first and f"at least {MIN_RECORDS:,} needed" in first
    load(records[300:])  # the region grows past the minimum: its own model replaces the shipped one
    second = link()
    assert "a model trained on" in second and "trained now and active" in second
