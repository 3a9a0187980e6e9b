"""HL7 v2 feeds: every message parses, PID-3 follows the NHS conventions, dialects differ between trusts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hl7_oracle import disagreements
from synth_feeds import field, hl7_messages, segments

from priorscan.hl7v2 import parse_message, read_header


def _files(region: Path, name: str = "*") -> list[Path]:
    return sorted(region.glob(f"hl7/*/{name}.hl7"))


@pytest.fixture(scope="module")
def messages(small_region: Path) -> dict[Path, list[str]]:
    return {path: hl7_messages(path) for path in _files(small_region)}


def test_every_message_parses_and_hl7apy_reads_it_alike(messages: dict[Path, list[str]]) -> None:
    count = 0
    for path, found in messages.items():
        for message in found:
            parsed = parse_message(message)
            assert parsed.header.sending_facility == path.parent.name
            assert disagreements(parsed) == []
            count += 1
    assert count > 500


def test_pid3_follows_the_nhs_conventions(messages: dict[Path, list[str]]) -> None:
    styles: dict[str, set[str]] = {}
    for path, found in messages.items():
        ods = path.parent.name
        for message in found:
            for pid in segments(message, "PID"):
                for cx in field(pid, 3).split("~"):
                    parts = cx.split("^") + [""] * 6
                    if parts[4] == "NH":
                        assert parts[3] == "NHS" and len(parts[0]) == 10
                    else:
                        assert parts[4] == "MR"
                        assert ods in (parts[3], parts[5])
                        styles.setdefault(ods, set()).add("CX4" if parts[3] == ods else "CX6")
    assert all(len(s) == 1 for s in styles.values()), "one style per trust"
    assert {"CX4", "CX6"} <= set().union(*styles.values()), "both assigning authority and facility appear"


def test_dialects_differ_between_trusts(small_region: Path, messages: dict[Path, list[str]]) -> None:
    versions = {read_header(m).version for found in messages.values() for m in found}
    assert versions == {"2.3", "2.4", "2.5"}
    raw = {path: path.read_bytes() for path in messages}
    assert any(b"\r" not in data for data in raw.values()), "some files end segments with LF"
    assert any(data.startswith(b"\x0b") and b"\x1c\r" in data for data in raw.values()), "some are MLLP-framed"
    assert any(b"\r" in data and not data.startswith(b"\x0b") for data in raw.values()), "some are plain CR"


def test_nhs_number_status_travels_in_pid32_or_a_z_segment(messages: dict[Path, list[str]]) -> None:
    in_pid32, in_z = Counter(), Counter()
    for found in messages.values():
        for message in found:
            for pid in segments(message, "PID"):
                if field(pid, 32):
                    in_pid32[field(pid, 32)] += 1
            for zpi in segments(message, "ZPI"):
                in_z[field(zpi, 2).split("^")[0]] += 1
    assert in_pid32 and in_z
    untraced = {"02", "03", "04", "05", "06"}
    assert untraced & set(in_pid32) and untraced & set(in_z)
    assert all(read_header(m).version >= "2.4" for found in messages.values() for m in found
               if any(field(p, 32) for p in segments(m, "PID")))


def test_every_adt_event_appears(large_region: Path) -> None:
    events = Counter()
    for path in _files(large_region, "adt"):
        for message in hl7_messages(path):
            events[read_header(message).trigger_event] += 1
    assert {"A04", "A08", "A28", "A31", "A40", "A24", "A37", "A47"} <= set(events)
    for message in (m for p in _files(large_region, "adt") for m in hl7_messages(p)):
        header = read_header(message)
        if header.trigger_event in ("A40", "A47"):
            assert segments(message, "MRG")
        if header.trigger_event in ("A24", "A37"):
            assert len(segments(message, "PID")) == 2


def test_messages_are_in_event_time_order_per_file(messages: dict[Path, list[str]]) -> None:
    for path, found in messages.items():
        stamps = [field(segments(m, "MSH")[0], 7) for m in found]
        assert stamps == sorted(stamps), path


def test_results_carry_code_date_final_status_and_study_uid(messages: dict[Path, list[str]]) -> None:
    styles = set()
    results = [m for path, found in messages.items() if path.name == "oru.hl7" for m in found]
    assert results
    for message in results:
        obr = segments(message, "OBR")[0]
        code, description, system = field(obr, 4).split("^")
        assert code and description and system
        assert len(field(obr, 7)) == 14 and field(obr, 25) == "F"
        zds = segments(message, "ZDS")
        uid_obx = [o for o in segments(message, "OBX") if field(o, 3).startswith("110180^")]
        assert len(zds) + len(uid_obx) == 1
        styles.add("ZDS" if zds else "OBX")
    assert styles == {"ZDS", "OBX"}


def test_orders_carry_placer_number_procedure_body_site_and_priority(messages: dict[Path, list[str]]) -> None:
    kinds = set()
    for path, found in messages.items():
        if path.name != "orders.hl7":
            continue
        for message in found:
            header = read_header(message)
            kinds.add(header.event)
            orc, obr = segments(message, "ORC")[0], segments(message, "OBR")[0]
            assert field(orc, 1) == "NW" and field(orc, 2) == field(obr, 2) != ""
            assert field(obr, 4).count("^") == 2
            assert "&SCT" in field(obr, 15)
            if header.event == "OMI^O23":
                assert field(segments(message, "TQ1")[0], 9)[0] in "SAR"
                assert segments(message, "IPC")
            else:
                assert field(obr, 27).split("^")[5] in ("S", "A", "R")
    assert kinds == {"ORM^O01", "OMI^O23"}
