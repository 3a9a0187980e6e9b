"""Reading the imaging index: a patient's timeline, study search, the studies export and pseudonymised dose rows.

Every query reaches a patient's studies through their source records (``source_record.regional_patient_id``, then
``study (source_record_id, study_date)``), so what is read always follows the patient's current identity. Pure
reads: auditing is the caller's (routes, commands).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from imaging.dose import compare_with_drl, drl_category
from imaging.reference import national_drls
from imaging.tables import IrradiationEvent, Study
from imaging.withdrawal import dose_is_patients
from mpi import RegionalPatient, SourceRecord, resolve_patient_reference
from priorscan.trusts import TrustRegistry

#: The columns of ``priorscan export studies``: the contract's, then priorscan's own.
EXPORT_COLUMNS = ("study_instance_uid", "regional_id", "trust", "modality", "body_region", "laterality", "study_date",
                  "ctdivol_mgy", "dlp_total_mgycm", "dap_total_gym2", "agd_left_mgy", "agd_right_mgy",
                  "effective_dose_msv", "irradiation_events", "accession_number", "status", "contrast",
                  "normalisation", "dose_source", "dose_rp_total_gy", "fluoro_time_s", "administered_activity_mbq",
                  "effective_dose_method", "patient_unresolved", "withdrawn", "not_patient")

_TIMELINE_COLUMNS = (Study.study_instance_uid, Study.accession_number, Study.performing_trust, Study.status,
                     Study.modality, Study.body_region, Study.laterality, Study.contrast, Study.description,
                     Study.study_date, Study.study_datetime, Study.ctdivol_mgy, Study.dlp_total_mgycm,
                     Study.dap_total_gym2, Study.agd_left_mgy, Study.agd_right_mgy, Study.administered_activity_mbq,
                     Study.effective_dose_msv, Study.effective_dose_method, Study.irradiation_events,
                     Study.dose_source, SourceRecord.link_state, SourceRecord.provisional, Study.withdrawn,
                     Study.patient_issuer, Study.patient_local_id, Study.not_patient, Study.not_patient_decision,
                     Study.not_patient_decided_by, Study.not_patient_decided_at, Study.not_patient_reason)


@dataclass
class TimelineEntry:
    """One study in a patient's timeline, with the effective dose accumulated up to and including it."""

    study_instance_uid: str
    accession_number: str | None
    trust: str | None
    status: str
    modality: str | None
    body_region: str | None
    laterality: str | None
    contrast: bool | None
    description: str | None
    study_date: date | None
    study_datetime: datetime | None
    ctdivol_mgy: float | None
    dlp_total_mgycm: float | None
    dap_total_gym2: float | None
    agd_left_mgy: float | None
    agd_right_mgy: float | None
    administered_activity_mbq: float | None
    effective_dose_msv: float | None
    effective_dose_method: str | None
    irradiation_events: int | None
    dose_source: str | None
    identity: str  # confirmed | probable (the study's source record is a possible match) | provisional
    cumulative_effective_dose_msv: float
    viewer_url: str | None
    withdrawn: str | None = None  # why it is no longer a prior (images rejected, deleted in the PACS)
    not_patient: str | None = None  # where it says it is a QA, physics or phantom test (never a prior)
    #: a person's decision that it is a patient's examination or a test: decision, by, at, reason (or None)
    not_patient_decision: dict[str, Any] | None = None


@dataclass
class Timeline:
    """Every study of one regional patient across the trusts, oldest first."""

    regional_id: str
    entries: list[TimelineEntry] = field(default_factory=list)

    @property
    def cumulative_effective_dose_msv(self) -> float:
        return self.entries[-1].cumulative_effective_dose_msv if self.entries else 0.0

    @property
    def studies_without_estimate(self) -> int:
        """Ionising studies whose effective dose could not be estimated (not counted in the cumulative total); a QA,
        physics or phantom test is no study of the patient's dose."""
        return sum(1 for e in self.entries if e.effective_dose_msv is None and e.dose_source is not None
                   and e.not_patient is None)


def patient_studies_query(regional_id: str) -> Select[Any]:
    """The indexed query of one regional patient's studies (through their source records), oldest first."""
    return (select(*_TIMELINE_COLUMNS).join(SourceRecord, SourceRecord.id == Study.source_record_id)
            .where(SourceRecord.regional_patient_id == regional_id)
            .order_by(Study.study_date, Study.study_datetime, Study.id))


def current_regional_id(session: Session, trusts: TrustRegistry, regional_id: str) -> str | None:
    """The regional patient ``regional_id`` denotes now (following merges); None when unknown.

    Read directly rather than through :class:`mpi.PatientIndex`, whose construction loads the matching model: the
    timeline is on the hot path.
    """
    current: str | None = regional_id
    for _ in range(20):
        row = session.execute(select(RegionalPatient.status, RegionalPatient.merged_into_id)
                              .where(RegionalPatient.id == current)).first()
        if row is None:
            return None
        if row.status != "retired" or not row.merged_into_id:
            return current
        current = row.merged_into_id
    return current


def patient_reference_regional_id(session: Session, trusts: TrustRegistry, reference: str,
                                  client: str = "") -> str | None:
    """The regional patient (current, following merges) that a ``patient`` search value denotes; None when unknown.

    The value is a regional id or ``Patient/<id>`` where the id is a regional id *or* the id of a source record's
    Patient (``src-<n>``, as ``POST /fhir/Patient`` answers, or an id the client gave it), resolved as every adapter
    resolves a reference (:func:`mpi.resolve_patient_reference`): a client that names the Patient by the id it was
    given must find that person's studies, never an empty result.
    """
    resource_id = reference.rstrip("/").rsplit("/", 1)[-1].strip()
    if not resource_id:
        return None
    return resolve_patient_reference(session, trusts, f"Patient/{resource_id}", client=client)


def patient_timeline(session: Session, trusts: TrustRegistry, regional_id: str) -> Timeline | None:
    """The patient's studies from every trust with dose and cumulative effective dose; None for an unknown id.

    Cancelled studies are listed but add no dose. The cumulative effective dose adds the CT estimates only: it is an
    estimate (population index), and ``studies_without_estimate`` counts the ionising studies it leaves out. A study
    withdrawn by an IOCM rejection is listed (with ``withdrawn``) only when its dose is still this patient's
    (:func:`imaging.withdrawal.dose_is_patients`): a study rejected as another person's is not theirs to show. A
    QA, physics or phantom test registered under the patient is listed with ``not_patient`` and adds no dose. Every
    study has a viewer link (:meth:`priorscan.trusts.TrustRegistry.viewer_url`).
    """
    current = current_regional_id(session, trusts, regional_id)
    if current is None:
        return None
    timeline = Timeline(current)
    cumulative = 0.0
    entries = timeline.entries
    for (uid, accession, trust_ods, status, modality, region, laterality, contrast, description, study_date,
         study_datetime, ctdivol, dlp, dap, agd_left, agd_right, activity, effective, method, events, dose_source,
         link_state, provisional, withdrawn, issuer, local_id, test, decision, decided_by, decided_at,
         decided_why) in session.connection().execute(
            patient_studies_query(current)).tuples():
        if not dose_is_patients(withdrawn):
            continue
        if effective is not None and status != "cancelled" and test is None:
            cumulative += effective
        entries.append(TimelineEntry(
            uid, accession, trust_ods, status, modality, region, laterality, contrast, description, study_date,
            study_datetime, ctdivol, dlp, dap, agd_left, agd_right, activity, effective, method, events, dose_source,
            "provisional" if provisional else ("probable" if link_state == "possible-match" else "confirmed"),
            round(cumulative, 6), trusts.viewer_url(trust_ods, uid, accession_number=accession,
                                                    patient_namespace=issuer, patient_local_id=local_id),
            withdrawn, test, {"decision": decision, "by": decided_by, "at": decided_at, "reason": decided_why}
            if decision else None))
    return timeline


def regional_id_of(session: Session, study: Study) -> str | None:
    """The regional patient a study belongs to now."""
    if study.source_record_id is None:
        return None
    return session.scalar(select(SourceRecord.regional_patient_id).where(SourceRecord.id == study.source_record_id))


def search_studies(session: Session, trusts: TrustRegistry, *, patient: str | None = None,
                   identifier: str | None = None, limit: int = 100, client: str = "") -> list[tuple[Study, str | None]]:
    """Studies by patient (:func:`patient_reference_regional_id`: a regional or source Patient id, ``client``'s own
    ids included) and/or identifier (``urn:dicom:uid|<uid>``, an accession number, ``system|value``); each with its
    regional id. Both criteria must hold when both are given."""
    query = select(Study, SourceRecord.regional_patient_id).outerjoin(
        SourceRecord, SourceRecord.id == Study.source_record_id)
    if patient is not None:
        regional_id = patient_reference_regional_id(session, trusts, patient, client)
        if regional_id is None:
            return []
        query = query.where(SourceRecord.regional_patient_id == regional_id)
    if identifier is not None:
        system, _, value = identifier.rpartition("|")
        value = value.strip()
        if value.startswith("urn:oid:"):
            value = value[len("urn:oid:"):]
        if not value:
            return []
        if system == "urn:dicom:uid":
            query = query.where(Study.study_instance_uid == value)
        else:
            query = query.where(or_(Study.study_instance_uid == value, Study.accession_number == value))
    rows = session.execute(query.order_by(Study.study_date.desc(), Study.id.desc()).limit(limit)).all()
    return [(row[0], row[1]) for row in rows]


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def export_rows(session: Session) -> Iterator[dict[str, str]]:
    """One row per study (the ``priorscan export studies`` CSV), streamed in UID order."""
    query = (select(Study, SourceRecord.regional_patient_id)
             .outerjoin(SourceRecord, SourceRecord.id == Study.source_record_id).order_by(Study.id))
    for study, regional_id in session.execute(query.execution_options(yield_per=1000)):
        yield {
            "study_instance_uid": study.study_instance_uid, "regional_id": regional_id or "",
            "trust": study.performing_trust or "", "modality": study.modality or "",
            "body_region": study.body_region or "", "laterality": study.laterality or "",
            "study_date": study.study_date.isoformat() if study.study_date else "",
            "ctdivol_mgy": _number(study.ctdivol_mgy), "dlp_total_mgycm": _number(study.dlp_total_mgycm),
            "dap_total_gym2": _number(study.dap_total_gym2), "agd_left_mgy": _number(study.agd_left_mgy),
            "agd_right_mgy": _number(study.agd_right_mgy), "effective_dose_msv": _number(study.effective_dose_msv),
            "irradiation_events": "" if study.irradiation_events is None else str(study.irradiation_events),
            "accession_number": study.accession_number or "", "status": study.status or "",
            "contrast": "" if study.contrast is None else str(study.contrast).lower(),
            "normalisation": study.normalisation or "", "dose_source": study.dose_source or "",
            "dose_rp_total_gy": _number(study.dose_rp_total_gy), "fluoro_time_s": _number(study.fluoro_time_s),
            "administered_activity_mbq": _number(study.administered_activity_mbq),
            "effective_dose_method": study.effective_dose_method or "",
            "patient_unresolved": study.patient_unresolved or "",
            "withdrawn": study.withdrawn or "",
            "not_patient": study.not_patient or "",
        }


def pseudonym(key: bytes, value: str | None) -> str | None:
    """A keyed, one-way pseudonym (HMAC-SHA256, 16 hex digits): stable for one key, unlinkable without it."""
    if not value:
        return None
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]


def age_band(age: int | None) -> str | None:
    """Age in bands (0-15 paediatric, then by decade to 80+), so analytics rows carry no exact age."""
    if age is None:
        return None
    if age < 16:
        return "0-15"
    if age >= 80:
        return "80+"
    low = max(16, age // 10 * 10)
    return f"{low}-{age // 10 * 10 + 9}"


def analytics_rows(session: Session, key: bytes, *, after_id: int = 0, limit: int = 10_000) -> list[dict[str, Any]]:
    """Pseudonymised dose rows (no identifiers, accession numbers, descriptions or exact ages), in id order.

    Parameters
    ----------
    session : Session
        An open session.
    key : bytes
        The pseudonymisation key (patients and studies are named by HMAC under it).
    after_id, limit : int
        Paging: rows with an internal id above ``after_id``, at most ``limit`` of them (``row_id`` of the last row
        is the next page's ``after_id``).

    Every study is a row; ``not_patient`` is true for a QA, physics or phantom test (its evidence, which may quote
    a description, is not given here), which dose summaries leave out (:func:`imaging.analytics.studies_frame`).
    """
    drls = national_drls()
    query = (select(Study, SourceRecord.regional_patient_id, RegionalPatient.sex)
             .outerjoin(SourceRecord, SourceRecord.id == Study.source_record_id)
             .outerjoin(RegionalPatient, RegionalPatient.id == SourceRecord.regional_patient_id)
             .where(Study.id > after_id).order_by(Study.id).limit(limit))
    page = session.execute(query).all()
    protocols, thickness = _event_details(session, [study.id for study, _, _ in page])
    rows = []
    for study, regional_id, sex in page:
        category = drl_category(study.modality, study.body_region, study.description, study.patient_age_years, drls)
        comparison = compare_with_drl(category, study.ctdivol_mgy, study.dlp_total_mgycm, drls)
        rows.append({
            "row_id": study.id, "patient": pseudonym(key, regional_id),
            "study": pseudonym(key, study.study_instance_uid),
            "trust": study.performing_trust, "status": study.status, "modality": study.modality,
            "body_region": study.body_region, "laterality": study.laterality, "contrast": study.contrast,
            "normalisation": study.normalisation, "study_date": study.study_date.isoformat() if study.study_date
            else None, "age_band": age_band(study.patient_age_years), "sex": sex,
            "scanner": _scanner(study), "protocol": protocols.get(study.id),
            "breast_thickness_mm": thickness.get(study.id),
            "withdrawn": study.withdrawn, "not_patient": study.not_patient is not None,
            "dose_source": study.dose_source,
            "irradiation_events": study.irradiation_events, "ctdivol_mgy": study.ctdivol_mgy,
            "dlp_total_mgycm": study.dlp_total_mgycm, "dap_total_gym2": study.dap_total_gym2,
            "dose_rp_total_gy": study.dose_rp_total_gy, "fluoro_time_s": study.fluoro_time_s,
            "agd_left_mgy": study.agd_left_mgy, "agd_right_mgy": study.agd_right_mgy,
            "administered_activity_mbq": study.administered_activity_mbq,
            "effective_dose_msv": study.effective_dose_msv, "effective_dose_method": study.effective_dose_method,
            "drl_category": comparison.category if comparison else None,
            "drl_ctdivol_mgy": comparison.drl_ctdivol_mgy if comparison else None,
            "drl_dlp_mgycm": comparison.drl_dlp_mgycm if comparison else None,
            "ctdivol_drl_ratio": comparison.ctdivol_ratio if comparison else None,
            "dlp_drl_ratio": comparison.dlp_ratio if comparison else None,
            "above_drl": comparison.above_drl if comparison else None,
            "drl_indication": comparison.indication if comparison else None,
            "drl_note": comparison.note if comparison else None,
        })
    return rows


def _scanner(study: Study) -> str | None:
    """``Manufacturer Model (Station)``: the device as a dose audit names it (no patient data)."""
    name = " ".join(part for part in (study.manufacturer, study.model_name) if part)
    if study.station_name:
        name = f"{name} ({study.station_name})" if name else study.station_name
    return name or None


def _event_details(session: Session, study_ids: list[int]) -> tuple[dict[int, str], dict[int, float]]:
    """Per study: the acquisition protocol most of its irradiation events name (localizers left out), and the mean
    compressed breast thickness of its mammographic views."""
    if not study_ids:
        return {}, {}
    named: dict[int, Counter[str]] = defaultdict(Counter)
    thick: dict[int, list[float]] = defaultdict(list)
    for study_id, detail in session.execute(select(IrradiationEvent.study_id, IrradiationEvent.detail)
                                            .where(IrradiationEvent.study_id.in_(study_ids))):
        if not detail:
            continue
        if detail.get("protocol") and not detail.get("localizer"):
            named[study_id][str(detail["protocol"])] += 1
        if detail.get("compression_thickness_mm") is not None:
            thick[study_id].append(float(detail["compression_thickness_mm"]))
    protocols = {sid: counts.most_common(1)[0][0] for sid, counts in named.items()}
    return protocols, {sid: round(sum(v) / len(v), 1) for sid, v in thick.items()}


def normalisation_counts(session: Session) -> dict[str, int]:
    """How many studies were normalised by code, by description, or not at all (``unknown``)."""
    rows = session.execute(select(Study.normalisation, func.count()).group_by(Study.normalisation)).all()
    return {(name or "unknown"): count for name, count in rows}

