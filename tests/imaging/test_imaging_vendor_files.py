"""Real vendor files through ``priorscan ingest`` and ``priorscan export studies``: procedure and dose as the files say.

OpenREM 1.0.0b3's test files (GE, Siemens, Philips, Toshiba, Canon, Carestream, Hologic, IMS Giotto, DRGEM,
NewTom, Spectrum Dynamics: CT, DX, PX, MG, NM and RF dose reports and images) and pyskindose's fluoroscopy
reports (Philips, Siemens), fetched from PyPI by :mod:`bench.vendor_dicom`. Each study's expected procedure was
read from the file by hand (study and requested descriptions, Target Regions, Acquisition Protocols, Body Part
Examined, Anatomic Region Sequence, lateralities), and each dose total from its accumulated-dose container
(``113813`` DLP, ``113722`` DAP, ``111637`` AGD with their units) or image header (0018,115E). Where a file names
no anatomy (a physics test, "Unknown Protocol", "topography unknown", or a vendor's default "entire body" on an
angiography system) the study stays unknown: nothing is guessed.
"""

from __future__ import annotations

import contextlib
import csv
import io
import warnings
from pathlib import Path

import pytest
from pydicom import dcmread

from bench import vendor_dicom
from priorscan.cli import main

# first file of the study: (modality, body region, laterality, normalisation, dose source, total, what the total is)
EXPECTED: dict[str, tuple[str, str, str, str, str, str | None, str]] = {
    # CT: descriptions first, Target Regions (localizers left out) where there is none
    "CT-ESR-GE_Optima.dcm": ("CT", "abdomen-pelvis", "none", "description", "rdsr", "415.82", "dlp"),  # Colonography
    "CT-ESR-GE_VCT.dcm": ("CT", "face", "none", "description", "rdsr", "2002.39", "dlp"),  # FACIAL BONES
    "CT-RDSR-GEPixelMed.dcm": ("CT", "", "", "unknown", "rdsr", "586.34", "dlp"),  # RADIOTHERAPY QA: no anatomy
    "CT-RDSR-Philips_BigBore4DCT.dcm": ("CT", "", "", "unknown", "rdsr", "541.1", "dlp"),  # 4DCT /PHYSICS
    "CT-RDSR-SpectrumDynamics.dcm": ("CT", "", "", "unknown", "rdsr", "187.339", "dlp"),  # "Daily QA", Target
    # Region "Other", study "Other"
    "CT-RDSR-Siemens-Continued-1.dcm": ("CT", "chest", "none", "description", "rdsr", "116.61", "dlp"),  # 60.17+56.44
    "CT-RDSR-Siemens-Multi-1.dcm": ("CT", "chest", "none", "description", "rdsr", "236.09", "dlp"),  # grown 3 times
    "CT-RDSR-Siemens_Flash-QA-DS.dcm": ("CT", "chest-abdomen", "none", "anatomy", "rdsr", "1590.0", "dlp"),  # heart
    # and abdomen Target Regions, no description that names a part
    "CT-RDSR-ToshibaPixelMed.dcm": ("CT", "chest-abdomen-pelvis", "none", "anatomy", "rdsr", "349.7", "dlp"),
    "CT-RDSR-Toshiba_DoseCheck.dcm": ("CT", "abdomen", "none", "description", "rdsr", "502.4", "dlp"),  # protocol
    "CT-RDSR-Toshiba_MultiValSD.dcm": ("CT", "chest", "none", "description", "rdsr", "136.9", "dlp"),
    "CT-SC-Philips_Brilliance16P.dcm": ("CT", "chest-abdomen-pelvis", "none", "description", "", None, "dlp"),
    # projection radiography
    "DX-Im-Carestream_DR7500-1.dcm": ("XR", "", "", "unknown", "header", "0.0002117", "dap"),  # AEC on a PATTERN
    "DX-Im-Carestream_DRX.dcm": ("XR", "chest", "none", "description", "header", "6.33e-06", "dap"),
    "DX-Im-GE_XR220-1.dcm": ("XR", "abdomen", "none", "description", "header", "3.28e-05", "dap"),
    "DX-Im-DRGEM.dcm": ("XR", "abdomen", "none", "anatomy", "header", "0.0013518", "dap"),  # Body Part ABDOMEN
    "DX-Im-SiemensMultix.dcm": ("XR", "chest", "none", "description", "header", "4.72e-06", "dap"),  # Chest p.a.
    "DX-Im-Date-Missing.dcm": ("XR", "", "", "unknown", "header", "0.00011013", "dap"),  # AEC on a PATTERN
    "PX-Im-NewTom_Go.dcm": ("XR", "face", "none", "anatomy", "header", "8.1e-06", "dap"),  # Anatomic Region
    # Sequence "Jaw region" (T-D1213) of a panoramic dental radiograph
    "DX-RDSR-Canon_CXDI.dcm": ("XR", "chest", "none", "description", "rdsr", "1.07e-05", "dap"),  # CR THORAX
    "DX-RDSR-Carestream_DRXEvolution.dcm": ("XR", "lower-limb", "right", "description", "rdsr", "5.8099997e-06",
                                            "dap"),  # CR LEG; protocol "Thigh Right"
    "Dual-RDSR-DX.dcm": ("XR", "whole-body", "none", "anatomy", "rdsr", "2.39e-06", "dap"),  # Target Region
    # "entire body" on a radiography room (a physics test)
    # mammography: always breast, the side of each image
    "MG-Im-GE-SenDS-scaled.dcm": ("MG", "breast", "left", "description", "header", "1.373", "agd_left"),
    "MG-Im-GE_Seno_1_ForPresentation.dcm": ("MG", "breast", "left", "description", "header", "1.956", "agd_left"),
    "MG-Im-Hologic-PropProj.dcm": ("MG", "breast", "right", "description", "header", "0.26", "agd_right"),
    "MG-RDSR-Hologic_2D.dcm": ("MG", "breast", "both", "description", "rdsr", "1.3", "agd_left"),
    "MG-RDSR-Hologic_mix.dcm": ("MG", "breast", "both", "description", "rdsr", "2.71", "agd_right"),
    "MG-RDSR-GEPristina-2D.dcm": ("MG", "breast", "right", "description", "rdsr", "9.68", "agd_right"),
    "MG-RDSR-Giotto-DBT.dcm": ("MG", "breast", "both", "description", "rdsr", "4.842", "agd_left"),
    # fluoroscopy and interventional
    "Dual-RDSR-RF.dcm": ("RF", "chest", "none", "description", "rdsr", "2.12e-06", "dap"),  # Cardiac pacemaker
    "RF-No-kVp-and-others.dcm": ("RF", "chest", "none", "description", "rdsr", "2.954178618e-05", "dap"),
    "RF-Pat-Orientation-Modifier-Missing.dcm": ("XA", "chest", "none", "description", "rdsr", "0.046881", "dap"),
    "RF-RDSR-Eurocolumbus.dcm": ("RF", "knee", "left", "description", "rdsr", "9e-06", "dap"),
    "RF-RDSR-Canon-Ultimaxi-mGyDoseAtRP.dcm": ("RF", "chest", "none", "description", "rdsr", "0.00126596", "dap"),
    # 18 of 19 events of Acquisition Protocol "Ba Swallow" (the oesophagus: the chest); "Entire body" names no part
    "RF-RDSR-Canon-Alphenix-rotational.dcm": ("RF", "abdomen", "none", "description", "rdsr", "0.00031522", "dap"),
    # Requested Procedure "Gastrostomy Insertion"
    "RF-ESR-Siemens-Varic.dcm": ("RF", "chest", "none", "description", "rdsr", "2.359e-05", "dap"),  # "Mobile
    # image intensifier thorax"; its dose in Siemens' private summary (99SMS_RADSUM C-204): 0.2359 Gy·cm²
    "RF-RDSR-GE-OECEliteMiniView.dcm": ("RF", "", "", "unknown", "rdsr", "1.3316568e-06", "dap"),  # topography
    # unknown
    "RF-RDSR-GE.dcm": ("XA", "", "", "unknown", "rdsr", "0.00024126", "dap"),  # Unknown Protocol
    "RF-RDSR-Philips_Allura.dcm": ("XA", "abdomen", "none", "description", "rdsr", "0.00015356864017", "dap"),
    "RF-RDSR-Philips_Azurion.dcm": ("XA", "chest", "none", "anatomy", "rdsr", "0.00247409", "dap"),  # Dutch text
    "RF-RDSR-Siemens-Zee.dcm": ("XA", "", "", "unknown", "rdsr", "1.6e-05", "dap"),  # only "entire body"
    "philips_allura_clarity_u104.dcm": ("XA", "head", "none", "description", "rdsr", "7.8391324289e-06", "dap"),
    "philips_allura_clarity_u601.dcm": ("XA", "chest", "none", "anatomy", "rdsr", "1.0925838852e-05", "dap"),
    "siemens_axiom_artis.dcm": ("XA", "", "", "unknown", "rdsr", "9.37e-06", "dap"),  # only "entire body"
    "siemens_axiom_example_procedure.dcm": ("XA", "abdomen", "none", "description", "rdsr", "0.00027902", "dap"),
    # six acquisitions of protocol "PTC/Nefro" (percutaneous transhepatic cholangiography, nephrostomy); "DSA Body"
    # and the Target Region "entire body" that these systems write on every event name no part
}
#: Studies whose files say they are a QA, physics or phantom test, not a patient's examination (imaging.not_patient),
#: with the evidence the index keeps; every other vendor study is a patient's. Read from the files by hand: the
#: RDSRs' Acquisition Protocols and Comments, the names physicists registered them under, the Quality Control Image
#: flag of Hologic's proprietary projection.
NOT_PATIENT = {
    "CT-RDSR-GEPixelMed.dcm": "SR Acquisition Protocol: 10.13 RADIOTHERAPY QA; SR Comment: QA",
    # registered as MONTHLY_QC^CTSIM1
    "CT-RDSR-Philips_BigBore4DCT.dcm": "SR Acquisition Protocol: 4DCT /PHYSICS; PatientName: indicator QC",
    "CT-RDSR-SpectrumDynamics.dcm": "SR Acquisition Protocol: Daily QA",
    "CT-RDSR-ToshibaPixelMed.dcm": "PatientName: indicator PHYSICS",  # QATesting^Physics
    "DX-Im-Carestream_DR7500-1.dcm": "PatientName: indicator PHYSICS",  # PHYSICS^TABLE AEC
    "DX-Im-Date-Missing.dcm": "PatientName: indicator PHYSICS",
    "Dual-RDSR-DX.dcm": "StudyDescription: Z_Physics Test",
    "MG-Im-Hologic-PropProj.dcm": "QualityControlImage: YES; PatientName: indicator PHYSICS",
    "PX-Im-NewTom_Go.dcm": "PatientName: indicator PHYSICS",
    "RF-RDSR-Canon-Alphenix-rotational.dcm": "PatientName: indicator PHYSICS",
}
COLUMN = {"dlp": "dlp_total_mgycm", "dap": "dap_total_gym2", "agd_left": "agd_left_mgy", "agd_right": "agd_right_mgy"}


def _uid(path: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return str(dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"]).StudyInstanceUID)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Every OpenREM and pyskindose file ingested into one store; the export by study, and each file's study."""
    files = vendor_dicom.files("openrem") + vendor_dicom.files("pyskindose")
    url = f"sqlite:///{tmp_path_factory.mktemp('vendor') / 'vendor.db'}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["--db", url, "ingest", "--no-progress", *(str(f) for f in files)]) == 0, out.getvalue()
        out.truncate(0)
        assert main(["--db", url, "export", "studies"]) == 0
    rows = {row["study_instance_uid"]: row for row in csv.DictReader(io.StringIO(out.getvalue().lstrip("\x00")))}
    return rows, {f.name: _uid(f) for f in files}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vendor_study(exported: tuple[dict[str, dict[str, str]], dict[str, str]], name: str) -> None:
    rows, uids = exported
    modality, region, side, normalisation, source, total, quantity = EXPECTED[name]
    row = rows[uids[name]]
    assert (row["modality"], row["body_region"], row["laterality"], row["normalisation"], row["dose_source"]) == (
        modality, region, side, normalisation, source)
    assert row[COLUMN[quantity]] == (total or "")


def test_unknowns_are_counted_not_guessed(exported: tuple[dict[str, dict[str, str]], dict[str, str]]) -> None:
    rows, _ = exported
    unknown = [r for r in rows.values() if r["normalisation"] == "unknown"]
    assert all(r["body_region"] == "" for r in unknown)
    assert len(unknown) == sum(1 for e in EXPECTED.values() if e[3] == "unknown") + 1  # + OpenREM's RF "Zee adjusted"


def test_the_tests_among_them_are_told_from_patients(exported: tuple[dict[str, dict[str, str]], dict[str, str]]
                                                     ) -> None:
    rows, uids = exported
    flagged = {uid: row["not_patient"] for uid, row in rows.items() if row["not_patient"]}
    assert flagged == {uids[name]: evidence for name, evidence in NOT_PATIENT.items()}


def _read_alike(facts: object) -> tuple[object, ...]:
    """What a door must read alike from one object: identity, text, time, modalities and dose."""
    from imaging.facts import StudyFacts

    assert isinstance(facts, StudyFacts)
    patient, report = facts.patient, facts.dose_report
    return (patient.namespace, patient.local_id, patient.nhs_number, patient.family, patient.given,
            patient.birth_date, facts.description, facts.accession_number, facts.study_date, facts.study_datetime,
            facts.modalities, facts.performing_trust, facts.patient_age_years, facts.not_patient,
            report.totals() if report is not None else None, sorted(map(repr, facts.dose_events)))


def test_every_pydicom_file_reads_alike_from_a_file_and_from_dicom_json() -> None:
    """Each real file read as ``priorscan ingest``, C-STORE and STOW-RS read it, and as DICOMweb gives it (its DICOM
    JSON, as WADO-RS metadata and QIDO-RS carry it), makes the same facts: pydicom's character set files (patient
    names and IDs in eleven character sets) and OpenREM's dose reports. Read as latin-1, a file's non-ASCII text
    differed from its JSON; a multi-valued JSON value (``ModalitiesInStudy`` ``CT\\SR``) came out as a Python list's
    text, so a polled study had no modality. Files pydicom cannot write as DICOM JSON (an invalid DS in a dose
    report) are left out: the comparison needs both."""
    from imaging.adapters import dataset_from_json, read_dicom_file
    from imaging.dicom_study import facts_from_dataset
    from priorscan.trusts import default_trusts

    trusts = default_trusts()
    sender = trusts.resolve("RTK")  # qualifies the patient IDs sent without an issuer, as a known sender does
    compared, differing = 0, []
    for source in ("pydicom-charsets", "openrem"):
        for path in vendor_dicom.files(source):
            if source == "openrem" and "RDSR" not in path.name and "ESR" not in path.name:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    from_file = facts_from_dataset(read_dicom_file(path), trusts, source_trust=sender)
                    as_json = dcmread(path, stop_before_pixels=True).to_json_dict()
                except Exception:  # noqa: BLE001 - unreadable, or no DICOM JSON of it: nothing to compare
                    continue
                from_json = facts_from_dataset(dataset_from_json(as_json), trusts, source_trust=sender)
            if from_file is None:
                continue
            compared += 1
            if from_json is None or _read_alike(from_file) != _read_alike(from_json):
                differing.append(f"{source}/{path.name}")
    assert compared >= 50 and differing == []
