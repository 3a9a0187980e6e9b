"""HL7 v2 batches (priorscan.hl7v2.batch): cut into messages, answered with a batch of ACKs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from priorscan.hl7v2 import Batch, batch_acknowledgement, is_batch, split_batch

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"FHS|^~\\&|PAS|RTK\r", True),
        (b"\x0b\r\nBHS|^~\\&|PAS|RTK\r", True),  # leading framing and blank lines
        (b"MSH|^~\\&|PAS|RTK\r", False),  # one message
        (b"BHSX|1\r", False),  # a Z-like segment whose name only starts with BHS
    ],
)
def test_is_batch(payload: bytes, expected: bool) -> None:
    assert is_batch(payload) is expected


def test_split_cuts_at_each_msh_with_any_segment_ends_and_keeps_strays() -> None:
    payload = (
        b"FHS|^~\\&|PAS|RTK||||||||F1\r\nBHS|^~\\&|PAS|RTK||||||||B1\nZXX|before\rMSH|^~\\&|A\rPID|1\n"
        b"MSH|^~\\&|B\r\nZPI|2\rBTS|2\rFTS|1\r"
    )
    batch = split_batch(payload)
    assert batch == Batch(
        b"FHS|^~\\&|PAS|RTK||||||||F1",
        b"BHS|^~\\&|PAS|RTK||||||||B1",
        [b"MSH|^~\\&|A\rPID|1\r", b"MSH|^~\\&|B\rZPI|2\r"],
        [b"ZXX|before\r"],
    )


def test_the_answer_names_the_senders_control_ids_and_counts_the_acks() -> None:
    batch = split_batch(b"FHS|^~\\&|PAS|RTK|PRIORSCAN|REGION|||||F1\rBHS|^~\\&|PAS|RTK|PRIORSCAN|REGION|||||B1\r")
    answer = batch_acknowledgement(batch, ["MSH|^~\\&|ack1\rMSA|AA|1\r", "MSH|^~\\&|ack2\rMSA|AE|2\rERR|x\r"], now=NOW)
    segments = answer.split("\r")
    fhs, bhs = segments[0].split("|"), segments[1].split("|")
    assert (fhs[0], fhs[2], fhs[3], fhs[4], fhs[5], fhs[11]) == ("FHS", "PRIORSCAN", "REGION", "PAS", "RTK", "F1")
    assert (bhs[0], bhs[11]) == ("BHS", "B1") and bhs[10] and bhs[10] != fhs[10]  # its own control IDs
    assert segments[2:] == ["MSH|^~\\&|ack1", "MSA|AA|1", "MSH|^~\\&|ack2", "MSA|AE|2", "ERR|x", "BTS|2", "FTS|1", ""]


def test_a_batch_without_file_header_is_answered_without_one_and_unusable_delimiters_are_not_echoed() -> None:
    batch = split_batch(b"BHS||PAS|RTK||||||||B1\r")  # no encoding characters: nothing in it can be trusted
    assert batch.batch_header is not None
    answer = batch_acknowledgement(batch, [], now=NOW)
    assert answer.split("\r")[0].startswith("BHS|^~\\&|PRIORSCAN|REGION|||") and answer.endswith("BTS|0\r")
    bhs = answer.split("\r")[0].split("|")
    assert (bhs[4], bhs[5], bhs[11]) == ("", "", "")  # the sender's application, facility and batch ID not echoed
    assert "FHS" not in answer and "FTS" not in answer
