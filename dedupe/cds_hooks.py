"""CDS Hooks 2.0: the discovery document, hook requests (``order-select``, ``order-sign``) as duplicate checks, cards,
and feedback as alert outcomes. HTTP, authentication and fetching the patient live in ``api.http.routers.cds``.

For each draft ``ServiceRequest`` (``context.draftOrders``; for ``order-select`` only those in ``context.selections``)
with comparable recent priors, one card:

- ``summary`` (under 140 characters): the most relevant prior, its trust and age; ``indicator`` warning or info;
- ``detail`` (markdown): every prior with its rule, days ago and effective dose; text that came from a feed (a study
  description, a report's conclusion) is written as literal text (:func:`markdown_text`), never as markup;
- ``source``: priorscan; ``links``: one per prior, to the performing trust's viewer (absolute URLs);
- ``overrideReasons``: the rule file's override reasons (as Codings);
- ``suggestions``: delete the draft order and use the prior images (``selectionBehavior`` ``at-most-one``);
- ``uuid``: the alert id, so feedback lands on the alert.

The patient comes from ``prefetch.patient`` (identifiers, name, birth date, gender, postcode), else the caller fetches
``Patient/{context.patientId}`` from ``fhirServer``. The draft orders are checked on both hooks; ``order-sign`` also
keeps them as outstanding orders (a selected draft may still be dropped).

Feedback (``POST /cds-services/{id}/feedback``): ``overridden`` with a reason from the rule file → the alert is
overridden with it (the IR(ME)R justification; a reason missing or unknown is recorded and leaves the alert open);
``accepted`` with the delete suggestion → the request is cancelled, dose avoided counted; ``accepted`` without it →
acknowledged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from dedupe.alerts import ACKNOWLEDGED, CANCELLED, OPEN, Coding, acknowledge, cancel, get_alert, note, override
from dedupe.check import CheckOutcome, CheckRequest, PatientQuery, run_check
from dedupe.fhir_orders import patient_query, read_service_request, validate_service_request
from dedupe.rules import RuleSet
from priorscan.audit import Agent
from priorscan.errors import FHIRError, ForbiddenError, InputError, NotFoundError
from priorscan.trusts import TrustRegistry

ORDER_SELECT = "order-select"
ORDER_SIGN = "order-sign"
HOOKS = (ORDER_SELECT, ORDER_SIGN)
SOURCE_LABEL = "priorscan regional imaging index"
SUMMARY_LIMIT = 139
_DELETE_SUGGESTION = "delete-draft-order"


def discovery() -> dict[str, Any]:
    """The discovery document: one service per hook, the service id being the hook's name."""
    common = "Comparable recent imaging of this patient at any of the five trusts, with links to the images."
    return {"services": [
        {"hook": hook, "id": hook, "title": f"priorscan duplicate imaging check ({hook})",
         "description": common, "prefetch": {"patient": "Patient/{{context.patientId}}"},
         "usageRequirements": "The EHR signs its requests with a JWT (RS384/ES384) whose issuer is trusted with "
                              "`priorscan cds trust`; a priorscan bearer token with scope priorscan/duplicate-check "
                              "is accepted too."}
        for hook in HOOKS]}


def patient_from_resource(patient: dict[str, Any] | None) -> PatientQuery:
    """The patient of a hook from a FHIR Patient resource (prefetched or fetched)."""
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        return PatientQuery()
    return patient_query(patient)


def draft_orders(hook: str, context: dict[str, Any]) -> list[dict[str, Any]]:
    """The draft ServiceRequests a hook call asks about (``order-select``: the selected ones only)."""
    bundle = context.get("draftOrders") or {}
    resources = [e.get("resource") for e in bundle.get("entry") or [] if isinstance(e, dict)]
    orders = [r for r in resources if isinstance(r, dict) and r.get("resourceType") == "ServiceRequest"]
    if hook == ORDER_SELECT and context.get("selections"):
        selected = {str(s).rsplit("/", 1)[-1] for s in context["selections"]}
        orders = [r for r in orders if str(r.get("id")) in selected]
    return orders


@dataclass(frozen=True)
class HookResult:
    cards: list[dict[str, Any]]
    outcomes: list[CheckOutcome]


def run_hook(session: Session, trusts: TrustRegistry, rules: RuleSet, hook: str, body: dict[str, Any],
             patient: PatientQuery, *, agent: Agent, default_trust: str | None = None,
             acting_trust: str | None = None) -> HookResult:
    """Check every draft order of a hook call and answer with its cards (the caller commits).

    ``default_trust`` is the requesting trust for drafts that name none (the trust of the EHR calling).
    ``acting_trust``, for a caller who works at one trust, is the only requesting trust a draft may name
    (:class:`ForbiddenError` otherwise): nobody raises alerts in another trust's queue.
    """
    if hook not in HOOKS:
        raise NotFoundError("no such CDS service")
    context = body.get("context") or {}
    cards: list[dict[str, Any]] = []
    outcomes: list[CheckOutcome] = []
    for draft in draft_orders(hook, context):
        resource = {"status": "draft", "intent": "order", **draft,
                    "subject": draft.get("subject") or {"reference": f"Patient/{context.get('patientId', '')}"}}
        try:
            validate_service_request(resource)
        except FHIRError as exc:
            raise InputError(f"a draft order is not a valid ServiceRequest: {exc.message}", code="cds.draft") from exc
        _, procedure = read_service_request(resource, trusts, rules)
        if procedure.placer_order_number is None and draft.get("id"):
            procedure = replace(procedure, placer_order_number=f"cds:{draft['id']}")
        if acting_trust is not None and procedure.requesting_trust not in (None, acting_trust):
            raise ForbiddenError("a draft order names another requesting trust than the caller's")
        if procedure.requesting_trust is None:
            procedure = replace(procedure, requesting_trust=acting_trust or default_trust)
        outcome = run_check(session, trusts, rules, CheckRequest(patient, procedure, channel="cds-hooks",
                                                                record_order=hook == ORDER_SIGN), agent=agent)
        outcomes.append(outcome)
        if outcome.verdict != "clear":
            cards.append(card(outcome, draft, rules))
    return HookResult(cards, outcomes)


def _summary(outcome: CheckOutcome) -> str:
    first = outcome.priors[0]
    what = " ".join(filter(None, [first.get("modality"), (first.get("bodySite") or "").replace("-", " ")]))
    when = "outstanding order" if first.get("status") == "scheduled" else f"{first['daysAgo']} days ago"
    more = f" (+{len(outcome.priors) - 1} more)" if len(outcome.priors) > 1 else ""
    prefix = "Possible patient match: " if outcome.identity == "probable" else ""
    text = f"{prefix}{what} {when} at {first.get('trust') or 'another trust'}{more}: view before repeating"
    return text if len(text) <= SUMMARY_LIMIT else text[:SUMMARY_LIMIT - 1] + "…"


#: Every character CommonMark (and GitHub's extensions: tables, strikethrough, autolinks) may read as markup within a
#: line; a backslash before any ASCII punctuation makes it literal.
_MARKDOWN_SIGNIFICANT = frozenset("\\`*_{}[]<>()#+-!|~:&")


def markdown_text(value: object) -> str:
    """``value`` as literal text on one line of a card's markdown ``detail`` (hazard log H-SEC-19).

    A study description or report conclusion is whatever a trust's feed sent: written raw, ``<img onerror=...>`` is
    HTML the EHR may render, ``[View images](https://elsewhere)`` a link to another site, and a line break then
    ``- **warning**: ...`` a prior that was never found. Line breaks and other control characters become spaces;
    markdown's significant characters are escaped with a backslash (CommonMark's escape for ASCII punctuation), so
    the EHR shows the text as it was sent.
    """
    flat = "".join(" " if not ch.isprintable() else ch for ch in str(value))
    return "".join("\\" + ch if ch in _MARKDOWN_SIGNIFICANT else ch for ch in flat)


def _detail(outcome: CheckOutcome) -> str:
    lines = []
    if outcome.identity == "probable":
        lines.append("**The patient is a possible match in the regional index, not a confirmed one.**\n")
    for p in outcome.priors:
        dose = f", about {p['effectiveDoseMsv']:.2g} mSv (estimate)" if p.get("effectiveDoseMsv") else ""
        description = markdown_text(p.get("description") or "no description")
        lines.append(f"- **{p['severity']}**: {p.get('modality') or ''} {p.get('bodySite') or ''} "
                     f"({description}) at {p.get('trustName') or p.get('trust')}, "
                     f"{p.get('studyDate') or '?'} ({p['daysAgo']} days ago){dose}; rule `{p['rule']}`")
        if p.get("reportConclusion"):
            status = f" ({markdown_text(p['reportStatus'])})" if p.get("reportStatus") not in (None, "final") else ""
            lines.append(f"  - Report{status}: {markdown_text(p['reportConclusion'])}")
    lines.append(f"\nRule set {outcome.rules_version}.")
    return "\n".join(lines)


def card(outcome: CheckOutcome, draft: dict[str, Any], rules: RuleSet) -> dict[str, Any]:
    """The card for one checked draft order."""
    links = [{"label": f"Images: {p.get('modality') or ''} {p.get('bodySite') or ''} at {p.get('trust')}, "
                       f"{p.get('studyDate')}"[:100], "url": p["viewerUrl"], "type": "absolute"}
             for p in outcome.priors if p.get("viewerUrl")]
    result: dict[str, Any] = {
        "uuid": outcome.alert_id or str(uuid.uuid4()),
        "summary": _summary(outcome),
        "detail": _detail(outcome),
        "indicator": "warning" if outcome.verdict == "warning" else "info",
        "source": {"label": SOURCE_LABEL, "topic": {"system": "urn:priorscan:cds-topic", "code": "duplicate-imaging",
                                                    "display": "Duplicate imaging"}},
        "links": links,
        "overrideReasons": [{"system": r.system, "code": r.code, "display": r.display}
                            for r in rules.override_reasons],
    }
    if draft.get("id"):
        result["suggestions"] = [{
            "label": "Cancel this order and use the prior images", "uuid": _DELETE_SUGGESTION,
            "isRecommended": outcome.verdict == "warning",
            "actions": [{"type": "delete", "description": "Remove the draft imaging order",
                         "resourceId": f"ServiceRequest/{draft['id']}"}]}]
        result["selectionBehavior"] = "at-most-one"
    return result


def apply_feedback(session: Session, rules: RuleSet, body: dict[str, Any], *, agent: Agent,
                   trust: str | None = None, raised_by: str | None = None) -> int:
    """Record CDS Hooks feedback on the alerts its cards stand for; the number of items recorded.

    Only alerts the caller may act on count: with ``trust``, that trust's alerts; with ``raised_by`` (an EHR's agent
    name), the alerts its own hook calls raised. A card naming any other alert is treated as a card without one.
    """
    items = body.get("feedback")
    if not isinstance(items, list):
        raise InputError("feedback must be a list", code="cds.feedback")
    recorded = 0
    for item in items:
        if not isinstance(item, dict) or not item.get("card"):
            raise InputError("each feedback item needs a card uuid", code="cds.feedback")
        try:
            alert = get_alert(session, str(item["card"]), trust=trust)
        except NotFoundError:
            continue  # a card without an alert (e.g. raised for a clear verdict) needs no record
        if raised_by is not None and alert.created_by != raised_by:
            continue  # another caller's alert: as if the card had none
        outcome = item.get("outcome")
        accepted = [s.get("id") for s in item.get("acceptedSuggestions") or [] if isinstance(s, dict)]
        given = item.get("overrideReason")
        override_reason: dict[str, Any] = given if isinstance(given, dict) else {}
        detail = {"outcome": outcome, "outcomeTimestamp": item.get("outcomeTimestamp"),
                  "acceptedSuggestions": accepted}
        if outcome == "overridden":
            coded = override_reason.get("reason")
            reason: dict[str, Any] = coded if isinstance(coded, dict) else {}
            comment = override_reason.get("userComment")
            configured = rules.override_reason(reason.get("system"), reason.get("code"))
            try:
                if configured is None or alert.status not in (OPEN, ACKNOWLEDGED):
                    raise InputError("no configured override reason, or the alert was already settled")
                override(session, alert, rules, reason=Coding(reason.get("system"), reason.get("code")),
                         comment=comment, user=None, agent=agent)
            except InputError as exc:
                note(session, alert, action="cds-feedback", agent=agent,
                     detail={**detail, "note": f"override not applied: {exc.message}"})
        elif outcome == "accepted":
            if _DELETE_SUGGESTION in accepted and alert.status != CANCELLED:
                cancel(session, alert, rules, user=None, comment=None, agent=agent, why="CDS suggestion accepted")
            elif alert.status == OPEN:
                acknowledge(session, alert, user=None, comment=None, agent=agent)
        else:
            raise InputError("feedback outcome must be accepted or overridden", code="cds.feedback")
        recorded += 1
    return recorded
