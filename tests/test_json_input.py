"""JSON from outside read within bounds (:mod:`priorscan.json_input`): the text checked without the walk gives the
same answer as the walk."""

from __future__ import annotations

import json

import pytest

from priorscan.json_input import MAX_DEPTH, JsonInputError, check, loads

CASES = [
    '{"resourceType": "Patient", "name": [{"family": "Smith", "given": ["Ann"]}]}',
    '{"a": "x\\u0000y"}',  # a NUL in a value
    '{"a\\u0000": 1}',  # in a key
    '["\\u0000"]',
    '{"a": "\\\\u0000"}',  # a backslash and "u0000": no NUL
    '{"a": "{[{[{[ brackets in a string"}',
    '{"a": "\\u0001\\u00e9"}',
    "[" * MAX_DEPTH + "]" * MAX_DEPTH,  # as deep as allowed
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),  # one deeper
    '{"a": ' * (MAX_DEPTH - 1) + '"\\u0000"' + "}" * (MAX_DEPTH - 1),
    '{"a": ' * MAX_DEPTH + "1" + "}" * MAX_DEPTH,
    '{"a": ' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1),
    '[{"b": [1, 2, {"c": "' + "[" * (MAX_DEPTH + 5) + '"}]}]',  # many brackets, shallow
]


def _walked(text: str) -> object:
    """What the walk over the parsed value says: the value or the error's message."""
    try:
        return check(json.loads(text))
    except JsonInputError as exc:
        return f"refused: {exc}"


def _read(data: str | bytes) -> object:
    try:
        return loads(data)
    except JsonInputError as exc:
        return f"refused: {exc}"


@pytest.mark.parametrize("text", CASES)
def test_loads_refuses_exactly_what_the_walk_refuses(text: str) -> None:
    """A NUL written as ``\\u0000`` in a key or value, nesting one level deeper than :data:`MAX_DEPTH`: refused;
    brackets inside strings and escaped backslashes are no reason to refuse; text and bytes read alike."""
    assert _read(text) == _walked(text)
    assert _read(text.encode()) == _walked(text)


def test_a_raw_nul_or_control_character_is_not_json() -> None:
    """The parser is strict: a raw NUL in a string is not valid JSON (so the NUL's escape is the only way in)."""
    with pytest.raises(JsonInputError, match="not valid JSON"):
        loads('{"a": "x\x00y"}')
