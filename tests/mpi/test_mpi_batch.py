"""Batch relink, evaluation, the xref export and the MPI commands, on a small synthetic population."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from mpi_factories import demographics
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bench.mpi_population import make_population
from mpi import PatientIndex
from mpi.batch import bulk_load, load_table, refresh_blocking_keys, relink
from mpi.blocking import blocking_keys
from mpi.clustering import cluster, connected_components
from mpi.evaluate import evaluate_store, pairwise_metrics
from mpi.normalise import MatchRecord, to_match_record
from mpi.tables import BlockingKey, MatchModel, ReviewItem, SourceRecord
from mpi.xref import write_xref
from priorscan.trusts import NHS_NUMBER_SYSTEM, default_trusts


@pytest.fixture
def population_store(session: Session):  # type: ignore[no-untyped-def]
    population = make_population(800, seed=11)
    bulk_load(session, population.records)
    session.commit()
    return population


def test_relink_trains_a_model_and_links_accurately(session: Session, population_store) -> None:  # type: ignore
    result = relink(session)
    session.commit()
    assert result.trained and result.records == len(population_store.records)
    model_row = session.scalars(select(MatchModel).where(MatchModel.active.is_(True))).one()
    assert model_row.version == result.model_version and model_row.parameters["training"]["kind"] == "em"
    truth = {(ns, local): person for person, ns, local in population_store.truth}
    evaluation = evaluate_store(session, truth)
    assert evaluation.precision >= 0.995 and evaluation.recall >= 0.98, evaluation
    assert evaluation.blocking_recall is not None and evaluation.blocking_recall >= 0.99
    assert evaluation.review_queue_rate <= 0.02
    unlinked = session.scalar(select(func.count()).select_from(SourceRecord)
                              .where(SourceRecord.regional_patient_id.is_(None)))
    assert unlinked == 0


def test_relink_twice_changes_nothing(session: Session, population_store) -> None:  # type: ignore
    relink(session)
    session.commit()
    again = relink(session, train=False)
    assert again.records_changed == 0


def test_load_table_normalises_records_stored_without_match_fields(session: Session, population_store  # type: ignore
                                                                   ) -> None:
    """A record written before match fields were stored is read with the fields its columns give (the same as
    stored ones), among records read as stored; its identifiers (H-ID-61) are not among its columns: it has none
    until its next message."""
    from sqlalchemy import update

    from mpi.batch import load_table

    stored = load_table(session)
    chosen = stored["record_id"].iloc[[3, 10, 11]].tolist()
    session.execute(update(SourceRecord).where(SourceRecord.id.in_(chosen)).values(match_fields=None))
    again = load_table(session)
    assert (again.loc[again["record_id"].isin(chosen), "identifiers"] == "").all()
    assert again.drop(columns=["updated_at", "identifiers"]).equals(stored.drop(columns=["updated_at", "identifiers"]))


def test_link_on_write_after_batch_uses_the_trained_model(session: Session, population_store) -> None:  # type: ignore
    from mpi import PatientIndex
    from priorscan.trusts import default_trusts

    result = relink(session)
    session.commit()
    index = PatientIndex(session, default_trusts())
    assert index.model.version == result.model_version
    person = population_store.people[0]
    outcome = index.upsert(
        __import__("mpi").Demographics("https://fhir.ryr.nhs.uk/Id/mrn", "NEW1", nhs_number=person.nhs_number,
                                       family=person.family, given=person.given, birth_date=person.birth_date,
                                       sex={"M": "male", "F": "female"}[person.sex], postcode=person.postcode),
        event="ADT^A04", actor="feed")
    truth_records = [(ns, local) for p, ns, local in population_store.truth if p == person.person_id]
    known = session.scalars(select(SourceRecord.regional_patient_id).where(
        SourceRecord.local_id.in_([local for _, local in truth_records]))).all()
    assert outcome.regional_id in set(known)


def test_xref_has_one_row_per_identifier_and_nhs_number(session: Session, population_store) -> None:  # type: ignore
    relink(session)
    session.commit()
    out = io.StringIO()
    rows = write_xref(session, out)
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(table[0]) == ["regional_id", "system", "value", "link_state"] and len(table) == rows
    records = session.scalar(select(func.count()).select_from(SourceRecord))
    nhs_rows = [r for r in table if r["system"] == NHS_NUMBER_SYSTEM]
    assert len(table) - len(nhs_rows) == records
    assert nhs_rows and all(len(r["value"]) == 10 for r in nhs_rows)


def test_pairwise_metrics_on_a_toy() -> None:
    figures = pairwise_metrics(["p1", "p1", "p2", "p2", "p3"], ["r1", "r1", "r1", "r2", "r3"])
    # true pairs: (0,1), (2,3); predicted: (0,1), (0,2), (1,2)
    assert figures["true_pairs"] == 2 and figures["predicted_pairs"] == 3 and figures["true_positive_pairs"] == 1
    assert figures["precision"] == pytest.approx(1 / 3) and figures["recall"] == pytest.approx(0.5)
    assert figures["people_wrongly_merged"] == 2 and figures["people_with_missed_links"] == 1


def test_clustering_refuses_to_chain_through_a_weak_middle_record() -> None:
    # 0 — 1 — 2 linked by matches, but 0 and 2 conflict: 1 joins the stronger side only
    left, right = np.array([0, 1]), np.array([1, 2])
    strength = np.array([30.0, 20.0])

    def conflicts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.array([{int(x), int(y)} == {0, 2} for x, y in zip(a, b, strict=True)])

    labels, rebuilt = cluster(3, left, right, strength, conflicts)
    assert rebuilt == 1 and labels[0] == labels[1] != labels[2]
    assert list(connected_components(3, left, right)) == [0, 0, 0]


def test_a_firm_record_vouches_for_two_records_only_a_low_posterior_keeps_apart() -> None:
    """0 — 1 — 2 linked by matches; 0 and 2 more likely two people than one, with nothing adding up against
    (``LOW``). The middle record, carrying the given name and the birth date, vouches for both: one patient. A
    middle record lacking either (a father and a son of one name through a record without a birth date) or
    evidence against (``AGAINST``) still breaks the chain."""
    from mpi.clustering import AGAINST, LOW

    left, right = np.array([0, 1]), np.array([1, 2])
    strength = np.array([30.0, 20.0])

    def kind(value: int):  # type: ignore[no-untyped-def]
        def conflicts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.array([value if {int(x), int(y)} == {0, 2} else 0 for x, y in zip(a, b, strict=True)],
                            dtype=np.int8)
        return conflicts

    labels, rebuilt = cluster(3, left, right, strength, kind(LOW), firm=np.array([True, True, True]))
    assert rebuilt == 0 and len(set(labels.tolist())) == 1
    labels, rebuilt = cluster(3, left, right, strength, kind(LOW), firm=np.array([True, False, True]))
    assert rebuilt == 1 and labels[0] == labels[1] != labels[2], "a weak middle record vouches for nobody"
    labels, rebuilt = cluster(3, left, right, strength, kind(AGAINST), firm=np.array([True, True, True]))
    assert rebuilt == 1 and labels[0] == labels[1] != labels[2], "evidence against is never outweighed"


def _original_and_two_copies() -> list:  # type: ignore[type-arg]
    """One person: the original record, a copy with the birth year's digits transposed and the house number
    slipped, and a copy from after a move with the first name misspelt. Each copy is a match with the original;
    the two copies, differing on birth date, address and first name, are more likely two people than one."""
    from mpi_factories import match_record

    base = {"nhs_number": None, "nhs_verification": None, "phone": None}
    return [match_record(1, **base),
            match_record(2, local_id="A2", birth_date="1987-03-14", address="12 Guildford Lane", **base),
            match_record(3, local_id="A3", given="Elenor Grace", postcode="TN2 1AA", address="3 Oak Road", **base)]


def test_batch_joins_two_copies_of_one_person_through_their_original() -> None:
    from mpi.clustering import LOW
    from mpi.frames import frame_from_records
    from mpi.linkage import conflict_kind, link_frame
    from mpi.model import Model
    from mpi.scoring import score_frames

    model = Model.default()
    frame = frame_from_records(_original_and_two_copies())
    copies = score_frames(model, frame.take(np.array([1])), frame.take(np.array([2])), resolve_ambiguity=False)
    assert copies.probability[0] < model.possible_threshold and conflict_kind(model, copies)[0] == LOW
    linkage = link_frame(frame, model, np.array([0, 0, 1]), np.array([1, 2, 2]))
    assert len(set(linkage.labels.tolist())) == 1, "the original vouches for both copies"


def test_batch_keeps_a_record_without_given_name_or_nhs_number_out_of_both_twins() -> None:
    from mpi_factories import NHS_OTHER, match_record

    from mpi.frames import frame_from_records
    from mpi.linkage import link_frame
    from mpi.model import Model

    records = [match_record(1), match_record(2, local_id="A2"),  # one twin, twice
               match_record(3, given="Margaret", nhs_number=NHS_OTHER),  # the other twin
               match_record(4, given=None, nhs_number=None, nhs_verification=None)]  # which one?
    left, right = np.array([0, 0, 0, 1, 1, 2]), np.array([1, 2, 3, 2, 3, 3])
    linkage = link_frame(frame_from_records(records), Model.default(), left, right)
    labels = linkage.labels
    assert labels[0] == labels[1] and len({labels[0], labels[2], labels[3]}) == 3
    reviewed = {int(x) for x in np.r_[linkage.review_left, linkage.review_right]}
    assert 3 in reviewed, "the record goes to review, not to either twin"


def test_a_review_item_rule_8_sent_names_it_in_its_stored_explanation(session: Session) -> None:
    """The relink's review item of a record that could be either twin says why it is in review (guard
    ``could-be-either``), as link-on-write's does: the steward must not read a posterior at or above the match
    threshold with no guard (H-ID-22). Before, the relink explained the pair afresh, where rule 8 cannot be seen."""
    from mpi_factories import NHS, NHS_THIRD, TRUST_A, TRUST_B

    from mpi.batch import save_model
    from mpi.model import Model

    none = {"nhs_number": None, "nhs_verification": None}
    twins = {"family": "Okafor", "birth_date": date(1991, 7, 30), "postcode": "TN2 5QR",
             "address": "4 Pembury Road, Tunbridge Wells", "phone": "01892 555 777"}
    bulk_load(session, [demographics(TRUST_A, "T1", given="Adaeze", nhs_number=NHS, **twins),
                        demographics(TRUST_A, "T2", given="Ngozi", nhs_number=NHS_THIRD, **twins),
                        demographics(TRUST_B, "T3", given=None, **none, **twins)])
    save_model(session, Model.default().evolve(match_threshold=0.98), records=3)
    session.commit()
    relink(session, train=False)
    session.commit()
    weak = session.scalars(select(SourceRecord.id).where(SourceRecord.local_id == "T3")).one()
    items = session.scalars(select(ReviewItem).where(ReviewItem.status == "open")).all()
    guards = [item.weights["guard"] for item in items if weak in (item.source_record_id, item.candidate_record_id)]
    assert guards and set(guards) == {"could-be-either"}
    twin_pair = [item for item in items if weak not in (item.source_record_id, item.candidate_record_id)]
    assert all(item.weights["guard"] != "could-be-either" for item in twin_pair)


def test_batch_keeps_a_record_without_birth_date_or_nhs_number_out_of_father_and_son() -> None:
    from mpi_factories import NHS_OTHER, match_record

    from mpi.frames import frame_from_records
    from mpi.linkage import link_frame
    from mpi.model import Model

    records = [match_record(1, given="John", sex="male", birth_date="1950-06-02"),  # the father, twice
               match_record(2, local_id="A2", given="John", sex="male", birth_date="1950-06-02"),
               match_record(3, given="John", sex="male", birth_date="1979-11-23", nhs_number=NHS_OTHER),  # the son
               match_record(4, given="John", sex="male", birth_date=None, nhs_number=None,
                            nhs_verification=None)]  # which one?
    left, right = np.array([0, 0, 0, 1, 1, 2]), np.array([1, 2, 3, 2, 3, 3])
    linkage = link_frame(frame_from_records(records), Model.default(), left, right)
    labels = linkage.labels
    assert labels[0] == labels[1] and len({labels[0], labels[2], labels[3]}) == 3
    reviewed = {int(x) for x in np.r_[linkage.review_left, linkage.review_right]}
    assert 3 in reviewed, "the record goes to review, not to father or son"


def test_review_queue_items_point_at_two_patients(session: Session, population_store) -> None:  # type: ignore
    relink(session)
    for item in session.scalars(select(ReviewItem).where(ReviewItem.status == "open")).all()[:20]:
        record = session.get(SourceRecord, item.source_record_id)
        assert record is not None and record.regional_patient_id != item.candidate_regional_id


def test_cli_link_evaluate_and_export(tmp_path: Path, sqlite_url: str) -> None:
    import contextlib

    from priorscan.cli import main

    population = make_population(300, seed=5)
    from priorscan.db import make_engine, session_factory

    engine = make_engine(sqlite_url)
    with session_factory(engine)() as s:
        bulk_load(s, population.records)
        s.commit()
    engine.dispose()
    truth = tmp_path / "persons.csv"
    with open(truth, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", "system", "value"])
        for person, ns, local in population.truth:
            writer.writerow([person, ns, local])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--db", sqlite_url, "link"]) == 0
        assert main(["--db", sqlite_url, "evaluate", "--truth", str(truth), "--json"]) == 0
    assert "linked" in out.getvalue() and '"precision"' in out.getvalue()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--db", sqlite_url, "export", "xref"]) == 0
    assert out.getvalue().startswith("regional_id,system,value,link_state\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["--db", sqlite_url, "evaluate"]) == 2
    assert "--truth" in err.getvalue()


def test_relink_stores_the_explanation_of_every_link_and_review_item(session: Session, population_store  # type: ignore
                                                                     ) -> None:
    """Each automatic link and each review item carries its waterfall: the prior's weight, each comparison's
    level and weight, the total, the probability and the model's version, adding up."""
    from mpi.review import review_queue, waterfall

    result = relink(session)
    session.commit()
    linked = session.scalars(select(SourceRecord).where(SourceRecord.link_score.is_not(None))).all()
    assert len(linked) > 100
    for record in linked:
        explained = record.link_weights
        assert explained is not None and explained["model_version"] == result.model_version
        assert explained["prior_weight"] + sum(explained["field_weights"].values()) == pytest.approx(
            explained["weight"], abs=0.01)
        assert explained["probability"] == pytest.approx(record.link_score, rel=1e-6)
    items = session.scalars(select(ReviewItem).where(ReviewItem.status == "open")).all()
    assert items, "the population has possible matches"
    for item in items:
        shown = waterfall(item.weights)
        assert shown is not None and shown["modelVersion"] == result.model_version and shown["steps"]
        assert shown["probability"] == pytest.approx(item.score, rel=1e-3)
    total, queue = review_queue(session, limit=500)
    assert total == len(items)
    risks = [entry["probability"] for entry in queue]
    assert risks == sorted(risks, reverse=True), "the likeliest missed link first"


def test_a_pair_more_likely_two_people_is_an_integrity_conflict_though_its_weights_lean_to_one() -> None:
    """Names agreeing and birth dates not (a father and a son of one name living apart): the fields weigh for a
    match against the prior, yet the posterior says two people. No chain of links may join them."""
    from mpi_factories import match_record

    from mpi.frames import frame_from_records
    from mpi.linkage import is_conflict
    from mpi.model import Model
    from mpi.scoring import score_frames

    model = Model.default()
    records = [match_record(1, given="John", sex="male", birth_date="1950-06-02", nhs_number=None),
               match_record(2, given="John", sex="male", birth_date="1979-11-23", nhs_number=None,
                            postcode="TN2 1AA", address="3 Oak Road", phone=None)]
    frame = frame_from_records(records)
    scored = score_frames(model, frame.take(np.array([0])), frame.take(np.array([1])))
    assert scored.weight[0] - model.prior_weight > 0 and scored.personal_weight[0] > 0, "the fields lean to one"
    assert scored.probability[0] < model.possible_threshold
    assert is_conflict(model, scored)[0]


def test_the_exclusive_probability_weighs_a_pair_against_the_partners_kept_apart_from_it() -> None:
    """A weak record is at most one of two people: its pair with each is weighed against the other (odds against
    "neither"): equal odds (two twins) fall below one half; a near-certain match beside a bare possible stays a
    match; a partner with no rival keeps its own probability; the order of the inputs changes nothing."""
    from mpi.scoring import exclusive_probability

    weak = np.array([9, 9, 9, 8, 8])
    partner = np.array([1, 2, 3, 1, 2])
    probability = np.array([0.99, 0.99, 0.9, 0.999, 0.6])
    owner, first, second = np.array([9, 8]), np.array([1, 1]), np.array([2, 2])  # 1 and 2 are two people
    exclusive, rivalled = exclusive_probability(weak, partner, probability, owner, first, second)
    assert exclusive[0] == exclusive[1] < 0.5, "one record equally like two twins: either"
    assert not rivalled[2] and exclusive[2] == 0.9, "no partner kept apart from 3"
    odds = 0.999 / 0.001
    assert exclusive[3] == pytest.approx(odds / (1 + odds + 0.6 / 0.4)) and exclusive[3] > 0.99
    assert exclusive[4] < 0.01
    shuffled = np.array([4, 2, 0, 3, 1])
    again, _ = exclusive_probability(weak[shuffled], partner[shuffled], probability[shuffled], owner[::-1],
                                     second[::-1], first[::-1])
    assert np.array_equal(again, exclusive[shuffled])


def _record_without_birth_date_near_certain_with_one_person() -> list:  # type: ignore[type-arg]
    """Eleanor Grace Whitfield, her record without a birth date (same home, phone and names), and Elena Whitfeld at
    the same address, born 1950, with an NHS number of her own: the record without a birth date is near-certain
    with Eleanor (0.995), a bare possible with Elena (0.64), and the two women are kept apart by the evidence."""
    from mpi_factories import NHS_OTHER, match_record

    none = {"nhs_number": None, "nhs_verification": None}
    return [match_record(1, **none), match_record(2, local_id="A2", birth_date=None, **none),
            match_record(3, local_id="A3", given="Elena", family="Whitfeld", birth_date="1950-06-02",
                         nhs_number=NHS_OTHER, phone=None)]


def test_batch_links_a_record_without_birth_date_to_the_one_person_it_is_near_certain_with() -> None:
    """Rule 8 caps a weak record's pair only when the record could be either: weighed against the partner kept
    apart from its own (:func:`mpi.scoring.exclusive_probability`), the pair with Eleanor stays a match; the
    pair with Elena stays a possible match, to review."""
    from mpi.frames import frame_from_records
    from mpi.linkage import conflict_kind, link_frame
    from mpi.model import Model
    from mpi.scoring import score_frames

    model = Model.default().evolve(match_threshold=0.98)
    frame = frame_from_records(_record_without_birth_date_near_certain_with_one_person())
    left, right = np.array([0, 1, 0]), np.array([1, 2, 2])
    scored = score_frames(model, frame.take(left), frame.take(right), resolve_ambiguity=False)
    assert scored.probability[0] >= model.match_threshold and 0.5 <= scored.probability[1] < 0.8
    assert conflict_kind(model, scored)[2] > 0, "Eleanor and Elena are two people"
    linkage = link_frame(frame, model, left, right)
    assert linkage.labels[0] == linkage.labels[1] != linkage.labels[2]
    assert {(int(a), int(b)) for a, b in zip(linkage.review_left, linkage.review_right, strict=True)} == {(1, 2)}


def test_a_relink_rewrites_the_stored_keys_only_when_the_key_scheme_changed(session: Session,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A relink with the keys' scheme unchanged since the last refresh leaves the stored keys alone (it does not
    read or rebuild them); one after the scheme changed (or with none recorded) rewrites them and records the
    new scheme (H-ID-27)."""
    import mpi.batch
    from mpi.blocking import KEY_SCHEME
    from mpi.tables import BlockingKeyScheme

    bulk_load(session, [demographics("urn:t", "A1"), demographics("urn:t", "B1", family="Nakamura", given="Hana",
                                                                  birth_date=date(1990, 5, 2), nhs_number=None,
                                                                  nhs_verification=None)])
    session.commit()
    first = session.scalars(select(SourceRecord).order_by(SourceRecord.id)).first()
    assert first is not None
    today = blocking_keys(MatchRecord.from_stored(first.id, first.match_fields))

    def stored_keys() -> set[str]:
        return set(session.scalars(select(BlockingKey.key).where(BlockingKey.source_record_id == first.id)))

    relink(session)  # no scheme recorded yet: the keys are refreshed, the scheme recorded
    session.commit()
    assert session.get(BlockingKeyScheme, 1).scheme == KEY_SCHEME  # type: ignore[union-attr]
    session.execute(delete(BlockingKey).where(BlockingKey.source_record_id == first.id))
    session.commit()
    relink(session)  # the same scheme: the stored keys are not rewritten
    session.commit()
    assert stored_keys() == set()
    monkeypatch.setattr(mpi.batch, "KEY_SCHEME", "a later scheme")
    relink(session)  # the scheme changed: every record's keys are rewritten
    session.commit()
    assert stored_keys() == today
    assert session.get(BlockingKeyScheme, 1).scheme == "a later scheme"  # type: ignore[union-attr]


def test_a_relink_brings_the_stored_blocking_keys_to_the_keys_of_today(session: Session) -> None:
    """Keys are stored on write: records written before a change to the keys get the keys of today from the next
    relink (either engine), keys no longer made are deleted, and link-on-write finds the records from then on
    (H-ID-27)."""
    bulk_load(session, [demographics("urn:t", "A1", nhs_number=None, nhs_verification=None),
                        demographics("urn:t", "B1", nhs_number=None, nhs_verification=None, family="Nakamura",
                                     given="Hana", birth_date=date(1990, 5, 2), postcode="RH1 1AA",
                                     address="3 Station Road, Redhill")])
    session.commit()
    first, second = session.scalars(select(SourceRecord).order_by(SourceRecord.id)).all()
    # as stored by an older version: the first with none of today's keys, the second with a key no longer made
    session.execute(delete(BlockingKey).where(BlockingKey.source_record_id == first.id))
    session.add(BlockingKey(source_record_id=second.id, key="x:retired"))
    session.commit()
    index = PatientIndex(session, default_trusts())
    probe = demographics("urn:t", "A2", nhs_number=None, nhs_verification=None)  # the first one registered again
    probe_match = to_match_record(None, dict(probe.__dict__))
    assert first.id not in index.candidate_ids(probe_match)

    relink(session)
    session.commit()
    for record in (first, second):
        stored = set(session.scalars(select(BlockingKey.key).where(BlockingKey.source_record_id == record.id)))
        assert stored == blocking_keys(MatchRecord.from_stored(record.id, record.match_fields))
    assert first.id in index.candidate_ids(probe_match)
    assert refresh_blocking_keys(session, load_table(session)) == 0  # a second refresh finds nothing to change


def test_a_relink_writes_back_with_the_cyclic_collector_paused_and_gives_it_back(session: Session, population_store,
                                                                                monkeypatch) -> None:  # type: ignore
    """Issue 18: the collector's full passes over the rows the write-back builds grew faster than the store; they
    are paused for the write alone (memory is still freed by reference counting) and the collector is on after."""
    import gc

    import mpi.batch as batch

    seen: list[bool] = []
    write_links = batch.write_links

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        return write_links(*args, **kwargs)

    monkeypatch.setattr(batch, "write_links", watched)
    assert gc.isenabled()
    result = relink(session)
    assert result.records_changed > 0 and seen == [False]
    assert gc.isenabled()


@pytest.mark.parametrize("enabled_before", [True, False], ids=["on-stays-on", "off-stays-off"])
def test_the_collector_is_left_as_it_was_found_even_when_the_write_fails(enabled_before: bool) -> None:
    import gc

    from mpi.batch import collector_paused

    (gc.enable if enabled_before else gc.disable)()
    try:
        with pytest.raises(RuntimeError), collector_paused():
            assert not gc.isenabled()
            raise RuntimeError("write failed")
        assert gc.isenabled() is enabled_before
    finally:
        gc.enable()
