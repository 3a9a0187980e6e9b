"""The ``priorscan`` command line.

Each subcommand's work lives in the package that owns it; this module only parses arguments and dispatches, importing
the owner lazily so that ``priorscan --help`` stays fast and the core depends on no domain package. A handler is named
``package:function``, where ``package`` is the front of ``mpi``, ``imaging``, ``dedupe``, ``regionsynth`` or ``api``
(``api.COMMANDS`` says which of its modules serves each command), or a module of ``priorscan`` itself: never another
package's internals (``tests/test_cli.py`` holds this).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine

from priorscan.errors import PriorscanError
from priorscan.settings import Settings


@dataclass
class CliContext:
    """What every subcommand receives: the settings (``--db`` applied) and a lazily opened, migrated store."""

    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        from priorscan.db import open_store

        return open_store(self.settings.db)

    @cached_property
    def trusts(self):  # type: ignore[no-untyped-def]
        from priorscan.trusts import load_trusts

        return load_trusts(self.settings.trusts_file)


Handler = Callable[[argparse.Namespace, CliContext], int]


def _lazy(target: str) -> Handler:
    module_name, func_name = target.split(":")

    def handler(args: argparse.Namespace, ctx: CliContext) -> int:
        return int(getattr(importlib.import_module(module_name), func_name)(args, ctx) or 0)

    handler.target = target  # type: ignore[attr-defined]
    return handler


def _add_db(p: argparse.ArgumentParser, *, top: bool = False) -> None:
    # SUPPRESS on subcommands, so that `priorscan --db URL COMMAND` is not overwritten by the subcommand's default
    p.add_argument("--db", default=None if top else argparse.SUPPRESS,
                   help="database URL (default: PRIORSCAN_DB or sqlite:///./priorscan.db)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="priorscan", description="Regional imaging index and duplicate-scan detector")
    _add_db(parser, top=True)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(parent: argparse._SubParsersAction, name: str, target: str, help_text: str) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text)
        _add_db(p)
        p.set_defaults(handler=_lazy(target))
        return p

    p = cmd(sub, "demo", "api:run_demo", "build a synthetic five-trust region into SQLite and serve it")
    p.add_argument("--people", type=int, default=3000)
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--mllp-port", type=int, default=2575)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-serve", action="store_true", help="build the region and exit")

    p = cmd(sub, "serve", "api:run_serve",
            "serve HTTP (API, FHIR, CDS Hooks, STOW-RS, web page), MLLP and, with --dicom-port, DICOM C-STORE")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--mllp-port", type=int, default=2575, help="0 disables the MLLP listener")
    p.add_argument("--dicom-port", type=int, default=0,
                   help="serve a DICOM C-STORE SCP on this port (AE title PRIORSCAN or PRIORSCAN_DICOM_AE_TITLE)")
    p.add_argument("--mllp-tls-cert", metavar="PEM",
                   help="serve MLLP over TLS with this certificate (chain) (or PRIORSCAN_MLLP_TLS_CERT)")
    p.add_argument("--mllp-tls-key", metavar="PEM",
                   help="the private key of --mllp-tls-cert (or PRIORSCAN_MLLP_TLS_KEY)")
    p.add_argument("--mllp-tls-client-ca", metavar="PEM",
                   help="require MLLP senders to present a client certificate issued by these authorities (mutual "
                        "TLS; or PRIORSCAN_MLLP_TLS_CLIENT_CA)")
    p.add_argument("--workers", type=int, default=1)

    p = cmd(sub, "ingest", "api:run_ingest",
            "load HL7 v2, FHIR JSON/NDJSON, DICOM and DICOM JSON files or folders, detecting the format")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--no-progress", action="store_true")

    p = cmd(sub, "backfill", "api:run_ingest",
            "load a large extract in bulk (as ingest, in batches, resumable): identity written in bulk and linked by "
            "one batch relink, then imaging and orders")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--workers", type=int, default=None, help="worker processes reading items (default: one per core)")
    p.add_argument("--batch", type=int, default=5000, help="identity items per transaction")
    p.add_argument("--no-train", action="store_true", help="link with the model in use instead of training one")
    p.add_argument("--restart", action="store_true", help="forget where an earlier run of this load stopped")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(bulk=True)  # ingest's path in its bulk mode (api.feeds.ingest.load_paths)

    p = cmd(sub, "link", "mpi:run_link", "relink every source record with a freshly trained model")
    p.add_argument("--no-train", action="store_true", help="reuse the active model")
    p.add_argument("--engine", choices=("local", "spark"), default="local",
                   help="local: this process (the default); spark: Apache Spark, local[*] unless --master names a "
                        "cluster")
    p.add_argument("--master", metavar="URL", help="the Spark master (spark://host:7077, yarn, k8s://...)")
    p.add_argument("--driver-memory", metavar="SIZE", help="spark.driver.memory (512m, 2g) with --engine spark")

    p = cmd(sub, "evaluate", "mpi:run_evaluate", "measure linkage against ground truth")
    p.add_argument("--truth", required=False, help="persons.csv (person_id,system,value)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--report", metavar="DIR", help="write the accuracy charts (PNG) and summary.json into DIR")
    p.add_argument("--sample", type=int, default=0, metavar="N",
                   help="with --report: open N pairs near the match threshold as review items to label")

    p = cmd(sub, "status", "priorscan.cli:run_status",
            "each trust's feeds: last message, last hour's rate and errors, dead letters waiting, quiet feeds")
    p.add_argument("--json", action="store_true", help="print the feeds as JSON")

    p = cmd(sub, "migrate", "priorscan.cli:run_migrate", "bring the store's schema up to date")
    p.add_argument("--check", action="store_true",
                   help="change nothing: exit 0 when the schema is current, 1 when migrations are pending")

    p = cmd(sub, "backup", "priorscan.cli:run_backup",
            "copy the live store to a file (SQLite online backup; PostgreSQL pg_dump custom format)")
    p.add_argument("--out", required=True, help="the backup file to write (never overwritten)")
    p = cmd(sub, "restore", "priorscan.cli:run_restore",
            "load a backup into a new, empty store and migrate it to the current schema")
    p.add_argument("--from", dest="source", required=True, help="a file written by `priorscan backup`")

    export = sub.add_parser("export", help="export CSV to stdout").add_subparsers(dest="what", required=True)
    cmd(export, "xref", "mpi:run_export_xref", "regional_id,system,value,link_state per source identifier")
    cmd(export, "studies", "imaging:run_export_studies", "one row per study with its dose summary")
    p = cmd(export, "analytics", "dedupe:run_export_analytics",
            "the analysts' pseudonymised extract (studies, repeats, alerts) as Parquet or CSV files")
    p.add_argument("--out", required=True, help="directory to write studies, repeats and alerts into")
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    p.add_argument("--pseudonym-key-file", help="a secret key naming patients (default: a new one per extract)")

    p = cmd(sub, "synth", "regionsynth:run_synth", "write a synthetic five-trust region with its ground truth")
    p.add_argument("--people", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--years", type=int, default=5, help="years of imaging history")
    p.add_argument("--as-of", help="YYYY-MM-DD the region is described on (default: today)")

    token = sub.add_parser("token", help="API bearer tokens").add_subparsers(dest="what", required=True)
    p = cmd(token, "create", "api:run_token_create", "print a new bearer token")
    p.add_argument("--client", required=True)
    grp = p.add_mutually_exclusive_group(required=True)
    grp.add_argument("--scopes", help='space-separated scopes, e.g. "priorscan/duplicate-check system/Patient.rs"')
    grp.add_argument("--admin", action="store_true", help="grant every scope")
    p = cmd(token, "revoke", "api:run_token_revoke",
            "revoke every token of a client (other running processes: within 5 seconds)")
    p.add_argument("--client", required=True)

    smart = sub.add_parser("smart", help="SMART Backend Services clients (tokens at /oauth2/token)").add_subparsers(
        dest="what", required=True)
    p = cmd(smart, "register", "api:run_smart_register",
            "register (or update) a backend client by its public keys and the scopes it may be granted")
    p.add_argument("--client-id", required=True)
    keys = p.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks-file", help="the client's public JWKS (RS384 / ES384 keys)")
    keys.add_argument("--jwks-url", help="where the client publishes its JWKS (https; fetched at token requests)")
    p.add_argument("--scopes", required=True, help='space-separated, e.g. "system/Patient.rs system/ImagingStudy.rs"')
    p = cmd(smart, "disable", "api:run_smart_disable",
            "stop a backend client getting tokens and revoke those it holds")
    p.add_argument("--client-id", required=True)

    user = sub.add_parser("user", help="people who sign in to the web page").add_subparsers(dest="what", required=True)
    p = cmd(user, "create", "api:run_user_create", "add a person who signs in to the web page")
    p.add_argument("--username", required=True)
    p.add_argument("--password-stdin", action="store_true", required=True)
    p.add_argument("--role", required=True,
                   choices=["radiographer", "radiologist", "clinician", "admin", "analyst", "mpi-steward"])
    p.add_argument("--trust", help="ODS code of the person's trust")

    cds = sub.add_parser("cds", help="CDS Hooks clients").add_subparsers(dest="what", required=True)
    p = cmd(cds, "trust", "api:run_cds_trust", "trust a CDS client whose JWTs are signed by keys in a JWKS")
    p.add_argument("--iss", required=True)
    p.add_argument("--jwks-file", required=True)

    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="what", required=True)
    p = cmd(audit, "export", "priorscan.audit:run_audit_export", "write the audit trail as FHIR AuditEvent NDJSON")
    p.add_argument("--patient", metavar="REGIONAL_ID")

    dl = sub.add_parser("deadletters", help="rejected inputs").add_subparsers(dest="what", required=True)
    p = cmd(dl, "list", "api:run_deadletters_list", "list rejected inputs with their reasons")
    p.add_argument("--status", default="new")
    p.add_argument("--limit", type=int, default=100)
    p = cmd(dl, "replay", "api:run_deadletters_replay", "try rejected inputs again")
    p.add_argument("ids", nargs="*", type=int, help="dead-letter ids (default: every new one)")

    im = sub.add_parser("imaging", help="maintenance of the imaging index").add_subparsers(dest="what", required=True)
    p = cmd(im, "recheck-not-patient", "imaging:run_recheck_not_patient",
            "read every stored study again for what says it is a QA, physics or phantom test (not a patient's "
            "examination), with the current [not_patient] indicators; a person's decision is never overturned")
    p.add_argument("--batch", type=int, default=1000, help="studies per transaction (default 1000)")
    p.add_argument("--dry-run", action="store_true", help="print what would change and change nothing")
    p = cmd(im, "reread-procedures", "imaging:run_reread_procedures",
            "read every stored study's procedure (modality, body region, laterality, contrast) again from its stored "
            "code, description and modality with the current normaliser; run once after an upgrade")
    p.add_argument("--batch", type=int, default=1000, help="studies per transaction (default 1000)")
    p.add_argument("--dry-run", action="store_true", help="print what would change and change nothing")

    dw = sub.add_parser("dicomweb", help="index a PACS over DICOMweb").add_subparsers(dest="what", required=True)
    p = cmd(dw, "poll", "imaging:run_poll", "index new studies from a DICOMweb (QIDO-RS) server")
    p.add_argument("--url", required=True)
    p.add_argument("--once", action="store_true")
    p.add_argument("--interval", type=float, default=60.0)
    p.add_argument("--trust", metavar="ODS", help="qualify patient IDs that arrive without an issuer with this trust")
    p.add_argument("--recent-days", type=int, default=7, help="dates listed on every poll (default 7)")
    p.add_argument("--sweep-queries", type=int, default=50,
                   help="QIDO queries per poll spent re-listing older dates, so that late arrivals of any date are "
                        "found (default 50; every poll prints the bound this gives)")
    return parser


def run_migrate(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan migrate [--check]``: apply pending migrations, or (``--check``) only say whether any are pending
    (exit 1), for deploy pipelines."""
    from priorscan.db import make_engine, migrate
    from priorscan.maintenance import schema_status

    engine = make_engine(ctx.settings.db)
    try:
        before = schema_status(engine)
        if getattr(args, "check", False):
            print(before.describe())
            return 0 if before.up_to_date else 1
        if before.up_to_date:
            print(before.describe())
            return 0
        pending = before.pending
        migrate(engine)
        print(f"applied {len(pending)} migrations ({', '.join(pending)}); {schema_status(engine).describe()}")
        if "0015" in pending:  # the recheck reads the sites' indicators: an operator's run, not the schema's
            print("studies indexed before 0015 are not yet checked for QA, physics or phantom tests: run "
                  "`priorscan imaging recheck-not-patient`")
        return 0
    finally:
        engine.dispose()


def run_status(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan status [--json]``: feed health (exit 1 when a feed has gone quiet, for monitoring scripts)."""
    import json

    from priorscan.db import session_factory
    from priorscan.feed_health import feed_statuses, roll_up

    sessions = session_factory(ctx.engine)
    roll_up(sessions)
    with sessions() as session:
        statuses = feed_statuses(session, ctx.trusts)
    if getattr(args, "json", False):
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
    elif not statuses:
        print("no HL7 feed has sent anything yet")
    else:
        print(f"{'trust':6} {'feed':32} {'last message (UTC)':20} {'last hour':>9} {'refused':>7} {'dead letters':>12}"
              "  state")
        for s in statuses:
            when = s.last_message_at.strftime("%Y-%m-%d %H:%M:%S") if s.last_message_at else "-"
            name = f"{s.sending_application}@{s.sending_facility} {s.family}"[:32]
            state = "QUIET" if s.quiet else "ok"
            state += ("; " + "; ".join(s.notes)) if s.notes else ""
            print(f"{s.trust or '?':6} {name:32} {when:20} {s.messages_last_hour:>9} {s.rejected_last_hour:>7} "
                  f"{s.dead_letters_waiting:>12}  {state}")
    return 1 if any(s.quiet for s in statuses) else 0


def run_backup(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan backup --out FILE``."""
    from pathlib import Path

    from priorscan.audit import Agent, record
    from priorscan.db import session_factory
    from priorscan.maintenance import backup
    from priorscan.unit_of_work import unit_of_work

    written = backup(ctx.engine, Path(args.out))
    with unit_of_work(session_factory(ctx.engine)) as session:  # the copy holds every patient: audited
        record(session, Agent("user", "cli"), action="E", event_type="export", subtype="store-backup",
               detail={"bytes": written.stat().st_size})
    print(f"backed up the store to {written} ({written.stat().st_size:,} bytes)")
    return 0


def run_restore(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan restore --from FILE`` into the (empty) store of ``--db``."""
    from pathlib import Path

    from priorscan.db import make_engine
    from priorscan.maintenance import describe_url, restore, schema_status

    engine = make_engine(ctx.settings.db)
    try:
        restore(engine, Path(args.source))
        print(f"restored {args.source} into {describe_url(ctx.settings.db)}; {schema_status(engine).describe()}")
    finally:
        engine.dispose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {"db": args.db} if getattr(args, "db", None) else {}
    ctx: CliContext | None = None
    try:
        settings = Settings(**overrides)
        from priorscan.logs import configure

        configure("DEBUG" if args.verbose else settings.log_level, settings.log_format)
        ctx = CliContext(settings)
        return args.handler(args, ctx)
    except PriorscanError as exc:
        print(f"priorscan: error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    finally:
        if ctx is not None and "engine" in ctx.__dict__:
            ctx.engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
