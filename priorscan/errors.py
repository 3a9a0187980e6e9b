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
