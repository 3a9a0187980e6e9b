"""What a running priorscan process holds: settings, the store's engine and session factory, the trusts.

Processes hold no other state: several ``priorscan serve`` workers can share one PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from priorscan.db import open_store, session_factory
from priorscan.settings import Settings
from priorscan.trusts import TrustRegistry, load_trusts


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session] = field(init=False)
    trusts: TrustRegistry = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = session_factory(self.engine)
        self.trusts = load_trusts(self.settings.trusts_file)

    @classmethod
    def open(cls, settings: Settings, *, upgrade: bool = True, background_checkpoint: bool = False) -> AppContext:
        """Open the store of ``settings``; ``background_checkpoint`` for long-running servers (see
        :func:`priorscan.db.make_engine`)."""
        return cls(settings, open_store(settings.db, upgrade=upgrade, background_checkpoint=background_checkpoint))
