"""Identity safety through the public interfaces (hazard log, section Identity): merges across NHS numbers,
registration races, creates that would overwrite, NHS numbers that are not, $match grades, PDQm parameters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from feeds_factories import RTK, RXC, adt, exchange, fhir_patient, nhs_number, pid
from hl7.client import MLLPClient
from sqlalchemy import create_engine, func, select
from test_feeds_fhir_api import Fhir, outcome_of, regional_id_of

from mpi.fhir_patient import MATCH_GRADE_URL
from mpi.nhs_number import check_digit, is_valid_nhs_number
from mpi.tables import ReviewItem, SourceRecord
from priorscan.tables import DeadLetter
from priorscan.trusts import NHS_NUMBER_SYSTEM

FACILITIES = ("RTK", "RXC", "RPC", "RA2", "RYR")


def _regional_ids(context: Any, nhs: str) -> set[str | None]:
    with context.sessions() as session:
        return set(session.scalars(select(SourceRecord.regional_patient_id).where(SourceRecord.nhs_number == nhs)))


def _open_reviews(context: Any) -> int:
    with context.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ReviewItem).where(ReviewItem.status == "open"))
                   or 0)


# --- a feed never merges two valid NHS numbers (H-ID-03) --------------------------------------------------------

def test_a40_of_two_people_with_different_nhs_numbers_is_refused(mllp) -> None:
    first, second = nhs_number(7001), nhs_number(7101)
    with MLLPClient("127.0.0.1", mllp.port) as client:
        assert exchange(client, adt("A28", pid(f"AB700001^^^RTK^MR~{first}^^^NHS^NH", name="HARGREAVE^ALAN",
                                               dob="19500101", sex="M"))).code == "AA"
        assert exchange(client, adt("A28", pid(f"AB700002^^^RTK^MR~{second}^^^NHS^NH", name="OYELARAN^BISI",
                                               dob="19910707", sex="F", address="9 LOW RD^^CRAWLEY^^RH10 1AA"))
                        ).code == "AA"
        merge = adt("A40", pid(f"AB700001^^^RTK^MR~{first}^^^NHS^NH", name="HARGREAVE^ALAN", dob="19500101"),
                    "MRG|AB700002^^^RTK^MR")
        ack = exchange(client, merge)
    assert ack.code in ("AE", "AR"), ack.text
    assert _regional_ids(mllp.context, first).isdisjoint(_regional_ids(mllp.context, second))
    with mllp.context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DeadLetter)) == 1, "the refused message is kept"


# --- concurrent registration of one person (H-ID-05) --------------------------------------------------------------

def _send_together(port: int, messages: list[str]) -> list[str]:
    """Each message on its own connection, all released at once; the ACK codes."""
    ready = threading.Barrier(len(messages))

    def send(message: str) -> str:
        with MLLPClient("127.0.0.1", port) as client:
            ready.wait(timeout=30)
            return exchange(client, message).code

    with ThreadPoolExecutor(len(messages)) as pool:
        return list(pool.map(send, messages))


def test_five_feeds_registering_one_person_at_once_make_one_patient(mllp) -> None:
    for person in range(4):
        nhs = nhs_number(7200 + 10 * person)
        messages = [adt("A28", pid(f"Q{person}{n:06d}^^^{ods}^MR~{nhs}^^^NHS^NH", name=f"PARRY{person}^MEGAN",
                                   dob=f"19{60 + person}0312", sex="F"), facility=ods)
                    for n, ods in enumerate(FACILITIES)]
        assert _send_together(mllp.port, messages) == ["AA"] * 5
        patients = _regional_ids(mllp.context, nhs)
        assert len(patients) == 1 or _open_reviews(mllp.context), f"person {person} split silently: {patients}"
        assert len(patients) == 1, f"person {person} split into {len(patients)} regional patients"


def _create_together(fhir: Fhir, count: int) -> Any:
    ready = threading.Barrier(count)

    def create(body: dict[str, Any]) -> int:
        ready.wait(timeout=30)
        return fhir.post("Patient", body).status_code

    return create


def test_concurrent_fhir_creates_of_one_person_make_one_patient(live_server) -> None:
    fhir = Fhir(live_server)
    systems = [trust.fhir_system for trust in live_server.context.trusts.trusts]
    for person in range(3):
        nhs = nhs_number(7300 + 10 * person)
        bodies = [fhir_patient(hospital=(system, f"F{person}{n:06d}"), nhs=nhs, verification="01",
                               family=f"Quennell{person}", given=["Ruth"], birth_date=f"19{70 + person}-05-06",
                               gender="female") for n, system in enumerate(systems)]
        with ThreadPoolExecutor(len(bodies)) as pool:
            assert list(pool.map(_create_together(fhir, len(bodies)), bodies)) == [201] * len(bodies)
        assert len(_regional_ids(live_server.context, nhs)) == 1


# --- a create never changes a record (H-ID-06) ---------------------------------------------------------------------

def test_a_create_naming_an_existing_hospital_number_is_refused(live_server) -> None:
    writer = Fhir(live_server, scopes=["system/Patient.c", "system/Patient.rs"])
    created = writer.create(fhir_patient(hospital=(RTK, "AB740001"), family="Ashdown", given=["Clare"],
                                         postcode="GU1 1AA"))
    outcome_of(writer.post("Patient", fhir_patient(hospital=(RTK, "AB740001"), family="Intruder", given=["Eve"],
                                                   postcode="BN1 1AA")), 409, "duplicate")
    again = writer.get(f"Patient/{created['id']}").json()
    assert again["name"][0]["family"] == "Ashdown" and again["meta"]["versionId"] == created["meta"]["versionId"]
    assert regional_id_of(again) == regional_id_of(created)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": fhir_patient(hospital=(RTK, "AB740001"), family="Intruder"),
         "request": {"method": "POST", "url": "Patient"}}]}
    assert writer.post("", bundle).status_code == 409
    assert writer.get(f"Patient/{created['id']}").json()["name"][0]["family"] == "Ashdown"


# --- NHS numbers that are not (H-ID-07) --------------------------------------------------------------------------

def _failing_mod11(seed: int) -> str:
    first = f"999{seed:06d}"
    digit = check_digit(first)
    number = first + str(((digit or 0) + 1) % 10)
    assert not is_valid_nhs_number(number)
    return number


def test_a_patient_whose_nhs_number_fails_modulus_11_is_refused(live_server_sqlite) -> None:
    fhir = Fhir(live_server_sqlite)
    body = fhir_patient(hospital=(RXC, "A0750001"), nhs=_failing_mod11(7501))
    diagnostics = outcome_of(fhir.post("Patient", body), 400, "invalid")
    assert "Modulus 11" in diagnostics
    assert fhir.get("Patient", identifier=f"{RXC}|A0750001").json()["total"] == 0, "nothing was stored"
    outcome_of(fhir.put("Patient/chosen-1", {**body, "id": "chosen-1"}), 400, "invalid")


def test_a_patient_whose_nhs_number_is_a_placeholder_is_refused(live_server_sqlite) -> None:
    """``0000000000`` passes Modulus 11 but is never issued: keyed for "not known" (H-ID-33). Refused whole, with
    a diagnostic saying what to send instead, and nothing stored."""
    fhir = Fhir(live_server_sqlite)
    body = fhir_patient(hospital=(RXC, "A0750002"), nhs="0000000000")
    diagnostics = outcome_of(fhir.post("Patient", body), 400, "invalid")
    assert "placeholder" in diagnostics
    assert fhir.get("Patient", identifier=f"{RXC}|A0750002").json()["total"] == 0, "nothing was stored"


def test_test_range_nhs_numbers_are_flagged_and_unused_in_production(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prod.db'}"
    env = {**os.environ, "PRIORSCAN_ENV": "production", "PRIORSCAN_SECRET_KEY": "x" * 40}
    test_number = nhs_number(7601)
    patients = [fhir_patient(hospital=(system, local), nhs=test_number, verification="01", family="Penrose",
                             given=["Ada"], birth_date="1955-02-03", gender="female", postcode=postcode)
                for system, local, postcode in ((RTK, "AB760001", "GU1 1AA"), (RXC, "A0760001", "TN34 1AA"))]
    for n, patient in enumerate(patients):
        path = tmp_path / f"p{n}.json"
        path.write_text(json.dumps(patient))
        for argv in (["migrate"], ["ingest", str(path)]):
            done = subprocess.run([sys.executable, "-m", "priorscan.cli", "--db", url, *argv], env=env,
                                  capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stderr
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(SourceRecord.nhs_number, SourceRecord.nhs_number_valid)).all()
    engine.dispose()
    assert rows == [(test_number, False), (test_number, False)], "kept, flagged as not valid"


# --- $match grades (H-ID-08) ----------------------------------------------------------------------------------------

def _grades(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    out = {}
    for entry in response.json().get("entry", []):
        if entry["search"]["mode"] == "match":
            out[entry["resource"]["id"]] = next(e["valueCode"] for e in entry["search"]["extension"]
                                                if e["url"] == MATCH_GRADE_URL)
    return out


def _match(fhir: Fhir, resource: dict[str, Any]) -> httpx.Response:
    return fhir.post("Patient/$match", {"resourceType": "Parameters",
                                        "parameter": [{"name": "resource", "resource": resource}]})


def test_match_is_certain_only_with_an_identifier_and_for_one_patient(live_server) -> None:
    fhir = Fhir(live_server)
    twins = {}
    for given, local, seed in (("Amelia", "AB770001", 7701), ("Annabel", "AB770002", 7711)):
        nhs = nhs_number(seed)
        twins[given] = (nhs, regional_id_of(fhir.create(fhir_patient(
            hospital=(RTK, local), nhs=nhs, verification="01", family="Trelawney", given=[given],
            birth_date="2001-04-09", gender="female", postcode="GU2 7XH"))))
    probe = fhir_patient(hospital=None, family="Trelawney", given=["A"], birth_date="2001-04-09",
                         gender="female", postcode="GU2 7XH")
    assert "certain" not in _grades(_match(fhir, probe)).values(), "twins: nobody is certain"
    alone = fhir_patient(hospital=None, family="Trelawney", given=["Amelia"], birth_date="2001-04-09",
                         gender="female", postcode=None)
    assert "certain" not in _grades(_match(fhir, alone)).values(), "name, birth date and sex are not enough"
    nhs, wanted = twins["Amelia"]
    backed = _grades(_match(fhir, {**alone, "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}]}))
    assert [rid for rid, grade in backed.items() if grade == "certain"] == [wanted]


# --- PDQm parameters (H-ID-09) ------------------------------------------------------------------------------------

def test_pdqm_serves_iti78_parameters_and_refuses_the_others(live_server_sqlite) -> None:
    fhir = Fhir(live_server_sqlite)
    wanted = regional_id_of(fhir.create(fhir_patient(hospital=(RTK, "AB780001"), family="Marchetti",
                                                     postcode="GU1 1AA", telecom=[{"system": "phone",
                                                                                   "value": "01483 780 001"}])))
    fhir.create(fhir_patient(hospital=(RXC, "A0780002"), family="Oduya", postcode="TN34 1AA",
                             address=[{"line": ["2 Sea Road"], "city": "Hastings", "postalCode": "TN34 1AA"}]))

    def found(**params: str) -> list[str]:
        response = fhir.get("Patient", **params)
        assert response.status_code == 200, response.text
        return [e["resource"]["id"] for e in response.json().get("entry", []) if e["search"]["mode"] == "match"]

    assert found(telecom="phone|01483780001") == [wanted]
    assert found(**{"address-city": "guildford"}) == [wanted]
    assert found(address="GU1") == [wanted]
    assert found(family="Marchetti", active="true") == [wanted]
    assert found(family="Marchetti", active="false") == []
    for unsupported in ({"address-country": "GB"}, {"mothersMaidenName": "X"}, {"family:contains": "arch"},
                        {"foo": "bar"}):
        outcome_of(fhir.get("Patient", **unsupported), 400, "not-supported")
    strict = httpx.get(f"{fhir.base}/Patient", params={"foo": "bar"}, timeout=30,
                       headers={**fhir.headers, "Prefer": "handling=strict"})
    outcome_of(strict, 400, "not-supported")
    lenient = httpx.get(f"{fhir.base}/Patient", params={"family": "Marchetti", "foo": "bar"}, timeout=30,
                        headers={**fhir.headers, "Prefer": "handling=lenient"})
    assert lenient.status_code == 200
    bundle = lenient.json()
    assert [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"] == [wanted]
    assert "foo" not in bundle["link"][0]["url"]
    warning = next(e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome")
    assert warning["issue"][0]["severity"] == "warning" and "foo" in warning["issue"][0]["diagnostics"]
