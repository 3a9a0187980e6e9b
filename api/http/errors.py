"""The one mapping from priorscan's errors (:mod:`priorscan.errors`, by stable code) to HTTP answers.

Every HTTP surface answers a :class:`~priorscan.errors.PriorscanError` from :data:`priorscan.errors.HTTP_STATUS`,
looked up by the error's code, then by its family (``fhir.duplicate`` → ``fhir``):

- FHIR routes (under ``/fhir``) answer an OperationOutcome with the status and issue code of the table
  (:func:`http_status`; :mod:`api.http.routers.fhir` and :mod:`api.feeds.fhir_service` render it);
- the JSON API answers ``{"detail": message}`` (:func:`http_error`) with the same status, except that a request it
  cannot act on (an :class:`~priorscan.errors.InputError` or :class:`~priorscan.errors.IdentityError` without a
  status of its own in the JSON API, :data:`JSON_STATUS`) is 422, as FastAPI answers a body that does not validate.

HL7 v2 has its own single mapping, to AE/AR and an ERR segment: :data:`api.feeds.hl7_service.ACK_CODES`. Messages of
priorscan errors never name a patient, so they are shown as they are; anything else is "internal error". A request
that does not validate is FastAPI's 422 without the values it quotes (:func:`validation_answer`).
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from priorscan.errors import (  # noqa: F401 - HTTP_STATUS and http_status: the one mapping, named here too
    HTTP_STATUS,
    AuthError,
    IdentityError,
    InputError,
    PriorscanError,
    http_status,
    known_status,
)

#: Where the JSON API's status differs from :data:`HTTP_STATUS` (by code, before the family rule for input errors).
JSON_STATUS: dict[str, int] = {"alert.state": status.HTTP_409_CONFLICT}
#: What the JSON API says instead of the message of these codes.
JSON_DETAIL: dict[str, str] = {"config": "the duplicate check is misconfigured", "internal": "internal error"}


def json_status(exc: PriorscanError) -> int:
    """The JSON API's status for ``exc``: see the module docstring."""
    if exc.code in JSON_STATUS:
        return JSON_STATUS[exc.code]
    if isinstance(exc, InputError | IdentityError):
        return status.HTTP_422_UNPROCESSABLE_CONTENT
    found = known_status(exc.code)
    return found[0] if found is not None else status.HTTP_500_INTERNAL_SERVER_ERROR


def http_error(exc: PriorscanError) -> HTTPException:
    """``exc`` as the JSON API's answer (its message never names a patient)."""
    code = json_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if code == status.HTTP_401_UNAUTHORIZED and isinstance(
        exc, AuthError) else None
    family = exc.code.split(".", 1)[0]
    detail = JSON_DETAIL.get(exc.code) or JSON_DETAIL.get(family)
    if detail is None and code >= status.HTTP_500_INTERNAL_SERVER_ERROR and exc.code != "busy":
        detail = "internal error"
    return HTTPException(code, detail=detail or exc.message, headers=headers)


async def validation_answer(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 for a request that does not validate, without the ``input`` each error quotes: that is the
    value refused, and for a body refused whole the whole body (a patient's name and NHS number)."""
    errors = [{key: value for key, value in error.items() if key != "input"} for error in exc.errors()]
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": jsonable_encoder(errors)})


__all__ = ["HTTP_STATUS", "JSON_STATUS", "http_error", "http_status", "json_status", "validation_answer"]
