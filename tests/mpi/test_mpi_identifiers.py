"""Identifiers other than the NHS number as evidence of one person (hazard H-ID-61).

A record's further identifiers (PID-3 repeats, FHIR ``identifier`` entries) were stored for look-up and never
weighed: an ADT from RTK listing the patient's RXC hospital number, or FEBRL's ``soc_sec_id`` sent beside the record
id, said nothing to the linker. They are now the learnt comparison ``identifier`` (shared / conflicting in one
system / none), with an ``i:`` blocking key; values many records hold are none; the NHS-number rules stand.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from mpi_factories import NHS, NHS_OTHER, TRUST_A, TRUST_B, demographics
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from mpi import Demographics, PatientIndex
from mpi.batch import relink
from mpi.comparisons import IdentifierComparison, identifier_level
from mpi.fhir_patient import client_namespace
from mpi.frames import Frame
from mpi.identifier_systems import FHIR_ID_SYSTEM, REGIONAL_ID_SYSTEM, identifier_tokens
from mpi.model import Model
from mpi.review import waterfall
from mpi.tables import SourceRecord
from priorscan.db import session_factory
from priorscan.trusts import NHS_NUMBER_SYSTEM, default_trusts

NO_NHS = {"nhs_number": None, "nhs_verification": None}
#: The RTK record's own fields against the RXC record (the factory's): a given name misspelt, moved, no phone.
#: Alone this is a possible match, for review.
TYPO_AND_MOVED = {"given": "Elinor Grace", "postcode": "GU2 7XX", "address": "3 High Street, Woking", "phone": None}


@pytest.mark.parametrize(("a", "b", "level", "why"), [
    ("=rtk|9 rxc|123", "=rxc|123", 0, "one record's further identifier is the other's key: a cross-reference"),
    ("=febrl|R1 ssn|44", "=febrl|R2 ssn|44", 0, "one registry's number on both"),
    ("=rtk|9 rxc|123", "=rxc|124", 1, "RTK says the RXC number is 123, the RXC record is 124: conflicting"),
    ("=febrl|R1 ssn|44", "=febrl|R2 ssn|45", 1, "both carry one system, no value shared"),
    ("=rtk|9", "=rtk|10", -1, "two keys of one trust are two records to compare, not two conflicting numbers"),
    ("=rtk|9 ins|7", "=rxc|123", -1, "no system in common"),
    ("=rtk|9 ssn|44", "=rtk|10 ssn|44", 0, "shared beside two keys of one trust"),
])
def test_identifier_levels(a: str, b: str, level: int, why: str) -> None:
    assert identifier_level(a, b) == level, why
    assert identifier_level(b, a) == level, "symmetric"


def test_a_value_many_records_hold_is_none() -> None:
    """A placeholder or a group's number (learnt: ``shared_values``) is neither shared nor conflicting."""
    assert identifier_level("=rtk|9 ins|0", "=rtk|10 ins|0", frozenset({"ins|0"})) == -1
    assert identifier_level("=rtk|9 ins|0", "=rtk|10 ins|5", frozenset({"ins|0"})) == -1
    assert identifier_level("=rtk|9 rxc|1", "=rxc|1", frozenset({"ins|0"})) == 0


def test_only_evidence_systems_are_identifiers() -> None:
    """The NHS number has its own comparison and rules; priorscan's own ids and FHIR clients' ids are no evidence."""
    tokens = identifier_tokens((client_namespace("portal"), "p-1"), [
        (NHS_NUMBER_SYSTEM, NHS), (FHIR_ID_SYSTEM, "x1"), (REGIONAL_ID_SYSTEM, "RP123"), (TRUST_B, " b 1 ")])
    assert tokens == f"{TRUST_B}|B1"
    assert identifier_tokens((TRUST_A, "A1"), [(TRUST_A, "A1")]) == f"={TRUST_A}|A1", "the own key once"


@pytest.fixture
def store(engine: Engine) -> Iterator[Session]:
    """A session on a fresh store, once per backend (the root conftest's ``engine``)."""
    with session_factory(engine)() as session:
        yield session


def _patients(session: Session) -> dict[str, str | None]:
    return {local: rid for local, rid in session.execute(
        select(SourceRecord.local_id, SourceRecord.regional_patient_id))}


@pytest.mark.parametrize("rtk_first", [False, True], ids=["rxc-first", "rtk-first"])
def test_a_record_naming_another_records_key_is_linked_despite_a_typo(store: Session, rtk_first: bool) -> None:
    """An ADT from RTK whose PID-3 also lists the patient's RXC hospital number: one person, although the given
    name is misspelt and the address new (alone: a possible match, for review), whichever record arrives first
    (the RXC record's own key is its ``i:`` blocking key); the batch relink decides the same."""
    index = PatientIndex(store, default_trusts())
    rxc = demographics(TRUST_B, "B1", **NO_NHS)
    rtk = demographics(TRUST_A, "A1", **NO_NHS, **TYPO_AND_MOVED, other_identifiers=[(TRUST_B, "B1")])
    outcomes = [index.upsert(d, event="ADT^A28", actor="test") for d in ((rtk, rxc) if rtk_first else (rxc, rtk))]
    assert outcomes[1].link_state == "match", outcomes
    assert outcomes[0].regional_id == outcomes[1].regional_id
    weights = store.scalars(select(SourceRecord.link_weights).where(
        SourceRecord.id == outcomes[1].source_record_id)).one()
    steps = {step["comparison"]: step for step in (waterfall(weights) or {}).get("steps", [])}
    assert steps["identifier"]["level"] == "shared" and steps["identifier"]["weight"] > 5, "in the waterfall"
    store.commit()
    relink(store)
    store.commit()
    patients = _patients(store)
    assert patients["A1"] == patients["B1"], "the batch relink links them too"


@pytest.mark.parametrize(("further", "why"), [
    ([], "the typo and the move alone"),
    ([(TRUST_B, "B9")], "RTK lists another RXC number: conflicting, weighs against"),
    ([("urn:oid:insurer", "77")], "a number of a system the RXC record does not carry: no evidence"),
])
def test_without_a_shared_identifier_the_pair_goes_to_review(store: Session, further: list[tuple[str, str]],
                                                             why: str) -> None:
    index = PatientIndex(store, default_trusts())
    index.upsert(demographics(TRUST_B, "B1", **NO_NHS), event="ADT^A28", actor="test")
    outcome = index.upsert(demographics(TRUST_A, "A1", **NO_NHS, **TYPO_AND_MOVED, other_identifiers=further),
                           event="ADT^A28", actor="test")
    assert outcome.link_state == "possible-match", why


def test_an_update_keeps_the_identifiers_of_earlier_messages(store: Session) -> None:
    """A further identifier sent once stays evidence when a later message of the record omits it."""
    index = PatientIndex(store, default_trusts())
    index.upsert(demographics(TRUST_A, "A1", **NO_NHS, family="Zed", other_identifiers=[(TRUST_B, "B1")]),
                 event="ADT^A28", actor="test")
    index.upsert(demographics(TRUST_A, "A1", **NO_NHS, **TYPO_AND_MOVED), event="ADT^A08", actor="test")
    joined = index.upsert(demographics(TRUST_B, "B1", **NO_NHS), event="ADT^A28", actor="test")
    assert joined.link_state == "match"


def test_two_verified_nhs_numbers_are_never_linked_whatever_identifier_they_share(store: Session) -> None:
    """DESIGN §2: two different valid verified NHS numbers are never linked automatically, even when one record
    lists the other's hospital number and every field agrees: not linked, not proposed (rule 1), on both paths."""
    index = PatientIndex(store, default_trusts())
    first = index.upsert(demographics(TRUST_B, "B1", nhs_number=NHS), event="ADT^A28", actor="test")
    second = index.upsert(demographics(TRUST_A, "A1", nhs_number=NHS_OTHER,
                                       other_identifiers=[(TRUST_B, "B1"), ("urn:oid:insurer", "77")]),
                          event="ADT^A28", actor="test")
    assert first.regional_id != second.regional_id and second.review_item_id is None
    store.commit()
    relink(store)
    store.commit()
    patients = _patients(store)
    assert patients["A1"] != patients["B1"]


@pytest.mark.parametrize(("number", "state"), [("5304218", "match"), (None, "possible-match")])
def test_a_febrl_style_second_identifier_links_a_corrupted_duplicate(store: Session, number: str | None,
                                                                     state: str) -> None:
    """FEBRL's ``soc_sec_id`` sent as a second FHIR identifier: a duplicate with its given name misspelt and another
    address is one person with its original, where without the number it goes to review."""
    index = PatientIndex(store, default_trusts())
    system, febrl = "urn:febrl:soc-sec-id", "urn:febrl:rec-id"
    further = [(system, number)] if number else []
    index.upsert(demographics(febrl, "rec-1-org", **NO_NHS, other_identifiers=further), event="fhir", actor="test")
    duplicate = index.upsert(demographics(febrl, "rec-1-dup-0", **NO_NHS, **TYPO_AND_MOVED, other_identifiers=further),
                             event="fhir", actor="test")
    assert duplicate.link_state == state


def _cross_referenced_population(placeholder_holders: int) -> tuple[list[Demographics], list[int]]:
    """A synthetic region's records in which each person's later record at another trust lists the key of their
    first record; the first ``placeholder_holders`` records of people sharing a family name and a home with another
    person (relatives) also carry one insurer's group number. Returns the records and the holders' rows."""
    from bench.mpi_population import make_population

    population = make_population(1500, seed=3)
    person = {(namespace, local_id): p for p, namespace, local_id in population.truth}
    people_at: dict[tuple[str | None, str | None], set[str]] = defaultdict(set)
    for d in population.records:
        people_at[(d.family, d.postcode)].add(person[(d.namespace, d.local_id)])
    first_key: dict[str, tuple[str, str]] = {}
    records, holders = [], []
    for row, d in enumerate(population.records):
        p = person[(d.namespace, d.local_id)]
        further = [first_key[p]] if p in first_key and first_key[p][0] != d.namespace else []
        first_key.setdefault(p, (d.namespace, d.local_id))
        if len(people_at[(d.family, d.postcode)]) > 1 and len(holders) < placeholder_holders:
            further.append(("urn:oid:insurer", "GROUP-1"))
            holders.append(row)
        records.append(replace(d, other_identifiers=further))
    return records, holders


def test_a_placeholder_many_records_hold_links_no_one() -> None:
    """An insurer's group number keyed on 120 records of relatives (a family's or a group's number, a placeholder):
    training learns that more records hold it than one person does and compares it as none, so the links and the
    review queue are those of the same records without it (H-ID-61, as H-ID-33 for phones); the cross-references
    keep their weight."""
    from mpi.blocking import key_table, pairs_from_keys
    from mpi.frames import frame_from_table, table_from_stored
    from mpi.linkage import link_frame
    from mpi.normalise import to_match_record
    from mpi.scoring import comparison_levels
    from mpi.training import train

    def linked(records: list[Demographics]) -> tuple[list[int], set[tuple[int, int]], Model, Frame]:
        match = [to_match_record(i, d.__dict__) for i, d in enumerate(records)]
        table = table_from_stored(list(range(len(match))), [m.as_stored() for m in match])
        frame = frame_from_table(table)
        left, right = pairs_from_keys(key_table(table))
        model = train(frame, (left, right))
        linkage = link_frame(frame, model, left, right)
        first: dict[int, int] = {}
        canonical = [first.setdefault(label, len(first)) for label in linkage.labels.tolist()]
        return (canonical, set(zip(linkage.review_left.tolist(), linkage.review_right.tolist(), strict=True)),
                model, frame)

    plain_labels, plain_review, _, _ = linked(_cross_referenced_population(0)[0])
    keyed, holders = _cross_referenced_population(120)
    labels, review, model, frame = linked(keyed)
    index = model.index_of("identifier")
    assert index is not None
    comparison = model.comparisons[index]
    assert isinstance(comparison, IdentifierComparison) and comparison.shared_values == ["urn:oid:insurer|GROUP-1"]
    assert model.m[index][0] / model.u[index][0] > 100, "the cross-references are strong evidence"
    assert labels == plain_labels and review == plain_review
    pairs = np.asarray(holders[:60]), np.asarray(holders[60:120])
    naive = model.evolve(comparisons=[replace(comparison, shared_values=[]) if c is comparison else c
                                      for c in model.comparisons])
    learnt = comparison_levels(model, frame.take(pairs[0]), frame.take(pairs[1]))[:, index]
    unlearnt = comparison_levels(naive, frame.take(pairs[0]), frame.take(pairs[1]))[:, index]
    assert (unlearnt == 0).all() and (learnt != 0).all(), "the control is what makes the number none"


def test_coded_and_uncoded_frames_give_the_same_identifier_levels() -> None:
    """Batch (coded frame, levels once per distinct pair of values) and real time (uncoded) agree, over every pair
    of records with and without further identifiers."""
    from mpi.frames import frame_from_records, frame_of_few
    from mpi.normalise import to_match_record

    further = [[], [(TRUST_B, "B1")], [(TRUST_B, "B2")], [("urn:ssn", "44")], [("urn:ssn", "45"), (TRUST_B, "B1")],
               [("urn:ssn", "0")]]
    records = [to_match_record(n, {"namespace": namespace, "local_id": f"{n}", "other_identifiers": ids})
               for n, (namespace, ids) in enumerate((namespace, ids) for namespace in (TRUST_A, TRUST_B, "urn:x")
                                                    for ids in further for _ in range(3))]
    records.append(to_match_record(len(records), {"namespace": TRUST_B, "local_id": "B1"}))
    n = len(records)
    left, right = np.triu_indices(n, k=1)
    comparison = IdentifierComparison(shared_values=["urn:ssn|0"])
    coded = frame_from_records(records)
    few = frame_of_few(records)
    batch = comparison.levels(coded.take(left), coded.take(right))
    real_time = comparison.levels(few.take(left), few.take(right))
    assert len(left) > 512 and (batch == real_time).all()
    assert {0, 1, -1} == set(batch.tolist())
