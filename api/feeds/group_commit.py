"""Gathering a group commit's next group, shared by the MLLP listener's batches (:mod:`api.feeds.mllp`), the
C-STORE SCP's groups in this process (:mod:`api.feeds.dicom_receiver`) and in a DICOM writer process (from its pipe:
:mod:`api.feeds.writer_processes`): what arrives while a group is written waits for the next."""

from __future__ import annotations

import queue
from typing import Protocol, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Waiting(Protocol[T_co]):
    """Where the items wait: a :class:`queue.Queue`, or anything that takes from a pipe the same way."""

    def get(self) -> T_co:
        """The next item, waiting for it."""

    def get_nowait(self) -> T_co:
        """The next item if one is waiting; :class:`queue.Empty` otherwise."""


def next_group(source: Waiting[T | None], limit: int) -> tuple[list[T], bool]:
    """The next group from ``source``: the first item waited for, then whatever else is waiting, up to ``limit``
    items; and whether the stop marker (None) came (an empty group when it came first)."""
    first = source.get()
    if first is None:
        return [], True
    group = [first]
    while len(group) < limit:
        try:
            more = source.get_nowait()
        except queue.Empty:
            break
        if more is None:
            return group, True
        group.append(more)
    return group, False


__all__ = ["Waiting", "next_group"]
