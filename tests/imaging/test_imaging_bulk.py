"""Studies written in bulk (:mod:`imaging.bulk`): the same studies, dose and outcomes as the per-object path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from imaging_factories import CHEST, CtEvent, ct_image, ct_rdsr, projection_image, write
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from imaging import apply_many, load_studies, read_dicom_header
from imaging import dose as dz
from imaging.tables import IrradiationEvent, Study
from priorscan.audit import Agent
from priorscan.outcome import ItemOutcome
from priorscan.trusts import TrustRegistry
from priorscan.unit_of_work import unit_of_work

AGENT = Agent("feed", "test")
ROOT = "1.2.826.0.1.3680043.10.1043"
#: the dose columns of a study that its summary sets
SUMMARY = ("dose_source", "irradiation_events", "ctdivol_mgy", "dlp_total_mgycm", "dap_total_gym2", "dose_rp_total_gy",
           "fluoro_time_s", "agd_left_mgy", "agd_right_mgy", "administered_activity_mbq", "effective_dose_msv",
           "effective_dose_method", "accumulated_dose", "body_region", "patient_age_years")


def _objects(tmp_path: Path, run: int) -> list[Path]:
    """A CT series of ten images (header CTDIvol rising, then falling) and its RDSR, a radiograph pair with DAP, a
    mammogram's four views with organ dose, and a child's CT series without an RDSR: the studies of run ``run``
    have UIDs and patients of their own, the same content."""
    study = f"{ROOT}.{run}"
    header: dict[str, Any] = {"issuer": "RTK", "birth_date": "19600301"}
    datasets = []
    series = f"{study}.1.9"
    for n, ctdivol in enumerate((8.0, 9.5, 12.25, 11.0, 10.0, 7.5, 9.0, 12.0, 6.5, 8.25)):
        datasets.append(ct_image(ctdivol=ctdivol, series_uid=series, study_uid=f"{study}.1",
                                 sop_uid=f"{study}.1.{n}", patient_id=f"A{run}", description="CT CHEST", **header))
    datasets.append(ct_rdsr([CtEvent("12.25", "410.5", region=CHEST, uid=f"{study}.1.90"),
                             CtEvent("9.0", "300.25", region=CHEST, uid=f"{study}.1.91")], dlp_total="710.75",
                            study_uid=f"{study}.1", sop_uid=f"{study}.1.99", patient_id=f"A{run}",
                            description="CT CHEST", **header))
    for n, view in enumerate(("PA", "LL")):
        datasets.append(projection_image(dap_dgycm2=("12.5", "31.75")[n], view=view, study_uid=f"{study}.2",
                                         sop_uid=f"{study}.2.{n}", patient_id=f"B{run}", description="XR CHEST",
                                         acquired=f"2024010510170{n}", **header))
    for n, side in enumerate("LLRR"):
        datasets.append(projection_image(modality="MG", dap_dgycm2=None, organ_dose_dgy=f"0.01{n}5",
                                         laterality=side, view=("CC", "MLO")[n % 2], study_uid=f"{study}.3",
                                         sop_uid=f"{study}.3.{n}", patient_id=f"B{run}",
                                         description="Mammogram bilateral", acquired=f"2024010510180{n}", **header))
    for n in range(6):
        datasets.append(ct_image(ctdivol=4.0 + n, series_uid=f"{study}.4.9", study_uid=f"{study}.4",
                                 sop_uid=f"{study}.4.{n}", patient_id=f"C{run}", description="CT HEAD",
                                 issuer="RTK", birth_date="20150601"))
    return [write(ds, tmp_path / f"{run}" / f"{n:03d}.dcm") for n, ds in enumerate(datasets)]


def _items(paths: list[Path], trusts: TrustRegistry) -> list[Any]:
    items = [read_dicom_header(path, trusts) for path in paths]
    assert not any(isinstance(item, ItemOutcome) for item in items)
    return items


def _stored(session: Session, run: int) -> dict[str, Any]:
    """Each study of the run's dose summary and its events' doses, keyed by the study's place in the run."""
    found: dict[str, Any] = {}
    for study in session.scalars(select(Study).where(Study.study_instance_uid.like(f"{ROOT}.{run}.%"))):
        place = study.study_instance_uid.rsplit(".", 1)[1]
        events = session.scalars(select(IrradiationEvent).where(IrradiationEvent.study_id == study.id))
        found[place] = ({name: getattr(study, name) for name in SUMMARY},
                        sorted((e.event_uid.replace(f"{ROOT}.{run}.", ""), e.source, e.ctdivol_mgy, e.dlp_mgycm,
                                e.dap_gym2, e.agd_mgy, e.effective_dose_msv) for e in events))
    return found


def _accumulated(summary: dict[str, Any], run: int) -> dict[str, Any]:
    """The run's UIDs taken out of the stored report totals, so that two runs compare."""
    text = repr(summary["accumulated_dose"]).replace(f"{ROOT}.{run}.", "")
    return {**summary, "accumulated_dose": text}


def test_a_group_written_in_bulk_has_the_dose_of_the_per_object_path(sessions: sessionmaker[Session],
                                                                     trusts: TrustRegistry, tmp_path: Path) -> None:
    """The summary of a study of many images, worked out once for the group, equals the one the per-object path
    leaves after summarising it image by image (CTDIvol the series' highest, DLP, DAP, AGD per side, effective
    dose), and each object's outcome names the dose source as it stood after that object."""
    with unit_of_work(sessions, write=True) as session:
        bulk = load_studies(session, trusts, _items(_objects(tmp_path, 1), trusts), agent=AGENT)
    per_object = apply_many(sessions, trusts, _items(_objects(tmp_path, 2), trusts), agent=AGENT, event_type="dicom")
    assert bulk is not None
    assert [o.detail["doseSource"] for o in bulk] == [o.detail["doseSource"] for o in per_object]
    assert [o.detail["created"] for o in bulk] == [o.detail["created"] for o in per_object]
    with sessions() as session:
        written, reference = _stored(session, 1), _stored(session, 2)
    assert set(written) == {"1", "2", "3", "4"}
    assert written["1"][0]["ctdivol_mgy"] == 12.25 and written["1"][0]["dlp_total_mgycm"] == 710.75
    assert written["4"][0]["ctdivol_mgy"] == 9.0 and written["4"][0]["dose_source"] == "header"  # the child's CT
    for place in written:
        assert _accumulated(written[place][0], 1) == _accumulated(reference[place][0], 2), place
        assert written[place][1] == reference[place][1], place


def test_a_group_summarises_each_study_once(sessions: sessionmaker[Session], trusts: TrustRegistry, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Twenty-three objects of four studies with dose: four summaries, not one per object."""
    calls: list[int] = []
    summarise = dz.summarise

    def counted(*args: Any, **kwargs: Any) -> dz.DoseSummary:
        calls.append(1)
        return summarise(*args, **kwargs)

    items = _items(_objects(tmp_path, 3), trusts)
    monkeypatch.setattr(dz, "summarise", counted)
    with unit_of_work(sessions, write=True) as session:
        assert load_studies(session, trusts, items, agent=AGENT) is not None
    assert len(items) == 23 and len(calls) == 4


def _records(session: Session, run: int) -> list[tuple[Any, ...]]:
    """The run's source records as link-on-write left them, the run's number taken out of their identifiers."""
    from mpi import SourceRecord

    rows = session.scalars(select(SourceRecord).where(SourceRecord.local_id.like(f"%{run}"))).all()
    patients = {row.regional_patient_id for row in rows}
    return [(len(patients),)] + sorted((row.namespace, row.local_id.removesuffix(str(run)), row.provisional,
                                        row.link_state, row.source_kind, row.version, row.active) for row in rows)


def test_a_group_links_its_new_patients_without_reading_them_back(engine: Any, sessions: sessionmaker[Session],
                                                                   trusts: TrustRegistry, tmp_path: Path) -> None:
    """A new patient of a group is looked up once, with the group's (one statement), and then written and linked on
    write without being looked up again or read back: the same records, links and outcomes as the per-object
    path's, for three new patients of twenty-three objects."""
    from sqlalchemy import event

    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    items = _items(_objects(tmp_path, 4), trusts)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with unit_of_work(sessions, write=True) as session:
            bulk = load_studies(session, trusts, items, agent=AGENT)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    per_object = apply_many(sessions, trusts, _items(_objects(tmp_path, 5), trusts), agent=AGENT, event_type="dicom")
    assert bulk is not None
    # records read by key or id (not a patient's members, which a record joining it reads for the golden record)
    reads = [s for s in statements if s.startswith("SELECT") and "FROM source_record" in s
             and "blocking_key" not in s and "regional_patient_id =" not in s]
    assert len(reads) == 1, reads  # the group's look-up; before: three more for each of the three new patients
    assert [(o.detail["patient"], o.detail["created"]) for o in bulk] == [
        (o.detail["patient"], o.detail["created"]) for o in per_object]
    with sessions() as session:
        assert _records(session, 4) == _records(session, 5)
        assert len(_records(session, 4)) == 1 + 3  # three new records


def test_a_patient_made_by_a_held_study_is_known_to_the_group_s_new_studies(
        sessions: sessionmaker[Session], trusts: TrustRegistry, tmp_path: Path) -> None:
    """A held study's object names a new patient, and a new study of the same group names it too: the new study
    follows the record the held one made (one record), where looking it up as the group found it (absent) would
    write it twice."""
    from mpi import SourceRecord

    study = f"{ROOT}.6"
    first = [ct_image(ctdivol=5.0, study_uid=f"{study}.1", sop_uid=f"{study}.1.0", patient_id="E6", issuer="RTK",
                      birth_date="19600301")]
    later = [ct_image(ctdivol=5.0, study_uid=f"{study}.1", sop_uid=f"{study}.1.1", patient_id="F6", issuer="RTK",
                      birth_date="19600301"),
             ct_image(ctdivol=6.0, study_uid=f"{study}.2", sop_uid=f"{study}.2.0", patient_id="F6", issuer="RTK",
                      birth_date="19600301")]
    with unit_of_work(sessions, write=True) as session:
        assert load_studies(session, trusts, _items([write(ds, tmp_path / f"a{n}.dcm") for n, ds in enumerate(first)],
                                                    trusts), agent=AGENT) is not None
    with unit_of_work(sessions, write=True) as session:
        outcomes = load_studies(session, trusts, _items([write(ds, tmp_path / f"b{n}.dcm")
                                                         for n, ds in enumerate(later)], trusts), agent=AGENT)
    assert outcomes is not None
    with sessions() as session:
        made = session.scalars(select(SourceRecord).where(SourceRecord.local_id == "F6")).all()
        assert len(made) == 1
        followed = {s.study_instance_uid: s.source_record_id for s in session.scalars(
            select(Study).where(Study.study_instance_uid.like(f"{study}.%")))}
    assert followed == {f"{study}.1": made[0].id, f"{study}.2": made[0].id}
