"""A birth date held by a housemate (H-ID-48): which records show it, the birth-date level it gives, that the batch
relink and link-on-write find the same flags and weights, and that a model saved before the level loads.

The household: a mother registered twice, her baby registered once with its own birth date and once, at another
trust, with the mother's (the baby's record at a registration desk given the mother's date of birth)."""

from __future__ import annotations

from datetime import date

import numpy as np
from mpi_factories import TRUST_A, TRUST_B, TRUST_C, demographics
from sqlalchemy import select
from sqlalchemy.orm import Session

from mpi import PatientIndex
from mpi.batch import load_table
from mpi.comparisons import BirthDateComparison
from mpi.frames import frame_from_table, frame_of_few
from mpi.housemates import COLUMN, housemate_dates, of_records, with_housemate_dates
from mpi.index_store import IndexStore
from mpi.model import Model
from mpi.normalise import to_match_record
from mpi.scoring import score_frames
from mpi.tables import SourceRecord
from priorscan.trusts import default_trusts

HOME = {"family": "Okafor", "postcode": "TN2 5QR", "address": "4 Pembury Road, Tunbridge Wells",
        "phone": None, "nhs_number": None, "nhs_verification": None}
MOTHER = {"given": "Adaeze", "birth_date": date(1985, 2, 11), "sex": "female"}
BABY = {"given": "Chidi", "sex": "male"}


def _household() -> list:  # type: ignore[type-arg]
    return [demographics(TRUST_A, "M1", **HOME, **MOTHER),
            demographics(TRUST_B, "M2", **HOME, **MOTHER),
            demographics(TRUST_A, "C1", **HOME, **BABY, birth_date=date(2024, 6, 1)),
            # elsewhere, a namesake of the mother born on another day
            demographics(TRUST_C, "X1", **{**HOME, "address": "9 Calverley Road", "postcode": "TN1 2TE"},
                         given="Adaeze", birth_date=date(1985, 2, 12), sex="female")]


def _baby_with_mothers_date():  # type: ignore[no-untyped-def]
    return demographics(TRUST_B, "C2", **HOME, **BABY, birth_date=MOTHER["birth_date"])


def _records(people: list) -> list:  # type: ignore[type-arg]
    return [to_match_record(i + 1, {k: v for k, v in p.__dict__.items()}) for i, p in enumerate(people)]


def test_a_date_held_at_home_by_another_name_and_by_no_other_record_of_ones_own_is_a_housemates() -> None:
    people = [*_household(), _baby_with_mothers_date()]
    flags = dict(zip([p.local_id for p in people], of_records(_records(people)).tolist(), strict=True))
    # the baby's record with the mother's date; the mother's own records confirm each other; elsewhere nothing
    assert flags == {"M1": False, "M2": False, "C1": False, "X1": False, "C2": True}
    # twins registered once each at one home: each date is the other's too, nothing tells whose it is
    twins = [demographics(TRUST_A, "T1", **HOME, given="Ada", birth_date=date(2001, 5, 5), sex="female"),
             demographics(TRUST_A, "T2", **HOME, given="Obi", birth_date=date(2001, 5, 5), sex="male")]
    assert of_records(_records(twins)).tolist() == [True, True]
    # a name and its sound (ANN, ANNA) are one name; another home, or no address, is no housemate
    assert of_records(_records([*twins[:1], demographics(TRUST_B, "T3", **HOME, given="Adda",
                                                          birth_date=date(2001, 5, 5))])).tolist() == [False, False]
    # an initial alone is not another person's name (a father's record as "J" holds his own date), and a
    # record of the person's own initial there confirms the date as theirs
    father = demographics(TRUST_A, "F1", **HOME, given="Aaron", birth_date=date(1986, 10, 19), sex="male")
    initial = demographics(TRUST_B, "F2", **HOME, given="J", birth_date=date(1986, 10, 19), sex="male")
    assert of_records(_records([father, initial])).tolist() == [False, False]
    own_initial = demographics(TRUST_B, "T6", **HOME, given="A", birth_date=date(2001, 5, 5))
    assert of_records(_records([*twins, own_initial])).tolist() == [False, True, False]
    elsewhere = demographics(TRUST_A, "T4", **{**HOME, "address": "6 Pembury Road"}, given="Obi",
                             birth_date=date(2001, 5, 5))
    assert of_records(_records([twins[0], elsewhere])).tolist() == [False, False]
    no_address = demographics(TRUST_A, "T5", **{**HOME, "address": None}, given="Obi", birth_date=date(2001, 5, 5))
    assert of_records(_records([twins[0], no_address])).tolist() == [False, False]


def test_the_order_of_the_records_does_not_change_the_flags() -> None:
    people = [*_household(), _baby_with_mothers_date()]
    records = _records(people)
    forward = of_records(records).tolist()
    backward = of_records(records[::-1]).tolist()[::-1]
    assert forward == backward


def test_differing_dates_one_a_housemates_are_the_housemate_level_and_else_otherwise() -> None:
    comparison = BirthDateComparison()
    people = [*_household(), _baby_with_mothers_date()]
    records = _records(people)
    frame = frame_of_few(records, of_records(records).tolist())
    baby, baby_mothers_date, namesake, mother = 2, 4, 3, 0
    levels = comparison.levels(frame.take(np.array([baby, baby, mother])),
                               frame.take(np.array([baby_mothers_date, namesake, baby_mothers_date])))
    labels = [comparison.labels[level] for level in levels.tolist()]
    assert labels == ["housemate", "else", "exact"]
    # without the store's flags (a frame of records alone) the differing dates are simply different
    plain = frame_of_few(records)
    again = comparison.levels(plain.take(np.array([baby])), plain.take(np.array([baby_mothers_date])))
    assert comparison.labels[int(again[0])] == "else"


def test_link_on_write_finds_the_flags_and_weights_the_batch_relink_finds(session: Session) -> None:
    index = PatientIndex(session, default_trusts())
    for person in _household():
        index.upsert(person, event="ADT^A04", actor="feed")
    session.commit()
    store: IndexStore = index.store
    # before the baby's second record is written: the probe counts as a record of its home
    probe = to_match_record(None, {k: v for k, v in _baby_with_mothers_date().__dict__.items()})
    members = [m for group in store.candidate_clusters(probe, unwritten=True).values() for m in group]
    assert members
    unwritten = store.housemate_flags(probe, members)
    assert unwritten[0] is True
    index.upsert(_baby_with_mothers_date(), event="ADT^A04", actor="feed")
    session.commit()
    table = with_housemate_dates(load_table(session))
    batch = dict(zip(table["record_id"].tolist(), table[COLUMN].tolist(), strict=True))
    ids = dict(session.execute(select(SourceRecord.local_id, SourceRecord.id)).tuples().all())
    assert [batch[ids[k]] for k in ("M1", "M2", "C1", "X1", "C2")] == [False, False, False, False, True]
    assert unwritten[1:] == [batch[m.record_id] for m in members]
    frame = frame_from_table(table)
    row_of = {rid: row for row, rid in enumerate(table["record_id"].tolist())}
    for local_id in ("M1", "C1", "C2"):
        record_id = ids[local_id]
        probe = IndexStore.match_record(session.get(SourceRecord, record_id))  # type: ignore[arg-type]
        clusters = store.candidate_clusters(probe, exclude=record_id)
        members = [m for group in clusters.values() for m in group]
        flags = store.housemate_flags(probe, members)
        assert flags == [batch[record_id], *(batch[m.record_id] for m in members)]
        real_time = store.score(probe, clusters).scored
        assert real_time is not None
        left = np.full(len(members), row_of[record_id], dtype=np.int64)
        right = np.array([row_of[m.record_id] for m in members], dtype=np.int64)
        batch_scored = score_frames(store.model, frame.take(left), frame.take(right))
        np.testing.assert_allclose(real_time.weight, batch_scored.weight, rtol=0, atol=1e-9)
        assert (real_time.levels == batch_scored.levels).all()
    # the baby's two records are compared at the housemate level on both paths
    c2 = IndexStore.match_record(session.get(SourceRecord, ids["C2"]))  # type: ignore[arg-type]
    clusters = store.candidate_clusters(c2, exclude=ids["C2"])
    scored = store.score(c2, clusters)
    birth = store.model.index_of("birth_date")
    assert scored.scored is not None and birth is not None
    at = [i for i, (_, rid) in enumerate(scored.flat) if rid == ids["C1"]]
    assert at and BirthDateComparison.labels[int(scored.scored.levels[at[0], birth])] == "housemate"


def test_housemate_dates_of_columns_match_of_records() -> None:
    records = _records([*_household(), _baby_with_mothers_date()])
    columns = [np.asarray([getattr(r, n) or "" for r in records], dtype=object)
               for n in ("postcode", "address", "dob", "given", "given_ph")]
    assert housemate_dates(*columns).tolist() == of_records(records).tolist()


def test_a_model_saved_before_the_housemate_level_loads_with_prior_knowledge_of_it() -> None:
    saved = Model.default().to_dict()
    for entry in saved["comparisons"]:
        if entry["name"] == "birth_date":
            at = entry["labels"].index("housemate")
            for key in ("labels", "m", "u"):
                entry[key] = [v for i, v in enumerate(entry[key]) if i != at]
            old_m = list(entry["m"])
    saved["u_household"]["birth_date"] = [v for i, v in enumerate(saved["u_household"]["birth_date"]) if i != at]
    model = Model.from_dict(saved)
    birth = model.index_of("birth_date")
    assert birth is not None
    assert len(model.m[birth]) == len(BirthDateComparison.labels) == len(model.u_household["birth_date"])
    default = Model.default()
    assert model.m[birth][at] > 0 and model.u[birth][at] > 0 and model.u_household["birth_date"][at] > 0
    # the levels it knew keep their proportions; the new one takes the shipped value (before renormalising)
    kept = [v for i, v in enumerate(model.m[birth]) if i != at]
    np.testing.assert_allclose(np.asarray(kept) / sum(kept), np.asarray(old_m) / sum(old_m))
    assert abs(model.m[birth][at] - default.m[birth][at]) < 0.01
    assert model.version != default.version or model.training.get("realigned")
