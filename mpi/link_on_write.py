"""The write path: a source record created or updated and linked on write (:meth:`LinkOnWrite.upsert`).

Linking rules (the domain reasons are in DESIGN.md section 2; the rules themselves are :func:`mpi.placement.place`):

- every source record belongs to exactly one regional patient, so its studies always have a home;
- an incoming record joins an existing regional patient only on a *match* with one of its records, when no record
  of that patient conflicts with it (a different valid, verified NHS number, a manual no-match, or a pair scoring
  below the possible threshold): one weak middle record can never chain two people together;
- a *possible match* gets a regional patient of its own and a review item with the explanation.

:class:`LinkOnWrite` is given its parts: the :class:`~mpi.index_store.IndexStore` (look-ups, candidates, scoring),
the :class:`~mpi.store_writer.StoreWriter` of the session's database and the :class:`~mpi.golden.GoldenRecords`.
There is one write path: every row it writes (the record, its versions, further identifiers and blocking keys, the
link event, the regional patient, review items) is a Core statement through the writer, for a new record
(:meth:`LinkOnWrite.create`), an update of a known one (:meth:`LinkOnWrite.update`), a record placed again
(:meth:`LinkOnWrite.place_again`) and the identity operations' moves (:meth:`LinkOnWrite.move`). No ORM entity is
written: one the session holds is expired by the writer and read again when next used.

A new record's candidates are read before it is written, an update's after its blocking keys are: either way a key
held by more than :data:`~mpi.engine.MAX_BLOCK_SIZE` records, the record itself counted, is skipped (as the batch
relink skips it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from mpi.engine import MATCH, NO_MATCH, MatchRecord, PairScore, blocking_keys, to_match_record
from mpi.golden import GoldenRecords, Member, golden_values
from mpi.identifier_systems import identifier_tokens
from mpi.index_store import DEMOGRAPHIC_FIELDS, ClusterScores, IndexStore, match_source
from mpi.link_statements import _OTHER_MEMBER_SQL, _RECORD_ROW_BY_ID_SQL, _RECORD_ROW_SQL
from mpi.placement import link_changed, place
from mpi.record_columns import new_record_columns, updated_columns
from mpi.records import Demographics, RecordKey, new_regional_id
from mpi.scoring import explanation
from mpi.store_writer import StoreWriter
from priorscan import metrics
from priorscan.db import utcnow
from priorscan.errors import IdentityError


@dataclass
class LinkOutcome:
    """Where a source record stands after an operation."""

    source_record_id: int
    regional_id: str
    link_state: str
    score: float | None = None
    applied: bool = True  # false when an out-of-order update was kept in history only
    review_item_id: int | None = None


class LinkOnWrite:
    """Create or update source records and place each with the regional patient it matches.

    Parts: ``store`` (look-ups, candidates and scoring), ``golden`` (golden records), ``writer`` (every row written,
    as Core statements, and the person locks).
    """

    def __init__(self, store: IndexStore, golden: GoldenRecords, writer: StoreWriter) -> None:
        self.store = store
        self.golden = golden
        self.writer = writer
        self.session = store.session

    def upsert(self, demographics: Demographics, *, event: str, actor: str, source_kind: str = "hl7",
               provisional: bool = False, absent: bool = False) -> LinkOutcome:
        """Create or update a source record from ``demographics`` and link it (link-on-write); the outcome is
        counted for the metrics (``new``: the record matched nobody and has a regional patient of its own).

        An update older than the newest one applied (``event_at``) is kept in history but not applied.
        A provisional record (from DICOM headers) never overwrites one that a PAS or FHIR source made.

        ``absent``: the caller has looked the key up in this transaction and written no record of it since (the
        bulk load's groups, :mod:`imaging.bulk`), so the record is created without being looked up again; one that
        another transaction wrote meanwhile fails the insert on its unique key, as one written between the look-up
        and the insert does either way.
        """
        key = RecordKey(demographics.namespace, demographics.local_id.strip())
        if not key.local_id:
            raise IdentityError("a source record needs a local identifier")
        self.settle_pending()
        row = None if absent else self.session.execute(_RECORD_ROW_SQL, {"ns": key.namespace,
                                                                         "local": key.local_id}).first()
        if row is None:
            outcome = self.create(key, demographics, event=event, actor=actor, source_kind=source_kind,
                                  provisional=provisional)
        else:
            outcome = self.update(row, key, demographics, event=event, actor=actor, source_kind=source_kind,
                                  provisional=provisional)
        if outcome.applied:
            new = outcome.link_state == MATCH and outcome.score is None
            metrics.link_outcome("new" if new else outcome.link_state)
        return outcome

    def settle_pending(self) -> None:
        """Flush ORM changes a caller left in the session before statements that bypass it (the writer then
        expires what it writes, which would otherwise discard them)."""
        session = self.session
        if session.new or session.dirty or session.deleted:
            session.flush()

    def create(self, key: RecordKey, demographics: Demographics, *, event: str, actor: str, source_kind: str,
               provisional: bool) -> LinkOutcome:
        """A new record, linked on write: the decision first, then its writes.

        This is the path every new registration takes, so its rows go to the writer's
        :meth:`~mpi.store_writer.StoreWriter.new_record` together (one statement on PostgreSQL); further identifiers
        follow. The record is not written when its candidates are read: its keys' blocks count it all the same
        (``unwritten``), so a key over the cap is skipped as it is for an update.
        """
        values = new_record_columns(demographics, production=self.store.production)
        identifiers = identifier_tokens((key.namespace, key.local_id), self._canonical(demographics.other_identifiers))
        probe = to_match_record(None, {**match_source(values), "identifiers": identifiers})
        self.writer.lock_person(probe)
        scores = self.store.score(probe, self.store.candidate_clusters(probe, unwritten=True))
        placement = place(scores, {})  # a new record has no manual decisions yet
        now = utcnow()
        model_version = self.store.model.version
        state, probability, weights = placement.state, placement.probability, self._explained(placement.score)
        target = placement.target(None, alone=False, new_id=new_regional_id())
        founds = placement.join is None
        member = Member(values, provisional, demographics.event_at or now)
        if founds:
            patient = {"id": target, "status": "active", "created_at": now, "updated_at": now,
                       **golden_values([member])}
        else:
            patient = {"id": target, "status": "active", "updated_at": now,
                       **golden_values([*self.golden.members(target), member])}
        record = {
            **values, "namespace": key.namespace, "local_id": key.local_id, "trust_ods": demographics.trust_ods,
            "source_kind": source_kind, "provisional": provisional, "active": True, "version": 1,
            "match_fields": probe.as_stored(), "regional_patient_id": target, "link_state": state,
            "link_manual": False, "link_score": probability, "link_weights": weights,
            "link_model_version": model_version, "linked_by": actor, "linked_at": now,
            "last_event_at": demographics.event_at, "created_at": now, "updated_at": now}
        version = {"version": 1, "event": event, "event_at": demographics.event_at, "received_at": now,
                   "applied": True, "demographics": demographics.as_json()}
        link_event = {"from_regional_id": None, "to_regional_id": target, "link_state": state, "manual": False,
                      "score": probability, "weights": weights, "model_version": model_version, "actor": actor,
                      "reason": f"link-on-write ({event})", "at": now}
        record_id = self.writer.new_record(record, version, blocking_keys(probe), link_event, patient,
                                           founds_patient=founds)
        self._add_identifiers(record_id, key, demographics.other_identifiers)
        review_id = None
        if placement.review is not None:
            review_id = self._insert_review(record_id, placement.review, scores, now)
        return LinkOutcome(record_id, target, state, probability, review_item_id=review_id)

    def _canonical(self, identifiers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(self.store.namespace_for(system), value) for system, value in identifiers]

    def _add_identifiers(self, record_id: int, key: RecordKey, identifiers: Iterable[tuple[str, str]]) -> None:
        """The further identifiers a source sent, in canonical namespaces; the record's own key left out."""
        further = self._canonical(identifiers)
        self.writer.add_identifiers(record_id, [pair for pair in further if pair != (key.namespace, key.local_id)])

    def _insert_review(self, record_id: int, possible: tuple[int, PairScore], scores: ClusterScores,
                       now: datetime) -> int:
        """Open a review item of ``record_id`` against the possible match, with its explanation; its id."""
        other_id, score = possible
        other_regional = next((rid for rid, member_id in scores.flat if member_id == other_id), None)
        return self.writer.insert_review({
            "source_record_id": record_id, "candidate_record_id": other_id, "candidate_regional_id": other_regional,
            "score": score.probability, "weights": explanation(self.store.model, score),
            "model_version": self.store.model.version, "status": "open", "created_at": now})

    def update(self, row: Any, key: RecordKey, demographics: Demographics, *, event: str, actor: str,
               source_kind: str, provisional: bool) -> LinkOutcome:
        """An update of a known record (``row``: its columns as :data:`~mpi.link_statements._RECORD_ROW_SQL` reads
        them), linked on write: read the record's columns once, write its version, further identifiers and blocking
        keys, decide (:meth:`_place`), write the record with one UPDATE."""
        record_id: int = row.id
        if provisional and not row.provisional:
            return LinkOutcome(record_id, row.regional_patient_id or "", row.link_state or NO_MATCH, row.link_score)
        now = utcnow()
        version = (row.version or 0) + 1
        stale = (demographics.event_at is not None and row.last_event_at is not None
                 and demographics.event_at < row.last_event_at)
        history = {"source_record_id": record_id, "version": version, "event": event,
                   "event_at": demographics.event_at, "received_at": now, "applied": not stale,
                   "demographics": demographics.as_json()}
        if stale:
            self.writer.update_record(record_id, {"version": version, "updated_at": now})
            self.writer.insert_version(history)
            return LinkOutcome(record_id, row.regional_patient_id or "", row.link_state or NO_MATCH,
                               row.link_score, applied=False)
        values = updated_columns(row, demographics, production=self.store.production)
        changes: dict[str, Any] = {"version": version, "updated_at": now, **values}
        if demographics.trust_ods:
            changes["trust_ods"] = demographics.trust_ods
        if row.provisional and not provisional:
            changes["provisional"] = False
            changes["source_kind"] = source_kind
        if demographics.event_at is not None:
            changes["last_event_at"] = demographics.event_at
        self.writer.insert_version(history)
        self._add_identifiers(record_id, key, demographics.other_identifiers)
        # every further identifier the record holds, from this message and earlier ones (H-ID-61)
        identifiers = identifier_tokens((key.namespace, key.local_id), self.store.further_identifiers(record_id))
        stored = to_match_record(record_id, {**match_source(values), "identifiers": identifiers}).as_stored()
        changes["match_fields"] = stored
        probe = MatchRecord.from_stored(record_id, stored)
        self.writer.replace_blocking_keys(record_id, blocking_keys(probe))
        return self._place(row, probe, changes, actor=actor, reason=f"link-on-write ({event})", now=now)

    def place_again(self, record_id: int, *, actor: str, reason: str) -> LinkOutcome:
        """Place a known record again as it stands (no new demographics): after an unmerge, a record whose
        automatic placement may have rested on the merged patient."""
        row = self.session.execute(_RECORD_ROW_BY_ID_SQL, {"sid": record_id}).one()
        probe = (MatchRecord.from_stored(record_id, row.match_fields) if row.match_fields is not None
                 else to_match_record(record_id, match_source(dict(row._mapping))))
        return self._place(row, probe, {"updated_at": utcnow()}, actor=actor, reason=reason, now=utcnow())

    def _place(self, row: Any, probe: MatchRecord, changes: dict[str, Any], *, actor: str, reason: str,
               now: datetime) -> LinkOutcome:
        """Place a known record (``row`` as it was read, ``changes`` its columns to write) with the patient it
        matches (:func:`mpi.placement.place`), respecting manual decisions, and write it with one UPDATE: the link
        event when the link changes, review items, golden records."""
        record_id: int = row.id
        previous: str | None = row.regional_patient_id
        if row.link_manual and previous:  # a manual decision sticks: the record stays where a person put it
            self.writer.update_record(record_id, changes)
            self.golden.refresh(previous)
            return LinkOutcome(record_id, previous, row.link_state or NO_MATCH, row.link_score)

        manual = self.store.manual_decisions(record_id) if row.has_manual else {}
        self.writer.lock_person(probe)
        also = [other for other, decision in manual.items() if decision == MATCH]
        scores = self.store.score(probe, self.store.candidate_clusters(probe, exclude=record_id, also=also))
        placement = place(scores, manual)
        model_version = self.store.model.version
        state, probability, weights = placement.state, placement.probability, self._explained(placement.score)
        # a record that matches nobody keeps (or gets) a regional patient of its own
        alone = placement.join is None and previous is not None and self.session.execute(
            _OTHER_MEMBER_SQL, {"rid": previous, "sid": record_id}).first() is None
        target = placement.target(previous, alone=alone, new_id=new_regional_id())
        fresh = target not in (placement.join, previous)
        if fresh:
            member = Member({name: changes.get(name, getattr(row, name))
                             for name in (*DEMOGRAPHIC_FIELDS, "nhs_number_valid")},
                            bool(changes.get("provisional", row.provisional)),
                            changes.get("last_event_at") or row.last_event_at or now)
            self.writer.insert_patient({"id": target, "status": "active", "created_at": now, "updated_at": now,
                                        **golden_values([member])})
        changes.update(regional_patient_id=target, link_state=state, link_manual=False, link_score=probability,
                       link_weights=weights, link_model_version=model_version, linked_by=actor, linked_at=now)
        self.writer.update_record(record_id, changes)
        if link_changed(previous, target, state=state, old_state=row.link_state,
                        manual_changed=bool(row.link_manual)):
            self.writer.insert_link_event({
                "source_record_id": record_id, "from_regional_id": previous, "to_regional_id": target,
                "link_state": state, "manual": False, "score": probability, "weights": weights,
                "model_version": model_version, "actor": actor, "reason": reason, "at": now})
        review_id = None
        if row.has_open_review:
            self.writer.close_reviews(record_id)
        if placement.review is not None:
            review_id = self._insert_review(record_id, placement.review, scores, now)
        if previous and previous != target:
            self.golden.refresh(previous)
        if not fresh:  # a fresh patient was written with its only member's values
            self.golden.refresh(target)
        return LinkOutcome(record_id, target, state, probability, review_item_id=review_id)

    def _explained(self, score: PairScore | None) -> dict[str, Any] | None:
        """What a link stores of its pair's score (:func:`mpi.scoring.explanation`), None without a pair."""
        return explanation(self.store.model, score) if score is not None else None

    def refresh_blocking_keys(self, record: Any) -> None:
        """Index a known record's blocking keys from its match fields (only the changes are written)."""
        self.writer.replace_blocking_keys(record.id, blocking_keys(IndexStore.match_record(record)))

    def refresh_identifiers(self, record: Any, key: RecordKey) -> None:
        """Bring a known record's identifiers (match fields and ``i:`` blocking keys) to ``key``, its key now, and
        its current further identifiers, as its next message would write them: after a change of its key (ADT A47),
        the replaced key (kept with use ``old``) is no evidence any more and the new one is its own (H-ID-61)."""
        identifiers = identifier_tokens((key.namespace, key.local_id), self.store.further_identifiers(record.id))
        match = replace(IndexStore.match_record(record), identifiers=identifiers)
        self.writer.update_record(record.id, {"match_fields": match.as_stored()})
        self.writer.replace_blocking_keys(record.id, blocking_keys(match))

    def drop_blocking_keys(self, record_id: int) -> None:
        """Unindex a record (merged away: it is nobody's candidate any more)."""
        self.writer.replace_blocking_keys(record_id, ())

    def new_patient(self) -> str:
        """A new, empty regional patient (its golden record follows its first member); its id."""
        regional_id = new_regional_id()
        self.writer.insert_patient({"id": regional_id, "status": "active"})
        return regional_id

    def move(self, record: Any, regional_id: str, *, state: str, score: float | None,
             weights: dict[str, Any] | None, actor: str, reason: str, manual: bool = False,
             also: Mapping[str, Any] | None = None) -> None:
        """Link ``record`` (an entity or a row: its id and present link are read) to ``regional_id``, with a link
        event when the link changes; ``also``: further columns of the record written with the link."""
        record_id: int = record.id
        previous: str | None = record.regional_patient_id
        changed = link_changed(previous, regional_id, state=state, old_state=record.link_state,
                               manual_changed=bool(record.link_manual) != manual)
        model_version = None if manual else self.store.model.version
        now = utcnow()
        self.writer.update_record(record_id, {
            **(also or {}), "regional_patient_id": regional_id, "link_state": state, "link_manual": manual,
            "link_score": score, "link_weights": weights, "link_model_version": model_version, "linked_by": actor,
            "linked_at": now})
        if changed:
            self.writer.insert_link_event({
                "source_record_id": record_id, "from_regional_id": previous, "to_regional_id": regional_id,
                "link_state": state, "manual": manual, "score": score, "weights": weights,
                "model_version": model_version, "actor": actor, "reason": reason, "at": now})

    @staticmethod
    def outcome(record: Any) -> LinkOutcome:
        """Where ``record`` stands now."""
        return LinkOutcome(record.id, record.regional_patient_id or "", record.link_state or NO_MATCH,
                           record.link_score)


__all__ = ["LinkOnWrite", "LinkOutcome"]
