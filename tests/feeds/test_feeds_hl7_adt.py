"""Reading ADT messages into identity operations (mpi.hl7_adt), without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from feeds_factories import RTK, RXC, RYR, adt, pid

from mpi.hl7_adt import CHANGE_ID, LINK, MERGE, UNLINK, UPSERT, read_adt
from mpi.hl7_pid import AdtError, resolve_trust
from mpi.records import DELETE, RecordKey
from priorscan.hl7v2 import Delimiters, parse_message
from priorscan.trusts import default_trusts


def read(message: str, domains: set[str] | None = None):  # type: ignore[no-untyped-def]
    return read_adt(parse_message(message), default_trusts(), domains=domains)


def only_patient(message: str):  # type: ignore[no-untyped-def]
    return read(message).patients[0]


@pytest.mark.parametrize(("ids", "facility", "key"), [
    ("AB123456^^^RTK^MR", "RTK", RecordKey(RTK, "AB123456")),  # ODS code as assigning authority (CX.4)
    ("A1234567^^^^MR^RXC", "RXC", RecordKey(RXC, "A1234567")),  # ODS code as assigning facility (CX.6)
    ("A1234567^^^ESHT^MR", "RXC", RecordKey(RXC, "A1234567")),  # an HL7 alias of the trust
    ("K1234567", "RYR", RecordKey(RYR, "K1234567")),  # unqualified: the sending facility's (MSH-4)
    ("9990000018^^^NHS^NH~K1234567^^^^MR", "UHSX", RecordKey(RYR, "K1234567")),  # NHS number first; MSH-4 alias
    ("X9^^^RXC^MR~AB123456^^^RTK^MR", "RTK", RecordKey(RTK, "AB123456")),  # the sender's own number keys it
    ("AB123456", "RTK01", RecordKey(RTK, "AB123456")),  # MSH-4 holds an ODS site code of the trust
    ("A1234567^^^^MR^RXCAB", "RXC", RecordKey(RXC, "A1234567")),  # so does the assigning facility
])
def test_the_hospital_number_keys_the_source_record(ids: str, facility: str, key: RecordKey) -> None:
    patient = only_patient(adt("A08", pid(ids), facility=facility))
    assert patient.key == key


def test_site_codes_resolve_only_to_their_own_trust() -> None:
    trusts = default_trusts()
    assert resolve_trust(trusts, "RYR1X").ods == "RYR"  # type: ignore[union-attr]
    assert resolve_trust(trusts, "UHSX1") is None  # an alias is not an ODS code: no site codes of it
    assert resolve_trust(trusts, "ZZZ01") is None


def test_repeated_pid3_gives_nhs_number_and_further_identifiers() -> None:
    patient = only_patient(adt("A08", pid("AB123456^^^RTK^MR~9990000018^^^NHS^NH~A7654321^^^^MR^RXC"
                                          "~ACC99^^^RTK^AN")))
    demographics = patient.demographics
    assert demographics.nhs_number == "9990000018"
    assert demographics.other_identifiers == [(RXC, "A7654321")]  # the account number (AN) names no person
    assert demographics.trust_ods == "RTK"


@pytest.mark.parametrize(("segments", "status"), [
    ([pid(pid32="NSTS01")], "01"),  # PID-32 as NHS England's v2 ADT specification codes it
    ([pid(pid32="02")], "02"),  # the bare UK Core code
    ([pid(), "ZPI|1|03"], "03"),  # a patient-information Z-segment (v2.3 has no PID-32)
    ([pid(), "ZXX|A|NSTS04"], "04"),  # an NSTS code in any Z-segment
    ([pid(), "ZXX|A|05"], None),  # a bare code in an unknown Z-segment is not guessed at
])
def test_nhs_number_verification_status(segments: list[str], status: str | None) -> None:
    assert only_patient(adt("A08", *segments)).demographics.nhs_verification == status


def test_escape_sequences_are_unescaped_after_splitting() -> None:
    patient = only_patient(adt("A08", pid(name="O\\F\\CONNOR-SMITH^ANNE\\T\\MARIE^^^MRS",
                                          address="1 HIGH ST\\S\\FLAT 2^^GUILDFORD^^gu11aa^^H")))
    demographics = patient.demographics
    assert demographics.family == "O|CONNOR-SMITH"
    assert demographics.given == "ANNE&MARIE"
    assert demographics.address == "1 HIGH ST^FLAT 2, GUILDFORD"
    assert demographics.postcode == "GU1 1AA"


def test_hex_escape_and_other_delimiters() -> None:
    assert Delimiters().unescape("JOS\\XC3A9\\") == "JOSé"
    assert Delimiters().unescape("A\\.br\\B\\H\\C\\N\\") == "A BC"  # formatting and highlighting carry no text
    assert Delimiters(escape="!").unescape("A!F!B!E!") == "A|B!"
    message = adt("A08", pid("AB123456###RTK#MR", name="SMITH#JOHN", address="", phone="")).replace(
        "^~\\&", "#~\\&", 1).replace("ADT^A08", "ADT#A08")  # MSH-2 names the delimiters
    patient = only_patient(message)
    assert (patient.key, patient.demographics.given) == (RecordKey(RTK, "AB123456"), "JOHN")


def test_quoted_null_deletes_and_empty_field_keeps() -> None:
    demographics = only_patient(adt("A08", pid(phone='""', address="", dob='""', name="SMITH^JOHN"))).demographics
    assert demographics.phone == DELETE  # "" : delete what is known
    assert demographics.birth_date == DELETE
    assert demographics.address is None and demographics.postcode is None  # empty: not sent, keep
    assert demographics.family == "SMITH" and demographics.given == "JOHN"


def test_quoted_null_name_deletes_every_part() -> None:
    demographics = only_patient(adt("A08", pid(name='""'))).demographics
    assert (demographics.family, demographics.given, demographics.prefix) == (DELETE, DELETE, DELETE)


def test_legal_name_is_preferred_over_an_alias() -> None:
    demographics = only_patient(adt("A08", pid(name="JONES^JO^^^^^A~SMITH^JOANNA^MARY^^MRS^^L"))).demographics
    assert (demographics.family, demographics.given, demographics.prefix) == ("SMITH", "JOANNA MARY", "MRS")


@pytest.mark.parametrize(("name", "address", "expected"), [
    ("JONES^ANN^^^^^M~SMITH^ANN^^^^^U", "1 OLD RD^^BRIGHTON^^BN1 1AA^GBR^BA~2 NEW RD^^GUILDFORD^^GU1 1AA^GBR^C",
     ("SMITH", "2 NEW RD, GUILDFORD", "GU1 1AA")),
    ("BROWN^ANN^^^^^B~SMITH^ANN", "1 OLD RD^^BRIGHTON^^BN1 1AA^GBR^BR~2 NEW RD^^GUILDFORD^^GU1 1AA",
     ("SMITH", "2 NEW RD, GUILDFORD", "GU1 1AA")),
    ("SMITH^JOHN^^^^^P~SMITH^ANN^^^^^D", "2 NEW RD^^GUILDFORD^^GU1 1AA^GBR^M",
     ("SMITH", "2 NEW RD, GUILDFORD", "GU1 1AA")),
    ("JONES^ANN^^^^^M", "1 OLD RD^^BRIGHTON^^BN1 1AA^GBR^BA", ("JONES", "1 OLD RD, BRIGHTON", "BN1 1AA")),
])
def test_without_a_legal_name_or_home_address_a_former_one_is_not_taken(name: str, address: str,
                                                                       expected: tuple[str, str, str]) -> None:
    """H-ID-58: a maiden, birth or partner's name and a bad or birth address sent first are not the person's now;
    one that is all the message holds is still read."""
    d = only_patient(adt("A08", pid(name=name, address=address))).demographics
    assert (d.family, d.address, d.postcode) == expected
    if name.startswith("SMITH^JOHN"):
        assert d.given == "ANN"  # the partner's name is not the patient's


@pytest.mark.parametrize(("sex", "expected"), [("M", "male"), ("F", "female"), ("U", "unknown"), ("O", "other"),
                                               ("f", "female"), ('""', DELETE), ("", None)])
def test_sex_codes(sex: str, expected: str | None) -> None:
    assert only_patient(adt("A08", pid(sex=sex))).demographics.sex == expected


def test_message_time_comes_from_evn2_then_msh7() -> None:
    message = adt("A08", event_time="20240301101500")
    assert only_patient(message).demographics.event_at == datetime(2024, 3, 1, 10, 15, tzinfo=UTC)
    without_evn = "\r".join(line for line in message.split("\r") if not line.startswith("EVN"))
    assert only_patient(without_evn).demographics.event_at == datetime(2024, 3, 1, 10, 15, tzinfo=UTC)


@pytest.mark.parametrize(("version", "segment_end"), [("2.3", "\n"), ("2.4", "\r"), ("2.5.1", "\r\n")])
def test_versions_and_segment_ends(version: str, segment_end: str) -> None:
    patient = only_patient(adt("A28", pid(dob="19800102"), version=version, segment_end=segment_end))
    assert patient.demographics.birth_date == date(1980, 1, 2)


def test_a40_pairs_each_pid_with_its_mrg() -> None:
    message = adt("A40", pid("AB000001^^^RTK^MR"), "PD1|", "MRG|AB000002^^^RTK^MR", pid("AB000003^^^RTK^MR"),
                  "MRG|AB000004^^^RTK^MR~9990000018^^^NHS^NH")
    parsed = read(message)
    assert parsed.operation == MERGE
    assert [(c.patient.key.local_id, [p.local_id for p in c.prior]) for c in parsed.changes] == [
        ("AB000001", ["AB000002"]), ("AB000003", ["AB000004"])]


def test_a24_and_a37_read_two_patients() -> None:
    for trigger, operation in (("A24", LINK), ("A37", UNLINK)):
        parsed = read(adt(trigger, pid("AB000001^^^RTK^MR"), "PV1|1", pid("AB000002^^^^MR^RTK", set_id="2")))
        assert parsed.operation == operation
        assert [p.key for p in parsed.patients] == [RecordKey(RTK, "AB000001"), RecordKey(RTK, "AB000002")]


@pytest.mark.parametrize(("message", "location"), [
    (adt("A40", pid("AB000001^^^RTK^MR"), "MRG|A0000001^^^RXC^MR"), "MRG^1^1"),  # merging away RXC's record
    (adt("A40", pid("A0000001^^^RXC^MR"), "MRG|AB000001^^^RTK^MR"), "PID^1^3"),  # or into it
    (adt("A24", pid("AB000001^^^RTK^MR"), pid("A0000001^^^^MR^RXC", set_id="2")), "PID^2^3"),  # link
    (adt("A37", pid("AB000001^^^RTK^MR"), pid("A0000001^^^^MR^RXC", set_id="2")), "PID^2^3"),  # unlink
    (adt("A47", pid("AB000009^^^RTK^MR"), "MRG|A0000001^^^RXC^MR"), "MRG^1^1"),  # change RXC's number
])
def test_a_source_acts_only_on_its_own_identifier_domain(message: str, location: str) -> None:
    with pytest.raises(AdtError) as caught:
        read(message)  # sent by RTK (MSH-4)
    assert caught.value.code == "hl7.foreign-domain"
    assert caught.value.location is not None and caught.value.location.erl() == location
    assert "A0000001" not in caught.value.message


def test_configured_domains_widen_what_a_sender_may_act_on() -> None:
    parsed = read(adt("A40", pid("AB000001^^^RTK^MR"), "MRG|A0000001^^^RXC^MR"), domains={RTK, RXC})
    assert parsed.changes[0].prior == (RecordKey(RXC, "A0000001"),)


def test_configured_domains_also_bound_creates_and_updates() -> None:
    update = adt("A08", pid("A0000001^^^RXC^MR"))  # RXC's record, from RTK's PAS
    assert read(update).patients[0].key == RecordKey(RXC, "A0000001")  # no domains configured: taken
    with pytest.raises(AdtError) as caught:
        read(update, domains={RTK})
    assert caught.value.code == "hl7.foreign-domain"
    assert caught.value.location is not None and caught.value.location.erl() == "PID^1^3"


def test_an_identifier_of_another_domain_may_be_sent_beside_the_senders_own() -> None:
    parsed = read(adt("A40", pid("AB000001^^^RTK^MR~A0000009^^^RXC^MR"), "MRG|AB000002^^^RTK^MR"))
    assert parsed.patients[0].key == RecordKey(RTK, "AB000001")


def test_a47_names_the_prior_identifier() -> None:
    parsed = read(adt("A47", pid("AB000009^^^RTK^MR"), "MRG|AB000001^^^RTK^MR"))
    assert parsed.operation == CHANGE_ID
    assert parsed.changes[0].prior == (RecordKey(RTK, "AB000001"),)


def test_update_events_carry_one_patient() -> None:
    for trigger in ("A01", "A04", "A05", "A08", "A28", "A31", "A03"):
        assert read(adt(trigger)).operation == UPSERT


@pytest.mark.parametrize(("message", "code", "location"), [
    (adt("A08", pid(dob="19801302")), "hl7.datatype", "PID^1^7"),  # no 13th month
    (adt("A08", pid(dob="1980-01-02")), "hl7.datatype", "PID^1^7"),  # not an HL7 date
    (adt("A08", pid("9990000018^^^NHS^NH")), "hl7.required", "PID^1^3"),  # an NHS number names no source record
    (adt("A08", "PV1|1|O"), "hl7.segment", "PID^1"),  # no PID at all
    (adt("A40", pid()), "hl7.segment", "MRG^1"),  # a merge without MRG
    (adt("A40", pid(), "MRG|9990000018^^^NHS^NH"), "hl7.required", "MRG^1^1"),  # nothing to merge away
    (adt("A24", pid()), "hl7.segment", "PID^2"),  # a link needs two patients
    (adt("A99"), "hl7.unsupported-event", "MSH^1^9^1^2"),  # MSH-9.2: the component in its own slot (ERL)
])
def test_what_cannot_be_read_is_refused_with_its_location(message: str, code: str, location: str) -> None:
    with pytest.raises(AdtError) as caught:
        read(message)
    assert caught.value.code == code
    assert caught.value.location is not None and caught.value.location.erl() == location
    assert "1980" not in caught.value.message and "9990000018" not in caught.value.message


def test_imprecise_birth_date_is_unknown_not_an_error() -> None:
    assert only_patient(adt("A08", pid(dob="1980"))).demographics.birth_date is None
