"""The ground truth under ``DIR/truth/``, written as the region is generated.

=====================  ===========================================================================================
``persons.csv``        ``person_id,system,value``: every patient identifier the feeds use, with the person it truly
                       belongs to: hospital numbers under the trust's FHIR system (duplicates, merged-away and
                       renumbered ones included) and NHS numbers under ``https://fhir.nhs.uk/Id/nhs-number``. A
                       mistyped NHS number that belongs to nobody is not listed; one keyed from another person's notes
                       is listed under that other person.
``people.csv``         true demographics, household (family id), twin, trusts registered at.
``records.csv``        one row per source record: what the trust holds, the errors it carries, merge and renumbering.
``studies.csv``        one row per study (however often re-sent): trust, modality, region, laterality, date, the feed
                       that delivers it and the dose values written (empty where none were).
``dicom_files.csv``    every DICOM file written, with its study and kind (image, rdsr, rdsr-partial, re-sent copies).
``repeats.csv``        one row per order: the comparable prior it repeats, if any, and the expected tier.
``merges.csv``         A40 merges, A24 links, A37 unlinks, A47 renumbering and FHIR ``replaced-by`` links.
``manifest.json``      seed, as-of date, settings, counts and the list of files.
=====================  ===========================================================================================
"""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from priorscan.trusts import NHS_NUMBER_SYSTEM
from regionsynth.dicom_files import dose_summary
from regionsynth.imaging import Study
from regionsynth.orders import Order
from regionsynth.people import Person
from regionsynth.procedures import dicom_modality
from regionsynth.registrations import SourceRecord

COLUMNS = {
    "persons": ["person_id", "system", "value"],
    "people": ["person_id", "family_id", "role", "given", "middle", "family", "previous_family", "married_on", "sex",
               "birth_date", "address_line1", "address_line2", "town", "county", "postcode", "previous_postcode",
               "moved_on", "nhs_number", "twin_of", "trusts"],
    "records": ["person_id", "trust", "hospital_number", "kind", "duplicate_of", "registered_on", "merged_on",
                "previous_number", "renumbered_on", "feed", "given", "middle", "family", "birth_date", "sex",
                "postcode", "nhs_number_sent", "nhs_status", "nhs_error", "nhs_owner", "errors"],
    "studies": ["study_instance_uid", "person_id", "trust", "accession_number", "patient_id", "procedure_code",
                "description", "modality", "dicom_modality", "body_region", "laterality", "study_date", "study_time",
                "feed", "resent", "reason", "dose_source", "ctdivol_mgy", "dlp_total_mgycm", "dap_total_gym2",
                "agd_left_mgy", "agd_right_mgy", "irradiation_events"],
    "dicom_files": ["path", "trust", "study_instance_uid", "sop_class_uid", "kind"],
    "repeats": ["placer_order_number", "trust", "person_id", "patient_id", "ordered", "procedure_code", "modality",
                "body_region", "laterality", "priority", "reason", "patient_age", "scenario", "repeats_prior",
                "prior_study_uid", "prior_trust", "prior_date", "days_since_prior", "expected_tier", "feed"],
    "merges": ["event", "trust", "when", "person_id", "number", "other_number", "other_person_id", "same_person"],
}


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


class TruthWriter:
    """Streams the truth tables to ``folder``.

    Parameters
    ----------
    folder
        ``DIR/truth``.
    fhir_systems
        Each trust's hospital-number FHIR system, by ODS code.
    """

    def __init__(self, folder: Path, fhir_systems: dict[str, str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.systems = fhir_systems
        self._handles: dict[str, IO[str]] = {}
        self.writers: dict[str, Any] = {}
        self.rows: dict[str, int] = {}
        for name, columns in COLUMNS.items():
            handle = open(folder / f"{name}.csv", "w", encoding="utf-8", newline="")
            self._handles[name] = handle
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            self.writers[name] = writer
            self.rows[name] = 0

    def row(self, table: str, values: list[Any]) -> None:
        """Append one row to ``table``."""
        self.writers[table].writerow(values)
        self.rows[table] += 1

    def person(self, person: Person, records: list[SourceRecord], feeds: dict[str, str]) -> bool:
        """Write the person, their records and their identifiers; return whether their NHS number was listed."""
        p = person
        trusts = ";".join(r.trust for r in records)
        self.row("people", [p.person_id, p.family_id, p.role, p.given, p.middle, p.family, p.previous_family or "",
                            _day(p.married_on), p.sex, _day(p.birth_date), p.address.line1, p.address.line2,
                            p.address.town, p.address.county, p.address.postcode,
                            p.previous_address.postcode if p.previous_address else "", _day(p.moved_on),
                            p.nhs_number or "", p.twin_of or "", trusts])
        nhs_used = False
        for record in records:
            for r in [record, *record.duplicates]:
                self._record(r, feeds[r.trust])
                system = self.systems[r.trust]
                for number in (r.previous_number, r.hospital_number):
                    if number:
                        self.row("persons", [p.person_id, system, number])
                nhs_used = nhs_used or (p.nhs_number is not None and r.recorded.nhs_number == p.nhs_number)
        if nhs_used:
            self.row("persons", [p.person_id, NHS_NUMBER_SYSTEM, p.nhs_number])
        return nhs_used

    def nhs_number_of(self, person_id: str, nhs_number: str) -> None:
        """List ``nhs_number`` under ``person_id`` (someone else's record carried it)."""
        self.row("persons", [person_id, NHS_NUMBER_SYSTEM, nhs_number])

    def _record(self, r: SourceRecord, feed: str) -> None:
        s = r.recorded
        self.row("records", [r.person.person_id, r.trust, r.hospital_number, r.kind, r.duplicate_of or "",
                             _day(r.registered_on), _day(r.merged_on), r.previous_number or "",
                             _day(r.renumbered_on), feed, s.given, s.middle, s.family, _day(s.birth_date), s.sex,
                             s.address.postcode, s.nhs_number or "", s.nhs_status, s.nhs_error, s.nhs_owner or "",
                             ";".join(s.errors)])

    def study(self, study: Study) -> None:
        """One row of ``studies.csv``."""
        p = study.procedure
        dose = dose_summary(study)
        self.row("studies", [study.uid, study.person.person_id, study.trust, study.accession, study.patient_id,
                             p.code, study.description, p.modality, dicom_modality(p), p.region, p.laterality,
                             study.performed.strftime("%Y-%m-%d"), study.performed.strftime("%H:%M:%S"), study.feed,
                             "true" if study.resent else "false", study.reason, dose["dose_source"],
                             dose["ctdivol_mgy"], dose["dlp_total_mgycm"], dose["dap_total_gym2"],
                             dose["agd_left_mgy"], dose["agd_right_mgy"], dose["irradiation_events"]])

    def dicom_files(self, study: Study, files: list[tuple[str, str, str]]) -> None:
        """Rows of ``dicom_files.csv`` for the files of ``study``."""
        for path, sop_class, kind in files:
            self.row("dicom_files", [f"dicom/{path}", study.trust, study.uid, sop_class, kind])

    def order(self, order: Order, feed: str) -> None:
        """One row of ``repeats.csv``."""
        p, prior = order.procedure, order.prior
        self.row("repeats", [order.placer, order.trust, order.person.person_id, order.patient_id,
                             order.ordered.isoformat(), p.code, p.modality, p.region, p.laterality, order.priority,
                             order.reason, order.person.age_on(order.ordered.date()), order.scenario,
                             "true" if prior else "false", prior.uid if prior else "", prior.trust if prior else "",
                             prior.performed.strftime("%Y-%m-%d") if prior else "",
                             "" if order.days_since_prior is None else order.days_since_prior, order.expected_tier,
                             feed])

    def merge(self, event: str, trust: str, when: datetime, person_id: str, number: str, other_number: str,
              other_person_id: str) -> None:
        """One row of ``merges.csv``."""
        self.row("merges", [event, trust, when.isoformat(), person_id, number, other_number, other_person_id,
                            "true" if person_id == other_person_id else "false"])

    def close(self) -> None:
        """Close every table."""
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def manifest(self, content: dict[str, Any]) -> Path:
        """Write ``manifest.json``."""
        path = self.folder / "manifest.json"
        path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path
