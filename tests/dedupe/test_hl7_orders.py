"""HL7 ORM^O01 / OMI^O23 through the HL7 service (``api.feeds.hl7_service.process_message``): checks, cancellations,
status changes, the order's own time, and refusals naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from dedupe_factories import add_patient, add_study, nhs_number
from sqlalchemy import func, select

from api.context import AppContext
from api.feeds.hl7_service import process_message
from dedupe.tables import Alert
from imaging.tables import ImagingOrder
from priorscan.audit import Agent
from priorscan.settings import Settings

FEED = Agent("feed", "hl7-tests")
ORDERED = date(2025, 3, 31)


@pytest.fixture
def context(store_url: str) -> Iterator[AppContext]:
    ctx = AppContext.open(Settings(db=store_url, env="test"))
    yield ctx
    ctx.engine.dispose()


def patient(context: AppContext, n: int, *, days_ago: int = 10, dose: float | None = 1.8) -> str:
    """A patient of RXC (E-number) and RTK with a CT head at RTK ``days_ago`` days before 31 March 2025."""
    number = nhs_number(n)
    with context.sessions() as session:
        add_patient(session, context.trusts, trust="RXC", local_id=f"E{n:07d}", nhs=number)
        _, record = add_patient(session, context.trusts, trust="RTK", local_id=f"AB{n:06d}", nhs=number)
        add_study(session, record, days_ago=days_ago, on=ORDERED, dose=dose)
        session.commit()
    return number


def orm(n: int, *, control: str = "NW", placer: str = "ORD-100", when: str = "20250331101500",
        status: str = "", pid3: str | None = None, obr4: str = "CHEAD^CT Head^NICIP", msg: str = "M1",
        reason: str = "") -> str:
    pid3 = pid3 or f"E{n:07d}^^^RXC^MR~{nhs_number(n)}^^^NHS^NH"
    return "\r".join([
        f"MSH|^~\\&|RIS|RXC|PRIORSCAN|REGION|{when}||ORM^O01|{msg}|P|2.4",
        f"PID|1||{pid3}||OKAFOR^ADAEZE||19700517|F",
        f"ORC|{control}|{placer}^RXC||{status}|{status}|||{when}",
        f"OBR|1|{placer}||{obr4}|||{when}||||||{reason}||^^^Head||||||||||||||||{reason}",
    ]) + "\r"


def apply(context: AppContext, message: str) -> str:
    outcome = process_message(context, message, channel="test", agent=FEED)
    return str(outcome.detail["ack"])


def alert_of(context: AppContext, placer: str) -> Alert | None:
    with context.sessions() as session:
        return session.scalars(select(Alert).where(Alert.placer_order_number == placer)).first()


def test_a_new_order_is_checked_and_kept_and_a_repeat_message_is_not_applied_twice(context: AppContext) -> None:
    patient(context, 1)
    ack = apply(context, orm(1))
    assert "MSA|AA|M1" in ack
    alert = alert_of(context, "ORD-100")
    assert alert is not None
    assert (alert.channel, alert.requesting_trust, alert.verdict, alert.status) == ("hl7", "RXC", "warning", "open")
    assert alert.request_date == ORDERED
    assert alert.priors[0]["daysAgo"] == 10
    assert "MSA|AA|M1" in apply(context, orm(1))
    with context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 1
        order = session.scalars(select(ImagingOrder)).one()
        assert (order.status, order.body_region, order.procedure_code) == ("active", "head", "CHEAD")


def test_cancelling_the_order_cancels_its_alert_with_the_dose_avoided(context: AppContext) -> None:
    patient(context, 2, dose=2.4)
    apply(context, orm(2))
    assert "MSA|AA|M2" in apply(context, orm(2, control="CA", msg="M2"))
    alert = alert_of(context, "ORD-100")
    assert alert is not None and (alert.status, alert.dose_avoided_msv) == ("cancelled", 2.4)
    with context.sessions() as session:
        assert session.scalars(select(ImagingOrder.status)).one() == "cancelled"


def test_a_status_change_to_completed_completes_the_order(context: AppContext) -> None:
    patient(context, 3)
    apply(context, orm(3))
    apply(context, orm(3, control="SC", status="CM", msg="M3"))
    with context.sessions() as session:
        assert session.scalars(select(ImagingOrder.status)).one() == "completed"


def test_a_historic_order_is_judged_as_of_its_own_time(context: AppContext) -> None:
    patient(context, 4, days_ago=10)  # the CT was on 21 March 2025
    apply(context, orm(4, when="20250301090000"))  # ordered on 1 March: the CT came after it
    assert alert_of(context, "ORD-100") is None


def test_omi_with_stat_priority_and_an_nhs_number_only(context: AppContext) -> None:
    number = patient(context, 5)
    message = "\r".join([
        "MSH|^~\\&|EPR|RYR|PRIORSCAN|REGION|20250331101500||OMI^O23^OMI_O23|M5|P|2.5.1",
        f"PID|1||{number}^^^NHS^NH||OKAFOR^ADAEZE||19700517|F",
        "ORC|NW|ORD-555^RYR||||||||||||||||||||UHSX^^^^^^^^^RYR",
        "TQ1|1||||||||S^Stat^HL70485",
        "OBR|1|ORD-555||^CT HEAD NON CONTRAST|||20250331101000",
        "IPC|ACC555|RP1|1.2.826.0.1.555|SPS1|CT^Computed Tomography^DCM",
    ]) + "\r"
    assert "MSA|AA|M5" in apply(context, message)
    alert = alert_of(context, "ORD-555")
    assert alert is not None
    assert (alert.requesting_trust, alert.verdict) == ("RYR", "info")  # STAT: shown as info, never suppressed
    assert alert.priors[0]["circumstances"] == ["trauma"]
    assert alert.request["modality"] == "CT" and alert.request["bodySite"] == "head"


@pytest.mark.parametrize(("message", "error"), [
    (orm(6, placer=""), "placer order number is empty"),
    (orm(6, control="ZZ"), "ORC-1 order control ZZ is not supported"),
    (orm(6, obr4=""), "OBR-4 universal service id is empty"),  # a body site alone names no procedure
    (orm(6, pid3="^^^RXC^MR"), "PID-3 holds no usable patient identifier"),
], ids=["no-placer", "unknown-control", "no-procedure", "no-identifier"])
def test_refusals_name_the_field(context: AppContext, message: str, error: str) -> None:
    ack = apply(context, message)
    assert "MSA|AE|M1" in ack
    assert error in ack
