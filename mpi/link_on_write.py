"""The write path: a source record created or updated and linked on write (:meth:`LinkOnWrite.upsert`).

Linking rules (the domain reasons are in DESIGN.md section 2; the rules themselves are :func:`mpi.placement.place`):

- every source record belongs to exactly one regional patient, so its studies always have a home;
- an incoming record joins an existing regional patient only on a *match* with one of its records, when no record
  of that patient conflicts with it (a different valid, verified NHS number, a manual no-match, or a pair scoring
  below the possible threshold): one weak middle record can never chain two people together;
- a *possible match* gets a regional patient of its own and a review item with the explanation.

:class:`LinkOnWrite` is given its parts: the :class:`~mpi.index_store.IndexStore` (look-ups, candidates, scoring),
the :class:`~mpi.store_writer.StoreWriter` of the session's database (the rows of its statement paths) and the
:class:`~mpi.golden.GoldenRecords`. New records and updates of records the session does not hold are written in
plain cached statements through the writer (no ORM entity loaded); the ORM path serves the rest (further
identifiers, records the session already holds, and the identity operations' moves).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm.util import identity_key

from mpi.engine import MATCH, NO_MATCH, MatchRecord, PairScore, blocking_keys, to_match_record
from mpi.golden import GoldenRecords, Member, golden_values
from mpi.index_store import ClusterScores, IndexStore, match_source
from mpi.link_statements import _OTHER_MEMBER_SQL, _RECORD_ROW_SQL
from mpi.placement import link_changed, place
from mpi.record_columns import new_record_columns, updated_columns
from mpi.records import Demographics, RecordKey, new_regional_id
from mpi.scoring import explanation
from mpi.store_writer import StoreWriter
from mpi.tables import LinkEvent, RegionalPatient, ReviewItem, SourceIdentifier, SourceRecord, SourceRecordVersion
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

    Parts: ``store`` (look-ups, candidates and scoring), ``golden`` (golden records), ``writer`` (the rows of the
    statement paths, :meth:`create` and :meth:`update`, and every blocking key and person lock).
    """

    def __init__(self, store: IndexStore, golden: GoldenRecords, writer: StoreWriter) -> None:
        self.store = store
        self.golden = golden
        self.writer = writer
        self.session = store.session

    def upsert(self, demographics: Demographics, *, event: str, actor: str, source_kind: str = "hl7",
               provisional: bool = False) -> LinkOutcome:
        """Create or update a source record from ``demographics`` and link it (link-on-write); the outcome is
        counted for the metrics (``new``: the record matched nobody and has a regional patient of its own).

        An update older than the newest one applied (``event_at``) is kept in history but not applied.
        A provisional record (from DICOM headers) never overwrites one that a PAS or FHIR source made.
        """
        outcome = self._upsert(demographics, event=event, actor=actor, source_kind=source_kind,
                               provisional=provisional)
        if outcome.applied:
            new = outcome.link_state == MATCH and outcome.score is None
            metrics.link_outcome("new" if new else outcome.link_state)
        return outcome

    def _upsert(self, demographics: Demographics, *, event: str, actor: str, source_kind: str,
                provisional: bool) -> LinkOutcome:
        key = RecordKey(demographics.namespace, demographics.local_id.strip())
        if not key.local_id:
            raise IdentityError("a source record needs a local identifier")
        self._settle_pending()
        row = self.session.execute(_RECORD_ROW_SQL, {"ns": key.namespace, "local": key.local_id}).first()
        if row is None and not demographics.other_identifiers:
            return self.create(key, demographics, event=event, actor=actor, source_kind=source_kind,
                               provisional=provisional)
        if (row is not None and not demographics.other_identifiers
                and self.session.identity_map.get(identity_key(SourceRecord, row.id)) is None):
            return self.update(row, demographics, event=event, actor=actor, source_kind=source_kind,
                               provisional=provisional)
        record = None if row is None else self.session.get(SourceRecord, row.id)
        created = record is None
        if record is None:
            record = SourceRecord(namespace=key.namespace, local_id=key.local_id, trust_ods=demographics.trust_ods,
                                  source_kind=source_kind, provisional=provisional, version=0)
            self.session.add(record)
        elif provisional and not record.provisional:
            return self.outcome(record)

        stale = (not created and demographics.event_at is not None and record.last_event_at is not None
                 and demographics.event_at < record.last_event_at)
        record.version = (record.version or 0) + 1
        if not stale:
            self._apply(record, demographics)
            if record.provisional and not provisional:
                record.provisional = False
                record.source_kind = source_kind
            if demographics.event_at is not None:
                record.last_event_at = demographics.event_at
        self.session.flush()
        self.session.add(SourceRecordVersion(source_record_id=record.id, version=record.version, event=event,
                                             event_at=demographics.event_at, applied=not stale,
                                             demographics=demographics.as_json()))
        if stale:
            return LinkOutcome(record.id, record.regional_patient_id or "", record.link_state or NO_MATCH,
                               record.link_score, applied=False)
        self._set_identifiers(record, demographics.other_identifiers)
        self.refresh_blocking_keys(record, created=created)
        return self.link_on_write(record, actor=actor, reason=f"link-on-write ({event})", created=created)

    def create(self, key: RecordKey, demographics: Demographics, *, event: str, actor: str, source_kind: str,
               provisional: bool) -> LinkOutcome:
        """A new record, linked on write: the decision first, then its writes.

        The same rules as :meth:`link_on_write` (a new record has no manual decisions yet), written without the
        ORM's unit of work: this is the path every new registration takes, so its rows go to the writer's
        :meth:`~mpi.store_writer.StoreWriter.new_record` together (one statement on PostgreSQL).
        """
        values = new_record_columns(demographics, production=self.store.production)
        probe = to_match_record(None, match_source(values))
        self.writer.lock_person(probe)
        scores = self.store.score(probe, self.store.candidate_clusters(probe))
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
        review_id = None
        if placement.review is not None:
            review_id = self._insert_review(record_id, placement.review, scores, now)
        return LinkOutcome(record_id, target, state, probability, review_item_id=review_id)

    def _insert_review(self, record_id: int, possible: tuple[int, PairScore], scores: ClusterScores,
                       now: datetime) -> int:
        """Open a review item of ``record_id`` against the possible match, with its explanation; its id."""
        other_id, score = possible
        other_regional = next((rid for rid, member_id in scores.flat if member_id == other_id), None)
        return self.writer.insert_review({
            "source_record_id": record_id, "candidate_record_id": other_id, "candidate_regional_id": other_regional,
            "score": score.probability, "weights": explanation(self.store.model, score),
            "model_version": self.store.model.version, "status": "open", "created_at": now})

    def _settle_pending(self) -> None:
        """Flush ORM changes held by the session before statements that bypass it (and expire what they touch)."""
        session = self.session
        if session.new or session.dirty or session.deleted:
            session.flush()

    def update(self, row: Any, demographics: Demographics, *, event: str, actor: str, source_kind: str,
               provisional: bool) -> LinkOutcome:
        """An update of a known record, linked on write, in plain cached statements (no ORM entity loaded).

        The same steps and rules as the ORM path (:meth:`_apply`, :meth:`refresh_blocking_keys`,
        :meth:`link_on_write`): read the record's columns once, decide, write the record with one UPDATE.
        """
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
        stored = to_match_record(record_id, match_source(values)).as_stored()
        changes["match_fields"] = stored
        probe = MatchRecord.from_stored(record_id, stored)
        self.writer.insert_version(history)
        self.writer.replace_blocking_keys(record_id, blocking_keys(probe))
        previous: str | None = row.regional_patient_id
        if row.link_manual and previous:  # a manual decision sticks: the record stays where a person put it
            self.writer.update_record(record_id, changes)
            self.golden.refresh_rows(previous)
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
            member = Member({**values}, bool(changes.get("provisional", row.provisional)),
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
                "model_version": model_version, "actor": actor, "reason": f"link-on-write ({event})",
                "at": now})
        review_id = None
        if row.has_open_review:
            self.writer.close_reviews(record_id)
        if placement.review is not None:
            review_id = self._insert_review(record_id, placement.review, scores, now)
        if previous and previous != target:
            self.golden.refresh_rows(previous)
        if not fresh:  # a fresh patient was written with its only member's values
            self.golden.refresh_rows(target)
        return LinkOutcome(record_id, target, state, probability, review_item_id=review_id)

    def _explained(self, score: PairScore | None) -> dict[str, Any] | None:
        """What a link stores of its pair's score (:func:`mpi.scoring.explanation`), None without a pair."""
        return explanation(self.store.model, score) if score is not None else None

    def _apply(self, record: SourceRecord, demographics: Demographics) -> None:
        for name, value in updated_columns(record, demographics, production=self.store.production).items():
            setattr(record, name, value)
        if demographics.trust_ods:
            record.trust_ods = demographics.trust_ods
        record.match_fields = to_match_record(record.id, IndexStore.raw_fields(record)).as_stored()

    def _set_identifiers(self, record: SourceRecord, identifiers: Sequence[tuple[str, str]]) -> None:
        if not identifiers:
            return
        existing = {(i.system, i.value) for i in self.session.scalars(
            select(SourceIdentifier).where(SourceIdentifier.source_record_id == record.id))}
        for system, value in identifiers:
            namespace = self.store.namespace_for(system)
            if (namespace, value) == (record.namespace, record.local_id) or (namespace, value) in existing:
                continue
            existing.add((namespace, value))
            self.session.add(SourceIdentifier(source_record_id=record.id, system=namespace, value=value))

    def refresh_blocking_keys(self, record: SourceRecord, *, created: bool = False) -> None:
        """Index the record's blocking keys (only the changes, for a known record)."""
        keys = blocking_keys(IndexStore.match_record(record))
        if created:
            self.writer.insert_blocking_keys(record.id, keys)
        else:
            self.writer.replace_blocking_keys(record.id, keys)

    def drop_blocking_keys(self, record_id: int) -> None:
        """Unindex a record (merged away: it is nobody's candidate any more)."""
        self.writer.replace_blocking_keys(record_id, ())

    def link_on_write(self, record: SourceRecord, *, actor: str, reason: str, created: bool = False) -> LinkOutcome:
        """Place ``record`` (held by the session) with the regional patient it matches, or a new one; respects
        manual decisions.

        A few indexed queries (blocking keys, the candidates' patients with all their records, manual decisions) and
        one vectorised scoring call: the record joins the best-matching patient only if no record of that patient
        conflicts with it (the cluster integrity check).
        """
        if record.link_manual and record.regional_patient_id:
            self.golden.refresh(record.regional_patient_id)
            return self.outcome(record)
        probe = IndexStore.match_record(record)
        manual = {} if created else self.store.manual_decisions(record.id)  # a new record has no decisions yet
        self.writer.lock_person(probe)
        also = [other for other, decision in manual.items() if decision == MATCH]
        scores = self.store.score(probe, self.store.candidate_clusters(probe, exclude=record.id, also=also))
        placement = place(scores, manual)
        previous = record.regional_patient_id
        review_id = None
        # a record that matches nobody keeps (or gets) a regional patient of its own
        alone = placement.join is None and previous is not None and self._is_alone(record, previous)
        fresh = None if placement.join is not None or alone else self.new_patient()
        target = placement.target(previous, alone=alone, new_id=fresh.id if fresh is not None else "")
        self.move(record, target, state=placement.state, score=placement.probability,
                  weights=self._explained(placement.score), actor=actor, reason=reason)
        if placement.review is not None:
            review_id = self._open_review(record, placement.review)
        elif not created:
            self._close_reviews(record)
        if previous and previous != target:
            self.golden.refresh(previous)
        if fresh is not None:  # the record is the new patient's only member
            self.golden.set_from(fresh, [record])
        else:
            self.golden.refresh(target)
        return LinkOutcome(record.id, target, placement.state, placement.probability, review_item_id=review_id)

    def _is_alone(self, record: SourceRecord, regional_id: str) -> bool:
        others = [r for r in self.store.records_of(regional_id, include_inactive=False) if r.id != record.id]
        return not others

    def new_patient(self) -> RegionalPatient:
        """A new regional patient added to the session (its id is made here, so nothing needs flushing yet: the
        insert goes with the next statement)."""
        patient = RegionalPatient(id=new_regional_id(), status="active")
        self.session.add(patient)
        return patient

    def move(self, record: SourceRecord, regional_id: str, *, state: str, score: float | None,
             weights: dict[str, Any] | None, actor: str, reason: str, manual: bool = False) -> None:
        """Link ``record`` (held by the session) to ``regional_id``, with a link event when the link changes."""
        previous = record.regional_patient_id
        changed = link_changed(previous, regional_id, state=state, old_state=record.link_state,
                               manual_changed=record.link_manual != manual)
        record.regional_patient_id = regional_id
        record.link_state = state
        record.link_manual = manual
        record.link_score = score
        record.link_weights = weights
        record.link_model_version = None if manual else self.store.model.version
        record.linked_by = actor
        record.linked_at = utcnow()
        if changed:
            self.session.add(LinkEvent(source_record_id=record.id, from_regional_id=previous,
                                       to_regional_id=regional_id, link_state=state, manual=manual, score=score,
                                       weights=weights, model_version=record.link_model_version, actor=actor,
                                       reason=reason))

    def _open_review(self, record: SourceRecord, possible: tuple[int, PairScore]) -> int:
        other_id, score = possible
        other = self.session.get(SourceRecord, other_id)
        self._close_reviews(record)
        item = ReviewItem(source_record_id=record.id, candidate_record_id=other_id,
                          candidate_regional_id=other.regional_patient_id if other else None, score=score.probability,
                          weights=explanation(self.store.model, score),
                          model_version=self.store.model.version)
        self.session.add(item)
        self.session.flush()
        return item.id

    def _close_reviews(self, record: SourceRecord) -> None:
        """Open review items about ``record`` are superseded by a newer decision."""
        for item in self.session.scalars(select(ReviewItem).where(ReviewItem.source_record_id == record.id,
                                                                   ReviewItem.status == "open")):
            item.status = "superseded"

    @staticmethod
    def outcome(record: SourceRecord) -> LinkOutcome:
        """Where ``record`` stands now."""
        return LinkOutcome(record.id, record.regional_patient_id or "", record.link_state or NO_MATCH,
                           record.link_score)


__all__ = ["LinkOnWrite", "LinkOutcome"]
