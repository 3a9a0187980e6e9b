"""The model: scores, serialisation with a content version, and the decisions with their rules."""

from __future__ import annotations

import json

import pytest
from mpi_factories import NHS_OTHER, match_record

from mpi.decisions import MATCH, NO_MATCH, POSSIBLE, decide, derive_match_threshold
from mpi.model import Model
from mpi.scoring import PairScore, score_candidates


def score(model: Model, a, b) -> PairScore:  # type: ignore[no-untyped-def]
    """One pair, scored by the one scorer (link-on-write's vectorised path, on a pair of one)."""
    return score_candidates(model, a, [b])[0]


def test_model_round_trips_through_json_with_the_same_version() -> None:
    model = Model.default()
    again = Model.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again.version == model.version and again.m == model.m
    assert score(again, match_record(), match_record(given="Elenor")).weight == pytest.approx(
        score(model, match_record(), match_record(given="Elenor")).weight)


def test_version_changes_with_content() -> None:
    model = Model.default()
    assert model.evolve(match_threshold=0.95).version != model.version


def test_stand_in_given_names_round_trip_and_change_the_version() -> None:
    """The stand-ins a relink learnt are part of the model: stored, read back, in its version; a model without
    any keeps the version it had (H-ID-32). Real time compares a stand-in as no given name."""
    model = Model.default()
    learnt = model.evolve(stand_in_given=["DAUGHTER"], stand_in_family=["OCCUPANT"])
    again = Model.from_dict(json.loads(json.dumps(learnt.to_dict())))
    assert again.stand_in_given == ["DAUGHTER"] and again.stand_in_family == ["OCCUPANT"]
    assert again.version == learnt.version != model.version
    assert "stand_in_given" not in model.to_dict()
    pair = score(again, match_record(given="Daughter"), match_record())
    assert "given" not in pair.field_weights
    assert "given" in score(model, match_record(given="Daughter"), match_record()).field_weights
    assert "family" not in score(again, match_record(family="Occupant"), match_record()).field_weights


def test_score_explains_itself_field_by_field() -> None:
    pair = score(Model.default(), match_record(), match_record(given="Elenor", postcode=None, address=None))
    assert set(pair.field_weights) == {"nhs_number", "family", "given", "birth_date", "sex", "phone"}
    assert pair.levels["given"] == "jaro-winkler>=0.92"
    assert pair.weight == pytest.approx(Model.default().prior_weight + sum(pair.field_weights.values()), abs=0.01)


@pytest.mark.parametrize(("right", "expected", "why"), [
    ({}, MATCH, "identical"),
    ({"nhs_number": NHS_OTHER}, NO_MATCH, "two different verified NHS numbers are never linked"),
    ({"nhs_number": NHS_OTHER, "nhs_verification": "02"}, POSSIBLE, "different numbers, not both verified: review"),
    ({"family": "Okonkwo", "given": "Chidi", "birth_date": "1990-01-01", "sex": "male", "postcode": "TN1 1AA",
      "address": "1 Other Road", "phone": None}, POSSIBLE,
     "the same verified number on a record agreeing on nothing else: a person decides, never silently apart"),
    ({"family": "Okonkwo", "given": "Chidi", "birth_date": "1990-01-01", "sex": "male", "postcode": "TN1 1AA",
      "address": "1 Other Road", "phone": None, "nhs_verification": "02"}, NO_MATCH,
     "the same unverified number keyed into another person's record"),
    ({"given": "Margaret", "family": "Hollis", "postcode": "TN1 1AA", "address": "1 Other Road", "phone": None}, MATCH,
     "the same verified number is one person whatever the guards (both names changed, moved house)"),
    ({"given": "Margaret", "family": "Hollis", "postcode": "TN1 1AA", "address": "1 Other Road", "phone": None,
      "nhs_verification": "02"}, POSSIBLE, "the same case with an unverified number: a person decides"),
    ({"family": None, "given": None, "birth_date": None}, POSSIBLE,
     "NHS number and address without names or birth date: never enough alone"),
    ({"nhs_number": "9434765918", "family": "Okonkwo", "given": "Chidi", "birth_date": "1990-01-01"}, NO_MATCH,
     "a mistyped number (check fails) carries no weight"),
    ({"given": "Margaret", "nhs_number": None}, POSSIBLE, "twin-like: same family, birth date, address"),
    ({"given": "Margaret", "nhs_number": NHS_OTHER}, NO_MATCH, "twins with their own NHS numbers"),
])
def test_decisions(right: dict, expected: str, why: str) -> None:
    model = Model.default()
    assert decide(score(model, match_record(), match_record(**right)), model) == expected, why


def test_derived_threshold_keeps_expected_precision() -> None:
    import numpy as np

    certain = np.full(10_000, 0.99999)
    doubtful = np.linspace(0.9, 0.99, 50)
    threshold = derive_match_threshold(np.concatenate([certain, doubtful]))
    assert 0.9 <= threshold <= 0.999
    linked = np.concatenate([certain, doubtful])
    linked = linked[linked >= threshold]
    assert linked.mean() >= 0.999
