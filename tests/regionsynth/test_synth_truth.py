"""Ground truth: every identifier the feeds use is accounted for, and the truth agrees with the feeds."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from synth_feeds import (
    dicom_identifiers,
    fhir_files,
    fhir_identifiers,
    fhir_resources,
    field,
    hl7_identifiers,
    hl7_messages,
    read_csv,
    read_dicom,
    segments,
)

from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry

Identifier = tuple[str, str]


@pytest.fixture(scope="module")
def owners(large_region: Path) -> dict[Identifier, str]:
    rows = read_csv(large_region / "truth" / "persons.csv")
    owner: dict[Identifier, str] = {}
    for row in rows:
        key = (row["system"], row["value"])
        assert owner.setdefault(key, row["person_id"]) == row["person_id"], f"{key} belongs to two people"
    return owner


@pytest.fixture(scope="module")
def orphans(large_region: Path) -> set[str]:
    """Mistyped NHS numbers that belong to nobody."""
    return {r["nhs_number_sent"] for r in read_csv(large_region / "truth" / "records.csv")
            if r["nhs_error"] in ("invalid-check", "unissued")}


@pytest.fixture(scope="module")
def studies(large_region: Path) -> dict[str, dict[str, str]]:
    return {r["study_instance_uid"]: r for r in read_csv(large_region / "truth" / "studies.csv")}


def _accounted(identifier: Identifier, owners: dict[Identifier, str], orphans: set[str]) -> bool:
    return identifier in owners or (identifier[0] == NHS_NUMBER_SYSTEM and identifier[1] in orphans)


def test_every_hl7_identifier_is_in_the_truth(large_region: Path, trusts: TrustRegistry,
                                              owners: dict[Identifier, str], orphans: set[str]) -> None:
    seen = 0
    for path in large_region.glob("hl7/*/*.hl7"):
        for message in hl7_messages(path):
            for identifier in hl7_identifiers(message, trusts):
                assert _accounted(identifier, owners, orphans), (path.name, identifier)
                seen += 1
    assert seen > 10_000


def test_every_fhir_identifier_is_in_the_truth(large_region: Path, owners: dict[Identifier, str],
                                               orphans: set[str]) -> None:
    for path in fhir_files(large_region):
        for resource in fhir_resources(path):
            for identifier in fhir_identifiers(resource):
                assert _accounted(identifier, owners, orphans), (path.name, identifier)


def test_dicom_identifiers_belong_to_the_study_patient(large_region: Path, trusts: TrustRegistry,
                                                       owners: dict[Identifier, str], orphans: set[str],
                                                       studies: dict[str, dict[str, str]]) -> None:
    rows = read_csv(large_region / "truth" / "dicom_files.csv")
    for row in rows[:: max(1, len(rows) // 1500)]:
        ds = read_dicom(large_region / row["path"])
        person = studies[ds.StudyInstanceUID]["person_id"]
        hospital, *others = dicom_identifiers(ds, trusts)
        assert owners[hospital] == person
        for nhs in others:
            assert _accounted(nhs, owners, orphans)


def test_oru_patients_are_the_study_patients(large_region: Path, trusts: TrustRegistry,
                                             owners: dict[Identifier, str], studies: dict[str, dict[str, str]]) -> None:
    for path in large_region.glob("hl7/*/oru.hl7"):
        for message in hl7_messages(path):
            zds = segments(message, "ZDS")
            uid = field(zds[0], 1).split("^")[0] if zds else next(
                field(o, 5) for o in segments(message, "OBX") if field(o, 3).startswith("110180^"))
            hospital = next(i for i in hl7_identifiers(message, trusts) if i[0] != NHS_NUMBER_SYSTEM)
            assert owners[hospital] == studies[uid]["person_id"]


def test_mistyped_nhs_numbers_are_listed_only_for_their_owner(large_region: Path, owners: dict[Identifier, str],
                                                              orphans: set[str]) -> None:
    records = read_csv(large_region / "truth" / "records.csv")
    kinds = Counter(r["nhs_error"] for r in records if r["nhs_error"])
    assert kinds["invalid-check"] and kinds["unissued"]
    for r in records:
        sent = (NHS_NUMBER_SYSTEM, r["nhs_number_sent"])
        if r["nhs_error"] in ("invalid-check", "unissued"):
            assert sent not in owners
        elif r["nhs_error"] == "other-person":
            assert owners[sent] == r["nhs_owner"] != r["person_id"]
        elif r["nhs_number_sent"]:
            assert owners[sent] == r["person_id"]


def test_hospital_numbers_match_the_trust_patterns(large_region: Path, trusts: TrustRegistry) -> None:
    for row in read_csv(large_region / "truth" / "persons.csv"):
        trust = trusts.resolve(row["system"])
        if trust is not None:
            assert re.fullmatch(trust.hospital_number_pattern or "", row["value"]), row


def test_each_study_is_in_exactly_one_primary_feed(large_region: Path, studies: dict[str, dict[str, str]]) -> None:
    delivered: dict[str, Counter] = defaultdict(Counter)
    for path in (large_region / "dicom").glob("*/*"):
        delivered[path.name]["dicom"] += 1
    for path in large_region.glob("hl7/*/oru.hl7"):
        for message in hl7_messages(path):
            zds = segments(message, "ZDS")
            uid = field(zds[0], 1).split("^")[0] if zds else next(
                field(o, 5) for o in segments(message, "OBX") if field(o, 3).startswith("110180^"))
            delivered[uid]["oru"] += 1
    for path in (large_region / "fhir").rglob("imagingstudies.ndjson"):
        for resource in fhir_resources(path):
            uid = next(i["value"] for i in resource["identifier"] if i["system"] == "urn:dicom:uid")
            delivered[uid.removeprefix("urn:oid:")]["fhir"] += 1
    assert set(delivered) == set(studies)
    for uid, feeds in delivered.items():
        assert list(feeds) == [studies[uid]["feed"]]
        if studies[uid]["feed"] != "dicom":
            assert feeds[studies[uid]["feed"]] == (2 if studies[uid]["resent"] == "true" else 1)
    resent = sum(s["resent"] == "true" for s in studies.values()) / len(studies)
    assert 0.03 <= resent <= 0.07


def test_modality_mix_is_realistic(studies: dict[str, dict[str, str]]) -> None:
    mix = Counter(s["modality"] for s in studies.values())
    total = sum(mix.values())
    assert 0.42 <= mix["XR"] / total <= 0.52
    assert 0.19 <= mix["US"] / total <= 0.27
    assert 0.12 <= mix["CT"] / total <= 0.19
    assert 0.06 <= mix["MR"] / total <= 0.11
    assert 0.005 <= (mix["NM"] + mix["MG"] + mix["RF"]) / total <= 0.04
    per_person_year = total / 3000 / 5
    assert 0.65 <= per_person_year <= 0.95


def test_merges_name_records_of_the_truth(large_region: Path, owners: dict[Identifier, str],
                                          trusts: TrustRegistry) -> None:
    merges = read_csv(large_region / "truth" / "merges.csv")
    events = Counter(m["event"] for m in merges)
    assert events["A40"] and events["A24"] and events["A37"] and events["A47"]
    for m in merges:
        system = trusts.by_ods(m["trust"]).fhir_system
        assert owners[(system, m["number"])] == m["person_id"]
        assert owners[(system, m["other_number"])] == m["other_person_id"]
        if m["event"] in ("A40", "A47", "fhir-replaced-by"):
            assert m["same_person"] == "true"


def test_orders_and_their_priors_agree_with_the_studies(large_region: Path,
                                                        studies: dict[str, dict[str, str]]) -> None:
    orders = read_csv(large_region / "truth" / "repeats.csv")
    assert {o["expected_tier"] for o in orders} == {"warning", "info", "clear"}
    expected = {"cross-trust-repeat": {"warning"}, "same-trust-repeat": {"warning"}, "oncology": {"info"},
                "trauma": {"info"}, "paediatric": {"warning"}}
    for order in orders:
        if order["repeats_prior"] == "true":
            prior = studies[order["prior_study_uid"]]
            assert prior["person_id"] == order["person_id"]
            assert prior["study_date"] <= order["ordered"][:10]
            assert prior["trust"] == order["prior_trust"]
        else:
            assert order["expected_tier"] == "clear"
        if order["scenario"] in expected:
            assert order["expected_tier"] in expected[order["scenario"]], order
        if order["scenario"] == "cross-trust-repeat":
            assert order["prior_trust"] != order["trust"]
        if order["scenario"] in ("oncology",):
            assert order["reason"] in ("staging", "restaging", "surveillance")
        if order["scenario"] == "trauma":
            assert order["priority"] == "stat"
        if order["scenario"] == "paediatric":
            assert int(order["patient_age"]) < 16
    assert {o["scenario"] for o in orders} >= set(expected) | {"new"}


def test_the_manifest_lists_the_files(large_region: Path) -> None:
    manifest = json.loads((large_region / "truth" / "manifest.json").read_text())
    listed = {f["path"] for f in manifest["files"]}
    actual = {p.relative_to(large_region).as_posix() for p in large_region.rglob("*")
              if p.is_file() and not p.relative_to(large_region).as_posix().startswith("dicom/")}
    assert listed == actual - {"truth/manifest.json"}
    assert manifest["seed"] == 5 and manifest["as_of"] == "2025-06-30" and manifest["people"] == 3000
    assert manifest["counts"]["people"] == 3000
    assert sum(d["files"] for d in manifest["dicom"].values()) == manifest["counts"]["dicom files"]
    assert not (large_region / ".regionsynth-tmp").exists()
