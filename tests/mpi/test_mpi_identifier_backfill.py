"""Records stored before further identifiers were evidence (H-ID-61): migration 0019 puts their identifiers into
their match fields and their ``i:`` blocking keys into the index, so the next relink and link-on-write weigh the
cross-references they carry; an ADT A47 keeps a record's identifiers current."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from mpi_factories import TRUST_A, TRUST_B, TRUST_C, demographics
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.orm import Session

from mpi import PatientIndex, RecordKey
from mpi.batch import relink
from mpi.identifier_systems import identifier_tokens
from mpi.tables import BlockingKey, BlockingKeyScheme, SourceIdentifier, SourceRecord
from priorscan.cli import main
from priorscan.db import session_factory
from priorscan.trusts import default_trusts

NO_NHS = {"nhs_number": None, "nhs_verification": None}
#: The RTK record's own fields against the RXC record (the factory's): alone a possible match, for review.
TYPO_AND_MOVED = {"given": "Elinor Grace", "postcode": "GU2 7XX", "address": "3 High Street, Woking", "phone": None}
MIGRATION = Path(__file__).parents[2] / "priorscan/migrations/versions/0019_match_fields_identifiers.py"


@pytest.fixture
def store(engine: Engine) -> Iterator[Session]:
    """A session on a fresh store, once per backend (the root conftest's ``engine``)."""
    with session_factory(engine)() as session:
        yield session


def _as_before_identifiers(session: Session) -> None:
    """Make the store as the code before identifiers were evidence left it: no ``identifiers`` in any record's
    match fields, no ``i:`` blocking keys (the further identifiers stay, as that code stored them too)."""
    for record_id, fields in session.execute(select(SourceRecord.id, SourceRecord.match_fields)).all():
        session.execute(update(SourceRecord).where(SourceRecord.id == record_id).values(
            match_fields={k: v for k, v in fields.items() if k != "identifiers"}))
    session.execute(delete(BlockingKey).where(BlockingKey.key.like("i:%")))
    session.commit()


def _migrate(session: Session) -> None:
    """Bring the store from 0018 to the head through ``priorscan migrate``."""
    session.execute(text("UPDATE alembic_version SET version_num = '0018'"))
    session.commit()
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["--db", url, "migrate"]) == 0
    session.expire_all()


def _patients(session: Session) -> dict[str, str | None]:
    return {local: rid for local, rid in session.execute(
        select(SourceRecord.local_id, SourceRecord.regional_patient_id))}


def _id_of(session: Session, local_id: str) -> int:
    return session.scalars(select(SourceRecord.id).where(SourceRecord.local_id == local_id)).one()


def test_after_the_migration_a_relink_links_a_cross_reference_stored_before_it(store: Session) -> None:
    """An RTK record listing the patient's RXC hospital number, stored before identifiers were evidence: a relink
    leaves the two apart (the typo and the move alone); after 0019 the relink links them. The relink before the
    migration stored the current key scheme, so the one after reads the new identifiers without a key refresh."""
    index = PatientIndex(store, default_trusts())
    index.upsert(demographics(TRUST_A, "A1", **NO_NHS, **TYPO_AND_MOVED, other_identifiers=[(TRUST_B, "B1")]),
                 event="ADT^A28", actor="test")
    store.commit()
    _as_before_identifiers(store)
    index.upsert(demographics(TRUST_B, "B1", **NO_NHS), event="ADT^A28", actor="test")
    store.commit()
    _as_before_identifiers(store)
    relink(store)
    store.commit()
    before = _patients(store)
    assert before["A1"] != before["B1"], "not evidence before the migration"
    assert store.get(BlockingKeyScheme, 1) is not None
    _migrate(store)
    relink(store)
    store.commit()
    after = _patients(store)
    assert after["A1"] == after["B1"]


def test_after_the_migration_link_on_write_finds_and_weighs_a_cross_reference_stored_before_it(
        store: Session) -> None:
    """The migrated record's ``i:`` keys are stored, so the RXC record arriving later meets it by its own key and
    is linked to it (without the migration: a possible match, for review)."""
    index = PatientIndex(store, default_trusts())
    index.upsert(demographics(TRUST_A, "A1", **NO_NHS, **TYPO_AND_MOVED, other_identifiers=[(TRUST_B, "B1")]),
                 event="ADT^A28", actor="test")
    store.commit()
    _as_before_identifiers(store)
    _migrate(store)
    rtk = _id_of(store, "A1")
    assert f"i:{TRUST_B}|B1" in set(store.scalars(select(BlockingKey.key).where(BlockingKey.source_record_id == rtk)))
    outcome = PatientIndex(store, default_trusts()).upsert(demographics(TRUST_B, "B1", **NO_NHS), event="ADT^A28",
                                                           actor="test")
    assert outcome.link_state == "match"


def _load_migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("migration_0019", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_upgrade(engine: Engine, module: ModuleType) -> None:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    with engine.begin() as connection, Operations.context(MigrationContext.configure(connection)):
        module.upgrade()


def _snapshot(session: Session) -> tuple[dict[int, Any], set[tuple[int, str]]]:
    session.expire_all()
    return ({rid: fields for rid, fields in session.execute(select(SourceRecord.id, SourceRecord.match_fields))},
            set(session.execute(select(BlockingKey.source_record_id, BlockingKey.key)).tuples()))


def test_the_migration_pages_by_id_leaves_records_holding_identifiers_and_runs_again_unchanged(
        store: Session, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """One record a page: each record lacking identifiers gets exactly what :func:`identifier_tokens` makes of its
    key and current further identifiers (a replaced one left out; a system that is no evidence left out); a record
    holding identifiers (written since) is left as it is, even when they differ; a second run changes nothing."""
    index = PatientIndex(store, default_trusts())
    for local_id, further in (("A1", [(TRUST_B, "B1"), ("urn:oid:insurer", " 7 7 ")]), ("A2", [(TRUST_B, "B2")]),
                              ("A3", [])):
        index.upsert(demographics(TRUST_A, local_id, **NO_NHS, family=f"Fam{local_id}", other_identifiers=further),
                     event="ADT^A28", actor="test")
    store.commit()
    _as_before_identifiers(store)
    a2, a3 = _id_of(store, "A2"), _id_of(store, "A3")
    store.execute(update(SourceIdentifier).where(SourceIdentifier.source_record_id == a2).values(use="old"))
    held = {**store.scalars(select(SourceRecord.match_fields).where(SourceRecord.id == a3)).one(),
            "identifiers": "=kept|AS-WRITTEN"}
    store.execute(update(SourceRecord).where(SourceRecord.id == a3).values(match_fields=held))
    store.commit()
    module = _load_migration()
    monkeypatch.setattr(module, "PAGE", 1)
    _run_upgrade(engine, module)
    fields, keys = _snapshot(store)
    expected = {
        _id_of(store, "A1"): identifier_tokens((TRUST_A, "A1"), [(TRUST_B, "B1"), ("urn:oid:insurer", " 7 7 ")]),
        a2: identifier_tokens((TRUST_A, "A2"), []),
        a3: "=kept|AS-WRITTEN",
    }
    assert {rid: f.get("identifiers") for rid, f in fields.items()} == expected
    assert set(str(expected[_id_of(store, "A1")]).split()) == {f"={TRUST_A}|A1", f"{TRUST_B}|B1",
                                                               "urn:oid:insurer|77"}
    assert {(rid, k) for rid, k in keys if k.startswith("i:")} == {
        (rid, f"i:{token.removeprefix('=')}"[:80]) for rid, tokens in expected.items() if rid != a3
        for token in (tokens or "").split()}
    _run_upgrade(engine, module)
    assert _snapshot(store) == (fields, keys)
    assert json.dumps(fields[a3], sort_keys=True) == json.dumps(held, sort_keys=True)


def _identifiers_and_keys(session: Session, record_id: int) -> tuple[str | None, set[str]]:
    session.expire_all()
    fields = session.scalars(select(SourceRecord.match_fields).where(SourceRecord.id == record_id)).one()
    keys = set(session.scalars(select(BlockingKey.key).where(BlockingKey.source_record_id == record_id,
                                                             BlockingKey.key.like("i:%"))))
    return fields.get("identifiers"), keys


def test_a_change_of_identifier_makes_the_new_key_the_records_identifier_and_the_old_one_none(
        store: Session) -> None:
    """ADT A47 (A1 is now A9, A9 listed already among its further identifiers): the match fields and ``i:`` keys
    name the new key as the record's own and no longer the replaced one (kept with use ``old``: never matched
    again), as link-on-write would write them for the record's next message; a record from another trust naming
    the replaced key is weighed by nobody, one naming the new key is linked to it despite a typo."""
    index = PatientIndex(store, default_trusts())
    index.upsert(demographics(TRUST_A, "A1", **NO_NHS, other_identifiers=[(TRUST_B, "B1"), (TRUST_A, "A9")]),
                 event="ADT^A28", actor="test")
    record_id = _id_of(store, "A1")
    index.change_identifier(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_A, "A9"), actor="test")
    store.commit()
    tokens, keys = _identifiers_and_keys(store, record_id)
    assert tokens == identifier_tokens((TRUST_A, "A9"), [(TRUST_B, "B1")]) == f"={TRUST_A}|A9 {TRUST_B}|B1"
    assert keys == {f"i:{TRUST_A}|A9", f"i:{TRUST_B}|B1"}
    stale = index.upsert(demographics(TRUST_C, "C1", **NO_NHS, **TYPO_AND_MOVED, other_identifiers=[(TRUST_A, "A1")]),
                         event="ADT^A28", actor="test")
    assert stale.link_state == "possible-match", "the replaced key is no evidence: the typo and the move alone"
    current = index.upsert(demographics(TRUST_C, "C2", **NO_NHS, **TYPO_AND_MOVED,
                                        other_identifiers=[(TRUST_A, "A9")]), event="ADT^A28", actor="test")
    assert current.link_state == "match" and current.regional_id == index.upsert(
        demographics(TRUST_A, "A9", **NO_NHS), event="ADT^A08", actor="test").regional_id


def test_a_merge_leaves_the_survivors_identifiers_its_own(store: Session) -> None:
    """ADT A40: the retired record is no one's candidate (its keys dropped, inactive: a relink reads active records
    only); the survivor's identifiers stay those of its own key and further identifiers, as its next message would
    write them (the retired key is resolved to the survivor by ``merged_into``, not matched)."""
    index = PatientIndex(store, default_trusts())
    index.upsert(demographics(TRUST_A, "A1", **NO_NHS, other_identifiers=[(TRUST_B, "B1")]), event="ADT^A28",
                 actor="test")
    index.upsert(demographics(TRUST_A, "A2", **NO_NHS, family="Other", other_identifiers=[(TRUST_B, "B2")]),
                 event="ADT^A28", actor="test")
    survivor, retired = _id_of(store, "A1"), _id_of(store, "A2")
    index.merge(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_A, "A2"), actor="test")
    store.commit()
    assert _identifiers_and_keys(store, survivor) == (
        identifier_tokens((TRUST_A, "A1"), [(TRUST_B, "B1")]), {f"i:{TRUST_A}|A1", f"i:{TRUST_B}|B1"})
    assert _identifiers_and_keys(store, retired)[1] == set()
