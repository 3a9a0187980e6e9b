"""JSON from outside, read within bounds: nesting at most :data:`MAX_DEPTH` deep, no NUL characters.

Python's parser gives up on deep nesting with a ``RecursionError`` (which is no ``ValueError``, so callers that
expect bad JSON to raise one would answer 500 or stop), and code walking a parsed value can recurse as deep as it
nests. PostgreSQL cannot store a NUL character in text at all, and SQLite would keep one silently. So every JSON
body and file that priorscan reads goes through :func:`loads` (or :func:`check` after a parser of its own): either
a value fit to use, or :class:`JsonInputError`, a ``ValueError`` saying what is wrong without quoting the input.
"""

from __future__ import annotations

import json
from typing import Any

#: Deeper than any resource or request priorscan reads (a FHIR Bundle of ImagingStudies nests about 12 deep).
MAX_DEPTH = 64

#: How a NUL character can be written in JSON text: the parser refuses a raw control character in a string (it is
#: strict) and "0000" has no hex letter to write in upper case. Text without it parses to no NUL, and text with no
#: more ``{`` and ``[`` than ``max_depth`` cannot nest deeper, so :func:`loads` need not walk what it parsed.
_NUL_ESCAPE = "\\u0000"


class JsonInputError(ValueError):
    """JSON that is malformed, nested too deeply or holds a NUL character (the message quotes none of it)."""


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` itself when it nests at most ``max_depth`` deep and no string or key holds a NUL character."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise JsonInputError("a text value holds a NUL character")
        elif isinstance(item, (dict, list)):
            if depth > max_depth:
                raise JsonInputError(f"JSON nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if "\x00" in key:
                        raise JsonInputError("a key holds a NUL character")
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
    return value


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` and :func:`check` it; :class:`JsonInputError` for anything unfit."""
    try:
        value = json.loads(data)
    except RecursionError as exc:
        raise JsonInputError(f"JSON nested deeper than {max_depth} levels") from exc
    except ValueError as exc:
        raise JsonInputError("not valid JSON") from exc
    if isinstance(data, str) and _NUL_ESCAPE not in data and data.count("{") + data.count("[") <= max_depth:
        return value  # fit without the walk (see _NUL_ESCAPE): one line of an NDJSON extract, mostly
    return check(value, max_depth=max_depth)

