"""``priorscan token create|revoke``, ``user create``, ``cds trust`` and ``smart register|disable``: what they store,
print, audit and refuse."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from api.auth.accounts import verify_password
from api.http.deps import token_hash
from priorscan.tables import ApiClient, AuditEvent, CdsTrustedIssuer, SmartBackendClient, UserAccount

Cli = Callable[..., tuple[int, str, str]]


def _rows(url: str, model: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return list(session.scalars(select(model)))
    finally:
        engine.dispose()


def _audit_text(url: str) -> str:
    return json.dumps([[e.event_type, e.subtype, e.agent_name, e.entity, e.detail] for e in _rows(url, AuditEvent)])


# --- tokens ---------------------------------------------------------------------------------------------------------

def test_token_is_printed_last_and_only_its_hash_is_kept(store_url: str, run_cli: Cli) -> None:
    status, out, err = run_cli("--db", store_url, "token", "create", "--client", "order-comms", "--scopes",
                               "priorscan/duplicate-check system/Patient.rs")
    assert status == 0, err
    token = out.split()[-1]
    assert token.startswith("ps_") and len(token) > 40
    assert "order-comms" in out and "priorscan/duplicate-check" in out
    (client,) = _rows(store_url, ApiClient)
    assert client.name == "order-comms"
    assert client.scopes == ["priorscan/duplicate-check", "system/Patient.rs"]
    assert client.token_hash == token_hash(token) and token not in client.token_hash
    audit = _audit_text(store_url)
    assert "token-create" in audit and token not in audit and token_hash(token) not in audit


def test_admin_token_grants_every_scope(sqlite_url: str, run_cli: Cli) -> None:
    status, out, _ = run_cli("--db", sqlite_url, "token", "create", "--client", "ops", "--admin")
    assert status == 0
    (client,) = _rows(sqlite_url, ApiClient)
    assert client.scopes == ["*"] and client.token_hash == token_hash(out.split()[-1])


@pytest.mark.parametrize("scopes", ["bogus", "system/Patient.rs made-up", "   "])
def test_unknown_or_no_scopes_are_refused(sqlite_url: str, run_cli: Cli, scopes: str) -> None:
    status, out, err = run_cli("--db", sqlite_url, "token", "create", "--client", "x", "--scopes", scopes)
    assert status == 2
    assert "scope" in err and out == ""
    assert _rows(sqlite_url, ApiClient) == []


def test_token_command_needs_scopes_or_admin(sqlite_url: str, run_cli: Cli) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--db", sqlite_url, "token", "create", "--client", "x")
    assert exit_info.value.code == 2


# --- users ----------------------------------------------------------------------------------------------------------

def test_user_create_reads_the_password_from_stdin(store_url: str, run_cli: Cli) -> None:
    password = "a long enough passphrase"
    status, out, err = run_cli("--db", store_url, "user", "create", "--username", "Rad.One", "--password-stdin",
                               "--role", "radiographer", "--trust", "rtk", stdin=password + "\nignored second line\n")
    assert status == 0, err
    assert "rad.one" in out and password not in out
    (user,) = _rows(store_url, UserAccount)
    assert (user.username, user.role, user.trust_ods, user.active) == ("rad.one", "radiographer", "RTK", True)
    assert user.password_hash.startswith("scrypt$") and password not in user.password_hash
    assert verify_password(password, user.password_hash)
    assert not verify_password(password + "x", user.password_hash)
    audit = _audit_text(store_url)
    assert "user-create" in audit and password not in audit


def test_user_create_takes_every_role_of_the_web_page(sqlite_url: str, run_cli: Cli) -> None:
    """The contract names mpi-steward (the identity review queue) among the roles; the command refused it."""
    from api.auth.accounts import ROLE_SCOPES, ROLES_NEEDING_TRUST

    for role in ROLE_SCOPES:
        trust = ["--trust", "RTK"] if role in ROLES_NEEDING_TRUST else []
        status, _, err = run_cli("--db", sqlite_url, "user", "create", "--username", f"user-{role}", "--password-stdin",
                                 "--role", role, *trust, stdin="a long enough passphrase\n")
        assert status == 0, (role, err)
    assert {user.role for user in _rows(sqlite_url, UserAccount)} == set(ROLE_SCOPES)


def test_same_password_gets_different_salts(sqlite_url: str, run_cli: Cli) -> None:
    for name in ("a.one", "b.two"):
        assert run_cli("--db", sqlite_url, "user", "create", "--username", name, "--password-stdin", "--role",
                       "analyst", stdin="same password for both\n")[0] == 0
    first, second = _rows(sqlite_url, UserAccount)
    assert first.password_hash != second.password_hash


@pytest.mark.parametrize(("argv", "stdin", "message"), [
    (["--username", "rad.two", "--role", "radiographer", "--trust", "RTK"], "\n", "empty"),
    (["--username", "rad.two", "--role", "radiographer", "--trust", "RTK"], "", "empty"),  # no line at all
    (["--username", "rad.two", "--role", "radiographer", "--trust", "RTK"], "short\n", "too short"),
    (["--username", "rad.two", "--role", "radiographer", "--trust", "XYZ"], "long enough password\n", "unknown trust"),
    (["--username", "rad.two", "--role", "radiographer"], "long enough password\n", "--trust"),  # works at one trust
    (["--username", "x", "--role", "analyst"], "long enough password\n", "username"),  # too short a name
    (["--username", "has space", "--role", "analyst"], "long enough password\n", "username"),
])
def test_user_create_refuses_with_a_clear_message(sqlite_url: str, run_cli: Cli, argv: list[str], stdin: str,
                                                  message: str) -> None:
    status, _, err = run_cli("--db", sqlite_url, "user", "create", "--password-stdin", *argv, stdin=stdin)
    assert status == 2
    assert message in err
    assert _rows(sqlite_url, UserAccount) == []


def test_duplicate_username_is_refused(store_url: str, run_cli: Cli) -> None:
    argv = ("--db", store_url, "user", "create", "--username", "rad.one", "--password-stdin", "--role", "clinician",
            "--trust", "RA2")
    assert run_cli(*argv, stdin="first password here\n")[0] == 0
    status, _, err = run_cli(*argv[:5], "RAD.ONE", *argv[6:], stdin="second password here\n")
    assert status == 2 and "already exists" in err
    (user,) = _rows(store_url, UserAccount)
    assert verify_password("first password here", user.password_hash)


# --- CDS clients ----------------------------------------------------------------------------------------------------

def _jwk(key: Any, **extra: Any) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey) else ECAlgorithm
    return {**json.loads(algorithm.to_jwk(key)), **extra}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _write(tmp_path: Path, jwks: Any) -> str:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    return str(path)


def test_cds_trust_stores_rsa_and_ec_public_keys(store_url: str, run_cli: Cli, tmp_path: Path,
                                                 rsa_key: rsa.RSAPrivateKey,
                                                 ec_key: ec.EllipticCurvePrivateKey) -> None:
    jwks = {"keys": [_jwk(rsa_key.public_key(), kid="r1", alg="RS384", use="sig"),
                     _jwk(ec_key.public_key(), kid="e1")]}
    status, out, err = run_cli("--db", store_url, "cds", "trust", "--iss", "https://ehr.example.nhs.uk",
                               "--jwks-file", _write(tmp_path, jwks))
    assert status == 0, err
    assert "2 key(s)" in out
    (issuer,) = _rows(store_url, CdsTrustedIssuer)
    assert issuer.issuer == "https://ehr.example.nhs.uk"
    assert [k["kid"] for k in issuer.jwks["keys"]] == ["r1", "e1"]
    assert "cds-trust" in _audit_text(store_url)


def test_cds_trust_again_replaces_the_keys(sqlite_url: str, run_cli: Cli, tmp_path: Path, rsa_key: rsa.RSAPrivateKey,
                                           ec_key: ec.EllipticCurvePrivateKey) -> None:
    argv = ("--db", sqlite_url, "cds", "trust", "--iss", "ehr-1", "--jwks-file")
    assert run_cli(*argv, _write(tmp_path, {"keys": [_jwk(rsa_key.public_key(), kid="old")]}))[0] == 0
    status, out, _ = run_cli(*argv, _write(tmp_path, {"keys": [_jwk(ec_key.public_key(), kid="new")]}))
    assert status == 0 and "updated" in out
    (issuer,) = _rows(sqlite_url, CdsTrustedIssuer)
    assert [k["kid"] for k in issuer.jwks["keys"]] == ["new"]


def test_cds_trust_leaves_out_unusable_keys_but_keeps_good_ones(sqlite_url: str, run_cli: Cli, tmp_path: Path,
                                                                rsa_key: rsa.RSAPrivateKey) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    jwks = {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}, _jwk(p256, kid="p256"),
                     _jwk(rsa_key.public_key(), kid="good")]}
    status, _, err = run_cli("--db", sqlite_url, "cds", "trust", "--iss", "ehr", "--jwks-file",
                             _write(tmp_path, jwks))
    assert status == 0
    assert "HMAC" in err and "P-384" in err and "c2VjcmV0" not in err
    (issuer,) = _rows(sqlite_url, CdsTrustedIssuer)
    assert [k["kid"] for k in issuer.jwks["keys"]] == ["good"]


@pytest.mark.parametrize(("jwks", "message"), [
    ({"keys": [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldA", "kid": "h1"},
               {"kty": "oct", "k": "b3RoZXItc2VjcmV0", "alg": "HS256"}]}, "HMAC"),  # HMAC only: never
    ({"keys": []}, "keys"),
    ({"not": "a jwks"}, "keys"),
    ([1, 2, 3], "JSON object"),
    ({"keys": [{"kty": "RSA", "n": "abc", "e": "AQAB"}]}, "usable"),  # garbage modulus
])
def test_cds_trust_refuses_jwks_without_usable_public_keys(sqlite_url: str, run_cli: Cli, tmp_path: Path,
                                                           jwks: Any, message: str) -> None:
    status, _, err = run_cli("--db", sqlite_url, "cds", "trust", "--iss", "ehr", "--jwks-file",
                             _write(tmp_path, jwks))
    assert status == 2
    assert message in err
    assert "c2VjcmV0" not in err  # never echoes key material
    assert _rows(sqlite_url, CdsTrustedIssuer) == []


def test_cds_trust_refuses_private_keys(sqlite_url: str, run_cli: Cli, tmp_path: Path,
                                        rsa_key: rsa.RSAPrivateKey) -> None:
    status, _, err = run_cli("--db", sqlite_url, "cds", "trust", "--iss", "ehr", "--jwks-file",
                             _write(tmp_path, {"keys": [_jwk(rsa_key, kid="oops")]}))
    assert status == 2 and "private" in err
    assert _rows(sqlite_url, CdsTrustedIssuer) == []


def test_cds_trust_refuses_unreadable_files(sqlite_url: str, run_cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert run_cli("--db", sqlite_url, "cds", "trust", "--iss", "e", "--jwks-file", str(bad))[0] == 2
    assert run_cli("--db", sqlite_url, "cds", "trust", "--iss", "e", "--jwks-file", str(tmp_path / "none"))[0] == 2


# --- token revocation -----------------------------------------------------------------------------------------------

def test_token_revoke_revokes_every_token_of_the_client_and_audits_it(store_url: str, run_cli: Cli) -> None:
    for client in ("order-comms", "order-comms", "pas"):
        assert run_cli("--db", store_url, "token", "create", "--client", client, "--scopes", "priorscan/alerts")[0] == 0
    status, out, _ = run_cli("--db", store_url, "token", "revoke", "--client", "order-comms")
    assert status == 0 and "revoked 2 token(s) of order-comms" in out
    revoked = {(c.name, c.revoked_at is not None) for c in _rows(store_url, ApiClient)}
    assert revoked == {("order-comms", True), ("pas", False)}
    assert "token-revoke" in _audit_text(store_url)
    assert run_cli("--db", store_url, "token", "revoke", "--client", "order-comms")[1].startswith("revoked 0")


# --- SMART backend clients ------------------------------------------------------------------------------------------

def test_smart_register_stores_public_keys_and_scopes(store_url: str, run_cli: Cli, tmp_path: Path,
                                                       ec_key: ec.EllipticCurvePrivateKey) -> None:
    jwks = {"keys": [_jwk(ec_key.public_key(), kid="e1", alg="ES384", use="sig")]}
    argv = ("--db", store_url, "smart", "register", "--client-id", "ris-1", "--jwks-file", _write(tmp_path, jwks))
    status, out, err = run_cli(*argv, "--scopes", "system/Patient.rs system/ImagingStudy.rs")
    assert status == 0, err
    assert "registered SMART backend client ris-1" in out
    (client,) = _rows(store_url, SmartBackendClient)
    assert client.scopes == ["system/Patient.rs", "system/ImagingStudy.rs"]
    assert [k["kid"] for k in client.jwks["keys"]] == ["e1"] and client.jwks_url is None
    status, out, _ = run_cli(*argv, "--scopes", "system/Patient.rs")  # again: an update, not a second client
    assert status == 0 and "updated" in out
    (client,) = _rows(store_url, SmartBackendClient)
    assert client.scopes == ["system/Patient.rs"]
    assert _audit_text(store_url).count("smart-client-register") == 2


def test_smart_register_keeps_a_jwks_url_as_given(sqlite_url: str, run_cli: Cli) -> None:
    url = "https://ris.example.nhs.uk/.well-known/jwks.json"
    status, out, err = run_cli("--db", sqlite_url, "smart", "register", "--client-id", "ris-2", "--jwks-url", url,
                               "--scopes", "priorscan/duplicate-check")
    assert status == 0, err
    (client,) = _rows(sqlite_url, SmartBackendClient)
    assert client.jwks_url == url and client.jwks is None


@pytest.mark.parametrize(("extra", "message"), [
    (("--jwks-url", "http://ris.example.nhs.uk/jwks.json", "--scopes", "system/Patient.rs"), "https"),  # cleartext
    (("--jwks-url", "https://ris.example/jwks", "--scopes", "*"), "admin scope"),  # never admin over SMART
    (("--jwks-url", "https://ris.example/jwks", "--scopes", "made/up"), "unknown scope"),
])
def test_smart_register_refuses(sqlite_url: str, run_cli: Cli, extra: tuple[str, ...], message: str) -> None:
    status, _, err = run_cli("--db", sqlite_url, "smart", "register", "--client-id", "ris-3", *extra)
    assert status == 2 and message in err
    assert _rows(sqlite_url, SmartBackendClient) == []


def test_smart_register_refuses_private_keys(sqlite_url: str, run_cli: Cli, tmp_path: Path,
                                             ec_key: ec.EllipticCurvePrivateKey) -> None:
    status, _, err = run_cli("--db", sqlite_url, "smart", "register", "--client-id", "ris-4", "--jwks-file",
                             _write(tmp_path, {"keys": [_jwk(ec_key)]}), "--scopes", "system/Patient.rs")
    assert status == 2 and "private key" in err


def test_smart_disable_of_an_unknown_client_is_refused(sqlite_url: str, run_cli: Cli) -> None:
    status, _, err = run_cli("--db", sqlite_url, "smart", "disable", "--client-id", "nobody")
    assert status == 2 and "no SMART backend client" in err
