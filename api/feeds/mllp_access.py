"""Who may send HL7 over MLLP: TLS with client certificates, and the trusts' allow-list of senders.

MLLP carries no credentials of its own, so the listener authenticates the connection and the sender:

- **TLS** (``settings.mllp_tls_cert`` and ``mllp_tls_key``, or ``serve --mllp-tls-cert/--mllp-tls-key``): MLLP is
  served over TLS 1.2 or later only. With ``mllp_tls_client_ca`` (``--mllp-tls-client-ca``) every sender must present
  a client certificate issued by one of those authorities (mutual TLS); a connection without one fails its handshake
  and never reaches the HL7 reader.
- **Senders** (``[[trust.hl7_sender]]`` in the trusts file, :class:`priorscan.trusts.HL7Sender`): once any is
  configured, a message is taken only from a configured sender, i.e. its MSH-3/MSH-4 name one, it comes from one of
  that sender's addresses and, when the sender names certificates, over a connection whose client certificate names
  one of them. The sender's identifier domains then bound what the message may act on (:func:`mpi.read_adt`).
- **Over HTTP** (``POST /hl7``): the bearer token authenticates the API client; once senders are configured, a
  message's MSH-3/MSH-4 must name a sender that lists that client in ``clients`` (:func:`http_sender_refusal`).
- With neither senders nor client certificates configured, the listener is open only in development and test; with
  ``PRIORSCAN_ENV=production`` it refuses every message until one of the two is configured.

A message that fails the sender check is refused with AR (ERR-3 207, ``hl7.sender-not-allowed``) and kept as a dead
letter, like every refusal. Pure functions except :func:`tls_context`, which reads the certificate files.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from priorscan.errors import ConfigurationError
from priorscan.hl7v2 import MessageHeader
from priorscan.settings import Settings
from priorscan.trusts import TrustRegistry

#: The refusal's error code (AR, ERR-3 207).
SENDER_NOT_ALLOWED = "hl7.sender-not-allowed"


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server TLS context of the MLLP listener, or None when MLLP is served in the clear.

    Raises
    ------
    ConfigurationError
        When a certificate, key or client CA file cannot be read or does not match.
    """
    if settings.mllp_tls_cert is None or settings.mllp_tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.mllp_tls_cert, settings.mllp_tls_key)
        if settings.mllp_tls_client_ca is not None:
            context.load_verify_locations(cafile=settings.mllp_tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot load the MLLP TLS certificate, key or client CA: {exc}") from exc
    return context


def certificate_names(peer_certificate: Mapping[str, Any] | None) -> tuple[str, ...] | None:
    """The names a verified client certificate gives its holder (subject CN, DNS and IP subject alternative names), or
    None when the connection has no client certificate (``ssl.SSLSocket.getpeercert()`` as the input)."""
    if not peer_certificate:
        return None
    names: list[str] = []
    for rdn in peer_certificate.get("subject", ()):
        names += [value for key, value in rdn if key == "commonName"]
    names += [value for kind, value in peer_certificate.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    return tuple(dict.fromkeys(names))


def sender_refusal(trusts: TrustRegistry, settings: Settings, header: MessageHeader | None, *,
                   address: str | None, certificate: tuple[str, ...] | None) -> str | None:
    """Why this sender may not send this message, or None when it may.

    Parameters
    ----------
    header
        The message's MSH (None when it cannot be read: the HL7 reader refuses that message for its own reason).
    address
        The peer's IP address.
    certificate
        The names of the peer's verified client certificate (:func:`certificate_names`), None without one.

    Returns
    -------
    str or None
        A reason naming fields and configuration, never patient data (it becomes MSA-3 and ERR-8).
    """
    if not trusts.senders_configured:
        if settings.env == "production" and settings.mllp_tls_client_ca is None:
            return ("no HL7 sender is configured ([[trust.hl7_sender]]) and no client certificate is required: "
                    "in production the MLLP listener takes messages from configured senders only")
        return None
    if header is None:
        return None
    found = trusts.sender_for(header.sending_application, header.sending_facility)
    if found is None:
        return "MSH-3/MSH-4 name no configured HL7 sender of any trust"
    trust, sender = found
    if not sender.allows_address(address):
        return f"the connection's address is not one of those configured for this sender of {trust.ods}"
    if not sender.allows_certificate(certificate):
        return f"the connection's client certificate is not one configured for this sender of {trust.ods}"
    return None


def http_sender_refusal(trusts: TrustRegistry, header: MessageHeader | None, *, client: str) -> str | None:
    """Why the API client ``client`` may not send this message by ``POST /hl7`` (None when it may).

    The bearer token authenticates the client; once any HL7 sender is configured, the message's MSH-3/MSH-4 must name
    a configured sender that lists ``client`` among its ``clients``, so that a token cannot speak for any trust.
    """
    if not trusts.senders_configured or header is None:
        return None
    found = trusts.sender_for(header.sending_application, header.sending_facility)
    if found is None:
        return "MSH-3/MSH-4 name no configured HL7 sender of any trust"
    trust, sender = found
    if client not in sender.clients:
        return f"this API client is not one configured to send for this sender of {trust.ods}"
    return None


__all__ = ["SENDER_NOT_ALLOWED", "certificate_names", "http_sender_refusal", "sender_refusal", "tls_context"]
