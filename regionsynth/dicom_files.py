"""DICOM as PACS and modalities send it: one representative image header per series (no pixel data) and RDSRs.

Patient ID (0010,0020) is the trust's hospital number, qualified by Issuer of Patient ID (0010,0021) = the trust's
``dicom_issuer`` (and, at trusts that qualify hospital numbers in CX.4, the Issuer of Patient ID Qualifiers Sequence
with the trust's FHIR system as a URI); some headers also carry the NHS number in the Other Patient IDs Sequence.

Image headers carry dose where modalities put it: CTDIvol (0018,9345) on CT, Image and Fluoroscopy Area Dose Product
(0018,115E, dGy.cm2) on projection X-ray and fluoroscopy, Organ Dose (0040,0316, dGy) on mammography. Dose reports
are in :mod:`regionsynth.rdsr`.

Files are written by worker processes (:class:`DicomWriterPool`) from :class:`DicomJob` objects; every UID is
drawn when the job is planned, so the bytes written do not depend on which process writes them.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from priorscan.trusts import Trust
from regionsynth.corruption import Recorded
from regionsynth.dicom_encoding import encode_file
from regionsynth.imaging import Series, Study
from regionsynth.procedures import dicom_modality
from regionsynth.rdsr import RDSR_SOP_CLASS, code, decimal, dose_report
from regionsynth.settings import TrustFeedProfile

IMAGE_SOP_CLASS = {"CT": "1.2.840.10008.5.1.4.1.1.2", "DX": "1.2.840.10008.5.1.4.1.1.1.1",
                   "MG": "1.2.840.10008.5.1.4.1.1.1.2", "US": "1.2.840.10008.5.1.4.1.1.6.1",
                   "MR": "1.2.840.10008.5.1.4.1.1.4", "NM": "1.2.840.10008.5.1.4.1.1.20",
                   "RF": "1.2.840.10008.5.1.4.1.1.12.2"}
MANUFACTURER = {"RTK": "SIEMENS", "RXC": "GE MEDICAL SYSTEMS", "RPC": "Philips", "RA2": "Canon Medical Systems",
                "RYR": "SIEMENS"}


@dataclass(slots=True)
class DicomJob:
    """Everything needed to write one study's DICOM files, small enough to hand to a worker process."""

    ods: str
    institution: str
    issuer: str
    issuer_uri: str | None
    code_system: str
    vendor_units: bool
    suffix: str
    study: Study
    state: Recorded
    nhs_in_header: bool
    image_uids: list[str]
    rdsr_series_uid: str
    rdsr_uids: list[str]

    def files(self) -> list[tuple[str, str, str]]:
        """``(path relative to the dicom folder, SOP class, kind)`` of every file the job writes, in order."""
        study, folder = self.study, f"{self.ods}/{self.study.uid}"
        out = [(f"{folder}/{s.number:03d}-0001{self.suffix}", IMAGE_SOP_CLASS[dicom_modality(study.procedure)],
                "image") for s in study.series]
        for n in range(1, len(self.rdsr_uids) + 1):
            out.append((f"{folder}/SR-{n}{self.suffix}", RDSR_SOP_CLASS,
                        "rdsr-partial" if n < len(self.rdsr_uids) else "rdsr"))
        if study.resent and study.procedure.modality != "CT":
            # the whole study sent again, byte for byte (a PACS re-send); a CT study re-sends a grown RDSR instead
            out += [(path.removesuffix(self.suffix) + "-resent" + self.suffix, sop_class, f"{kind}-resent")
                    for path, sop_class, kind in list(out)]
        return out


def plan(study: Study, state: Recorded, trust: Trust, profile: TrustFeedProfile, uids: Callable[[str], str],
         nhs_in_header: bool) -> DicomJob:
    """The job that writes ``study``; UIDs are drawn here so that the files do not depend on who writes them."""
    image_uids = [uids("sop") for _ in study.series]
    rdsr_series = uids("series") if study.rdsr else ""
    reports = 0
    if study.rdsr:
        reports = 2 if study.procedure.modality == "CT" and study.rdsr_partial_events else 1
    return DicomJob(ods=study.trust, institution=trust.name, issuer=trust.dicom_issuer,
                    issuer_uri=trust.fhir_system if profile.pid3_authority == "CX4" else None,
                    code_system=profile.code_system, vendor_units=profile.dose_unit_meaning == "vendor",
                    suffix=".dcm" if profile.dicom_extension else "", study=study, state=state,
                    nhs_in_header=nhs_in_header, image_uids=image_uids, rdsr_series_uid=rdsr_series,
                    rdsr_uids=[uids("sop") for _ in range(reports)])


def datasets(job: DicomJob) -> list[dict[str, Any]]:
    """The datasets of ``job``'s files (re-sent copies aside), as keyword mappings."""
    study = job.study
    base = _patient_study(job)
    out = [_image(job, base, series, sop_uid) for series, sop_uid in zip(study.series, job.image_uids, strict=True)]
    if job.rdsr_uids:
        events = study.events
        reports = [events[:study.rdsr_partial_events], events] if len(job.rdsr_uids) == 2 else [events]
        for n, (report_events, sop_uid) in enumerate(zip(reports, job.rdsr_uids, strict=True), start=1):
            out.append(dose_report(base, study, report_events, series_uid=job.rdsr_series_uid, sop_uid=sop_uid,
                                   number=n, vendor_units=job.vendor_units))
    return out


def write_job(job: DicomJob, root: Path) -> None:
    """Write the files of ``job`` under ``root`` (the region's ``dicom`` folder)."""
    (root / job.ods / job.study.uid).mkdir(parents=True, exist_ok=True)
    files = job.files()
    encoded = [encode_file(ds) for ds in datasets(job)]
    encoded += encoded[: len(files) - len(encoded)]  # re-sent copies
    for (relative, _, _), content in zip(files, encoded, strict=True):
        with open(root / relative, "wb") as handle:
            handle.write(content)


def _patient_study(job: DicomJob) -> dict[str, Any]:
    """The patient and study attributes every file of the study shares."""
    study, state, p = job.study, job.state, job.study.procedure
    name = f"{state.family.upper()}^{state.given.upper()}" + (f"^{state.middle.upper()}" if state.middle else "")
    ds: dict[str, Any] = {
        "PatientName": name,
        "PatientID": study.patient_id,
        "IssuerOfPatientID": job.issuer,
        "PatientBirthDate": state.birth_date.strftime("%Y%m%d"),
        "PatientSex": state.sex,
        "StudyInstanceUID": study.uid,
        "StudyDate": study.performed.strftime("%Y%m%d"),
        "StudyTime": study.performed.strftime("%H%M%S"),
        "AccessionNumber": study.accession,
        "StudyID": study.accession[-8:],
        "StudyDescription": study.description,
        "ReferringPhysicianName": "",
        "ProcedureCodeSequence": [code(p.code, job.code_system, p.short)],
        "InstitutionName": job.institution,
        "Manufacturer": MANUFACTURER.get(job.ods, "SIEMENS"),
    }
    if job.issuer_uri:
        ds["IssuerOfPatientIDQualifiersSequence"] = [{"UniversalEntityID": job.issuer_uri,
                                                      "UniversalEntityIDType": "URI"}]
    if job.nhs_in_header and state.nhs_number:
        ds["OtherPatientIDsSequence"] = [{"PatientID": state.nhs_number, "IssuerOfPatientID": "NHS",
                                          "TypeOfPatientID": "TEXT"}]
    return ds


def _image(job: DicomJob, base: dict[str, Any], series: Series, sop_uid: str) -> dict[str, Any]:
    p = job.study.procedure
    modality = dicom_modality(p)
    ds = base | {
        "SOPClassUID": IMAGE_SOP_CLASS[modality],
        "SOPInstanceUID": sop_uid,
        "Modality": modality,
        "SeriesInstanceUID": series.uid,
        "SeriesNumber": str(series.number),
        "SeriesDescription": series.description,
        "InstanceNumber": "1",
        "BodyPartExamined": p.body_part,
        "ContentDate": base["StudyDate"],
        "ContentTime": base["StudyTime"],
    }
    if series.laterality in ("L", "R"):
        ds["Laterality"] = series.laterality
    for event in series.events:
        if modality == "CT":
            ds["CTDIvol"] = float(decimal(event.ctdivol_mgy))
            ds["KVP"] = "120"
        elif modality in ("DX", "RF"):
            ds["ImageAndFluoroscopyAreaDoseProduct"] = decimal(event.dap_dgycm2)
            ds["ViewPosition"] = {"AP": "AP", "LAT": "LL"}.get(event.view, "")
            ds["KVP"] = "70"
        elif modality == "MG":
            ds["OrganDose"] = decimal(event.agd_mgy / 100.0)  # Organ Dose is in dGy
            ds["ImageLaterality"] = event.laterality
            ds["ViewPosition"] = event.view
            ds["KVP"] = "29"
    return ds


class DicomWriterPool:
    """Writes DICOM jobs, in worker processes when asked to (encoding is a large share of generation time).

    Parameters
    ----------
    root
        The region's ``dicom`` folder.
    workers
        Worker processes; 0 writes in this process.
    """

    def __init__(self, root: Path, workers: int) -> None:
        self.root = root
        self.workers = workers
        self._batch: list[DicomJob] = []
        self._pending: deque = deque()
        self._pool = None
        if workers > 0:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            self._pool = multiprocessing.get_context(method).Pool(workers)

    def submit(self, job: DicomJob) -> None:
        """Write ``job`` now (no workers) or queue it for a worker."""
        if self._pool is None:
            write_job(job, self.root)
            return
        self._batch.append(job)
        if len(self._batch) >= 64:
            self._flush()

    def _flush(self) -> None:
        if self._pool is None or not self._batch:
            return
        self._pending.append(self._pool.apply_async(_write_batch, (self._batch, self.root)))
        self._batch = []
        while len(self._pending) > 4 * self.workers:  # bounded: memory stays flat however large the region
            self._pending.popleft().get()

    def close(self) -> None:
        """Wait for every job; re-raise the first error of a worker."""
        self._flush()
        try:
            while self._pending:
                self._pending.popleft().get()
        finally:
            if self._pool is not None:
                self._pool.close()
                self._pool.join()

    def terminate(self) -> None:
        """Stop the workers without waiting (after an error)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()


def _write_batch(jobs: list[DicomJob], root: Path) -> None:
    for job in jobs:
        write_job(job, root)


def dose_summary(study: Study) -> dict[str, str]:
    """The dose values written for ``study``, as the truth records them (empty where nothing was written)."""
    out = {"ctdivol_mgy": "", "dlp_total_mgycm": "", "dap_total_gym2": "", "agd_left_mgy": "", "agd_right_mgy": "",
           "irradiation_events": "", "dose_source": ""}
    events = study.events
    if study.feed != "dicom" or not events:
        return out
    modality = study.procedure.modality
    out["dose_source"] = "rdsr" if study.rdsr else "header"
    if study.rdsr:
        out["irradiation_events"] = str(len(events))
    if modality == "CT":
        out["ctdivol_mgy"] = decimal(max(e.ctdivol_mgy for e in events))
        if study.rdsr:
            out["dlp_total_mgycm"] = decimal(sum(e.dlp_mgycm for e in events))
    elif modality in ("XR", "RF"):
        out["dap_total_gym2"] = decimal(sum(e.dap_dgycm2 for e in events) * 1e-5)
    elif modality == "MG":
        for side, key in (("L", "agd_left_mgy"), ("R", "agd_right_mgy")):
            doses = [e.agd_mgy for e in events if e.laterality == side]
            if doses:
                out[key] = decimal(sum(doses))
    return out
