"""Studies that are not a patient's examination (QA, physics, phantom tests): recognised from what the file says and
from the trusts' configured indicators, stored with their evidence, kept out of priors and dose audits
(:mod:`imaging.not_patient`; hazard H-DICOM-03 in docs/clinical-safety/hazard-log.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from imaging_factories import HEAD_PHANTOM, CtEvent, ct_image, ct_rdsr, dataset
from pydicom.dataset import Dataset
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from imaging import drl_audit, ingest_dicom_datasets, patient_timeline, studies_frame, to_fhir
from imaging.dicom_study import facts_from_dataset
from imaging.not_patient import evidence, merge_evidence, named_test_word
from imaging.queries import export_rows
from imaging.tables import Study
from priorscan.audit import Agent
from priorscan.errors import ConfigurationError
from priorscan.trusts import TrustRegistry, load_trusts

AGENT = Agent("feed", "not-patient-tests")


@pytest.mark.parametrize(("text", "word"), [
    ("Daily QA", "QA"),  # Spectrum Dynamics' RDSR Acquisition Protocol
    ("10.13 RADIOTHERAPY QA", "QA"),  # GE's, a radiotherapy CT's QA protocol
    ("4DCT /PHYSICS", "PHYSICS"),  # Philips Big Bore's
    ("Z_Physics Test", "PHYSICS"),  # an underscore separates words
    ("MONTHLY_QC", "QC"),
    ("CATPHAN PHANTOM", "PHANTOM"),
    ("Quality Control", "QUALITY CONTROL"),
    ("DETECTOR CALIBRATION", "CALIBRATION"),
    ("CT HEAD", None),
    ("CT QUALITATIVE PERFUSION", None),  # QUALITATIVE holds neither QA nor QUALITY CONTROL as a word
    ("QAB", None),  # letters next to QA: another word
    ("QA1 protocol", None),  # a digit next to it too
    ("quality image", None),  # "quality" alone is a clinical word
    ("MRI BRAIN phantom limb pain", None),  # a patient's phantom limb
    ("XR PELVIS AP WITH CALIBRATION MARKER", None),  # a templating marker on a patient's hip film
    ("XR HIP TEMPLATING CALIBRATION", None),
])
def test_a_description_names_a_test_only_by_a_whole_word(text: str, word: str | None) -> None:
    assert named_test_word(text) == word


@pytest.mark.parametrize("name", ["KHAN^QAISER", "AQUARIUS^QUINN", "FAQIR^ALI", "PHYSICIAN^JO", "QUALITY^ANNE",
                                  "PHANTOMS^X"])
def test_a_patient_whose_name_holds_the_letters_of_an_indicator_is_a_patient(name: str) -> None:
    # Qaiser, Faqir: QA inside a word; a physician, "Quality" or "Phantoms" as a surname: not the word itself
    assert evidence([], patient_name=name, name_words=("QA", "PHYSICS", "PHANTOM", "QC")) == []


def test_evidence_names_the_field_and_never_the_patients_name_or_identifier() -> None:
    found = evidence([("StudyDescription", "Z_Physics Test"), ("SeriesDescription", "Head 5mm")],
                     patient_name="PHYSICS^TABLE AEC", patient_id="PHY0042", name_words=("PHYSICS",),
                     id_prefixes=("PHY",), flags=[("QualityControlSubject", "YES"), ("QualityControlImage", "NO")])
    assert found == ["QualityControlSubject: YES", "StudyDescription: Z_Physics Test", "PatientName: indicator PHYSICS",
                     "PatientID: prefix PHY"]
    assert not any("TABLE AEC" in item or "0042" in item for item in found)
    assert merge_evidence("SR Comment: QA", ["SR Comment: QA", "PatientName: indicator QA"]) == \
        "SR Comment: QA; PatientName: indicator QA"


def _trusts_with_indicators(tmp_path: Path) -> TrustRegistry:
    path = tmp_path / "trusts.toml"
    path.write_text('''
[not_patient]
name_words = ["PHANTOM"]

[[trust]]
ods = "RTK"
name = "Ashford and St Peter's"
fhir_system = "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"
dicom_issuer = "RTK"
[trust.not_patient]
patient_id_prefixes = ["PHY"]
name_words = ["DOSIMETRY"]

[[trust]]
ods = "RXC"
name = "East Sussex"
fhir_system = "https://fhir.esht.nhs.uk/Id/hospital-number"
dicom_issuer = "RXC"
''', encoding="utf-8")
    return load_trusts(path)


def test_indicators_are_configured_per_trust_and_for_the_consortium(tmp_path: Path) -> None:
    trusts = _trusts_with_indicators(tmp_path)

    def said(**header: object) -> list[str] | None:
        facts = facts_from_dataset(ct_image(description="CT HEAD", **header), trusts)  # type: ignore[arg-type]
        assert facts is not None
        return facts.not_patient

    assert said(patient_id="PHY0001", issuer="RTK", name="SMITH^JO") == ["PatientID: prefix PHY"]
    assert said(patient_id="PHY0001", issuer="RXC", name="SMITH^JO") == []  # RXC registers patients as PHY...
    assert said(patient_id="K1234567", issuer="RTK", name="DOSIMETRY^CT1") == ["PatientName: indicator DOSIMETRY"]
    assert said(patient_id="K1234567", issuer="RXC", name="DOSIMETRY^CT1") == []
    assert said(patient_id="K1234567", issuer="RXC", name="PHANTOM^HEAD") == ["PatientName: indicator PHANTOM"]
    assert said(patient_id="K1234567", issuer="RXC", name="PHYSICS^HEAD") == []  # the consortium chose its words


def test_an_indicator_too_short_to_tell_from_a_patient_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "trusts.toml"
    path.write_text('[not_patient]\nname_words = ["Q"]\n[[trust]]\nods = "RTK"\nname = "Ashford"\n'
                    'fhir_system = "https://fhir.a.nhs.uk/Id/n"\ndicom_issuer = "RTK"\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not_patient"):
        load_trusts(path)


def _comment(text: str) -> Dataset:
    item, concept = Dataset(), Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "121106", "DCM", "Comment"
    item.RelationshipType, item.ValueType, item.ConceptNameCodeSequence, item.TextValue = (
        "CONTAINS", "TEXT", [concept], text)
    return item


def test_a_dose_report_says_so_in_its_comments_and_the_standard_flag_is_read(trusts: TrustRegistry) -> None:
    report = ct_rdsr([CtEvent("20", "400")], dlp_total="400", description="CT HEAD")
    report.ContentSequence.append(_comment("QA"))
    facts = facts_from_dataset(report, trusts)
    assert facts is not None and facts.not_patient == ["SR Comment: QA"]
    image = ct_image(description="CT HEAD")
    image.QualityControlSubject = "YES"
    facts = facts_from_dataset(image, trusts)
    assert facts is not None and facts.not_patient == ["QualityControlSubject: YES"]


def _study(session: Session, uid: str) -> Study:
    study = session.scalars(select(Study).where(Study.study_instance_uid == uid)).one()
    return study


def test_a_test_study_is_indexed_with_its_evidence_and_stays_one(sessions: sessionmaker[Session],
                                                                 trusts: TrustRegistry) -> None:
    # the phantom's RDSR, then an image of the same study whose own header says nothing of a test
    report = ct_rdsr([CtEvent("20", "400")], dlp_total="400", study_uid="1.2.826.0.1.77.1",
                     description="CT HEAD PHANTOM")
    image = ct_image(study_uid="1.2.826.0.1.77.1", description="CT HEAD")
    patient = ct_rdsr([CtEvent("21", "410")], dlp_total="410", study_uid="1.2.826.0.1.77.2",
                      description="CT HEAD", name="KHAN^QAISER")
    outcomes = ingest_dicom_datasets(sessions, trusts, [(report, "RTK"), (image, "RTK"), (patient, "RTK")],
                                     agent=AGENT)
    assert all(o.accepted for o in outcomes)
    assert outcomes[0].detail["notPatient"] == "StudyDescription: CT HEAD PHANTOM"
    assert "notPatient" not in outcomes[2].detail
    with sessions() as session:
        test, real = _study(session, "1.2.826.0.1.77.1"), _study(session, "1.2.826.0.1.77.2")
        assert test.not_patient == "StudyDescription: CT HEAD PHANTOM" and real.not_patient is None
        assert (test.modality, test.body_region, test.dlp_total_mgycm) == ("CT", "head", 400.0)  # indexed as ever
        rows = {row["study_instance_uid"]: row for row in export_rows(session)}
        assert rows["1.2.826.0.1.77.1"]["not_patient"] == "StudyDescription: CT HEAD PHANTOM"
        assert rows["1.2.826.0.1.77.2"]["not_patient"] == ""
        extensions = {e["url"].rsplit("/", 1)[-1]: e for e in to_fhir(test, None, trusts).get("extension", [])}
        assert extensions["not-patient"]["valueString"] == "StudyDescription: CT HEAD PHANTOM"


def test_a_test_study_adds_nothing_to_dose_audits_or_the_cumulative_dose(engine: Engine, trusts: TrustRegistry
                                                                         ) -> None:
    from priorscan.db import session_factory

    sessions = session_factory(engine)
    common = {"patient_id": "AB123456", "issuer": "RTK", "name": "TESTER^JANE"}
    real = ct_rdsr([CtEvent("40", "700", region=("T-D1100", "SRT", "Head"), phantom=HEAD_PHANTOM)], dlp_total="700",
                   study_uid="1.2.826.0.1.78.1", description="CT HEAD", **common)  # type: ignore[arg-type]
    phantom = ct_rdsr([CtEvent("90", "2500", region=("T-D1100", "SRT", "Head"), phantom=HEAD_PHANTOM)],
                      dlp_total="2500",
                      study_uid="1.2.826.0.1.78.2", description="CT HEAD", **common)  # type: ignore[arg-type]
    phantom.SeriesDescription = "Monthly QA head phantom"
    assert all(o.accepted for o in ingest_dicom_datasets(sessions, trusts, [(real, "RTK"), (phantom, "RTK")],
                                                         agent=AGENT))
    frame = studies_frame(engine, pseudonym_key=b"k")
    assert len(frame) == 1 and frame.iloc[0]["dlp_total_mgycm"] == 700.0
    audit = drl_audit(frame).iloc[0]
    assert (audit["studies"], audit["dlp_median_mgycm"]) == (1, 700.0)  # the phantom's 2,500 mGy·cm is no patient's
    everything = studies_frame(engine, pseudonym_key=b"k", not_patient=True)
    assert sorted(everything["not_patient"]) == [False, True]
    assert drl_audit(everything).iloc[0]["studies"] == 1  # a frame holding them still audits patients only
    with sessions() as session:
        regional = session.scalar(select(Study.source_record_id).where(Study.study_instance_uid == "1.2.826.0.1.78.1"))
        assert regional is not None
        from mpi import SourceRecord

        regional_id = session.get(SourceRecord, regional).regional_patient_id  # type: ignore[union-attr]
        timeline = patient_timeline(session, trusts, regional_id)
        assert timeline is not None and len(timeline.entries) == 2  # both shown, the test as one
        shown = {e.study_instance_uid: e for e in timeline.entries}
        assert shown["1.2.826.0.1.78.2"].not_patient == "SeriesDescription: Monthly QA head phantom"
        assert shown["1.2.826.0.1.78.2"].effective_dose_msv is not None  # estimated as for any study, but
        assert timeline.cumulative_effective_dose_msv == shown["1.2.826.0.1.78.1"].effective_dose_msv  # not added


def test_a_header_without_any_of_it_is_a_patients(trusts: TrustRegistry) -> None:
    facts = facts_from_dataset(dataset(sop_class="1.2.840.10008.5.1.4.1.1.2", modality="CT", description="CT HEAD",
                                       name="QATESTING^JO"), trusts)
    # "QATESTING" is not the word QA: a name is matched by whole words only, even one that looks like a test
    assert facts is not None and facts.not_patient == []


def test_a_feed_without_its_own_reading_is_read_by_its_description_and_patient(sessions: sessionmaker[Session],
                                                                               trusts: TrustRegistry) -> None:
    # an HL7 ORU or FHIR ImagingStudy statement: the index reads its description and the patient it names
    from imaging import StudyIndex
    from imaging.facts import StudyFacts
    from imaging.identity import PatientIdentity

    rtk = trusts.by_ods("RTK")
    with sessions() as session:
        index = StudyIndex(session, trusts)
        for uid, description, family in (("1.2.826.0.1.79.1", "CT HEAD QA PHANTOM", "OKAFOR"),
                                         ("1.2.826.0.1.79.2", "CT HEAD", "PHYSICS"),
                                         ("1.2.826.0.1.79.3", "CT QUALITATIVE HEAD", "QAISER")):
            facts = StudyFacts(uid, "fhir", patient=PatientIdentity(rtk.fhir_system, "AB555001", "RTK",
                                                                    family=family, given="JO"),
                               performing_trust="RTK", modalities=["CT"], description=description)
            index.apply(facts, actor="feed:tests")
        session.flush()
        assert [_study(session, f"1.2.826.0.1.79.{n}").not_patient for n in (1, 2, 3)] == [
            "description: CT HEAD QA PHANTOM", "PatientName: indicator PHYSICS", None]
