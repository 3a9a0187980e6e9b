"""imaging.identity: qualifying a patient identifier; an unqualified one is never attached to a guessed patient."""

from __future__ import annotations

import pytest

from imaging.identity import qualify, trust_for_institution
from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry

RTK = "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"


@pytest.mark.parametrize(("name", "ods"), [
    ("RTK", "RTK"),  # an alias
    ("Royal Surrey County Hospital", "RA2"),  # the ODS name with the generic words left out
    ("East Sussex Healthcare NHS Trust", "RXC"),
    ("Queen Victoria Hospital", "RPC"),
    ("JFK IMAGING CENTER", None), ("Sussex", None),  # another place; a word two trusts share
    # H-DICOM-05: another hospital whose name holds a trust's (was RPC: its hospital numbers under QVH's namespace)
    ("Queen Victoria Memorial Hospital", None), ("Queen Victoria Hospital Morecambe", None),
    ("Royal Surrey County Hospital - Radiology Dept", "RA2"), ("The Royal Surrey County Hospital X-Ray", "RA2"),
    ("Royal Surrey Hospital, Guildford", None),  # a place named: not guessed (the sender's trust qualifies it)
    ("", None), (None, None),
])
def test_trust_for_institution(trusts: TrustRegistry, name: str | None, ods: str | None) -> None:
    trust = trust_for_institution(trusts, name)
    assert (trust.ods if trust else None) == ods


@pytest.mark.parametrize(("kwargs", "namespace", "local_id"), [
    ({"patient_id": "AB1", "issuers": ["RTK"]}, RTK, "AB1"),  # a trust's DICOM issuer
    ({"patient_id": "AB1", "issuers": ["2.16.840.1.99.1"]}, "2.16.840.1.99.1", "AB1"),  # another issuer: kept as is
    ({"patient_id": "9434765919", "issuers": ["NHS"]}, NHS_NUMBER_SYSTEM, "9434765919"),
    ({"patient_id": "AB1", "issuers": [], "nhs_number": "9434765919"}, NHS_NUMBER_SYSTEM, "9434765919"),
])
def test_qualified(trusts: TrustRegistry, kwargs: dict, namespace: str, local_id: str) -> None:
    identity = qualify(trusts, fallback_trusts=[], **kwargs)
    assert (identity.namespace, identity.local_id) == (namespace, local_id)


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"patient_id": "AB1", "issuers": []}, "without an issuer"),
    ({"patient_id": "1234567890", "issuers": ["NHS"]}, "not a valid NHS number"),  # fails Modulus 11
    ({"patient_id": None, "issuers": ["RTK"]}, "no patient identifier"),
])
def test_unresolved(trusts: TrustRegistry, kwargs: dict, reason: str) -> None:
    identity = qualify(trusts, fallback_trusts=[], **kwargs)
    assert not identity.resolved and reason in (identity.unresolved or "")
    assert (kwargs["patient_id"] or "@") not in identity.unresolved  # the reason names no identifier


def test_a_fallback_trust_qualifies_an_identifier_without_issuer(trusts: TrustRegistry) -> None:
    identity = qualify(trusts, patient_id="K1234567", issuers=[], fallback_trusts=[None, trusts.by_ods("RYR")])
    assert (identity.namespace, identity.trust_ods, identity.qualified_by) == (
        "https://fhir.uhsussex.nhs.uk/Id/hospital-number", "RYR", "sender")
