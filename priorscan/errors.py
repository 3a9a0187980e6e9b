"""One rooted exception tree for priorscan, with stable error codes.

::

    PriorscanError                      code
    ├── ConfigurationError              config
    ├── StorageError                    storage
    ├── BusyError                       busy             (a unit of work met a race or a lock on every attempt)
    ├── InputError                      input            (bad input from a feed or a client)
    │   ├── HL7Error                    hl7
    │   │   └── MessageError            hl7.*            (priorscan.hl7v2: with where in the message)
    │   ├── FHIRError                   fhir
    │   ├── DicomError                  dicom
    │   └── UnsupportedFormatError      format
    ├── IdentityError                   identity
    │   └── LinkConflictError           identity.conflict
    ├── NotFoundError                   not-found
    └── AuthError                       auth
        └── ForbiddenError              auth.forbidden

Adapters translate errors of the libraries underneath into these, keeping the cause (``raise X(...) from exc``).
Messages never carry patient identifiers or names: say *which field* is wrong, not what it held.

Each code's answer over HTTP and FHIR is stated once, here (:data:`HTTP_STATUS`, :func:`http_status`), because two
edges give it: the HTTP routes (:mod:`api.http.errors`) and the FHIR feed, whose Bundle entries carry a status of
their own whether the Bundle came over HTTP or from a file (:mod:`api.feeds.fhir_service`). HL7 v2's answer (AE/AR
with an ERR segment) is :data:`api.feeds.hl7_service.ACK_CODES`.
"""

from __future__ import annotations


class PriorscanError(Exception):
    """Root of every error priorscan raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigurationError(PriorscanError):
    code = "config"


class StorageError(PriorscanError):
    code = "storage"


class BusyError(PriorscanError):
    """The store stayed busy: every attempt of a unit of work met a race or a lock (send it again later)."""

    code = "busy"


class InputError(PriorscanError):
    code = "input"


class HL7Error(InputError):
    code = "hl7"


class FHIRError(InputError):
    code = "fhir"


class DicomError(InputError):
    code = "dicom"


class UnsupportedFormatError(InputError):
    code = "format"


class IdentityError(PriorscanError):
    code = "identity"


class LinkConflictError(IdentityError):
    code = "identity.conflict"


class NotFoundError(PriorscanError):
    code = "not-found"


class AuthError(PriorscanError):
    code = "auth"


class ForbiddenError(AuthError):
    code = "auth.forbidden"


#: priorscan error code (or its family) → (HTTP status, FHIR OperationOutcome issue code).
HTTP_STATUS: dict[str, tuple[int, str]] = {
    "fhir": (400, "invalid"), "fhir.invalid": (400, "invalid"), "fhir.json": (400, "structure"),
    "fhir.unsupported": (400, "not-supported"), "fhir.id-mismatch": (400, "invalid"),
    "fhir.business-rule": (422, "business-rule"), "fhir.nhs-number": (400, "invalid"),
    "fhir.duplicate": (409, "duplicate"), "fhir.version-conflict": (412, "conflict"),
    "fhir.multiple-matches": (412, "multiple-matches"), "fhir.not-acceptable": (406, "not-supported"),
    "fhir.media-type": (415, "not-supported"), "fhir.search-parameter": (400, "not-supported"),
    "fhir.read-only": (405, "not-supported"), "fhir.pix-source-domain": (400, "code-invalid"),
    "fhir.pix-not-found": (404, "not-found"), "fhir.pix-target-domain": (403, "code-invalid"),
    "input": (400, "invalid"), "not-found": (404, "not-found"), "identity": (422, "business-rule"),
    "identity.conflict": (409, "conflict"), "auth": (401, "login"), "auth.forbidden": (403, "forbidden"),
    "alert.state": (409, "conflict"), "config": (503, "transient"), "busy": (503, "transient"),
    "internal": (500, "exception"),
}


def known_status(code: str) -> tuple[int, str] | None:
    """The entry of :data:`HTTP_STATUS` for ``code``, else for its family (``fhir.duplicate`` → ``fhir``); None
    when neither is listed."""
    while code not in HTTP_STATUS and "." in code:
        code = code.rsplit(".", 1)[0]
    return HTTP_STATUS.get(code)


def http_status(code: str | None) -> tuple[int, str]:
    """The HTTP status and FHIR issue code for a priorscan error code (its family's when the code itself is unknown;
    400 ``processing`` when neither is known)."""
    return known_status(code or "internal") or (400, "processing")

