"""Who is calling: :class:`Principal` (an API client or a signed-in person, with their scopes), the hash bearer tokens
are kept by, and the process's short-lived cache of token lookups with the hooks that empty it on a revocation.

It depends on no other module of ``api`` but :mod:`api.auth.scopes`, so that the dependencies
(:mod:`api.http.deps`), the accounts (:mod:`api.auth.accounts`) and the web sessions (:mod:`api.auth.web_session`)
all build on it without importing each other in a circle. Revocation rules: see :mod:`api.http.deps`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, object_session

from api.auth import scopes as scope_rules
from priorscan.audit import Agent
from priorscan.tables import ApiClient

SESSION_COOKIE = "priorscan_session"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API client or a signed-in person, with the scopes they hold."""

    kind: str  # client | user
    name: str
    scopes: tuple[str, ...]
    trust_ods: str | None = None
    role: str | None = None
    address: str | None = field(default=None, compare=False)

    def allows(self, needed: str) -> bool:
        return scope_rules.covers(self.scopes, needed)

    @property
    def agent(self) -> Agent:
        return Agent(self.kind, self.name, self.address)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- bearer tokens, cached briefly --------------------------------------------------------------------------------

#: How long a token lookup is reused in this process: the delay before another process's revocation takes effect.
TOKEN_CACHE_SECONDS = 5.0
#: At most this many tokens are remembered (least recently used first out).
TOKEN_CACHE_SIZE = 10_000


class PrincipalCache:
    """Token hash → principal of an API client, each entry valid for ``ttl`` seconds and never past the token's expiry.

    Thread-safe (dependencies run in worker threads). ``clock`` gives seconds since the epoch; tests inject their own.
    Only valid tokens are remembered: an unknown or revoked token is looked up every time.
    """

    def __init__(self, *, ttl: float = TOKEN_CACHE_SECONDS, max_entries: int = TOKEN_CACHE_SIZE,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()
        #: Bumped by :meth:`clear`; an answer read before a clear is not remembered after it.
        self.generation = 0

    def get(self, key: str) -> Principal | None:
        """The principal remembered for ``key``, or None when absent or stale (a stale entry is dropped)."""
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if now >= entry[0]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: str, principal: Principal, *, expires_at: datetime | None = None,
            generation: int | None = None) -> None:
        """Remember ``principal`` for ``ttl`` seconds, or until ``expires_at`` (the token's expiry) if sooner.

        ``generation`` is :attr:`generation` as it was before the database was read: if the cache was cleared since
        (a revocation in between), the answer may be stale and is not kept.
        """
        valid_until = self.clock() + self.ttl
        if expires_at is not None:
            valid_until = min(valid_until, expires_at.timestamp())
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            self._entries[key] = (valid_until, principal)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry (after a revocation: revocations are rare, lookups are cheap)."""
        with self._lock:
            self._entries.clear()
            self.generation += 1

    def __len__(self) -> int:
        return len(self._entries)


#: The process's token cache, shared by every app of the process.
TOKEN_CACHE = PrincipalCache()
_TOUCHES_CLIENTS = "priorscan_touches_api_client"


@event.listens_for(Session, "do_orm_execute")
def _on_bulk_write(state: Any) -> None:
    # update(ApiClient)... / delete(ApiClient)... through a session: a revocation may be under way
    if (state.is_update or state.is_delete) and \
            getattr(getattr(state.statement, "table", None), "name", None) == ApiClient.__tablename__:
        TOKEN_CACHE.clear()
        state.session.info[_TOUCHES_CLIENTS] = True


@event.listens_for(ApiClient, "after_update")
@event.listens_for(ApiClient, "after_delete")
def _on_flush(_mapper: Any, _connection: Any, client: ApiClient) -> None:
    # a loaded ApiClient changed (revoked_at set) or deleted through the unit of work
    TOKEN_CACHE.clear()
    session = object_session(client)
    if session is not None:
        session.info[_TOUCHES_CLIENTS] = True


@event.listens_for(Session, "after_commit")
def _on_commit(session: Session) -> None:
    # once more after commit: a request that read the row between the change and the commit may have cached it
    if session.info.pop(_TOUCHES_CLIENTS, False):
        TOKEN_CACHE.clear()
