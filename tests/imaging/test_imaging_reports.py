"""The prior's report and images: a FHIR DiagnosticReport linked to its study, its conclusion beside the prior in the
duplicate check and on the CDS card, and a viewer link for every prior (the trust's template, else the regional IHE
IID launch), including a prior loaded through FHIR whose trust is unknown. Real HTTP server, both backends."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fixed_dates import AS_OF
from imaging_factories import ct_image, write

from imaging import conclusion_of, ingest_dicom_file
from priorscan.audit import Agent
from priorscan.trusts import NHS_NUMBER_SYSTEM

RTK_SYSTEM = "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"
STUDY_DAY = (AS_OF - timedelta(days=12)).strftime("%Y%m%d")
REQUESTED_AT = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 9, tzinfo=UTC).isoformat()


@pytest.mark.parametrize(("conclusion", "text", "expected"), [
    ("No acute intracranial abnormality.", "Findings: long text", "No acute intracranial abnormality."),
    (None, "Findings: normal ventricles.\nImpression: No acute abnormality.", "No acute abnormality."),
    (None, "CONCLUSION - small left pleural effusion", "small left pleural effusion"),
    (None, "Normal study.", "Normal study."),  # no heading: the text itself
    (None, "   ", None),
])
def test_the_conclusion_shown_is_the_stated_one_else_the_impression(conclusion, text, expected) -> None:  # type: ignore[no-untyped-def]
    assert conclusion_of(conclusion, text) == expected


def test_a_long_report_is_cut_with_an_ellipsis() -> None:
    shown = conclusion_of(None, "Impression: " + "word " * 200)
    assert shown is not None and len(shown) == 400 and shown.endswith("…")


def _report(uid: str, *, conclusion: str | None = None, text: str | None = None, status: str = "final",
            identifier: str = "R-1") -> dict:  # type: ignore[type-arg]
    resource = {"resourceType": "DiagnosticReport", "status": status,
                "identifier": [{"system": "https://ris.rtk.example/reports", "value": identifier}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "18748-4"}]},
                "subject": {"identifier": {"system": RTK_SYSTEM, "value": "AB123456"}},
                "issued": REQUESTED_AT, "imagingStudy": [{"reference": f"ImagingStudy/{uid}"}]}
    if conclusion:
        resource["conclusion"] = conclusion
    if text:
        resource["presentedForm"] = [{"contentType": "text/plain", "data": base64.b64encode(text.encode()).decode()}]
    return resource


def _check(server, trusts) -> dict:  # type: ignore[no-untyped-def, type-arg]
    token = server.token(["priorscan/duplicate-check"], client="order-entry")
    body = {"patient": {"identifiers": [{"system": RTK_SYSTEM, "value": "AB123456"}]},
            "request": {"modality": "CT", "bodySite": "head", "requestingTrust": "RXC", "requestedAt": REQUESTED_AT}}
    response = httpx.post(server.base_url + "/api/v1/duplicate-check", json=body,
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_diagnostic_report_is_linked_and_its_conclusion_shown_beside_the_prior(live_server, trusts,  # type: ignore[no-untyped-def]
                                                                                 tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.10.11.1"
    ingest_dicom_file(live_server.context.sessions, trusts, write(ct_image(
        study_uid=uid, description="CT HEAD", study_date=STUDY_DAY), tmp_path / "a"), agent=Agent("feed", "test"))
    writer = live_server.token(["system/DiagnosticReport.c", "system/DiagnosticReport.r"], client="ris")
    auth = {"Authorization": f"Bearer {writer}"}
    url = live_server.base_url + "/fhir/DiagnosticReport"
    first = httpx.post(url, json=_report(uid, text="Findings: unremarkable.\nImpression: No haemorrhage.",
                                         status="preliminary"), headers=auth, timeout=30)
    assert first.status_code == 201, first.text
    report_id = first.json()["id"]
    amended = httpx.post(url, json=_report(uid, conclusion="No haemorrhage. Old left MCA infarct.", status="amended"),
                         headers=auth, timeout=30)
    assert amended.status_code == 200 and amended.json()["id"] == report_id  # same identifier: the same report
    read = httpx.get(f"{url}/{report_id}", headers=auth, timeout=30).json()
    assert read["imagingStudy"] == [{"reference": f"ImagingStudy/{uid}"}] and read["status"] == "amended"

    prior = _check(live_server, trusts)["priors"][0]
    assert prior["studyInstanceUid"] == uid
    assert (prior["reportConclusion"], prior["reportStatus"], prior["reportReference"]) == (
        "No haemorrhage. Old left MCA infarct.", "amended", f"DiagnosticReport/{report_id}")
    assert prior["viewerUrl"].startswith("https://pacs.region.example.nhs.uk/viewer?trust=RTK")


def test_diagnostic_report_errors_and_scopes(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    server = live_server_sqlite
    url = server.base_url + "/fhir/DiagnosticReport"
    assert httpx.post(url, json=_report("1.2.3.4")).status_code == 401
    reader = server.token(["system/DiagnosticReport.r"], client="reader")
    assert httpx.post(url, json=_report("1.2.3.4"), headers={"Authorization": f"Bearer {reader}"}).status_code == 403
    writer = {"Authorization": f"Bearer {server.token(['system/DiagnosticReport.c'], client='writer')}"}
    no_study = _report("1.2.3.4")
    del no_study["imagingStudy"]
    refused = httpx.post(url, json=no_study, headers=writer)
    assert refused.status_code == 422 and refused.json()["resourceType"] == "OperationOutcome"
    assert httpx.post(url, json={"resourceType": "DiagnosticReport"}, headers=writer).status_code == 400
    # a report of a study not indexed yet keeps the study (the images join it when they arrive)
    early = httpx.post(url, json=_report("1.2.826.0.1.3680043.10.11.9", conclusion="Normal."), headers=writer)
    assert early.status_code == 201


def test_a_prior_from_fhir_with_an_unknown_trust_gets_the_regional_viewer(live_server, trusts) -> None:  # type: ignore[no-untyped-def]
    """The defect of the issue: a prior loaded through FHIR had no viewer link at all, because its trust was unknown."""
    uid = "1.2.826.0.1.3680043.10.11.2"
    token = live_server.token(["system/ImagingStudy.c"], client="fhir-feed")
    study = {"resourceType": "ImagingStudy", "status": "available",
             "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}],
             "subject": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": "9434765919"}},
             "started": (AS_OF - timedelta(days=5)).isoformat(), "modality": [{"code": "CT"}],
             "description": "CT HEAD"}
    created = httpx.post(live_server.base_url + "/fhir/ImagingStudy", json=study,
                         headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert created.status_code == 201, created.text
    checker = live_server.token(["priorscan/duplicate-check"], client="order-entry")
    body = {"patient": {"identifiers": [{"system": NHS_NUMBER_SYSTEM, "value": "9434765919"}]},
            "request": {"modality": "CT", "bodySite": "head", "requestingTrust": "RXC", "requestedAt": REQUESTED_AT}}
    answer = httpx.post(live_server.base_url + "/api/v1/duplicate-check", json=body,
                        headers={"Authorization": f"Bearer {checker}"}, timeout=30).json()
    prior = answer["priors"][0]
    assert prior["studyInstanceUid"] == uid and prior["trust"] is None
    launch = urlsplit(prior["viewerUrl"])
    assert (launch.scheme, launch.netloc, launch.path) == ("https", "pacs.region.example.nhs.uk",
                                                           "/IHEInvokeImageDisplay")
    assert parse_qs(launch.query) == {"requestType": ["STUDY"], "studyUID": [uid],
                                      "patientID": ["9434765919^^^NHS"]}


def test_the_cds_card_shows_the_report_and_links_the_images(live_server, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dedupe import active_rules
    from dedupe.cds_hooks import card
    from dedupe.check import CheckOutcome

    uid = "1.2.826.0.1.3680043.10.11.3"
    ingest_dicom_file(live_server.context.sessions, trusts, write(ct_image(
        study_uid=uid, description="CT HEAD", study_date=STUDY_DAY), tmp_path / "a"), agent=Agent("feed", "test"))
    writer = live_server.token(["system/DiagnosticReport.c"], client="ris")
    httpx.post(live_server.base_url + "/fhir/DiagnosticReport", json=_report(uid, conclusion="Small subdural."),
               headers={"Authorization": f"Bearer {writer}"}, timeout=30).raise_for_status()
    answer = _check(live_server, trusts)
    outcome = CheckOutcome(answer["regionalPatientId"], answer["identity"], [], answer["verdict"], answer["priors"],
                           answer["alertId"], answer.get("alertStatus"), answer["rulesVersion"], answer["request"],
                           datetime.fromisoformat(REQUESTED_AT).date())
    shown = card(outcome, {}, active_rules())  # the card for the same outcome as the API's answer
    assert "Report: Small subdural." in shown["detail"]
    assert shown["links"][0]["url"] == answer["priors"][0]["viewerUrl"]
