"""The imaging index service: merge what a feed says about a study into the one stored study, keyed by its UID.

:class:`StudyIndex` is what every imaging adapter calls (DICOM files, DICOM JSON, HL7 ORU, FHIR ImagingStudy). It
never commits: the caller commits the unit of work.

- **Idempotent**: the study is found by StudyInstanceUID (row-locked on PostgreSQL) and updated; irradiation events
  are found by their UID and replaced; a report's totals are kept per report key (:mod:`imaging.dose`), so a
  re-sent or growing RDSR never counts twice.
- **Patient**: the study points at the source record of the issuer-qualified identifier it arrived with. An
  identifier the MPI does not know yet gets a *provisional* source record from the DICOM demographics (it becomes
  the PAS's record when the PAS sends the same identifier, and never overwrites one). Studies follow their patient
  through merge, unmerge, link and unlink because the record, not the study, carries the regional patient.
  Without a qualified identifier the study is kept with ``patient_unresolved`` set and reported.
- **Corrections**: a DICOM statement (a pushed or filed object, the PACS's own QIDO-RS answer) with another
  qualified identifier than the study follows moves the study to it when the study's identifier came from DICOM
  too (the PACS corrected it), when the new identifier's record is the PAS's, or when the current one is only
  provisional; an HL7 or FHIR statement never moves a study away from a PAS record, and DICOM never moves one
  away from an identifier an order or a report set, except to another PAS record.
- **Objects**: each DICOM object is remembered (:class:`imaging.tables.StudyInstance`) with what it added to the
  dose, so that an IOCM rejection note can take it out again (:mod:`imaging.withdrawal`); an object already
  rejected for a reason that removes dose adds none when it is sent again.
- **Normalised** procedure (modality, region, laterality, contrast) from everything the statement carries
  (:func:`imaging.facts.named_procedure`): a later statement replaces the procedure only when its evidence is at
  least as good (code, then description, then coded anatomy), and sides seen on different images add up.
- **Not a patient**: a statement that says the study is a QA, physics or phantom test (:mod:`imaging.not_patient`)
  adds its evidence to ``not_patient``; a study once said to be a test stays one (no later statement unsays it);
  a person's decision (``not_patient_decision``) stands over every statement.
- **Dose** is summarised again whenever what it depends on changes: a new report or event, the body region, or
  the patient's age (paediatric coefficients).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from imaging import dose as dz
from imaging import not_patient
from imaging.codetables import CodeTable, canonical_system
from imaging.facts import NORMALISATION_RANK, STATUS_RANK, StudyFacts, combine_laterality, named_procedure
from imaging.iocm import DELETED_FROM_PACS, REJECTION_REASONS
from imaging.procedures import UNKNOWN, NormalisedProcedure, ProcedureCode, normalise_modality, study_modality
from imaging.reference import effective_dose_coefficients
from imaging.regions import is_paired, join_regions
from imaging.tables import InstanceRejection, IrradiationEvent, Study, StudyInstance
from mpi import LinkOutcome, PatientIndex, RecordKey, SourceRecord
from priorscan.audit import Agent
from priorscan.audit import record as audit_record
from priorscan.trusts import TrustRegistry

LINKED = "linked"
PROVISIONAL = "provisional"
UNRESOLVED = "unresolved"
_EVENT_FIELDS = ("target_region", "laterality", "ctdivol_mgy", "dlp_mgycm", "dap_gym2", "agd_mgy", "dose_rp_gy",
                 "activity_mbq", "duration_s")


# statements built once: SQLAlchemy memoises their cache keys, which matters at hundreds of objects a second
_FIND = (select(Study, SourceRecord).outerjoin(SourceRecord, SourceRecord.id == Study.source_record_id)
         .where(Study.study_instance_uid == bindparam("uid")))
_FIND_LOCKED = _FIND.with_for_update(of=Study)
_EVENTS = select(IrradiationEvent).where(IrradiationEvent.study_id == bindparam("study_id"))
_INSTANCE = select(StudyInstance).where(StudyInstance.sop_instance_uid == bindparam("sop"))
_STUDY_REJECTIONS = select(InstanceRejection.sop_instance_uid, InstanceRejection.code).where(
    InstanceRejection.study_instance_uid == bindparam("uid"))
#: Feeds whose statements about the patient are DICOM's own (a PACS correcting itself moves the study).
DICOM_FEEDS = ("dicom", "qido")


@dataclass
class IndexedStudy:
    """What became of one statement about a study."""

    study: Study
    created: bool
    regional_id: str | None
    patient: str  # linked | provisional | unresolved
    unresolved_reason: str | None = None


def new_study(facts: StudyFacts) -> Study:
    """A study first known from ``facts`` (not yet in any session)."""
    return Study(study_instance_uid=facts.study_instance_uid[:64], sources=[], status=facts.status or "completed")


def to_event(row: IrradiationEvent) -> dz.DoseEvent:
    """A stored irradiation event as the pure :class:`imaging.dose.DoseEvent`."""
    phantom = int(row.phantom) if row.phantom and row.phantom.isdigit() else None
    detail = row.detail or {}
    return dz.DoseEvent(row.event_uid, row.kind, row.source or "rdsr", row.target_region, phantom, row.laterality,
                        row.ctdivol_mgy, row.dlp_mgycm, row.dap_gym2, row.dose_rp_gy, row.agd_mgy, row.activity_mbq,
                        row.duration_s, detail.get("protocol"), bool(detail.get("localizer")))


class StudyIndex:
    """Study writes over one session (see the module docstring)."""

    def __init__(self, session: Session, trusts: TrustRegistry, *, code_table: CodeTable | None = None,
                 coefficients: dz.CoefficientTable | None = None) -> None:
        self.session = session
        self.trusts = trusts
        self.code_table = code_table
        self.coefficients = coefficients if coefficients is not None else effective_dose_coefficients()
        self._patients: PatientIndex | None = None
        # the session's identity map holds what it loaded weakly: the source records loaded with their studies are
        # kept here, so that the patient's record is not selected again a moment later
        self._loaded_records: list[SourceRecord] = []

    @property
    def patients(self) -> PatientIndex:
        if self._patients is None:
            self._patients = PatientIndex(self.session, self.trusts)
        return self._patients

    def find(self, study_instance_uid: str, *, lock: bool = False) -> Study | None:
        """The study with that UID (row-locked when ``lock``), its source record loaded alongside."""
        row = self.session.execute(_FIND_LOCKED if lock else _FIND, {"uid": study_instance_uid}).first()
        if row is None:
            return None
        if row[1] is not None:
            self._loaded_records.append(row[1])
        return row[0]  # type: ignore[no-any-return]

    def regional_id_of(self, study: Study) -> str | None:
        """The regional patient ``study`` belongs to now (through its source record)."""
        record = self.session.get(SourceRecord, study.source_record_id) if study.source_record_id else None
        return record.regional_patient_id if record is not None else None

    # --- the one write ------------------------------------------------------------------------------------------

    def apply(self, facts: StudyFacts, *, actor: str) -> IndexedStudy:
        """Merge ``facts`` into the stored study (created when new) and return where it stands."""
        study = self.find(facts.study_instance_uid, lock=True)
        created = study is None
        if study is None:
            study = self._new_study(facts)
        patient_state, regional_id, reason = self._attach_patient(study, facts, actor)
        depends_on = (study.body_region, study.patient_age_years)
        self._merge_fields(study, facts)
        self._normalise(study, facts)
        self._recognise_test(study, facts)
        if facts.remote is not None:
            study.remote_source, study.remote_fingerprint, study.remote_instances = (
                facts.remote[0][:500], facts.remote[1][:64], facts.remote[2])
            if study.withdrawn == DELETED_FROM_PACS:
                study.withdrawn, study.withdrawn_at = None, None  # the PACS lists it again
        rejections = {} if created else self._rejections(study)
        rejected = REJECTION_REASONS.get(rejections.get(facts.sop_instance_uid or "", ""))
        carries_dose = facts.dose_report is not None or bool(facts.dose_events)
        if carries_dose and (rejected is None or rejected.keeps_dose):
            self._flush()
            self._store_dose(study, facts)
        elif (study.body_region, study.patient_age_years) != depends_on and study.dose_source:
            self.summarise(study, self._events(study))
        if facts.sop_instance_uid:
            self._flush()
            self._remember_instance(study, facts)
        if rejections:
            from imaging.withdrawal import reassess  # the withdrawal service builds on this one

            reassess(self, study)
        return IndexedStudy(study, created, regional_id, patient_state, reason)

    # --- where the rows live: the session here; memory in the bulk load (:mod:`imaging.bulk`) ------------------

    def _new_study(self, facts: StudyFacts) -> Study:
        study = new_study(facts)
        self.session.add(study)
        return study

    def _rejections(self, study: Study) -> dict[str, str]:
        """The rejection codes recorded for objects of ``study``, by SOP Instance UID."""
        return dict(self.session.execute(_STUDY_REJECTIONS, {"uid": study.study_instance_uid}).tuples().all())

    def _flush(self) -> None:
        self.session.flush()

    def _add(self, row: IrradiationEvent | StudyInstance) -> None:
        self.session.add(row)

    def _instance(self, sop_instance_uid: str) -> StudyInstance | None:
        return self.session.scalars(_INSTANCE, {"sop": sop_instance_uid}).first()

    def _record_by_id(self, record_id: int) -> SourceRecord | None:
        return self.session.get(SourceRecord, record_id)

    def _record_by_key(self, namespace: str, local_id: str) -> SourceRecord | None:
        return self.patients.get_record(RecordKey(namespace, local_id))

    def _provisional_record(self, facts: StudyFacts, actor: str) -> SourceRecord | None:
        """A provisional source record from the statement's demographics, linked on write (a live registration)."""
        return self.session.get(SourceRecord, self._link_provisional(facts, actor).source_record_id)

    def _link_provisional(self, facts: StudyFacts, actor: str, *, absent: bool = False) -> LinkOutcome:
        """Write the statement's patient as a provisional source record, linked on write (``absent``: see
        :meth:`mpi.PatientIndex.upsert`)."""
        kind = {"oru": "hl7", "fhir": "fhir"}.get(facts.source, "dicom")
        return self.patients.upsert(facts.patient.demographics(), event=f"{facts.source}-study"[:40], actor=actor,
                                    source_kind=kind, provisional=True, absent=absent)

    def _remember_instance(self, study: Study, facts: StudyFacts) -> None:
        """Keep the object, with the event UIDs and report key it added to the study's dose."""
        events = [e.event_uid[:100] for e in facts.dose_events]
        report = None
        if facts.dose_report is not None:
            events += [e.event_uid[:100] for e in facts.dose_report.events]
            report = facts.dose_report.totals().report_key[:300]
        sop = facts.sop_instance_uid[:64] if facts.sop_instance_uid else ""
        row = self._instance(sop)
        if row is None:
            row = StudyInstance(study_id=study.id, sop_instance_uid=sop)
            self._add(row)
        row.study_id = study.id
        row.series_instance_uid = (facts.series_instance_uid or "")[:64] or row.series_instance_uid
        row.sop_class_uid = (facts.sop_class_uid or "")[:64] or row.sop_class_uid
        row.modality = (facts.modalities[0] if facts.modalities else "")[:16] or row.modality
        if events or report:
            row.dose = {"events": sorted(set(events)), "report": report}

    # --- patient --------------------------------------------------------------------------------------------------

    def _attach_patient(self, study: Study, facts: StudyFacts, actor: str) -> tuple[str, str | None, str | None]:
        identity = facts.patient
        current = self._record_by_id(study.source_record_id) if study.source_record_id else None
        if identity.resolved and current is not None and (current.namespace, current.local_id) == (
                identity.namespace, (identity.local_id or "").strip()):
            if study.patient_source is None:
                study.patient_source = facts.source[:10]  # the identifier the study already follows
        elif identity.resolved:
            record = self._record_by_key(identity.namespace or "", identity.local_id or "")
            if record is None:
                record = self._provisional_record(facts, actor)
            if record is not None and self._follows(study, current, record, facts):
                if current is not None and current.id != record.id:
                    self._record_correction(study, current, record, facts, actor)
                study.source_record_id = record.id
                study.patient_issuer = record.namespace
                study.patient_local_id = record.local_id
                study.patient_unresolved = None
                study.patient_source = facts.source[:10]
                current = record
        elif current is None:
            study.patient_unresolved = (identity.unresolved or "patient not identified")[:200]
            study.patient_local_id = None
            return UNRESOLVED, None, study.patient_unresolved
        if current is None:
            return UNRESOLVED, None, study.patient_unresolved
        state = PROVISIONAL if current.provisional else LINKED
        return state, current.regional_patient_id, None

    @staticmethod
    def _follows(study: Study, current: SourceRecord | None, record: SourceRecord, facts: StudyFacts) -> bool:
        """Whether the study moves from ``current`` to ``record`` (see the module docstring, *Corrections*)."""
        if current is None or current.id == record.id or current.provisional or not record.provisional:
            return True
        return facts.source in DICOM_FEEDS and (study.patient_source or "dicom") in DICOM_FEEDS

    def _record_correction(self, study: Study, current: SourceRecord, record: SourceRecord, facts: StudyFacts,
                           actor: str) -> None:
        """Audit a study moved to another patient's identifier (no identifiers in the detail: record ids only)."""
        kind, _, name = actor.partition(":")
        audit_record(self.session, Agent(kind or "feed", name or actor), action="U", event_type="imaging",
              subtype="patient-corrected", regional_patient_id=record.regional_patient_id,
              entity=f"ImagingStudy/{study.study_instance_uid}",
              detail={"fromSourceRecord": current.id, "toSourceRecord": record.id,
                      "fromRegionalPatient": current.regional_patient_id, "source": facts.source})

    # --- study fields -------------------------------------------------------------------------------------------

    def _merge_fields(self, study: Study, facts: StudyFacts) -> None:
        sources = list(study.sources or [])
        if facts.source not in sources:
            study.sources = [*sources, facts.source]
        if facts.accession_number and not study.accession_number:
            study.accession_number = facts.accession_number[:64]
        if facts.performing_trust and not study.performing_trust:
            study.performing_trust = facts.performing_trust
        known = [m for m in (study.modalities_in_study or "").split("\\") if m]
        merged = list(dict.fromkeys(known + [m.strip().upper() for m in facts.modalities if m and m.strip()]))
        if merged != known:
            study.modalities_in_study = "\\".join(merged)[:64]
        modality = study_modality(merged) or study.modality or normalise_modality(facts.modality_hint)
        if modality:
            study.modality = modality
        if facts.description and not study.description:
            study.description = facts.description[:300]
        if facts.station_name or facts.model_name:  # the latest object's device (an RDSR names the modality's)
            study.manufacturer = (facts.manufacturer or "")[:64] or study.manufacturer
            study.model_name = (facts.model_name or "")[:64] or study.model_name
            study.station_name = (facts.station_name or "")[:64] or study.station_name
        if facts.procedure_codes and not study.procedure_code:
            first = facts.procedure_codes[0]
            study.procedure_system = canonical_system(first.system)[:200] or None
            study.procedure_code = first.code[:64]
        if facts.study_date and not study.study_date:
            study.study_date = facts.study_date
        if facts.study_datetime and not study.study_datetime:
            study.study_datetime = facts.study_datetime
        if facts.patient_age_years is not None and study.patient_age_years is None:
            study.patient_age_years = facts.patient_age_years
        if facts.status:
            current = STATUS_RANK.get(study.status or "", -1)
            if facts.status_corrects or STATUS_RANK.get(facts.status, -1) >= current:
                study.status = facts.status

    def _normalise(self, study: Study, facts: StudyFacts) -> None:
        codes = list(facts.procedure_codes)
        if study.procedure_code and not any(c.code == study.procedure_code for c in codes):
            codes.insert(0, ProcedureCode(study.procedure_system, study.procedure_code))
        result = named_procedure(facts, description=study.description, codes=codes, modality=study.modality,
                                 table=self.code_table)
        if NORMALISATION_RANK.get(result.normalisation, 0) < NORMALISATION_RANK.get(study.normalisation or UNKNOWN, 0):
            if is_paired(study.body_region):  # the procedure stands, but this image's side still counts
                study.laterality = combine_laterality(study.laterality, facts.laterality, *facts.lateralities) \
                    or study.laterality
            return  # an earlier, better statement stands (e.g. a coded ORU before an uncoded image)
        self._set_procedure(study, result)

    def _recognise_test(self, study: Study, facts: StudyFacts) -> None:
        """Add what ``facts`` say of the study being a QA, physics or phantom test (not a patient's examination)."""
        if study.not_patient_decision is not None:
            return  # a person decided (imaging.not_patient_store.decide_not_patient): no statement overturns it
        found = facts.not_patient
        if found is None:  # a feed without its own reading (HL7 ORU, FHIR): its description and patient
            identity = facts.patient
            words, prefixes = self.trusts.not_patient_indicators(facts.performing_trust, identity.trust_ods)
            found = not_patient.evidence(
                [("description", facts.description), *(("description", t) for t in facts.procedure_texts),
                 ("body part", facts.body_part)],
                patient_name="^".join(p for p in (identity.family, identity.given) if p),
                patient_id=identity.local_id, name_words=words, id_prefixes=prefixes)
        if found:
            study.not_patient = not_patient.merge_evidence(study.not_patient, found)

    @staticmethod
    def _set_procedure(study: Study, result: NormalisedProcedure) -> None:
        laterality = result.laterality
        if is_paired(result.body_region) and study.body_region == result.body_region:
            laterality = combine_laterality(study.laterality, laterality) or laterality
        study.modality = study.modality or result.modality
        study.body_region = result.body_region
        study.body_regions = join_regions(result.regions) if len(result.regions) > 1 else None
        study.laterality = laterality if laterality is not None else study.laterality
        study.contrast = result.contrast
        study.normalisation = result.normalisation

    # --- dose -----------------------------------------------------------------------------------------------------

    def _events(self, study: Study) -> list[IrradiationEvent]:
        return list(self.session.scalars(_EVENTS, {"study_id": study.id}))

    def _store_dose(self, study: Study, facts: StudyFacts) -> None:
        rows = {row.event_uid: row for row in self._events(study)}
        incoming = list(facts.dose_events)
        if facts.dose_report is not None:
            incoming += facts.dose_report.events
            reports = dict(study.accumulated_dose or {})
            totals = facts.dose_report.totals()
            key = totals.report_key[:300]
            previous = dz.ReportTotals.from_json(key, reports[key]) if key in reports else None
            reports[key] = dz.merge_report(previous, totals).as_json()
            study.accumulated_dose = reports
        for event in incoming:
            uid = event.event_uid[:100]
            row = rows.get(uid)
            if row is None:
                row = IrradiationEvent(study_id=study.id, event_uid=uid, kind=event.kind, source=event.source)
                self._add(row)
                rows[uid] = row
            row.kind = event.kind
            row.source = event.source
            row.phantom = str(event.phantom_cm) if event.phantom_cm else row.phantom
            if event.protocol or event.localizer or event.compression_thickness_mm is not None:
                row.detail = {"protocol": (event.protocol or "")[:200] or None, "localizer": event.localizer,
                              "compression_thickness_mm": event.compression_thickness_mm}
            for name in _EVENT_FIELDS:
                value = getattr(event, name)
                if value is None:
                    continue
                if name == "ctdivol_mgy" and event.source == "header" and row.ctdivol_mgy is not None:
                    value = max(value, row.ctdivol_mgy)  # images of one series: the highest
                setattr(row, name, value)
        self.summarise(study, list(rows.values()))

    def summarise(self, study: Study, rows: list[IrradiationEvent]) -> None:
        reports = [dz.ReportTotals.from_json(k, v) for k, v in (study.accumulated_dose or {}).items()]
        summary = dz.summarise([to_event(r) for r in rows], reports, study_region=study.body_region,
                               coefficients=self.coefficients, patient_age_years=study.patient_age_years)
        for name in ("dose_source", "irradiation_events", "ctdivol_mgy", "dlp_total_mgycm", "dap_total_gym2",
                     "agd_left_mgy", "agd_right_mgy", "effective_dose_msv", "effective_dose_method"):
            setattr(study, name, getattr(summary, name))
        study.dose_rp_total_gy = summary.dose_rp_total_gy
        study.fluoro_time_s = summary.fluoro_time_s
        study.administered_activity_mbq = summary.administered_activity_mbq
        if study.effective_dose_method:
            study.effective_dose_method = study.effective_dose_method[:300]
        for row in rows:
            row.effective_dose_msv = summary.event_effective_dose.get(row.event_uid)
