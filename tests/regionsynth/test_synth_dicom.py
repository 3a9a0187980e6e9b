"""DICOM: every file reads with pydicom; RDSRs have the template structure; the truth's dose is what was written."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian
from synth_feeds import children, concept, content_items, dicom_files, numeric, read_csv

from priorscan.trusts import TrustRegistry
from regionsynth.dicom_encoding import IMPLEMENTATION_VERSION, encode_file
from regionsynth.rdsr import RDSR_SOP_CLASS

CT_UNITS = {"mGy.cm", "mGycm"}
DAP_UNITS = {"Gy.m2", "Gym2"}


@pytest.fixture(scope="module")
def files(small_region: Path) -> dict[Path, Dataset]:
    return {path: dcmread(path) for path in dicom_files(small_region)}


def test_every_file_reads_and_names_the_patient_by_trust(files: dict[Path, Dataset], trusts: TrustRegistry) -> None:
    assert len(files) > 80
    suffixes = {p.suffix for p in files}
    assert suffixes == {".dcm", ""}, "files with and without .dcm"
    for path, ds in files.items():
        ods = path.parent.parent.name
        assert ds.IssuerOfPatientID == trusts.by_ods(ods).dicom_issuer
        assert ds.StudyInstanceUID == path.parent.name
        assert "PixelData" not in ds
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert any("OtherPatientIDsSequence" in ds for ds in files.values())


def test_ct_rdsrs_follow_tid_10011(files: dict[Path, Dataset]) -> None:
    reports = [ds for ds in files.values() if ds.SOPClassUID == RDSR_SOP_CLASS
               and ds.ContentTemplateSequence[0].TemplateIdentifier == "10011"]
    assert reports
    for ds in reports:
        assert concept(ds) == "113701"
        (accumulated,) = children(ds, "113811")
        (total,) = children(accumulated, "113813")
        dlp_total, unit = numeric(total)
        assert unit in CT_UNITS
        acquisitions = children(ds, "113819")
        assert acquisitions and int(numeric(children(accumulated, "113812")[0])[0]) == len(acquisitions)
        dlps = []
        for acquisition in acquisitions:
            assert children(acquisition, "123014") and children(acquisition, "113769")
            (dose,) = children(acquisition, "113829")
            assert numeric(children(dose, "113830")[0])[1] == "mGy"
            assert children(dose, "113835")[0].ConceptCodeSequence[0].CodeValue in ("113690", "113691")
            dlp, unit = numeric(children(dose, "113838")[0])
            assert unit in CT_UNITS
            dlps.append(dlp)
        assert dlp_total == pytest.approx(sum(dlps), rel=1e-4)


def test_projection_rdsrs_follow_tid_10001(files: dict[Path, Dataset]) -> None:
    reports = [ds for ds in files.values() if ds.SOPClassUID == RDSR_SOP_CLASS
               and ds.ContentTemplateSequence[0].TemplateIdentifier == "10001"]
    assert reports
    for ds in reports:
        (accumulated,) = children(ds, "113702")
        events = children(ds, "113706")
        assert events and all(children(e, "113769") for e in events)
        if children(accumulated, "113722"):
            total, unit = numeric(children(accumulated, "113722")[0])
            assert unit in DAP_UNITS
            assert total == pytest.approx(sum(numeric(children(e, "122130")[0])[0] for e in events), rel=1e-4)
        else:  # mammography
            assert children(accumulated, "111637")


def test_a_resent_ct_report_grows(large_region: Path) -> None:
    rows = [r for r in read_csv(large_region / "truth" / "dicom_files.csv") if r["kind"] == "rdsr-partial"]
    assert rows
    for row in rows[:20]:
        partial = dcmread(large_region / row["path"])
        final = dcmread(large_region / row["path"].replace("SR-1", "SR-2"))
        assert partial.StudyInstanceUID == final.StudyInstanceUID
        assert partial.SOPInstanceUID != final.SOPInstanceUID
        assert partial.CompletionFlag == "PARTIAL" and final.CompletionFlag == "COMPLETE"
        assert len(children(partial, "113819")) < len(children(final, "113819"))


def test_mammography_reports_average_glandular_dose_per_breast(large_region: Path) -> None:
    studies = {r["study_instance_uid"]: r for r in read_csv(large_region / "truth" / "studies.csv")}
    reports = [r for r in read_csv(large_region / "truth" / "dicom_files.csv")
               if r["kind"] == "rdsr" and studies[r["study_instance_uid"]]["modality"] == "MG"]
    assert reports
    for row in reports:
        ds = dcmread(large_region / row["path"])
        (accumulated,) = children(ds, "113702")
        by_side = {}
        for agd in children(accumulated, "111637"):
            (side,) = children(agd, "272741003")
            by_side[side.ConceptCodeSequence[0].CodeValue] = numeric(agd)[0]
        truth = studies[row["study_instance_uid"]]
        expected = {k: float(v) for k, v in (("7771000", truth["agd_left_mgy"]),
                                             ("24028007", truth["agd_right_mgy"])) if v}
        assert by_side == pytest.approx(expected)


def test_the_truth_holds_the_dose_values_written(large_region: Path) -> None:
    studies = {r["study_instance_uid"]: r for r in read_csv(large_region / "truth" / "studies.csv")}
    chosen = {uid for i, uid in enumerate(studies) if i % 3 == 0 or studies[uid]["modality"] in ("CT", "MG")}
    studies = {uid: row for uid, row in studies.items() if uid in chosen}
    headers: dict[str, list[Dataset]] = defaultdict(list)
    reports: dict[str, Dataset] = {}
    for row in read_csv(large_region / "truth" / "dicom_files.csv"):
        if row["study_instance_uid"] not in chosen:
            continue
        if row["kind"] == "image":
            headers[row["study_instance_uid"]].append(dcmread(large_region / row["path"]))
        elif row["kind"] == "rdsr":
            reports[row["study_instance_uid"]] = dcmread(large_region / row["path"])
    checked = 0
    for uid, truth in studies.items():
        if truth["feed"] != "dicom":
            assert truth["dose_source"] == ""
            continue
        images = headers[uid]
        if truth["modality"] == "CT":
            assert float(truth["ctdivol_mgy"]) == pytest.approx(max(float(d.CTDIvol) for d in images))
            if uid in reports:
                items = list(content_items(reports[uid]))
                total = next(numeric(i)[0] for i in items if concept(i) == "113813")
                assert float(truth["dlp_total_mgycm"]) == pytest.approx(total)
                assert int(truth["irradiation_events"]) == len(children(reports[uid], "113819"))
            checked += 1
        elif truth["modality"] in ("XR", "RF"):
            dap = sum(float(d.ImageAndFluoroscopyAreaDoseProduct) for d in images) * 1e-5  # dGy.cm2 -> Gy.m2
            assert float(truth["dap_total_gym2"]) == pytest.approx(dap, rel=1e-4)
            checked += 1
        elif truth["modality"] == "MG":
            left = sum(float(d.OrganDose) * 100 for d in images if d.ImageLaterality == "L")  # dGy -> mGy
            assert float(truth["agd_left_mgy"] or 0) == pytest.approx(left)
    assert checked > 50


def test_the_encoder_writes_what_pydicom_writes(tmp_path: Path) -> None:
    dataset = {
        "SOPClassUID": RDSR_SOP_CLASS, "SOPInstanceUID": "1.2.826.0.1.3680043.8.498.1", "PatientName": "SMITH^ANN",
        "PatientID": "Q123456", "IssuerOfPatientID": "RPC", "StudyDate": "20250101", "SeriesNumber": "999",
        "CTDIvol": 12.5, "Modality": "SR", "OtherPatientIDsSequence": [{"PatientID": "9990000018",
                                                                        "IssuerOfPatientID": "NHS"}],
        "ContentSequence": [{"RelationshipType": "CONTAINS", "ValueType": "NUM",
                             "MeasuredValueSequence": [{"NumericValue": "1.5"}]}],
    }
    ds = Dataset()
    for keyword, value in dataset.items():
        if isinstance(value, list):
            items = []
            for item in value:
                child = Dataset()
                for k, v in item.items():
                    if isinstance(v, list):
                        grandchild = Dataset()
                        for kk, vv in v[0].items():
                            setattr(grandchild, kk, vv)
                        v = [grandchild]
                    setattr(child, k, v)
                items.append(child)
            value = items
        setattr(ds, keyword, value)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset["SOPClassUID"]
    meta.MediaStorageSOPInstanceUID = dataset["SOPInstanceUID"]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    reference = tmp_path / "pydicom.dcm"
    dcmwrite(reference, ds, enforce_file_format=True)
    assert encode_file(dataset) == reference.read_bytes()


def test_study_dates_are_within_the_history(files: dict[Path, Dataset]) -> None:
    for ds in files.values():
        assert "20200630" <= ds.StudyDate <= "20250630"
        datetime.strptime(ds.StudyDate + ds.StudyTime, "%Y%m%d%H%M%S")
