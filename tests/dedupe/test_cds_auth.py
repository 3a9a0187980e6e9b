"""The CDS client JWT check against each backend: a jti is accepted once, by every worker (the database decides)."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import Engine, select

from dedupe import verify_cds_jwt
from priorscan.db import session_factory
from priorscan.errors import AuthError
from priorscan.tables import CdsSeenJti, CdsTrustedIssuer

ISSUER = "https://ehr.example.nhs.uk"
AUDIENCE = "https://priorscan.example.nhs.uk/cds-services/order-sign"
KEY = ec.generate_private_key(ec.SECP384R1())


def token(**claims: object) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60, "jti": str(uuid.uuid4()), **claims}
    return jwt.encode(body, KEY, algorithm="ES384")


def test_a_jti_is_accepted_once_and_recorded(engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions() as session:
        session.add(CdsTrustedIssuer(issuer=ISSUER, jwks={"keys": [ECAlgorithm.to_jwk(KEY.public_key(),
                                                                                       as_dict=True)]}))
        session.commit()
    first = token(jti="once")
    client = verify_cds_jwt(first, sessions, audiences=[AUDIENCE])
    assert (client.issuer, client.jti) == (ISSUER, "once")
    with pytest.raises(AuthError, match="replay"):
        verify_cds_jwt(first, sessions, audiences=[AUDIENCE])
    other = token(jti="twice")
    verify_cds_jwt(other, sessions, audiences=[AUDIENCE])
    with sessions() as session:
        assert sorted(session.scalars(select(CdsSeenJti.jti))) == ["once", "twice"]
    with pytest.raises(AuthError, match="aud does not name this service"):
        verify_cds_jwt(token(), sessions, audiences=["https://elsewhere.example"])
