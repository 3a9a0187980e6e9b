"""Reconciling a PACS's study list with the index: the date ranges a poller sweeps, and what a listed study says.

Pure: no network, no storage (:mod:`imaging.dicomweb` does both). QIDO-RS can only filter studies by their
attributes, never by when they arrived, so a study imported today with a study date of 2014 is found only by asking
for 2014 again. The poller therefore keeps the whole date line cut into :class:`DateRange` pieces and re-lists them
in turn, least recently listed first, a bounded number of queries per poll (:func:`due_ranges`); a range that fills a
page is split in two (:meth:`DateRange.split`), so that every range is listed in one page or a few. Comparing each
listed study's :func:`fingerprint` with the one stored at its last reading tells what is new, what has grown (a new
series, a new RDSR: the instance count changed) or was corrected (patient, date, accession), and what is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

#: The yearly ranges start here; everything dated before is one open range (split if it ever fills a page).
FIRST_YEAR = 1990
#: Attributes whose change makes a listed study worth reading again.
FINGERPRINT_TAGS = {"instances": "00201208", "patient_id": "00100020", "issuer": "00100021", "name": "00100010",
                    "birth_date": "00100030", "study_date": "00080020", "accession": "00080050",
                    "modalities": "00080061", "description": "00081030"}


def _da(day: date | None) -> str:
    return day.strftime("%Y%m%d") if day else ""


def _parse(text: str | None) -> date | None:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8])) if text else None


@dataclass(frozen=True)
class DateRange:
    """Study dates from ``start`` to ``end`` (both inclusive; None: open), with when the range was last listed in
    full and how many studies it held then."""

    start: date | None
    end: date | None
    listed_at: str | None = None  # ISO 8601 UTC
    studies: int | None = None

    @property
    def qido(self) -> str:
        """The QIDO-RS StudyDate range matching it: ``YYYYMMDD-YYYYMMDD``, ``-YYYYMMDD`` or ``YYYYMMDD-``."""
        return f"{_da(self.start)}-{_da(self.end)}"

    def covers(self, day: date | None) -> bool:
        return day is not None and (self.start is None or day >= self.start) and (self.end is None or day <= self.end)

    def split(self) -> tuple[DateRange, DateRange] | None:
        """Two halves, never listed; None for a single day (it is paged instead)."""
        if self.start is not None and self.end is not None:
            if self.start >= self.end:
                return None
            middle = self.start + timedelta(days=(self.end - self.start).days // 2)
            return DateRange(self.start, middle), DateRange(middle + timedelta(days=1), self.end)
        if self.start is None and self.end is not None:  # before the first year: ten years at a time
            cut = self.end - timedelta(days=3652)
            return DateRange(None, cut), DateRange(cut + timedelta(days=1), self.end)
        if self.start is not None and self.end is None:  # dated in the future
            cut = self.start + timedelta(days=3652)
            return DateRange(self.start, cut - timedelta(days=1)), DateRange(cut, None)
        return DateRange(None, date(FIRST_YEAR - 1, 12, 31)), DateRange(date(FIRST_YEAR, 1, 1), None)

    def as_json(self) -> dict[str, Any]:
        return {"from": _da(self.start) or None, "to": _da(self.end) or None, "listed_at": self.listed_at,
                "studies": self.studies}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DateRange:
        return cls(_parse(data.get("from")), _parse(data.get("to")), data.get("listed_at"), data.get("studies"))

    def listed(self, at: str, studies: int) -> DateRange:
        return replace(self, listed_at=at, studies=studies)


def initial_ranges(today: date) -> list[DateRange]:
    """The date line before any listing: before :data:`FIRST_YEAR`, one range per year to this one, the future."""
    ranges = [DateRange(None, date(FIRST_YEAR - 1, 12, 31))]
    ranges += [DateRange(date(year, 1, 1), date(year, 12, 31)) for year in range(FIRST_YEAR, today.year + 1)]
    ranges.append(DateRange(date(today.year + 1, 1, 1), None))
    return ranges


def extend_to(ranges: list[DateRange], today: date) -> list[DateRange]:
    """Ranges still covering the whole line after the year turned (the open future range is cut at this year)."""
    last = ranges[-1]
    if last.end is None and last.start is not None and last.start.year <= today.year:
        years = [DateRange(date(y, 1, 1), date(y, 12, 31)) for y in range(last.start.year, today.year + 1)]
        return [*ranges[:-1], *years, DateRange(date(today.year + 1, 1, 1), None)]
    return ranges


def queries_needed(rng: DateRange, page_size: int) -> int:
    """The QIDO queries a range is expected to cost, from its last listing (one when never listed)."""
    return max(1, math.ceil((rng.studies or 0) / page_size))


def due_ranges(ranges: list[DateRange], budget: int, page_size: int) -> list[int]:
    """Indexes of the ranges to list this poll: least recently listed first (never listed before all), as many as
    ``budget`` queries allow, and always at least one."""
    order = sorted(range(len(ranges)), key=lambda i: (ranges[i].listed_at is not None, ranges[i].listed_at or "", i))
    chosen: list[int] = []
    spent = 0
    for i in order:
        cost = queries_needed(ranges[i], page_size)
        if chosen and spent + cost > budget:
            break
        chosen.append(i)
        spent += cost
    return chosen


def sweep_bound_polls(ranges: list[DateRange], budget: int, page_size: int) -> int:
    """Polls needed to list every range once at the given budget: the bound on how late a study of any date is
    found, in polls (plus the one in which it is listed)."""
    total = sum(queries_needed(r, page_size) for r in ranges)
    return max(1, math.ceil(total / max(1, budget)))


def _values(dataset: dict[str, Any], tag: str) -> list[Any]:
    return list((dataset.get(tag) or {}).get("Value") or [])


def fingerprint(dataset: dict[str, Any]) -> str:
    """A digest of what a QIDO-RS study result says that matters to the index (instances, patient, date,
    accession, modalities, description); a change in any of them is worth reading the study again."""
    said = {name: [str(v) if not isinstance(v, dict) else json.dumps(v, sort_keys=True) for v in _values(dataset, tag)]
            for name, tag in FINGERPRINT_TAGS.items()}
    said["modalities"] = sorted(said["modalities"])
    return hashlib.sha256(json.dumps(said, sort_keys=True).encode()).hexdigest()[:32]


def instance_count(dataset: dict[str, Any]) -> int | None:
    """Number of Study Related Instances (0020,1208), when the PACS says it."""
    values = _values(dataset, FINGERPRINT_TAGS["instances"])
    try:
        return int(values[0]) if values else None
    except (TypeError, ValueError):
        return None
