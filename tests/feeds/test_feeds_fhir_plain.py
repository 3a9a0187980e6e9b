"""A plain Patient read without the R4B models (mpi.fhir_patient.plain_patient) reads as the models read it, and every
resource the models refuse is still refused, for the same reason.

``read_patient`` reads a plain Patient from its JSON as it is and gives every other resource to the models. The
properties: (1) whatever :func:`plain_patient` takes, the models accept; (2) :func:`read_patient` gives the same
result, or refuses with the same code and message, whether plain Patients are read plainly or by the models. Drawn
from elements that are valid, nearly valid and invalid in the ways the models judge (surrounding or unprintable
characters, empty text, codes outside their set or with doubled spaces, impossible or partial dates, wrong types,
unknown elements, primitive extensions), so that both branches are met often.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from feeds_factories import RTK, RXC, fhir_patient, nhs_number
from hypothesis import given, settings
from hypothesis import strategies as st

from mpi import fhir_patient as module
from mpi.fhir_patient import (
    GENDERS,
    NHS_VERIFICATION_SYSTEM,
    NHS_VERIFICATION_URL,
    plain_patient,
    read_patient,
    validate_patient,
)
from priorscan.errors import FHIRError
from priorscan.trusts import NHS_NUMBER_SYSTEM, default_trusts

TRUSTS = default_trusts()
GOOD_TEXTS = ["Smith", "O'Brien", "van Wijk", "José", "Ünal", "1 High Street", "GU1 1AA", "a  b", "\U0001F600",
              "07700 900123"]
BAD_TEXTS = ["Smith ", " Smith", "", " ", "Sm\x00ith", "Sm\tith", "Sm\nith", "\u00a0", "\u200b", "x\u2028y", 5, 1.5,
             None, True, ["Smith"], {}]
GOOD_URIS = [RTK, RXC, NHS_NUMBER_SYSTEM, "urn:x", "https://fhir.other.nhs.uk/Id/mrn"]
BAD_URIS = ["http://a b", "", " x", "x ", 3, None]
GOOD_DATES = ["1980-01-02", "1975-12-31", "2000-02-29", "0001-01-01"]
BAD_DATES = ["1900-02-29", "1980-02-30", "1980-13-01", "0000-01-01", "1980-1-2", "02/01/1980", "1980-01-02T00:00:00",
             "1980-01-02T10:00:00Z", "1980", "1980-01", " 1980-01-02", "1980-01-02 ", "\uff11\uff19\uff18\uff10-01-02",
             "1980-01-0\u0662", 19800102, None, ""]
GOOD_IDS = ["p1", "a.b-c", "A" * 64]
BAD_IDS = ["A" * 65, "a b", "", "é", "p1\n", 5, None]


def _elements(bad: bool) -> dict[str, st.SearchStrategy[Any]]:
    """A Patient's elements drawn from valid values, or (``bad``) from valid, nearly valid and invalid ones."""

    def pick(good: list[Any], wrong: list[Any]) -> st.SearchStrategy[Any]:
        return st.sampled_from(good * 6 + wrong if bad else good)

    def codes(valid: list[str]) -> st.SearchStrategy[Any]:
        return pick(valid, ["bogus", valid[0].upper(), "", f" {valid[0]}", f"{valid[0]} ", None, 1])

    def listed(element: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        """A list of 1–3 elements; when ``bad``, sometimes empty, one element not in a list, or holding a null."""
        some = st.lists(element, min_size=1, max_size=3)
        return st.one_of(some, some, some, some, st.lists(element, max_size=3), element, st.just([None])) if bad \
            else some

    def element(children: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
        """Some of ``children``; when ``bad``, now and then one the plain reading does not know."""
        names = list(children)

        @st.composite
        def draw_object(draw: Any) -> dict[str, Any]:
            chosen = draw(st.lists(st.sampled_from(names), unique=True, min_size=0 if bad else 1, max_size=len(names)))
            if bad and draw(st.integers(0, 9)) == 0:
                chosen.append(draw(st.sampled_from(["_family", "period", "unknown"])))
            return {name: draw(children.get(name, st.sampled_from([{"start": "2020"}, "x", None]))) for name in chosen}

        return draw_object()

    texts = pick(GOOD_TEXTS, BAD_TEXTS)
    uris = pick(GOOD_URIS, BAD_URIS)
    coding = element({"system": pick([NHS_VERIFICATION_SYSTEM, "urn:x"], ["", "a b", None]),
                      "code": pick(["01", "02", "1 2"], ["1  2", "", " 01", "x\ty", None, 1]), "display": texts})
    extension = element({"url": pick([NHS_VERIFICATION_URL, "urn:x"], ["", None]),
                         "valueCodeableConcept": element({"coding": listed(coding)})
                         | (st.just("01") if bad else st.nothing())})
    extensions = listed(extension)
    values = st.one_of(texts, st.builds(nhs_number, st.integers(0, 50)),
                       pick(["9990000018"], ["999 000 0018", "1111111111", "12"]))
    found = {
        "id": pick(GOOD_IDS, BAD_IDS), "gender": pick(list(GENDERS), ["M", "Male", "", None]),
        "birthDate": pick(GOOD_DATES, BAD_DATES), "active": pick([True, False], ["true", 1, 0, None]),
        "deceasedBoolean": pick([True, False], ["true", 1, 0, None]),
        "identifier": listed(element({"system": uris, "value": values,
                                      "use": codes(["official", "usual", "temp", "secondary", "old"]),
                                      "extension": extensions})),
        "name": listed(element({"use": codes(["official", "usual", "nickname", "maiden", "old"]), "family": texts,
                                "given": listed(texts), "prefix": listed(texts), "text": texts})),
        "address": listed(element({"use": codes(["home", "work", "old", "temp", "billing"]), "line": listed(texts),
                                   "city": texts, "district": texts, "state": texts, "postalCode": texts,
                                   "country": texts, "text": texts})),
        "telecom": listed(element({"system": codes(["phone", "email", "sms", "other"]), "value": texts,
                                   "use": codes(["home", "work", "mobile", "old"])})),
    }
    if bad:
        found.update({
            "deceasedDateTime": st.sampled_from(["2020-01-01", "2020-01-01T10:00:00Z", "x"]),
            "meta": st.sampled_from([{"lastUpdated": "2024-02-03T04:05:06Z"}, {}]), "_gender": st.just({"id": "a"}),
            "unknownElement": st.just(True), "resourceType": st.sampled_from(["Person", None])})
    return found


ELEMENTS = {bad: _elements(bad) for bad in (False, True)}


@st.composite
def resources(draw: Any) -> Any:
    """A Patient of valid elements, with (most often) one or two elements of any kind (see _elements) beside them."""
    good = ELEMENTS[False]
    resource = {"resourceType": "Patient"}
    for key in draw(st.lists(st.sampled_from(sorted(good)), unique=True, max_size=len(good))):
        resource[key] = draw(good[key])
    anything = ELEMENTS[True]
    for key in draw(st.lists(st.sampled_from(sorted(anything)), unique=True, max_size=2)):
        resource[key] = draw(anything[key])
    return resource


def _outcome(resource: Any, *, models_only: bool, **kwargs: Any) -> Any:
    """``read_patient``'s result, or the code and message it refused with; by the models alone when asked."""
    try:
        if models_only:
            with mock.patch.object(module, "plain_patient", lambda _resource: None):
                return read_patient(resource, TRUSTS, client="ehr-1", **kwargs)
        return read_patient(resource, TRUSTS, client="ehr-1", **kwargs)
    except FHIRError as exc:
        return ("refused", exc.code, exc.message)


def _same_either_way(resource: Any) -> None:
    for kwargs in ({}, {"resource_id": "own-id"}, {"complete": False}):
        assert _outcome(resource, models_only=False, **kwargs) == _outcome(resource, models_only=True, **kwargs)


@settings(max_examples=800, deadline=None, derandomize=True, database=None)
@given(resources())
def test_a_plain_patient_is_one_the_models_accept_and_reads_as_they_read_it(resource: Any) -> None:
    plain = plain_patient(resource)
    if plain is not None:
        validate_patient(resource)  # raises if the models refuse what was read plainly
    _same_either_way(resource)


GOOD = [
    fhir_patient(),
    fhir_patient(nhs=nhs_number(1), verification="01", given=["John", "Paul"], postcode="gu11aa"),
    fhir_patient(hospital=None, nhs=nhs_number(2), id="p-1.a", active=True, deceasedBoolean=False,
                 telecom=[{"system": "phone", "value": "01483 000000", "use": "home"},
                          {"system": "email", "value": "a@b.example"}]),
    fhir_patient(name=[{"use": "maiden", "family": "Jones"}, {"use": "official", "family": "Smith",
                                                             "given": ["Ann"], "prefix": ["Mrs"]}],
                 address=[{"use": "old", "line": ["2 Low Road"], "postalCode": "GU2 7XH"},
                          {"use": "home", "line": ["1 High Street", "Flat 2"], "city": "Guildford",
                           "district": "Surrey", "postalCode": "GU1 1AA", "country": "GB"}]),
    {"resourceType": "Patient", "name": [{"text": "Sam Lee"}], "birthDate": "2001-01-01", "id": "p2"},
]


@pytest.mark.parametrize("resource", GOOD)
def test_ordinary_patients_are_read_plainly_and_as_the_models_read_them(resource: dict[str, Any]) -> None:
    assert plain_patient(resource) is not None
    _same_either_way(resource)


REFUSED = [  # the refusals of tests/feeds/test_feeds_fhir_patient.py and test_feeds_fhir_ingest.py, and more
    {"resourceType": "Observation"},
    fhir_patient(birthDate="02/01/1980"), fhir_patient(birthDate="31/12/1999"), fhir_patient(birthDate="1980-02-30"),
    fhir_patient(gender="M"), fhir_patient(nhs="999000001"), fhir_patient(nhs="1111111111"),
    fhir_patient(unknownElement=True), fhir_patient(family=""), fhir_patient(family="\u00a0"),
    fhir_patient(given=[5]), fhir_patient(identifier=[{"system": RTK, "value": "AB1", "use": "bogus", "x": 1}]),
    fhir_patient(nhs=nhs_number(3), verification="01", extension=[{"valueString": "no url"}]),
    fhir_patient(_gender="x"),
    fhir_patient(deceasedBoolean=True, deceasedDateTime="2020-01-01"),
    fhir_patient(active={"x": 1}),
]


@pytest.mark.parametrize("resource", REFUSED)
def test_what_the_models_refuse_is_refused_with_the_same_reason(resource: dict[str, Any]) -> None:
    refused = _outcome(resource, models_only=True)
    assert isinstance(refused, tuple) and refused[0] == "refused"
    assert _outcome(resource, models_only=False) == refused
