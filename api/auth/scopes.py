"""SMART v2 system scopes and priorscan's own scopes, and the rule that says whether a grant covers a need.

``system/Patient.rs`` grants read and search of Patient; ``system/*.cruds`` every FHIR permission; SMART v1 forms
(``system/Patient.read``, ``.write``, ``.*``) are understood too. ``*`` (admin) grants everything.
"""

from __future__ import annotations

import re

DUPLICATE_CHECK = "priorscan/duplicate-check"
ALERTS = "priorscan/alerts"
ANALYTICS = "priorscan/analytics"
OPERATIONS = "priorscan/operations"  # metrics and feed health (no patient data)
ADMIN = "*"
PRIORSCAN_SCOPES = (DUPLICATE_CHECK, ALERTS, ANALYTICS, "priorscan/hl7", "priorscan/mpi-review", OPERATIONS)

_SMART = re.compile(r"^(system|user|patient)/([A-Za-z*]+)\.([a-z*]+)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


def _perms(text: str) -> str:
    return _V1.get(text, text)


def covers(granted: list[str] | tuple[str, ...], needed: str) -> bool:
    """Whether the ``granted`` scopes include ``needed`` (a priorscan scope or ``system/Type.x``)."""
    if ADMIN in granted or needed in granted:
        return True
    want = _SMART.match(needed)
    if not want:
        return False
    _, want_type, want_perms = want.groups()
    for scope in granted:
        have = _SMART.match(scope)
        if not have or have.group(1) != "system":
            continue
        _, have_type, have_perms = have.groups()
        if have_type not in ("*", want_type):
            continue
        if set(_perms(want_perms)) <= set(_perms(have_perms)):
            return True
    return False


def validate(scopes: list[str]) -> list[str]:
    """The scopes, each checked to be one priorscan understands; raises ValueError otherwise."""
    for scope in scopes:
        if scope != ADMIN and scope not in PRIORSCAN_SCOPES and not _SMART.match(scope):
            raise ValueError(f"unknown scope {scope!r}")
    return scopes
