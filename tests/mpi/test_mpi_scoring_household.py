"""The person weighed against the people of their home and their family name, and every pair's explanation.

At one home the person's own fields use u among relatives (twins share a birth date); a rare family name's other
holders are mostly kin; names written the other way round weigh once; an explanation's weights add up.
"""

from __future__ import annotations

import json
import math
from datetime import date

import numpy as np
import pytest
from mpi_factories import match_record

from mpi.frames import frame_from_records
from mpi.model import Model
from mpi.review import waterfall
from mpi.scoring import explained_pairs, explanation, explanations, pair_score, score_candidates, score_frames


def test_at_one_home_a_shared_birth_date_weighs_the_twin_rate_not_the_stranger_rate() -> None:
    model = Model.default()
    stranger_model = model.evolve(u_household={})
    a = match_record(1)
    twin = match_record(2, given="Margaret", nhs_number=None)
    with_household, = score_candidates(model, a, [twin])
    as_strangers, = score_candidates(stranger_model, a, [twin])
    birth = model.index_of("birth_date")
    assert birth is not None
    assert with_household.field_weights["birth_date"] == pytest.approx(
        math.log2(model.m[birth][0] / model.u_household["birth_date"][0]), abs=1e-3)
    assert as_strangers.field_weights["birth_date"] > with_household.field_weights["birth_date"] + 5
    assert with_household.probability < 0.99 < as_strangers.probability


def test_the_home_carries_the_household_prior() -> None:
    """Prior + the home comparison = the log-odds of one person among pairs at one home; a shared phone adds
    nothing more (relatives share it too)."""
    model = Model.default()
    score, = score_candidates(model, match_record(1), [match_record(2, nhs_number=None)])
    assert score.field_weights["residence"] + model.prior_weight == pytest.approx(model.household_weight, abs=1e-3)
    assert score.field_weights["phone"] == 0.0


def test_a_rare_family_name_born_on_one_day_may_be_twins_living_apart() -> None:
    """Not at one home: with the name held by two records, its holders are kin; with it held by thousands,
    strangers, and a shared birth date weighs as among strangers."""
    base = Model.default()
    rare = base.evolve(tf={"family": {"WHITFIELD": 2}}, tf_total=100_000)
    common = base.evolve(tf={"family": {"WHITFIELD": 5_000}}, tf_total=100_000)
    a = match_record(1)
    moved = match_record(2, given="Margaret", nhs_number=None, postcode="BN1 1AA", address="9 Marine Parade",
                         phone=None)
    rare_score, = score_candidates(rare, a, [moved])
    common_score, = score_candidates(common, a, [moved])
    assert rare_score.levels["residence"] == "else"
    assert common_score.field_weights["birth_date"] > rare_score.field_weights["birth_date"] + 5
    assert rare_score.probability < 0.5


def test_names_written_the_other_way_round_weigh_once() -> None:
    model = Model.default()
    score, = score_candidates(model, match_record(1, given="Eleanor"), [
        match_record(2, given="Whitfield", family="Eleanor", nhs_number=None, address=None, phone=None)])
    assert score.levels["family"] == score.levels["given"] == "swapped"
    assert score.field_weights["given"] == 0.0 and score.field_weights["family"] > 0


@pytest.mark.parametrize(("fields", "among_relatives", "why"), [
    pytest.param({"given": "Margaret"}, True, "one family name: relatives of one street weigh it less"),
    pytest.param({"family": "Whitfeild", "given": "Margaret"}, True, "a slip in the family name: still one family"),
    pytest.param({"family": "Eleanor", "given": "Whitfield"}, False,
                 "names written the other way round: two family names if two people, so weighed as strangers"),
])
def test_a_street_shared_is_weighed_against_relatives_only_for_one_family_name(
        fields: dict[str, object], among_relatives: bool, why: str) -> None:
    """u among people of one family name (``u_same_family``) is learnt from pairs agreeing on the family name's
    sound; two different people whose names are each other's swapped are not of one family (H-ID-43)."""
    base = Model.default()
    residence = base.index_of("residence")
    assert residence is not None
    model = base.evolve(u_same_family={"residence": [0.3, 0.05, 0.05, 0.01, 0.02, 0.08, 0.49]})
    a = match_record(1, given="Eleanor")
    neighbour = match_record(2, nhs_number=None, address="40 Mill Lane, Guildford", phone=None, **fields)
    score, = score_candidates(model, a, [neighbour])
    assert score.levels["residence"] == "postcode-and-part", why
    part = model.comparisons[residence].labels.index("postcode-and-part")
    u = model.u_same_family["residence"][part] if among_relatives else model.u[residence][part]
    assert score.field_weights["residence"] == pytest.approx(math.log2(model.m[residence][part] / u), abs=1e-3), why


@pytest.mark.parametrize(("fields", "why"), [
    ({}, "identical records"),
    ({"given": "Margaret", "nhs_number": None}, "a twin at one home"),
    ({"postcode": "BN1 1AA", "address": "9 Marine Parade", "phone": None}, "moved house"),
    ({"birth_date": None, "nhs_number": None}, "no birth date"),
])
def test_an_explanation_adds_up_and_names_its_model(fields: dict[str, object], why: str) -> None:
    model = Model.default()
    score, = score_candidates(model, match_record(1), [match_record(2, **fields)])
    explained = explanation(model, score)
    assert explained["model_version"] == model.version, why
    assert explained["prior_weight"] + sum(explained["field_weights"].values()) == pytest.approx(
        explained["weight"], abs=0.01), why
    shown = waterfall(explained)
    assert shown is not None and shown["modelVersion"] == model.version
    assert shown["prior"]["weight"] == explained["prior_weight"]
    assert [s["comparison"] for s in shown["steps"]] == list(score.field_weights)
    assert shown["steps"][-1]["cumulative"] == pytest.approx(shown["total"], abs=0.01), why
    assert shown["probability"] == pytest.approx(score.probability, rel=1e-3), why


def test_a_waterfall_reads_what_older_versions_stored() -> None:
    """The batch relink once stored ``{"weight": w}`` alone and link-on-write a plain ``{comparison: weight}``."""
    total_only = waterfall({"weight": 12.5}, "fs-old")
    assert total_only is not None and total_only["total"] == 12.5 and total_only["steps"] == []
    assert total_only["prior"]["weight"] == 12.5 and total_only["modelVersion"] == "fs-old"
    plain = waterfall({"family": 7.0, "birth_date": 11.0}, "fs-old")
    assert plain is not None and plain["total"] is None and [s["weight"] for s in plain["steps"]] == [7.0, 11.0]
    assert waterfall(None) is None


def test_a_model_trained_before_relatives_were_learnt_scores_with_the_shipped_knowledge_of_them() -> None:
    """A stored model of an earlier release has no household evidence; the hand rules that kept twins apart are
    retired, so it takes the shipped prior knowledge of relatives, under a version of its own."""
    current = Model.default()
    stored = current.to_dict()
    for key in ("u_household", "household_prior", "kin_per_record"):
        stored.pop(key)
    stored["version"] = "fs-older"
    loaded = Model.from_dict(stored)
    assert loaded.u_household == current.u_household and loaded.household_prior == current.household_prior
    assert loaded.version != "fs-older" and loaded.version == loaded.content_version()
    twin, = score_candidates(loaded, match_record(1), [match_record(2, given="Margaret", nhs_number=None)])
    assert twin.probability < 0.99, "a twin at one home is not linked automatically"


#: Two records of one first name and middle initial (``Eleanor G``), no NHS number: the other's home, birth date and
#: middle name are set per case. A record at another home moved or was keyed at another address.
AWAY = {"postcode": "GU2 7XH", "address": "3 Oak Road, Burpham", "phone": None}


@pytest.mark.parametrize(("left", "right", "expected"), [
    # away from home, both carrying a birth date: the middle names are evidence as everywhere else
    ({}, {**AWAY, "given": "Eleanor Grace"}, "exact"),
    ({}, {**AWAY, "given": "Eleanor G"}, "initial-or-first"),
    ({}, {**AWAY, "given": "Eleanor G", "birth_date": "1981-06-02"}, "initial-or-first"),  # a date keyed wrongly
    ({}, {**AWAY, "given": "Eleanor Mary"}, "else"),  # a difference is evidence wherever the two live
    # at one home, agreement under one first name stays no evidence: relatives living together (a son named after
    # his father) share the middle name too
    ({}, {"given": "Eleanor G"}, None),
    ({}, {"given": "Eleanor G", "birth_date": "1981-06-02"}, None),
    # without a birth date on one side the pair is undistinguished (rule 8): what tells a parent from a child of
    # one name is missing, and a middle name they may share must not stand in for it
    ({}, {**AWAY, "given": "Eleanor G", "birth_date": None}, None),
    ({}, {"given": "Ellie G"}, "initial-or-first"),  # first names that differ: evidence at one home as before
    # a stand-in the model learnt (``DAUGHTER``) is compared as no first name: nothing to agree under
    ({"given": "Daughter G"}, {**AWAY, "given": "Daughter G"}, None),
])
def test_a_middle_name_agreeing_under_one_first_name_is_evidence_away_from_home(left: dict, right: dict,
                                                                                  expected: str | None) -> None:
    """Issue 17, the review queue: pairs of one first name at two homes whose middle names agree were scored as if
    the middle names were unknown (H-ID-32, extended)."""
    model = Model.default().evolve(stand_in_given=["DAUGHTER"])
    score, = score_candidates(model, match_record(1, nhs_number=None, **left),
                              [match_record(2, nhs_number=None, **right)])
    assert score.levels.get("middle") == expected
    if expected is not None:
        assert score.field_weights["middle"] != 0.0


def test_the_explanations_of_many_pairs_at_once_are_each_pairs_explanation() -> None:
    """:func:`explained_pairs` (a relink's explanations, from the score arrays' lists) gives what :func:`explanation`
    gives pair by pair, to the key, value and type: missing levels left out, NHS guards named, weights rounded
    alike."""
    variants: list[dict[str, object]] = [
        {}, {"given": "Margaret", "nhs_number": None}, {"postcode": "BN1 1AA", "address": "9 Marine Parade"},
        {"birth_date": None, "nhs_number": None}, {"nhs_number": "9990000026"}, {"nhs_number": "1234567890"},
        {"family": "Smyth", "phone": None}, {"sex": None, "given": None}, {"nhs_verification": None},
        {"family": "Okonkwo", "given": "Peter", "birth_date": date(1990, 5, 5)}]
    records = [match_record(n + 1, **fields) for n, fields in enumerate(variants)]
    frame = frame_from_records(records)
    pairs = [(a, b) for a in range(len(records)) for b in range(len(records)) if a != b]
    left = frame.take(np.asarray([a for a, _ in pairs], dtype=np.int64))
    right = frame.take(np.asarray([b for _, b in pairs], dtype=np.int64))
    for model in (Model.default(), Model.default().evolve(u_household={})):
        scored = score_frames(model, left, right, resolve_ambiguity=False)
        one_by_one = [explanation(model, pair_score(model, scored, i)) for i in range(len(pairs))]
        at_once = explained_pairs(model, scored)
        assert at_once == one_by_one == explanations(model, left, right)
        assert json.dumps(at_once) == json.dumps(one_by_one)
        assert {e["guard"] for e in at_once} >= {None, "nhs-number-unsupported"}
