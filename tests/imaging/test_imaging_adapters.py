"""imaging.adapters: the ingest entry points; bad input becomes a rejected outcome, never an exception."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from imaging_factories import CtEvent, ct_image, ct_rdsr, write
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from imaging.adapters import ingest_dicom_file, ingest_dicom_json, read_dicom_file
from imaging.dicom_study import facts_from_dataset
from imaging.tables import Study
from priorscan.audit import Agent
from priorscan.db import make_engine, session_factory
from priorscan.trusts import TrustRegistry

AGENT = Agent("user", "loader")
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.fixture
def sqlite_sessions(sqlite_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(sqlite_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "an empty file"),
    (b"MSH|^~\\&|not dicom at all\r", "an HL7 message with a .dcm name"),
    (b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00", "a preamble and a truncated meta header"),
])
def test_unreadable_files_are_rejected_with_a_reason(sqlite_sessions: sessionmaker[Session], trusts: TrustRegistry,
                                                     tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "broken.dcm"
    path.write_bytes(content)
    outcome = ingest_dicom_file(sqlite_sessions, trusts, path, agent=AGENT)
    assert not outcome.accepted and outcome.error_code == "dicom", reason
    assert outcome.reason


def test_a_missing_file_is_rejected(sqlite_sessions: sessionmaker[Session], trusts: TrustRegistry,
                                    tmp_path: Path) -> None:
    assert not ingest_dicom_file(sqlite_sessions, trusts, tmp_path / "nope", agent=AGENT).accepted


def test_real_files_from_pydicom(sqlite_sessions: sessionmaker[Session], trusts: TrustRegistry) -> None:
    ct = ingest_dicom_file(sqlite_sessions, trusts, PYDICOM_FILES / "CT_small.dcm", agent=AGENT)
    assert ct.accepted and ct.kind == "DICOM"
    assert ct.detail["patient"] == "unresolved"  # no issuer, and "JFK IMAGING CENTER" is none of our trusts
    sr = ingest_dicom_file(sqlite_sessions, trusts, PYDICOM_FILES / "test-SR.dcm", agent=AGENT)
    assert sr.accepted and sr.kind == "DICOM" and sr.detail["doseSource"] is None  # an SR, but not a dose report


def test_a_file_without_preamble(sqlite_sessions: sessionmaker[Session], trusts: TrustRegistry,
                                 tmp_path: Path) -> None:
    ds = ct_image(study_uid="1.2.3.20.1")
    del ds.file_meta
    raw = tmp_path / "raw"
    ds.save_as(raw, implicit_vr=True, little_endian=True)  # no preamble, no file meta: old modalities do this
    outcome = ingest_dicom_file(sqlite_sessions, trusts, raw, agent=AGENT)
    assert outcome.accepted, outcome.reason


def test_dicom_json_round_trip_of_an_rdsr(sqlite_sessions: sessionmaker[Session], trusts: TrustRegistry) -> None:
    ds = ct_rdsr([CtEvent("10", "400"), CtEvent("11", "410")], dlp_total="810", study_uid="1.2.3.20.2")
    outcome = ingest_dicom_json(sqlite_sessions, trusts, ds.to_json_dict(), agent=AGENT, source="RTK")
    assert outcome.accepted and outcome.kind == "RDSR"
    with sqlite_sessions() as session:
        study = session.scalars(select(Study)).one()
        assert (study.dlp_total_mgycm, study.irradiation_events, study.dose_source) == (810.0, 2, "rdsr")


def test_qido_result_without_issuer_is_qualified_by_its_source(sqlite_sessions: sessionmaker[Session],
                                                                trusts: TrustRegistry) -> None:
    dataset = {"0020000D": {"vr": "UI", "Value": ["1.2.3.20.3"]}, "00100020": {"vr": "LO", "Value": ["K1234567"]},
               "00080061": {"vr": "CS", "Value": ["CT", "SR"]}, "00081030": {"vr": "LO", "Value": ["CT CHEST"]},
               "00100010": {"vr": "PN", "Value": [{"Alphabetic": "TESTER^JOHN"}]}}
    outcome = ingest_dicom_json(sqlite_sessions, trusts, dataset, agent=AGENT, source="RYR")
    assert outcome.accepted and outcome.kind == "DICOM JSON" and outcome.detail["patient"] == "provisional"
    with sqlite_sessions() as session:
        study = session.scalars(select(Study)).one()
        assert (study.modality, study.body_region, study.performing_trust) == ("CT", "chest", "RYR")


@pytest.mark.parametrize(("dataset", "reason"), [
    ({"00100020": {"vr": "LO", "Value": ["X"]}}, "no Study Instance UID"),
    ({"0020000D": {"vr": "UI", "Value": "1.2"}}, "a Value that is not a list"),
    ({"zzzz": {"vr": "UI", "Value": ["1.2"]}}, "a key that is not a tag"),
    ([], "not an object"),
])
def test_bad_dicom_json_is_rejected(sqlite_sessions: sessionmaker[Session], trusts: TrustRegistry, dataset: object,
                                    reason: str) -> None:
    outcome = ingest_dicom_json(sqlite_sessions, trusts, dataset, agent=AGENT)  # type: ignore[arg-type]
    assert not outcome.accepted, reason


def test_vendor_rdsr_from_a_known_sender_links_and_resend_changes_nothing(sessions: sessionmaker[Session],
                                                                   trusts: TrustRegistry,
                                                                   vendor_rdsr: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    path = vendor_rdsr["philips_allura_clarity_u104"]  # no issuer, institution "NUS, Umea U104": the sender qualifies
    first = ingest_dicom_file(sessions, trusts, path, agent=AGENT, source_trust="RA2")
    second = ingest_dicom_file(sessions, trusts, path, agent=AGENT, source_trust="RA2")
    assert first.accepted and first.kind == "RDSR" and first.detail["patient"] == "provisional"
    assert second.detail["created"] is False
    with sessions() as session:
        study = session.scalars(select(Study)).one()
        # Plane A 7.8391324289e-06 Gy·m² + Plane B 0.0 (read from the file by hand; see test_imaging_rdsr.py)
        assert study.dap_total_gym2 == pytest.approx(7.8391324289e-06, rel=1e-9)
        assert (study.irradiation_events, study.fluoro_time_s, study.performing_trust) == (25, 37.0, "RA2")


#: The same patient ID and description in three character sets, and what latin-1 made of them before: UTF-8's two
#: bytes a letter ("Ã\x89Ã\x96" for "ÉÖ"), ISO_IR 144's other letters, ISO 2022's escape sequences left in the text.
CHARACTER_SETS = [
    pytest.param("ISO_IR 192", "ÉÖ1957", "CT tête et thorax", id="utf-8"),
    pytest.param("ISO_IR 144", "КТ1957", "КТ головы", id="cyrillic"),
    pytest.param(["", "ISO 2022 IR 87"], "山田1957", "CT 頭部", id="iso-2022-japanese"),
]


@pytest.mark.parametrize(("charset", "patient_id", "description"), CHARACTER_SETS)
def test_a_file_is_read_in_its_character_set_as_dicom_json_is(sessions: sessionmaker[Session], trusts: TrustRegistry,
                                                             tmp_path: Path, charset: str | list[str],
                                                             patient_id: str, description: str) -> None:
    """A file (or a push, read by the same reader) and the DICOMweb door give one patient ID and description: read
    as latin-1, the file's patient ID was another identifier, so one patient's studies had two source records."""
    image = ct_image(patient_id=patient_id, description=description, study_uid=pydicom.uid.generate_uid())
    image.SpecificCharacterSet = charset
    request = pydicom.Dataset()
    request.RequestedProcedureDescription = description  # in a sequence item: the parent's character set
    image.RequestAttributesSequence = [request]
    report = ct_rdsr([CtEvent("40.0", "700.0")], dlp_total="700.0", patient_id=patient_id,
                     study_uid=pydicom.uid.generate_uid())
    report.SpecificCharacterSet = charset
    from_file = ingest_dicom_file(sessions, trusts, write(image, tmp_path / "image.dcm"), agent=AGENT)
    from_json = ingest_dicom_json(sessions, trusts, report.to_json_dict(), agent=AGENT)
    assert from_file.accepted and from_json.accepted
    assert from_file.detail["regionalPatientId"] == from_json.detail["regionalPatientId"]
    with sessions() as session:
        study = session.scalars(select(Study).where(Study.study_instance_uid == image.StudyInstanceUID)).one()
        assert study.description == description
    facts = facts_from_dataset(read_dicom_file(tmp_path / "image.dcm"), trusts)
    assert facts is not None and facts.patient.local_id == patient_id
    assert description in facts.procedure_texts or facts.description == description


def test_a_file_in_implicit_vr_is_read_in_its_character_set(trusts: TrustRegistry, tmp_path: Path) -> None:
    """Implicit VR: the element carries no VR, the dictionary says it is text."""
    image = ct_image(patient_id="ÉÖ1957", description="CT tête")
    image.SpecificCharacterSet = "ISO_IR 192"
    image.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    path = tmp_path / "implicit.dcm"
    image.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=True)
    facts = facts_from_dataset(read_dicom_file(path), trusts)
    assert facts is not None and (facts.patient.local_id, facts.description) == ("ÉÖ1957", "CT tête")


ENHANCED_XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.76"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def test_an_enhanced_xray_dose_sr_gives_the_studys_dose(sessions: sessionmaker[Session], trusts: TrustRegistry,
                                                        tmp_path: Path) -> None:
    """The Enhanced X-Ray Radiation Dose SR (1.2.840.10008.5.1.4.1.1.88.76) has the RDSR's root templates: its CT
    dose was not read at all (an SR of an unknown class), so the study had no dose."""
    report = ct_rdsr([CtEvent("40.0", "700.0")], dlp_total="700.0", study_uid=pydicom.uid.generate_uid(),
                     description="CT HEAD")
    report.SOPClassUID = report.file_meta.MediaStorageSOPClassUID = ENHANCED_XRAY_DOSE_SR
    outcome = ingest_dicom_file(sessions, trusts, write(report, tmp_path / "enhanced.dcm"), agent=AGENT)
    assert outcome.accepted and outcome.kind == "RDSR"
    with sessions() as session:
        study = session.scalars(select(Study)).one()
        assert (study.modality, study.dose_source, study.dlp_total_mgycm, study.ctdivol_mgy) == ("CT", "rdsr", 700.0,
                                                                                                 40.0)


def test_a_patient_radiation_dose_report_is_no_studys_dose(sessions: sessionmaker[Session], trusts: TrustRegistry,
                                                           tmp_path: Path) -> None:
    """A Patient Radiation Dose Report (DCM 128401, TID 10030: dose software's organ dose estimates over a patient's
    examinations) sent as a Comprehensive SR was read as a projection X-ray dose report by the words "radiation dose"
    in its title: a study of modality XR with an RDSR dose source and no figure."""
    report = ct_rdsr([], dlp_total=None, study_uid=pydicom.uid.generate_uid())
    report.SOPClassUID = report.file_meta.MediaStorageSOPClassUID = COMPREHENSIVE_SR
    report.ConceptNameCodeSequence[0].CodeValue = "128401"
    report.ConceptNameCodeSequence[0].CodeMeaning = "Patient Radiation Dose Report"
    outcome = ingest_dicom_file(sessions, trusts, write(report, tmp_path / "prdsr.dcm"), agent=AGENT)
    assert outcome.accepted and outcome.kind != "RDSR"
    with sessions() as session:
        study = session.scalars(select(Study)).one()
        assert (study.modality, study.dose_source) == (None, None)  # an SR alone names no modality of the study


def test_a_multi_valued_dicom_json_value_reads_as_a_files(sessions: sessionmaker[Session],
                                                          trusts: TrustRegistry) -> None:
    """A QIDO-RS study result's ModalitiesInStudy is multi-valued (an MR with its presentation states, a CT with its
    RDSR); read from DICOM JSON as the text of a Python list ("['MR', 'PR']"), the polled study had no modality, so
    it was comparable with nothing."""
    uid = pydicom.uid.generate_uid()
    qido = {"0020000D": {"vr": "UI", "Value": [uid]}, "00080020": {"vr": "DA", "Value": ["20240105"]},
            "00080061": {"vr": "CS", "Value": ["MR", "PR"]}, "00100020": {"vr": "LO", "Value": ["AB123456"]},
            "00100021": {"vr": "LO", "Value": ["RTK"]}, "00081030": {"vr": "LO", "Value": ["Brain"]}}
    assert ingest_dicom_json(sessions, trusts, qido, agent=AGENT).accepted
    with sessions() as session:
        study = session.scalars(select(Study)).one()
        assert (study.modality, study.modalities_in_study) == ("MR", "MR\\PR")
