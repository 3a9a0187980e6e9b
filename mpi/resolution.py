"""The read side: who a request is about (:meth:`Resolver.resolve`, for the duplicate check) and the regional
patients scored against a query (:meth:`Resolver.match`, for FHIR ``$match``). Column-only, cached statements."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Row, bindparam, literal, select, union_all

from mpi.decisions import MATCH_CODE, POSSIBLE_CODE
from mpi.engine import MATCH, NO_MATCH, POSSIBLE, to_match_record
from mpi.index_store import _PATIENTS, _RECORDS, DEMOGRAPHIC_FIELDS, IndexStore
from mpi.nhs_number import counts_as_nhs_number, normalise_nhs_number
from mpi.records import Demographics
from mpi.tables import SourceIdentifier, table_of
from priorscan.trusts import NHS_NUMBER_SYSTEM


@dataclass
class Resolution:
    """Who a request is about: the regional patient and how sure we are (confirmed | probable | unknown)."""

    regional_id: str | None
    identity: str
    score: float | None = None
    candidates: list[str] = field(default_factory=list)


@dataclass
class MatchCandidate:
    """A regional patient scored against a query (for FHIR $match and PDQm).

    ``grade`` is what a client may act on (:func:`match_grade`); ``decision`` is the linking rules' own
    (match | possible | no-match), which :meth:`Resolver.resolve` reads.
    """

    regional_id: str
    probability: float
    grade: str  # certain | probable | possible | certainly-not
    field_weights: dict[str, float]
    decision: str = NO_MATCH


#: The $match grade (FHIR match-grade) a client may act on automatically.
CERTAIN = "certain"


def match_grade(decision: str, probability: float, *, identified: bool, hard_conflict: bool) -> str:
    """The FHIR match grade of one candidate.

    ``certain`` means safe to act on automatically: only a match the linking rules make *and* that an identifier
    backs (the same valid NHS number on both sides; a known hospital number is graded by the caller). A match on
    demographics alone (name, birth date, sex, even address: twins share them) is at most ``probable``.
    """
    if hard_conflict or decision == NO_MATCH:
        return "certainly-not"
    if decision == MATCH:
        return CERTAIN if identified else "probable"
    return "probable" if probability >= 0.8 else "possible"


def at_most_one_certain(grades: dict[str, str]) -> tuple[dict[str, str], bool]:
    """``grades`` (by regional id) with every ``certain`` made ``probable`` when there is more than one: two
    patients cannot both be certainly the one asked for. Also says whether that happened."""
    certain = [rid for rid, grade in grades.items() if grade == CERTAIN]
    if len(certain) <= 1:
        return grades, False
    return {rid: ("probable" if grade == CERTAIN else grade) for rid, grade in grades.items()}, True


_IDENTIFIERS = table_of(SourceIdentifier)

#: A record known by an identifier, with its regional patient's status and merge target: the first step of following
#: merges comes with the look-up, so a request about an active patient (nearly all) costs one statement.
_RESOLVE_COLUMNS = (_RECORDS.c.id, _RECORDS.c.regional_patient_id, _RECORDS.c.link_state, _PATIENTS.c.status,
                    _PATIENTS.c.merged_into_id)

_RECORDS_WITH_PATIENT = _RECORDS.outerjoin(_PATIENTS, _PATIENTS.c.id == _RECORDS.c.regional_patient_id)

_RESOLVE_BY_NHS_SQL = select(*_RESOLVE_COLUMNS).select_from(_RECORDS_WITH_PATIENT).where(
    _RECORDS.c.nhs_number == bindparam("digits"), _RECORDS.c.nhs_number_valid.is_(True))

#: The records with ``ns|local`` as their own key first, then those that carry it as a further identifier.
_RESOLVE_BY_KEY_SQL = union_all(
    select(*_RESOLVE_COLUMNS, literal(0).label("via")).select_from(_RECORDS_WITH_PATIENT).where(
        _RECORDS.c.namespace == bindparam("ns"), _RECORDS.c.local_id == bindparam("local")),
    select(*_RESOLVE_COLUMNS, literal(1).label("via")).select_from(_RECORDS_WITH_PATIENT.join(
        _IDENTIFIERS, _IDENTIFIERS.c.source_record_id == _RECORDS.c.id)).where(
        _IDENTIFIERS.c.system == bindparam("ns"), _IDENTIFIERS.c.value == bindparam("local"),
        _IDENTIFIERS.c.use.is_(None)),  # an identifier replaced by A47 (use old) names nobody any more
).order_by("via")


class Resolver:
    """Resolution of requests and scored look-ups, over the index's ``store`` (reads only)."""

    def __init__(self, store: IndexStore) -> None:
        self.store = store

    def resolve(self, identifiers: Iterable[tuple[str, str]], demographics: Demographics | None) -> Resolution:
        """Who a request is about, from identifiers first, then demographics.

        Columns only (cached statements, no ORM entities): the records known by each identifier, then their
        regional patients' surviving ids with one statement per merge hop.
        """
        found: list[tuple[int, str, str | None]] = []
        read: dict[str, Row[Any]] = {}
        for system, value in identifiers:
            found.extend(self._identified(system, value, read))
        survivor = self.store.survivors((rid for _, rid, _ in found), read=read)
        hits: dict[str, list[str | None]] = defaultdict(list)
        for _, regional_id, link_state in found:
            patient_id = survivor[regional_id]
            if patient_id is not None:
                hits[patient_id].append(link_state)
        if len(hits) == 1:
            regional_id, states = next(iter(hits.items()))
            doubtful = any(state == POSSIBLE for state in states)
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
        if top.decision == MATCH and (len(matches) == 1 or matches[1].grade not in ("certain", "probable")):
            return Resolution(top.regional_id, "confirmed", top.probability, [m.regional_id for m in matches])
        if top.grade in ("certain", "probable", "possible"):
            return Resolution(top.regional_id, "probable", top.probability, [m.regional_id for m in matches])
        return Resolution(None, "unknown", top.probability)

    def patients_known_by(self, system: str, value: str) -> list[str]:
        """The surviving regional ids of the records known by ``system|value`` (those :meth:`find_records`
        returns that are linked), in the same order; columns only."""
        read: dict[str, Row[Any]] = {}
        found = self._identified(system, value, read)
        survivor = self.store.survivors((rid for _, rid, _ in found), read=read)
        return [patient for _, rid, _ in found if (patient := survivor[rid]) is not None]

    def _identified(self, system: str, value: str, read: dict[str, Row[Any]]) -> list[tuple[int, str, str | None]]:
        """(record id, regional id, link state) of the linked records :meth:`find_records` would return; the
        status and merge target of each record's regional patient go into ``read`` (for :meth:`survivors`)."""
        value = value.strip()
        if system == NHS_NUMBER_SYSTEM:
            digits = normalise_nhs_number(value)
            rows = list(self.store.session.execute(_RESOLVE_BY_NHS_SQL, {"digits": digits})) if digits else []
        else:
            rows = []
            seen: set[int] = set()
            keyed = {"ns": self.store.namespace_for(system), "local": value}
            for row in self.store.session.execute(_RESOLVE_BY_KEY_SQL, keyed):
                if row.id not in seen:  # a record with the identifier both as its key and as a further one
                    seen.add(row.id)
                    rows.append(row)
        linked = [row for row in rows if row.regional_patient_id]
        read.update((row.regional_patient_id, row) for row in linked if row.status is not None)
        return [(row.id, row.regional_patient_id, row.link_state) for row in linked]

    def match(self, demographics: Demographics, *, count: int = 10) -> list[MatchCandidate]:
        """Regional patients scored against ``demographics`` (best first), for $match and resolution."""
        fields: dict[str, object] = {name: getattr(demographics, name) for name in DEMOGRAPHIC_FIELDS}
        if not counts_as_nhs_number(normalise_nhs_number(demographics.nhs_number), production=self.store.production):
            fields["nhs_number"] = None  # a number that fails Modulus 11, or a test number in production: no evidence
        probe = to_match_record(None, fields)
        scores = self.store.score(probe, self.store.candidate_clusters(probe))
        results = []
        weight = scores.scored.weight if scores.scored is not None else np.zeros(0)
        for regional_id, rows in scores.groups().items():
            top = max(rows, key=lambda i: weight[i])
            score = scores.pair(top)
            code = int(scores.codes[top])
            decision = MATCH if code == MATCH_CODE else POSSIBLE if code == POSSIBLE_CODE else NO_MATCH
            grade = match_grade(decision, score.probability, identified=score.levels.get("nhs_number") == "exact",
                                hard_conflict=bool(score.hard_conflict))
            results.append(MatchCandidate(regional_id, score.probability, grade, score.field_weights, decision))
        graded, _ = at_most_one_certain({m.regional_id: m.grade for m in results})
        for candidate in results:
            candidate.grade = graded[candidate.regional_id]
        results.sort(key=lambda m: -m.probability)
        best = results[:count]  # the order does not depend on the ids: only the kept ones are followed to survivors
        survivor = self.store.survivors(m.regional_id for m in best)
        for candidate in best:
            candidate.regional_id = survivor[candidate.regional_id] or candidate.regional_id
        return best


__all__ = ["CERTAIN", "MatchCandidate", "Resolution", "Resolver", "at_most_one_certain", "match_grade"]
