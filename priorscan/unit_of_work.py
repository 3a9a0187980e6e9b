"""One unit of work: the session, the writer's turn, commit, rollback and the retries after a race, in one place.

Every route, feed and command that touches the store runs its work through :func:`unit_of_work`; domain functions
take the session they are given and never commit. ::

    with unit_of_work(ctx.sessions, write=True) as session:    # one attempt: commit on success, rollback on error
        run_check(session, ...)

    outcome = unit_of_work(ctx.sessions, write=True, attempts=3).run(lambda session: apply(session, ...))

What a unit of work owns:

- **the session**: opened from the factory, closed at the end;
- **commit and rollback**: committed when the work returns, rolled back when it raises (the error goes on);
- **the writer's turn** (``write=True``): SQLite allows one writer per database. A writing unit takes a lock of this
  process first (writers queue on it and start the moment the previous one commits, instead of polling SQLite's busy
  handler with sleeps of up to 100 ms), then ``BEGIN IMMEDIATE``, which takes SQLite's write lock before the first
  read, so a unit that reads and then writes what it read never finds its snapshot stale. Writers of other processes
  still meet in SQLite's busy timeout. A unit whose reads need no lock (the duplicate check: it reads priors and
  appends its order, audit and alert rows) passes ``immediate=False`` and takes only this process's turn, so that
  other processes' reads and checks overlap with it (two ``priorscan serve`` processes on one SQLite file: the
  check's latency doubled when it took SQLite's lock first; BENCHMARKS.md). On PostgreSQL a writing unit is a plain
  transaction: its constraints and row locks settle concurrency;
- **durability** (``durable=False``, for units that only add audit rows to a read): on PostgreSQL the commit does
  not wait for the WAL flush (``synchronous_commit = off`` for that transaction only). A crash may lose the audit
  rows of the last fraction of a second of reads, never a change to patient data, and a read no longer pays a disk
  flush (about 7 ms on this project's machine; BENCHMARKS.md, Feeds). SQLite's ``synchronous=NORMAL`` is unchanged;
- **retries** (``attempts`` > 1, with :meth:`UnitOfWork.run`): a unit that meets a race or a lock, i.e. an
  :class:`~sqlalchemy.exc.IntegrityError` (a concurrent first insert of the same key) or an
  :class:`~sqlalchemy.exc.OperationalError` (SQLite busy or locked; PostgreSQL serialisation failure or deadlock,
  which psycopg reports as operational errors), is rolled back and run again whole. When every attempt failed,
  :class:`~priorscan.errors.BusyError` (code ``busy``) is raised with the last failure as its cause.

The writer's lock is not re-entrant: a writing unit must not open another writing unit in the same thread (it would
wait for itself).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from priorscan.errors import BusyError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The failures after which a unit of work is run again: a race on a unique key, a lock, a serialisation failure.
RETRYABLE: tuple[type[Exception], ...] = (IntegrityError, OperationalError)

_ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")
_WRITER_LOCKS: dict[str, threading.Lock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


def _writer_lock(engine: Engine) -> threading.Lock:
    """The process's writer lock for the database ``engine`` opens (engines on one file share it)."""
    key = engine.url.render_as_string(hide_password=True)
    with _WRITER_LOCKS_GUARD:
        return _WRITER_LOCKS.setdefault(key, threading.Lock())


@contextmanager
def writer_turn(session: Session) -> Iterator[None]:
    """Hold this process's writer lock for the database of ``session`` (SQLite; nothing on PostgreSQL).

    For a session whose transaction is already under way, where :func:`unit_of_work` cannot take SQLite's lock
    first. Prefer ``unit_of_work(..., write=True)``.
    """
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    with _writer_lock(bind.engine):
        yield


class UnitOfWork:
    """A unit of work over the sessions of ``sessions``; see the module docstring. Made by :func:`unit_of_work`."""

    def __init__(self, sessions: sessionmaker[Session], *, write: bool, attempts: int, pause_s: float,
                 durable: bool, immediate: bool = True) -> None:
        if attempts < 1:
            raise ValueError("a unit of work needs at least one attempt")
        self.sessions = sessions
        self.write = write
        self.attempts = attempts
        self.pause_s = pause_s
        self.durable = durable
        self.immediate = immediate
        self._open: list[AbstractContextManager[Session]] = []

    @contextmanager
    def _attempt(self) -> Iterator[Session]:
        session = self.sessions()
        lock: threading.Lock | None = None
        try:
            bind = session.get_bind()
            if self.write and bind.dialect.name == "sqlite":
                lock = _writer_lock(bind.engine)
                lock.acquire()
                if self.immediate:
                    session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            elif not self.durable and bind.dialect.name == "postgresql":
                session.execute(_ASYNC_COMMIT)
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
            if lock is not None:
                lock.release()

    def __enter__(self) -> Session:
        """One attempt: the session, committed on a clean exit, rolled back otherwise."""
        if self.attempts != 1:
            raise TypeError("a unit of work with retries runs a function: use unit_of_work(...).run(work)")
        attempt = self._attempt()
        session = attempt.__enter__()
        self._open.append(attempt)
        return session

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> bool | None:
        return self._open.pop().__exit__(kind, exc, traceback)

    def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` and commit, again after a race or a lock, up to ``attempts`` times.

        Raises
        ------
        BusyError
            Every attempt met a race or a lock (the last failure is the cause).
        Exception
            Whatever else ``work`` raised (rolled back, not retried).
        """
        failure: Exception | None = None
        for attempt in range(self.attempts):
            if attempt and self.pause_s:
                time.sleep(self.pause_s * attempt)
            try:
                with self._attempt() as session:
                    return work(session)
            except RETRYABLE as exc:
                failure = exc
                log.info("unit of work: attempt %d of %d met %s", attempt + 1, self.attempts, type(exc).__name__)
        assert failure is not None
        raise BusyError(f"the store was busy ({type(failure).__name__})") from failure


def unit_of_work(sessions: sessionmaker[Session], *, write: bool = False, attempts: int = 1,
                 pause_s: float = 0.0, durable: bool = True, immediate: bool = True) -> UnitOfWork:
    """A unit of work over a session of ``sessions``.

    Parameters
    ----------
    sessions
        The session factory of the store (``AppContext.sessions``).
    write
        The unit writes: on SQLite it takes the writer's turn before its first statement.
    attempts
        How many times :meth:`UnitOfWork.run` runs the work when it meets a race or a lock. A unit used with
        ``with`` has one attempt.
    pause_s
        Sleep ``pause_s × n`` before the n-th retry (0: retry at once).
    durable
        False for a read whose only writes are its audit rows: on PostgreSQL its commit does not wait for the WAL
        flush.
    immediate
        With ``write``, on SQLite: take SQLite's write lock before the first read (``BEGIN IMMEDIATE``, the default);
        False takes only this process's writer turn (units whose reads need no lock: see the module docstring).
    """
    return UnitOfWork(sessions, write=write, attempts=attempts, pause_s=pause_s, durable=durable,
                      immediate=immediate)


__all__ = ["RETRYABLE", "UnitOfWork", "unit_of_work", "writer_turn"]
