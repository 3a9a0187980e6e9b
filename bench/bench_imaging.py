"""Imaging benchmarks: DICOM ingest rate, and the patient timeline's latency in a large store.

``python -m bench imaging ingest [--objects N] [--db URL]``
    Writes N DICOM objects (CT series with header CTDIvol, CT RDSRs, radiographs with DAP, mammograms; a new patient
    every few studies, so provisional source records are made and linked) and ingests them one by one through
    ``imaging.ingest_dicom_file`` into a fresh store (SQLite by default): objects per second, end to end.

``python -m bench imaging timeline [--studies N] [--patient-studies 200] [--queries 2000] [--db URL]``
    Builds a store of N studies over N/10 source records by bulk SQL (one patient with 200 studies over three trusts),
    then times ``imaging.patient_timeline`` for that patient (p50/p95/p99) and prints the query plan.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sqlalchemy import text

from imaging import ingest_dicom_file, patient_timeline
from imaging.queries import patient_studies_query
from priorscan.audit import Agent
from priorscan.db import open_store, session_factory
from priorscan.trusts import default_trusts

TRUSTS = ("RTK", "RXC", "RPC", "RA2", "RYR")
NAMESPACES = {"RTK": "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number",
              "RXC": "https://fhir.esht.nhs.uk/Id/hospital-number", "RPC": "https://fhir.qvh.nhs.uk/Id/hospital-number",
              "RA2": "https://fhir.royalsurrey.nhs.uk/Id/hospital-number",
              "RYR": "https://fhir.uhsussex.nhs.uk/Id/hospital-number"}
FAMILIES = ("SMITH", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON", "JOHNSON", "DAVIES", "ROBINSON", "WRIGHT",
            "THOMPSON", "EVANS", "WALKER", "WHITE", "ROBERTS", "GREEN", "HALL", "WOOD", "JACKSON", "CLARKE")
GIVEN = ("OLIVER", "AMELIA", "GEORGE", "ISLA", "HARRY", "AVA", "JACK", "MIA", "JACOB", "EMILY", "NOAH", "GRACE")


def _header(rng: random.Random, patient: tuple[str, str, str, str, str], study_uid: str, modality: str,
            sop_class: str, description: str, day: date) -> Dataset:
    trust, local_id, name, born, sex = patient
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID = sop_class, generate_uid(), study_uid
    ds.SeriesInstanceUID, ds.Modality, ds.StudyDescription = generate_uid(), modality, description
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = day.strftime("%Y%m%d"), "101500", f"A{rng.randrange(10**9)}"
    ds.PatientName, ds.PatientID, ds.IssuerOfPatientID = name, local_id, trust
    ds.PatientBirthDate, ds.PatientSex = born, sex
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _num(code: str, meaning: str, value: float, unit: str) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "NUM"
    item.ConceptNameCodeSequence = DicomSequence([_code(code, "DCM", meaning)])
    measured = Dataset()
    measured.NumericValue = f"{value:.2f}"
    measured.MeasurementUnitsCodeSequence = DicomSequence([_code(unit, "UCUM", unit)])
    item.MeasuredValueSequence = DicomSequence([measured])
    return item


def _ct_rdsr(ds: Dataset, rng: random.Random) -> Dataset:
    ds.ConceptNameCodeSequence = DicomSequence([_code("113701", "DCM", "X-Ray Radiation Dose Report")])
    ds.ValueType = "CONTAINER"
    content = []
    total = 0.0
    for _ in range(rng.randint(1, 3)):
        dlp = rng.uniform(100, 600)
        total += dlp
        event = Dataset()
        event.RelationshipType, event.ValueType = "CONTAINS", "CONTAINER"
        event.ConceptNameCodeSequence = DicomSequence([_code("113819", "DCM", "CT Acquisition")])
        uid = Dataset()
        uid.RelationshipType, uid.ValueType, uid.UID = "CONTAINS", "UIDREF", generate_uid()
        uid.ConceptNameCodeSequence = DicomSequence([_code("113769", "DCM", "Irradiation Event UID")])
        event.ContentSequence = DicomSequence([uid, _num("113830", "Mean CTDIvol", rng.uniform(5, 15), "mGy"),
                                               _num("113838", "DLP", dlp, "mGy.cm")])
        content.append(event)
    accumulated = Dataset()
    accumulated.RelationshipType, accumulated.ValueType = "CONTAINS", "CONTAINER"
    accumulated.ConceptNameCodeSequence = DicomSequence([_code("113811", "DCM", "CT Accumulated Dose Data")])
    accumulated.ContentSequence = DicomSequence([_num("113813", "CT Dose Length Product Total", total, "mGy.cm")])
    ds.ContentSequence = DicomSequence([accumulated, *content])
    return ds


def write_objects(root: Path, count: int, seed: int = 7) -> list[Path]:
    """``count`` DICOM objects of a small region: about 10 objects per study, a patient per two studies."""
    rng = random.Random(seed)
    paths: list[Path] = []
    patients: list[tuple[str, str, str, str, str]] = []
    while len(paths) < count:
        if not patients or rng.random() < 0.5:
            trust = rng.choice(TRUSTS)
            patients.append((trust, f"P{len(patients):07d}", f"{rng.choice(FAMILIES)}^{rng.choice(GIVEN)}",
                             f"{rng.randint(1930, 2015)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
                             rng.choice("MF")))
        patient = rng.choice(patients)
        day = date(2024, 1, 1) + timedelta(days=rng.randrange(365))
        uid = generate_uid()
        kind = rng.random()
        objects: list[Dataset] = []
        if kind < 0.4:  # CT: a series of images with header CTDIvol, then the RDSR
            series = generate_uid()
            for _ in range(8):
                image = _header(rng, patient, uid, "CT", "1.2.840.10008.5.1.4.1.1.2", "CT CHEST ABDO PELVIS", day)
                image.SeriesInstanceUID, image.CTDIvol = series, 9.5
                objects.append(image)
            objects.append(_ct_rdsr(_header(rng, patient, uid, "SR", "1.2.840.10008.5.1.4.1.1.88.67",
                                            "CT CHEST ABDO PELVIS", day), rng))
        elif kind < 0.8:  # radiograph: two views with DAP
            for view in ("PA", "LL"):
                image = _header(rng, patient, uid, "DX", "1.2.840.10008.5.1.4.1.1.1.1", "XR CHEST", day)
                image.ViewPosition, image.ImageAndFluoroscopyAreaDoseProduct = view, f"{rng.uniform(5, 30):.2f}"
                image.AcquisitionDateTime = day.strftime("%Y%m%d") + f"1015{len(objects):02d}"
                objects.append(image)
        else:  # mammography: four views with organ dose
            for side in ("L", "L", "R", "R"):
                image = _header(rng, patient, uid, "MG", "1.2.840.10008.5.1.4.1.1.1.2", "Mammogram bilateral", day)
                image.ImageLaterality, image.OrganDose = side, f"{rng.uniform(0.008, 0.02):.4f}"
                image.AcquisitionDateTime = day.strftime("%Y%m%d") + f"1016{len(objects):02d}"
                objects.append(image)
        for ds in objects:
            path = root / f"{len(paths):07d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths[:count]


def bench_ingest(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = args.db or f"sqlite:///{root}/bench.db"
        started = time.perf_counter()
        (root / "dicom").mkdir()
        paths = write_objects(root / "dicom", args.objects)
        print(f"wrote {len(paths)} DICOM objects in {time.perf_counter() - started:.1f} s")
        engine = open_store(url)
        sessions, trusts, agent = session_factory(engine), default_trusts(), Agent("feed", "bench")
        rejected = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for path in paths:
            if not ingest_dicom_file(sessions, trusts, path, agent=agent).accepted:
                rejected += 1
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        with engine.connect() as conn:
            studies = conn.execute(text("select count(*) from study")).scalar()
            records = conn.execute(text("select count(*) from source_record")).scalar()
        load = os.getloadavg()[0]
        print(f"ingested {len(paths)} objects ({studies} studies, {records} source records, {rejected} rejected) "
              f"in {elapsed:.1f} s: {len(paths) / elapsed:.0f} objects/s on {engine.dialect.name} "
              f"({len(paths) / cpu:.0f} per CPU-second of this process; load average {load:.1f} on {os.cpu_count()} "
              "cores)")
        engine.dispose()
    return 0


def build_store(url: str, studies: int, patient_studies: int, seed: int = 11) -> str:
    """Bulk-load ``studies`` studies over ``studies // 10`` source records; return the target patient's id."""
    rng = random.Random(seed)
    engine = open_store(url)
    records = max(10, studies // 10)
    target = "RPTARGET0000"
    started = time.perf_counter()
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        cursor = raw.cursor()
        # bulk load: the study table's secondary indexes are dropped and rebuilt after (sorted builds are far
        # faster than 10 M random inserts); the same DDL as the migration's, read back from the schema
        indexes = [row[0] for row in cursor.execute(
            "select sql from sqlite_master where type = 'index' and tbl_name = 'study' and sql is not null")]
        for name, in cursor.execute("select name from sqlite_master where type = 'index' and tbl_name = 'study' "
                                    "and sql is not null").fetchall():
            cursor.execute(f'drop index "{name}"')
        patients = [(f"RP{n:010d}",) for n in range(records)] + [(target,)]
        cursor.executemany("insert into regional_patient (id, status, created_at, updated_at) "
                           "values (?, 'active', '2024-01-01', '2024-01-01')", patients)
        rows = [(n + 1, NAMESPACES[TRUSTS[n % 5]], f"H{n:09d}", TRUSTS[n % 5], f"RP{n:010d}") for n in range(records)]
        rows += [(records + 1 + k, NAMESPACES[TRUSTS[k]], f"T{k:09d}", TRUSTS[k], target) for k in range(3)]
        cursor.executemany("insert into source_record (id, namespace, local_id, trust_ods, source_kind, provisional, "
                           "active, nhs_number_valid, link_state, link_manual, version, created_at, updated_at, "
                           "regional_patient_id) values (?, ?, ?, ?, 'hl7', 0, 1, 0, 'match', 0, 1, '2024-01-01', "
                           "'2024-01-01', ?)", rows)
        base = date(2014, 1, 1)
        batch: list[tuple] = []
        insert = ("insert into study (study_instance_uid, source_record_id, performing_trust, status, modality, "
                  "body_region, laterality, normalisation, study_date, dlp_total_mgycm, effective_dose_msv, "
                  "dose_source, created_at, updated_at) values (?, ?, ?, 'completed', ?, ?, 'none', 'description', "
                  "?, ?, ?, ?, '2024-01-01', '2024-01-01')")
        regions = (("CT", "chest", 300.0, 4.35), ("XR", "chest", None, None), ("MR", "head", None, None),
                   ("US", "abdomen", None, None), ("CT", "head", 800.0, 1.52))
        for n in range(studies):
            if n < patient_studies:
                record = records + 1 + n % 3
            else:
                record = rng.randrange(1, records + 1)
            modality, region, dlp, dose = regions[n % 5]
            batch.append((f"2.25.{n:012d}", record, TRUSTS[record % 5], modality, region,
                          (base + timedelta(days=rng.randrange(3650))).isoformat(), dlp, dose,
                          "rdsr" if dlp else None))
            if len(batch) >= 100_000:
                cursor.executemany(insert, batch)
                batch.clear()
        if batch:
            cursor.executemany(insert, batch)
        for ddl in indexes:
            cursor.execute(ddl)
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    print(f"built {studies:,} studies over {records:,} source records in {time.perf_counter() - started:.0f} s")
    engine.dispose()
    return target


def bench_timeline(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        url = args.db or f"sqlite:///{tmp}/timeline.db"
        target = build_store(url, args.studies, args.patient_studies)
        engine = open_store(url)
        sessions, trusts = session_factory(engine), default_trusts()
        timings = []
        with sessions() as session:
            found = patient_timeline(session, trusts, target)
            assert found is not None and len(found.entries) == args.patient_studies, "the target patient's studies"
            for _ in range(args.queries):
                started = time.perf_counter()
                patient_timeline(session, trusts, target)
                timings.append((time.perf_counter() - started) * 1000)
            compiled = patient_studies_query(target).compile(engine, compile_kwargs={"literal_binds": True})
            plan = session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
        timings.sort()
        p = lambda q: timings[min(len(timings) - 1, int(q * len(timings)))]  # noqa: E731
        print(f"timeline of a patient with {args.patient_studies} studies in a store of {args.studies:,} studies "
              f"({engine.dialect.name}), {args.queries} queries: median {statistics.median(timings):.2f} ms, "
              f"p95 {p(0.95):.2f} ms, p99 {p(0.99):.2f} ms")
        print("query plan:")
        for row in plan:
            print("   ", row[-1])
        engine.dispose()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench imaging")
    sub = parser.add_subparsers(dest="what", required=True)
    ingest = sub.add_parser("ingest", help="DICOM objects ingested and linked per second")
    ingest.add_argument("--objects", type=int, default=2000)
    ingest.add_argument("--db", help="store URL (default: a fresh SQLite file)")
    timeline = sub.add_parser("timeline", help="timeline latency in a large store")
    timeline.add_argument("--studies", type=int, default=1_000_000)
    timeline.add_argument("--patient-studies", type=int, default=200)
    timeline.add_argument("--queries", type=int, default=2000)
    timeline.add_argument("--db", help="an empty SQLite store URL (default: a temporary file)")
    timeline.add_argument("--tmp", help="directory for the temporary store")
    args = parser.parse_args(argv)
    return bench_ingest(args) if args.what == "ingest" else bench_timeline(args)
