"""Issue 14's comparability cases through the public interfaces: ``POST /api/v1/duplicate-check`` and CDS Hooks,
over a real server with the studies in its store. The unit tests of the same rules are in ``test_comparable.py``,
``test_circumstances.py`` and ``tests/imaging/test_imaging_procedures.py``.

Every request states its own time (``requestedAt``, CDS ``authoredOn``), relative to the fixed as-of date, so that
no case depends on today's date.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from dedupe_factories import add_patient, add_study, nhs_number
from fixed_dates import AS_OF

from priorscan.trusts import NHS_NUMBER_SYSTEM

_people = itertools.count(400)


def seed(server, *priors: dict[str, Any]) -> str:  # type: ignore[no-untyped-def]
    """A patient at RTK with ``priors`` (keyword arguments of ``add_study``, ``on`` defaulting to AS_OF); their NHS
    number."""
    n = next(_people)
    number = nhs_number(n)
    with server.context.sessions() as session:
        _, record = add_patient(session, server.context.trusts, local_id=f"CP{n:06d}", nhs=number)
        for prior in priors:
            add_study(session, record, **{"on": AS_OF, **prior})
        session.commit()
    return number


def check(server, number: str, **request: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The duplicate check of a request made at noon (London) on AS_OF from RTK."""
    token = server.token(["priorscan/duplicate-check"])
    body = {"patient": {"identifiers": [{"system": NHS_NUMBER_SYSTEM, "value": number}]},
            "request": {"requestingTrust": "RTK", "requestedAt": f"{AS_OF.isoformat()}T12:00:00+00:00", **request}}
    answer = httpx.post(f"{server.base_url}/api/v1/duplicate-check", json=body,
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


@pytest.mark.parametrize(("prior", "request_", "verdict", "rule", "why"), [
    ({"region": "whole-body", "days_ago": 2}, {"modality": "CT", "bodySite": "head"}, "warning", "ct-head",
     "a trauma pan-scan 2 days ago covers a requested CT head (was clear)"),
    ({"region": "whole-body", "days_ago": 2}, {"modality": "CT", "bodySite": "chest abdomen pelvis"}, "warning",
     "ct-body", "and a requested CT chest-abdomen-pelvis (was clear)"),
    ({"region": "chest", "days_ago": 5}, {"modality": "CT", "bodySite": "abdomen and pelvis"}, "clear", None,
     "CT chest and CT abdomen-pelvis share no part (was a warning)"),
    ({"region": "chest-abdomen-pelvis", "days_ago": 5}, {"modality": "CT", "bodySite": "chest"}, "warning",
     "ct-body", "CT chest and CT chest-abdomen-pelvis overlap"),
    ({"region": "chest", "days_ago": 5}, {"modality": "CT", "bodySite": "TAP"}, "warning", "ct-body",
     "CT TAP is thorax-abdomen-pelvis (had no region)"),
    ({"region": "cervical-spine", "days_ago": 5}, {"code": {"system": "urn:trust:rtk:procedures", "code": "CTHCS",
                                                              "display": "CT head and cervical spine"}},
     "warning", "ct-spine-face-neck", "a combined request is compared for each region it names"),
    ({"region": "pulmonary-angiography", "days_ago": 3}, {"modality": "CT", "bodySite": "coronary angiogram"},
     "clear", None, "a CTPA is no prior of a coronary CTA (was a warning)"),
    ({"region": "pulmonary-angiography", "days_ago": 3}, {"modality": "CT", "bodySite": "CTA head and neck"},
     "clear", None, "nor of a CTA head and neck (was a warning)"),
    ({"region": "pulmonary-angiography", "days_ago": 3}, {"modality": "CT", "bodySite": "CTPA"}, "warning",
     "ct-angiography", "a CTPA is a prior of a CTPA"),
])
def test_comparability_over_http(live_server_sqlite, prior, request_, verdict, rule, why) -> None:  # type: ignore[no-untyped-def]
    number = seed(live_server_sqlite, prior)
    result = check(live_server_sqlite, number, **request_)
    assert result["verdict"] == verdict, why
    assert [p["rule"] for p in result["priors"]] == ([rule] if rule else []), why


def test_a_whole_body_ct_is_a_prior_of_a_ct_head_over_cds_hooks(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    """Issue 14 through CDS Hooks: order-sign for a CT head two days after a trauma pan-scan gives a warning card."""
    from test_cds_hooks import ISSUER, call, hook_request, jwks, signed

    from priorscan.tables import CdsTrustedIssuer

    server = live_server_sqlite
    with server.context.sessions() as session:
        session.add(CdsTrustedIssuer(issuer=ISSUER, jwks=jwks()))
        session.commit()
    number = seed(server, {"region": "whole-body", "days_ago": 2, "on": date.today()})
    answer = call(server, signed(server), hook_request(number))
    assert answer.status_code == 200, answer.text
    [card] = answer.json()["cards"]
    assert card["indicator"] == "warning"


def test_the_request_keeps_every_region_it_names(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    number = seed(live_server_sqlite, {"region": "knee", "laterality": "left", "modality": "XR",
                                       "on": AS_OF - timedelta(days=1)})
    result = check(live_server_sqlite, number, modality="CT", bodySite="head and C-spine")
    assert result["request"]["bodySites"] == ["head", "cervical-spine"]
    assert result["verdict"] == "clear"


@pytest.mark.parametrize(("prior", "request_", "verdict", "circumstances", "why"), [
    ({"region": "abdomen-pelvis", "days_ago": 5},
     {"modality": "CT", "bodySite": "abdomen and pelvis", "priority": "stat",
      "reason": "RTC. Pregnant - not for contrast"}, "warning", ["pregnancy", "trauma"],
     "pregnancy is kept, so the STAT downgrade does not apply (was: info)"),
    ({"region": "head", "days_ago": 60, "trust": "RXC"},
     {"modality": "CT", "bodySite": "head", "reason": "Referred from GP with worsening headache"}, "info", [],
     "a GP referral is no inter-hospital transfer (was: warning)"),
    ({"region": "abdomen-pelvis", "days_ago": 5},
     {"modality": "CT", "bodySite": "abdomen and pelvis", "reason": "Post-op day 3, ?anastomotic leak"},
     "warning", [], "a post-operative complication is no planned follow-up (was: info)"),
    ({"region": "chest-abdomen-pelvis", "days_ago": 5},
     {"modality": "CT", "bodySite": "CAP", "reason": "weight loss, not metastatic disease on last scan"},
     "warning", [], "negated oncology does not downgrade (was: info)"),
    ({"region": "chest-abdomen-pelvis", "days_ago": 5},
     {"modality": "CT", "bodySite": "CAP", "reason": "Restaging of known lymphoma"}, "info", ["oncology"],
     "an asserted restaging still downgrades"),
])
def test_circumstances_over_http(live_server_sqlite, prior, request_, verdict, circumstances, why) -> None:  # type: ignore[no-untyped-def]
    number = seed(live_server_sqlite, prior)
    result = check(live_server_sqlite, number, **request_)
    assert result["verdict"] == verdict, why
    assert result["request"]["circumstances"] == circumstances, why


def test_study_dates_and_days_ago_are_london_dates(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    """Issue 14: ``20260801003000+0100`` is 1 August (it is 31 July 23:30 in UTC), whichever way the study came:
    an HL7 ORU over ``POST /hl7`` or a FHIR ImagingStudy whose ``started`` is written in UTC."""
    server = live_server_sqlite
    number = nhs_number(499)
    with server.context.sessions() as session:
        regional, _ = add_patient(session, server.context.trusts, local_id="CP777001", nhs=number)
        session.commit()
    oru = "\r".join([
        "MSH|^~\\&|RIS|RTK|PRIORSCAN|REGION|20260801010000+0100||ORU^R01|TZ1|P|2.4",
        f"PID|1||CP777001^^^RTK^MR~{number}^^^NHS^NH||OKAFOR^ADAEZE||19700517|F",
        "ORC|RE|PTZ1|FTZ1||CM",
        "OBR|1|PTZ1|FTZ1|CTHEAD^CT HEAD^LOCAL|||20260801003000+0100|||||||||||ACCTZ1||||||F|CT",
        "ZDS|2.25.9014001^RIS^Application^DICOM"]) + "\r"
    hl7 = httpx.post(f"{server.base_url}/hl7", content=oru, headers={
        "Authorization": f"Bearer {server.token(['priorscan/hl7'])}", "Content-Type": "application/hl7-v2"})
    assert "MSA|AA" in hl7.text, hl7.text
    study = {"resourceType": "ImagingStudy", "status": "available",
             "subject": {"reference": f"Patient/{regional}"},
             "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:2.25.9014002"}],
             "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}],
             "started": "2026-07-31T23:30:00Z", "description": "CT HEAD"}
    fhir = httpx.post(f"{server.base_url}/fhir/ImagingStudy", json=study,
                      headers={"Authorization": f"Bearer {server.token(['system/ImagingStudy.c'])}"})
    assert fhir.status_code in (200, 201), fhir.text
    result = check(server, number, modality="CT", bodySite="head", requestedAt="2026-08-03T00:30:00+01:00")
    assert (result["regionalPatientId"], result["identity"]) == (regional, "confirmed")
    dated = sorted((p["studyInstanceUid"], p["studyDate"], p["daysAgo"]) for p in result["priors"])
    assert dated == [("2.25.9014001", "2026-08-01", 2), ("2.25.9014002", "2026-08-01", 2)]


def test_a_combined_study_and_a_combined_order_are_priors_for_each_region(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    """Issue 14: "CT head and cervical spine" indexed only the head, so a requested CT C-spine was clear. The study
    arrives as a FHIR ImagingStudy, the order through the duplicate check; both are kept with every region."""
    server = live_server_sqlite
    number = nhs_number(498)
    with server.context.sessions() as session:
        regional, _ = add_patient(session, server.context.trusts, local_id="CP777002", nhs=number)
        session.commit()
    started = (AS_OF - timedelta(days=3)).isoformat() + "T10:00:00+00:00"
    study = {"resourceType": "ImagingStudy", "status": "available", "subject": {"reference": f"Patient/{regional}"},
             "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:2.25.9014003"}],
             "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}],
             "started": started, "description": "CT head and cervical spine"}
    fhir = httpx.post(f"{server.base_url}/fhir/ImagingStudy", json=study,
                      headers={"Authorization": f"Bearer {server.token(['system/ImagingStudy.c'])}"})
    assert fhir.status_code in (200, 201), fhir.text
    spine = check(server, number, modality="CT", bodySite="cervical spine")
    assert [(p["studyInstanceUid"], p["rule"]) for p in spine["priors"]] == [("2.25.9014003", "ct-spine-face-neck")]
    assert spine["priors"][0]["bodySite"] == "head"  # the contract's one region: the first named

    other = nhs_number(497)
    with server.context.sessions() as session:
        add_patient(session, server.context.trusts, local_id="CP777003", nhs=other, family="Mensah", given="Kofi",
                    birth_date=date(1981, 2, 3), postcode="BN1 1AA")
        session.commit()
    first = check(server, other, modality="CT", bodySite="head and C-spine", placerOrderNumber="PCS1")
    assert first["verdict"] == "clear"
    second = check(server, other, modality="CT", bodySite="C-spine", placerOrderNumber="PCS2")
    assert [(p["placerOrderNumber"], p["rule"]) for p in second["priors"]] == [("PCS1", "outstanding-order")]


def test_a_request_whose_region_cannot_be_read_says_so(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    """A clear verdict for a request that could not be read is no reassurance: the answer says the request's
    normalisation is unknown, so the client can show that no comparison was made by region."""
    number = seed(live_server_sqlite, {"region": "head", "days_ago": 3})
    result = check(live_server_sqlite, number, modality="CT", bodySite="widget")
    assert result["verdict"] == "clear"
    assert (result["request"]["normalisation"], result["request"]["bodySite"]) == ("unknown", None)


@pytest.mark.parametrize(("reason", "indicator", "why"), [
    ("RTC. Pregnant - not for contrast", "warning", "pregnancy kept: the STAT downgrade does not apply (was: info)"),
    ("RTC. Not pregnant", "info", "pregnancy negated: the STAT downgrade applies"),
])
def test_pregnancy_read_in_context_over_cds_hooks(live_server_sqlite, reason, indicator, why) -> None:  # type: ignore[no-untyped-def]
    """Issue 14 through CDS Hooks: a STAT CT abdomen-pelvis order for a pregnant patient five days after one."""
    from test_cds_hooks import ISSUER, call, hook_request, jwks, signed

    from priorscan.tables import CdsTrustedIssuer

    server = live_server_sqlite
    with server.context.sessions() as session:
        session.add(CdsTrustedIssuer(issuer=ISSUER, jwks=jwks()))
        session.commit()
    number = seed(server, {"region": "abdomen-pelvis", "days_ago": 5, "on": date.today()})
    body = hook_request(number)
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    order["code"] = {"text": "CT abdomen and pelvis"}
    order.update(priority="stat", reasonCode=[{"text": reason}])
    answer = call(server, signed(server), body)
    assert answer.status_code == 200, answer.text
    [card] = answer.json()["cards"]
    assert card["indicator"] == indicator, why
