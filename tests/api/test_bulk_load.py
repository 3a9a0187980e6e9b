"""``priorscan backfill``: the bulk load gives the store the per-message path gives, links as the batch relink does,
and resumes after a crash without losing or doubling anything (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fixed_dates import AS_OF
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from api.context import AppContext
from api.feeds.bulk_load import backfill_paths
from api.feeds.ingest import ingest_paths
from api.feeds.ingest_formats import hl7_messages
from imaging import Study, StudyGroup
from imaging.tables import IrradiationEvent
from priorscan.settings import Settings
from priorscan.trusts import default_trusts
from regionsynth import RegionRequest, generate_region

Cli = Callable[..., tuple[int, str, str]]
REGISTRATIONS = ("ADT^A01", "ADT^A04", "ADT^A05", "ADT^A28")
#: What a load leaves in the store, counted (no table may gain or lose a row on a resumed load).
COUNTS = {
    "source records": "SELECT count(*) FROM source_record",
    "record versions": "SELECT count(*) FROM source_record_version",
    "further identifiers": "SELECT count(*) FROM source_identifier",
    "blocking keys": "SELECT count(*) FROM blocking_key",
    "HL7 messages logged": "SELECT count(*) FROM hl7_message_log",
    "studies": "SELECT count(*) FROM study",
    "irradiation events": "SELECT count(*) FROM irradiation_event",
    "study instances": "SELECT count(*) FROM study_instance",
    "study reports": "SELECT count(*) FROM study_report",
    "audit events of studies": "SELECT count(*) FROM audit_event WHERE entity LIKE 'ImagingStudy/%'",
    "orders": "SELECT count(*) FROM imaging_order",
    "dead letters": "SELECT count(*) FROM dead_letter",
    "records without a patient": "SELECT count(*) FROM source_record WHERE regional_patient_id IS NULL",
}


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic region (HL7 ADT/ORU/orders, FHIR, DICOM with RDSR) with its truth."""
    out = tmp_path_factory.mktemp("bulk") / "region"
    generate_region(RegionRequest(out, people=40, seed=4, as_of=AS_OF), default_trusts(), workers=0)
    return out


def _inputs(region: Path) -> list[Path]:
    return [region / "hl7", region / "fhir", region / "dicom"]


def _open(url: str) -> AppContext:
    return AppContext.open(Settings(db=url, env="test"))


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {name: int(connection.execute(text(sql)).scalar_one()) for name, sql in COUNTS.items()}
    finally:
        engine.dispose()


def _missing_indexes(url: str) -> set[str]:
    """The linkage tables' non-unique indexes (and, on PostgreSQL, foreign keys) that the schema defines and the
    store lacks."""
    from api.feeds.bulk_load import INDEXES_BUILT_AFTER
    from priorscan.bulk_indexes import missing, missing_foreign_keys

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return ({str(index.name) for index in missing(connection, INDEXES_BUILT_AFTER)}
                    | {str(key.name) for key in missing_foreign_keys(connection, INDEXES_BUILT_AFTER)})
    finally:
        engine.dispose()


def _clusters(url: str) -> set[frozenset[tuple[str, str]]]:
    """The regional patients as sets of source record keys (the partition, whatever the regional ids)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT namespace, local_id, regional_patient_id FROM source_record "
                                           "WHERE active")).all()
    finally:
        engine.dispose()
    groups: dict[str, set[tuple[str, str]]] = {}
    for namespace, local_id, regional_id in rows:
        groups.setdefault(regional_id, set()).add((namespace, local_id))
    return {frozenset(group) for group in groups.values()}


def _studies(url: str) -> set[tuple[str, str | None, str | None, str | None]]:
    """Each study with the source record it is attached to and its modality."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT s.study_instance_uid, r.namespace, r.local_id, s.modality FROM study s "
                "LEFT JOIN source_record r ON r.id = s.source_record_id")).all()
    finally:
        engine.dispose()
    return {tuple(row) for row in rows}  # type: ignore[misc]


def _value(value: object) -> object:
    """A stored value as both backends and both paths can be compared: JSON text parsed, floats to 9 places."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def _imaging(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every study, irradiation event, instance, report and study audit event, with what makes it (ids and
    timestamps of the store left out; the study's patient as the key of its source record), sorted."""
    study_columns = [c.name for c in Study.__table__.columns
                     if c.name not in ("id", "source_record_id", "created_at", "updated_at")]
    queries = {
        "studies": "SELECT r.namespace, r.local_id, " + ", ".join(f"s.{c}" for c in study_columns)
                   + " FROM study s LEFT JOIN source_record r ON r.id = s.source_record_id",
        "irradiation events": "SELECT s.study_instance_uid, " + ", ".join(
            f"e.{c.name}" for c in IrradiationEvent.__table__.columns if c.name not in ("id", "study_id"))
            + " FROM irradiation_event e JOIN study s ON s.id = e.study_id",
        "instances": "SELECT s.study_instance_uid, i.sop_instance_uid, i.series_instance_uid, i.sop_class_uid, "
                     "i.modality, i.dose FROM study_instance i JOIN study s ON s.id = i.study_id",
        "reports": "SELECT s.study_instance_uid, p.source, p.report_id, p.status, p.conclusion, p.text, p.issued_at "
                   "FROM study_report p JOIN study s ON s.id = p.study_id",
        "study audit events": "SELECT action, event_type, subtype, entity, detail FROM audit_event "
                              "WHERE entity LIKE 'ImagingStudy/%'",
    }
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = {name: [tuple(_value(v) for v in row) for row in connection.execute(text(sql))]
                     for name, sql in queries.items()}
    finally:
        engine.dispose()
    return {name: sorted(rows, key=repr) for name, rows in found.items()}


def _registrations(region: Path, out: Path) -> Path:
    """The region's ADT registrations alone, in one file (no update or merge: linking alone decides)."""
    messages = [m.text for f in sorted(region.glob("hl7/*/adt.hl7")) for m in hl7_messages(f) if m.event in
                REGISTRATIONS]
    out.write_text("\r".join(messages) + "\r")
    return out


def _load_registrations(region: Path, url: str, tmp_path: Path) -> Any:
    """The region's registrations loaded into the store at ``url`` (no training); the load's report."""
    context = _open(url)
    try:
        return backfill_paths(context, [_registrations(region, tmp_path / "registrations.hl7")], workers=0,
                              train=False)
    finally:
        context.engine.dispose()


def _second_store(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A second empty store of the same backend as ``store_url`` (as the suite's ``store_url`` makes one)."""
    if store_url.startswith("sqlite"):
        path = tmp_path / f"second_{uuid.uuid4().hex[:6]}.db"
        path.write_bytes(request.getfixturevalue("sqlite_template"))
        return f"sqlite:///{path}"
    admin = request.getfixturevalue("pg_admin")
    template = request.getfixturevalue("pg_template")
    name = f"priorscan_t_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    request.addfinalizer(drop)
    return store_url.rsplit("/", 1)[0] + "/" + name


_REFERENCE: dict[str, tuple[dict[str, int], set[frozenset[tuple[str, str]]]]] = {}


def _uninterrupted(region: Path, store_url: str, tmp_path: Path,
                   request: pytest.FixtureRequest) -> tuple[dict[str, int], set[frozenset[tuple[str, str]]]]:
    """What one uninterrupted load of the region leaves (counts and clusters), once per backend."""
    backend = store_url.split(":", 1)[0]
    if backend not in _REFERENCE:
        url = _second_store(store_url, tmp_path, request)
        context = _open(url)
        try:
            backfill_paths(context, _inputs(region), workers=0, batch=20)
        finally:
            context.engine.dispose()
        _REFERENCE[backend] = (_counts(url), _clusters(url))
    return _REFERENCE[backend]


def test_backfill_loads_what_ingest_loads(region: Path, store_url: str, tmp_path: Path,
                                          request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same items accepted and refused, same rows in every table; the per-message path is the reference."""
    written: list[int] = []  # reports of new studies the load wrote in bulk (the ORU path's groups)
    write = StudyGroup.write

    def counted(group: StudyGroup, *args: object) -> None:
        written.append(len(group.reports))
        write(group, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(StudyGroup, "write", counted)
    bulk, live = _open(store_url), _open(_second_store(store_url, tmp_path, request))
    try:
        bulk_report = backfill_paths(bulk, _inputs(region), workers=0, batch=50)
        live_report = ingest_paths(live, _inputs(region))
    finally:
        bulk.engine.dispose()
        live.engine.dispose()
    assert bulk_report.written > 0 and bulk_report.set_aside > 0  # both paths of the identity stage were taken
    assert bulk_report.objects_in_bulk > 0  # DICOM objects written in bulk, not only through the per-message path
    assert sum(written) > 0  # and results' reports with their new studies
    assert bulk_report.accepted == live_report.accepted
    assert bulk_report.rejected == live_report.rejected
    bulk_counts, live_counts = _counts(store_url), _counts(live.settings.db)
    assert bulk_counts == live_counts
    assert bulk_counts["records without a patient"] == 0
    assert _studies(store_url) == _studies(live.settings.db)  # each study on the record live feeds put it on
    bulk_imaging, live_imaging = _imaging(store_url), _imaging(live.settings.db)
    assert all(bulk_imaging.values())  # the region has studies, events, instances, reports and their audit
    for table, rows in live_imaging.items():  # table by table, so that a difference names its table
        assert bulk_imaging[table] == rows, (table, [r for r in bulk_imaging[table] if r not in rows][:3],
                                             [r for r in rows if r not in bulk_imaging[table]][:3])


def test_bulk_relink_gives_the_clusters_of_link_on_write_then_relink(region: Path, store_url: str, tmp_path: Path,
                                                                      request: pytest.FixtureRequest) -> None:
    """The same registrations, with the model in use: the bulk load's clusters are exactly those of link-on-write
    followed by ``priorscan link --no-train`` (one scorer, one set of decisions). Link-on-write alone may leave apart
    records that a later-arriving record bridges (H-ID-40); the bulk load never splits what it joined."""
    from mpi.batch import relink

    registrations = _registrations(region, tmp_path / "registrations.hl7")
    bulk, live = _open(store_url), _open(_second_store(store_url, tmp_path, request))
    try:
        assert backfill_paths(bulk, [registrations], workers=0, train=False).set_aside == 0
        assert ingest_paths(live, [registrations]).rejected_total == 0
        link_on_write = _clusters(live.settings.db)
        with live.sessions() as session:
            relink(session, train=False)
            session.commit()
    finally:
        bulk.engine.dispose()
        live.engine.dispose()
    bulk_clusters = _clusters(store_url)
    assert bulk_clusters == _clusters(live.settings.db)
    assert all(any(group <= joined for joined in bulk_clusters) for group in link_on_write)


def test_bulk_records_match_link_on_write_records(region: Path, sqlite_url: str, tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    """Each record's columns, match fields and blocking keys are those link-on-write writes."""
    registrations = _registrations(region, tmp_path / "registrations.hl7")
    live_url = _second_store(sqlite_url, tmp_path, request)
    bulk, live = _open(sqlite_url), _open(live_url)
    try:
        backfill_paths(bulk, [registrations], workers=0, train=False)
        ingest_paths(live, [registrations])
    finally:
        bulk.engine.dispose()
        live.engine.dispose()
    columns = ("namespace, local_id, trust_ods, nhs_number, nhs_number_valid, nhs_verification, family, given, "
               "birth_date, birth_date_text, sex, postcode, address, phone, match_fields, provisional, version")
    keys = ("SELECT r.namespace, r.local_id, k.key FROM blocking_key k JOIN source_record r "
            "ON r.id = k.source_record_id ORDER BY 1, 2, 3")
    found = []
    for url in (sqlite_url, live_url):
        engine = create_engine(url)
        with engine.connect() as connection:
            found.append((connection.execute(text(f"SELECT {columns} FROM source_record ORDER BY 1, 2")).all(),
                          connection.execute(text(keys)).all()))
        engine.dispose()
    assert found[0] == found[1]


@pytest.mark.parametrize("stage", [
    "identity",  # killed between two batches of new records
    "relink",  # killed once the relink committed (PostgreSQL: the indexes beside it built, or still building)
    "deferred",  # killed among the items set aside for the per-message path
    "imaging-dicom",  # killed between two groups of DICOM objects
    "imaging",  # killed between two groups of HL7 results (ORU), their new studies written in bulk
])
def test_a_load_killed_mid_way_resumes_without_losing_or_doubling(region: Path, store_url: str, tmp_path: Path,
                                                                  request: pytest.FixtureRequest, stage: str) -> None:
    """SIGKILL right after the stage's first commit (the load's own fault switch, so the moment does not depend on
    the host's speed), then the same command again: the store holds exactly what one uninterrupted load gives."""
    from api.feeds.bulk_load import FAULT_ENV

    argv = [sys.executable, "-m", "priorscan.cli", "--db", store_url, "backfill", *map(str, _inputs(region)),
            "--no-progress", "--workers", "0", "--batch", "20"]
    env = {**os.environ, "PRIORSCAN_LOG_LEVEL": "WARNING", "PRIORSCAN_ENV": "test"}
    crashed = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, check=False,
                             env={**env, FAULT_ENV: f"{stage}:1"})
    assert crashed.returncode == -signal.SIGKILL, f"the load was not killed in {stage}"
    engine = create_engine(store_url)
    try:
        with engine.connect() as connection:
            unfinished = connection.execute(text(
                "SELECT count(*) FROM bulk_cursor WHERE NOT finished OR stage = :stage"), {"stage": stage}).scalar()
    finally:
        engine.dispose()
    assert unfinished, "the killed load left no cursor to resume from"
    resumed = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert resumed.returncode in (0, 1), resumed.stderr[-2000:]
    assert "resumed" in resumed.stdout

    counts, clusters = _uninterrupted(region, store_url, tmp_path, request)
    assert _counts(store_url) == counts
    assert _clusters(store_url) == clusters
    assert not _missing_indexes(store_url)  # the indexes the killed load had set aside are built again


def test_a_load_into_an_empty_store_builds_its_indexes_after_the_relink_and_a_later_one_keeps_them(
        region: Path, store_url: str, tmp_path: Path) -> None:
    """An empty store: the linkage tables' non-unique indexes are set aside for the identity stage and the relink,
    then built in one go, all of them. A store that holds records (live feeds may be reading it) keeps its indexes
    throughout a later load: nothing is built again because nothing was dropped."""
    from api.feeds.bulk_load import INDEXES_BUILT_AFTER
    from priorscan.bulk_indexes import secondary_indexes

    registrations = _registrations(region, tmp_path / "registrations.hl7")
    first, rest = tmp_path / "first.hl7", tmp_path / "rest.hl7"
    messages = [m.text for m in hl7_messages(registrations)]
    half = len(messages) // 2
    first.write_text("\r".join(messages[:half]) + "\r")
    rest.write_text("\r".join(messages[half:]) + "\r")
    context = _open(store_url)
    try:
        report = backfill_paths(context, [first], workers=0, train=False)
        assert report.written > 0
        assert report.indexes_built == len(secondary_indexes(INDEXES_BUILT_AFTER)) > 0
        assert not _missing_indexes(store_url)
        later = backfill_paths(context, [rest], workers=0, train=False)
        assert later.written > 0
        assert later.indexes_built == 0
        assert not _missing_indexes(store_url)
    finally:
        context.engine.dispose()


def test_a_load_into_an_empty_postgresql_store_checks_its_foreign_keys_once_after_the_relink(
        region: Path, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL checks a foreign key row by row (a look-up and a lock of the parent for every blocking key,
    version and identifier COPY'd, and every record the relink links): a load into an empty store sets the linkage
    tables' foreign keys aside for the identity stage and the relink, and adds every one of them back, validated,
    before the per-message path runs. Those of the tables the relink does not write come back before the relink,
    ``NOT VALID`` (validated beside it); none of the tables it writes."""
    import mpi
    from api.feeds.bulk_load import BUILT_BESIDE_RELINK, INDEXES_BUILT_AFTER
    from priorscan.bulk_indexes import foreign_keys

    during: list[set[str]] = []
    relink = mpi.relink

    def watched(session: Any, **options: Any) -> Any:
        inspector = inspect(session.connection())
        during.append({str(key["name"]) for table in INDEXES_BUILT_AFTER
                       for key in inspector.get_foreign_keys(table.name)})
        return relink(session, **options)

    monkeypatch.setattr(mpi, "relink", watched)
    context = _open(pg_url)
    try:
        report = backfill_paths(context, [_registrations(region, tmp_path / "registrations.hl7")], workers=0,
                                train=False)
        with context.engine.connect() as connection:
            expected = len(foreign_keys(connection, INDEXES_BUILT_AFTER))
            beside = {str(key.name) for key in foreign_keys(connection, BUILT_BESIDE_RELINK)}
    finally:
        context.engine.dispose()
    assert report.written > 0
    assert beside and during == [beside]  # none while the rows went in; none of the relink's tables while it linked
    assert report.foreign_keys_added == expected >= 8
    assert not _missing_indexes(pg_url)  # all back, and every row had its parent


def test_a_load_into_an_empty_postgresql_store_builds_the_identity_tables_indexes_while_the_relink_runs(
        region: Path, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The indexes of the tables the relink does not write (blocking keys, versions, identifiers, audit rows) are
    built on a second connection while the relink runs, and committed before it ends: the relink, holding its lock on
    the records and patients, waits here for that connection's work, which must therefore need none of the relink's
    locks; the tables the relink writes still lack theirs until the indexes stage. Likewise their foreign keys (to
    the records), added ``NOT VALID`` before the relink: validated there while the relink holds its lock."""
    import mpi
    from api.feeds import bulk_load
    from api.feeds.bulk_load import BUILT_BESIDE_RELINK, INDEXES_BUILT_AFTER
    from priorscan.bulk_indexes import foreign_keys, missing_foreign_keys, secondary_indexes

    seen: dict[str, Any] = {}
    started: list[Any] = []
    relink = mpi.relink

    class Watched(bulk_load._BesideRelink):  # noqa: SLF001 - the builder the load starts, seen by the test
        def __init__(self, *args: Any) -> None:
            started.append(self)
            super().__init__(*args)

    def watched(session: Any, **options: Any) -> Any:
        result = relink(session, **options)  # its lock is held until the stage commits
        seen["finished beside"] = len(started) == 1 and started[0].join(timeout=120)
        seen["missing"], seen["missing keys"] = _missing(pg_url)
        return result

    def _missing(url: str) -> tuple[set[str], set[str]]:
        from priorscan.bulk_indexes import missing

        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                return ({str(index.name) for index in missing(connection, INDEXES_BUILT_AFTER)},
                        {str(key.name) for key in missing_foreign_keys(connection, INDEXES_BUILT_AFTER)})
        finally:
            engine.dispose()

    monkeypatch.setattr(mpi, "relink", watched)
    monkeypatch.setattr(bulk_load, "_BesideRelink", Watched)
    report = _load_registrations(region, pg_url, tmp_path)
    assert report.written > 0
    assert seen["finished beside"], "no index was built beside the relink, or its build waited for the relink"
    beside = {str(index.name) for index in secondary_indexes(BUILT_BESIDE_RELINK)}
    assert beside and "ix_blocking_key_key_record" in beside
    assert not beside & seen["missing"]  # built and committed while the relink held its lock
    assert seen["missing"] == {str(index.name) for index in secondary_indexes(INDEXES_BUILT_AFTER)} - beside
    assert report.indexes_built == len(secondary_indexes(INDEXES_BUILT_AFTER))  # counted once, wherever built
    engine = create_engine(pg_url)
    try:
        with engine.connect() as connection:
            every_key = {str(key.name) for key in foreign_keys(connection, INDEXES_BUILT_AFTER)}
            keys_beside = {str(key.name) for key in foreign_keys(connection, BUILT_BESIDE_RELINK)}
    finally:
        engine.dispose()
    assert "fk_blocking_key_source_record_id_source_record" in keys_beside
    assert seen["missing keys"] == every_key - keys_beside  # validated while the relink held its lock
    assert report.foreign_keys_added == len(every_key)  # counted once, wherever validated
    assert not _missing_indexes(pg_url)


def test_a_row_naming_no_record_stops_a_postgresql_load_whose_keys_are_validated_beside_the_relink(
        region: Path, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """H-ID-44 with the keys validated beside the relink: a blocking key naming no record, in the store before the
    keys are added ``NOT VALID``, fails their validation there and then the indexes stage's, so the load stops with
    an error and the key stays missing (not kept as if checked)."""
    from api.feeds import bulk_load

    class Dangling(bulk_load._BesideRelink):  # noqa: SLF001 - a row slipped in while the keys were set aside
        def __init__(self, context: Any) -> None:
            with context.engine.begin() as connection:
                connection.execute(text("INSERT INTO blocking_key (source_record_id, key) VALUES (424242, 'x')"))
            super().__init__(context)

    monkeypatch.setattr(bulk_load, "_BesideRelink", Dangling)
    with pytest.raises(IntegrityError):
        _load_registrations(region, pg_url, tmp_path)
    assert "fk_blocking_key_source_record_id_source_record" in _missing_indexes(pg_url)


def test_a_postgresql_load_refreshes_the_statistics_of_every_column_but_the_json_ones(
        region: Path, pg_url: str, tmp_path: Path) -> None:
    """The load's ANALYZE leaves out the JSON columns (no query selects by their content, and sorting a sample of
    them was three quarters of the ANALYZE of the records): the columns the program looks records up by have
    statistics after the load, the records' match fields and link explanations have none."""
    report = _load_registrations(region, pg_url, tmp_path)
    assert report.written > 0
    engine = create_engine(pg_url)
    try:
        with engine.connect() as connection:
            analysed = {(table, column) for table, column in connection.execute(text(
                "SELECT tablename, attname FROM pg_stats WHERE schemaname = 'public'")).all()}
            counted = connection.execute(text(
                "SELECT reltuples FROM pg_class WHERE relname = 'source_record'")).scalar_one()
            identifiers = connection.execute(text("SELECT count(*) FROM source_identifier")).scalar_one()
    finally:
        engine.dispose()
    for column in ("namespace", "local_id", "nhs_number", "birth_date", "regional_patient_id"):
        assert ("source_record", column) in analysed
    assert ("blocking_key", "key") in analysed
    assert ("source_identifier", "value") in analysed or not identifiers
    assert ("regional_patient", "id") in analysed
    assert ("source_record", "match_fields") not in analysed
    assert ("source_record", "link_weights") not in analysed
    assert counted == report.written  # the row count is the planner's


@pytest.fixture
def analyze_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every refresh of the planner's statistics a load makes (``ANALYZE``), in order; the refresh still runs."""
    import api.feeds.bulk_load as bulk_load

    calls: list[str] = []
    refresh = bulk_load.refresh_statistics

    def counted(session: object, *tables: Any) -> None:
        calls.append("ANALYZE")
        refresh(session, *tables)  # type: ignore[arg-type]

    monkeypatch.setattr(bulk_load, "refresh_statistics", counted)
    return calls


def test_the_planner_statistics_are_refreshed_once_after_the_last_stage_that_wrote(
        region: Path, store_url: str, tmp_path: Path, request: pytest.FixtureRequest,
        analyze_calls: list[str]) -> None:
    """A load into an empty store refreshes the statistics when its indexes are built; it does so again at its end
    only when a later stage (set-aside items, imaging, orders) wrote after that: an extract of registrations alone is
    analysed once, a whole region twice (and never zero times)."""
    context = _open(store_url)
    try:
        report = backfill_paths(context, [_registrations(region, tmp_path / "registrations.hl7")], workers=0,
                                train=False)
    finally:
        context.engine.dispose()
    assert report.written > 0 and report.indexes_built > 0 and report.set_aside == 0
    assert analyze_calls == ["ANALYZE"]
    analyze_calls.clear()
    url = _second_store(store_url, tmp_path, request)
    context = _open(url)
    try:
        whole = backfill_paths(context, _inputs(region), workers=0, train=False)
    finally:
        context.engine.dispose()
    assert whole.indexes_built > 0 and whole.objects_in_bulk + whole.objects_per_message > 0
    assert analyze_calls == ["ANALYZE", "ANALYZE"]


def test_a_load_without_identity_items_keeps_the_indexes_of_an_empty_store(
        region: Path, store_url: str, analyze_calls: list[str]) -> None:
    """DICOM alone into an empty store writes no source record in bulk (its provisional patients are linked on
    write): no index is dropped and built again, and the statistics are refreshed once, at its end."""
    context = _open(store_url)
    try:
        report = backfill_paths(context, [region / "dicom"], workers=0, train=False)
    finally:
        context.engine.dispose()
    assert report.objects_in_bulk > 0 and report.written == 0
    assert report.indexes_built == 0
    assert not _missing_indexes(store_url)
    assert analyze_calls == ["ANALYZE"]


def test_backfill_refuses_what_ingest_refuses_with_the_same_reasons(tmp_path: Path, sqlite_url: str,
                                                                    request: pytest.FixtureRequest) -> None:
    """Files that are not what they seem are reported as ingest reports them, and the load goes on."""
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "truncated.json").write_text('{"resourceType": "Patient", "name": [')
    (feed / "deep.json").write_text('{"resourceType": "Patient", "x": ' + "[" * 5000 + "]" * 5000 + "}")
    (feed / "not-a-resource.ndjson").write_text('{"resourceType": "Patient"}\n[1, 2]\n{"no": "type"}\n')
    (feed / "stray.hl7").write_text("MSH|^~\\&|PAS|RTK|X|Y|20250101||ADT^A04|S1|P|2.4\rPID|1\r")
    first, second = _open(sqlite_url), _open(_second_store(sqlite_url, tmp_path, request))
    try:
        bulk = backfill_paths(first, [feed], workers=0)
        live = ingest_paths(second, [feed])
    finally:
        first.engine.dispose()
        second.engine.dispose()
    assert bulk.rejected == live.rejected and bulk.accepted == live.accepted
    assert bulk.rejected_total >= 4


def test_backfill_reports_rejections_and_keeps_them_as_dead_letters(tmp_path: Path, sqlite_url: str,
                                                                     run_cli: Cli) -> None:
    from api_factories import ADT, hl7

    feed = tmp_path / "feed"
    feed.mkdir()
    good = hl7(ADT, "BULK-1")
    broken = good.replace("MSH|", "MSH|", 1).replace("ADT^A04", "ADT^Z99").replace("BULK-1", "BULK-2")
    (feed / "adt.hl7").write_text(good + "\n" + broken + "\n")
    (feed / "empty.hl7").write_text("")
    status, out, err = run_cli("--db", sqlite_url, "backfill", str(feed), "--no-progress", "--workers", "0")
    assert status == 1, out + err
    assert "1 item(s) accepted, 2 rejected" in out
    assert "ADT^A04" in out and "not supported" in out and "empty file" in out
    assert "1 new source record(s) written in bulk" in out and "1 identity item(s) through the per-message path" in out
    assert "\r" not in err and "it/s" not in err  # no progress bar when stderr is not a terminal
    engine = create_engine(sqlite_url)
    with engine.connect() as connection:
        reasons = connection.execute(text("SELECT error_code FROM dead_letter")).scalars().all()
    engine.dispose()
    assert reasons == ["hl7.unsupported-event"]
    # the same load again: nothing left to do, nothing doubled
    status, out, _ = run_cli("--db", sqlite_url, "backfill", str(feed), "--no-progress", "--workers", "0")
    assert "identity of" in out and "done before" in out
    assert "0 item(s) accepted" in out


def test_a_load_into_an_empty_store_records_its_key_scheme_so_the_relink_leaves_the_keys_alone(
        region: Path, store_url: str, tmp_path: Path, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every blocking key of a load into an empty store is made by the running code: the load records that scheme
    (H-ID-27) with its first cursor, so its relink does not read and rebuild every key; the keys it wrote are the
    keys of that scheme. A store whose recorded scheme is another still has every key refreshed by the relink."""
    import mpi.batch
    from mpi.blocking import KEY_SCHEME
    from mpi.tables import BlockingKeyScheme

    refreshes: list[int] = []
    refresh = mpi.batch.refresh_blocking_keys

    def counted(session: object, table: object) -> int:
        refreshes.append(1)
        return refresh(session, table)  # type: ignore[arg-type]

    monkeypatch.setattr(mpi.batch, "refresh_blocking_keys", counted)
    registrations = _registrations(region, tmp_path / "registrations.hl7")
    context = _open(store_url)
    try:
        report = backfill_paths(context, [registrations], workers=0, train=False)
        assert report.written > 0 and report.relink["records"] == report.written
        assert refreshes == []
        with context.sessions() as session:
            assert session.get(BlockingKeyScheme, 1).scheme == KEY_SCHEME  # type: ignore[union-attr]
            assert mpi.batch.key_changes(session.connection(), mpi.batch.load_table(session)).empty
    finally:
        context.engine.dispose()
    context = _open(_second_store(store_url, tmp_path, request))
    try:
        first, rest = tmp_path / "first.hl7", tmp_path / "rest.hl7"
        messages = [m.text for m in hl7_messages(registrations)]
        first.write_text("\r".join(messages[:3]) + "\r")
        rest.write_text("\r".join(messages[3:]) + "\r")
        backfill_paths(context, [first], workers=0, train=False)  # an empty store: its scheme is recorded
        with context.sessions.begin() as session:  # then the code's keys change (an upgrade)
            session.get(BlockingKeyScheme, 1).scheme = "an older scheme"  # type: ignore[union-attr]
        refreshes.clear()
        later = backfill_paths(context, [rest], workers=0, train=False)  # records held: the relink refreshes
        assert later.written > 0 and refreshes == [1]
        with context.sessions() as session:
            assert session.get(BlockingKeyScheme, 1).scheme == KEY_SCHEME  # type: ignore[union-attr]
    finally:
        context.engine.dispose()


def test_the_relink_of_a_load_into_an_empty_store_takes_the_records_as_written_and_reads_the_store_after_a_write(
        region: Path, store_url: str, tmp_path: Path, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A load into an empty store holds the records it wrote; its relink takes them as its table instead of reading
    the store, and that table is the one the store gives back (read in the same transaction, under the relink's
    lock). A live write between the identity stage and the relink (an update of a record the load wrote) makes
    the relink read the store: the update's name is what it links by (H-ID-40)."""
    import pandas as pd

    import api.feeds.bulk_load as bulk_load
    import mpi.batch
    from api.feeds.hl7_service import Incoming, process_messages
    from api.feeds.ingest import INGEST_AGENT, INGEST_CHANNEL

    compared: list[int] = []
    held_table = mpi.batch.WrittenUnlinked.table

    def compared_with_the_store(self: mpi.batch.WrittenUnlinked, session: object) -> object:
        table = held_table(self, session)  # type: ignore[arg-type]
        if table is not None:
            stored = mpi.batch.load_table(session)  # type: ignore[arg-type]
            for name in ("last_event_at", "updated_at"):  # the same instants; PostgreSQL names UTC "Etc/UTC"
                assert stored[name].dt.tz is not None and table[name].dt.tz is not None
                stored[name] = stored[name].dt.tz_convert("UTC")
            # columns in any order: JSONB gives the match fields back in an order of its own
            pd.testing.assert_frame_equal(table, stored, check_like=True)
            compared.append(len(table))
        return table

    monkeypatch.setattr(mpi.batch.WrittenUnlinked, "table", compared_with_the_store)
    registrations = _registrations(region, tmp_path / "registrations.hl7")
    context = _open(store_url)
    try:
        report = backfill_paths(context, [registrations], workers=0, train=False)
    finally:
        context.engine.dispose()
    assert report.relink["table"] == "as written" and compared == [report.written] and report.written > 0

    fields = [segment.split("|") for segment in next(m.text for m in hl7_messages(registrations)).split("\r")]
    for segment in fields:
        if segment[0] == "MSH":
            segment[8], segment[9] = "ADT^A08^ADT_A01", segment[9] + "U"  # an update, with its own control id
        elif segment[0] == "EVN":
            segment[1] = "A08"
        elif segment[0] == "PID":
            segment[5] = "Renamedbylive^" + segment[5].split("^", 1)[1]
    update = "\r".join("|".join(segment) for segment in fields)
    relink = bulk_load.Backfill.relink

    def after_a_live_update(self: bulk_load.Backfill) -> None:
        [outcome] = process_messages(self.context, [Incoming(update, INGEST_AGENT, "live")], channel=INGEST_CHANNEL)
        assert outcome.accepted
        relink(self)

    monkeypatch.setattr(bulk_load.Backfill, "relink", after_a_live_update)
    compared.clear()
    url = _second_store(store_url, tmp_path, request)
    context = _open(url)
    try:
        later = backfill_paths(context, [registrations], workers=0, train=False)
    finally:
        context.engine.dispose()
    assert later.relink["table"] == "read from the store" and compared == []
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            renamed = connection.execute(text("SELECT count(*) FROM source_record WHERE family = 'Renamedbylive' "
                                              "AND regional_patient_id IS NOT NULL")).scalar_one()
    finally:
        engine.dispose()
    assert renamed == 1


def _patients(draw: Any) -> dict[str, Any]:
    """A FHIR Patient of the elements the bulk load writes, each present or not, of any text (a few kinds of date)."""
    from hypothesis import strategies as st

    text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
    resource: dict[str, Any] = {"resourceType": "Patient", "id": draw(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True))}
    if draw(st.booleans()):
        resource["identifier"] = [{"system": "https://fhir.nhs.uk/Id/nhs-number",
                                   "value": draw(st.sampled_from(["9434765919", "9990000042", "123", "943 476 5919"]))},
                                  {"system": draw(st.sampled_from(["https://fhir.royalsurrey.nhs.uk/Id/hospital-number",
                                                                   "urn:elsewhere"])), "value": draw(text) or "x"}]
    if draw(st.booleans()):
        resource["name"] = [{"family": draw(text), "given": [draw(text)]}]
    if draw(st.booleans()):
        resource["birthDate"] = draw(st.sampled_from(["1950-02-28", "1983", "2001-07", "1899-12-31"]))
    if draw(st.booleans()):
        resource["gender"] = draw(st.sampled_from(["male", "female", "other", "unknown"]))
    if draw(st.booleans()):
        resource["address"] = [{"line": [draw(text)], "postalCode": draw(st.sampled_from(["GU2 7XX", "w6 9jy", "?"]))}]
    if draw(st.booleans()):
        resource["telecom"] = [{"system": "phone", "value": draw(text) or "0"}]
    if draw(st.booleans()):
        resource["deceasedDateTime"] = draw(st.sampled_from(["2020-01-01", "2020-01-01T10:00:00+01:00"]))
    return resource


def _converted_as_before(connection: Any, found: list[Any]) -> None:
    """The rows a worker sends for ``found`` (:class:`api.feeds.bulk_identity.Converter`) are the values the writer
    converted from the records' dicts before (``prepare_rows``, as ``insert_rows`` converted them), table by table,
    column by column, with the ids and FHIR audit entities the writer adds."""
    from api.feeds.bulk_identity import AUDIT_COLUMNS, AUDIT_ENTITY, LOG_COLUMNS, Converter
    from mpi import SourceRecord, table_of
    from mpi.record_columns import UNLINKED_COLUMNS, UNLINKED_VERSION_COLUMNS
    from mpi.tables import SourceRecordVersion
    from priorscan.bulk_rows import prepare_rows
    from priorscan.tables import AuditEvent, HL7MessageLog

    convert = Converter(connection.dialect)
    for n, record in enumerate(found, start=1):
        rows = convert(record)
        assert (rows.namespace, rows.local_id, rows.log_key, rows.kind) == (
            record.record.namespace, record.record.local_id, record.log_key, record.kind)
        assert (rows.record.keys, rows.record.identifiers) == (record.record.keys, record.record.identifiers)
        audit = list(rows.audit)
        audit[AUDIT_ENTITY] = audit[AUDIT_ENTITY] or f"Patient/src-{n}"
        pairs = [(SourceRecord, {"id": n, **record.record.columns}, ["id", *UNLINKED_COLUMNS],
                  (n, *rows.record.source)),
                 (SourceRecordVersion, {"source_record_id": n, **record.record.version},
                  ["source_record_id", *UNLINKED_VERSION_COLUMNS], (n, *rows.record.version)),
                 (AuditEvent, {**record.audit, "entity": record.audit.get("entity") or f"Patient/src-{n}"},
                  AUDIT_COLUMNS, tuple(audit))]
        if record.log is not None:
            assert rows.log is not None
            pairs.append((HL7MessageLog, record.log, LOG_COLUMNS, rows.log))
        else:
            assert rows.log is None
        for entity, before, columns, sent in pairs:
            former = prepare_rows(connection, table_of(entity), [before])
            assert dict(zip(columns, sent, strict=True)) == dict(zip(former.columns, former.values[0], strict=True))


def test_a_worker_sends_the_rows_the_writer_converted_before_for_hl7_and_fhir_records(
        region: Path, store_url: str) -> None:
    """The region's ADT messages and FHIR Patients, and generated Patients of any text, read as a bulk load's worker
    reads them: the tuples it sends for the driver (so that the writer no longer converts) are the values the writer
    converted from the records before, on both backends (the same rows written; H-OPS-05's equivalence tests check
    the store)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from api.feeds.bulk_identity import read_fhir, read_hl7
    from api.feeds.ingest import INGEST_AGENT
    from priorscan.db import make_engine

    trusts = default_trusts()
    when = {"agent": INGEST_AGENT, "production": False, "now": datetime(2026, 6, 15, 9, 30, 0, 123456, tzinfo=UTC)}
    engine = make_engine(store_url)
    try:
        with engine.connect() as connection:
            messages = [m.text for f in sorted(region.glob("hl7/*/*.hl7")) for m in hl7_messages(f)]
            patients = [json.loads(line) for f in sorted(region.glob("fhir/*/*.ndjson"))
                        for line in f.read_text().splitlines() if '"Patient"' in line]
            found = [r for r in [*(read_hl7(m, trusts, **when) for m in messages),  # type: ignore[arg-type]
                                 *(read_fhir(p, trusts, **when) for p in patients)] if r is not None]  # type: ignore[arg-type]
            assert {r.kind for r in found} >= {"ADT^A28", "Patient"} and len(found) > 40
            _converted_as_before(connection, found)

            @settings(max_examples=150, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])
            @given(st.lists(st.composite(_patients)(), min_size=1, max_size=4))
            def generated(resources: list[dict[str, Any]]) -> None:
                read = [read_fhir(resource, trusts, **when) for resource in resources]  # type: ignore[arg-type]
                _converted_as_before(connection, [r for r in read if r is not None])

            generated()
    finally:
        engine.dispose()
