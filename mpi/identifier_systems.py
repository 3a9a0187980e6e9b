"""Identifier systems: priorscan's own, and which identifiers are evidence that two records are one person.

A source record is keyed by ``(namespace, local id)`` and may carry further identifiers (PID-3 repeats, FHIR
``identifier`` entries): another trust's hospital number, an insurer's or a registry's number. Any of them equal to
another record's key or further identifier names that record (a cross-reference), and the identity comparison
``identifier`` (:class:`mpi.comparisons.IdentifierComparison`) weighs it. Not evidence: the NHS number (its own
comparison and rules), priorscan's own ids (a regional id, the ids FHIR clients chose, the namespaces of client
ids), which say nothing of the person.
"""

from __future__ import annotations

from collections.abc import Iterable

from priorscan.trusts import NHS_NUMBER_SYSTEM

REGIONAL_ID_SYSTEM = "urn:priorscan:regional-patient-id"
#: Ids that clients chose for Patients with PUT (update as create) are kept as identifiers in this system.
FHIR_ID_SYSTEM = "urn:priorscan:fhir-patient-id"
CLIENT_NAMESPACE_PREFIX = "urn:priorscan:fhir-client:"
INTERNAL_SYSTEMS = frozenset({FHIR_ID_SYSTEM})
#: Marks a record's own key among its identifier tokens (``=system|value``).
OWN_KEY = "="


def is_evidence(system: str | None) -> bool:
    """Whether an identifier of ``system`` (a canonical namespace) may tell that two records are one person."""
    if not system:
        return False
    return not (system in INTERNAL_SYSTEMS or system in (NHS_NUMBER_SYSTEM, REGIONAL_ID_SYSTEM)
                or system.startswith(CLIENT_NAMESPACE_PREFIX))


def identifier_token(system: str, value: str) -> str:
    """``system|VALUE``: an identifier as compared (value upper-cased, white space removed; a token holds none)."""
    return f"{system.strip()}|{''.join(str(value).split()).upper()}"


def identifier_tokens(key: tuple[str, str] | None, further: Iterable[tuple[str, str]]) -> str | None:
    """A record's identifiers as stored in its match fields: its own key (marked :data:`OWN_KEY`) and its further
    identifiers, those of evidence systems only, as sorted tokens separated by spaces; None when there are none."""
    tokens: set[str] = set()
    own = None
    if key is not None and is_evidence(key[0]) and str(key[1]).strip():
        own = identifier_token(*key)
        tokens.add(OWN_KEY + own)
    for system, value in further:
        if is_evidence(system) and str(value).strip():
            token = identifier_token(system, value)
            if token != own:
                tokens.add(token)
    return " ".join(sorted(tokens)) or None


def split_tokens(stored: str) -> tuple[str | None, frozenset[str]]:
    """``(own key, further identifiers)`` of stored tokens, unmarked."""
    own = None
    further = set()
    for token in stored.split():
        if token.startswith(OWN_KEY):
            own = token[1:]
        else:
            further.add(token)
    return own, frozenset(further)


def all_tokens(stored: str | None) -> list[str]:
    """Every identifier of stored tokens, own key included, unmarked (for blocking and counting holders)."""
    return [token.removeprefix(OWN_KEY) for token in stored.split()] if stored else []


__all__ = ["CLIENT_NAMESPACE_PREFIX", "FHIR_ID_SYSTEM", "INTERNAL_SYSTEMS", "OWN_KEY", "REGIONAL_ID_SYSTEM",
           "all_tokens", "identifier_token", "identifier_tokens", "is_evidence", "split_tokens"]
