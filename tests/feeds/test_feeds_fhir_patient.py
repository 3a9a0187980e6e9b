"""FHIR Patient ↔ demographics (mpi.fhir_patient), pure; rendered resources validated with fhir.resources R4B."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from feeds_factories import RTK, RXC, fhir_patient, nhs_number
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient

from mpi.fhir_patient import (
    REGIONAL_ID_SYSTEM,
    RegionalView,
    client_namespace,
    match_entry,
    read_patient,
    regional_patient,
    source_patient,
)
from mpi.records import DELETE
from mpi.tables import RegionalPatient, SourceRecord
from priorscan.errors import FHIRError
from priorscan.trusts import NHS_NUMBER_SYSTEM, default_trusts


def read(resource: dict, **kwargs):  # type: ignore[no-untyped-def]
    return read_patient(resource, default_trusts(), client=kwargs.pop("client", "ehr-1"), **kwargs)


@pytest.mark.parametrize(("resource", "resource_id", "key", "keyed_by"), [
    (fhir_patient(hospital=(RTK, "AB1")), None, (RTK, "AB1"), "hospital-number"),
    (fhir_patient(hospital=("RXC", "A1")), None, (RXC, "A1"), "hospital-number"),  # an alias names the trust
    (fhir_patient(hospital=("https://ehr.example.org/mrn", "9"), nhs=nhs_number(1)), None,
     ("https://ehr.example.org/mrn", "9"), "identifier"),  # another system; the NHS number never keys a record
    (fhir_patient(hospital=None, nhs=nhs_number(2)), "p-1", (client_namespace("ehr-1"), "p-1"), "resource-id"),
    (fhir_patient(hospital=None), None, (client_namespace("ehr-1"), ""), "none"),  # the server will assign one
])
def test_what_keys_the_source_record(resource: dict, resource_id: str | None, key: tuple[str, str],
                                     keyed_by: str) -> None:
    parsed = read(resource, resource_id=resource_id)
    assert ((parsed.demographics.namespace, parsed.demographics.local_id), parsed.keyed_by) == (key, keyed_by)


@pytest.mark.parametrize("ended_first", [True, False])
def test_a_name_address_or_phone_whose_period_has_ended_is_not_the_current_one(ended_first: bool) -> None:
    """H-ID-58: a Patient keeps its former name, address and phone with a period that ended (UK Core's way of
    recording a change); the one in force is the person's now, whichever order they come in."""
    def ordered(former: dict, now: dict) -> list[dict]:
        return [former, now] if ended_first else [now, former]

    resource = fhir_patient(
        name=ordered({"use": "official", "family": "Before", "given": ["Ann"], "period": {"end": "2010-05-01"}},
                     {"use": "official", "family": "After", "given": ["Ann"], "period": {"start": "2010-05-01"}}),
        address=ordered({"use": "home", "line": ["1 Old Road"], "postalCode": "GU1 1AA", "period": {"end": "2015"}},
                        {"use": "home", "line": ["2 New Road"], "postalCode": "BN1 1AA",
                         "period": {"start": "2015-06-30T09:00:00+01:00"}}),
        telecom=ordered({"system": "phone", "value": "01483 111111", "use": "home", "period": {"end": "2012-03"}},
                        {"system": "phone", "value": "01273 222222", "use": "home"}))
    d = read(resource, today=date(2020, 1, 1)).demographics
    assert (d.family, d.address, d.postcode, d.phone) == ("After", "2 New Road", "BN1 1AA", "01273 222222")


def test_a_period_is_judged_on_the_day_it_is_read_and_a_partial_end_lasts_its_whole_year() -> None:
    resource = fhir_patient(name=[{"family": "Before", "given": ["Ann"], "period": {"end": "2015"}},
                                  {"family": "After", "given": ["Ann"], "period": {"start": "2016-01-01"}}])
    assert read(resource, today=date(2015, 12, 31)).demographics.family == "Before"
    assert read(resource, today=date(2016, 1, 1)).demographics.family == "After"


def test_a_persons_only_name_is_read_even_when_its_period_has_ended() -> None:
    resource = fhir_patient(name=[{"family": "Only", "given": ["Ann"], "period": {"end": "2010"}}],
                            address=[{"line": ["1 Old Road"], "postalCode": "GU1 1AA", "period": {"end": "2010"}}])
    d = read(resource, today=date(2020, 1, 1)).demographics
    assert (d.family, d.address) == ("Only", "1 Old Road")


def test_a_name_not_yet_begun_waits_for_its_day() -> None:
    resource = fhir_patient(name=[{"use": "official", "family": "Future", "given": ["Ann"],
                                   "period": {"start": "2999-01-01"}},
                                  {"use": "usual", "family": "Present", "given": ["Ann"]}])
    assert read(resource).demographics.family == "Present"


def test_demographics_and_verification_status() -> None:
    resource = fhir_patient(nhs="999 000 0018", verification="02", given=["Mary", "Jane"],
                            meta={"lastUpdated": "2024-02-03T04:05:06Z"},
                            name=[{"use": "old", "family": "Maiden"},
                                  {"use": "official", "family": "Married", "given": ["Mary", "Jane"],
                                   "prefix": ["Mrs"]}],
                            telecom=[{"system": "email", "value": "x@example.org"},
                                     {"system": "phone", "value": "01483 000000", "use": "home"}],
                            deceasedDateTime="2024-01-01T10:00:00Z")
    d = read(resource).demographics
    assert (d.nhs_number, d.nhs_verification) == ("9990000018", "02")
    assert (d.family, d.given, d.prefix) == ("Married", "Mary Jane", "Mrs")
    assert (d.birth_date, d.sex, d.postcode, d.address) == (date(1980, 1, 2), "male", "GU1 1AA",
                                                            "1 High Street, Guildford")
    assert (d.phone, d.death_date) == ("01483 000000", date(2024, 1, 1))
    assert d.event_at == datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)


@pytest.mark.parametrize(("text", "family", "given"), [
    ("SMITH, John", "SMITH", "John"),  # family first before a comma: the PAS and HL7 display order
    ("SMITH, John Paul", "SMITH", "John Paul"),
    ("John SMITH", "SMITH", "John"),  # the family name in capitals
    ("SMITH John", "SMITH", "John"),
    ("Anna DE LA CRUZ", "DE LA CRUZ", "Anna"),
    ("J SMITH", "SMITH", "J"),  # an initial is not a name in capitals
    ("Peter James Chalmers", "Chalmers", "Peter James"),  # no sign: the last word
    ("MARY O'NEIL", "O'NEIL", "MARY"),  # all in capitals: the last word
    ("Smith", "Smith", None),
])
def test_a_name_sent_only_as_text_is_split_as_nhs_systems_write_names(text: str, family: str,
                                                                       given: str | None) -> None:
    """A name sent only as ``HumanName.text``: ``SMITH, John`` and ``John SMITH`` name the family name SMITH (read
    as a given name, it counted against the person's own records)."""
    d = read(fhir_patient(name=[{"use": "official", "text": text}])).demographics
    assert (d.family, d.given or None) == (family, given)


def test_a_resource_is_complete_so_missing_elements_delete_but_a_query_does_not() -> None:
    sparse = {"resourceType": "Patient", "identifier": [{"system": RTK, "value": "AB1"}]}
    stored = read(sparse).demographics
    assert (stored.family, stored.birth_date, stored.nhs_number, stored.postcode) == (DELETE, DELETE, DELETE, DELETE)
    query = read(sparse, complete=False).demographics
    assert (query.family, query.birth_date, query.nhs_number, query.postcode) == (None, None, None, None)


def test_other_identifiers_and_the_own_id_become_further_identifiers() -> None:
    resource = fhir_patient(hospital=(RTK, "AB1"), identifier=[
        {"system": RTK, "value": "AB1"}, {"system": "RXC", "value": "A7"},
        {"system": RXC, "value": "OLD", "use": "old"}])  # an old identifier names nobody now
    parsed = read(resource, resource_id="abc")
    assert parsed.demographics.other_identifiers == [(RXC, "A7"), (client_namespace("ehr-1"), "abc")]


@pytest.mark.parametrize(("resource", "code"), [
    ({"resourceType": "Observation"}, "fhir.invalid"),
    (fhir_patient(birthDate="02/01/1980"), "fhir.invalid"),
    (fhir_patient(gender="M"), "fhir.invalid"),  # FHIR genders are words
    (fhir_patient(nhs="999000001"), "fhir.business-rule"),  # nine digits
    (fhir_patient(unknownElement=True), "fhir.invalid"),
])
def test_invalid_patients_are_refused_without_quoting_values(resource: dict, code: str) -> None:
    with pytest.raises(FHIRError) as caught:
        read(resource)
    assert caught.value.code == code
    assert "02/01/1980" not in caught.value.message and "999000001" not in caught.value.message


def _record(**fields: object) -> SourceRecord:
    values: dict[str, object] = dict(id=7, namespace=RTK, local_id="AB1", trust_ods="RTK", active=True, version=3,
                                     nhs_number="9990000018", nhs_number_valid=True, nhs_verification="01",
                                     family="Smith", given="John Paul", prefix="Mr", birth_date=date(1980, 1, 2),
                                     sex="male",
                                     postcode="GU1 1AA", address="1 High Street, Guildford", phone="01483",
                                     regional_patient_id="RPABCDEFGHJK", updated_at=datetime(2024, 1, 1, tzinfo=UTC))
    values.update(fields)
    return SourceRecord(**values)


def test_a_source_record_renders_as_a_valid_patient_that_refers_to_its_regional_patient() -> None:
    resource = source_patient(_record(), [(RXC, "A7"), ("urn:priorscan:fhir-patient-id", "x")], default_trusts())
    patient = Patient.model_validate(resource)
    assert patient.id == "src-7" and patient.meta.versionId == "3"
    assert [(i.system, i.value) for i in patient.identifier] == [(NHS_NUMBER_SYSTEM, "9990000018"), (RTK, "AB1"),
                                                                  (RXC, "A7")]  # internal ids are not shown
    assert patient.identifier[1].assigner.identifier.value == "RTK"
    assert (patient.link[0].type, patient.link[0].other.reference) == ("refer", "Patient/RPABCDEFGHJK")
    assert patient.name[0].given == ["John", "Paul"]


def test_the_regional_patient_lists_every_linked_identifier_and_old_ones_as_old() -> None:
    golden = RegionalPatient(id="RPABCDEFGHJK", status="active", nhs_number="9990000018", family="Smith",
                             given="John", birth_date=date(1980, 1, 2), sex="male",
                             updated_at=datetime(2024, 1, 1, tzinfo=UTC))
    records = [_record(), _record(id=8, namespace=RXC, local_id="A9", trust_ods="RXC", nhs_verification=None),
               _record(id=9, local_id="AB0", active=False)]
    view = RegionalView(golden, records, {7: [(RXC, "A7")]})
    patient = Patient.model_validate(regional_patient(view, default_trusts()))
    pairs = [(i.system, i.value, i.use) for i in patient.identifier]
    assert pairs == [(REGIONAL_ID_SYSTEM, "RPABCDEFGHJK", "official"), (NHS_NUMBER_SYSTEM, "9990000018", "official"),
                     (RTK, "AB1", "usual"), (RXC, "A7", "usual"), (RXC, "A9", "usual"), (RTK, "AB0", "old")]
    assert [link.other.reference for link in patient.link] == ["Patient/src-7", "Patient/src-8", "Patient/src-9"]
    retired = Patient.model_validate(regional_patient(view, default_trusts(), survivor_id="RPZZZZZZZZZZ"))
    assert (retired.active, retired.link[0].type) == (False, "replaced-by")


def test_match_entries_make_a_valid_searchset() -> None:
    golden = RegionalPatient(id="RPABCDEFGHJK", status="active")
    entry = match_entry(regional_patient(RegionalView(golden), default_trusts()), 0.98765, "certain",
                        "http://x/fhir")
    bundle = Bundle.model_validate({"resourceType": "Bundle", "type": "searchset", "entry": [entry]})
    assert float(bundle.entry[0].search.score) == 0.9877
    assert bundle.entry[0].search.extension[0].valueCode == "certain"
