"""Identity safety rules as pure functions and over one session: NHS numbers that count, $match grades, PDQm
parameters, person locks, creates never overwriting (hazard log, section Identity)."""

from __future__ import annotations

from datetime import date

from mpi_factories import TRUST_A, TRUST_B, demographics
from starlette.requests import Request

from api.http.routers.patient import search_handling
from mpi import PatientIndex, RecordKey, unsupported_parameters
from mpi.nhs_number import counts_as_nhs_number, is_test_range
from mpi.normalise import to_match_record
from mpi.record_columns import new_record_columns
from mpi.resolution import at_most_one_certain, match_grade
from mpi.store_writer import person_lock_keys

REAL = "9434765919"  # passes Modulus 11, outside the test range
TEST = "9990000018"  # passes Modulus 11, test range


def test_a_test_range_number_counts_only_outside_production() -> None:
    assert is_test_range(TEST) and not is_test_range(REAL)
    assert counts_as_nhs_number(TEST, production=False) and not counts_as_nhs_number(TEST, production=True)
    assert counts_as_nhs_number(REAL, production=True)
    assert not counts_as_nhs_number("9434765918", production=False)  # fails Modulus 11
    values = new_record_columns(demographics(nhs_number=TEST), production=True)
    assert (values["nhs_number"], values["nhs_number_valid"]) == (TEST, False)


def test_a_flagged_number_is_no_evidence(session) -> None:  # type: ignore[no-untyped-def]
    outcomes = {}
    for production in (False, True):
        index = PatientIndex(session, _trusts(), production=production)
        first = index.upsert(demographics(TRUST_A, f"A{production}", nhs_number=TEST, given="Ada", family="Penrose",
                                          birth_date=date(1955, 2, 3), postcode="GU1 1AA", address="1 High St",
                                          phone=None), event="t", actor="feed")
        other = index.upsert(demographics(TRUST_B, f"B{production}", nhs_number=TEST, given="Bert", family="Quist",
                                          birth_date=date(1987, 9, 10), sex="male", postcode="BN1 1AA",
                                          address="2 Sea Rd", phone=None), event="t", actor="feed")
        assert first.regional_id != other.regional_id
        outcomes[production] = other
        session.rollback()
    assert outcomes[False].review_item_id is not None, "a shared verified number is evidence outside production"
    assert outcomes[True].review_item_id is None and outcomes[True].link_state == "match", "and none in production"
    index = PatientIndex(session, _trusts(), production=True)
    index.upsert(demographics(TRUST_A, "A9", nhs_number=TEST), event="t", actor="feed")
    assert index.find_records("https://fhir.nhs.uk/Id/nhs-number", TEST) == []


def _trusts():  # type: ignore[no-untyped-def]
    from priorscan.trusts import default_trusts

    return default_trusts()


def test_match_grade_needs_an_identifier_for_certain() -> None:
    assert match_grade("match", 0.9999, identified=True, hard_conflict=False) == "certain"
    assert match_grade("match", 0.9999, identified=False, hard_conflict=False) == "probable"
    assert match_grade("possible", 0.9, identified=False, hard_conflict=False) == "probable"
    assert match_grade("possible", 0.6, identified=False, hard_conflict=False) == "possible"
    assert match_grade("match", 0.9999, identified=True, hard_conflict=True) == "certainly-not"
    assert match_grade("no-match", 0.1, identified=False, hard_conflict=False) == "certainly-not"


def test_at_most_one_patient_is_certain() -> None:
    assert at_most_one_certain({"a": "certain", "b": "possible"}) == ({"a": "certain", "b": "possible"}, False)
    assert at_most_one_certain({"a": "certain", "b": "certain", "c": "possible"}) == (
        {"a": "probable", "b": "probable", "c": "possible"}, True)


def test_unsupported_search_parameters_are_named() -> None:
    params = [("family", "x"), ("family:exact", "x"), ("telecom", "1"), ("address-city", "y"), ("_format", "json"),
              ("address-country", "GB"), ("family:contains", "x"), ("gender:exact", "male"), ("foo", "1")]
    assert unsupported_parameters(params) == ["address-country", "family:contains", "gender:exact", "foo"]


def _request(prefer: str | None) -> Request:
    headers = [(b"prefer", prefer.encode())] if prefer else []
    return Request({"type": "http", "headers": headers, "method": "GET", "path": "/"})


def test_search_handling_is_strict_unless_lenient_is_asked_for() -> None:
    assert search_handling(_request(None)) == "strict"
    assert search_handling(_request("handling=lenient")) == "lenient"
    assert search_handling(_request("return=minimal, handling=lenient")) == "lenient"
    assert search_handling(_request("handling=strict")) == "strict"
    assert search_handling(_request("handling=sloppy")) == "strict"


def test_records_of_one_person_share_a_lock_key() -> None:
    one = to_match_record(None, {"nhs_number": REAL, "birth_date": date(1980, 1, 2), "family": "Smith"})
    same_number = to_match_record(None, {"nhs_number": REAL, "birth_date": date(1990, 5, 6)})
    swapped_date = to_match_record(None, {"birth_date": date(1980, 2, 1), "family": "Smyth"})
    stranger = to_match_record(None, {"birth_date": date(1970, 3, 4)})
    keys = set(person_lock_keys(one))
    assert len(keys) == 2 and person_lock_keys(one) == sorted(keys)
    assert keys & set(person_lock_keys(same_number)) and keys & set(person_lock_keys(swapped_date))
    assert not keys & set(person_lock_keys(stranger))
    assert person_lock_keys(to_match_record(None, {"family": "Smith"})) == []


def test_a_create_of_a_known_record_is_refused(session) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from api.feeds.fhir_service import write_patient
    from priorscan.audit import Agent
    from priorscan.errors import FHIRError

    trusts = _trusts()
    system = trusts.trusts[0].fhir_system
    body = {"resourceType": "Patient", "identifier": [{"system": system, "value": "AB1"}],
            "name": [{"family": "Ashdown", "given": ["Clare"]}]}
    agent = Agent("client", "test", None)
    write_patient(session, trusts, body, agent=agent, mode="create")
    with pytest.raises(FHIRError) as refused:
        write_patient(session, trusts, {**body, "name": [{"family": "Intruder"}]}, agent=agent, mode="create")
    assert refused.value.code == "fhir.duplicate"
    stored = PatientIndex(session, trusts).require_record(RecordKey(system, "AB1"))
    assert stored.family == "Ashdown"
    write_patient(session, trusts, {**body, "name": [{"family": "Ashdown-Reed"}]}, agent=agent, mode="ingest")
    assert PatientIndex(session, trusts).require_record(RecordKey(system, "AB1")).family == "Ashdown-Reed"
