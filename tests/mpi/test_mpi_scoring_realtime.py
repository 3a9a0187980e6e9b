"""Real-time scoring: a probe against a few candidates on an uncoded frame scores exactly as the batch path does."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import numpy as np
import pytest
from mpi_factories import NHS_OTHER, match_record

from mpi import comparisons
from mpi.frames import frame_from_records, frame_from_table, frame_of_few, probe_pairs, table_from_stored
from mpi.index_store import _decoded
from mpi.model import Model
from mpi.normalise import MatchRecord
from mpi.scoring import ScoredPairs, score_candidates, score_frames

#: Records of one person, her relatives and strangers, each differing from the first in one way or a few.
VARIANTS: list[dict[str, Any]] = [
    {},
    {"family": "Whitfeild"},  # typo
    {"family": "Whitfield-Jones"},  # double-barrelled
    {"family": "Eleanor", "given": "Whitfield"},  # given and family swapped
    {"given": "Elanor"},  # close spelling
    {"given": "Grace"},  # the middle name as the first
    {"given": "E"},  # an initial
    {"given": "Nell"},  # a nickname
    {"given": None, "sex": "male"},  # no given name, the sexes differ
    {"given": None, "nhs_number": None},  # no given name, no number: undistinguished
    {"given": "Margaret"},  # a twin
    {"family": None, "address": None},  # missing family name and address
    {"birth_date": "1978-14-03", "phone": "01483 555 124"},  # read as YYYY-DD-MM; one edit in the phone
    {"birth_date": "1978-03-04"},  # a slip in the day
    {"birth_date": "1978-04-03"},  # the previous one's day and month transposed
    {"birth_date": "1987-03-14"},  # two year digits swapped
    {"birth_date": "1978", "postcode": "GU1 4AD"},  # a partial date; the same sector
    {"birth_date": None, "postcode": "GU2 7XH", "phone": None},  # another district
    {"nhs_number": NHS_OTHER},  # a different valid number, both verified
    {"nhs_number": NHS_OTHER, "nhs_verification": "02"},  # a different number, not verified
    {"nhs_number": "9434765918"},  # failing the check
    {"postcode": "75001", "address": "3 Rue de Rivoli"},  # not UK
    {"postcode": "75002", "address": "3 Rue Rivoli Paris"},  # not UK, one edit
    {"address": "Flat 1, 12 Mill Lane, Guildford"},  # within the other's words
    {"address": "14 Mill Lane, Guildford", "sex": None},  # a neighbour
    {"family": "Okonkwo", "given": "William", "birth_date": "1961-07-30", "nhs_number": None},  # a stranger
    {"family": "Okonkwo", "given": "Bill", "birth_date": "1961-07-30", "nhs_number": None},  # his nickname
    {"family": "Margaret", "given": "Whitfield"},  # the family name keyed as the given name: crossed
    {"given": "Ellie G"},  # another first name, the middle one's initial
    {"given": "Ellie Rose", "postcode": "GU1 4AD", "address": "12 Mill Lane, Guildfrd, Surrey"},  # slips in both
]


def records() -> list[MatchRecord]:
    return [match_record(i + 1, local_id=f"A{i + 1}", **v) for i, v in enumerate(VARIANTS)]


def trained_model() -> Model:
    """The default model with term frequencies and household u among relatives, so every weight path runs."""
    return Model.default().evolve(
        tf={"family": {"WHITFIELD": 40, "OKONKWO": 3}, "given": {"ELEANOR": 30, "WILLIAM": 20, "MARGARET": 9},
            "postcode": {"GU1 4AB": 12}},
        tf_total=100_000,
        u_same_family={"residence": [0.3, 0.05, 0.05, 0.01, 0.02, 0.08, 0.49], "phone": [0.3, 0.01, 0.69]})


def batch_sides(rows: list[MatchRecord]) -> tuple[Any, Any]:
    """The first row paired with the others on a coded frame built as the batch relink builds it."""
    table = table_from_stored([r.record_id or 0 for r in rows], [r.as_stored() for r in rows])
    frame = frame_from_table(table)
    return frame.take(np.zeros(len(rows) - 1, dtype=np.int64)), frame.take(np.arange(1, len(rows), dtype=np.int64))


def assert_same(small: ScoredPairs, batch: ScoredPairs) -> None:
    for f in fields(ScoredPairs):
        np.testing.assert_array_equal(getattr(small, f.name), getattr(batch, f.name), err_msg=f.name)


@pytest.mark.parametrize("distinct_from", [
    pytest.param(0, id="batch-distinct-pairs"),  # every similarity once per distinct pair of codes, as in a chunk
    pytest.param(comparisons.DISTINCT_FROM, id="batch-direct"),  # a coded frame, similarities computed directly
])
@pytest.mark.parametrize("model", [pytest.param(Model.default(), id="default"),
                                   pytest.param(trained_model(), id="trained")])
def test_small_frame_scores_as_the_batch_path(model: Model, distinct_from: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rows = records()
    seen: set[tuple[str, str]] = set()
    for i, probe in enumerate(rows):
        others = rows[:i] + rows[i + 1:]
        small = score_frames(model, *probe_pairs(probe, others))
        with monkeypatch.context() as patch:
            patch.setattr(comparisons, "DISTINCT_FROM", distinct_from)
            batch = score_frames(model, *batch_sides([probe, *others]))
        assert_same(small, batch)
        for index, comparison in enumerate(model.comparisons):
            seen.update((comparison.name, comparison.labels[level]) for level in small.levels[:, index]
                        if level >= 0)
    # the records reach the levels the small path must agree on
    assert {("family", "jaro-winkler>=0.92"), ("family", "words-shared"), ("family", "swapped"),
            ("given", "nickname"), ("given", "initial-or-middle"), ("given", "jaro-winkler>=0.92"),
            ("birth_date", "day-month-transposed"), ("birth_date", "one-part-different"),
            ("birth_date", "partial-agrees"), ("nhs_number", "else"), ("residence", "nearby"),
            ("phone", "one-edit"), ("family", "crossed"), ("middle", "initial-or-first"), ("middle", "else"),
            ("residence", "both-nearly")} <= seen


def test_small_frame_matches_the_coded_frame_of_the_same_records() -> None:
    rows = records()
    model = trained_model()
    coded = frame_from_records(rows)
    n = len(rows) - 1
    batch = score_frames(model, coded.take(np.zeros(n, dtype=np.int64)), coded.take(np.arange(1, n + 1)))
    assert_same(score_frames(model, *probe_pairs(rows[0], rows[1:])), batch)


def test_score_candidates_explains_each_candidate() -> None:
    rows = records()
    scores = score_candidates(Model.default(), rows[0], rows[1:3])
    assert [s.levels["family"] for s in scores] == ["jaro-winkler>=0.92", "words-shared"]
    assert score_candidates(Model.default(), rows[0], []) == []


def test_frame_of_few_holds_no_codes() -> None:
    frame = frame_of_few(records()[:3])
    assert frame.size == 3 and not frame.vocab
    assert not any(name.endswith("__code") for name in frame)
    assert frame_of_few([]).size == 0


def test_decoded_records_follow_the_stored_fields() -> None:
    stored = match_record(901, given="Eleanor").as_stored()
    text = json.dumps(stored)
    first = _decoded(901, text)
    assert _decoded(901, text) is first  # read again: not decoded again
    changed = _decoded(901, json.dumps({**stored, "given": "NELL"}))  # updated since: decoded afresh
    assert changed.given == "NELL" and changed.record_id == 901
    assert _decoded(901, stored) == first  # already parsed (PostgreSQL JSON): the same record
