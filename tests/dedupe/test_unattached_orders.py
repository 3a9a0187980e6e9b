"""Orders for patients the MPI does not know yet: kept with the identifiers they named, found and attached by the
patient's first check once identity arrives (``dedupe.orders``, ``dedupe.priors``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from dedupe_factories import AGENT, add_patient, by_nhs, check, nhs_number
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.context import AppContext
from api.feeds.hl7_service import process_message
from dedupe.tables import Alert, UnattachedOrderIdentifier
from imaging.tables import ImagingOrder
from mpi import Demographics, PatientIndex
from priorscan.audit import Agent
from priorscan.settings import Settings
from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry


def _order(session: Session, placer: str) -> ImagingOrder:
    return session.scalars(select(ImagingOrder).where(ImagingOrder.placer_order_number == placer)).one()


def _kept_identifiers(session: Session, placer: str) -> set[tuple[str, str]]:
    order = _order(session, placer)
    return {(row.system, row.value) for row in session.scalars(
        select(UnattachedOrderIdentifier).where(UnattachedOrderIdentifier.order_id == order.id))}


def test_an_order_for_an_unknown_patient_keeps_the_identifiers_it_named_normalised(db: Session,
                                                                                    trusts: TrustRegistry) -> None:
    number = nhs_number(31)
    spaced = f"{number[:3]} {number[3:6]} {number[6:]}"
    outcome = check(db, trusts, identifiers=((NHS_NUMBER_SYSTEM, spaced), ("RXC", " E0000031 "),
                                             (NHS_NUMBER_SYSTEM, "not-a-number")), placer="P-31")
    db.commit()
    assert (outcome.identity, outcome.regional_id, outcome.verdict) == ("unknown", None, "clear")
    assert _order(db, "P-31").source_record_id is None
    # as the MPI keys them: ten digits, and the trust's alias replaced by its FHIR system; an invalid one dropped
    assert _kept_identifiers(db, "P-31") == {(NHS_NUMBER_SYSTEM, number),
                                             (trusts.by_ods("RXC").fhir_system, "E0000031")}


@pytest.mark.parametrize("named_by", ["nhs-number", "hospital-number-by-trust-alias"],
                         ids=["by NHS number", "by hospital number under the ODS alias (MPI keys the FHIR system)"])
def test_the_outstanding_order_is_a_prior_once_the_patient_is_registered(db: Session, trusts: TrustRegistry,
                                                                         named_by: str) -> None:
    number = nhs_number(32)
    identifiers = by_nhs(number) if named_by == "nhs-number" else (("RXC", "E0000032"),)
    first = check(db, trusts, identifiers=identifiers, placer="P-32a", on=date(2025, 3, 20))
    db.commit()
    assert first.identity == "unknown"
    regional_id, record_id = add_patient(db, trusts, trust="RXC", local_id="E0000032", nhs=number)  # ADT arrives
    db.commit()

    second = check(db, trusts, identifiers=identifiers, placer="P-32b")
    db.commit()
    assert (second.regional_id, second.identity) == (regional_id, "confirmed")
    assert second.verdict == "warning" and second.alert_id is not None
    [prior] = second.priors
    assert (prior["kind"], prior["status"], prior["placerOrderNumber"], prior["daysAgo"]) == \
        ("order", "scheduled", "P-32a", 11)
    assert prior["rule"] == "outstanding-order"
    # attached to the record that carries the identifier, and its kept identifiers forgotten
    assert _order(db, "P-32a").source_record_id == record_id
    assert _kept_identifiers(db, "P-32a") == set()
    # attached, it is now found as any outstanding order is (not twice)
    third = check(db, trusts, identifiers=by_nhs(number), placer="P-32c")
    assert sorted(p["placerOrderNumber"] for p in third.priors) == ["P-32a", "P-32b"]


def test_an_order_named_by_another_identifier_of_the_record_is_found(db: Session, trusts: TrustRegistry) -> None:
    check(db, trusts, identifiers=(("https://example.nhs.uk/Id/gp-patient", "GP-77"),), placer="P-33a")
    db.commit()
    outcome = PatientIndex(db, trusts).upsert(Demographics(
        namespace=trusts.by_ods("RTK").fhir_system, local_id="AB000033", trust_ods="RTK", family="Okafor",
        given="Adaeze", birth_date=date(1970, 5, 17), sex="female",
        other_identifiers=[("https://example.nhs.uk/Id/gp-patient", "GP-77")]), event="test", actor="dedupe-tests")
    db.commit()
    second = check(db, trusts, identifiers=(("RTK", "AB000033"),), placer="P-33b")
    assert second.regional_id == outcome.regional_id
    assert [p["placerOrderNumber"] for p in second.priors] == ["P-33a"]
    assert _order(db, "P-33a").source_record_id == outcome.source_record_id


def test_a_different_patient_with_a_different_identifier_does_not_get_the_order(db: Session,
                                                                                trusts: TrustRegistry) -> None:
    check(db, trusts, identifiers=by_nhs(nhs_number(34)) + (("RXC", "E0000034"),), placer="P-34a")
    db.commit()
    other = nhs_number(35)
    add_patient(db, trusts, trust="RXC", local_id="E0000035", nhs=other, family="Brennan", given="Niamh",
                birth_date=date(1981, 2, 3), postcode="BN1 1AA")
    db.commit()
    outcome = check(db, trusts, identifiers=by_nhs(other), placer="P-34b")
    db.commit()
    assert outcome.identity == "confirmed" and outcome.priors == [] and outcome.verdict == "clear"
    assert _order(db, "P-34a").source_record_id is None
    assert len(_kept_identifiers(db, "P-34a")) == 2


def test_a_cancelled_unattached_order_is_not_a_prior(db: Session, trusts: TrustRegistry) -> None:
    number = nhs_number(36)
    check(db, trusts, identifiers=by_nhs(number), placer="P-36a")
    _order(db, "P-36a").status = "cancelled"
    db.commit()
    add_patient(db, trusts, trust="RXC", local_id="E0000036", nhs=number)
    db.commit()
    assert check(db, trusts, identifiers=by_nhs(number), placer="P-36b").priors == []


def test_the_order_re_sent_once_the_patient_is_known_is_attached_and_not_its_own_prior(
        db: Session, trusts: TrustRegistry) -> None:
    number = nhs_number(37)
    check(db, trusts, identifiers=by_nhs(number), placer="P-37")
    db.commit()
    _, record_id = add_patient(db, trusts, trust="RXC", local_id="E0000037", nhs=number)
    db.commit()
    again = check(db, trusts, identifiers=by_nhs(number), placer="P-37")
    db.commit()
    assert again.priors == [] and again.verdict == "clear"
    assert _order(db, "P-37").source_record_id == record_id
    assert _kept_identifiers(db, "P-37") == set()


def test_fhir_service_request_before_registration_is_outstanding_for_the_next(db: Session,
                                                                               trusts: TrustRegistry) -> None:
    from test_fhir_orders import service_request

    from dedupe import apply_service_request

    number = nhs_number(40)
    first = apply_service_request(db, trusts, service_request(number, placer="SR-40a"), agent=AGENT)
    db.commit()
    assert first.detail["identity"] == "unknown"
    add_patient(db, trusts, trust="RYR", local_id="F0000040", nhs=number)
    db.commit()
    second = apply_service_request(db, trusts, service_request(number, placer="SR-40b"), agent=AGENT)
    db.commit()
    assert second.detail["identity"] == "confirmed" and second.detail["verdict"] == "warning"
    alert = db.scalars(select(Alert).where(Alert.placer_order_number == "SR-40b")).one()
    assert [(p["kind"], p["placerOrderNumber"], p["modality"], p["laterality"]) for p in alert.priors] == \
        [("order", "SR-40a", "MR", "left")]


# --- through the HL7 service: ORM for an unknown patient, ADT registration, a second ORM -------------------------

FEED = Agent("feed", "hl7-tests")


@pytest.fixture
def context(store_url: str) -> Iterator[AppContext]:
    ctx = AppContext.open(Settings(db=store_url, env="test"))
    yield ctx
    ctx.engine.dispose()


def _orm(number: str, local_id: str, placer: str, msg: str, when: str) -> str:
    return "\r".join([
        f"MSH|^~\\&|RIS|RXC|PRIORSCAN|REGION|{when}||ORM^O01|{msg}|P|2.4",
        f"PID|1||{local_id}^^^RXC^MR~{number}^^^NHS^NH||OKAFOR^ADAEZE||19700517|F",
        f"ORC|NW|{placer}^RXC||||||{when}",
        f"OBR|1|{placer}||CHEAD^CT Head^NICIP|||{when}||||||||^^^Head",
    ]) + "\r"


def _adt(number: str, local_id: str, msg: str) -> str:
    return "\r".join([
        f"MSH|^~\\&|PAS|RXC|PRIORSCAN|REGION|20250325090000||ADT^A04^ADT_A01|{msg}|P|2.4",
        "EVN|A04|20250325090000",
        f"PID|1||{local_id}^^^RXC^MR~{number}^^^NHS^NH||OKAFOR^ADAEZE||19700517|F|||1 HIGH ST^^HASTINGS^^TN34 1AA",
    ]) + "\r"


def _apply(context: AppContext, message: str) -> str:
    return str(process_message(context, message, channel="test", agent=FEED).detail["ack"])


def test_hl7_order_before_registration_is_outstanding_for_the_next_order(context: AppContext) -> None:
    number, other = nhs_number(38), nhs_number(39)
    assert "MSA|AA|M1" in _apply(context, _orm(number, "E0000038", "ORD-1", "M1", "20250320101500"))
    assert "MSA|AA|M2" in _apply(context, _orm(other, "E0000039", "ORD-9", "M2", "20250320111500"))
    assert "MSA|AA|M3" in _apply(context, _adt(number, "E0000038", "M3"))
    assert "MSA|AA|M4" in _apply(context, _orm(number, "E0000038", "ORD-2", "M4", "20250331101500"))
    with context.sessions() as session:
        alert = session.scalars(select(Alert).where(Alert.placer_order_number == "ORD-2")).one()
        assert [(p["kind"], p["placerOrderNumber"], p["daysAgo"]) for p in alert.priors] == [("order", "ORD-1", 11)]
        assert _order(session, "ORD-1").source_record_id is not None
        # the other patient's order stays unattached: nobody registered them
        assert _order(session, "ORD-9").source_record_id is None
        assert session.scalar(select(func.count()).select_from(Alert)) == 1

