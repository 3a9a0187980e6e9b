"""One request as the request view shows it: the request, its verdict and alert, each comparable prior, the patient.

Priors are the ones the check showed (kept on the alert), completed from the imaging index where the check's copy
lacks something the index now knows: a prior without a performing trust takes the trust of the record its study
arrived with, and then that trust's viewer link; a report conclusion or a viewer link added to the study since are
kept as sent; a prior still without a viewer link gets the regional viewer's launch (IHE IID, configured in
``trusts.toml``). A prior that still has no trust says so (``trustKnown`` false); one that still has no link gives its
study UID and accession number, so that the images can be found in the shared PACS by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.workspace.banner import PatientBanner, read_patient
from api.workspace.worklist import WorklistItem, alert_item, order_item
from dedupe import Alert, history
from imaging import ImagingOrder, Study
from mpi import SourceRecord
from priorscan.errors import NotFoundError
from priorscan.trusts import TrustRegistry

#: What each alert status lets a person do next (the alert lifecycle of :mod:`dedupe.alerts`).
ACTIONS = {"open": ("acknowledge", "override", "cancel"), "acknowledged": ("override", "cancel"),
           "overridden": ("cancel",), "cancelled": ()}


@dataclass
class RequestView:
    item: WorklistItem
    request: dict[str, Any]
    alert: Alert | None
    priors: list[dict[str, Any]]
    patient: PatientBanner | None
    history: list[dict[str, Any]]

    def as_json(self, *, today: date) -> dict[str, Any]:
        alert = self.alert
        return {
            **self.item.as_json(),
            "request": self.request,
            "priors": self.priors,
            "patient": (self.patient.as_json(today=today, at_trust=self.item.requesting_trust,
                                             check_identity=self.item.identity) if self.patient else None),
            "alert": None if alert is None else {
                "id": alert.id, "status": alert.status, "verdict": alert.verdict, "identity": alert.identity,
                "rulesVersion": alert.rules_version,
                "createdAt": alert.created_at.isoformat() if alert.created_at else None,
                "reason": ({"system": alert.reason_system, "code": alert.reason_code,
                            "display": alert.reason_display} if alert.reason_code else None),
                "comment": alert.comment, "actedBy": alert.acted_by,
                "actedAt": alert.acted_at.isoformat() if alert.acted_at else None,
                "doseAvoidedMsv": alert.dose_avoided_msv,
                "actions": list(ACTIONS.get(alert.status, ())),
                "history": self.history,
            },
        }


def parse_request_id(request_id: str) -> tuple[str, str]:
    """``order-<n>`` or ``alert-<uuid>`` as (kind, key); ``not-found`` for anything else."""
    kind, _, key = request_id.partition("-")
    if kind == "order" and key.isdigit():
        return kind, key
    if kind == "alert" and 8 <= len(key) <= 40:
        return kind, key
    raise NotFoundError("no such request")


def read_request(session: Session, trusts: TrustRegistry, request_id: str, *, trust: str | None,
                 timezone: str) -> RequestView:
    """The request ``request_id`` (only among ``trust``'s requests when given); ``not-found`` otherwise."""
    kind, key = parse_request_id(request_id)
    if kind == "order":
        row = session.execute(
            select(ImagingOrder, SourceRecord.regional_patient_id, SourceRecord.link_state, SourceRecord.provisional)
            .outerjoin(SourceRecord, SourceRecord.id == ImagingOrder.source_record_id)
            .where(ImagingOrder.id == int(key))).first()
        if row is None or (trust is not None and row[0].requesting_trust != trust):
            raise NotFoundError("no such request")
        order = row[0]
        alert = session.scalars(select(Alert).where(Alert.requesting_trust == order.requesting_trust,
                                                    Alert.placer_order_number == order.placer_order_number)).first()
        item = order_item(order, alert, row[1], row[2], row[3], timezone)
        request = dict(alert.request or {}) if alert is not None else {}
        request.update({k: v for k, v in {
            "description": order.description, "modality": order.modality, "bodySite": order.body_region,
            "laterality": order.laterality, "priority": order.priority, "reason": order.reason,
            "placerOrderNumber": order.placer_order_number, "fillerOrderNumber": order.filler_order_number,
            "requestingTrust": order.requesting_trust,
            "code": request.get("code") or ({"system": order.procedure_system, "code": order.procedure_code,
                                            "display": order.description} if order.procedure_code else None),
        }.items() if v is not None})
    else:
        found = session.get(Alert, key)
        if found is None or (trust is not None and found.requesting_trust != trust):
            raise NotFoundError("no such request")
        alert = found
        item = alert_item(alert)
        request = dict(alert.request or {})
    priors = complete_priors(session, trusts, list(alert.priors or []) if alert is not None else [])
    patient = read_patient(session, trusts, item.regional_id) if item.regional_id else None
    events = [] if alert is None else [
        {"action": e.action, "fromStatus": e.from_status, "toStatus": e.to_status, "actor": e.actor,
         "at": e.at.isoformat(), "reason": (e.detail or {}).get("reason"), "comment": (e.detail or {}).get("comment"),
         "user": (e.detail or {}).get("user")} for e in history(session, alert.id)]
    return RequestView(item, request, alert, priors, patient, events)


def complete_priors(session: Session, trusts: TrustRegistry, priors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The priors as shown by the check, with the trust, its name and a viewer link filled in from the index where
    the check had none (see the module's notes); each gains ``trustKnown``."""
    wanted = [p["studyInstanceUid"] for p in priors if p.get("studyInstanceUid")
              and (not p.get("trust") or not p.get("viewerUrl"))]
    found: dict[str, tuple[str | None, str | None, str | None, str | None, str | None]] = {}
    if wanted:
        rows = session.execute(
            select(Study.study_instance_uid, Study.performing_trust, Study.accession_number, SourceRecord.trust_ods,
                   Study.patient_issuer, Study.patient_local_id)
            .outerjoin(SourceRecord, SourceRecord.id == Study.source_record_id)
            .where(Study.study_instance_uid.in_(wanted))).all()
        found = {uid: (performing, accession, record_trust, issuer, local_id)
                 for uid, performing, accession, record_trust, issuer, local_id in rows}
    completed = []
    for prior in priors:
        prior = dict(prior)
        uid = prior.get("studyInstanceUid")
        trust = trusts.resolve(prior.get("trust")) if prior.get("trust") else None
        performing, accession, record_trust, issuer, local_id = found.get(uid or "", (None,) * 5)
        if trust is None:
            trust = trusts.resolve(performing) or trusts.resolve(record_trust) or trusts.resolve(issuer)
        if not prior.get("accessionNumber") and accession:
            prior["accessionNumber"] = accession
        if trust is not None:
            prior["trust"] = trust.ods
            prior["trustName"] = trust.name
        if not prior.get("viewerUrl") and uid:
            # the performing trust's viewer, else the shared PACS's regional launch (IHE IID)
            prior["viewerUrl"] = trusts.viewer_url(trust.ods if trust else None, uid,
                                                   accession_number=prior.get("accessionNumber"),
                                                   patient_namespace=issuer, patient_local_id=local_id)
        prior["trustKnown"] = trust is not None
        completed.append(prior)
    return completed
