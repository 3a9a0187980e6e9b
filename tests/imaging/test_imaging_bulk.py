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
