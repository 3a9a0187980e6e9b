"""The relink on Apache Spark against the single-machine relink: on the same store, the same model, clusters, link
states, scores, explanations, link events and review items; manual decisions stick on both; the command line
(``priorscan link --engine spark``) says which engine and which model it used.

One Spark session (``local[2]``) serves the module; the stores are small, so the tests stay quick.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.mpi_population import make_population
from mpi import PatientIndex, RecordKey
from mpi.batch import bulk_load, relink
from mpi.spark import spark_relink, spark_session
from mpi.tables import LinkEvent, MatchModel, RegionalPatient, ReviewItem, SourceRecord
from priorscan.db import open_store
from priorscan.trusts import default_trusts
from tests.fixed_dates import AS_OF

# Spark starts a JVM and Python workers: on a shared 2-core host under load a test takes minutes, not seconds
pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = spark_session("local[2]", shuffle_partitions=2)
    yield session
    session.stop()


def _priorscan(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "priorscan.cli", "--db", db, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def _copy(source: Path, target: Path) -> str:
    shutil.copy(source, target)
    return f"sqlite:///{target}"


def _snapshot(url: str) -> dict[str, Any]:
    """What a relink leaves in the store, by source identifiers (regional ids are drawn at random)."""
    engine = open_store(url)
    try:
        with Session(engine) as session:
            rows = session.execute(select(
                SourceRecord.id, SourceRecord.namespace, SourceRecord.local_id, SourceRecord.regional_patient_id,
                SourceRecord.link_state, SourceRecord.link_score, SourceRecord.link_weights,
                SourceRecord.link_model_version, SourceRecord.linked_by, SourceRecord.active)).all()
            key_of = {r.id: (r.namespace, r.local_id) for r in rows}
            members: dict[str, set[tuple[str, str]]] = defaultdict(set)
            for r in rows:
                if r.regional_patient_id:
                    members[r.regional_patient_id].add(key_of[r.id])
            cluster_of = {rid: frozenset(keys) for rid, keys in members.items()}
            links = {key_of[r.id]: (r.link_state, r.link_score, r.link_weights, r.link_model_version, r.linked_by,
                                    cluster_of.get(r.regional_patient_id)) for r in rows}
            reviews = sorted((key_of[i.source_record_id], key_of[i.candidate_record_id],
                              cluster_of.get(i.candidate_regional_id), i.score, repr(i.weights), i.model_version)
                             for i in session.scalars(select(ReviewItem).where(ReviewItem.status == "open")))
            events = Counter((key_of[e.source_record_id], e.link_state, e.score, e.model_version, e.reason,
                              cluster_of.get(e.to_regional_id)) for e in session.scalars(
                select(LinkEvent).where(LinkEvent.reason == "batch-relink")))
            golden = {cluster_of[p.id]: (p.family, p.given, p.birth_date, p.postcode, p.nhs_number)
                      for p in session.scalars(select(RegionalPatient).where(RegionalPatient.status == "active"))
                      if p.id in cluster_of}
            model = session.scalars(select(MatchModel.version).where(MatchModel.active.is_(True))).one_or_none()
    finally:
        engine.dispose()
    return {"clusters": set(cluster_of.values()), "links": links, "reviews": reviews, "events": events,
            "golden": golden, "model": model}


def _assert_same(local: dict[str, Any], spark: dict[str, Any]) -> None:
    assert spark["model"] == local["model"]
    assert spark["clusters"] == local["clusters"]
    differing = {key: (value, spark["links"].get(key)) for key, value in local["links"].items()
                 if spark["links"].get(key) != value}
    assert not differing, list(differing.items())[:3]
    assert spark["reviews"] == local["reviews"]
    assert spark["events"] == local["events"]
    assert spark["golden"] == local["golden"]


def _relink_copies(spark: Any, base: Path, tmp_path: Path, *, train: bool = True, **options: Any) -> tuple[str, str]:
    """Two copies of the store ``base``, one relinked on one machine and one on Spark (both with ``options``):
    their URLs (local, Spark)."""
    local_url, spark_url = _copy(base, tmp_path / "local.db"), _copy(base, tmp_path / "spark.db")
    for url, engine_name in ((local_url, "local"), (spark_url, "spark")):
        store = open_store(url)
        with Session(store) as session:
            if engine_name == "local":
                relink(session, train=train, actor="batch-relink", **options)
            else:
                spark_relink(session, spark, url, train=train, actor="batch-relink", **options)
            session.commit()
        store.dispose()
    return local_url, spark_url


def _relinked_alike(spark: Any, people: list[Any], base: Path, tmp_path: Path, model: Any = None) -> dict[str, Any]:
    """``people`` loaded into a store at ``base`` with ``model`` (the shipped model with threshold 0.98 unless
    given), relinked without training on one machine and on Spark: the local snapshot, once both are asserted the
    same."""
    from mpi.batch import save_model
    from mpi.model import Model

    store = open_store(f"sqlite:///{base}")
    with Session(store) as session:
        bulk_load(session, people)
        save_model(session, model or Model.default().evolve(match_threshold=0.98), records=len(people))
        session.commit()
    store.dispose()
    local_url, spark_url = _relink_copies(spark, base, tmp_path, train=False)
    local = _snapshot(local_url)
    _assert_same(local, _snapshot(spark_url))
    return local


@pytest.fixture(scope="module")
def region_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic region (regionsynth, as of the tests' fixed date) whose patient feeds were ingested, so every
    record was already placed by link-on-write."""
    work = tmp_path_factory.mktemp("spark-region")
    db = work / "region.db"
    url = f"sqlite:///{db}"
    out = work / "region"
    made = _priorscan("synth", "--people", "200", "--out", str(out), "--seed", "5", "--as-of", AS_OF.isoformat(),
                      db=url)
    assert made.returncode == 0, made.stderr[-2000:]
    ingested = _priorscan("ingest", "--no-progress", str(out / "hl7"), str(out / "fhir"), db=url)
    assert ingested.returncode in (0, 1), ingested.stderr[-2000:]
    return db


def test_spark_relink_of_a_region_equals_the_local_relink(spark: Any, region_store: Path, tmp_path: Path) -> None:
    local_url, spark_url = _copy(region_store, tmp_path / "local.db"), _copy(region_store, tmp_path / "spark.db")
    for url, engine_name in ((local_url, "local"), (spark_url, "spark")):
        store = open_store(url)
        with Session(store) as session:
            if engine_name == "local":
                result = relink(session, actor="batch-relink")
            else:
                result = spark_relink(session, spark, url, actor="batch-relink")
            session.commit()
        store.dispose()
        assert result.records > 200 and not result.trained  # too few records to train: the shipped prior model
    _assert_same(_snapshot(local_url), _snapshot(spark_url))


def test_spark_relink_of_a_store_too_small_to_fill_its_partitions(spark: Any, tmp_path: Path) -> None:
    # a handful of records leaves most partitions of the clustering and the golden records empty: a partition no
    # component or patient hashed to once stopped the relink (pandas cannot concatenate no batches)
    base = tmp_path / "small.db"
    store = open_store(f"sqlite:///{base}")
    with Session(store) as session:
        bulk_load(session, make_population(12, seed=2).records)
        session.commit()
    store.dispose()
    local_url, spark_url = _relink_copies(spark, base, tmp_path)
    _assert_same(_snapshot(local_url), _snapshot(spark_url))


def test_spark_relink_brings_the_stored_blocking_keys_to_the_keys_of_today(spark: Any, tmp_path: Path) -> None:
    """As the local relink (H-ID-27): keys missing from the store are added, keys no longer made are deleted."""
    from sqlalchemy import delete

    from mpi.blocking import blocking_keys
    from mpi.normalise import MatchRecord
    from mpi.tables import BlockingKey

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    store = open_store(url)
    with Session(store) as session:
        bulk_load(session, make_population(12, seed=2).records)
        first, second = session.scalars(select(SourceRecord.id).order_by(SourceRecord.id).limit(2)).all()
        session.execute(delete(BlockingKey).where(BlockingKey.source_record_id == first))
        session.add(BlockingKey(source_record_id=second, key="x:retired"))
        session.commit()
        spark_relink(session, spark, url, actor="batch-relink")
        session.commit()
        for record in session.scalars(select(SourceRecord)).all():
            stored = set(session.scalars(select(BlockingKey.key).where(BlockingKey.source_record_id == record.id)))
            assert stored == blocking_keys(MatchRecord.from_stored(record.id, record.match_fields)), record.id
    store.dispose()


def test_spark_relink_rewrites_the_stored_keys_only_when_the_key_scheme_changed(
        spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the local relink (H-ID-27): an unchanged scheme leaves the stored keys alone; a changed one has the tasks
    find every difference, which the driver writes, and records the new scheme."""
    from sqlalchemy import delete

    import mpi.batch
    from mpi.batch import keys_refreshed
    from mpi.blocking import blocking_keys
    from mpi.normalise import MatchRecord
    from mpi.tables import BlockingKey, BlockingKeyScheme

    url = f"sqlite:///{tmp_path / 'scheme.db'}"
    store = open_store(url)
    with Session(store) as session:
        bulk_load(session, make_population(12, seed=2).records)
        keys_refreshed(session)  # as a relink with this scheme leaves it (with none, the test above: refreshed)
        session.commit()
        first, second = session.scalars(select(SourceRecord.id).order_by(SourceRecord.id).limit(2)).all()
        session.execute(delete(BlockingKey).where(BlockingKey.source_record_id == first))
        session.add(BlockingKey(source_record_id=second, key="x:retired"))
        session.commit()
        spark_relink(session, spark, url, train=False)  # the same scheme: not rewritten
        session.commit()
        assert not session.scalars(select(BlockingKey.key).where(BlockingKey.source_record_id == first)).all()
        assert "x:retired" in session.scalars(select(BlockingKey.key).where(BlockingKey.source_record_id == second))
        monkeypatch.setattr(mpi.batch, "KEY_SCHEME", "a later scheme")
        spark_relink(session, spark, url, train=False)
        session.commit()
        for record in session.scalars(select(SourceRecord)).all():
            stored = set(session.scalars(select(BlockingKey.key).where(BlockingKey.source_record_id == record.id)))
            assert stored == blocking_keys(MatchRecord.from_stored(record.id, record.match_fields)), record.id
        assert session.get(BlockingKeyScheme, 1).scheme == "a later scheme"  # type: ignore[union-attr]
    store.dispose()


@pytest.fixture(scope="module")
def population_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[RecordKey, RecordKey],
                                                                         tuple[RecordKey, RecordKey]]:
    """A population large enough to train on, relinked once, then decided on by a person twice: two records of
    one patient are not the same person (a manual no-match), and two patients are one (a manual link)."""
    db = tmp_path_factory.mktemp("spark-population") / "population.db"
    store = open_store(f"sqlite:///{db}")
    with Session(store) as session:
        bulk_load(session, make_population(700, seed=11).records)
        relink(session)
        session.commit()
        rows = session.execute(select(SourceRecord.namespace, SourceRecord.local_id, SourceRecord.regional_patient_id)
                               .order_by(SourceRecord.id)).all()
        by_patient: dict[str, list[RecordKey]] = defaultdict(list)
        for namespace, local_id, regional in rows:
            by_patient[regional].append(RecordKey(namespace, local_id))
        larger = [keys for keys in by_patient.values() if len(keys) >= 3]
        singles = [keys for keys in by_patient.values() if len(keys) == 1]
        parted, joined = (larger[0][0], larger[0][1]), (singles[0][0], singles[1][0])
        index = PatientIndex(session, default_trusts())
        index.unlink(*parted, actor="steward")
        index.link(*joined, actor="steward", by_person=True)
        session.commit()
    store.dispose()
    return db, parted, joined


def test_spark_relink_trains_the_same_model_and_keeps_manual_decisions(spark: Any, population_store: Any,
                                                                       tmp_path: Path) -> None:
    db, parted, joined = population_store
    local_url, spark_url = _copy(db, tmp_path / "local.db"), _copy(db, tmp_path / "spark.db")
    store = open_store(local_url)
    with Session(store) as session:
        local = relink(session, actor="batch-relink")
        session.commit()
    store.dispose()
    store = open_store(spark_url)
    with Session(store) as session:
        result = spark_relink(session, spark, spark_url, actor="batch-relink")
        session.commit()
        again = spark_relink(session, spark, spark_url, train=False, actor="batch-relink")
        session.commit()
    store.dispose()
    assert result.trained and local.trained and result.model_version == local.model_version
    assert (result.records, result.pairs_scored, result.match_links, result.patients, result.records_changed,
            result.review_items) == (local.records, local.pairs_scored, local.match_links, local.patients,
                                     local.records_changed, local.review_items)
    assert again.records_changed == 0  # a second relink with the same model changes nothing
    local_view, spark_view = _snapshot(local_url), _snapshot(spark_url)
    _assert_same(local_view, spark_view)
    # the person's decisions stuck: the records parted stay apart, the records joined stay together
    cluster_of = {key: cluster for cluster in spark_view["clusters"] for key in cluster}

    def patient(key: RecordKey) -> frozenset[tuple[str, str]]:
        return cluster_of[(key.namespace, key.local_id)]

    assert patient(parted[0]) != patient(parted[1])
    assert patient(joined[0]) == patient(joined[1])


def test_spark_relink_beyond_the_training_sample_trains_the_same_model(spark: Any, tmp_path: Path) -> None:
    """A store larger than the training sample: both engines train on the records a hash of the record id chooses
    (:func:`mpi.training.in_training_sample`), so they make the same model and the same clusters, links and review
    items. Spark once drew its own random sample and the local relink trained on every record: at 1 M records 163
    records were clustered differently (H-ID-30)."""
    base = tmp_path / "sampled.db"
    store = open_store(f"sqlite:///{base}")
    with Session(store) as session:
        bulk_load(session, make_population(800, seed=7).records)  # 1 521 records
        session.commit()
    store.dispose()
    local_url, spark_url = _relink_copies(spark, base, tmp_path, training_sample=700)
    local, spark_view = _snapshot(local_url), _snapshot(spark_url)
    _assert_same(local, spark_view)
    for url in (local_url, spark_url):
        engine = open_store(url)
        with Session(engine) as session:
            training = session.scalars(select(MatchModel.parameters).where(MatchModel.active.is_(True))).one()[
                "training"]
        engine.dispose()
        assert training["kind"] == "em" and training["records"] == 1521  # trained, for the whole store
        assert 600 < training["sampled_records"] < 800  # on about 700 of its records


def test_priorscan_link_engine_spark_says_which_engine_and_model(pg_url: str, tmp_path: Path) -> None:
    store = open_store(pg_url)
    with Session(store) as session:
        bulk_load(session, make_population(60, seed=3).records)
        session.commit()
    store.dispose()
    linked = _priorscan("link", "--engine", "spark", "--master", "local[2]", db=pg_url)
    assert linked.returncode == 0, linked.stderr[-3000:]
    assert "engine: spark (local[2]" in linked.stdout
    assert "shipped prior model" in linked.stdout and "too few to train" in linked.stdout
    xref = _priorscan("export", "xref", db=pg_url)
    assert xref.returncode == 0 and xref.stdout.count("\n") > 60
    refused = _priorscan("link", "--master", "local[2]", db=pg_url)
    assert refused.returncode != 0 and "--engine spark" in refused.stderr


def test_spark_relink_decides_rule_8_as_the_local_relink(spark: Any, tmp_path: Path) -> None:
    """Rule 8 grouped by the weak record on Spark, each pair weighed against the partners kept apart from its own
    (:func:`mpi.scoring.exclusive_probability`), as the single-machine relink: a record without a birth date
    near-certain with one woman and a bare possible with another joins the first; a record without a given name,
    equally like two twins, joins neither (H-ID-26)."""
    from mpi_factories import NHS, NHS_OTHER, NHS_THIRD, TRUST_A, TRUST_B, demographics


    none = {"nhs_number": None, "nhs_verification": None}
    twins = {"family": "Okafor", "birth_date": "1991-07-30", "postcode": "TN2 5QR",
             "address": "4 Pembury Road, Tunbridge Wells", "phone": "01892 555 777"}
    people = [demographics(TRUST_A, "A1", **none),
              demographics(TRUST_B, "B1", birth_date=None, **none),
              demographics(TRUST_A, "A3", given="Elena", family="Whitfeld", birth_date="1950-06-02",
                           nhs_number=NHS_OTHER, phone=None),
              demographics(TRUST_A, "T1", given="Adaeze", nhs_number=NHS, **twins),
              demographics(TRUST_A, "T2", given="Ngozi", nhs_number=NHS_THIRD, **twins),
              demographics(TRUST_B, "T3", given=None, **none, **twins)]
    local = _relinked_alike(spark, people, tmp_path / "rule8.db", tmp_path)
    assert frozenset({(TRUST_A, "A1"), (TRUST_B, "B1")}) in local["clusters"]
    assert frozenset({(TRUST_B, "T3")}) in local["clusters"], "the record without a given name joins neither twin"
    assert any(review[0] == (TRUST_B, "T3") or review[1] == (TRUST_B, "T3") for review in local["reviews"])
    assert all("could-be-either" in review[4] for review in local["reviews"]
               if (TRUST_B, "T3") in (review[0], review[1])), "the item names rule 8, on both engines (H-ID-22)"


def test_spark_relink_leaves_out_the_review_items_of_namesakes_as_the_local_relink(spark: Any,
                                                                                    tmp_path: Path) -> None:
    """Two patients whose records each agree on a birth date, and differ on it, are two people on both engines: no
    review item for them (:mod:`mpi.patient_evidence`, H-ID-55); a third record of the name with a date of its own,
    alone, is reviewed on both, against the same patient."""
    from datetime import date

    from mpi_factories import TRUST_A, TRUST_B, TRUST_C, demographics

    from mpi.model import Model

    namesake = {"nhs_number": None, "nhs_verification": None, "phone": None, "given": "James J",
                "family": "Romero", "sex": "male"}
    first = {"birth_date": date(1991, 4, 2), "postcode": "GU1 4AB", "address": "12 Mill Lane", **namesake}
    second = {"birth_date": date(1974, 9, 17), "postcode": "TN2 5QR", "address": "4 Pembury Road", **namesake}
    third = {"birth_date": date(1983, 1, 22), "postcode": "ME1 1AA", "address": "7 High Street", **namesake}
    people = [demographics(TRUST_A, "F0", **first), demographics(TRUST_B, "F1", **first),
              demographics(TRUST_A, "S0", **second), demographics(TRUST_B, "S1", **second),
              demographics(TRUST_C, "S2", **second), demographics(TRUST_C, "T0", **third)]
    model = Model.default().evolve(prior=1 / (1 + 2 ** 8), match_threshold=0.98)
    local = _relinked_alike(spark, people, tmp_path / "namesakes.db", tmp_path, model=model)
    assert {frozenset({(TRUST_A, "F0"), (TRUST_B, "F1")}), frozenset({(TRUST_C, "T0")}),
            frozenset({(TRUST_A, "S0"), (TRUST_B, "S1"), (TRUST_C, "S2")})} == local["clusters"]
    reviewed = [{review[0], review[1]} for review in local["reviews"]]
    assert len(reviewed) == 2 and all((TRUST_C, "T0") in pair for pair in reviewed), \
        "only the record alone is reviewed, against each patient; never the two patients of two dated records each"


def test_spark_relink_weighs_further_identifiers_as_the_local_relink(spark: Any, tmp_path: Path) -> None:
    """Identifiers other than the NHS number (H-ID-61) on both engines: an RTK record listing the RXC record's
    hospital number joins it despite a misspelt given name and a new address (alone: review); a FEBRL-style second
    identifier joins a corrupted duplicate; two different verified NHS numbers stay apart whatever identifier they
    share; a record listing another RXC number is not joined."""
    from mpi_factories import NHS, NHS_OTHER, TRUST_A, TRUST_B, TRUST_C, demographics

    from mpi.model import Model

    none = {"nhs_number": None, "nhs_verification": None}
    typo = {"given": "Elinor Grace", "postcode": "GU2 7XX", "address": "3 High Street, Woking", "phone": None}
    ssn, febrl = "urn:febrl:soc-sec-id", "urn:febrl:rec-id"
    marsh = {"family": "Marsh", "birth_date": "1944-10-21"}
    hale = {"family": "Hale", "birth_date": "1952-02-08"}
    okafor = {"family": "Okafor", "given": "Ngozi", "birth_date": "1960-01-05", "postcode": "TN2 5QR",
              "address": "4 Pembury Road", "phone": None}
    people = [demographics(TRUST_B, "B1", **none),
              demographics(TRUST_A, "A1", **none, **typo, other_identifiers=[(TRUST_B, "B1")]),
              demographics(TRUST_B, "B2", **none, **marsh),
              demographics(TRUST_C, "C2", **none, **typo, **marsh, other_identifiers=[(TRUST_B, "B8")]),
              demographics(febrl, "rec-1-org", **none, **hale, other_identifiers=[(ssn, "5304218")]),
              demographics(febrl, "rec-1-dup-0", **none, **typo, **hale, other_identifiers=[(ssn, "5304218")]),
              demographics(TRUST_B, "N1", nhs_number=NHS, **okafor),
              demographics(TRUST_A, "N2", nhs_number=NHS_OTHER, **okafor, other_identifiers=[(TRUST_B, "N1")])]
    local = _relinked_alike(spark, people, tmp_path / "identifiers.db", tmp_path, model=Model.default())
    assert frozenset({(TRUST_A, "A1"), (TRUST_B, "B1")}) in local["clusters"]
    assert frozenset({(febrl, "rec-1-org"), (febrl, "rec-1-dup-0")}) in local["clusters"]
    assert frozenset({(TRUST_C, "C2")}) in local["clusters"], "another RXC number: not joined"
    assert {frozenset({(TRUST_B, "N1")}), frozenset({(TRUST_A, "N2")})} <= local["clusters"]


def test_spark_relink_leaves_out_the_review_items_of_twins_holding_one_given_name_each_as_the_local_relink(
        spark: Any, tmp_path: Path) -> None:
    """Two patients each of whose records hold one given name, the names differing, are two people on both engines
    (:mod:`mpi.patient_evidence`, H-ID-59): twin sisters of one birth date, two records each, get no review item; a
    third sister's record alone, one witness of her name, is reviewed on both, against each twin."""
    from datetime import date

    from mpi_factories import TRUST_A, TRUST_B, TRUST_C, demographics

    from mpi.model import Model

    twin = {"nhs_number": None, "nhs_verification": None, "phone": None, "family": "Rivera", "sex": "female",
            "birth_date": date(2009, 6, 14)}
    charlotte = {"given": "Charlotte Z", "postcode": "GU1 4AB", "address": "12 Mill Lane", **twin}
    leia = {"given": "Leia Z", "postcode": "TN2 5QR", "address": "4 Pembury Road", **twin}
    mia = {"given": "Mia Z", "postcode": "ME1 1AA", "address": "7 High Street", **twin}
    people = [demographics(TRUST_A, "C0", **charlotte), demographics(TRUST_B, "C1", **charlotte),
              demographics(TRUST_A, "L0", **leia), demographics(TRUST_B, "L1", **leia),
              demographics(TRUST_C, "M0", **mia)]
    model = Model.default().evolve(prior=1 / (1 + 2 ** 18), match_threshold=0.98)
    local = _relinked_alike(spark, people, tmp_path / "twins.db", tmp_path, model=model)
    assert {frozenset({(TRUST_A, "C0"), (TRUST_B, "C1")}), frozenset({(TRUST_A, "L0"), (TRUST_B, "L1")}),
            frozenset({(TRUST_C, "M0")})} == local["clusters"]
    reviewed = [{review[0], review[1]} for review in local["reviews"]]
    assert len(reviewed) == 2 and all((TRUST_C, "M0") in pair for pair in reviewed), \
        "only the record alone is reviewed, against each twin; never the two twins of two records each"


@pytest.mark.parametrize("cap", [3, 40])
def test_spark_blocking_gives_the_local_pairs_and_drops_the_same_large_blocks(spark: Any, region_store: Path,
                                                                             cap: int) -> None:
    """Spark's blocked pairs are the single-machine blocking's, by record id, with a block cap small enough that
    many keys are over it: a block is gathered only once its size is known, and one over the cap makes no pair."""
    from mpi.batch import load_table
    from mpi.blocking import blocked_pairs as local_blocked_pairs
    from mpi.frames import frame_from_table
    from mpi.spark.columns import spark_records
    from mpi.spark.pairs import blocked_pairs as spark_blocked_pairs

    store = open_store(f"sqlite:///{region_store}")
    try:
        with Session(store) as session:
            table = load_table(session)
    finally:
        store.dispose()
    ids = table["record_id"].to_numpy()
    left, right = local_blocked_pairs(frame_from_table(table), max_block_size=cap)
    local = {(int(min(a, b)), int(max(a, b))) for a, b in zip(ids[left], ids[right], strict=True)}
    records = spark.createDataFrame(spark_records(table))
    found = {(int(r.a), int(r.b)) for r in spark_blocked_pairs(records, max_block_size=cap).collect()}
    assert local and found == local


def test_spark_settles_contested_regional_ids_per_component_as_the_single_pass(spark: Any) -> None:
    """Which cluster keeps which old regional id, where clusters hold several ids or ids spread over clusters: the
    Spark relink decides it per component of clusters sharing ids, as Spark jobs (nothing gathered on the driver),
    and must give the single pass's choice over all rows (:func:`mpi.batch.assign_held_ids`): ties of counts, ids
    held by many clusters and chains of clusters through shared ids included."""
    import random

    import pandas as pd

    from mpi.batch import assign_held_ids
    from mpi.spark.relink import _settle_contested

    rng = random.Random(11)
    rows = {(rng.randrange(400), f"R{rng.randrange(300):04d}"): rng.choice((1, 1, 2, 2, 3, 5)) for _ in range(1500)}
    contested = pd.DataFrame([(label, rid, n) for (label, rid), n in rows.items()], columns=["label", "rid", "n"])
    expected = assign_held_ids(contested)
    frame = spark.createDataFrame(contested.astype({"label": "int64", "n": "int64"}), "label long, rid string, n long")
    got = {int(row["label"]): row["rid"] for row in _settle_contested(frame).collect()}
    assert len(expected) > 150 and got == expected
