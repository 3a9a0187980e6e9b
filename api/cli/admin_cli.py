"""Administration from the command line: ``token create|revoke``, ``user create``, ``cds trust`` and
``smart register|disable`` (SMART backend clients).

Each command checks its input, writes in one transaction with an audit event (never a secret), and returns the exit
status: 0 on success, 2 when the input is refused (with a message on stderr that says what to change).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.auth.accounts import (
    backend_scopes,
    check_jwks_url,
    create_user,
    disable_backend_client,
    issue_token,
    parse_scopes,
    register_backend_client,
    revoke_tokens,
)
from priorscan.audit import Agent, record
from priorscan.db import session_factory
from priorscan.errors import InputError
from priorscan.jwks import check_jwks, read_jwks_file
from priorscan.tables import CdsTrustedIssuer
from priorscan.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from priorscan.cli import CliContext

CLI_AGENT = Agent("user", "cli")
EXIT_REFUSED = 2


def _refuse(message: str) -> int:
    print(f"priorscan: {message}", file=sys.stderr)
    return EXIT_REFUSED


def run_token_create(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan token create --client NAME (--scopes "..." | --admin)``: print a new bearer token, last."""
    try:
        scopes = ["*"] if args.admin else parse_scopes(args.scopes or "")
        with unit_of_work(session_factory(ctx.engine)) as session:
            token = issue_token(session, args.client, scopes, agent=CLI_AGENT)
    except InputError as exc:
        return _refuse(exc.message)
    print(f"token for {args.client.strip()} (scopes {' '.join(scopes)}):\n{token}")
    return 0


def run_token_revoke(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan token revoke --client NAME``: revoke every live token of the client.

    A server running in another process stops accepting them within :data:`api.http.deps.TOKEN_CACHE_SECONDS`.
    """
    client = (args.client or "").strip()
    if not client:
        return _refuse("give the client name (--client)")
    with unit_of_work(session_factory(ctx.engine)) as session:
        count = revoke_tokens(session, client, agent=CLI_AGENT)
    print(f"revoked {count} token(s) of {client}")
    return 0


def run_smart_register(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan smart register --client-id ID (--jwks-file FILE | --jwks-url URL) --scopes "..."``.

    Registers (or re-keys, re-scopes and re-enables) a SMART Backend Services client. A JWKS file is checked and
    stored; a JWKS URL is checked for form and stored as given, and fetched when the client asks for a token.
    """
    try:
        scopes = backend_scopes(args.scopes or "")
        if args.jwks_file:
            checked = check_jwks(read_jwks_file(args.jwks_file))
            jwks, url, skipped = checked.jwks, None, checked.skipped
        else:
            jwks, url, skipped = None, check_jwks_url(args.jwks_url or ""), []
        with unit_of_work(session_factory(ctx.engine)) as session:
            registered = register_backend_client(session, args.client_id, scopes, agent=CLI_AGENT, jwks=jwks,
                                                 jwks_url=url)
    except InputError as exc:
        return _refuse(exc.message)
    except IntegrityError:  # registered by someone else in between
        return _refuse(f"client {args.client_id.strip()!r} was registered at the same time; run again to update it")
    for reason in skipped:
        print(f"priorscan: left out {reason}", file=sys.stderr)
    verb = "registered" if registered.created else "updated"
    keys = f"keys at {url}" if url else f"{len(jwks['keys']) if jwks else 0} key(s)"
    print(f"{verb} SMART backend client {registered.client_id} ({keys}; scopes {' '.join(scopes)})")
    return 0


def run_smart_disable(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan smart disable --client-id ID``: no more tokens for the client, and those it holds revoked."""
    with unit_of_work(session_factory(ctx.engine)) as session:
        count = disable_backend_client(session, args.client_id, agent=CLI_AGENT)
    if count is None:
        return _refuse(f"no SMART backend client {args.client_id.strip()!r}")
    print(f"disabled SMART backend client {args.client_id.strip()} and revoked {count} token(s)")
    return 0


def read_password(stream: TextIO | None = None) -> str:
    """The first line of ``stream`` (stdin by default), without its line end."""
    return (stream or sys.stdin).readline().rstrip("\r\n")


def run_user_create(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan user create --username U --password-stdin --role ROLE [--trust ODS]``."""
    password = read_password()
    try:
        with unit_of_work(session_factory(ctx.engine)) as session:
            user = create_user(session, ctx.trusts, username=args.username, password=password, role=args.role,
                               trust=args.trust, agent=CLI_AGENT)
    except InputError as exc:
        return _refuse(exc.message)
    except IntegrityError:  # someone else added the same name in between
        return _refuse(f"a user named {args.username.strip().lower()!r} already exists")
    at = f" at {user.trust_ods}" if user.trust_ods else ""
    print(f"user {user.username} created ({user.role}{at})")
    return 0


def run_cds_trust(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan cds trust --iss ISSUER --jwks-file FILE``: trust (or re-key) a CDS client."""
    issuer = (args.iss or "").strip()
    if not issuer or len(issuer) > 500:
        return _refuse("the issuer (--iss) must be 1 to 500 characters")
    try:
        checked = check_jwks(read_jwks_file(args.jwks_file))
    except InputError as exc:
        return _refuse(exc.message)
    with unit_of_work(session_factory(ctx.engine)) as session:
        row = session.scalars(select(CdsTrustedIssuer).where(CdsTrustedIssuer.issuer == issuer)).first()
        action = "U" if row is not None else "C"
        if row is None:
            row = CdsTrustedIssuer(issuer=issuer, jwks=checked.jwks)
            session.add(row)
        else:
            row.jwks = checked.jwks
        session.flush()
        record(session, CLI_AGENT, action=action, event_type="security", subtype="cds-trust",
               entity=f"cds-issuer/{row.id}", detail={"issuer": issuer, "kids": checked.key_ids})
    for reason in checked.skipped:
        print(f"priorscan: left out {reason}", file=sys.stderr)
    verb = "updated" if action == "U" else "trusted"
    print(f"{verb} CDS client {issuer} with {len(checked.keys)} key(s)")
    return 0
