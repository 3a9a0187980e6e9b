"""api.auth.scopes: which grants cover which needs (SMART v2 and v1 system scopes, priorscan's own, admin)."""

from __future__ import annotations

import pytest

from api.auth import scopes


@pytest.mark.parametrize(("granted", "needed", "expected"), [
    (["system/Patient.rs"], "system/Patient.rs", True),  # exact
    (["system/Patient.rs"], "system/Patient.r", True),  # v2: read is part of rs
    (["system/Patient.rs"], "system/Patient.s", True),  # v2: search is part of rs
    (["system/Patient.r"], "system/Patient.rs", False),  # read alone does not grant search
    (["system/Patient.rs"], "system/Patient.c", False),  # no create
    (["system/Patient.cruds"], "system/Patient.u", True),  # every permission
    (["system/*.rs"], "system/ImagingStudy.r", True),  # wildcard resource type
    (["system/*.rs"], "system/ImagingStudy.c", False),
    (["system/Patient.read"], "system/Patient.rs", True),  # v1 read = v2 rs
    (["system/Patient.read"], "system/Patient.c", False),
    (["system/Patient.write"], "system/Patient.cu", True),  # v1 write = cud
    (["system/Patient.write"], "system/Patient.r", False),
    (["system/Patient.*"], "system/Patient.cruds", True),  # v1 * = everything
    (["system/*.*"], "system/ServiceRequest.c", True),
    (["system/ImagingStudy.rs"], "system/Patient.r", False),  # another resource type
    (["user/Patient.rs"], "system/Patient.r", False),  # a user scope is not a system scope
    (["patient/*.rs"], "system/Patient.r", False),
    (["priorscan/duplicate-check"], "priorscan/duplicate-check", True),
    (["priorscan/duplicate-check"], "priorscan/alerts", False),  # the duplicate check and nothing else
    (["priorscan/duplicate-check"], "system/Patient.r", False),
    (["system/*.cruds"], "priorscan/alerts", False),  # FHIR scopes never grant priorscan's own
    (["*"], "priorscan/analytics", True),  # admin
    (["*"], "system/Patient.d", True),
    ([], "system/Patient.r", False),
])
def test_covers(granted: list[str], needed: str, expected: bool) -> None:
    assert scopes.covers(granted, needed) is expected


@pytest.mark.parametrize("scope", ["system/Patient.rs", "system/*.cruds", "system/Patient.read", "patient/*.rs",
                                   "priorscan/duplicate-check", "priorscan/alerts", "priorscan/analytics", "*"])
def test_validate_accepts_known_scopes(scope: str) -> None:
    assert scopes.validate([scope]) == [scope]


@pytest.mark.parametrize("scope", ["bogus", "system/Patient", "priorscan/everything", "system/Patient.rs extra",
                                   "openid"])
def test_validate_refuses_unknown_scopes(scope: str) -> None:
    with pytest.raises(ValueError, match="unknown scope"):
        scopes.validate([scope])
