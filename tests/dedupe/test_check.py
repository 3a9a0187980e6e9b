"""The check against a real store, on SQLite and PostgreSQL: identity through the MPI, priors across trusts, orders
and alerts, audit."""

from __future__ import annotations

import json
from datetime import date

import pytest
from dedupe_factories import RULES, TODAY, add_patient, add_study, by_nhs, check, nhs_number
from sqlalchemy import func, select

from dedupe.tables import Alert, AlertEvent
from imaging.tables import ImagingOrder
from mpi import PatientIndex, RecordKey
from priorscan.tables import AuditEvent


def test_a_prior_at_another_trust_is_found_by_this_trusts_hospital_number(db, trusts) -> None:  # type: ignore[no-untyped-def]
    number = nhs_number(1)
    regional, rtk_record = add_patient(db, trusts, trust="RTK", local_id="AB100001", nhs=number)
    again, _ = add_patient(db, trusts, trust="RXC", local_id="E1000001", nhs=number)
    assert again == regional  # one person, two trusts, two hospital numbers
    uid = add_study(db, rtk_record, days_ago=12, trust="RTK", dose=1.9)
    outcome = check(db, trusts, identifiers=((trusts.by_ods("RXC").fhir_system, "E1000001"),), trust="RXC")
    assert (outcome.regional_id, outcome.identity, outcome.verdict) == (regional, "confirmed", "warning")
    prior = outcome.priors[0]
    assert prior | {"viewerUrl": None} == prior | {
        "studyInstanceUid": uid, "trust": "RTK", "daysAgo": 12, "modality": "CT", "bodySite": "head",
        "severity": "warning", "rule": "ct-head", "effectiveDoseMsv": 1.9, "viewerUrl": None}
    assert prior["viewerUrl"] == trusts.by_ods("RTK").viewer_url(uid, prior["accessionNumber"])
    assert prior["studyDate"] == date.fromordinal(TODAY.toordinal() - 12).isoformat()


def test_a_missing_nhs_number_is_resolved_by_demographics(db, trusts) -> None:  # type: ignore[no-untyped-def]
    regional, record = add_patient(db, trusts, nhs=nhs_number(2), family="Whitfield", given="Harriet",
                                   birth_date=date(1958, 11, 3), postcode="RH10 1AA")
    add_study(db, record, days_ago=40)
    outcome = check(db, trusts, family="Whitfield", given=("Harriet",), birth_date=date(1958, 11, 3), sex="female",
                    postcode="RH10 1AA")
    assert outcome.regional_id == regional
    assert outcome.identity in ("confirmed", "probable")
    assert [p["severity"] for p in outcome.priors] == ["info"]


def test_priors_follow_a_merge(db, trusts) -> None:  # type: ignore[no-untyped-def]
    survivor, _ = add_patient(db, trusts, local_id="AB200001", family="Quinn", given="Rory",
                              birth_date=date(1990, 1, 2))
    retired, retired_record = add_patient(db, trusts, local_id="AB200002", family="Quinnell", given="Roderick",
                                          birth_date=date(1991, 2, 3), postcode="TN1 1AA")
    assert survivor != retired
    add_study(db, retired_record, days_ago=5)
    system = trusts.by_ods("RTK").fhir_system
    assert check(db, trusts, identifiers=((system, "AB200001"),)).verdict == "clear"
    PatientIndex(db, trusts).merge(RecordKey(system, "AB200001"), RecordKey(system, "AB200002"), actor="test")
    outcome = check(db, trusts, identifiers=((system, "AB200001"),))
    assert (outcome.regional_id, outcome.verdict) == (survivor, "warning")
    retired_lookup = check(db, trusts, identifiers=((system, "AB200002"),))
    assert retired_lookup.regional_id == survivor


def test_cancelled_priors_never_count(db, trusts) -> None:  # type: ignore[no-untyped-def]
    number = nhs_number(3)
    _, record = add_patient(db, trusts, nhs=number)
    add_study(db, record, days_ago=3, status="cancelled")
    assert check(db, trusts, identifiers=by_nhs(number)).verdict == "clear"


def test_identifiers_naming_two_patients_give_a_probable_identity(db, trusts) -> None:  # type: ignore[no-untyped-def]
    first, record = add_patient(db, trusts, local_id="AB300001", nhs=nhs_number(4), family="Patel", given="Anil",
                                birth_date=date(1980, 1, 1))
    second, _ = add_patient(db, trusts, trust="RYR", local_id="K3000001", nhs=nhs_number(5), family="Okoro",
                            given="Ben", birth_date=date(1975, 6, 6))
    add_study(db, record, days_ago=3)
    outcome = check(db, trusts, identifiers=(*by_nhs(nhs_number(4)), (trusts.by_ods("RYR").fhir_system, "K3000001")),
                    placer="ORD-P1")
    assert outcome.identity == "probable"
    assert set(outcome.candidates) == {first, second}
    alert = db.get(Alert, outcome.alert_id)
    assert alert.identity == "probable"  # never silently certain


def test_an_alert_per_order_with_the_rules_version_and_an_outstanding_order(db, trusts) -> None:  # type: ignore[no-untyped-def]
    number = nhs_number(6)
    regional, record = add_patient(db, trusts, nhs=number)
    add_study(db, record, days_ago=200)  # too old for CT head
    first = check(db, trusts, identifiers=by_nhs(number), trust="RXC", placer="ORD-1")
    assert (first.verdict, first.alert_id) == ("clear", None)
    order = db.scalars(select(ImagingOrder).where(ImagingOrder.placer_order_number == "ORD-1")).one()
    assert (order.requesting_trust, order.status, order.body_region, order.modality) == ("RXC", "active", "head", "CT")
    again = check(db, trusts, identifiers=by_nhs(number), trust="RXC", placer="ORD-1")
    assert again.verdict == "clear"  # its own order is not a prior of itself
    second = check(db, trusts, identifiers=by_nhs(number), trust="RYR", placer="ORD-9")
    assert second.verdict == "warning"
    assert [(p["rule"], p["kind"], p["status"], p["placerOrderNumber"]) for p in second.priors] == [
        ("outstanding-order", "order", "scheduled", "ORD-1")]
    repeat = check(db, trusts, identifiers=by_nhs(number), trust="RYR", placer="ORD-9")
    assert repeat.alert_id == second.alert_id
    assert db.scalar(select(func.count()).select_from(Alert)) == 1
    alert = db.get(Alert, second.alert_id)
    assert (alert.rules_version, alert.regional_patient_id, alert.status) == (RULES.version, regional, "open")
    assert [e.action for e in db.scalars(select(AlertEvent).order_by(AlertEvent.id))] == ["created", "rechecked"]


def test_every_check_is_audited_with_the_regional_id_and_no_patient_details(db, trusts) -> None:  # type: ignore[no-untyped-def]
    number = nhs_number(7)
    regional, record = add_patient(db, trusts, nhs=number, family="Featherstonehaugh")
    add_study(db, record, days_ago=2)
    outcome = check(db, trusts, identifiers=by_nhs(number), placer="ORD-A")
    unknown = check(db, trusts, identifiers=by_nhs(nhs_number(8)))
    assert (unknown.identity, unknown.verdict, unknown.alert_id) == ("unknown", "clear", None)
    db.flush()
    events = list(db.scalars(select(AuditEvent).where(AuditEvent.event_type == "duplicate-check")
                             .order_by(AuditEvent.id)))
    assert [(e.regional_patient_id, e.entity) for e in events] == [(regional, f"alert/{outcome.alert_id}"),
                                                                  (None, None)]
    text = json.dumps([e.detail for e in events])
    assert number not in text and "Featherstonehaugh" not in text


def test_a_child_is_judged_by_the_golden_records_birth_date(db, trusts) -> None:  # type: ignore[no-untyped-def]
    number = nhs_number(9)
    _, record = add_patient(db, trusts, nhs=number, birth_date=date(2015, 6, 1))
    add_study(db, record, days_ago=60)
    outcome = check(db, trusts, identifiers=by_nhs(number))
    assert [(p["severity"], p["circumstances"]) for p in outcome.priors] == [("warning", ["paediatric"])]


@pytest.mark.parametrize(("age_then", "years_ago", "expected"), [
    (9, 2, [("warning", ["paediatric"])]),  # 11 now: a child, though no record gives a birth date
    (14, 1, [("warning", ["paediatric"])]),  # 15 at least
    (15, 1, [("info", [])]),  # 16 at least: an adult
    (40, 0, [("info", [])]),
])
def test_a_patient_without_a_birth_date_is_judged_by_the_age_their_studies_recorded(  # type: ignore[no-untyped-def]
        db, trusts, age_then, years_ago, expected) -> None:
    number = nhs_number(62 + age_then)
    _, record = add_patient(db, trusts, nhs=number, birth_date=None)
    add_study(db, record, days_ago=60)
    add_study(db, record, days_ago=365 * years_ago + 1, modality="XR", region="chest", patient_age=age_then)
    outcome = check(db, trusts, identifiers=by_nhs(number))
    assert [(p["severity"], p["circumstances"]) for p in outcome.priors if p["modality"] == "CT"] == expected


def test_a_historic_request_is_judged_as_of_its_own_date(db, trusts) -> None:  # type: ignore[no-untyped-def]
    number = nhs_number(10)
    _, record = add_patient(db, trusts, nhs=number)
    add_study(db, record, days_ago=20)
    add_study(db, record, days_ago=60)
    then = date.fromordinal(TODAY.toordinal() - 50)
    outcome = check(db, trusts, identifiers=by_nhs(number), on=then)
    assert [p["daysAgo"] for p in outcome.priors] == [10]  # the study 20 days before today came after the request


@pytest.mark.parametrize(("description", "regions", "shown", "why"), [
    ("CT head and cervical spine", None, True, "stored before every region was kept: read again from the description"),
    ("CT head", None, False, "a description naming the head only"),
    ("CT head", "head cervical-spine", True, "every region as stored"),
    ("CT chest and cervical spine", None, False, "a description that does not read as the stored examination"),
])
def test_a_prior_compares_by_every_region_it_names(db, trusts, description, regions, shown, why) -> None:  # type: ignore[no-untyped-def]
    number = nhs_number(61)
    _, record = add_patient(db, trusts, local_id="AB600061", nhs=number)
    add_study(db, record, days_ago=4, region="head", description=description, regions=regions)
    outcome = check(db, trusts, identifiers=by_nhs(number), body_site="cervical spine")
    assert bool(outcome.priors) is shown, why
