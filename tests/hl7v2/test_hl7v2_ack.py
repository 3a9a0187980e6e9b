"""priorscan.hl7v2.ack: ACKs in the message's own encoding and version, in original and enhanced mode."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from priorscan.hl7v2 import AckError, ErrorLocation, acknowledgements, build_ack, read_header

NOW = datetime(2026, 8, 1, 12, 0, tzinfo=UTC)


def header(version: str = "2.4", *, msh2: str = "^~\\&", sep: str = "|", processing: str = "P",
           accept: str = "", application: str = "", charset: str = ""):  # type: ignore[no-untyped-def]
    c = msh2[0]
    fields = ["MSH", msh2, "PAS", "RTK", "PRIORSCAN", "REGION", "20260801003000", "", f"ADT{c}A04{c}ADT_A01",
              "C1", processing, version, "", "", accept, application, "", charset]
    return read_header(sep.join(fields))


def segments(ack: str, sep: str = "|") -> dict[str, list[str]]:
    return {line.split(sep)[0]: line.split(sep) for line in ack.strip("\r").split("\r")}


def test_original_mode_aa() -> None:
    (ack,) = acknowledgements(header(), "AA", now=NOW)
    seg = segments(ack)
    assert seg["MSA"][1:3] == ["AA", "C1"] and "ERR" not in seg
    assert seg["MSH"][4:6] == ["PAS", "RTK"] and seg["MSH"][6] == "20260801120000+0000"  # our time has its offset
    assert seg["MSH"][8] == "ACK^A04^ACK" and seg["MSH"][10:12] == ["P", "2.4"]


def test_the_message_encoding_characters_are_used_throughout() -> None:
    ack = build_ack(header("2.5", msh2="#~\\&", sep="*"), "AE", text="a | b ^ c # d",
                    error=AckError("101", ErrorLocation("MSH", 1, 9, component=2)), now=NOW)
    seg = segments(ack, "*")
    assert seg["MSH"][1] == "#~\\&" and seg["MSH"][8] == "ACK#A04#ACK"
    assert seg["ERR"][2] == "MSH#1#9#1#2" and seg["ERR"][3] == "101#Required field missing#HL70357"
    assert seg["MSA"][3] == "a | b ^ c \\S\\ d"  # only this message's delimiters need escaping
    assert "^" not in ack.replace("a | b ^ c", "")


@pytest.mark.parametrize("processing", ["P", "T", "D", "P^T"])
def test_the_processing_id_is_echoed(processing: str) -> None:
    assert segments(build_ack(header(processing=processing), "AA", now=NOW))["MSH"][10] == processing


@pytest.mark.parametrize(("version", "err"), [
    ("2.3", ["ERR", "PID^1^7^102&Data type error&HL70357"]),
    ("2.3.1", ["ERR", "PID^1^7^102&Data type error&HL70357"]),
    ("2.4", ["ERR", "PID^1^7^102&Data type error&HL70357"]),
    ("2.5", ["ERR", "", "PID^1^7", "102^Data type error^HL70357", "E", "hl7.datatype^^99PRIORSCAN", "", "",
             "PID-7 is not an HL7 date"]),
    ("2.5.1", ["ERR", "", "PID^1^7", "102^Data type error^HL70357", "E", "hl7.datatype^^99PRIORSCAN", "", "",
               "PID-7 is not an HL7 date"]),
])
def test_the_err_layout_follows_the_version(version: str, err: list[str]) -> None:
    ack = build_ack(header(version), "AE", text="PID-7 is not an HL7 date", now=NOW,
                    error=AckError("102", ErrorLocation("PID", 1, 7), application_code="hl7.datatype"))
    seg = segments(ack)
    assert seg["ERR"] == err and seg["MSH"][11] == version
    assert seg["MSH"][8] == ("ACK^A04" if version == "2.3" else "ACK^A04^ACK")


def test_erl_puts_the_component_in_the_component_slot() -> None:
    assert ErrorLocation("MSH", 1, 9, component=2).erl() == "MSH^1^9^1^2"
    assert ErrorLocation("PID", 2, 3, 4, 1, 2).erl("#") == "PID#2#3#4#1#2"
    assert ErrorLocation("PID", 1).erl() == "PID^1" and ErrorLocation("MSH", 1, 9, component=2).label == "MSH-9.2"


def test_the_character_set_is_echoed() -> None:
    assert segments(build_ack(header(charset="8859/1"), "AA", now=NOW))["MSH"][17] == "8859/1"


def test_an_unreadable_message_still_gets_an_ack() -> None:
    (ack,) = acknowledgements(None, "AR", text="no MSH", error=AckError("100"), now=NOW)
    seg = segments(ack)
    assert seg["MSA"][1:3] == ["AR", ""] and seg["ERR"][1] == "^^^100&Segment sequence error&HL70357"


@pytest.mark.parametrize(("accept", "application", "code", "expected"), [
    ("AL", "NE", "AA", ["CA"]),
    ("AL", "AL", "AA", ["CA", "AA"]),
    ("NE", "AL", "AA", ["AA"]),
    ("NE", "NE", "AA", []),
    ("ER", "ER", "AA", []),
    ("ER", "ER", "AE", ["AE"]),  # committed (kept), so no accept ACK; the application error is reported
    ("SU", "SU", "AA", ["CA", "AA"]),
    ("AL", "ER", "AE", ["CA", "AE"]),
    ("AL", "AL", "AR", ["CR"]),  # refused as a whole: no application acknowledgement follows
    ("", "AL", "AA", ["CA", "AA"]),  # one condition valued: enhanced mode, the other counts as AL
])
def test_enhanced_mode_sends_what_msh15_and_msh16_ask_for(accept: str, application: str, code: str,
                                                          expected: list[str]) -> None:
    acks = acknowledgements(header(accept=accept, application=application), code, text="t",
                            error=AckError("207"), now=NOW)
    assert [segments(a)["MSA"][1] for a in acks] == expected
    for ack in acks:
        assert segments(ack)["MSA"][2] == "C1" and ("ERR" in segments(ack)) == (segments(ack)["MSA"][1] in (
            "AE", "AR", "CE", "CR"))


def test_enhanced_mode_commit_error_asks_for_the_message_again() -> None:
    acks = acknowledgements(header(accept="AL", application="AL"), "AE", text="busy", accept="CE",
                            error=AckError("206"), now=NOW)
    assert [segments(a)["MSA"][1] for a in acks] == ["CE"]


@pytest.mark.parametrize("msh", [
    "MSH\x00^~\\&\x00PAS\x00RTK\x00PRIORSCAN\x00REGION\x0020250101\x00\x00ADT^A04\x00C|9\x00P\x002.4",  # NUL as MSH-1
    "MSH|\x01~\\&|PAS|RTK|PRIORSCAN|REGION|20250101||ADT\x01A04|C9|P|2.4",  # a control character in MSH-2
], ids=["nul-field-separator", "control-component-separator"])
def test_an_ack_is_never_written_in_control_characters(msh: str) -> None:
    """Before, the ACK to a message refused for a NUL delimiter was written in it: NULs in every segment, which an
    interface engine may not read (and so sends the message again and again)."""
    ack = build_ack(read_header(msh), "AR", text="MSH-1 holds a control character", error=AckError("207"), now=NOW)
    assert all(c.isprintable() or c == "\r" for c in ack), repr(ack)
    seg = segments(ack)
    assert seg["MSH"][1] == "^~\\&" and seg["MSA"][1] == "AR" and seg["MSH"][4:6] == ["PAS", "RTK"]
    assert seg["MSA"][2] in ("C\\F\\9", "C9"), "MSH-10 echoed, escaped in the standard delimiters"
