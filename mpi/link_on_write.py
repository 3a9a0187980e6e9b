"""The write path: a source record created or updated and linked on write (:meth:`LinkOnWrite.upsert`).

Linking rules (the domain reasons are in DESIGN.md section 2):

- every source record belongs to exactly one regional patient, so its studies always have a home;
- an incoming record joins an existing regional patient only on a *match* with one of its records, when no record
  of that patient conflicts with it (a different valid, verified NHS number, a manual no-match, or a pair scoring
  below the possible threshold): one weak middle record can never chain two people together;
- a *possible match* gets a regional patient of its own and a review item with the explanation.

New records and updates of records the session does not hold are written with plain cached statements
(:mod:`mpi.link_statements`; no ORM entity loaded); the ORM path serves the rest (further identifiers, records the
session already holds)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.orm.util import identity_key

from mpi.engine import MATCH, NO_MATCH, MatchRecord, PairScore, blocking_keys, to_match_record
from mpi.golden import _GOLDEN_SQL, GoldenRecords, _golden_values, _Member
from mpi.index_store import DEMOGRAPHIC_FIELDS, ClusterScores, match_source
from mpi.link_statements import (
    _BLOCKING_KEYS_OF_SQL,
    _CLOSE_REVIEWS,
    _DELETE_BLOCKING_KEYS,
    _INSERT_LINK_EVENT,
    _INSERT_PATIENT,
    _INSERT_RECORD,
    _INSERT_REVIEW,
    _INSERT_VERSION,
    _MANUAL_SQL,
    _OTHER_MEMBER_SQL,
    _RECORD_ROW_SQL,
    _REPLACE_BLOCKING_KEYS_PG,
    _UPDATE_RECORD,
    _insert_blocking_keys_sql,
    _new_record_in_one_statement,
)
from mpi.nhs_number import counts_as_nhs_number, normalise_nhs_number
from mpi.normalise import as_date
from mpi.placement import link_changed, place
from mpi.records import DELETE, Demographics, RecordKey
from mpi.scoring import explanation
from mpi.tables import (
    BlockingKey,
    LinkEvent,
    RegionalPatient,
    ReviewItem,
    SourceIdentifier,
    SourceRecord,
    SourceRecordVersion,
    table_of,
)
from priorscan.db import utcnow
from priorscan.errors import IdentityError

_REGIONAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass
class LinkOutcome:
    """Where a source record stands after an operation."""

    source_record_id: int
    regional_id: str
    link_state: str
    score: float | None = None
    applied: bool = True  # false when an out-of-order update was kept in history only
    review_item_id: int | None = None


def _column_values(demographics: Demographics, *, production: bool = False) -> dict[str, Any]:
    """The source record's demographic columns for a new record (as :meth:`LinkOnWrite._apply` sets them).

    ``production``: a test-range NHS number (999…) is kept but flagged as not valid, so it is never used
    (:func:`mpi.nhs_number.counts_as_nhs_number`)."""
    values: dict[str, Any] = {name: None for name in DEMOGRAPHIC_FIELDS}
    values.update(nhs_number_valid=False, birth_date_text=None)
    for name in DEMOGRAPHIC_FIELDS:
        value = getattr(demographics, name)
        if value is None or value == DELETE:
            continue
        if name == "nhs_number":
            digits = normalise_nhs_number(value)
            values["nhs_number"] = digits or str(value)[:10]
            values["nhs_number_valid"] = counts_as_nhs_number(digits, production=production)
        elif name == "birth_date":
            full = as_date(value)
            values["birth_date"] = full
            values["birth_date_text"] = None if full else str(value)[:10]
        elif name == "death_date":
            values["death_date"] = as_date(value)
        else:
            values[name] = value
    return values


def _applied_values(row: Any, demographics: Demographics, *, production: bool = False) -> dict[str, Any]:
    """A known record's demographic columns after ``demographics`` is applied (both update paths use it);
    ``production`` as :func:`_column_values`."""
    values: dict[str, Any] = {name: getattr(row, name) for name in DEMOGRAPHIC_FIELDS}
    values["nhs_number_valid"] = row.nhs_number_valid
    values["birth_date_text"] = row.birth_date_text
    for name in DEMOGRAPHIC_FIELDS:
        value = getattr(demographics, name)
        if value is None:
            continue
        if value == DELETE:
            value = None
        if name == "nhs_number":
            digits = normalise_nhs_number(value) if value is not None else None
            values["nhs_number"] = (digits or str(value)[:10]) if value is not None else None
            values["nhs_number_valid"] = counts_as_nhs_number(digits, production=production)
        elif name == "birth_date":
            full = as_date(value) if value is not None else None
            values["birth_date"] = full
            values["birth_date_text"] = None if full or value is None else str(value)[:10]
        elif name == "death_date":
            values["death_date"] = as_date(value) if value is not None else None
        else:
            values[name] = value
    return values


def _raw(values: dict[str, Any]) -> dict[str, object]:
    """The fields normalised into a match record (as :meth:`IndexStore._raw_fields`)."""
    return match_source(values)


#: PostgreSQL: transaction-scoped advisory locks on the given keys, taken in order (``LinkOnWrite._lock_person``).
_LOCK_PERSON_SQL = text("SELECT COUNT(pg_advisory_xact_lock(k)) FROM "
                        "(SELECT k FROM unnest(CAST(:keys AS BIGINT[])) AS k ORDER BY k) AS ordered")


def person_lock_keys(probe: MatchRecord) -> list[int]:
    """The advisory lock keys of a record's person: its valid NHS number and its birth date (day and month as a
    set, as blocking reads them), each as a signed 64-bit hash; sorted. Two records of one person share at least
    one unless both lack an NHS number and their birth dates differ (then they are not linked on write either)."""
    names = []
    if probe.nhs_number and probe.nhs_valid:
        names.append(f"n:{probe.nhs_number}")
    if probe.birth_year and probe.birth_month and probe.birth_day:
        low, high = sorted((probe.birth_month, probe.birth_day))
        names.append(f"b:{probe.birth_year:04d}{low:02d}{high:02d}")
    return sorted(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
                  for name in names)


def new_regional_id() -> str:
    return "RP" + "".join(secrets.choice(_REGIONAL_ALPHABET) for _ in range(10))


def pair_key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


class LinkOnWrite(GoldenRecords):
    """Create or update source records and place each with the regional patient it matches."""

    def upsert(self, demographics: Demographics, *, event: str, actor: str, source_kind: str = "hl7",
               provisional: bool = False) -> LinkOutcome:
        """Create or update a source record from ``demographics`` and link it (link-on-write).

        An update older than the newest one applied (``event_at``) is kept in history but not applied.
        A provisional record (from DICOM headers) never overwrites one that a PAS or FHIR source made.
        """
        key = RecordKey(demographics.namespace, demographics.local_id.strip())
        if not key.local_id:
            raise IdentityError("a source record needs a local identifier")
        self._settle_pending()
        row = self.session.execute(_RECORD_ROW_SQL, {"ns": key.namespace, "local": key.local_id}).first()
        if row is None and not demographics.other_identifiers:
            return self._create(key, demographics, event=event, actor=actor, source_kind=source_kind,
                                provisional=provisional)
        if (row is not None and not demographics.other_identifiers
                and self.session.identity_map.get(identity_key(SourceRecord, row.id)) is None):
            return self._update(row, demographics, event=event, actor=actor, source_kind=source_kind,
                                provisional=provisional)
        record = None if row is None else self.session.get(SourceRecord, row.id)
        created = record is None
        if record is None:
            record = SourceRecord(namespace=key.namespace, local_id=key.local_id, trust_ods=demographics.trust_ods,
                                  source_kind=source_kind, provisional=provisional, version=0)
            self.session.add(record)
        elif provisional and not record.provisional:
            return self._outcome(record)

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
        self._refresh_blocking_keys(record, created=created)
        outcome = self.link_on_write(record, actor=actor, reason=f"link-on-write ({event})", created=created)
        return outcome

    def _create(self, key: RecordKey, demographics: Demographics, *, event: str, actor: str, source_kind: str,
                provisional: bool) -> LinkOutcome:
        """A new record, linked on write: the decision first, then its writes.

        The same rules as :meth:`link_on_write` (a new record has no manual decisions yet), written without the
        ORM's unit of work: this is the path every new registration takes, so it is kept to a few cached
        statements. On PostgreSQL the record, its version, keys, link event and its patient's write are one
        statement (:func:`mpi.link_statements._new_record_in_one_statement`); on SQLite, one statement each.
        """
        values = _column_values(demographics, production=self.production)
        probe = to_match_record(None, match_source(values))
        self._lock_person(probe)
        scores = self._score_clusters(probe, self.candidate_clusters(probe))
        placement = place(scores, {})  # a new record has no manual decisions yet
        now = utcnow()
        state, probability, weights = placement.state, placement.probability, self._explained(placement.score)
        target = placement.target(None, alone=False, new_id=new_regional_id())
        founds = placement.join is None
        member = _Member(values, provisional, demographics.event_at or now)
        in_one_statement = self._writes_in_one_statement()
        patient: dict[str, Any] | None = None
        if founds:  # the patient first: the record refers to it
            patient = {"id": target, "status": "active", "created_at": now, "updated_at": now,
                       **_golden_values([member])}
            if not in_one_statement:
                self.session.execute(_INSERT_PATIENT, patient)
        else:
            rows = list(self.session.execute(_GOLDEN_SQL, {"rid": target}).all())
            golden = _golden_values([*rows, member])
            if in_one_statement:  # written with the record below
                patient = {"id": target, "status": "active", "updated_at": now, **golden}
            else:
                self._set_golden(target, golden)
        record = {
            **values, "namespace": key.namespace, "local_id": key.local_id, "trust_ods": demographics.trust_ods,
            "source_kind": source_kind, "provisional": provisional, "active": True, "version": 1,
            "match_fields": probe.as_stored(), "regional_patient_id": target, "link_state": state,
            "link_manual": False, "link_score": probability, "link_weights": weights,
            "link_model_version": self.model.version, "linked_by": actor, "linked_at": now,
            "last_event_at": demographics.event_at, "created_at": now, "updated_at": now}
        version = {"version": 1, "event": event, "event_at": demographics.event_at, "received_at": now,
                   "applied": True, "demographics": demographics.as_json()}
        link_event = {"from_regional_id": None, "to_regional_id": target, "link_state": state, "manual": False,
                      "score": probability, "weights": weights, "model_version": self.model.version, "actor": actor,
                      "reason": f"link-on-write ({event})", "at": now}
        keys = blocking_keys(probe)
        if in_one_statement:
            record_id = self.session.execute(_new_record_in_one_statement(founds), {
                **{f"record_{k}": v for k, v in record.items()}, **{f"version_{k}": v for k, v in version.items()},
                "keys": sorted(keys),
                **{f"link_event_{k}": v for k, v in link_event.items()},
                **{f"patient_{k}": v for k, v in (patient or {}).items()}}).scalar_one()
            if not founds:
                self._expire_held_patient(target)
        else:
            record_id = self.session.execute(_INSERT_RECORD, record).scalar_one()
            self.session.execute(_INSERT_VERSION, {"source_record_id": record_id, **version})
            self._insert_blocking_keys(record_id, keys)
            self.session.execute(_INSERT_LINK_EVENT, {"source_record_id": record_id, **link_event})
        review_id = None
        if placement.review is not None:
            review_id = self._insert_review(record_id, placement.review, scores, now)
        return LinkOutcome(record_id, target, state, probability, review_item_id=review_id)

    def _insert_review(self, record_id: int, possible: tuple[int, PairScore], scores: ClusterScores,
                       now: datetime) -> int:
        """Open a review item of ``record_id`` against the possible match, with its explanation; its id."""
        other_id, score = possible
        other_regional = next((rid for rid, member_id in scores.flat if member_id == other_id), None)
        return int(self.session.execute(_INSERT_REVIEW, {
            "source_record_id": record_id, "candidate_record_id": other_id, "candidate_regional_id": other_regional,
            "score": score.probability,
            "weights": explanation(self.model, score),
            "model_version": self.model.version, "status": "open", "created_at": now}).scalar_one())

    def _settle_pending(self) -> None:
        """Flush ORM changes held by the session before statements that bypass it (and expire what they touch)."""
        session = self.session
        if session.new or session.dirty or session.deleted:
            session.flush()

    def _update(self, row: Any, demographics: Demographics, *, event: str, actor: str, source_kind: str,
                provisional: bool) -> LinkOutcome:
        """An update of a known record, linked on write, in plain cached statements (no ORM entity loaded).

        The same steps and rules as the ORM path (:meth:`_apply`, :meth:`_refresh_blocking_keys`,
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
            self.session.execute(_UPDATE_RECORD, {"rid": record_id, "version": version, "updated_at": now})
            self.session.execute(_INSERT_VERSION, history)
            return LinkOutcome(record_id, row.regional_patient_id or "", row.link_state or NO_MATCH,
                               row.link_score, applied=False)
        values = _applied_values(row, demographics, production=self.production)
        changes: dict[str, Any] = {"version": version, "updated_at": now, **values}
        if demographics.trust_ods:
            changes["trust_ods"] = demographics.trust_ods
        if row.provisional and not provisional:
            changes["provisional"] = False
            changes["source_kind"] = source_kind
        if demographics.event_at is not None:
            changes["last_event_at"] = demographics.event_at
        stored = to_match_record(record_id, _raw(values)).as_stored()
        changes["match_fields"] = stored
        probe = MatchRecord.from_stored(record_id, stored)
        self.session.execute(_INSERT_VERSION, history)
        self._replace_blocking_keys(record_id, blocking_keys(probe))
        previous: str | None = row.regional_patient_id
        if row.link_manual and previous:  # a manual decision sticks: the record stays where a person put it
            self.session.execute(_UPDATE_RECORD, {"rid": record_id, **changes})
            self._refresh_golden_rows(previous)
            return LinkOutcome(record_id, previous, row.link_state or NO_MATCH, row.link_score)

        manual = self.manual_decisions(record_id) if row.has_manual else {}
        self._lock_person(probe)
        also = [other for other, decision in manual.items() if decision == MATCH]
        scores = self._score_clusters(probe, self.candidate_clusters(probe, exclude=record_id, also=also))
        placement = place(scores, manual)
        state, probability, weights = placement.state, placement.probability, self._explained(placement.score)
        # a record that matches nobody keeps (or gets) a regional patient of its own
        alone = placement.join is None and previous is not None and self.session.execute(
            _OTHER_MEMBER_SQL, {"rid": previous, "sid": record_id}).first() is None
        target = placement.target(previous, alone=alone, new_id=new_regional_id())
        fresh = target not in (placement.join, previous)
        if fresh:
            member = _Member({**values}, bool(changes.get("provisional", row.provisional)),
                             changes.get("last_event_at") or row.last_event_at or now)
            self.session.execute(_INSERT_PATIENT, {"id": target, "status": "active", "created_at": now,
                                                   "updated_at": now, **_golden_values([member])})
        changes.update(regional_patient_id=target, link_state=state, link_manual=False, link_score=probability,
                       link_weights=weights, link_model_version=self.model.version, linked_by=actor, linked_at=now)
        self.session.execute(_UPDATE_RECORD, {"rid": record_id, **changes})
        if link_changed(previous, target, state=state, old_state=row.link_state,
                        manual_changed=bool(row.link_manual)):
            self.session.execute(_INSERT_LINK_EVENT, {
                "source_record_id": record_id, "from_regional_id": previous, "to_regional_id": target,
                "link_state": state, "manual": False, "score": probability, "weights": weights,
                "model_version": self.model.version, "actor": actor, "reason": f"link-on-write ({event})",
                "at": now})
        review_id = None
        if row.has_open_review:
            self._close_reviews_rows(record_id)
        if placement.review is not None:
            review_id = self._insert_review(record_id, placement.review, scores, now)
        if previous and previous != target:
            self._refresh_golden_rows(previous)
        if not fresh:  # a fresh patient was written with its only member's values
            self._refresh_golden_rows(target)
        return LinkOutcome(record_id, target, state, probability, review_item_id=review_id)

    def _explained(self, score: PairScore | None) -> dict[str, Any] | None:
        """What a link stores of its pair's score (:func:`mpi.scoring.explanation`), None without a pair."""
        return explanation(self.model, score) if score is not None else None

    def _lock_person(self, probe: MatchRecord) -> None:
        """PostgreSQL: wait for any other transaction placing a record of the same person, before looking for
        candidates (DESIGN section 5: such races are settled in the database).

        Two registrations of one new person at the same moment (five trusts' feeds, concurrent FHIR creates) would
        each find no candidate, since neither sees the other's uncommitted record, and split the person in two.
        A transaction-scoped advisory lock per person key (:func:`person_lock_keys`: the valid NHS number, the birth
        date) makes the second wait until the first commits; its candidate look-up, a new statement under READ
        COMMITTED, then sees the first record. The locks are taken in one statement in key order and held to the
        end of the transaction; a deadlock between two batches is refused by PostgreSQL and retried by the unit of
        work. SQLite needs none: it has one writer at a time.
        """
        if not self._writes_in_one_statement():
            return
        keys = person_lock_keys(probe)
        if keys:
            self.session.execute(_LOCK_PERSON_SQL, {"keys": keys})

    def _writes_in_one_statement(self) -> bool:
        """Whether the store takes data-modifying CTEs (PostgreSQL), so that writes which go together are sent
        as one statement (:mod:`mpi.link_statements`)."""
        return self.session.get_bind().dialect.name == "postgresql"

    def _replace_blocking_keys(self, record_id: int, keys: set[str]) -> None:
        """Index a known record's blocking keys: only the changes are written (one statement on PostgreSQL)."""
        if self._writes_in_one_statement():
            self.session.execute(_REPLACE_BLOCKING_KEYS_PG, {"sid": record_id, "keys": sorted(keys)})
            return
        current = set(self.session.scalars(_BLOCKING_KEYS_OF_SQL, {"sid": record_id}))
        stale = current - keys
        if stale:
            self.session.execute(_DELETE_BLOCKING_KEYS, {"sid": record_id, "keys": sorted(stale)})
        self._insert_blocking_keys(record_id, keys - current)

    def _insert_blocking_keys(self, record_id: int, keys: set[str]) -> None:
        if keys:
            self.session.execute(_insert_blocking_keys_sql(len(keys)),
                                 {"sid": record_id, **{f"k{i}": key for i, key in enumerate(sorted(keys))}})

    def _close_reviews_rows(self, record_id: int) -> None:
        """Open review items about the record are superseded (one UPDATE; held items are read again)."""
        self.session.execute(_CLOSE_REVIEWS, {"sid": record_id})
        for held in [o for o in self.session.identity_map.values() if isinstance(o, ReviewItem)]:
            if held.source_record_id == record_id:
                self.session.expire(held)

    def _apply(self, record: SourceRecord, demographics: Demographics) -> None:
        for name, value in _applied_values(record, demographics, production=self.production).items():
            setattr(record, name, value)
        if demographics.trust_ods:
            record.trust_ods = demographics.trust_ods
        record.match_fields = to_match_record(record.id, self._raw_fields(record)).as_stored()

    def _set_identifiers(self, record: SourceRecord, identifiers: Sequence[tuple[str, str]]) -> None:
        if not identifiers:
            return
        existing = {(i.system, i.value) for i in self.session.scalars(
            select(SourceIdentifier).where(SourceIdentifier.source_record_id == record.id))}
        for system, value in identifiers:
            namespace = self.namespace_for(system)
            if (namespace, value) == (record.namespace, record.local_id) or (namespace, value) in existing:
                continue
            existing.add((namespace, value))
            self.session.add(SourceIdentifier(source_record_id=record.id, system=namespace, value=value))

    def _refresh_blocking_keys(self, record: SourceRecord, *, created: bool = False) -> None:
        """Index the record's blocking keys (only the changes, for an update)."""
        keys = blocking_keys(self.match_record(record))
        if not created:
            current = set(self.session.scalars(select(BlockingKey.key)
                                               .where(BlockingKey.source_record_id == record.id)))
            stale = current - keys
            if stale:
                self.session.execute(delete(BlockingKey).where(BlockingKey.source_record_id == record.id,
                                                               BlockingKey.key.in_(sorted(stale))))
            keys = keys - current
        if keys:
            self.session.execute(table_of(BlockingKey).insert(),
                                 [{"source_record_id": record.id, "key": key} for key in sorted(keys)])

    def manual_decisions(self, record_id: int) -> dict[int, str]:
        """The other record of each manual decision about ``record_id``, with the decision (match | no-match)."""
        rows = self.session.execute(_MANUAL_SQL, {"sid": record_id})
        return {(b if a == record_id else a): decision for a, b, decision in rows}

    def link_on_write(self, record: SourceRecord, *, actor: str, reason: str, created: bool = False) -> LinkOutcome:
        """Place ``record`` with the regional patient it matches, or a new one; respects manual decisions.

        A few indexed queries (blocking keys, the candidates' patients with all their records, manual decisions) and
        one vectorised scoring call: the record joins the best-matching patient only if no record of that patient
        conflicts with it (the cluster integrity check).
        """
        if record.link_manual and record.regional_patient_id:
            self._refresh_golden(record.regional_patient_id)
            return self._outcome(record)
        probe = self.match_record(record)
        manual = {} if created else self.manual_decisions(record.id)  # a new record has no decisions yet
        self._lock_person(probe)
        also = [other for other, decision in manual.items() if decision == MATCH]
        scores = self._score_clusters(probe, self.candidate_clusters(probe, exclude=record.id, also=also))
        placement = place(scores, manual)
        previous = record.regional_patient_id
        review_id = None
        # a record that matches nobody keeps (or gets) a regional patient of its own
        alone = placement.join is None and previous is not None and self._is_alone(record, previous)
        fresh = None if placement.join is not None or alone else self._new_patient()
        target = placement.target(previous, alone=alone, new_id=fresh.id if fresh is not None else "")
        self._move(record, target, state=placement.state, score=placement.probability,
                   weights=self._explained(placement.score), actor=actor, reason=reason)
        if placement.review is not None:
            review_id = self._open_review(record, placement.review)
        elif not created:
            self._close_reviews(record)
        if previous and previous != target:
            self._refresh_golden(previous)
        if fresh is not None:  # the record is the new patient's only member
            self._golden_from(fresh, [record])
        else:
            self._refresh_golden(target)
        return LinkOutcome(record.id, target, placement.state, placement.probability, review_item_id=review_id)

    def _is_alone(self, record: SourceRecord, regional_id: str) -> bool:
        others = [r for r in self.records_of(regional_id, include_inactive=False) if r.id != record.id]
        return not others

    def _new_patient(self) -> RegionalPatient:
        # the id is made here, so nothing needs flushing yet: the insert goes with the next statement
        patient = RegionalPatient(id=new_regional_id(), status="active")
        self.session.add(patient)
        return patient

    def _move(self, record: SourceRecord, regional_id: str, *, state: str, score: float | None,
              weights: dict[str, Any] | None, actor: str, reason: str, manual: bool = False) -> None:
        previous = record.regional_patient_id
        changed = link_changed(previous, regional_id, state=state, old_state=record.link_state,
                               manual_changed=record.link_manual != manual)
        record.regional_patient_id = regional_id
        record.link_state = state
        record.link_manual = manual
        record.link_score = score
        record.link_weights = weights
        record.link_model_version = None if manual else self.model.version
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
                          weights=explanation(self.model, score),
                          model_version=self.model.version)
        self.session.add(item)
        self.session.flush()
        return item.id

    def _close_reviews(self, record: SourceRecord) -> None:
        """Open review items about ``record`` are superseded by a newer decision."""
        for item in self.session.scalars(select(ReviewItem).where(ReviewItem.source_record_id == record.id,
                                                                   ReviewItem.status == "open")):
            item.status = "superseded"

    def _outcome(self, record: SourceRecord) -> LinkOutcome:
        return LinkOutcome(record.id, record.regional_patient_id or "", record.link_state or NO_MATCH,
                           record.link_score)


__all__ = ["LinkOnWrite", "LinkOutcome", "new_regional_id", "pair_key", "person_lock_keys"]
