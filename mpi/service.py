"""The patient index service: link-on-write, identity operations and look-ups over one database session.

:class:`PatientIndex` is what the edges (HL7, FHIR, DICOM, the duplicate check) call. It never commits: the caller
commits the unit of work, so an ACK or a 2xx goes out only after the data is stored.

Linking rules (the domain reasons are in DESIGN.md section 2):

- every source record belongs to exactly one regional patient, so its studies always have a home;
- an incoming record joins an existing regional patient only on a *match* with one of its records, when no record
  of that patient conflicts with it (a different valid, verified NHS number, a manual no-match, or a pair scoring
  below the possible threshold): one weak middle record can never chain two people together;
- a *possible match* gets a regional patient of its own and a review item with the explanation;
- manual decisions (A24 link, A37 unlink, A40 merge, review decisions) stick: automatic relinks respect them.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Boolean, Date, TextClause, bindparam, delete, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from mpi.decisions import MATCH_CODE, POSSIBLE_CODE, decide_many
from mpi.engine import (
    MATCH,
    MAX_BLOCK_SIZE,
    NO_MATCH,
    POSSIBLE,
    MatchRecord,
    Model,
    PairScore,
    blocking_keys,
    to_match_record,
)
from mpi.frames import frame_from_records
from mpi.linkage import is_conflict
from mpi.nhs_number import is_valid_nhs_number, normalise_nhs_number
from mpi.normalise import as_date
from mpi.records import DELETE, Demographics, RecordKey
from mpi.scoring import ScoredPairs, pair_score, score_frames
from mpi.tables import (
    BlockingKey,
    LinkEvent,
    ManualDecision,
    MatchModel,
    RegionalPatient,
    ReviewItem,
    SourceIdentifier,
    SourceRecord,
    SourceRecordVersion,
    table_of,
)
from priorscan.db import UTCDateTime, utcnow
from priorscan.errors import IdentityError, NotFoundError
from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry

#: Most candidate records (from blocking) scored for one incoming record, rarest keys first; their patients' other
#: records are scored too, for the cluster integrity check.
MAX_CANDIDATES = 100

DEMOGRAPHIC_FIELDS = ("nhs_number", "nhs_verification", "family", "given", "prefix", "birth_date", "sex", "postcode",
                      "address", "phone", "death_date")
_REGIONAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass
class ClusterScores:
    """A probe scored against the members of candidate patients: ``flat[i] = (regional_id, record_id)``."""

    model: Model
    flat: list[tuple[str, int]]
    scored: ScoredPairs | None
    codes: NDArray[np.int8]
    conflict: NDArray[np.bool_]

    def groups(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for i, (regional_id, _) in enumerate(self.flat):
            out[regional_id].append(i)
        return out

    def pair(self, i: int) -> PairScore:
        assert self.scored is not None
        return pair_score(self.model, self.scored, i)


@dataclass
class LinkOutcome:
    """Where a source record stands after an operation."""

    source_record_id: int
    regional_id: str
    link_state: str
    score: float | None = None
    applied: bool = True  # false when an out-of-order update was kept in history only
    review_item_id: int | None = None


@dataclass
class Resolution:
    """Who a request is about: the regional patient and how sure we are (confirmed | probable | unknown)."""

    regional_id: str | None
    identity: str
    score: float | None = None
    candidates: list[str] = field(default_factory=list)


@dataclass
class MatchCandidate:
    """A regional patient scored against a query (for FHIR $match and PDQm)."""

    regional_id: str
    probability: float
    grade: str  # certain | probable | possible | certainly-not
    field_weights: dict[str, float]


_RECORD_ID_SQL = text("SELECT id FROM source_record WHERE namespace = :ns AND local_id = :local")
_CLUSTERS_SQL = text(
    "SELECT id, regional_patient_id, match_fields FROM source_record WHERE active AND regional_patient_id IN "
    "(SELECT regional_patient_id FROM source_record WHERE id IN :ids)").bindparams(bindparam("ids", expanding=True))
_GOLDEN_SQL = text(
    "SELECT family, given, birth_date, sex, postcode, address, nhs_number, nhs_number_valid, nhs_verification, "
    "provisional, last_event_at, updated_at, created_at FROM source_record "
    "WHERE regional_patient_id = :rid AND active").columns(
    birth_date=Date(), last_event_at=UTCDateTime(), updated_at=UTCDateTime(), created_at=UTCDateTime(),
    nhs_number_valid=Boolean(), provisional=Boolean())


@lru_cache(maxsize=64)
def _candidates_sql(count: int) -> TextClause:
    """One statement for ``count`` keys: a UNION ALL of indexed look-ups, each limited to one more than the cap
    (a key over the cap is then skipped whole). Plain SQL, cached per key count: no per-call statement building."""
    parts = [f"SELECT {i} AS k, rid FROM (SELECT source_record_id AS rid FROM blocking_key WHERE key = :k{i} "
             f"LIMIT {MAX_BLOCK_SIZE + 1}) AS b{i}" for i in range(count)]
    return text(" UNION ALL ".join(parts))


@dataclass
class _Member:
    """A record not yet read back from the store, as the golden record needs it."""

    values: dict[str, Any]
    provisional: bool
    last_event_at: datetime
    updated_at: datetime | None = None
    created_at: datetime | None = None

    def __getattr__(self, name: str) -> Any:
        return self.values.get(name)


def _golden_values(members: Sequence[Any]) -> dict[str, Any]:
    """Best-known demographics: PAS/FHIR before provisional (DICOM headers), verified NHS number first, then the
    most recent; each field from the best record that has it."""

    def quality(r: Any) -> tuple[int, int, datetime]:
        stamp = r.last_event_at or r.updated_at or r.created_at or utcnow()
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return (0 if r.provisional else 1, 1 if r.nhs_verification == "01" else 0, stamp)

    ranked = sorted(members, key=quality, reverse=True)
    golden = {name: next((getattr(r, name) for r in ranked if getattr(r, name)), None)
              for name in ("family", "given", "birth_date", "sex", "postcode", "address")}
    valid = [r for r in ranked if r.nhs_number and r.nhs_number_valid]
    golden["nhs_number"] = valid[0].nhs_number if valid else None
    return golden


def _column_values(demographics: Demographics) -> dict[str, Any]:
    """The source record's demographic columns for a new record (as :meth:`PatientIndex._apply` sets them)."""
    values: dict[str, Any] = {name: None for name in DEMOGRAPHIC_FIELDS}
    values.update(nhs_number_valid=False, birth_date_text=None)
    for name in DEMOGRAPHIC_FIELDS:
        value = getattr(demographics, name)
        if value is None or value == DELETE:
            continue
        if name == "nhs_number":
            digits = normalise_nhs_number(value)
            values["nhs_number"] = digits or str(value)[:10]
            values["nhs_number_valid"] = bool(digits and is_valid_nhs_number(digits))
        elif name == "birth_date":
            full = as_date(value)
            values["birth_date"] = full
            values["birth_date_text"] = None if full else str(value)[:10]
        elif name == "death_date":
            values["death_date"] = as_date(value)
        else:
            values[name] = value
    return values


def new_regional_id() -> str:
    return "RP" + "".join(secrets.choice(_REGIONAL_ALPHABET) for _ in range(10))


def pair_key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


_MODEL_CACHE: dict[str, Model] = {}
_ACTIVE_VERSION: list[tuple[str | None, float, int]] = []
MODEL_CHECK_S = 1.0


def forget_active_model() -> None:
    """Read the active model's version again on next use (after training in this process)."""
    _ACTIVE_VERSION.clear()
_DEFAULT_MODEL = Model.default()


def active_model(session: Session) -> Model:
    """The active trained model (cached per version), or the default model before any training."""
    # the version only, at most once a second: the parameters (with term-frequency tables) are read once per
    # process and version; a newly trained model takes effect everywhere within a second
    now = time.monotonic()
    if _ACTIVE_VERSION and now - _ACTIVE_VERSION[0][1] < MODEL_CHECK_S and _ACTIVE_VERSION[0][2] == id(session.bind):
        version = _ACTIVE_VERSION[0][0]
    else:
        version = session.scalars(select(MatchModel.version).where(MatchModel.active.is_(True))
                                  .order_by(MatchModel.created_at.desc())).first()
        _ACTIVE_VERSION[:] = [(version, now, id(session.bind))]
    if version is None:
        return _DEFAULT_MODEL
    model = _MODEL_CACHE.get(version)
    if model is None:
        parameters = session.scalars(select(MatchModel.parameters).where(MatchModel.version == version)).one()
        model = Model.from_dict(parameters)
        _MODEL_CACHE.clear()
        _MODEL_CACHE[version] = model
    return model


class PatientIndex:
    """Identity operations over one session. ``actor`` names who or what acts (a feed, a user, the batch)."""

    def __init__(self, session: Session, trusts: TrustRegistry, model: Model | None = None) -> None:
        self.session = session
        self.trusts = trusts
        self.model = model or active_model(session)

    # --- look-ups -----------------------------------------------------------------------------------------------

    def namespace_for(self, system: str) -> str:
        """The canonical namespace of an identifier system or trust alias."""
        return self.trusts.namespace(system)

    def get_record(self, key: RecordKey) -> SourceRecord | None:
        # the id by plain SQL first: most writes are of new records, and a miss then costs one cheap query
        record_id = self.session.execute(_RECORD_ID_SQL, {"ns": key.namespace, "local": key.local_id}).scalar()
        return None if record_id is None else self.session.get(SourceRecord, record_id)

    def require_record(self, key: RecordKey) -> SourceRecord:
        record = self.get_record(key)
        if record is None:
            raise NotFoundError("no source record with that identifier")
        return record

    def find_records(self, system: str, value: str) -> list[SourceRecord]:
        """Source records known by the identifier ``system|value`` (NHS number, hospital number, other)."""
        value = value.strip()
        if system == NHS_NUMBER_SYSTEM:
            digits = normalise_nhs_number(value)
            if not digits:
                return []
            return list(self.session.scalars(select(SourceRecord).where(SourceRecord.nhs_number == digits)))
        namespace = self.namespace_for(system)
        direct = list(self.session.scalars(select(SourceRecord).where(SourceRecord.namespace == namespace,
                                                                      SourceRecord.local_id == value)))
        others = list(self.session.scalars(
            select(SourceRecord).join(SourceIdentifier, SourceIdentifier.source_record_id == SourceRecord.id)
            .where(SourceIdentifier.system == namespace, SourceIdentifier.value == value)))
        seen = {r.id for r in direct}
        return direct + [r for r in others if r.id not in seen]

    def regional_patient(self, regional_id: str) -> RegionalPatient | None:
        """The regional patient, following merges to the surviving one."""
        patient = self.session.get(RegionalPatient, regional_id)
        hops = 0
        while patient is not None and patient.status == "retired" and patient.merged_into_id and hops < 20:
            patient = self.session.get(RegionalPatient, patient.merged_into_id)
            hops += 1
        return patient

    def records_of(self, regional_id: str, *, include_inactive: bool = True) -> list[SourceRecord]:
        query = select(SourceRecord).where(SourceRecord.regional_patient_id == regional_id)
        if not include_inactive:
            query = query.where(SourceRecord.active.is_(True))
        return list(self.session.scalars(query.order_by(SourceRecord.id)))

    def source_record_ids_of(self, regional_id: str) -> list[int]:
        return list(self.session.scalars(select(SourceRecord.id).where(
            SourceRecord.regional_patient_id == regional_id)))

    # --- writes ---------------------------------------------------------------------------------------------------

    def upsert(self, demographics: Demographics, *, event: str, actor: str, source_kind: str = "hl7",
               provisional: bool = False) -> LinkOutcome:
        """Create or update a source record from ``demographics`` and link it (link-on-write).

        An update older than the newest one applied (``event_at``) is kept in history but not applied.
        A provisional record (from DICOM headers) never overwrites one that a PAS or FHIR source made.
        """
        key = RecordKey(demographics.namespace, demographics.local_id.strip())
        if not key.local_id:
            raise IdentityError("a source record needs a local identifier")
        record_id = self.session.execute(_RECORD_ID_SQL, {"ns": key.namespace, "local": key.local_id}).scalar()
        if record_id is None and not demographics.other_identifiers:
            return self._create(key, demographics, event=event, actor=actor, source_kind=source_kind,
                                provisional=provisional)
        record = None if record_id is None else self.session.get(SourceRecord, record_id)
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
        """A new record, linked on write: the decision first, then a handful of plain inserts.

        The same rules as :meth:`link_on_write` (a new record has no manual decisions yet), written without the
        ORM's unit of work: this is the path every new registration takes, so it is kept to a few cached
        statements.
        """
        values = _column_values(demographics)
        probe = to_match_record(None, values)
        scores = self._score_clusters(probe, self._clusters_of(self.candidate_ids(probe), exclude=None))
        best_id, best_score, possible = self._choose(scores, {})
        now = utcnow()
        state = MATCH if best_id is not None or not possible else POSSIBLE
        probability = best_score.probability if best_score else None
        weights = best_score.field_weights if best_score else None
        target = best_id or new_regional_id()
        member = _Member(values, provisional, demographics.event_at or now)
        if best_id is None:  # the patient first: the record refers to it
            self.session.execute(table_of(RegionalPatient).insert(), {
                "id": target, "status": "active", "created_at": now, "updated_at": now,
                **_golden_values([member])})
        else:
            rows = list(self.session.execute(_GOLDEN_SQL, {"rid": target}).all())
            self._set_golden(target, _golden_values([*rows, member]))
        record_table = table_of(SourceRecord)
        record_id = self.session.execute(record_table.insert().returning(record_table.c.id), {
            **values, "namespace": key.namespace, "local_id": key.local_id, "trust_ods": demographics.trust_ods,
            "source_kind": source_kind, "provisional": provisional, "active": True, "version": 1,
            "match_fields": probe.as_stored(), "regional_patient_id": target, "link_state": state,
            "link_manual": False, "link_score": probability, "link_weights": weights,
            "link_model_version": self.model.version, "linked_by": actor, "linked_at": now,
            "last_event_at": demographics.event_at, "created_at": now, "updated_at": now}).scalar_one()
        self.session.execute(table_of(SourceRecordVersion).insert(), {
            "source_record_id": record_id, "version": 1, "event": event, "event_at": demographics.event_at,
            "received_at": now, "applied": True, "demographics": demographics.as_json()})
        keys = blocking_keys(probe)
        if keys:
            self.session.execute(table_of(BlockingKey).insert(),
                                 [{"source_record_id": record_id, "key": k} for k in sorted(keys)])
        self.session.execute(table_of(LinkEvent).insert(), {
            "source_record_id": record_id, "from_regional_id": None, "to_regional_id": target, "link_state": state,
            "manual": False, "score": probability, "weights": weights, "model_version": self.model.version,
            "actor": actor, "reason": f"link-on-write ({event})", "at": now})
        review_id = None
        if possible and best_id is None:
            other_id, score = possible
            other_regional = next((rid for rid, member_id in scores.flat if member_id == other_id), None)
            review_id = self.session.execute(table_of(ReviewItem).insert().returning(table_of(ReviewItem).c.id), {
                "source_record_id": record_id, "candidate_record_id": other_id,
                "candidate_regional_id": other_regional, "score": score.probability,
                "weights": {"field_weights": score.field_weights, "levels": score.levels,
                            "weight": round(score.weight, 3), "guard": score.guard},
                "model_version": self.model.version, "status": "open", "created_at": now}).scalar_one()
        return LinkOutcome(record_id, target, state, probability, review_item_id=review_id)

    def _set_golden(self, regional_id: str, golden: dict[str, Any]) -> None:
        """Write the golden record with one statement (and refresh the patient if the session holds it)."""
        self.session.execute(table_of(RegionalPatient).update().where(table_of(RegionalPatient).c.id == regional_id)
                             .values(status="active", updated_at=utcnow(), **golden))
        held = self.session.identity_map.get(identity_key(RegionalPatient, regional_id))
        if held is not None:
            self.session.expire(held)

    def _apply(self, record: SourceRecord, demographics: Demographics) -> None:
        for name in DEMOGRAPHIC_FIELDS:
            value = getattr(demographics, name)
            if value is None:
                continue
            if value == DELETE:
                value = None
            if name == "nhs_number" and value is not None:
                digits = normalise_nhs_number(value)
                record.nhs_number = digits or str(value)[:10]
                record.nhs_number_valid = bool(digits and is_valid_nhs_number(digits))
                continue
            if name == "nhs_number":
                record.nhs_number_valid = False
            if name == "birth_date":
                full = as_date(value) if value is not None else None
                record.birth_date = full
                record.birth_date_text = None if full or value is None else str(value)[:10]
                continue
            if name == "death_date":
                record.death_date = as_date(value) if value is not None else None
                continue
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

    # --- linking ------------------------------------------------------------------------------------------------

    @staticmethod
    def _raw_fields(record: SourceRecord) -> dict[str, object]:
        fields: dict[str, object] = {name: getattr(record, name) for name in DEMOGRAPHIC_FIELDS}
        fields["birth_date_text"] = record.birth_date_text
        return fields

    @staticmethod
    def match_record(record: SourceRecord) -> MatchRecord:
        """The record normalised for comparison (as stored on write; normalised now for older rows)."""
        if record.match_fields is not None:
            return MatchRecord.from_stored(record.id, record.match_fields)
        return to_match_record(record.id, PatientIndex._raw_fields(record))

    def candidate_ids(self, probe: MatchRecord, *, exclude: int | None = None) -> list[int]:
        """Records sharing a blocking key with ``probe``, keys shared by more than MAX_BLOCK_SIZE skipped.

        One query: a UNION ALL of one indexed, limited look-up per key.
        """
        keys = sorted(blocking_keys(probe))
        if not keys:
            return []
        rows = self.session.execute(_candidates_sql(len(keys)), {f"k{i}": key for i, key in enumerate(keys)}).all()
        by_key: dict[int, list[int]] = defaultdict(list)
        for k, rid in rows:
            by_key[k].append(rid)
        ids: set[int] = set()
        # the most specific keys first; a further key is taken only while the candidates stay within bounds
        for block in sorted(by_key.values(), key=len):
            if len(block) > MAX_BLOCK_SIZE or (ids and len(ids) + len(block) > MAX_CANDIDATES):
                continue
            ids.update(block)
        ids.discard(exclude)  # type: ignore[arg-type]
        return sorted(ids)

    def candidates(self, probe: MatchRecord, *, exclude: int | None = None) -> list[SourceRecord]:
        """Active records sharing a blocking key with ``probe`` (over-common keys skipped)."""
        ids = self.candidate_ids(probe, exclude=exclude)
        if not ids:
            return []
        return list(self.session.scalars(select(SourceRecord).where(SourceRecord.id.in_(ids),
                                                                    SourceRecord.active.is_(True))))

    def _clusters_of(self, candidate_ids: list[int], *, exclude: int | None) -> dict[str, list[MatchRecord]]:
        """Every active record of the regional patients the candidates belong to, normalised, by regional id."""
        if not candidate_ids:
            return {}
        rows = self.session.execute(_CLUSTERS_SQL, {"ids": candidate_ids}).all()
        clusters: dict[str, list[MatchRecord]] = defaultdict(list)
        stale: list[int] = []
        for rid, regional_id, stored in rows:
            if rid == exclude or regional_id is None:
                continue
            if stored is None:
                stale.append(rid)
                continue
            clusters[regional_id].append(MatchRecord.from_stored(rid, json.loads(stored) if isinstance(stored, str)
                                                                 else stored))
        for record in self.session.scalars(select(SourceRecord).where(SourceRecord.id.in_(stale))) if stale else []:
            clusters[record.regional_patient_id or ""].append(self.match_record(record))
        return clusters

    def _score_clusters(self, probe: MatchRecord, clusters: dict[str, list[MatchRecord]]) -> ClusterScores:
        """``probe`` scored against every member of every cluster, in one vectorised call."""
        flat = [(regional_id, member.record_id or 0) for regional_id, members in clusters.items()
                for member in members]
        members = [member for group in clusters.values() for member in group]
        if not members:
            return ClusterScores(self.model, [], None, np.zeros(0, np.int8), np.zeros(0, bool))
        frame = frame_from_records([probe, *members])
        scored = score_frames(self.model, frame.take(np.zeros(len(members), dtype=np.int64)),
                              frame.take(np.arange(1, len(members) + 1, dtype=np.int64)))
        return ClusterScores(self.model, flat, scored, decide_many(scored, self.model),
                             is_conflict(self.model, scored))

    def manual_decisions(self, record_id: int) -> dict[int, str]:
        rows = self.session.scalars(select(ManualDecision).where(
            or_(ManualDecision.record_a_id == record_id, ManualDecision.record_b_id == record_id)))
        return {(r.record_b_id if r.record_a_id == record_id else r.record_a_id): r.decision for r in rows}

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
        ids = self.candidate_ids(probe, exclude=record.id)
        ids.extend(other for other, decision in manual.items() if decision == MATCH and other not in ids)
        scores = self._score_clusters(probe, self._clusters_of(ids, exclude=record.id))
        best_id, best_score, possible = self._choose(scores, manual)
        previous = record.regional_patient_id
        review_id = None
        fresh: RegionalPatient | None = None
        if best_id is not None:
            state = MATCH
            target = best_id
        else:
            state = POSSIBLE if possible else (NO_MATCH if manual and NO_MATCH in manual.values() else MATCH)
            # a record that matches nobody keeps (or gets) a regional patient of its own
            fresh = None if previous and self._is_alone(record, previous) else self._new_patient()
            target = fresh.id if fresh is not None else previous  # type: ignore[assignment]
        self._move(record, target, state=state, score=best_score.probability if best_score else None,
                   weights=best_score.field_weights if best_score else None, actor=actor, reason=reason)
        if possible and best_id is None:
            review_id = self._open_review(record, possible)
        elif not created:
            self._close_reviews(record)
        if previous and previous != target:
            self._refresh_golden(previous)
        if best_id is None and fresh is not None:  # the record is the new patient's only member
            self._golden_from(fresh, [record])
        else:
            self._refresh_golden(target)
        return LinkOutcome(record.id, target, state, best_score.probability if best_score else None,
                           review_item_id=review_id)

    def _choose(self, scores: ClusterScores, manual: dict[int, str]
                ) -> tuple[str | None, PairScore | None, tuple[int, PairScore] | None]:
        """The regional patient to join (with the best pair score), or the best possible match to review."""
        best: tuple[str, int] | None = None
        possible: int | None = None
        weight = scores.scored.weight if scores.scored is not None else np.zeros(0)
        for regional_id, rows in scores.groups().items():
            if any(manual.get(scores.flat[i][1]) == NO_MATCH for i in rows):
                continue
            top = max(rows, key=lambda i: weight[i])
            if any(manual.get(scores.flat[i][1]) == MATCH for i in rows):
                return regional_id, scores.pair(top), None
            code = int(scores.codes[top])
            intact = not scores.conflict[rows].any()
            if code == MATCH_CODE and intact:
                if best is None or weight[top] > weight[best[1]]:
                    best = (regional_id, top)
            elif code >= POSSIBLE_CODE:  # a match that breaks the cluster's integrity is reviewed
                if possible is None or weight[top] > weight[possible]:
                    possible = top
        if best is not None:
            return best[0], scores.pair(best[1]), None
        if possible is None:
            return None, None, None
        score = scores.pair(possible)
        return None, score, (scores.flat[possible][1], score)

    def conflicts(self, score: PairScore) -> bool:
        """Whether the evidence says two records are different people (:func:`mpi.linkage.is_conflict`)."""
        if score.hard_conflict or score.levels.get("nhs_number") == "else":
            return True
        if score.guard == "sibling" and score.levels.get("nhs_number") != "exact":
            return True
        return score.weight - self.model.prior_weight < 0 or score.personal_weight < 0

    def _is_alone(self, record: SourceRecord, regional_id: str) -> bool:
        others = [r for r in self.records_of(regional_id, include_inactive=False) if r.id != record.id]
        return not others

    def _new_patient(self) -> RegionalPatient:
        # the id is made here, so nothing needs flushing yet: the insert goes with the next statement
        patient = RegionalPatient(id=new_regional_id(), status="active")
        self.session.add(patient)
        return patient

    def _move(self, record: SourceRecord, regional_id: str, *, state: str, score: float | None,
              weights: dict[str, float] | None, actor: str, reason: str, manual: bool = False) -> None:
        previous = record.regional_patient_id
        changed = previous != regional_id or record.link_state != state or record.link_manual != manual
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
                          weights={"field_weights": score.field_weights, "levels": score.levels,
                                   "weight": round(score.weight, 3), "guard": score.guard},
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

    # --- manual and HL7 identity operations -------------------------------------------------------------------

    def _record_decision(self, a: SourceRecord, b: SourceRecord, decision: str, actor: str, reason: str) -> None:
        lo, hi = pair_key(a.id, b.id)
        row = self.session.scalars(select(ManualDecision).where(ManualDecision.record_a_id == lo,
                                                                ManualDecision.record_b_id == hi)).first()
        if row is None:
            self.session.add(ManualDecision(record_a_id=lo, record_b_id=hi, decision=decision, actor=actor,
                                            reason=reason))
        else:
            row.decision, row.actor, row.reason, row.at = decision, actor, reason, utcnow()
        self.session.flush()

    def _ensure(self, key: RecordKey, *, actor: str, event: str) -> SourceRecord:
        record = self.get_record(key)
        if record is None:
            self.upsert(Demographics(namespace=key.namespace, local_id=key.local_id), event=event, actor=actor)
            record = self.require_record(key)
        return record

    def _absorb(self, source_regional: str | None, target_regional: str, *, actor: str, reason: str,
                manual: bool) -> None:
        """Move every record of ``source_regional`` into ``target_regional`` and retire the emptied patient."""
        if not source_regional or source_regional == target_regional:
            return
        for member in self.records_of(source_regional):
            self._move(member, target_regional, state=MATCH, score=member.link_score, weights=member.link_weights,
                       actor=actor, reason=reason, manual=manual or member.link_manual)
        retired = self.session.get(RegionalPatient, source_regional)
        if retired is not None:
            retired.status = "retired"
            retired.merged_into_id = target_regional

    def merge(self, survivor: RecordKey, retired: RecordKey, *, actor: str, event: str = "ADT^A40",
              survivor_demographics: Demographics | None = None) -> LinkOutcome:
        """ADT A40: the ``retired`` record is merged into ``survivor``; both patients become one.

        A merge naming an unknown record still takes effect: the unknown side is created (inactive when retired),
        so later messages about it resolve to the survivor.
        """
        if survivor_demographics is not None:
            self.upsert(survivor_demographics, event=event, actor=actor)
        keep = self._ensure(survivor, actor=actor, event=event)
        gone = self._ensure(retired, actor=actor, event=event)
        if keep.id == gone.id:
            return self._outcome(keep)
        if keep.regional_patient_id is None:
            keep.regional_patient_id = self._new_patient().id
        self._record_decision(keep, gone, MATCH, actor, event)
        old_regional = gone.regional_patient_id
        gone.active = False
        gone.merged_into_id = keep.id
        self._move(gone, keep.regional_patient_id, state=MATCH, score=None, weights=None, actor=actor,
                   reason=f"{event} merge", manual=True)
        self._absorb(old_regional, keep.regional_patient_id, actor=actor, reason=f"{event} merge", manual=False)
        self.session.execute(delete(BlockingKey).where(BlockingKey.source_record_id == gone.id))
        self._refresh_golden(keep.regional_patient_id)
        return self._outcome(keep)

    def unmerge(self, survivor: RecordKey, retired: RecordKey, *, actor: str) -> LinkOutcome:
        """Undo a merge: the retired record is active again, with a regional patient of its own."""
        keep = self.require_record(survivor)
        gone = self.require_record(retired)
        gone.active = True
        gone.merged_into_id = None
        self._record_decision(keep, gone, NO_MATCH, actor, "unmerge")
        target = self._new_patient().id
        self._move(gone, target, state=NO_MATCH, score=None, weights=None, actor=actor, reason="unmerge",
                   manual=True)
        self._refresh_blocking_keys(gone)
        if keep.regional_patient_id:
            self._refresh_golden(keep.regional_patient_id)
        self._refresh_golden(target)
        return self._outcome(gone)

    def link(self, a: RecordKey, b: RecordKey, *, actor: str, event: str = "ADT^A24") -> LinkOutcome:
        """ADT A24 / manual link: ``a`` and ``b`` are the same person; their regional patients become one."""
        first = self._ensure(a, actor=actor, event=event)
        second = self._ensure(b, actor=actor, event=event)
        self._record_decision(first, second, MATCH, actor, event)
        if first.regional_patient_id is None:
            first.regional_patient_id = self._new_patient().id
        target = first.regional_patient_id
        old = second.regional_patient_id
        self._move(second, target, state=MATCH, score=None, weights=None, actor=actor, reason=event, manual=True)
        first.link_manual = True
        self._absorb(old, target, actor=actor, reason=event, manual=False)
        self._refresh_golden(target)
        return self._outcome(second)

    def unlink(self, a: RecordKey, b: RecordKey, *, actor: str, event: str = "ADT^A37") -> LinkOutcome:
        """ADT A37 / manual unlink: ``b`` is not the same person as ``a``; ``b`` gets a patient of its own."""
        first = self.require_record(a)
        second = self.require_record(b)
        self._record_decision(first, second, NO_MATCH, actor, event)
        if first.regional_patient_id != second.regional_patient_id:
            return self._outcome(second)
        previous = second.regional_patient_id
        target = self._new_patient().id
        self._move(second, target, state=NO_MATCH, score=None, weights=None, actor=actor, reason=event, manual=True)
        if previous:
            self._refresh_golden(previous)
        self._refresh_golden(target)
        return self._outcome(second)

    def change_identifier(self, old: RecordKey, new: RecordKey, *, actor: str,
                          event: str = "ADT^A47") -> LinkOutcome:
        """ADT A47: the record known as ``old`` is now known as ``new`` (a merge when ``new`` exists already)."""
        record = self.get_record(old)
        if record is None:
            return self._outcome(self._ensure(new, actor=actor, event=event))
        if self.get_record(new) is not None:
            return self.merge(new, old, actor=actor, event=event)
        record.local_id = new.local_id
        record.namespace = new.namespace
        record.version = (record.version or 0) + 1
        self.session.add(SourceIdentifier(source_record_id=record.id, system=old.namespace, value=old.local_id))
        self.session.flush()
        self.session.add(LinkEvent(source_record_id=record.id, from_regional_id=record.regional_patient_id,
                                   to_regional_id=record.regional_patient_id, link_state=record.link_state or MATCH,
                                   manual=record.link_manual, actor=actor, reason=f"{event} identifier change"))
        return self._outcome(record)

    def relink(self, key: RecordKey, regional_id: str, *, actor: str, reason: str = "manual relink") -> LinkOutcome:
        """A person moves a record to ``regional_id``; the decision sticks."""
        record = self.require_record(key)
        target = self.regional_patient(regional_id)
        if target is None:
            raise NotFoundError("no such regional patient")
        previous = record.regional_patient_id
        for member in self.records_of(target.id, include_inactive=False):
            self._record_decision(record, member, MATCH, actor, reason)
        self._move(record, target.id, state=MATCH, score=None, weights=None, actor=actor, reason=reason, manual=True)
        if previous and previous != target.id:
            self._refresh_golden(previous)
        self._refresh_golden(target.id)
        return self._outcome(record)

    def resolve_review(self, item_id: int, decision: str, *, actor: str) -> LinkOutcome:
        """Settle a review item: ``match`` joins the candidate's patient, ``no-match`` keeps them apart for good."""
        item = self.session.get(ReviewItem, item_id)
        if item is None or item.status != "open":
            raise NotFoundError("no open review item with that id")
        record = self.session.get(SourceRecord, item.source_record_id)
        candidate = self.session.get(SourceRecord, item.candidate_record_id)
        assert record is not None and candidate is not None
        item.status, item.resolution, item.resolved_by, item.resolved_at = "resolved", decision, actor, utcnow()
        if decision == MATCH:
            return self.link(RecordKey(candidate.namespace, candidate.local_id),
                             RecordKey(record.namespace, record.local_id), actor=actor, event="review")
        if decision == NO_MATCH:
            self._record_decision(record, candidate, NO_MATCH, actor, "review")
            record.link_state = NO_MATCH
            record.link_manual = True
            return self._outcome(record)
        raise IdentityError("a review decision is match or no-match")

    # --- golden record ----------------------------------------------------------------------------------------

    def _refresh_golden(self, regional_id: str) -> None:
        """Best-known demographics: verified NHS number first, then recency, PAS/FHIR before DICOM headers."""
        patient = self.session.get(RegionalPatient, regional_id)
        if patient is None:
            return
        members = self.session.execute(_GOLDEN_SQL, {"rid": regional_id}).all()
        if not members:
            patient.status = "retired" if patient.merged_into_id else patient.status
            return
        self._golden_from(patient, members)

    def _golden_from(self, patient: RegionalPatient, members: Sequence[Any]) -> None:
        """Set the golden record from ``members`` (rows or source records)."""

        for name, value in _golden_values(members).items():
            setattr(patient, name, value)
        patient.status = "active"
        patient.updated_at = utcnow()

    # --- resolution for requests -------------------------------------------------------------------------------

    def resolve(self, identifiers: Iterable[tuple[str, str]], demographics: Demographics | None) -> Resolution:
        """Who a request is about, from identifiers first, then demographics."""
        hits: dict[str, list[SourceRecord]] = defaultdict(list)
        for system, value in identifiers:
            for record in self.find_records(system, value):
                if record.regional_patient_id:
                    patient = self.regional_patient(record.regional_patient_id)
                    if patient is not None:
                        hits[patient.id].append(record)
        if len(hits) == 1:
            regional_id, records = next(iter(hits.items()))
            doubtful = any(r.link_state == POSSIBLE for r in records)
            return Resolution(regional_id, "probable" if doubtful else "confirmed", 1.0, [regional_id])
        if len(hits) > 1:
            ranked = sorted(hits, key=lambda rid: -len(hits[rid]))
            return Resolution(ranked[0], "probable", None, ranked)
        if demographics is None:
            return Resolution(None, "unknown")
        matches = self.match(demographics, count=3)
        if not matches:
            return Resolution(None, "unknown")
        top = matches[0]
        if top.grade == "certain" and (len(matches) == 1 or matches[1].grade not in ("certain", "probable")):
            return Resolution(top.regional_id, "confirmed", top.probability, [m.regional_id for m in matches])
        if top.grade in ("certain", "probable", "possible"):
            return Resolution(top.regional_id, "probable", top.probability, [m.regional_id for m in matches])
        return Resolution(None, "unknown", top.probability)

    def match(self, demographics: Demographics, *, count: int = 10) -> list[MatchCandidate]:
        """Regional patients scored against ``demographics`` (best first), for $match and resolution."""
        fields: dict[str, object] = {name: getattr(demographics, name) for name in DEMOGRAPHIC_FIELDS}
        probe = to_match_record(None, fields)
        scores = self._score_clusters(probe, self._clusters_of(self.candidate_ids(probe), exclude=None))
        results = []
        weight = scores.scored.weight if scores.scored is not None else np.zeros(0)
        for regional_id, rows in scores.groups().items():
            top = max(rows, key=lambda i: weight[i])
            score = scores.pair(top)
            code = int(scores.codes[top])
            if score.hard_conflict:
                grade = "certainly-not"
            elif code == MATCH_CODE:
                grade = "certain"
            elif code == POSSIBLE_CODE:
                grade = "probable" if score.probability >= 0.8 else "possible"
            else:
                grade = "certainly-not"
            patient = self.regional_patient(regional_id)
            results.append(MatchCandidate(patient.id if patient else regional_id, score.probability, grade,
                                          score.field_weights))
        results.sort(key=lambda m: -m.probability)
        return results[:count]
