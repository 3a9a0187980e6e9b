"""hl7apy as an independent second reader of HL7 v2 text: where it earns its cost, checking priorscan's own reader.

priorscan reads HL7 with :mod:`priorscan.hl7v2` alone; the tests hold that reader to hl7apy's reading of the same
text (the synthetic region's feeds, hypothesis-generated messages): every segment, field, repetition and component
as sent.
"""

from __future__ import annotations

import re
from typing import Any

from hl7apy.parser import parse_message as hl7apy_parse

from priorscan.hl7v2 import Message, normalise_segments, read_header

SUPPORTED = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")


def hl7apy_message(text: str) -> Any:
    """The message as hl7apy reads it, leniently (unknown versions read as 2.5, as hl7apy knows only some)."""
    text = normalise_segments(text)
    header = read_header(text)
    if header.version not in SUPPORTED:
        first, _, rest = text.partition("\r")
        parts = first.split(header.field_separator)
        parts[11] = "2.5"
        text = header.field_separator.join(parts) + ("\r" + rest if rest else "")
    return hl7apy_parse(text, find_groups=False, validation_level=2)


def disagreements(message: Message) -> list[str]:
    """Where priorscan's reading of ``message`` differs from hl7apy's (field by field, component by component)."""
    theirs = hl7apy_message(message.text)
    found: list[str] = []
    ours = [s for s in message.segments]
    their_segments = list(theirs.children)
    if [s.name for s in ours] != [s.name for s in their_segments]:
        return [f"segments {[s.name for s in ours]} != {[s.name for s in their_segments]}"]
    for mine, other in zip(ours, their_segments, strict=True):
        fields: dict[int, list[Any]] = {}
        for child in other.children:
            number = int(child.name.rsplit("_", 1)[1])
            fields.setdefault(number, []).append(child)
        for number, reps in fields.items():
            if mine.name == "MSH" and number <= 2:
                continue
            sent = [r for r in mine.repetitions(number) if not r.is_empty]
            trailing = message.delimiters.component + message.delimiters.subcomponent
            if [r.raw.rstrip(trailing) for r in sent] != [r.to_er7().rstrip(trailing) for r in reps]:
                found.append(f"{mine.name}-{number}: {[r.raw for r in sent]} != {[r.to_er7() for r in reps]}")
                continue
            if mine.name.startswith("Z"):
                continue
            for rep, their_rep in zip(sent, reps, strict=True):
                for component in their_rep.children:
                    index = re.search(r"_(\d+)$", component.name)
                    if index is None:
                        continue
                    n = int(index[1])
                    parts = rep.raw.split(message.delimiters.component)
                    whole = parts[n - 1] if n <= len(parts) else ""
                    if whole.rstrip(trailing) != component.to_er7().rstrip(trailing):
                        found.append(f"{mine.name}-{number}.{n}: {whole!r} != {component.to_er7()!r}")
                    elif rep.component(n) != whole.split(message.delimiters.subcomponent)[0]:
                        found.append(f"{mine.name}-{number}.{n}.1: {rep.component(n)!r}")
    return found
