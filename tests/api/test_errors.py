"""The one HTTP mapping of priorscan's errors (api/http/errors.py): FHIR statuses and issue codes, the JSON API's."""

from __future__ import annotations

import pytest

from api.http.errors import HTTP_STATUS, http_error, http_status
from dedupe import AlertStateError
from priorscan.errors import (
    AuthError,
    BusyError,
    ConfigurationError,
    FHIRError,
    ForbiddenError,
    HL7Error,
    IdentityError,
    InputError,
    LinkConflictError,
    NotFoundError,
    PriorscanError,
    StorageError,
)


@pytest.mark.parametrize(("code", "expected", "why"), [
    ("fhir.duplicate", (409, "duplicate"), "a create that names an existing record"),
    ("fhir.pix-target-domain", (403, "code-invalid"), "PIXm: a target domain the server does not know"),
    ("fhir.something-new", (400, "invalid"), "an unknown FHIR code takes its family's status"),
    ("identity.conflict", (409, "conflict"), "two different valid NHS numbers"),
    ("busy", (503, "transient"), "a unit of work that met a lock on every attempt: send it again"),
    ("no-such-family", (400, "processing"), "neither the code nor its family is known"),
    (None, (500, "exception"), "no code: a fault of ours"),
])
def test_fhir_status_by_code_then_family(code: str | None, expected: tuple[int, str], why: str) -> None:
    assert http_status(code) == expected, why


@pytest.mark.parametrize(("error", "status", "why"), [
    (NotFoundError("no such alert"), 404, "the thing named does not exist"),
    (ForbiddenError("another trust's alert"), 403, "authenticated, not allowed"),
    (AuthError("no token"), 401, "not authenticated (with WWW-Authenticate)"),
    (AlertStateError("the request was cancelled"), 409, "an alert cannot take that step from where it is"),
    (InputError("bad request"), 422, "the JSON API's status for a request it cannot act on"),
    (FHIRError("not a ServiceRequest", code="fhir.duplicate"), 422, "input errors are 422 in the JSON API, whatever "
     "their FHIR status"),
    (HL7Error("bad order", code="hl7.required"), 422, "the same for an HL7-derived input error"),
    (LinkConflictError("different NHS numbers"), 422, "an identity rule refuses the step: 422 as before"),
    (IdentityError("refused"), 422, "any identity refusal"),
    (ConfigurationError("no rules"), 503, "misconfigured: the service cannot answer"),
    (BusyError("the store was busy (OperationalError)"), 503, "busy: try again"),
    (StorageError("disk"), 500, "storage failure: internal error"),
    (PriorscanError("something"), 500, "anything else is an internal error"),
])
def test_the_json_api_answers_from_the_same_table(error: PriorscanError, status: int, why: str) -> None:
    answer = http_error(error)
    assert answer.status_code == status, why
    assert (answer.headers or {}).get("WWW-Authenticate") == ("Bearer" if status == 401 else None)


def test_internal_errors_keep_their_message_to_themselves() -> None:
    assert http_error(StorageError("disk full at /var/lib/x")).detail == "internal error"
    assert http_error(ConfigurationError("rules.yaml line 3")).detail == "the duplicate check is misconfigured"
    assert http_error(NotFoundError("no such alert")).detail == "no such alert"


def test_every_code_in_the_table_is_a_status_with_an_issue() -> None:
    for code, (status, issue) in HTTP_STATUS.items():
        assert 400 <= status < 600 and issue, code
