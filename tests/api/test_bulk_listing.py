"""The bulk load's input listing (:mod:`api.feeds.bulk_listing`): the walk's files read back as a stream, so that a
load's memory does not grow with the number of files it lists."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from api.context import AppContext
from api.feeds.bulk_listing import Listing
from api.feeds.bulk_load import backfill_paths
from api.feeds.ingest import IngestReport, classify
from api.feeds.ingest_formats import FileFormat
from priorscan.settings import Settings

#: Told to be DICOM by its first bytes (a preamble and "DICM"), but no DICOM object: read and refused in the load.
NOT_READABLE_DICOM = b"\0" * 128 + b"DICM" + b"\x02\x00"
ADT = "MSH|^~\\&|PAS|RTK|PRIORSCAN|REGION|20260105090000||ADT^A28|X1|P|2.4\rPID|1||123^^^RTK^MR||SMITH^JO\r"


def _files(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for number in range(count):
        (folder / f"{number:06d}.dcm").write_bytes(NOT_READABLE_DICOM)
    return folder


def test_the_listing_gives_the_walks_files_in_its_order_with_their_numbers(tmp_path: Path) -> None:
    root = tmp_path / "in"
    _files(root / "b", 2)
    _files(root / "a", 2)
    (root / "z.hl7").write_text(ADT)
    (root / "a" / "line\nbreak.hl7").write_text(ADT)  # any file name survives the spool
    (root / "empty.txt").write_text("")
    report = IngestReport()
    with Listing([root], report) as listing:
        walked = list(classify([root], IngestReport()))
        assert [d.path for d in listing.dicom()] == [d.path for d in walked if d.format is FileFormat.DICOM]
        assert [(n, d.path) for n, d in listing.others()] == [
            (n, d.path) for n, d in enumerate(walked) if d.format is not FileFormat.DICOM]
        assert [d.path.name for _, d in listing.others()] == ["z.hl7", "line\nbreak.hl7"]  # the folder's files first
        assert (listing.count, listing.dicom_count) == (6, 4)
        again = listing.dicom()  # read twice at once: each reader keeps its place
        assert next(again) == next(listing.dicom())
        assert report.files == {"DICOM": 4, "HL7 v2": 2, "empty": 1} and report.rejected_total == 1


def test_the_load_key_names_the_files_and_their_sizes(tmp_path: Path) -> None:
    folder = _files(tmp_path / "in", 3)

    def key(*paths: Path) -> str:
        with Listing(paths, IngestReport()) as listing:
            return listing.key

    first = key(folder)
    assert key(folder) == first, "the same input resumes"
    (folder / "000001.dcm").write_bytes(NOT_READABLE_DICOM + b"\0")
    assert key(folder) != first, "a file whose size changed is another load"
    (folder / "000001.dcm").write_bytes(NOT_READABLE_DICOM)
    (folder / "000003.dcm").write_bytes(NOT_READABLE_DICOM)
    assert key(folder) != first, "another file is another load"
    link = tmp_path / "link"
    link.symlink_to(folder)
    (folder / "000003.dcm").unlink()
    assert key(link) == first, "a path is named resolved"


def _peak_bytes(run: object) -> int:
    tracemalloc.start()
    try:
        run()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_loads_memory_does_not_grow_with_the_number_of_files(tmp_path: Path, sqlite_url: str) -> None:
    """The whole load over 400 and over 1 600 files (each refused by the DICOM reader, so nothing is written but the
    report's counts; both loads fill whole groups of 200): Python's peak allocations differ by less than 64 bytes
    per file added. A list of one ``Detected`` per file, as the load held before, is ~500 bytes per file."""
    context = AppContext.open(Settings(db=sqlite_url, env="test"))
    try:
        backfill_paths(context, [_files(tmp_path / "warm", 50)], workers=0)  # caches, compiled statements
        few, many = _files(tmp_path / "few", 400), _files(tmp_path / "many", 1_600)
        reports = []
        small = _peak_bytes(lambda: reports.append(backfill_paths(context, [few], workers=0)))
        large = _peak_bytes(lambda: reports.append(backfill_paths(context, [many], workers=0)))
    finally:
        context.engine.dispose()
    assert [r.rejected_total for r in reports] == [400, 1_600]
    assert large - small < 64 * 1_200, f"{(large - small) / 1_200:.0f} bytes more per file"
