"""imaging.index (through the DICOM adapters): idempotent studies, dose never counted twice, studies that follow
their patient through merge, unmerge, link and unlink, provisional records, unresolved patients. Both backends."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from imaging_factories import CtEvent, ct_image, ct_rdsr, projection_image, siemens_radiation_summary, write
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from imaging.adapters import ingest_dicom_file
from imaging.queries import patient_timeline
from imaging.tables import IrradiationEvent, Study
from mpi import Demographics, PatientIndex, RecordKey
from mpi.tables import SourceRecord
from priorscan.audit import Agent
from priorscan.tables import AuditEvent
from priorscan.trusts import TrustRegistry

AGENT = Agent("feed", "test-pacs")
RTK = "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"
RXC = "https://fhir.esht.nhs.uk/Id/hospital-number"


def ingest(sessions: sessionmaker[Session], trusts: TrustRegistry, ds, path: Path):  # type: ignore[no-untyped-def]
    outcome = ingest_dicom_file(sessions, trusts, write(ds, path), agent=AGENT)
    assert outcome.accepted, outcome.reason
    return outcome


def study(sessions: sessionmaker[Session], uid: str) -> Study:
    with sessions() as session:
        return session.scalars(select(Study).where(Study.study_instance_uid == uid)).one()


def pas_record(sessions: sessionmaker[Session], trusts: TrustRegistry, namespace: str, local_id: str,
               **demographics: object) -> str:
    with sessions() as session:
        outcome = PatientIndex(session, trusts).upsert(
            Demographics(namespace=namespace, local_id=local_id, **demographics),  # type: ignore[arg-type]
            event="ADT^A04", actor="test-pas")
        session.commit()
        return outcome.regional_id


def test_a_resent_and_growing_report_is_counted_once(sessions, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first, second = CtEvent("10.0", "400.0"), CtEvent("12.0", "420.0")
    uid = "1.2.826.0.1.3680043.10.1.1"
    ingest(sessions, trusts, ct_rdsr([first], dlp_total="400.0", study_uid=uid), tmp_path / "a.dcm")
    ingest(sessions, trusts, ct_rdsr([first, second], dlp_total="820.0", study_uid=uid), tmp_path / "b.dcm")
    again = ingest(sessions, trusts, ct_rdsr([first, second], dlp_total="820.0", study_uid=uid), tmp_path / "c.dcm")
    late = ingest(sessions, trusts, ct_rdsr([first], dlp_total="400.0", study_uid=uid), tmp_path / "d.dcm")
    assert again.detail["created"] is False and late.accepted
    stored = study(sessions, uid)
    assert (stored.dlp_total_mgycm, stored.irradiation_events, stored.ctdivol_mgy) == (820.0, 2, 12.0)
    assert stored.effective_dose_msv == pytest.approx(0.0145 * 820)  # chest events, 32 cm phantom
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Study)) == 1
        assert session.scalar(select(func.count()).select_from(IrradiationEvent)) == 2
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 4  # every write audited


def test_a_siemens_summary_resent_as_it_grew_counts_its_largest_and_yields_to_an_rdsr(sessions, trusts,  # type: ignore[no-untyped-def]
                                                                                       tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.10.1.9"
    header = {"study_uid": uid, "description": "Mobile image intensifier thorax"}
    ingest(sessions, trusts, siemens_radiation_summary(dap="0.1200", fluoro_s="20.0", **header), tmp_path / "s1")
    ingest(sessions, trusts, siemens_radiation_summary(dap="0.2359", fluoro_s="34.427", **header), tmp_path / "s2")
    grown = study(sessions, uid)  # two summaries of one examination under two SOP Instance UIDs: not 0.3559 Gy·cm²
    assert (grown.dose_source, grown.modality, grown.body_region) == ("rdsr", "RF", "chest")
    assert (grown.dap_total_gym2, grown.fluoro_time_s) == (pytest.approx(2.359e-05), pytest.approx(34.427))
    ingest(sessions, trusts, ct_rdsr([CtEvent("10.0", "300.0")], dlp_total="300.0", study_uid=uid), tmp_path / "ct")
    with_ct = study(sessions, uid)  # a CT RDSR states no DAP: the summary's stays, and the DLP is the CT's
    assert (with_ct.dap_total_gym2, with_ct.dlp_total_mgycm) == (pytest.approx(2.359e-05), 300.0)


def test_images_of_one_series_give_one_header_event_and_an_rdsr_supersedes_them(sessions, trusts,  # type: ignore[no-untyped-def]
                                                                               tmp_path: Path) -> None:
    uid, series = "1.2.826.0.1.3680043.10.1.2", "1.2.826.0.1.3680043.10.1.2.1"
    for n, ctdivol in enumerate((11.0, 13.5, 12.0)):
        ingest(sessions, trusts, ct_image(ctdivol=ctdivol, series_uid=series, study_uid=uid, description="CT HEAD"),
               tmp_path / f"img{n}.dcm")
    header_only = study(sessions, uid)
    assert (header_only.dose_source, header_only.ctdivol_mgy, header_only.irradiation_events) == ("header", 13.5, 1)
    assert header_only.dlp_total_mgycm is None  # images carry no DLP
    ingest(sessions, trusts, ct_rdsr([CtEvent("40.0", "700.0")], dlp_total="700.0", study_uid=uid), tmp_path / "sr")
    with_report = study(sessions, uid)
    assert (with_report.dose_source, with_report.ctdivol_mgy, with_report.dlp_total_mgycm) == ("rdsr", 40.0, 700.0)
    assert (with_report.modality, with_report.body_region) == ("CT", "head")


def test_for_processing_and_for_presentation_images_of_one_exposure_count_once(sessions, trusts,  # type: ignore[no-untyped-def]
                                                                               tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.10.1.3"
    for n in range(2):  # the same exposure (same acquisition time, view and DAP) as two images
        ingest(sessions, trusts, projection_image(study_uid=uid, dap_dgycm2="25.0", description="XR CHEST"),
               tmp_path / f"x{n}.dcm")
    ingest(sessions, trusts, projection_image(study_uid=uid, dap_dgycm2="30.0", view="LL", acquired="20240105101800",
                                              description="XR CHEST"), tmp_path / "lat.dcm")
    stored = study(sessions, uid)
    assert stored.dap_total_gym2 == pytest.approx((25.0 + 30.0) * 1e-5)  # dGy·cm² → Gy·m²
    assert stored.irradiation_events == 2


def test_unknown_patient_gets_a_provisional_record_that_the_pas_takes_over(sessions, trusts,  # type: ignore[no-untyped-def]
                                                                           tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.10.1.4"
    outcome = ingest(sessions, trusts, ct_image(study_uid=uid, patient_id="XY654321", issuer="RTK"), tmp_path / "a")
    assert outcome.detail["patient"] == "provisional" and outcome.detail["regionalPatientId"]
    regional = pas_record(sessions, trusts, RTK, "XY654321", family="TESTER", given="JANE", sex="female")
    with sessions() as session:
        record = session.scalars(select(SourceRecord).where(SourceRecord.local_id == "XY654321")).one()
        assert record.provisional is False
        assert patient_timeline(session, trusts, regional).entries[0].study_instance_uid == uid


def test_a_provisional_record_never_overwrites_the_pas(sessions, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pas_record(sessions, trusts, RTK, "AB123456", family="RIGHTNAME", sex="female")
    ingest(sessions, trusts, ct_image(name="WRONGNAME^X"), tmp_path / "a")
    with sessions() as session:
        record = session.scalars(select(SourceRecord).where(SourceRecord.local_id == "AB123456")).one()
        assert (record.family, record.provisional) == ("RIGHTNAME", False)


def test_studies_follow_their_patient_through_merge_and_unmerge(sessions, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    keep = pas_record(sessions, trusts, RTK, "AA000001", family="ALPHA", birth_date=date(1950, 1, 1))
    gone = pas_record(sessions, trusts, RTK, "AA000002", family="OMEGA", birth_date=date(1990, 2, 2))
    assert keep != gone
    ingest(sessions, trusts, ct_image(study_uid="1.2.3.10.1", patient_id="AA000001"), tmp_path / "a")
    ingest(sessions, trusts, ct_image(study_uid="1.2.3.10.2", patient_id="AA000002"), tmp_path / "b")
    with sessions() as session:
        PatientIndex(session, trusts).merge(RecordKey(RTK, "AA000001"), RecordKey(RTK, "AA000002"), actor="test")
        session.commit()
        assert {e.study_instance_uid for e in patient_timeline(session, trusts, keep).entries} == {
            "1.2.3.10.1", "1.2.3.10.2"}
        assert patient_timeline(session, trusts, gone).regional_id == keep  # the retired id leads to the survivor
        PatientIndex(session, trusts).unmerge(RecordKey(RTK, "AA000001"), RecordKey(RTK, "AA000002"), actor="test")
        session.commit()
        assert [e.study_instance_uid for e in patient_timeline(session, trusts, keep).entries] == ["1.2.3.10.1"]


def test_studies_follow_link_and_unlink_across_trusts(sessions, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    one = pas_record(sessions, trusts, RTK, "AA000003", family="BETA", birth_date=date(1960, 3, 3))
    pas_record(sessions, trusts, RXC, "B1234567", family="GAMMA", birth_date=date(1970, 4, 4))
    ingest(sessions, trusts, ct_image(study_uid="1.2.3.11.1", patient_id="AA000003", issuer="RTK"), tmp_path / "a")
    ingest(sessions, trusts, ct_image(study_uid="1.2.3.11.2", patient_id="B1234567", issuer="RXC"), tmp_path / "b")
    with sessions() as session:
        index = PatientIndex(session, trusts)
        index.link(RecordKey(RTK, "AA000003"), RecordKey(RXC, "B1234567"), actor="test")
        session.commit()
        assert len(patient_timeline(session, trusts, one).entries) == 2
        index.unlink(RecordKey(RTK, "AA000003"), RecordKey(RXC, "B1234567"), actor="test")
        session.commit()
        assert len(patient_timeline(session, trusts, one).entries) == 1


def test_no_issuer_falls_back_to_the_institution_else_stays_unresolved(sessions, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    by_institution = ingest(sessions, trusts, ct_image(study_uid="1.2.3.12.1", issuer=None,
                                                       institution="Royal Surrey County Hospital"), tmp_path / "a")
    assert by_institution.detail["patient"] == "provisional"
    assert study(sessions, "1.2.3.12.1").patient_issuer == "https://fhir.royalsurrey.nhs.uk/Id/hospital-number"
    unresolved = ingest(sessions, trusts, ct_image(study_uid="1.2.3.12.2", issuer=None, institution="Elsewhere"),
                        tmp_path / "b")
    assert unresolved.detail["patient"] == "unresolved" and unresolved.detail["regionalPatientId"] is None
    kept = study(sessions, "1.2.3.12.2")
    assert kept.source_record_id is None and "issuer" in kept.patient_unresolved
    resent = ingest(sessions, trusts, ct_image(study_uid="1.2.3.12.2", issuer="RXC", patient_id="B7654321"),
                    tmp_path / "c")  # identity arrives with a later object of the same study
    assert resent.detail["patient"] == "provisional"
    assert study(sessions, "1.2.3.12.2").patient_unresolved is None


def test_an_nhs_number_qualifies_a_study_without_issuer(sessions, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    regional = pas_record(sessions, trusts, RTK, "AA000009", nhs_number="9434765919", family="DELTA", given="ANN",
                          birth_date=date(1980, 5, 5), sex="female", nhs_verification="01")
    outcome = ingest(sessions, trusts, ct_image(study_uid="1.2.3.13.1", issuer=None, patient_id="LOCAL1",
                                                name="DELTA^ANN", birth_date="19800505",
                                                other_ids=[("9434765919", "NHS")]), tmp_path / "a")
    assert outcome.detail["regionalPatientId"] == regional


def test_mammography_sides_add_up_across_images(sessions, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uid = "1.2.826.0.1.3680043.10.1.90"
    for n, side in enumerate(("L", "L", "R")):
        ingest(sessions, trusts, projection_image(modality="MG", laterality=side, view="CC", study_uid=uid,
                                                  acquired=f"2024010510170{n}", dap_dgycm2=None,
                                                  organ_dose_dgy="0.012"), tmp_path / f"{n}.dcm")
        stored = study(sessions, uid)
        assert (stored.modality, stored.body_region) == ("MG", "breast")  # always the breast, no description needed
        assert stored.laterality == ("left" if n < 2 else "both")  # left and right images make both
