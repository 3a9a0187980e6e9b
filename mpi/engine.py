"""The matching engine's front: normalised match records, blocking keys, a scoring model and the decision rule.

FIRST CUT (to be replaced by the Fellegi–Sunter engine): exact comparisons with fixed weights. The names and
signatures here are the interface the rest of ``mpi`` relies on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import jellyfish

from mpi.nhs_number import is_valid_nhs_number

MATCH = "match"
POSSIBLE = "possible-match"
NO_MATCH = "no-match"


@dataclass(frozen=True)
class MatchRecord:
    """A source record normalised for comparison."""

    record_id: int | None
    nhs_number: str | None = None
    nhs_valid: bool = False
    nhs_verified: bool = False
    family: str | None = None
    given: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    postcode: str | None = None
    address: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class PairScore:
    """How alike two records are: the total match weight (log2 Bayes factor), its probability, and why."""

    weight: float
    probability: float
    field_weights: dict[str, float] = field(default_factory=dict)
    levels: dict[str, str] = field(default_factory=dict)
    hard_conflict: str | None = None  # e.g. "nhs-number": never link automatically


def to_match_record(record_id: int | None, fields: Mapping[str, Any]) -> MatchRecord:
    """Normalise stored or incoming demographics (keys as on :class:`mpi.tables.SourceRecord`)."""
    nhs = (fields.get("nhs_number") or "").replace(" ", "") or None

    def up(key: str) -> str | None:
        value = fields.get(key)
        return str(value).strip().upper() or None if value else None

    postcode = up("postcode")
    return MatchRecord(
        record_id=record_id,
        nhs_number=nhs,
        nhs_valid=bool(nhs and is_valid_nhs_number(nhs)),
        nhs_verified=fields.get("nhs_verification") == "01",
        family=up("family"),
        given=(up("given") or "").split(" ")[0] or None,
        birth_date=fields.get("birth_date") if isinstance(fields.get("birth_date"), date) else None,
        sex=fields.get("sex"),
        postcode=postcode.replace(" ", "") if postcode else None,
        address=up("address"),
        phone=fields.get("phone"),
    )


def blocking_keys(record: MatchRecord) -> set[str]:
    keys: set[str] = set()
    if record.nhs_number and record.nhs_valid:
        keys.add(f"nhs:{record.nhs_number}")
    if record.birth_date:
        keys.add(f"dob:{record.birth_date.isoformat()}")
    if record.family and record.birth_date:
        keys.add(f"sdx-yob:{jellyfish.soundex(record.family)}:{record.birth_date.year}")
    if record.postcode and record.family:
        keys.add(f"pc-sdx:{record.postcode}:{jellyfish.soundex(record.family)}")
    return keys


@dataclass
class Model:
    """Scoring model. FIRST CUT: fixed weights."""

    version: str = "fixed-0"
    prior: float = 1e-6
    match_threshold: float = 0.99
    possible_threshold: float = 0.5
    parameters: dict[str, Any] = field(default_factory=dict)

    def score(self, a: MatchRecord, b: MatchRecord) -> PairScore:
        weights: dict[str, float] = {}
        conflict = None
        if a.nhs_number and b.nhs_number and a.nhs_valid and b.nhs_valid:
            if a.nhs_number == b.nhs_number:
                weights["nhs_number"] = 14.0
            else:
                weights["nhs_number"] = -10.0
                if a.nhs_verified and b.nhs_verified:
                    conflict = "nhs-number"
        for name, agree, disagree in (("family", 7, -4), ("given", 6, -4), ("birth_date", 9, -6),
                                      ("sex", 1, -4), ("postcode", 6, -1)):
            x, y = getattr(a, name), getattr(b, name)
            if x and y:
                weights[name] = agree if x == y else disagree
        total = math.log2(self.prior / (1 - self.prior)) + sum(weights.values())
        probability = 1 / (1 + 2 ** (-total))
        return PairScore(total, probability, weights, {}, conflict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "prior": self.prior, "match_threshold": self.match_threshold,
                "possible_threshold": self.possible_threshold, "parameters": self.parameters}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Model:
        return cls(**dict(data))

    @classmethod
    def default(cls) -> Model:
        return cls()


def decide(score: PairScore, model: Model) -> str:
    """match / possible-match / no-match for one scored pair; a hard conflict is never a match."""
    if score.hard_conflict:
        return NO_MATCH if score.probability < model.possible_threshold else POSSIBLE
    if score.probability >= model.match_threshold:
        return MATCH
    if score.probability >= model.possible_threshold:
        return POSSIBLE
    return NO_MATCH
