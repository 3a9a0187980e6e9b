"""FHIR made from HL7 and served over HTTP keeps the rules of FHIR R4 (issue 14): every Coding.system an absolute
URI, a contained resource referenced from its container (dom-3), and a CapabilityStatement that lists every resource
and interaction the server answers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from feeds_factories import Ack, control_id

ABSOLUTE_URI = re.compile(r"^(https?://[^\s/]+(/\S*)?|urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:\S+)$")


def codings(node: Any) -> Iterator[dict[str, Any]]:
    """Every Coding in a resource (an object with a ``code`` and a ``system``), however deep."""
    if isinstance(node, dict):
        if "code" in node and "system" in node:
            yield node
        for value in node.values():
            yield from codings(value)
    elif isinstance(node, list):
        for value in node:
            yield from codings(value)


def oru(uid: str, procedure: str) -> str:
    obr = ["OBR", "1", "P9", "F9", procedure, "", "", "20260301101500"] + [""] * 16 + ["CT", "F"]
    return "\r".join([
        f"MSH|^~\\&|RIS|RTK|PRIORSCAN|REGION|20260301101500||ORU^R01|{control_id()}|P|2.4",
        "PID|1||AB760001^^^RTK^MR||TESTER^JANE||19700101|F", "|".join(obr),
        "OBX|1|TX|IMP^Impression^LOCAL||No acute intracranial abnormality.||||||F",
        f"ZDS|{uid}^RIS^Application^DICOM"]) + "\r"


@pytest.mark.parametrize("procedure", [
    "CTHEAD^CT HEAD^LOCAL",  # a RIS's own code table, named by a word
    "CHEAD^CT Head^NICIP",  # NICIP, which has no URI of its own
    "CTHEAD^CT HEAD",  # no coding system at all
    "22446-0^CT Head^LN",  # LOINC by its HL7 table 0396 mnemonic
], ids=["local", "nicip", "none", "loinc"])
def test_every_code_system_of_a_study_from_hl7_is_an_absolute_uri(live_server_sqlite, procedure: str) -> None:  # type: ignore[no-untyped-def]
    server = live_server_sqlite
    uid = f"1.2.826.0.1.3680043.10.76.{len(procedure)}"
    headers = {"Authorization": f"Bearer {server.token(['priorscan/hl7', 'system/ImagingStudy.rs'])}"}
    reply = httpx.post(f"{server.base_url}/hl7", content=oru(uid, procedure),
                       headers={**headers, "Content-Type": "text/plain"})
    assert Ack(reply.text).code == "AA", reply.text
    study = httpx.get(f"{server.base_url}/fhir/ImagingStudy/{uid}", headers=headers).json()
    found = list(codings(study))
    assert any(c["code"] == procedure.split("^")[0] for c in found), study
    assert [c["system"] for c in found if not ABSOLUTE_URI.match(c["system"])] == []
    if procedure.endswith("^LN"):
        assert {"system": "http://loinc.org", "code": "22446-0"} in found


def test_the_contained_duplicate_check_outcome_is_referenced(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    server = live_server_sqlite
    headers = {"Authorization": f"Bearer {server.token(['priorscan/duplicate-check'])}",
               "Content-Type": "application/fhir+json"}
    request = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
               "code": {"coding": [{"system": "http://snomed.info/sct", "code": "408754009",
                                    "display": "CT of head"}]},
               "subject": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}},
               "authoredOn": "2026-03-01T09:30:00+00:00"}
    answer = httpx.post(f"{server.base_url}/fhir/ServiceRequest", json=request, headers=headers)
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    outside = {**stored, "contained": []}
    references = {match for match in re.findall(r'"reference":\s*"(#[^"]+)"', httpx.Response(200, json=outside).text)}
    assert stored["contained"] and all(f"#{c['id']}" in references for c in stored["contained"]), stored
    assert [c["system"] for c in codings(stored) if not ABSOLUTE_URI.match(c["system"])] == []


_ROUTE = re.compile(r"^/fhir/(?P<type>[A-Z][A-Za-z]+)(?P<rest>/.*)?$")


def _served(paths: dict[str, dict[str, Any]]) -> set[tuple[str, str]]:
    """(resource type, interaction or $operation) for every FHIR route of the OpenAPI description."""
    out: set[tuple[str, str]] = set()
    for path, methods in paths.items():
        m = _ROUTE.match(path)
        if m is None:
            continue
        kind, rest = m["type"], m["rest"] or ""
        for method in methods:
            method = method.upper()
            if rest.startswith("/$"):
                out.add((kind, rest[1:]))
            elif rest == "/_search" or (rest == "" and method == "GET"):
                out.add((kind, "search-type"))
            elif rest == "" and method == "POST":
                out.add((kind, "create"))
            elif re.fullmatch(r"/\{[^}]+\}/_history/\{[^}]+\}", rest):
                out.add((kind, "vread"))
            elif re.fullmatch(r"/\{[^}]+\}", rest):
                out.add((kind, {"GET": "read", "PUT": "update", "DELETE": "delete", "PATCH": "patch"}[method]))
    return out


def test_the_capability_statement_lists_every_resource_and_interaction_served(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    server = live_server_sqlite
    capability = httpx.get(f"{server.base_url}/fhir/metadata").json()
    openapi = httpx.get(f"{server.base_url}/openapi.json",
                        headers={"Authorization": f"Bearer {server.token()}"}).json()
    listed: set[tuple[str, str]] = set()
    for resource in capability["rest"][0]["resource"]:
        listed |= {(resource["type"], i["code"]) for i in resource.get("interaction", [])}
        listed |= {(resource["type"], f"${o['name']}") for o in resource.get("operation", [])}
    served = _served(openapi["paths"])
    assert served, "the OpenAPI description lists FHIR routes"
    assert sorted(served - listed) == []
    system = {i["code"] for i in capability["rest"][0].get("interaction", [])}
    assert {"transaction", "batch"} <= system  # POST /fhir
