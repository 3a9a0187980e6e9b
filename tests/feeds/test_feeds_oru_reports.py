"""The report of an HL7 ORU (its OBX text) is linked to its study, and the duplicate check and the CDS card show the
prior's report conclusion beside it, as for a FHIR DiagnosticReport (issue 16 item 5; hazard log H-HL7-08).
Real MLLP socket and real HTTP server on both backends."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import httpx
from feeds_factories import adt, control_id, exchange, pid
from fixed_dates import AS_OF
from hl7.client import MLLPClient

from imaging.hl7_oru import read_report
from priorscan.hl7v2 import parse_message

RTK_SYSTEM = "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"
STUDY_TIME = (AS_OF - timedelta(days=9)).strftime("%Y%m%d") + "101500"
REQUESTED_AT = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 9, tzinfo=UTC).isoformat()
UID = "1.2.826.0.1.3680043.10.77.1"


def oru(status: str, *observations: str) -> str:
    obr = ["OBR", "1", "P77", "F77", "CTHEAD^CT HEAD^LOCAL", "", "", STUDY_TIME] + [""] * 16 + ["CT", status]
    return "\r".join([f"MSH|^~\\&|RIS|RTK|PRIORSCAN|REGION|{STUDY_TIME}||ORU^R01|{control_id()}|P|2.4",
                      "PID|1||AB770001^^^RTK^MR||REPORTED^RITA||19700101|F", "|".join(obr),
                      f"ZDS|{UID}^RIS^Application^DICOM", *observations]) + "\r"


FINDINGS = "OBX|1|TX|59776-5^Findings^LN||Ventricles normal.~No midline shift.||||||F"
IMPRESSION = "OBX|2|TX|19005-8^Impression^LN||No acute intracranial abnormality.||||||F"
CORRECTED = "OBX|2|TX|19005-8^Impression^LN||Small left subdural haematoma.||||||C"


def _check(server) -> dict:  # type: ignore[no-untyped-def, type-arg]
    token = server.token(["priorscan/duplicate-check"], client="order-entry")
    body = {"patient": {"identifiers": [{"system": RTK_SYSTEM, "value": "AB770001"}]},
            "request": {"modality": "CT", "bodySite": "head", "requestingTrust": "RXC", "requestedAt": REQUESTED_AT}}
    response = httpx.post(server.base_url + "/api/v1/duplicate-check", json=body,
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_an_oru_report_is_linked_and_its_conclusion_shown_beside_the_prior(mllp, live_server) -> None:  # type: ignore[no-untyped-def]
    from dedupe import active_rules
    from dedupe.cds_hooks import card
    from dedupe.check import CheckOutcome

    with MLLPClient("127.0.0.1", mllp.port) as client:
        assert exchange(client, adt("A28", pid("AB770001^^^RTK^MR", name="REPORTED^RITA", dob="19700101",
                                               sex="F"))).code == "AA"
        first = exchange(client, oru("F", FINDINGS, IMPRESSION))
        assert first.code == "AA", first.text
    prior = _check(live_server)["priors"][0]
    assert prior["studyInstanceUid"] == UID
    assert (prior["reportConclusion"], prior["reportStatus"]) == ("No acute intracranial abnormality.", "final")

    with MLLPClient("127.0.0.1", mllp.port) as client:  # a corrected report replaces the first
        assert exchange(client, oru("C", FINDINGS, CORRECTED)).code == "AA"
    answer = _check(live_server)
    prior = answer["priors"][0]
    assert (prior["reportConclusion"], prior["reportStatus"]) == ("Small left subdural haematoma.", "corrected")
    reader = live_server.token(["system/DiagnosticReport.r"], client="viewer")
    report = httpx.get(f"{live_server.base_url}/fhir/{prior['reportReference']}",
                       headers={"Authorization": f"Bearer {reader}"}, timeout=30).json()
    assert report["imagingStudy"] == [{"reference": f"ImagingStudy/{UID}"}]
    assert base64.b64decode(report["presentedForm"][0]["data"]).decode() == (
        "Ventricles normal.\nNo midline shift.\nSmall left subdural haematoma.")

    outcome = CheckOutcome(answer["regionalPatientId"], answer["identity"], [], answer["verdict"], answer["priors"],
                           answer["alertId"], answer.get("alertStatus"), answer["rulesVersion"], answer["request"],
                           datetime.fromisoformat(REQUESTED_AT).date())
    shown = card(outcome, {}, active_rules())  # the CDS card for the same outcome as the API's answer
    assert "Report (corrected): Small left subdural haematoma." in shown["detail"]


def test_an_oru_without_report_text_links_no_report() -> None:
    message = parse_message(oru("F", "OBX|1|ST|110180^Study Instance UID^DCM||1.2.3.4||||||F",
                                "OBX|2|NM|113507^Number of Series^DCM||3||||||F"))
    from imaging.hl7_oru import _groups

    assert read_report(message, _groups(message.segments)[0]) is None
    with_text = parse_message(oru("P", FINDINGS))
    report = read_report(with_text, _groups(with_text.segments)[0])
    assert report is not None and (report.conclusion, report.status) == (None, "preliminary")

