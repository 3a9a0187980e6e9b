"""The core a batch relink would leave idle: rows of one pure array computation split over a second process.

A bulk load's relink runs after its identity stage has ended its worker processes, on one core while the other
idles (issue 18: the serial relink bounds the whole load). Inside :func:`spare_core`, :func:`in_two` computes the
second half of the rows in a forked child while this process computes the first half, and joins them: the same
array as one call over every row, for a computation that is row by row (comparison levels of pairs). Outside it,
or below :data:`SPLIT_FROM` rows, it is the one call.

The child shares the parent's memory as it was at the fork (copy on write), computes, sends its part back through
a pipe and leaves with :func:`os._exit` (no exit handlers, so nothing of the parent's, such as a database
connection, is closed or flushed by it). When it fails the parent computes its rows itself: a split never changes
a result, only who computes it. A child that has sent nothing long after the parent finished its own half (its
half is as large: :data:`PATIENCE` times the parent's time, at least :data:`PATIENCE_FLOOR_S`) is taken for hung:
it is killed and the parent computes its rows, so a stuck child cannot hang a relink.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

#: Rows below which one process computes all (a fork and the part's transfer cost a few milliseconds).
SPLIT_FROM = 20_000
#: How many times the parent's own time for its half a child may take to start sending its half, and the least
#: wait in seconds (a busy host can slow one process more than the other).
PATIENCE = 20.0
PATIENCE_FLOOR_S = 60.0

T = TypeVar("T")

_enabled = False
#: True while rows are being split (in both processes): C libraries' own thread pools then use one thread each,
#: the two processes already using both cores (and a thread pool is not carried over a fork).
splitting = False


@contextlib.contextmanager
def spare_core() -> Iterator[None]:
    """Within this block :func:`in_two` splits large computations over a second process (on a machine of more
    than one core, where ``os.fork`` exists)."""
    global _enabled
    before = _enabled
    _enabled = hasattr(os, "fork") and (os.cpu_count() or 1) > 1
    try:
        yield
    finally:
        _enabled = before


def in_two(compute: Callable[[int, int], NDArray[Any]], rows: int) -> NDArray[Any]:
    """``compute(0, rows)``, its rows ``[rows // 2, rows)`` computed by a forked child within :func:`spare_core`.

    Parameters
    ----------
    compute
        ``compute(start, stop)`` gives the result of rows ``start`` to ``stop`` (first axis), each row depending only
        on its own inputs.
    rows
        How many rows the whole result has.
    """
    global splitting
    if not _enabled or splitting or rows < SPLIT_FROM:
        return compute(0, rows)
    half = rows // 2
    pending = beside(lambda: compute(half, rows))  # forked before this process counts as splitting
    splitting = True
    try:
        with pending:
            first = compute(0, half)
            second = pending.result()
    finally:
        splitting = False
    return np.concatenate([first, second])


class Pending(Generic[T]):
    """The result of :func:`beside`'s ``compute``: :meth:`result` waits for it; :meth:`close` (a block's end when
    used as a context manager) ends a child whose result was not asked for."""

    def __init__(self, compute: Callable[[], T], child: int | None = None, read_end: int | None = None) -> None:
        self._compute, self._child, self._read_end = compute, child, read_end
        self._started = time.perf_counter()
        self._done = False
        self._result: T

    def result(self) -> T:
        """``compute()``, from the child when it sent it, else computed here (once: asked again, the same)."""
        if not self._done:
            self._result, self._done = self._wait(), True
        return self._result

    def _wait(self) -> T:
        if self._child is None or self._read_end is None:
            return self._compute()
        patience = max(PATIENCE_FLOOR_S, PATIENCE * (time.perf_counter() - self._started))
        found: list[T] = []
        read_end, self._read_end = self._read_end, None
        if select.select([read_end], [], [], patience)[0]:
            try:
                with os.fdopen(read_end, "rb") as source:
                    found.append(pickle.load(source))  # noqa: S301 - our own child's result, through our own pipe
            except (EOFError, OSError, pickle.UnpicklingError):
                found.clear()
        else:  # hung: nothing sent in all that time
            os.close(read_end)
            os.kill(self._child, signal.SIGKILL)
        _, status = os.waitpid(self._child, 0)
        self._child = None
        if not found or status != 0:  # the child failed: computed here
            return self._compute()
        return found[0]

    def close(self) -> None:
        """End the child, its result unused (this process failed before it needed it)."""
        if self._child is not None:
            if self._read_end is not None:
                os.close(self._read_end)
                self._read_end = None
            os.kill(self._child, signal.SIGKILL)
            os.waitpid(self._child, 0)
            self._child = None

    def __enter__(self) -> Pending[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def beside(compute: Callable[[], T]) -> Pending[T]:
    """``compute()`` started in a forked child within :func:`spare_core` while this process goes on with other work;
    :meth:`Pending.result` waits for it and gives its result (picklable). Outside :func:`spare_core` (or while rows
    are being split) ``compute`` runs in this process when the result is asked for.

    For pure work whose inputs are ready and whose result is needed only later (a relink's explanations, serialised,
    while it writes its patients). As with :func:`in_two`, a child that fails, or that has sent nothing long after
    the result was asked for (:data:`PATIENCE` times this process's time since the fork, at least
    :data:`PATIENCE_FLOOR_S`), leaves the work to this process: the result is the same, only who computes it differs.
    The child runs with :func:`in_two` splitting nothing (the two processes already use both cores).
    """
    global _enabled, splitting
    if not _enabled or splitting:
        return Pending(compute)
    read_end, write_end = os.pipe()
    try:
        child = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return Pending(compute)
    if child == 0:  # pragma: no cover - the child's coverage is not collected
        status = 1
        try:
            os.close(read_end)
            _enabled, splitting = False, True
            result = compute()
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return Pending(compute, child, read_end)


__all__ = ["PATIENCE", "PATIENCE_FLOOR_S", "SPLIT_FROM", "Pending", "beside", "in_two", "spare_core"]
