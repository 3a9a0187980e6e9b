"""The patient index service: link-on-write, identity operations and look-ups over one database session.

:class:`PatientIndex` is what the edges (HL7, FHIR, DICOM, the duplicate check) call. It never commits: the caller
commits the unit of work, so an ACK or a 2xx goes out only after the data is stored. It owns no logic of its own:
it assembles small parts, each with one responsibility and given what it works with explicitly (no part inherits
from another), and hands each call to the part that answers it:

- :class:`~mpi.index_store.IndexStore` (given the session): look-ups, manual decisions, blocking and scoring a probe
  against candidate patients; it writes nothing;
- :class:`~mpi.store_writer.StoreWriter` (the session): every row of identity, written by Core statements
  (link-on-write, the identity operations, golden records, bulk loads), behind one protocol with a SQLite and
  a PostgreSQL strategy (:func:`~mpi.store_writer.store_writer_for` picks by dialect);
- :class:`~mpi.golden.GoldenRecords` (the session, the writer): the golden record of a regional patient;
- :class:`~mpi.link_on_write.LinkOnWrite` (the store, golden records, the writer): ``upsert`` with link-on-write,
  each record placed by :func:`mpi.placement.place` (the linking rules, pure);
- :class:`~mpi.identity_operations.IdentityOperations` (the store, golden records, link-on-write): merge, unmerge,
  link, unlink, change of identifier, relink, review decisions;
- :class:`~mpi.resolution.Resolver` (the store): the read side, ``resolve`` for requests and ``match`` for FHIR
  ``$match``.

The active matching model is :mod:`mpi.active_model`'s, cached per version. Manual decisions (A24 link, A37 unlink,
A40 merge, review decisions) stick: automatic relinks respect them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from mpi.active_model import active_model, forget_active_model
from mpi.engine import MatchRecord, Model
from mpi.golden import GoldenRecords
from mpi.identity_operations import IdentityOperations
from mpi.index_store import IndexStore
from mpi.link_on_write import LinkOnWrite, LinkOutcome
from mpi.records import Demographics, RecordKey
from mpi.resolution import MatchCandidate, Resolution, Resolver
from mpi.store_writer import store_writer_for
from mpi.tables import RegionalPatient, SourceRecord
from priorscan.trusts import TrustRegistry


class PatientIndex:
    """Identity operations over one session. ``actor`` names who or what acts (a feed, a user, the batch).

    ``model``: the matching model (the active one by default); ``production``: test-range NHS numbers are flagged
    and unused (from ``PRIORSCAN_ENV`` by default).
    """

    def __init__(self, session: Session, trusts: TrustRegistry, model: Model | None = None, *,
                 production: bool | None = None) -> None:
        self.store = IndexStore(session, trusts, model, production=production)
        self.writer = store_writer_for(session)
        self.golden = GoldenRecords(session, self.writer)
        self.linker = LinkOnWrite(self.store, self.golden, self.writer)
        self.operations = IdentityOperations(self.store, self.golden, self.linker)
        self.resolver = Resolver(self.store)

    @property
    def session(self) -> Session:
        return self.store.session

    @property
    def trusts(self) -> TrustRegistry:
        return self.store.trusts

    @property
    def model(self) -> Model:
        return self.store.model

    @property
    def production(self) -> bool:
        return self.store.production

    # --- writing (link-on-write and identity operations) --------------------------------------------------------

    def upsert(self, demographics: Demographics, *, event: str, actor: str, source_kind: str = "hl7",
               provisional: bool = False, absent: bool = False) -> LinkOutcome:
        """:meth:`mpi.link_on_write.LinkOnWrite.upsert`: create or update a source record and link it on write."""
        return self.linker.upsert(demographics, event=event, actor=actor, source_kind=source_kind,
                                  provisional=provisional, absent=absent)

    def merge(self, survivor: RecordKey, retired: RecordKey, *, actor: str, event: str = "ADT^A40",
              survivor_demographics: Demographics | None = None, by_person: bool = False) -> LinkOutcome:
        """:meth:`mpi.identity_operations.IdentityOperations.merge` (ADT A40)."""
        return self.operations.merge(survivor, retired, actor=actor, event=event,
                                     survivor_demographics=survivor_demographics, by_person=by_person)

    def unmerge(self, survivor: RecordKey, retired: RecordKey, *, actor: str) -> LinkOutcome:
        """:meth:`mpi.identity_operations.IdentityOperations.unmerge`."""
        return self.operations.unmerge(survivor, retired, actor=actor)

    def link(self, a: RecordKey, b: RecordKey, *, actor: str, event: str = "ADT^A24",
             by_person: bool = False) -> LinkOutcome:
        """:meth:`mpi.identity_operations.IdentityOperations.link` (ADT A24, a steward's link)."""
        return self.operations.link(a, b, actor=actor, event=event, by_person=by_person)

    def unlink(self, a: RecordKey, b: RecordKey, *, actor: str, event: str = "ADT^A37") -> LinkOutcome:
        """:meth:`mpi.identity_operations.IdentityOperations.unlink` (ADT A37, a steward's unlink)."""
        return self.operations.unlink(a, b, actor=actor, event=event)

    def change_identifier(self, old: RecordKey, new: RecordKey, *, actor: str,
                          event: str = "ADT^A47") -> LinkOutcome:
        """:meth:`mpi.identity_operations.IdentityOperations.change_identifier` (ADT A47)."""
        return self.operations.change_identifier(old, new, actor=actor, event=event)

    def relink(self, key: RecordKey, regional_id: str, *, actor: str, reason: str = "manual relink",
               by_person: bool = False) -> LinkOutcome:
        """:meth:`mpi.identity_operations.IdentityOperations.relink`."""
        return self.operations.relink(key, regional_id, actor=actor, reason=reason, by_person=by_person)

    def resolve_review(self, item_id: int, decision: str, *, actor: str) -> LinkOutcome:
        """:meth:`mpi.identity_operations.IdentityOperations.resolve_review`."""
        return self.operations.resolve_review(item_id, decision, actor=actor)

    # --- the read side ------------------------------------------------------------------------------------------

    def resolve(self, identifiers: Iterable[tuple[str, str]], demographics: Demographics | None) -> Resolution:
        """:meth:`mpi.resolution.Resolver.resolve`: who a request is about."""
        return self.resolver.resolve(identifiers, demographics)

    def match(self, demographics: Demographics, *, count: int = 10) -> list[MatchCandidate]:
        """:meth:`mpi.resolution.Resolver.match`: regional patients scored against ``demographics``."""
        return self.resolver.match(demographics, count=count)

    def patients_known_by(self, system: str, value: str) -> list[str]:
        """:meth:`mpi.resolution.Resolver.patients_known_by`."""
        return self.resolver.patients_known_by(system, value)

    # --- look-ups (mpi.index_store) -----------------------------------------------------------------------------

    def namespace_for(self, system: str) -> str:
        """The canonical namespace of an identifier system or trust alias."""
        return self.store.namespace_for(system)

    def get_record(self, key: RecordKey) -> SourceRecord | None:
        return self.store.get_record(key)

    def require_record(self, key: RecordKey) -> SourceRecord:
        return self.store.require_record(key)

    def find_records(self, system: str, value: str) -> list[SourceRecord]:
        """Source records known by the identifier ``system|value``."""
        return self.store.find_records(system, value)

    def regional_patient(self, regional_id: str) -> RegionalPatient | None:
        """The regional patient, following merges to the surviving one."""
        return self.store.regional_patient(regional_id)

    def survivors(self, regional_ids: Iterable[str], *, read: Mapping[str, Any] | None = None
                  ) -> dict[str, str | None]:
        """The surviving regional id of each of ``regional_ids`` (:meth:`mpi.index_store.IndexStore.survivors`)."""
        return self.store.survivors(regional_ids, read=read)

    def records_of(self, regional_id: str, *, include_inactive: bool = True) -> list[SourceRecord]:
        return self.store.records_of(regional_id, include_inactive=include_inactive)

    def manual_decisions(self, record_id: int) -> dict[int, str]:
        """The other record of each manual decision about ``record_id``, with the decision."""
        return self.store.manual_decisions(record_id)

    def candidate_ids(self, probe: MatchRecord, *, exclude: int | None = None) -> list[int]:
        """Records sharing a blocking key with ``probe`` (:meth:`mpi.index_store.IndexStore.candidate_ids`)."""
        return self.store.candidate_ids(probe, exclude=exclude)

    def candidate_clusters(self, probe: MatchRecord, *, exclude: int | None = None,
                           also: Iterable[int] = ()) -> dict[str, list[MatchRecord]]:
        """The candidates' patients with their records (:meth:`mpi.index_store.IndexStore.candidate_clusters`)."""
        return self.store.candidate_clusters(probe, exclude=exclude, also=also)


__all__ = ["LinkOutcome", "MatchCandidate", "PatientIndex", "Resolution", "active_model", "forget_active_model"]
