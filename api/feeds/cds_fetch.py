"""Fetching a CDS Hooks call's patient from the EHR's FHIR server, only where the trusts' configuration allows.

A hook call without ``prefetch.patient`` names a ``fhirServer`` and an ``access_token``; priorscan fetches
``Patient/{context.patientId}`` from it only when

- ``fhirServer`` is one of a trust's configured ``fhir_servers`` (:class:`priorscan.trusts.Trust`), compared as
  scheme, host, port and path; anything else is never contacted, so the caller's token never goes elsewhere;
- every address the host resolves to is public, unless the configured URL itself names the host by a private,
  loopback or link-local address (or ``localhost``): a name is never trusted to resolve inside the network;
- ``context.patientId`` is a FHIR id (``[A-Za-z0-9.-]{1,64}``), so the URL cannot be steered elsewhere on the server.

Redirects are not followed, the answer is read up to :data:`MAX_ANSWER_BYTES`, and any failure leaves the patient
unknown (no cards rather than a failed order entry). The trust owning the server is the requesting trust of drafts
that name none.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from priorscan import json_input
from priorscan.trusts import Trust, TrustRegistry

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 3.0
MAX_ANSWER_BYTES = 1024 * 1024
_FHIR_ID = re.compile(r"[A-Za-z0-9.\-]{1,64}")


@dataclass(frozen=True)
class _Base:
    scheme: str
    host: str
    port: int
    path: str


def _base(url: str) -> _Base | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query or parts.fragment:
        return None
    return _Base(parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80),
                 parts.path.rstrip("/"))


def server_trust(trusts: TrustRegistry, fhir_server: object) -> tuple[Trust, str] | None:
    """The trust that configured ``fhir_server`` and the configured URL it matched; None when no trust did."""
    if not isinstance(fhir_server, str):
        return None
    wanted = _base(fhir_server)
    if wanted is None:
        return None
    for trust in trusts.trusts:
        for configured in trust.fhir_servers:
            if _base(configured) == wanted:
                return trust, configured
    return None


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def addresses_allowed(host: str) -> bool:
    """Whether ``host`` (from a configured URL) may be contacted: named by a literal address or ``localhost``
    (written down on purpose), or resolving to public addresses only."""
    if host == "localhost" or _literal_address(host) is not None:
        return True
    try:
        resolved = {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except OSError:
        return False
    return bool(resolved) and all(ipaddress.ip_address(a.split("%", 1)[0]).is_global for a in resolved)


def fetch_patient(trusts: TrustRegistry, fhir_server: object, patient_id: object,
                  access_token: object) -> dict[str, Any] | None:
    """The Patient resource at an allowed ``fhir_server``, or None (not allowed, not found, not readable)."""
    found = server_trust(trusts, fhir_server)
    if found is None:
        log.info("CDS: fhirServer is not a configured FHIR server; the patient is not fetched")
        return None
    _trust, configured = found
    if not isinstance(patient_id, str) or not _FHIR_ID.fullmatch(patient_id):
        return None
    host = urlsplit(configured).hostname or ""
    if not addresses_allowed(host):
        log.warning("CDS: a configured FHIR server's name resolves to a non-public address; not fetched")
        return None
    headers = {"Accept": "application/fhir+json"}
    if isinstance(access_token, str) and access_token:
        headers["Authorization"] = f"Bearer {access_token}"
    try:
        with httpx.stream("GET", f"{configured}/Patient/{patient_id}", headers=headers, timeout=FETCH_TIMEOUT_S,
                          follow_redirects=False) as answer:
            if answer.status_code != 200:
                return None
            body = b""
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    return None
        resource = json_input.loads(body)
    except (httpx.HTTPError, ValueError):
        return None
    return resource if isinstance(resource, dict) else None
