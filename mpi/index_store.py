"""The read side every part of the patient index is given: the session, the look-ups by identifier and regional
id, the manual decisions about a record, and the blocking and vectorised scoring of a probe against candidate
patients (shared by link-on-write and $match). It writes nothing."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import TextClause, bindparam, or_, select, text
from sqlalchemy.orm import Session

from mpi.active_model import active_model
from mpi.clustering import LOW
from mpi.decisions import MATCH_CODE, decide_many
from mpi.engine import MAX_BLOCK_SIZE, MatchRecord, Model, PairScore, blocking_keys, to_match_record
from mpi.frames import frame_of_few, probe_pairs
from mpi.linkage import conflict_kind
from mpi.nhs_number import is_valid_nhs_number, normalise_nhs_number
from mpi.records import RecordKey
from mpi.scoring import ScoredPairs, pair_score, score_frames, weak_records
from mpi.tables import ManualDecision, RegionalPatient, SourceIdentifier, SourceRecord, table_of
from priorscan.errors import NotFoundError
from priorscan.settings import get_settings
from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry

#: Most candidate records (from blocking) scored for one incoming record, rarest keys first; their patients' other
#: records are scored too, for the cluster integrity check.
MAX_CANDIDATES = 100

DEMOGRAPHIC_FIELDS = ("nhs_number", "nhs_verification", "family", "given", "prefix", "birth_date", "sex", "postcode",
                      "address", "phone", "death_date")


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


_RECORD_ID_SQL = text("SELECT id FROM source_record WHERE namespace = :ns AND local_id = :local")

_CLUSTERS_SQL = text(
    "SELECT id, regional_patient_id, match_fields FROM source_record WHERE active AND regional_patient_id IN "
    "(SELECT regional_patient_id FROM source_record WHERE id IN :ids)").bindparams(bindparam("ids", expanding=True))

_RECORDS = table_of(SourceRecord)

_PATIENTS = table_of(RegionalPatient)

_MANUAL = table_of(ManualDecision)

_MANUAL_SQL = select(_MANUAL.c.record_a_id, _MANUAL.c.record_b_id, _MANUAL.c.decision).where(
    or_(_MANUAL.c.record_a_id == bindparam("sid"), _MANUAL.c.record_b_id == bindparam("sid")))

_PATIENT_LINKS_SQL = select(_PATIENTS.c.id, _PATIENTS.c.status, _PATIENTS.c.merged_into_id).where(
    _PATIENTS.c.id.in_(bindparam("ids", expanding=True)))


@lru_cache(maxsize=64)
def _candidates_sql(count: int) -> TextClause:
    """One statement for ``count`` keys: a UNION ALL of indexed look-ups, each limited to one more than the cap
    (a key over the cap is then skipped whole). Plain SQL, cached per key count: no per-call statement building."""
    parts = [f"SELECT {i} AS k, rid FROM (SELECT source_record_id AS rid FROM blocking_key WHERE key = :k{i} "
             f"LIMIT {MAX_BLOCK_SIZE + 1}) AS b{i}" for i in range(count)]
    return text(" UNION ALL ".join(parts))


@lru_cache(maxsize=64)
def _candidate_clusters_sql(count: int) -> TextClause:
    """The candidates of ``count`` keys and their patients' active records, in one statement.

    Rows of two kinds: a candidate (key number, record id, its regional id, NULL) for every record of a key within
    the cap (a key over the cap is dropped whole, as :meth:`IndexStore.candidate_ids` does), and a member (NULL,
    record id, regional id, match fields) for every active record of the patients those candidates belong to. The
    final choice of candidates (rarest keys first, at most MAX_CANDIDATES) is made in Python from the first kind,
    and only the members of the chosen candidates' patients are kept. Cached per key count, as
    :func:`_candidates_sql`."""
    keyed = " UNION ALL ".join(
        f"SELECT {i} AS k, rid FROM (SELECT source_record_id AS rid FROM blocking_key WHERE key = :k{i} "
        f"LIMIT {MAX_BLOCK_SIZE + 1}) AS b{i}" for i in range(count))
    return text(
        f"WITH b AS ({keyed}), "
        "n AS (SELECT k, COUNT(*) AS size FROM b GROUP BY k), "
        f"ok AS (SELECT b.k, b.rid FROM b JOIN n ON n.k = b.k WHERE n.size <= {MAX_BLOCK_SIZE}) "
        "SELECT ok.k, ok.rid, s.regional_patient_id, NULL AS match_fields FROM ok "
        "JOIN source_record s ON s.id = ok.rid "
        "UNION ALL "
        "SELECT NULL, m.id, m.regional_patient_id, m.match_fields FROM source_record m "
        "WHERE m.active AND m.regional_patient_id IN "
        "(SELECT s.regional_patient_id FROM ok JOIN source_record s ON s.id = ok.rid)")


def _choose_candidates(by_key: Mapping[int, list[int]], exclude: int | None, *, unwritten: bool = False) -> set[int]:
    """The candidate ids from the records of each key (by key number): the most specific keys first (ties by key
    number); a further key is taken only while the candidates stay within bounds; keys over the cap skipped.

    The probe's own record (``exclude``) counts as a holder of its keys towards the cap, never as a candidate
    towards the bound. ``unwritten``: the probe is a record about to be written, which its keys' blocks do not
    hold yet; the cap counts it all the same. So a new record (read before it is written) and an update (read
    after its keys are) meet the same blocks, and a key is skipped exactly when the batch relink skips it."""
    ids: set[int] = set()
    own = 1 if unwritten else 0
    for k in sorted(by_key, key=lambda k: (len(by_key[k]), k)):
        block = by_key[k]
        others = [rid for rid in block if rid != exclude]
        if len(block) + own > MAX_BLOCK_SIZE or (ids and len(ids) + len(others) > MAX_CANDIDATES):
            continue
        ids.update(others)
    return ids


#: Most decoded match records kept by :func:`_decoded` (a few MB).
DECODED_KEPT = 8_192

_DECODED: dict[int, tuple[Any, MatchRecord]] = {}


def _decoded(record_id: int, stored: Any) -> MatchRecord:
    """The match record of stored ``match_fields`` (JSON text, or already parsed), decoded once per process.

    A record read again (a patient's records are every probe's candidates while the patient is being registered and
    updated) is kept by id with the stored value it came from, and given back only while the store holds the same
    value: a record changed since, by this process or another, or a record of another store with the same id, is
    decoded afresh, so nothing stale is ever scored. The oldest entries go first past :data:`DECODED_KEPT`.
    """
    kept = _DECODED.get(record_id)
    if kept is not None and kept[0] == stored:
        return kept[1]
    record = MatchRecord.from_stored(record_id, json.loads(stored) if isinstance(stored, str) else stored)
    if len(_DECODED) >= DECODED_KEPT:
        try:
            del _DECODED[next(iter(_DECODED))]
        except (KeyError, RuntimeError, StopIteration):  # another thread evicted or added meanwhile
            pass
    _DECODED[record_id] = (stored, record)
    return record


def score_clusters(model: Model, probe: MatchRecord, clusters: Mapping[str, list[MatchRecord]]) -> ClusterScores:
    """``probe`` scored against every member of every cluster (by regional id), in one vectorised call: the
    weights, the decisions (:func:`mpi.decisions.decide_many`) and the integrity conflicts
    (:func:`mpi.linkage.is_conflict`) that :func:`mpi.placement.place` reads."""
    flat = [(regional_id, member.record_id or 0) for regional_id, members in clusters.items()
            for member in members]
    members = [member for group in clusters.values() for member in group]
    if not members:
        return ClusterScores(model, [], None, np.zeros(0, np.int8), np.zeros(0, bool))
    left, right = probe_pairs(probe, members)
    scored = score_frames(model, left, right)
    codes = decide_many(scored, model)
    kind = conflict_kind(model, scored)
    if (kind == LOW).any():
        _vouch(model, members, [regional_id for regional_id, _ in flat], codes, kind, ~weak_records(right, model))
    return ClusterScores(model, flat, scored, codes, kind > 0)


def _vouch(model: Model, members: list[MatchRecord], patient: list[str], codes: NDArray[np.int8],
           kind: NDArray[np.int8], firm: NDArray[np.bool_]) -> None:
    """Clear the *low* conflicts (a posterior below the possible threshold only) that a firm member of the same
    patient vouches for: one the probe matches and that matches the conflicting member, as
    :func:`mpi.clustering.cluster` clears them in the batch relink."""
    pairs = [(z, y) for y in np.flatnonzero(kind == LOW).tolist()
             for z in np.flatnonzero((codes == MATCH_CODE) & firm).tolist() if z != y and patient[z] == patient[y]]
    if not pairs:
        return
    frame = frame_of_few(members)
    between = score_frames(model, frame.take(np.array([z for z, _ in pairs], dtype=np.int64)),
                           frame.take(np.array([y for _, y in pairs], dtype=np.int64)), resolve_ambiguity=False)
    vouching = decide_many(between, model) == MATCH_CODE
    for (_, y), yes in zip(pairs, vouching.tolist(), strict=True):
        if yes:
            kind[y] = 0


def match_source(values: Mapping[str, Any]) -> dict[str, object]:
    """The fields of a record (its columns) that are normalised into its match record.

    An NHS number that passes Modulus 11 but that the record holds as not valid was flagged (a test-range number
    in production: :func:`mpi.nhs_number.counts_as_nhs_number`): it is left out, so it is never evidence.
    """
    fields: dict[str, object] = {name: values[name] for name in DEMOGRAPHIC_FIELDS}
    fields["birth_date_text"] = values["birth_date_text"]
    number = values["nhs_number"]
    if number and not values.get("nhs_number_valid", True) and is_valid_nhs_number(number):
        fields["nhs_number"] = None
    return fields


class IndexStore:
    """The session, trusts and model an index works with; look-ups and candidate scoring (no writes)."""

    def __init__(self, session: Session, trusts: TrustRegistry, model: Model | None = None, *,
                 production: bool | None = None) -> None:
        self.session = session
        self.trusts = trusts
        self.model = model or active_model(session)
        #: test-range NHS numbers are flagged and unused in production (``PRIORSCAN_ENV``)
        self.production = get_settings().env == "production" if production is None else production

    # --- look-ups -----------------------------------------------------------------------------------------------

    def namespace_for(self, system: str) -> str:
        """The canonical namespace of an identifier system or trust alias."""
        return self.trusts.namespace(system)

    def further_identifiers(self, record_id: int) -> list[tuple[str, str]]:
        """The current further identifiers of a record (canonical namespace, value; replaced ones left out)."""
        return [(system, value) for system, value in self.session.execute(
            select(SourceIdentifier.system, SourceIdentifier.value).where(
                SourceIdentifier.source_record_id == record_id, SourceIdentifier.use.is_(None)))]

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
            return list(self.session.scalars(select(SourceRecord).where(SourceRecord.nhs_number == digits,
                                                                        SourceRecord.nhs_number_valid.is_(True))))
        namespace = self.namespace_for(system)
        direct = list(self.session.scalars(select(SourceRecord).where(SourceRecord.namespace == namespace,
                                                                      SourceRecord.local_id == value)))
        others = list(self.session.scalars(
            select(SourceRecord).join(SourceIdentifier, SourceIdentifier.source_record_id == SourceRecord.id)
            .where(SourceIdentifier.system == namespace, SourceIdentifier.value == value,
                   SourceIdentifier.use.is_(None))))
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

    def survivors(self, regional_ids: Iterable[str], *, read: Mapping[str, Any] | None = None
                  ) -> dict[str, str | None]:
        """The surviving regional id of each of ``regional_ids`` (merges followed as :meth:`regional_patient`
        does), None for an unknown one; one statement per hop, every id at once.

        ``read``: the ``status`` and ``merged_into_id`` of some of the patients, read by the caller in the same
        transaction; when it covers them all, the first statement is saved.
        """
        wanted = list(dict.fromkeys(regional_ids))
        current: dict[str, str | None] = {rid: rid for rid in wanted}
        hops = dict.fromkeys(wanted, 0)
        pending = set(wanted)
        for step in range(21):  # the first read, then at most 20 hops
            if not pending:
                break
            if step == 0 and read is not None and pending <= read.keys():
                rows = {rid: read[rid] for rid in pending}
            else:
                rows = {row.id: row for row in self.session.execute(_PATIENT_LINKS_SQL, {"ids": sorted(pending)})}
            followed: set[str] = set()
            for rid in wanted:
                at = current[rid]
                if at is None or at not in pending:
                    continue
                row = rows.get(at)
                if row is None:
                    current[rid] = None
                elif row.status == "retired" and row.merged_into_id and hops[rid] < 20:
                    hops[rid] += 1
                    current[rid] = row.merged_into_id
                    followed.add(row.merged_into_id)
            pending = followed
        return current

    def records_of(self, regional_id: str, *, include_inactive: bool = True) -> list[SourceRecord]:
        query = select(SourceRecord).where(SourceRecord.regional_patient_id == regional_id)
        if not include_inactive:
            query = query.where(SourceRecord.active.is_(True))
        return list(self.session.scalars(query.order_by(SourceRecord.id)))

    def source_record_ids_of(self, regional_id: str) -> list[int]:
        return list(self.session.scalars(select(SourceRecord.id).where(
            SourceRecord.regional_patient_id == regional_id)))

    def manual_decisions(self, record_id: int) -> dict[int, str]:
        """The other record of each manual decision about ``record_id``, with the decision (match | no-match)."""
        rows = self.session.execute(_MANUAL_SQL, {"sid": record_id})
        return {(b if a == record_id else a): decision for a, b, decision in rows}

    # --- candidates and scoring ---------------------------------------------------------------------------------

    @staticmethod
    def raw_fields(record: SourceRecord) -> dict[str, object]:
        return match_source({name: getattr(record, name)
                             for name in (*DEMOGRAPHIC_FIELDS, "birth_date_text", "nhs_number_valid")})

    @staticmethod
    def match_record(record: SourceRecord) -> MatchRecord:
        """The record normalised for comparison (as stored on write; normalised now for older rows)."""
        if record.match_fields is not None:
            return MatchRecord.from_stored(record.id, record.match_fields)
        return to_match_record(record.id, IndexStore.raw_fields(record))

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
        return sorted(_choose_candidates(by_key, exclude))

    def candidate_clusters(self, probe: MatchRecord, *, exclude: int | None = None, also: Iterable[int] = (),
                           unwritten: bool = False) -> dict[str, list[MatchRecord]]:
        """:meth:`_clusters_of` the :meth:`candidate_ids` of ``probe`` (and of the records ``also``), with one
        statement (:func:`_candidate_clusters_sql`) when ``also`` adds nobody. ``unwritten``: ``probe`` is a new
        record not written yet, counted in its keys' blocks as a record that holds them
        (:func:`_choose_candidates`)."""
        keys = sorted(blocking_keys(probe))
        extra = list(also)
        if not keys:
            return self._clusters_of([i for i in dict.fromkeys(extra) if i != exclude], exclude=exclude)
        rows = self.session.execute(_candidate_clusters_sql(len(keys)),
                                    {f"k{i}": key for i, key in enumerate(keys)}).all()
        by_key: dict[int, list[int]] = defaultdict(list)
        regional_of: dict[int, str | None] = {}
        members: list[tuple[int, str, Any]] = []
        for k, rid, regional_id, stored in rows:
            if k is None:
                members.append((rid, regional_id, stored))
            else:
                by_key[k].append(rid)
                regional_of[rid] = regional_id
        ids = _choose_candidates(by_key, exclude, unwritten=unwritten)
        missing = [i for i in extra if i not in ids and i != exclude]
        if missing:  # a manual match outside the blocks: its patient is read with the candidates' (rare)
            return self._clusters_of(sorted(ids) + list(dict.fromkeys(missing)), exclude=exclude)
        wanted = {regional_of[i] for i in ids}
        return self._clusters_from_rows(sorted((m for m in members if m[1] in wanted), key=lambda m: (m[1], m[0])),
                                        exclude=exclude)

    def _clusters_of(self, candidate_ids: list[int], *, exclude: int | None) -> dict[str, list[MatchRecord]]:
        """Every active record of the regional patients the candidates belong to, normalised, by regional id."""
        if not candidate_ids:
            return {}
        rows = self.session.execute(_CLUSTERS_SQL, {"ids": candidate_ids}).all()
        return self._clusters_from_rows(rows, exclude=exclude)

    def _clusters_from_rows(self, rows: Iterable[Any], *, exclude: int | None) -> dict[str, list[MatchRecord]]:
        """Clusters from (record id, regional id, stored match fields) rows; rows stored before match fields
        existed are normalised from their record."""
        clusters: dict[str, list[MatchRecord]] = defaultdict(list)
        stale: list[int] = []
        for rid, regional_id, stored in rows:
            if rid == exclude or regional_id is None:
                continue
            if stored is None:
                stale.append(rid)
                continue
            clusters[regional_id].append(_decoded(rid, stored))
        for record in self.session.scalars(select(SourceRecord).where(SourceRecord.id.in_(stale))) if stale else []:
            clusters[record.regional_patient_id or ""].append(self.match_record(record))
        return clusters

    def score(self, probe: MatchRecord, clusters: Mapping[str, list[MatchRecord]]) -> ClusterScores:
        """``probe`` scored against every member of ``clusters`` with the index's model (:func:`score_clusters`)."""
        return score_clusters(self.model, probe, clusters)


__all__ = ["DEMOGRAPHIC_FIELDS", "MAX_CANDIDATES", "ClusterScores", "IndexStore", "match_source", "score_clusters"]
