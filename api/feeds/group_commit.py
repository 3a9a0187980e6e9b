"""Gathering a group commit's next group, shared by the MLLP listener's batches (:mod:`api.feeds.mllp`) and the
C-STORE SCP's groups (:mod:`api.feeds.dicom_receiver`): what arrives while a group is written waits for the next."""

from __future__ import annotations

import queue
from typing import TypeVar

T = TypeVar("T")


def next_group(source: queue.Queue[T | None] | queue.SimpleQueue[T | None], limit: int) -> tuple[list[T], bool]:
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


__all__ = ["next_group"]
