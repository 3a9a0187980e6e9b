"""The review queue and link history as plain data, for the HTTP edge and the web page.

A review item pairs a source record with the candidate it possibly matches, with the explanation the model gave
(per-field weights and levels, the guard that stopped an automatic link). History lists every change of a regional
patient's records' links: who or what made it, why, with which score and model.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from mpi.tables import LinkEvent, ReviewItem, SourceRecord


def _record_json(record: SourceRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"sourceRecordId": record.id, "system": record.namespace, "value": record.local_id,
            "trust": record.trust_ods, "regionalId": record.regional_patient_id, "linkState": record.link_state,
            "family": record.family, "given": record.given,
            "birthDate": record.birth_date.isoformat() if record.birth_date else record.birth_date_text,
            "sex": record.sex, "postcode": record.postcode, "nhsNumberPresent": bool(record.nhs_number),
            "nhsNumberValid": bool(record.nhs_number_valid), "nhsVerification": record.nhs_verification}


def review_item_json(session: Session, item: ReviewItem) -> dict[str, Any]:
    explanation = item.weights or {}
    return {"id": item.id, "status": item.status, "probability": item.score, "modelVersion": item.model_version,
            "createdAt": item.created_at.isoformat() if item.created_at else None,
            "fieldWeights": explanation.get("field_weights", {}), "levels": explanation.get("levels", {}),
            "weight": explanation.get("weight"), "guard": explanation.get("guard"),
            "record": _record_json(session.get(SourceRecord, item.source_record_id)),
            "candidate": _record_json(session.get(SourceRecord, item.candidate_record_id)),
            "resolution": item.resolution, "resolvedBy": item.resolved_by}


def review_queue(session: Session, *, limit: int = 50, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """Open review items, oldest first (with the total count)."""
    total = session.scalar(select(func.count()).select_from(ReviewItem).where(ReviewItem.status == "open")) or 0
    items = session.scalars(select(ReviewItem).where(ReviewItem.status == "open")
                            .order_by(ReviewItem.created_at, ReviewItem.id).offset(offset).limit(limit)).all()
    return int(total), [review_item_json(session, item) for item in items]


def link_history(session: Session, regional_id: str) -> list[dict[str, Any]]:
    """Every link change into or out of ``regional_id``, oldest first."""
    events = session.execute(
        select(LinkEvent, SourceRecord.namespace, SourceRecord.local_id)
        .join(SourceRecord, SourceRecord.id == LinkEvent.source_record_id)
        .where(or_(LinkEvent.to_regional_id == regional_id, LinkEvent.from_regional_id == regional_id))
        .order_by(LinkEvent.at, LinkEvent.id)).all()
    return [{"id": event.id, "at": event.at.isoformat(), "system": namespace, "value": local_id,
             "fromRegionalId": event.from_regional_id, "toRegionalId": event.to_regional_id,
             "linkState": event.link_state, "manual": event.manual, "score": event.score,
             "fieldWeights": event.weights, "modelVersion": event.model_version, "actor": event.actor,
             "reason": event.reason} for event, namespace, local_id in events]
