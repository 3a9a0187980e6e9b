"""The input of a bulk load, listed once and read back as a stream: memory does not grow with the number of files.

``priorscan backfill`` walks its paths once (:func:`api.feeds.ingest.classify`: the same walk, the same detection
and the same report entries as ``ingest``) and writes each loadable file's format and phases to a spool file on disk,
one line per file, while it hashes the load's identity (:attr:`Listing.key`). Each stage then reads the spool from
its start (:meth:`Listing.files`), so the load holds one file's :class:`~api.feeds.ingest_formats.Detected` at a time
and not one per file for its whole length (a region's decade is ~10 M header-only DICOM files: one ``Detected`` each
was 0.45–0.9 KB, 4.5–9 GB before the first commit, and again in every forked worker).

The order of the files is the walk's (folders in sorted order, each folder's files before its subfolders), the order
``ingest`` applies them in; the stages' cursors count positions in it, so the same command on the same input resumes
where it stopped.

The load's key is a SHA-256 over each file's resolved path and size, in that order. (Until 2026-12-07 the key
sorted the resolved paths first, which needed the whole list in memory; a load begun before then starts over under
this version rather than resuming: its writes are idempotent by UID, and its written records are held records.)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from api.feeds.ingest import IngestReport, classify
from api.feeds.ingest_formats import FORMAT_PHASES, Detected, FileFormat, Phase


class Listing:
    """The loadable files under a load's paths, spooled to temporary files (see the module's description).

    DICOM files (one per object: nearly all the files of a large load) are spooled apart from the others, so that the
    stages that read no DICOM do not read past them.

    Parameters
    ----------
    paths : iterable of Path or str
        The load's files and folders.
    report : IngestReport
        Counts the files per format and the rejections of the walk (missing paths, unreadable, unknown, empty files),
        as ``ingest`` counts them.
    """

    def __init__(self, paths: Iterable[Path | str], report: IngestReport) -> None:
        self._dicom: IO[bytes] = tempfile.TemporaryFile("w+b", prefix="priorscan-backfill-")
        self._others: IO[bytes] = tempfile.TemporaryFile("w+b", prefix="priorscan-backfill-")
        self.count = self.dicom_count = 0  # loadable files; DICOM files among them
        digest = hashlib.sha256()
        real_folders: dict[str, str] = {}
        for number, found in enumerate(classify(paths, report)):
            resolved = _resolved(found.path, real_folders)
            digest.update(f"{resolved}\0{os.stat(found.path).st_size}\n".encode("utf-8", "surrogateescape"))
            # JSON keeps any file name (tabs, newlines, undecodable bytes as surrogates) on one line
            if found.format is FileFormat.DICOM:
                self._dicom.write(json.dumps(str(found.path)).encode() + b"\n")
                self.dicom_count += 1
            else:
                self._others.write(json.dumps([number, found.format.name, [p.value for p in found.phases],
                                               str(found.path)]).encode() + b"\n")
            self.count += 1
        self.key = digest.hexdigest()

    def dicom(self) -> Iterator[Detected]:
        """The DICOM files, in the walk's order (each call starts again)."""
        for line in _lines(self._dicom):
            yield Detected(Path(json.loads(line)), FileFormat.DICOM, FORMAT_PHASES[FileFormat.DICOM])

    def others(self) -> Iterator[tuple[int, Detected]]:
        """The other files (HL7 v2, FHIR, DICOM JSON), in the walk's order, each with its number among all the
        listed files (each call starts again)."""
        for line in _lines(self._others):
            number, fmt, phases, path = json.loads(line)
            yield number, Detected(Path(path), FileFormat[fmt], tuple(Phase(p) for p in phases))

    def close(self) -> None:
        self._dicom.close()
        self._others.close()

    def __enter__(self) -> Listing:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _lines(spool: IO[bytes]) -> Iterator[bytes]:
    """The spool's lines from its start; several readers may be part-way through it at once."""
    spool.flush()
    offset = 0
    while True:
        spool.seek(offset)
        line = spool.readline()
        if not line:
            return
        offset = spool.tell()
        yield line


def _resolved(path: Path, real_folders: dict[str, str]) -> str:
    """``str(path.resolve())``, with each folder resolved once (a file that is itself a link is resolved alone)."""
    if os.path.islink(path):
        return str(path.resolve())
    folder, name = os.path.split(str(path))
    real = real_folders.get(folder)
    if real is None:
        if len(real_folders) > 4096:  # one walk visits a folder's files together: an old folder is not seen again
            real_folders.clear()
        real = real_folders[folder] = os.path.realpath(folder or ".")
    return os.path.join(real, name)


__all__ = ["Listing"]
