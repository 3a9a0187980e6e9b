"""Feed files written in event-time order without holding a whole feed in memory (an external merge sort).

People are generated one household at a time, but a trust's feed must be in the order its events happened. Each
:class:`SortedFeed` buffers ``(time, payload)`` items; when the buffers of all feeds together outgrow one byte budget,
the largest is sorted and spilled to a run file, and at the end each feed's runs are merged (``heapq.merge``) into
the feed file. Memory therefore stays within the budget however large the region and however many feeds it has.
Keys are the event time plus a sequence number, so the order, and hence the bytes written, depend only on the data.

Payloads are single lines: HL7 v2 messages with CR between segments, FHIR resources as compact JSON.
"""

from __future__ import annotations

import heapq
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol


class FeedWriter(Protocol):
    """Writes a feed file from its items in order."""

    def write(self, items: Iterator[tuple[str, str, str]]) -> int:
        """Write ``(key, group, payload)`` items; return how many were written."""


class SortedFeed:
    """One feed file, fed in any order, written in time order.

    Parameters
    ----------
    writer
        Encodes the ordered items into the feed file.
    scratch
        Folder for the sorted runs (removed by :class:`FeedSet`).
    name
        Names the feed's run files.
    budget
        The shared byte budget of the feeds' buffers.
    """

    def __init__(self, writer: FeedWriter, scratch: Path, name: str, budget: FeedSet) -> None:
        self.writer = writer
        self.scratch = scratch
        self.name = name
        self.budget = budget
        self._buffer: list[str] = []
        self.buffered = 0
        self._runs: list[Path] = []
        self._seq = 0
        self.count = 0

    def add(self, when: datetime, payload: str, group: str = "") -> None:
        """Queue ``payload`` for the moment ``when``; ``group`` lets a writer keep related items apart."""
        self._seq += 1
        self._buffer.append(f"{when:%Y%m%d%H%M%S}{self._seq:012d}\t{group}\t{payload}\n")
        self.buffered += len(payload)
        self.budget.grew(len(payload))

    def _spill(self) -> None:
        self._buffer.sort()
        path = self.scratch / f"{self.name}.{len(self._runs):05d}.run"
        # newline="\n": payloads hold CR (HL7 segment ends), so only LF may end a line of a run
        with open(path, "w", encoding="utf-8", newline="\n") as run:
            run.writelines(self._buffer)
        self._runs.append(path)
        self.budget.grew(-self.buffered)
        self._buffer, self.buffered = [], 0

    def close(self) -> int:
        """Merge everything queued into the feed file; return the number of items written."""
        self._buffer.sort()
        handles: list[IO[str]] = [open(p, encoding="utf-8", newline="\n") for p in self._runs]
        try:
            merged = heapq.merge(self._buffer, *handles)
            self.count = self.writer.write(_split(merged))
        finally:
            for handle in handles:
                handle.close()
            for path in self._runs:
                path.unlink()
            self._buffer, self._runs = [], []
        return self.count


def _split(lines: Iterator[str]) -> Iterator[tuple[str, str, str]]:
    for line in lines:
        key, group, payload = line.rstrip("\n").split("\t", 2)
        yield key, group, payload


class Hl7FileWriter:
    """HL7 v2 messages in one file: CR or LF segment ends, optionally each message MLLP-framed."""

    def __init__(self, path: Path, segment_end: str = "CR", mllp: bool = False) -> None:
        self.path = path
        self.end = "\r" if segment_end == "CR" else "\n"
        self.mllp = mllp

    def write(self, items: Iterator[tuple[str, str, str]]) -> int:
        """Write the ordered items; return how many were written."""
        count = 0
        handle: IO[str] | None = None
        try:
            for _, _, message in items:
                if handle is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    handle = open(self.path, "w", encoding="utf-8", newline="")
                text = message.replace("\r", self.end) + self.end
                handle.write(f"\x0b{text}\x1c\r" if self.mllp else text)
                count += 1
        finally:
            if handle is not None:
                handle.close()
        return count


class NdjsonWriter:
    """FHIR resources, one per line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, items: Iterator[tuple[str, str, str]]) -> int:
        """Write the ordered items; return how many were written."""
        count = 0
        handle: IO[str] | None = None
        try:
            for _, _, resource in items:
                if handle is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    handle = open(self.path, "w", encoding="utf-8", newline="")
                handle.write(resource + "\n")
                count += 1
        finally:
            if handle is not None:
                handle.close()
        return count


class BundleWriter:
    """FHIR Bundles of a fixed size: transactions, every n-th one a batch.

    A transaction may not touch one resource twice, so a Bundle is closed early when an item's ``group`` (the
    patient's identifier) is already in it.
    """

    def __init__(self, folder: Path, stem: str, entries: int, batch_every: int, bundle_id_prefix: str,
                 timestamp: Callable[[datetime], str]) -> None:
        self.folder = folder
        self.timestamp = timestamp
        self.stem = stem
        self.entries = entries
        self.batch_every = batch_every
        self.prefix = bundle_id_prefix
        self.files: list[Path] = []

    def _flush(self, entries: list[str], last_key: str) -> None:
        number = len(self.files) + 1
        kind = "batch" if number % self.batch_every == 0 else "transaction"
        stamp = self.timestamp(datetime.strptime(last_key[:14], "%Y%m%d%H%M%S"))
        path = self.folder / f"{self.stem}-{number:04d}.json"
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(f'{{"resourceType":"Bundle","id":"{self.prefix}-{self.stem}-{number:04d}","type":"{kind}",'
                         f'"timestamp":"{stamp}","entry":[\n')
            handle.write(",\n".join(entries))
            handle.write("\n]}\n")
        self.files.append(path)

    def write(self, items: Iterator[tuple[str, str, str]]) -> int:
        """Write the ordered items; return how many were written."""
        count = 0
        entries: list[str] = []
        groups: set[str] = set()
        last_key = ""
        for key, group, entry in items:
            if entries and (len(entries) >= self.entries or (group and group in groups)):
                self._flush(entries, last_key)
                entries, groups = [], set()
            entries.append(entry)
            if group:
                groups.add(group)
            last_key = key
            count += 1
        if entries:
            self._flush(entries, last_key)
        return count


class FeedSet:
    """The region's sorted feeds by name, sharing one scratch folder and one memory budget.

    Parameters
    ----------
    scratch
        Folder for sorted runs; removed when the feeds are closed.
    budget_bytes
        Payload bytes the feeds may buffer together before the largest buffer spills.
    """

    def __init__(self, scratch: Path, budget_bytes: int) -> None:
        self.scratch = scratch
        self.budget_bytes = budget_bytes
        self.buffered = 0
        self.feeds: dict[str, SortedFeed] = {}
        scratch.mkdir(parents=True, exist_ok=True)

    def grew(self, size: int) -> None:
        """Account for ``size`` more buffered bytes; spill the largest buffer when over budget."""
        self.buffered += size
        if self.buffered > self.budget_bytes and size > 0:
            max(self.feeds.values(), key=lambda feed: feed.buffered)._spill()

    def feed(self, name: str, make_writer) -> SortedFeed:  # type: ignore[no-untyped-def]
        """The feed called ``name``, created with ``make_writer()`` on first use."""
        feed = self.feeds.get(name)
        if feed is None:
            feed = SortedFeed(make_writer(), self.scratch, f"{len(self.feeds):03d}", self)
            self.feeds[name] = feed
        return feed

    def abandon(self) -> None:
        """Drop everything queued (after an error)."""
        self.feeds = {}
        shutil.rmtree(self.scratch, ignore_errors=True)

    def close(self) -> dict[str, int]:
        """Write every feed; return items written per feed name."""
        counts = {name: feed.close() for name, feed in sorted(self.feeds.items())}
        shutil.rmtree(self.scratch, ignore_errors=True)
        return counts
