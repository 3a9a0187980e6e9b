"""The review queue and link history as plain data, for the HTTP edge and the web page.

A review item pairs a source record with the candidate it possibly matches, with the explanation the model gave
(per-field weights and levels, the guard that stopped an automatic link). History lists every change of a regional
patient's records' links: who or what made it, why, with which score and model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
            "sex": record.sex, "postcode": record.postcode, "address": record.address,
            "nhsNumberPresent": bool(record.nhs_number), "nhsNumberValid": bool(record.nhs_number_valid),
            "nhsVerification": record.nhs_verification,
            "link": waterfall(record.link_weights, record.link_model_version)}


def _probability(weight: float) -> float:
    return 1.0 / (1.0 + math.pow(2.0, -max(min(weight, 200.0), -200.0)))


def waterfall(explanation: Mapping[str, Any] | None, model_version: str | None = None) -> dict[str, Any] | None:
    """An explanation as stored with a link or a review item, laid out as a waterfall for people.

    ``steps`` start from the prior's weight (what is known of any two records), add each comparison's weight in the
    model's order (its level, the weight, the running total and the probability so far), and end at the total
    weight and its probability. Understands the shapes stored by older versions too: a plain ``{comparison:
    weight}`` (link-on-write's link weights) and ``{"weight": w}`` alone (the batch relink's review items), whose
    prior is then what the total leaves over.
    """
    if not explanation:
        return None
    if "field_weights" in explanation or "weight" in explanation:
        fields = dict(explanation.get("field_weights") or {})
        levels = dict(explanation.get("levels") or {})
        total = explanation.get("weight")
    else:  # a plain {comparison: weight}
        fields, levels, total = dict(explanation), {}, None
    fields = {name: float(w) for name, w in fields.items() if isinstance(w, int | float)}
    prior = explanation.get("prior_weight")
    if prior is None:
        if total is None:
            return {"modelVersion": explanation.get("model_version") or model_version, "prior": None, "steps": [
                {"comparison": name, "level": levels.get(name), "weight": round(w, 3)} for name, w in fields.items()],
                "total": None, "probability": None, "guard": explanation.get("guard")}
        prior = float(total) - sum(fields.values())
    running = float(prior)
    steps = []
    for name, weight in fields.items():
        running += weight
        steps.append({"comparison": name, "level": levels.get(name), "weight": round(weight, 3),
                      "cumulative": round(running, 3), "probability": _probability(running)})
    total_weight = float(total) if total is not None else running
    return {"modelVersion": explanation.get("model_version") or model_version,
            "prior": {"weight": round(float(prior), 3), "probability": _probability(float(prior))},
            "steps": steps, "total": round(total_weight, 3), "probability": _probability(total_weight),
            "guard": explanation.get("guard")}


def _differences(record: dict[str, Any] | None, candidate: dict[str, Any] | None) -> list[str]:
    """The demographic fields on which the two records differ (both known and not equal, or known on one only)."""
    if record is None or candidate is None:
        return []
    out = []
    for name in ("family", "given", "birthDate", "sex", "postcode", "address", "nhsNumberPresent"):
        a, b = record.get(name), candidate.get(name)
        if (a or b) and str(a or "").strip().casefold() != str(b or "").strip().casefold():
            out.append(name)
    return out


def review_item_json(session: Session, item: ReviewItem) -> dict[str, Any]:
    explanation = item.weights or {}
    record = _record_json(session.get(SourceRecord, item.source_record_id))
    candidate = _record_json(session.get(SourceRecord, item.candidate_record_id))
    return {"id": item.id, "status": item.status, "probability": item.score, "modelVersion": item.model_version,
            "createdAt": item.created_at.isoformat() if item.created_at else None,
            "fieldWeights": explanation.get("field_weights", {}), "levels": explanation.get("levels", {}),
            "weight": explanation.get("weight"), "guard": explanation.get("guard"),
            "waterfall": waterfall(explanation, item.model_version),
            "record": record, "candidate": candidate, "differences": _differences(record, candidate),
            "resolution": item.resolution, "resolvedBy": item.resolved_by}


#: Orders of the queue: ``risk`` (the likeliest missed link first: the records most probably one person, whose
#: prior scans are hidden from each other while the item waits) or ``oldest``.
QUEUE_ORDERS = ("risk", "oldest")


def review_queue(session: Session, *, limit: int = 50, offset: int = 0, order: str = "risk"
                 ) -> tuple[int, list[dict[str, Any]]]:
    """Open review items in ``order`` (:data:`QUEUE_ORDERS`), with the total count."""
    total = session.scalar(select(func.count()).select_from(ReviewItem).where(ReviewItem.status == "open")) or 0
    query = select(ReviewItem).where(ReviewItem.status == "open")
    if order == "oldest":
        query = query.order_by(ReviewItem.created_at, ReviewItem.id)
    else:
        query = query.order_by(ReviewItem.score.desc().nulls_last(), ReviewItem.created_at, ReviewItem.id)
    items = session.scalars(query.offset(offset).limit(limit)).all()
    return int(total), [review_item_json(session, item) for item in items]


def review_item(session: Session, item_id: int) -> dict[str, Any] | None:
    """One review item (open or settled) with both records and its waterfall; None when there is no such item."""
    item = session.get(ReviewItem, item_id)
    return review_item_json(session, item) if item is not None else None


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
             "fieldWeights": event.weights, "waterfall": waterfall(event.weights, event.model_version),
             "modelVersion": event.model_version, "actor": event.actor,
             "reason": event.reason} for event, namespace, local_id in events]
