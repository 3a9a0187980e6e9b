"""The alert lifecycle and the justification record, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from dedupe_factories import AGENT, RULES, add_patient, add_study, by_nhs, check, nhs_number
from sqlalchemy import select

from dedupe import (
    AlertStateError,
    Coding,
    acknowledge,
    alert_json,
    cancel,
    get_alert,
    history,
    list_alerts,
    override,
)
from imaging.tables import ImagingOrder
from priorscan.errors import InputError, NotFoundError
from priorscan.tables import AuditEvent

REASONS = "urn:priorscan:duplicate-override-reason"


def raised(db, trusts, n: int, *, dose: float | None = 1.8, trust: str = "RXC", placer: str = "ORD-1"):  # type: ignore[no-untyped-def]
    """An open warning alert for a CT head requested at ``trust`` 10 days after one at RTK."""
    number = nhs_number(n)
    _, record = add_patient(db, trusts, local_id=f"AB9{n:05d}", nhs=number)
    add_study(db, record, days_ago=10, dose=dose)
    outcome = check(db, trusts, identifiers=by_nhs(number), trust=trust, placer=placer)
    db.flush()
    return get_alert(db, outcome.alert_id)


def test_acknowledge_is_recorded_once(db, trusts) -> None:  # type: ignore[no-untyped-def]
    alert = raised(db, trusts, 1)
    acknowledge(db, alert, user="rad.jones", comment="seen the prior", agent=AGENT)
    acknowledge(db, alert, user="rad.jones", comment=None, agent=AGENT)
    assert (alert.status, alert.acted_by, alert.comment) == ("acknowledged", "rad.jones", "seen the prior")
    assert [e.action for e in history(db, alert.id)] == ["created", "acknowledged"]


def test_override_needs_a_configured_reason_and_keeps_the_justification_record(db, trusts) -> None:  # type: ignore[no-untyped-def]
    alert = raised(db, trusts, 2)
    with pytest.raises(InputError) as caught:
        override(db, alert, RULES, reason=Coding(REASONS, "because"), comment=None, user="dr.a", agent=AGENT)
    assert caught.value.code == "alert.reason"
    with pytest.raises(InputError, match="needs a comment"):
        override(db, alert, RULES, reason=Coding(REASONS, "other"), comment=" ", user="dr.a", agent=AGENT)
    override(db, alert, RULES, reason=Coding(None, "different-protocol"), comment="arterial phase needed",
             user="dr.a", agent=AGENT)
    record = alert_json(alert)
    assert record["status"] == "overridden"
    assert record["reason"] == {"system": REASONS, "code": "different-protocol",
                                "display": "Different protocol or contrast phase needed"}
    assert (record["comment"], record["actedBy"], record["rulesVersion"]) == ("arterial phase needed", "dr.a",
                                                                              RULES.version)
    assert record["actedAt"] is not None
    event = history(db, alert.id)[-1]
    assert event.detail["shownPrior"] == alert.shown_prior_uid == alert.priors[0]["studyInstanceUid"]
    db.flush()
    audit = db.scalars(select(AuditEvent).where(AuditEvent.subtype == "overridden")).one()
    assert audit.regional_patient_id == alert.regional_patient_id
    assert "arterial" not in str(audit.detail)  # free text stays with the alert, not in the audit trail


def test_cancelling_counts_the_dose_avoided_from_the_prior(db, trusts) -> None:  # type: ignore[no-untyped-def]
    alert = raised(db, trusts, 3, dose=2.2)
    cancel(db, alert, RULES, user="dr.b", comment="will use the prior", agent=AGENT)
    assert (alert.status, alert.dose_avoided_msv) == ("cancelled", 2.2)
    assert alert.dose_avoided_basis == f"prior {alert.shown_prior_uid}"
    order = db.scalars(select(ImagingOrder).where(ImagingOrder.placer_order_number == "ORD-1")).one()
    assert order.status == "cancelled"


def test_cancelling_without_the_priors_dose_uses_the_typical_dose(db, trusts) -> None:  # type: ignore[no-untyped-def]
    alert = raised(db, trusts, 4, dose=None)
    cancel(db, alert, RULES, user=None, comment=None, agent=AGENT)
    assert alert.dose_avoided_msv == 1.5
    assert alert.dose_avoided_basis.startswith("typical")


def test_a_cancel_after_an_override_counts_no_dose_and_a_cancelled_alert_cannot_be_overridden(db, trusts) -> None:  # type: ignore[no-untyped-def]
    alert = raised(db, trusts, 5)
    override(db, alert, RULES, reason=Coding(REASONS, "clinical-change"), comment=None, user=None, agent=AGENT)
    cancel(db, alert, RULES, user=None, comment=None, agent=AGENT)
    assert (alert.status, alert.dose_avoided_msv) == ("cancelled", None)
    assert history(db, alert.id)[-1].detail["doseAvoidedBasis"].startswith("not counted")
    with pytest.raises(AlertStateError):
        override(db, alert, RULES, reason=Coding(REASONS, "clinical-change"), comment=None, user=None, agent=AGENT)
    with pytest.raises(AlertStateError):
        acknowledge(db, alert, user=None, comment=None, agent=AGENT)


def test_listing_by_status_and_trust(db, trusts) -> None:  # type: ignore[no-untyped-def]
    first = raised(db, trusts, 6, trust="RXC", placer="A")
    second = raised(db, trusts, 7, trust="RYR", placer="B")
    acknowledge(db, second, user=None, comment=None, agent=AGENT)
    db.flush()
    assert [a.id for a in list_alerts(db, status="open")] == [first.id]
    assert [a.id for a in list_alerts(db, trust="RYR")] == [second.id]
    assert {a.id for a in list_alerts(db)} == {first.id, second.id}
    with pytest.raises(InputError):
        list_alerts(db, status="closed")
    with pytest.raises(NotFoundError):
        get_alert(db, first.id, trust="RYR")
