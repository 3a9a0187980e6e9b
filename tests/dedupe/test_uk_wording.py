"""UK request and study wording through the public interfaces, as an independent acceptance check sends it.

Priors are indexed from what PACS and RIS actually write (DICOM JSON: StudyDescription, ModalitiesInStudy,
BodyPartExamined, local StudyDate/StudyTime) through :func:`imaging.ingest_dicom_json`; requests are written as
clinicians and order-entry systems word them (NICIP-style names, UK abbreviations, misspellings, sides in
brackets) and sent to ``POST /api/v1/duplicate-check`` or CDS Hooks ``order-sign``. Each row says what the old
reading did wrong (hazards H-CMP-09, H-CMP-10 and H-CMP-11 of docs/clinical-safety/hazard-log.md).

Every request states its own time, so that no case depends on today's date.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from dedupe_factories import add_patient, nhs_number
from fixed_dates import AS_OF

from imaging import ingest_dicom_json
from priorscan.audit import Agent
from priorscan.trusts import NHS_NUMBER_SYSTEM, ODS_SYSTEM

_people = itertools.count(700)
_uids = itertools.count(1)
PACS = Agent("client", "uk-wording-tests")
NOON = f"{AS_OF.isoformat()}T12:00:00+01:00"  # AS_OF is in June: noon BST


def _dicom_json(local_id: str, description: str, modality: str, performed: datetime,
                body_part: str | None) -> dict[str, Any]:
    """A QIDO-RS study result as a trust's PACS answers it (date and time local, no offset)."""
    dataset: dict[str, Any] = {
        "0020000D": {"vr": "UI", "Value": [f"2.25.7{next(_uids)}{local_id[2:]}"]},
        "00080020": {"vr": "DA", "Value": [performed.strftime("%Y%m%d")]},
        "00080030": {"vr": "TM", "Value": [performed.strftime("%H%M%S")]},
        "00080050": {"vr": "SH", "Value": [f"RTK{next(_uids)}"]},
        "00080061": {"vr": "CS", "Value": [modality]},
        "00081030": {"vr": "LO", "Value": [description]},
        "00100020": {"vr": "LO", "Value": [local_id]},
    }
    if body_part:
        dataset["00180015"] = {"vr": "CS", "Value": [body_part]}
    return dataset


def seed(server, *priors: tuple[str, str, int] | tuple[str, str, int, str], on: date = AS_OF,  # type: ignore[no-untyped-def]
         at: str = "10:00") -> str:
    """A patient at RTK with priors ``(StudyDescription, Modality, days before `on`[, BodyPartExamined])`` performed
    at ``at`` local time, indexed from DICOM JSON; their NHS number."""
    n = next(_people)
    number, local_id = nhs_number(n), f"UK{n:06d}"
    with server.context.sessions() as session:
        add_patient(session, server.context.trusts, local_id=local_id, nhs=number)
        session.commit()
    hour, minute = (int(part) for part in at.split(":"))
    for description, modality, days_ago, *body_part in priors:
        day = on - timedelta(days=days_ago)
        performed = datetime(day.year, day.month, day.day, hour, minute)
        outcome = ingest_dicom_json(server.context.sessions, server.context.trusts,
                                    _dicom_json(local_id, description, modality, performed,
                                                body_part[0] if body_part else None), agent=PACS, source="RTK")
        assert outcome.accepted, outcome
    return number


def check(server, number: str, requested_at: str = NOON, **request: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    token = server.token(["priorscan/duplicate-check"])
    body = {"patient": {"identifiers": [{"system": NHS_NUMBER_SYSTEM, "value": number}]},
            "request": {"requestingTrust": "RTK", "requestedAt": requested_at, **request}}
    answer = httpx.post(f"{server.base_url}/api/v1/duplicate-check", json=body,
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


# (prior: StudyDescription, Modality, days ago[, BodyPartExamined]); request; flagged; why (what the old code did)
COMPARABLE = [
    (("CT ABD/PEL W CON", "CT", 10), {"modality": "CT", "bodySite": "pelvis"}, True,
     "H-CMP-09: ABD/PEL is abdomen and pelvis (PEL was not read: abdomen only, the CT pelvis request was clear)"),
    (("CT PELVIS", "CT", 10), {"modality": "CT", "bodySite": "ABD PELV"}, True,
     "H-CMP-09: and as a request (PELV was not read)"),
    (("MRI Cervical and Thoracic spine", "MR", 10), {"modality": "MR", "bodySite": "C-spine"}, True,
     "H-CMP-09: levels listed before one 'spine' are each imaged (the cervical level was lost)"),
    (("MRI C+T+L spine", "MR", 10), {"modality": "MR", "bodySite": "cervical spine"}, True,
     "H-CMP-09: C+T+L is the whole spine (read as lumbar only, with contrast)"),
    (("CT Trauma", "CT", 2), {"modality": "CT", "bodySite": "CT head ? bleed"}, True,
     "H-CMP-09: a trauma CT is the pan-scan that covers a CT head (no region: clear)"),
    (("Trauma CT head to pelvis", "CT", 2), {"modality": "CT", "bodySite": "chest"}, True,
     "H-CMP-09: head to pelvis is the whole body (read as head and pelvis: the chest was not covered)"),
    (("CT Aorta (dissection protocol)", "CT", 3), {"modality": "CT", "bodySite": "CTA aorta"}, True,
     "H-CMP-09: a CT of the aorta is its angiogram (no region: clear)"),
    (("CT PE study", "CT", 3), {"code": {"system": "https://fhir.nhs.uk/CodeSystem/NICIP", "code": "CCTPA",
                                         "display": "CT Pulmonary angiogram"}}, True,
     "H-CMP-09: a PE study is a CTPA (no region: clear)"),
    (("CTPA", "CT", 3), {"modality": "CT", "bodySite": "? PE"}, True,
     "H-CMP-09: a CT asked for '? PE' is a CTPA (no region: clear)"),
    (("CT colon", "CT", 10), {"modality": "CT", "bodySite": "CT colonography"}, True,
     "H-CMP-09: CT colon is the colonography (no region: clear)"),
    (("MRI SIJs", "MR", 10), {"modality": "MR", "bodySite": "sacroiliac joints"}, True,
     "H-CMP-09: SIJs are the sacroiliac joints (no region: clear)"),
    (("CT heaad", "CT", 10), {"modality": "CT", "bodySite": "head"}, True,
     "H-CMP-09: a misspelt head is still the head (no region: clear)"),
    (("CT Head", "CT", 10), {"modality": "CT", "bodySite": "CT Haed non con"}, True,
     "H-CMP-09: and a misspelt request (no region: clear)"),
    (("XR Tib + fib Rt", "DX", 5), {"modality": "XR", "bodySite": "tibia and fibula", "laterality": "right"}, True,
     "H-CMP-09: '+' between parts is 'and', not contrast (no region: clear)"),
    (("MRI Cx spine", "MR", 10), {"modality": "MR", "bodySite": "L-spine"}, False,
     "H-CMP-10: Cx spine is the cervical spine (read as the whole spine: a lumbar request was flagged)"),
    (("CT Stroke protocol (non-con head, CTA, perfusion)", "CT", 3), {"modality": "CT", "bodySite": "CTPA"}, False,
     "H-CMP-10: a stroke CTA is the head-and-neck territory (read as every territory: a CTPA was flagged)"),
    (("CTA renal arteries", "CT", 3), {"modality": "CT", "bodySite": "CTPA"}, False,
     "H-CMP-10: renal arteries are the aortic territory (read as every territory: a CTPA was flagged)"),
    (("CT mesenteric angiogram", "CT", 3), {"modality": "CT", "bodySite": "CT angiogram aorta"}, True,
     "H-CMP-10: a mesenteric CTA is still a prior of a CTA of the aorta (its territory)"),
    (("XR Lft foot", "DX", 3, "FOOT"), {"modality": "XR", "bodySite": "foot", "laterality": "right"}, False,
     "H-CMP-10: Lft is left (side unknown, so a right foot was flagged)"),
    (("XR Rght foot", "DX", 3), {"modality": "XR", "bodySite": "XR foot (R)"}, True,
     "H-CMP-10: Rght is right, and R in brackets too (still flagged)"),
    (("AbdPelvis^PortalVenous (Adult)", "CT", 10), {"modality": "CT", "bodySite": "CT pelvis"}, True,
     "H-CMP-09: a scanner protocol name in camel case is read word by word (was no region)"),
    (("Angio^01_CTA_Carotid (Adult)", "CT", 3), {"modality": "CT", "bodySite": "CTPA"}, False,
     "H-CMP-10: a bare 'Angio' beside the carotids is their territory (was also every territory: a CTPA flagged)"),
    (("CT Chest", "CT", 10), {"code": {"system": "http://snomed.info/sct", "code": "418023006"}}, True,
     "H-CMP-09: SNOMED CT's CT chest, abdomen and pelvis, coded without display (was not in the code table)"),
    (("CT HEAD W/O CON", "CT", 10), {"code": {"system": "urn:trust:rtk:ris", "code": "CTHNC",
                                              "display": "Computed tomography of head without contrast"}}, True,
     "H-CMP-09: a SNOMED CT term as display names its modality in words (was no modality: clear)"),
    (("CTA lower limbs runoff", "CT", 3), {"modality": "CT", "bodySite": "CTA aorta and lower limb runoff"}, True,
     "H-CMP-09: an angiogram naming two territories images both (was the aorta only: the run-off was missed)"),
    (("CTPA ? left PE", "CT", 3), {"modality": "CT", "bodySite": "CTPA ?right heart strain"}, True,
     "H-CMP-09: a side in the question of a CTPA rules nothing out (was left against right: clear)"),
    (("XR ribs left", "DX", 3), {"modality": "XR", "bodySite": "CXR", "laterality": "right"}, True,
     "H-CMP-09: a side counts only for a region that has one (was left against right: clear)"),
    (("CTPA ?right heart strain", "CT", 3), {"modality": "CT", "bodySite": "CT coronary angiogram"}, False,
     "H-CMP-10: the heart in a CTPA's question is no coronary territory"),
    (("XR Knee Rt", "CR", 3), {"modality": "XR", "bodySite": "knee", "laterality": "(L)"}, False,
     "H-CMP-10: a side field of '(L)' is left (unknown: the right knee was flagged)"),
    (("XR Knee Rt", "CR", 3), {"modality": "XR", "bodySite": "82169009"}, False,
     "H-CMP-13: a body site sent as SNOMED CT's structure of left knee region is the left knee: no right knee"),
    (("XR L knee", "CR", 3), {"modality": "XR", "bodySite": "82169009"}, True,
     "H-CMP-12: and a left knee prior is shown (no region: clear)"),
    (("CT Chest", "CT", 10), {"modality": "CT", "bodySite": "51185008"}, True,
     "H-CMP-12: a body site sent as a SNOMED CT identifier alone is read as the structure (no region: clear)"),
    # the second sweep: UK RIS names and clinicians' shorthand
    (("CTPA", "CT", 3), {"modality": "CT", "bodySite": "CT Chest ?PE"}, True,
     "H-CMP-12: a CT chest for a PE is a CTPA (read as a CT chest: the CTPA 3 days ago hidden)"),
    (("C.T.P.A.", "CT", 3), {"modality": "CT", "bodySite": "CTPA"}, True,
     "H-CMP-12: a dotted C.T.P.A. is a CTPA (no region: clear)"),
    (("CTA chest", "CT", 3), {"modality": "CT", "bodySite": "CT coronary angiogram"}, False,
     "H-CMP-13: a CTA chest is the pulmonary and aortic territories (read as every territory: a CTCA flagged)"),
    (("CTA Thorax", "CT", 3), {"modality": "CT", "bodySite": "CTPA"}, True,
     "H-CMP-12: and still a prior of a CTPA"),
    (("CTA CAP", "CT", 3), {"modality": "CT", "bodySite": "CTPA"}, False,
     "H-CMP-13: a CTA of the trunk is the aortic territory (read as every territory: a CTPA flagged)"),
    (("CT coronaries", "CT", 10), {"modality": "CT", "bodySite": "CTCA"}, True,
     "H-CMP-12: CT coronaries is a coronary CTA (no region: clear)"),
    (("US TV", "US", 10), {"modality": "US", "bodySite": "pelvis"}, True,
     "H-CMP-12: US TV is a transvaginal (pelvic) ultrasound (no region: clear)"),
    (("US Pelvis TA", "US", 10), {"modality": "US", "bodySite": "TVUS"}, True,
     "H-CMP-12: and TVUS as a request (no region: clear)"),
    (("US Obs growth scan", "US", 10), {"modality": "US", "bodySite": "obstetric"}, True,
     "H-CMP-12: an obstetric growth scan is the pelvis (no region: clear)"),
    (("NM Renogram MAG3", "NM", 10), {"modality": "NM", "bodySite": "MAG3 renogram"}, True,
     "H-CMP-12: a renogram is the kidneys (no region: clear)"),
    (("NM Myocardial perfusion", "NM", 10), {"modality": "NM", "bodySite": "myocardial perfusion scan"}, True,
     "H-CMP-12: a myocardial perfusion scan is the heart (no region: clear)"),
    (("MRI Calf Lt", "MR", 10), {"modality": "MR", "bodySite": "lower leg", "laterality": "left"}, True,
     "H-CMP-12: the calf is the lower leg (no region: clear)"),
    (("MRI Calf Lt", "MR", 10), {"modality": "MR", "bodySite": "calf", "laterality": "right"}, False,
     "H-CMP-13: and keeps its side"),
    (("XR Odontoid peg", "DX", 10), {"modality": "XR", "bodySite": "C-spine"}, True,
     "H-CMP-12: an odontoid peg view is the cervical spine (no region: clear)"),
    (("CT Head", "CT", 10), {"modality": "CT", "bodySite": "CTB"}, True,
     "H-CMP-12: CTB is a CT brain (no region: clear)"),
    (("MRI Whole Spine", "MR", 10), {"modality": "MR", "bodySite": "MRI MSCC"}, True,
     "H-CMP-12: an MRI for MSCC is the whole spine (no region: clear)"),
    (("MRI Lumber spine", "MR", 10), {"modality": "MR", "bodySite": "C-spine"}, False,
     "H-CMP-13: a misspelt lumbar spine is the lumbar level (read as the whole spine: a C-spine flagged)"),
    (("MRI L-spine", "MR", 10), {"modality": "MR", "bodySite": "MRI Lumber spine"}, True,
     "H-CMP-12: and still a prior of the lumbar spine"),
    (("XR Lumbar spine", "DX", 10), {"modality": "XR", "bodySite": "XR L/S"}, True,
     "H-CMP-12: L/S is the lumbosacral spine (no region: clear)"),
    # the reference audit: REFERENCE.md's facts in the wording request forms use
    (("WBCT", "CT", 2), {"modality": "CT", "bodySite": "CT head ?bleed"}, True,
     "H-CMP-14: a WBCT two days ago covers the head (no region: clear)"),
    (("CT Chest", "CT", 10), {"modality": "CT", "bodySite": "CT neck to pelvis"}, True,
     "H-CMP-14: neck to pelvis images the chest (read as the neck and the pelvis: clear)"),
    (("CT NTAP", "CT", 10), {"modality": "CT", "bodySite": "CT chest w/wo contrast"}, True,
     "H-CMP-14: NTAP is neck, thorax, abdomen and pelvis (no region: clear)"),
    (("CT KUB", "CT", 10), {"modality": "CT", "bodySite": "CT K.U.B ?calculi"}, True,
     "H-CMP-14: a dotted K.U.B is a KUB (no region: clear)"),
    (("PET-CT skull base to thighs", "PT", 20), {"modality": "PT", "bodySite": "FDG PET"}, True,
     "H-CMP-14: a PET naming no part is skull base to thighs (no region: clear)"),
    (("MRI L-spine", "MR", 10), {"modality": "MR", "bodySite": "MRI ?CES"}, True,
     "H-CMP-14: ?CES is cauda equina syndrome, the lumbosacral spine (no region: clear)"),
    (("CMR", "MR", 10), {"modality": "MR", "bodySite": "Cardiac MRI"}, True,
     "H-CMP-14: CMR is a cardiac MR (no region: clear)"),
    (("US L groin", "US", 10), {"modality": "US", "bodySite": "US inguinal hernia ?recurrence"}, True,
     "H-CMP-14: the groin (no region: clear)"),
    (("Babygram", "DX", 3), {"modality": "XR", "bodySite": "Babygram"}, True,
     "H-CMP-15: a babygram images the chest, so the chest rule applies (no rule for chest-abdomen: clear)"),
    (("XR KUB", "DX", 10), {"modality": "XR", "bodySite": "XR KUB"}, True,
     "H-CMP-15: a KUB images the pelvis, so the pelvis rule applies (no rule for abdomen-pelvis: clear)"),
    (("XR Facial bones", "DX", 10), {"modality": "XR", "bodySite": "XR OM views ?#"}, True,
     "H-CMP-15: facial bones are part of the skull (no rule for the face: clear)"),
    (("OPG", "DX", 10), {"modality": "XR", "bodySite": "OPG"}, True, "H-CMP-15: and an OPG (clear)"),
    (("XR L ankle", "DX", 3), {"modality": "XR", "bodySite": "XR pelvis frog leg"}, False,
     "H-CMP-14: a frog-leg view is of the hips (read as the whole lower limb: an ankle was flagged)"),
    (("XR Pelvis", "DX", 3), {"modality": "XR", "bodySite": "XR pelvis + frog lateral"}, True,
     "and still the pelvis"),
    (("US Doppler L leg veins", "US", 5), {"modality": "US", "bodySite": "US DVT", "laterality": "left"}, True,
     "H-CMP-14: a DVT scan naming no limb is the leg (no region: clear)"),
    (("XR Knee Rt", "CR", 3), {"modality": "XR", "bodySite": "XR L knee WB"}, False,
     "weight-bearing (WB) is no whole-body and no side"),
]


@pytest.mark.parametrize(("prior", "request_", "flagged", "why"), COMPARABLE)
def test_uk_wording_is_compared_as_a_clinician_reads_it(live_server_sqlite, prior, request_, flagged, why) -> None:  # type: ignore[no-untyped-def]
    result = check(live_server_sqlite, seed(live_server_sqlite, prior), **request_)
    assert bool(result["priors"]) is flagged, (why, result["request"], result["priors"])


@pytest.mark.parametrize(("requested_at", "prior_at", "on", "days_ago", "severity", "why"), [
    ("2026-03-30T00:30:00", "12:00", date(2026, 2, 28), 30, "warning",
     "H-CMP-11: a time without offset is London's (was a 500: naive and aware times compared)"),
    ("2026-03-30T00:30:00", "12:00", date(2026, 2, 27), 31, "info",
     "H-CMP-11: and the next day out is info"),
    ("2026-10-26T00:30:00", "00:30", date(2026, 9, 26), 30, "warning",
     "H-CMP-11: across the October change, both local calendar days (prior 00:30 BST, request 00:30 GMT)"),
])
def test_request_times_without_offset_are_london_time(live_server_sqlite, requested_at, prior_at, on, days_ago,  # type: ignore[no-untyped-def]
                                                      severity, why) -> None:
    number = seed(live_server_sqlite, ("CT Head", "CT", 0), on=on, at=prior_at)
    result = check(live_server_sqlite, number, requested_at=requested_at, modality="CT", bodySite="head")
    assert [(p["daysAgo"], p["severity"]) for p in result["priors"]] == [(days_ago, severity)], why


def test_a_prior_later_on_the_day_than_a_request_without_offset_is_no_prior(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    """H-CMP-11: 09:00 local on a BST day is 08:00 UTC; a study at 08:30 local came before it, one at 10:00 after."""
    number = seed(live_server_sqlite, ("CT Head", "CT", 0), at="08:30")
    later = seed(live_server_sqlite, ("CT Head", "CT", 0), at="10:00")
    assert check(live_server_sqlite, number, requested_at=f"{AS_OF}T09:00:00", modality="CT",
                 bodySite="head")["verdict"] == "warning"
    assert check(live_server_sqlite, later, requested_at=f"{AS_OF}T09:00:00", modality="CT",
                 bodySite="head")["verdict"] == "clear"


def test_a_stroke_cta_over_cds_hooks_is_not_a_prior_of_a_ctpa(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    """H-CMP-10 through CDS Hooks: order-sign for a CTPA three days after a stroke protocol CT (head, CTA,
    perfusion) gives no card, and one for a CTA of the carotids does."""
    from test_cds_hooks import ISSUER, call, jwks, signed

    from priorscan.tables import CdsTrustedIssuer

    server = live_server_sqlite
    with server.context.sessions() as session:
        session.add(CdsTrustedIssuer(issuer=ISSUER, jwks=jwks()))
        session.commit()
    number = seed(server, ("CT Stroke protocol (non-con head, CTA, perfusion)", "CT", 3))

    def order(text: str) -> dict[str, Any]:
        draft = {"resourceType": "ServiceRequest", "id": "d1", "status": "draft", "intent": "order",
                 "code": {"text": text}, "authoredOn": NOON, "subject": {"reference": "Patient/ehr-1"},
                 "requester": {"identifier": {"system": ODS_SYSTEM, "value": "RTK"}}}
        return {"hookInstance": f"h-{next(_uids)}", "hook": "order-sign",
                "context": {"userId": "Practitioner/1", "patientId": "ehr-1",
                            "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                            "entry": [{"resource": draft}]}},
                "prefetch": {"patient": {"resourceType": "Patient", "id": "ehr-1",
                                         "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": number}]}}}

    ctpa = call(server, signed(server), order("CTPA ? PE"))
    assert ctpa.status_code == 200, ctpa.text
    assert ctpa.json()["cards"] == []
    carotids = call(server, signed(server), order("CT angio aortic arch and carotids"))
    assert [card["indicator"] for card in carotids.json()["cards"]] == ["warning"]


SNOMED = "http://snomed.info/sct"
DCM = "http://dicom.nema.org/resources/ontology/DCM"


@pytest.mark.parametrize(("prior", "sites", "cards", "why"), [
    (("CT CHEST", "CT", 10), [{"coding": [{"system": SNOMED, "code": "51185008"}]}], ["warning"],
     "H-CMP-09: a body site sent as a SNOMED CT code alone is the chest (was no region: no card)"),
    (("XR L) Knee", "DX", 3), [{"coding": [{"system": SNOMED, "code": "72696002"}]},
                               {"coding": [{"system": SNOMED, "code": "7771000"}]}], ["warning"],
     "H-CMP-09: the knee, on the side the laterality code gives (was no region: no card)"),
    (("XR Knee Rt", "DX", 3), [{"coding": [{"system": SNOMED, "code": "72696002"}]},
                               {"coding": [{"system": SNOMED, "code": "7771000"}]}], [],
     "H-CMP-10: a left knee is no prior of a right one"),
    (("XR L) Knee", "DX", 3), [{"coding": [{"system": SNOMED, "code": "82169009"}]}], ["warning"],
     "H-CMP-12: structure of left knee region, coded alone, is the left knee (was no region: no card)"),
    (("XR Knee Rt", "DX", 3), [{"coding": [{"system": SNOMED, "code": "82169009"}]}], [],
     "H-CMP-13: and its side rules out a right knee"),
    (("XR Knee Rt", "DX", 3), [{"coding": [{"system": SNOMED, "code": "82169009"}], "text": "Knee"}], [],
     "H-CMP-13: the code's side stands beside a text without one (was the knee of either side: a card)"),
    (("CT Rt shoulder", "CT", 10), [{"coding": [{"system": SNOMED, "code": "91774008"}]}], ["warning"],
     "H-CMP-12: structure of right shoulder region (was no region: no card)"),
])
def test_coded_body_sites_over_cds_hooks(live_server_sqlite, prior, sites, cards, why) -> None:  # type: ignore[no-untyped-def]
    """CDS Hooks order-sign for a ServiceRequest whose body site is coded without text, as EHRs send it."""
    from test_cds_hooks import ISSUER, call, jwks, signed

    from priorscan.tables import CdsTrustedIssuer

    server = live_server_sqlite
    with server.context.sessions() as session:
        session.add(CdsTrustedIssuer(issuer=ISSUER, jwks=jwks()))
        session.commit()
    number = seed(server, prior)
    modality = "DX" if prior[1] == "DX" else "CT"
    draft = {"resourceType": "ServiceRequest", "id": "d1", "status": "draft", "intent": "order",
             "code": {"text": "Imaging request"}, "orderDetail": [{"coding": [{"system": DCM, "code": modality}]}],
             "bodySite": sites, "authoredOn": NOON, "subject": {"reference": "Patient/ehr-2"},
             "requester": {"identifier": {"system": ODS_SYSTEM, "value": "RTK"}}}
    body = {"hookInstance": f"h-{next(_uids)}", "hook": "order-sign",
            "context": {"userId": "Practitioner/1", "patientId": "ehr-2",
                        "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                        "entry": [{"resource": draft}]}},
            "prefetch": {"patient": {"resourceType": "Patient", "id": "ehr-2",
                                     "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": number}]}}}
    answer = call(server, signed(server), body)
    assert answer.status_code == 200, answer.text
    assert [card["indicator"] for card in answer.json()["cards"]] == cards, why


@pytest.mark.parametrize(("prior", "request_", "verdict", "why"), [
    (("XR Whole spine", "DX", 5), {"modality": "XR", "bodySite": "XR whole spine", "reason": "RTC, 24/40"},
     "warning", "H-CMP-16: a whole-spine radiograph images the lumbar spine (was info: trauma downgrade)"),
    (("CTA Aorta", "CT", 3), {"modality": "CT", "bodySite": "CT aortogram", "priority": "stat",
                              "reason": "?dissection, pregnant"},
     "warning", "H-CMP-16: a CT aortogram irradiates the abdomen (was info: STAT downgrade)"),
    (("CT Head", "CT", 5), {"modality": "CT", "bodySite": "CT head", "reason": "RTC, 24/40"},
     "info", "the head is no abdomen or pelvis region: the trauma downgrade applies (REFERENCE.md)"),
])
def test_pregnancy_guards_regions_that_image_the_abdomen_or_pelvis(live_server_sqlite, prior, request_, verdict,  # type: ignore[no-untyped-def]
                                                                    why) -> None:
    result = check(live_server_sqlite, seed(live_server_sqlite, prior), **request_)
    assert result["verdict"] == verdict, why


@pytest.mark.parametrize(("reason", "verdict", "why"), [
    ("RTC, 28/40, abdo pain", "warning", "H-CMP-03: 28/40 is a pregnancy, which the trauma downgrade may not hide "
                                         "(was info)"),
    ("Fall from height. bHCG +ve", "warning", "H-CMP-03: a positive hCG is a pregnancy (was info)"),
    ("RTC, bHCG -ve", "info", "a negative hCG is none: the trauma downgrade applies"),
    ("RTC. G2P1 at 20 weeks", "warning", "H-CMP-12: gravida and para with a gestation is a pregnancy (was info)"),
    ("RTC, 20wks preg", "warning", "H-CMP-17: 'preg' is a pregnancy (was info)"),
    ("RTC, ?preg", "warning", "H-CMP-17: and a queried one (was info)"),
    ("RTC, preg test neg", "info", "a negative pregnancy test is none: the trauma downgrade applies"),
])
def test_pregnancy_shorthand_blocks_the_trauma_downgrade(live_server_sqlite, reason, verdict, why) -> None:  # type: ignore[no-untyped-def]
    number = seed(live_server_sqlite, ("CT Abdomen and Pelvis", "CT", 5))
    result = check(live_server_sqlite, number, modality="CT", bodySite="CT AP", reason=reason)
    assert result["verdict"] == verdict, why
