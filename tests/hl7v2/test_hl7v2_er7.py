"""priorscan.hl7v2.er7 and delimiters: one reader of ER7 text, lenient where senders are sloppy, strict where a value
could be silently wrong."""

from __future__ import annotations

import pytest

from priorscan.hl7v2 import (
    NULL,
    Composite,
    Delimiters,
    MessageError,
    normalise_segments,
    parse_message,
    read_header,
)

MSH = "MSH|^~\\&|PAS|RTK|PRIORSCAN|REGION|20240105120000||ADT^A08^ADT_A01|C1|P|2.4"


def message(*segments: str, msh: str = MSH, end: str = "\r") -> str:
    return end.join([msh, *segments]) + end


@pytest.mark.parametrize("end", ["\r", "\n", "\r\n"], ids=["CR", "LF", "CRLF"])
def test_segments_end_with_cr_lf_or_crlf(end: str) -> None:
    parsed = parse_message(message("EVN|A08", "PID|1||AB1^^^RTK^MR", end=end))
    assert [s.name for s in parsed.segments] == ["MSH", "EVN", "PID"]
    assert parsed.segment("PID").text(3, 4) == "RTK"  # type: ignore[union-attr]


def test_framing_bom_and_blank_lines_are_dropped() -> None:
    text = "\x0b\ufeff" + message("", "PID|1||AB1", "").replace("\r\r", "\r\n\r\n") + "\x1c\r"
    assert normalise_segments(text).split("\r")[1] == "PID|1||AB1"
    assert [s.name for s in parse_message(text).segments] == ["MSH", "PID"]


def test_msh_fields_are_numbered_as_the_standard_does() -> None:
    msh = parse_message(message()).segments[0]
    assert (msh.raw(1), msh.raw(2), msh.raw(3), msh.raw(9), msh.raw(10)) == ("|", "^~\\&", "PAS", "ADT^A08^ADT_A01",
                                                                            "C1")
    assert msh.text(9, 2) == "A08"


def test_repetitions_components_and_subcomponents() -> None:
    pid = parse_message(message("PID|1||AB1^^^RTK&1.2.3&ISO^MR~9990000018^^^NHS^NH||SMITH^JOHN")).segment("PID")
    assert pid is not None
    reps = pid.repetitions(3)
    assert [r.text(1) for r in reps] == ["AB1", "9990000018"]
    assert (reps[0].text(4, 1), reps[0].text(4, 2), reps[0].text(4, 3)) == ("RTK", "1.2.3", "ISO")
    assert pid.text(3, 5, repetition=2) == "NH"
    assert pid.value(3, 9) is None and pid.text(40) == "" and pid.repetitions(40) == []


@pytest.mark.parametrize(("escaped", "text", "reason"), [
    ("O\\F\\CONNOR", "O|CONNOR", "field separator"),
    ("A\\S\\B\\T\\C\\R\\D\\E\\E", "A^B&C~D\\E", "the other delimiters"),
    ("JOS\\XC3A9\\", "JOSé", "hex, UTF-8"),
    ("JOS\\XE9\\", "JOSé", "hex without MSH-18: Windows-1252 when not UTF-8"),
    ("A\\.br\\B", "A B", "a line break"),
    ("A\\.sp2\\B", "A B", "formatting with an argument"),
    ("A\\H\\B\\N\\C", "ABC", "highlighting carries no text"),
    ("A\\C2842\\B", "AB", "a character set switch carries no text"),
    ("A\\Zlocal\\B", "AB", "a local escape carries no text"),
    ("C:\\path", "C:\\path", "an escape character without its closing one is kept"),
])
def test_escape_sequences(escaped: str, text: str, reason: str) -> None:
    assert Delimiters().unescape(escaped) == text, reason


def _in_charset(charset: str, pid5: str) -> str:
    return message(f"PID|1||AB1^^^RTK^MR||{pid5}", msh=f"{MSH}||||||{charset}")


@pytest.mark.parametrize(("charset", "pid5", "family", "reason"), [
    ("8859/7", "\\XC4\\\\XE9\\ONYSIOS", "ΔιONYSIOS", "Greek, ISO 8859-7 (was read as ÄéONYSIOS)"),
    ("8859/5", "\\XB8D2D0DD\\", "Иван", "Cyrillic bytes read in ISO 8859-5"),
    ("UNICODE UTF-8", "JOS\\XC3A9\\", "JOSé", "UTF-8 bytes in UTF-8"),
    ("UNICODE UTF-8", "JOS\\XC3\\\\XA9\\", "JOSé", "one character over two adjacent hex escapes"),
    ("8859/1", "JOS\\XE9\\", "JOSé", "ISO 8859-1"),
    ("8859/1", "JOS\\XC3A9\\", "JOSÃ©", "the set declared, not a guess: two ISO 8859-1 letters"),
    ("8859/2", "\\XA3\\UKASZ", "ŁUKASZ", "ISO 8859-2 (ISO 8859-1 would give £)"),
    ("", "M\\X80\\", "M€", "no MSH-18: Windows-1252 when not UTF-8, as the message's own bytes"),
    ("ISO IR6~ISO IR87", "\\M2442\\;3ED\\C2842\\^\\M2442\\B@O:\\C2842\\", "山田",
     "JIS X 0208 after \\M2442\\, back to ASCII after \\C2842\\ (the 7-bit bytes were kept as ;3ED)"),
    ("", "A\\C2D46\\\\XE4\\", "Aδ", "the ISO 8859-7 upper half after \\C2D46\\"),
    ("", "A\\C2842\\B", "AB", "a switch to ASCII carries no text"),
])
def test_hex_escapes_and_switches_are_read_in_the_set_msh18_names(charset: str, pid5: str, family: str,
                                                                 reason: str) -> None:
    pid = parse_message(_in_charset(charset, pid5)).segment("PID")
    assert pid is not None and pid.text(5) == family, reason


def test_a_switch_to_jis_reads_the_given_name_too() -> None:
    pid = parse_message(_in_charset("", "\\M2442\\;3ED\\C2842\\^\\M2442\\B@O:\\C2842\\")).segment("PID")
    assert pid is not None and (pid.text(5), pid.text(5, 2)) == ("山田", "太郎")


@pytest.mark.parametrize(("charset", "pid5", "reason"), [
    ("UNICODE UTF-8", "JOS\\XE9\\", "an ISO 8859-1 byte is no UTF-8: a guess could be another letter"),
    ("UNICODE UTF-8", "JOS\\XC3\\", "half a UTF-8 character"),
    ("", "M\\X81\\", "no MSH-18: a byte neither UTF-8 nor Windows-1252 reads"),
    ("", "A\\M242943\\B", "a switch to a set priorscan does not read (KS X 1001)"),
    ("", "\\M2442\\;3E\\C2842\\", "an odd number of bytes after a switch to JIS X 0208"),
    ("", "\\M2442\\Ä\\C2842\\", "8-bit text after a switch to a 7-bit set"),
])
def test_an_escape_that_is_not_text_in_its_set_refuses_the_message(charset: str, pid5: str, reason: str) -> None:
    with pytest.raises(MessageError) as caught:
        parse_message(_in_charset(charset, pid5))
    assert caught.value.code == "hl7.escape", reason
    assert caught.value.location is not None and caught.value.location.label == "PID-5", reason
    assert "JOS" not in caught.value.message, reason  # no patient data in the reason
    assert Delimiters(charset="utf-8").unescape("JOS\\XE9\\") == "JOS\\XE9\\"  # read leniently: kept as sent


def test_an_unreadable_escape_outside_the_patient_segments_is_kept_as_sent() -> None:
    """A report's text or a Z-segment with a stray escape is not refused (a result lost over a note's letter): the
    escape is kept as sent, and the PID is read; a control character is refused anywhere, as before."""
    parsed = parse_message(message("PID|1||AB1^^^RTK^MR||JOS\\XC3A9\\", "ZNT|1|caf\\XE9\\",
                                    msh=f"{MSH}||||||UNICODE UTF-8"))
    assert parsed.segment("ZNT").text(2) == "caf\\XE9\\"  # type: ignore[union-attr]
    assert parsed.segment("PID").text(5) == "JOSé"  # type: ignore[union-attr]
    with pytest.raises(MessageError) as caught:
        parse_message(message("ZNT|1|A\\X00\\B"))
    assert caught.value.code == "hl7.control-character"


def test_escapes_are_undone_after_splitting() -> None:
    pid = parse_message(message("PID|1||||A\\S\\B^C\\T\\D&E")).segment("PID")
    assert pid is not None
    assert (pid.text(5, 1), pid.text(5, 2, 1), pid.text(5, 2, 2)) == ("A^B", "C&D", "E")


def test_escape_text_round_trips() -> None:
    d = Delimiters(component="#")
    for value in ("O|Connor^Smith", "50% & more ~ tilde", "back\\slash", "line\nbreak"):
        escaped = d.escape_text(value)
        assert not any(c in escaped for c in "|#~&\n")
        assert d.unescape(escaped) == value.replace("\n", " ")


def test_the_message_declares_its_delimiters() -> None:
    text = message("PID*1**AB1!!!RTK!MR?X1|Y^Z", msh=MSH.replace("|", "*").replace("^~\\&", "!?\\&").replace(
        "ADT^A08^ADT_A01", "ADT!A08!ADT_A01"))
    parsed = parse_message(text)
    assert parsed.header.event == "ADT^A08" and parsed.header.encoding_characters == "!?\\&"
    pid = parsed.segment("PID")
    assert pid is not None
    assert [r.text(1) for r in pid.repetitions(3)] == ["AB1", "X1|Y^Z"]  # | and ^ are text here
    assert pid.text(3, 4) == "RTK"


@pytest.mark.parametrize("msh", [
    "MSH|^^\\&|PAS|RTK", "MSH| ~\\&|PAS", "MSHA^~\\&|PAS|RTK|X|Y|Z", "MSH|a~\\&|PAS|RTK|X|Y|Z",
    "MSH|^~\\&^|PAS",
], ids=["repeated", "a space", "alphanumeric separator", "alphanumeric component", "five, one repeated"])
def test_unusable_delimiters_are_refused(msh: str) -> None:
    with pytest.raises(MessageError) as caught:
        parse_message(msh + "\rPID|1")
    assert caught.value.code == "hl7.parse"


def test_a_feeds_delimiters_are_read_once_and_a_refusal_is_raised_every_time() -> None:
    first, second = parse_message(message("PID|1||A")), parse_message(message("PID|1||B"))
    assert first.delimiters is second.delimiters is first.header.delimiters  # one object, read once
    assert Delimiters.of("#", "!~\\&") is Delimiters.of("#", "!~\\&") != Delimiters.of("|", "^~\\&")
    for _ in range(2):  # a refusal is not remembered as an answer
        with pytest.raises(MessageError):
            Delimiters.of("|", "^^\\&")


@pytest.mark.parametrize("raw", [
    "", "A", " A ", "A^B", "^B", "A^^C", "A&B^C&D&E", "&B", "A&&C", "\\F\\X^Y", "\\X41\\", '""', '""^""', "A^B&\\",
    "^", "&", "^&^", " ^ & ",
], ids=repr)
def test_a_leaf_read_is_its_component_unescaped_and_stripped(raw: str) -> None:
    """Composite.text reads the components itself (a hot path): the same as component() unescaped and stripped, for
    every component and sub-component asked, the ones not sent and the nonsense ones (0) included."""
    for delimiters in (Delimiters(), Delimiters(component="#", subcomponent="!")):
        text = raw.replace("^", delimiters.component).replace("&", delimiters.subcomponent)
        for n in range(0, 6):
            for sub in range(0, 4):
                part = Composite(text, delimiters).component(n, sub)
                expected = (delimiters.unescape(part) if delimiters.escape in part else part).strip()
                assert Composite(text, delimiters).text(n, sub) == expected, (n, sub)


def test_no_msh_is_refused() -> None:
    with pytest.raises(MessageError) as caught:
        parse_message("PID|1||AB1\r")
    assert caught.value.code == "hl7.no-msh" and caught.value.header is None


@pytest.mark.parametrize(("segment", "where"), [
    ("PID|1||7777\x0008^^^RTK^MR", "PID-3"),
    ("PID|1||AB1^^^RTK^MR||SMITH\x01", "PID-5"),
    ("PID|1||7777\\X00\\08^^^RTK^MR", "PID-3"),  # the same NUL, escaped
    ("PID|1||AB1\x0bX", "PID-3"),
])
def test_a_control_character_refuses_the_message_with_its_location(segment: str, where: str) -> None:
    with pytest.raises(MessageError) as caught:
        parse_message(message(segment))
    assert caught.value.code == "hl7.control-character"
    assert caught.value.location is not None and caught.value.location.label == where
    assert caught.value.header is not None and caught.value.header.control_id == "C1"  # it can be acknowledged


def test_tabs_and_printable_unicode_are_text() -> None:
    pid = parse_message(message("PID|1||AB1||ŁUKASZ\tO'NEIL")).segment("PID")
    assert pid is not None and pid.text(5) == "ŁUKASZ\tO'NEIL"


def test_a_second_message_in_one_text_is_refused() -> None:
    with pytest.raises(MessageError) as caught:
        parse_message(message("PID|1||AB1") + MSH.replace("C1", "C2") + "\rPID|1||AB2\r")
    assert caught.value.code == "hl7.several-messages"
    assert caught.value.location is not None and caught.value.location.erl() == "MSH^2"


def test_repetitions_are_bounded() -> None:
    many = "~".join(f"{n}^^^RTK^MR" for n in range(101))
    with pytest.raises(MessageError) as caught:
        parse_message(message(f"PID|1||{many}"))
    assert caught.value.code == "hl7.too-many-repetitions"
    assert caught.value.location is not None and caught.value.location.erl() == "PID^1^3"
    assert len(parse_message(message(f"PID|1||{many}"), max_repetitions=200).segment("PID").repetitions(3)) == 101  # type: ignore[union-attr]


def test_the_hl7_null_is_kept_apart_from_not_sent() -> None:
    pid = parse_message(message('PID|1||AB1||""||')).segment("PID")
    assert pid is not None
    assert pid.text(5) == NULL and pid.value(5) is None and pid.composite(5).is_null
    assert pid.text(7) == "" and pid.composite(7).is_empty and not pid.composite(7).is_null


def test_the_header_alone_is_read_even_when_the_message_is_not() -> None:
    header = read_header(message("PID|1||7777\x0008") + "\x00")
    assert (header.sending_application, header.sending_facility, header.control_id, header.event, header.version,
            header.message_structure, header.processing) == ("PAS", "RTK", "C1", "ADT^A08", "2.4", "ADT_A01", "P")
    dirty = read_header(MSH.replace("|C1|", "|C\x001|"))
    assert dirty.control_id == "C\\X00\\1"  # no control character reaches the log or the ACK


def test_segments_are_numbered_within_their_name() -> None:
    parsed = parse_message(message("PID|1||A", "MRG|X", "PID|2||B", "MRG|Y"))
    assert [(s.name, s.sequence) for s in parsed.segments[1:]] == [("PID", 1), ("MRG", 1), ("PID", 2), ("MRG", 2)]
