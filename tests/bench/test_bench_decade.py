"""The decade generator of ``python -m bench decade``: deterministic by seed, memory flat in the number of people, and
files the bulk loader takes whole (every record written in bulk, every study attached to its record)."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.bench_decade import patient_resource, trust_numbering, write_decade
from bench.mpi_population import _name_pools, stream_population, streamed_nhs_number
from mpi import is_valid_nhs_number


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_streamed_nhs_numbers_are_valid_and_distinct() -> None:
    numbers = [streamed_nhs_number(n) for n in range(0, 3_000_000, 37)]
    assert all(is_valid_nhs_number(n) for n in numbers)
    assert len(set(numbers)) == len(numbers)


def test_the_population_streams_the_same_for_a_seed_and_differs_for_another() -> None:
    def drawn(seed: int) -> list[object]:
        return [(person, records) for person, records in stream_population(400, seed=seed, name=trust_numbering())]

    first, again, other = drawn(3), drawn(3), drawn(4)
    assert repr(first) == repr(again)
    assert repr(first) != repr(other)
    records = sum(len(r) for _, r in first)
    assert 2.4 < records / 400 < 3.0  # issue 18's ~2.7 source records per person
    assert all(r.trust_ods in r.namespace or r.namespace.startswith("https://fhir.") for _, rs in first for r in rs)
    # a person's records name no other person's, and a mistyped NHS number is left out of the FHIR extract
    keys = [(r.namespace, r.local_id) for _, rs in first for r in rs]
    assert len(set(keys)) == len(keys)
    for _, rs in first:
        for record in rs:
            nhs = [i["value"] for i in patient_resource(record)["identifier"] if "nhs-number" in i["system"]]
            assert all(is_valid_nhs_number(n) for n in nhs)


def test_the_files_are_the_same_for_a_seed(tmp_path: Path) -> None:
    one = write_decade(tmp_path / "a", 80, seed=5)
    two = write_decade(tmp_path / "b", 80, seed=5)
    write_decade(tmp_path / "c", 80, seed=6)
    assert (one.records, one.studies) == (two.records, two.studies) and one.studies > 150
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def _peak(root: Path, people: int) -> int:
    tracemalloc.start()
    try:
        write_decade(root, people, seed=2, studies_per_person=0.5)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_generator_memory_is_flat_in_people(tmp_path: Path) -> None:
    _name_pools()  # the name pools are loaded once, whatever the number of people
    small, large = _peak(tmp_path / "small", 60), _peak(tmp_path / "large", 480)
    # eight times the people: the peak of Python allocations grows by less than a tenth (it would grow ~8x if the
    # people, records or studies were held)
    assert large < small * 1.1 + 200_000, (small, large)


def test_the_bulk_loader_takes_every_record_and_attaches_every_study(tmp_path: Path, sqlite_url: str) -> None:
    from api.context import AppContext
    from api.feeds.bulk_load import backfill_paths
    from priorscan.settings import Settings

    generated = write_decade(tmp_path / "decade", 120, seed=9, studies_per_person=3.0)
    context = AppContext.open(Settings(db=sqlite_url, env="test"))
    try:
        report = backfill_paths(context, [tmp_path / "decade" / "fhir", tmp_path / "decade" / "dicom"], workers=0)
    finally:
        context.engine.dispose()
    assert report.exit_code == 0, report.render()
    assert (report.written, report.set_aside, report.objects_in_bulk) == (generated.records, 0, generated.studies)
    engine = create_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.execute(text("select count(*) from study")).scalar_one() == generated.studies
        assert connection.execute(text("select count(*) from source_record where provisional")).scalar_one() == 0
        with_dose = connection.execute(text("select count(distinct study_id) from irradiation_event")).scalar_one()
    engine.dispose()
    assert with_dose > generated.studies * 0.6


def test_an_impossible_birth_date_is_written_as_the_months_last_day() -> None:
    from bench.bench_decade import _dicom_date

    # the population's year typo on 29 February made 2001-02-29, which the FHIR extract's reader refuses whole
    assert _dicom_date("2001-02-29") == "20010228"
    assert _dicom_date("2000-02-29") == "20000229"  # a leap year keeps it
    assert _dicom_date("1990-4-1") == "19900401"  # the day typo's unpadded text
