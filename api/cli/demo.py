"""``priorscan demo``: build a synthetic five-trust region into SQLite, load it, and serve it.

Steps: write a region with :mod:`regionsynth` (next to the database, in ``demo-region/``), load it in bulk
(:func:`api.feeds.bulk_load.backfill_paths`, the stages of ``priorscan backfill``), relink every source record (the
provisional ones made by DICOM headers too) with a freshly trained model, create an admin token and a radiographer
at one trust, find a patient with a recent CT or X-ray that the duplicate check answers with a warning (when the
region holds none from the last 30 days, a repeat of its latest one is added, dated two days ago), raise one alert for
them (so the radiographer page has something to show), and print a ready-to-paste duplicate-check request that raises
another. Then serve, unless ``--no-serve``.

Rebuilding starts afresh: the previous demo database and region are removed, but only if they are a demo's (a store
whose audit trail records a demo build); any other file at that path is left alone and the command refuses.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import secrets
import shutil
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import make_url

from api.auth.accounts import create_user, issue_token
from api.context import AppContext
from api.feeds.bulk_load import backfill_paths
from priorscan.audit import Agent, record
from priorscan.errors import ConfigurationError, InputError
from priorscan.trusts import NHS_NUMBER_SYSTEM
from priorscan.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from priorscan.cli import CliContext

DEMO_AGENT = Agent("system", "priorscan-demo")
REGION_DIR = "demo-region"
SYNTH_YEARS = 5
#: No warning window of the default rule table is longer (REFERENCE.md); the duplicate check itself has the last word.
LOOK_BACK_DAYS = 30
CANDIDATES_TRIED = 20


@dataclass(frozen=True)
class DemoRequest:
    """A duplicate-check request expected to raise a warning, and whom it is for."""

    body: dict[str, Any]
    trust: str
    verified: bool
    alert_id: str | None = None


# --- starting afresh ------------------------------------------------------------------------------------------------

def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL; the demo refuses any other store."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        raise ConfigurationError("the demo builds into a SQLite file: give --db sqlite:///./demo.db",
                                 code="config.demo")
    return Path(parsed.database)


def is_demo_store(path: Path) -> bool:
    """Whether ``path`` is empty, or a store whose audit trail records a demo build."""
    if path.stat().st_size == 0:
        return True
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            tables = {row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")}
            if not tables:
                return True
            if "audit_event" not in tables:
                return False
            return conn.execute("select 1 from audit_event where event_type = 'demo' limit 1").fetchone() is not None
    except sqlite3.DatabaseError:
        return False


def start_afresh(db: Path, region: Path) -> None:
    """Remove the previous demo's database and region; refuse to touch anything that is not a demo's."""
    if db.exists() and not is_demo_store(db):
        raise ConfigurationError(f"{db} exists and is not a demo store; give another --db (e.g. sqlite:///./demo.db)",
                                 code="config.demo")
    if region.exists() and any(region.iterdir()) and not (region / "truth").is_dir():
        raise ConfigurationError(f"{region} exists and is not a synthetic region; move it away first",
                                 code="config.demo")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if region.exists():
        shutil.rmtree(region)


# --- steps ----------------------------------------------------------------------------------------------------------

def _entry_point(target: str) -> Callable[..., Any]:
    module_name, name = target.split(":")
    try:
        return getattr(importlib.import_module(module_name), name)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"the demo needs {module_name}.{name}, which is not available",
                                 code="config.demo") from exc


def _step(number: int, text: str) -> None:
    print(f"[{number}/6] {text}", flush=True)


def find_candidates(context: AppContext, today: date | None = None) -> list[dict[str, Any]]:
    """Patients with a completed CT or XR study in the last 30 days, most recent first.

    Which of them falls inside its warning window is for the duplicate check to say (:func:`choose_request` asks it);
    this only narrows the search.
    """
    from imaging import Study
    from mpi import RegionalPatient, SourceRecord

    today = today or date.today()
    query = (select(Study.modality, Study.body_region, Study.laterality, Study.study_date, Study.performing_trust,
                    RegionalPatient.id, RegionalPatient.nhs_number)
             .join(SourceRecord, Study.source_record_id == SourceRecord.id)
             .join(RegionalPatient, SourceRecord.regional_patient_id == RegionalPatient.id)
             .where(Study.status == "completed", Study.modality.in_(["CT", "XR"]), Study.body_region.is_not(None),
                    Study.not_patient.is_(None),
                    Study.study_date >= today - timedelta(days=LOOK_BACK_DAYS), Study.study_date <= today,
                    RegionalPatient.nhs_number.is_not(None))
             .order_by(Study.study_date.desc(), Study.modality, Study.id).limit(CANDIDATES_TRIED))
    found: list[dict[str, Any]] = []
    with unit_of_work(context.sessions) as session:
        for modality, region, laterality, _study_date, trust, regional_id, nhs in session.execute(query):
            trusts = {t for t in session.scalars(select(SourceRecord.trust_ods).where(
                SourceRecord.regional_patient_id == regional_id)) if t}
            elsewhere = sorted(trusts - {trust})
            found.append({"modality": modality, "bodySite": region, "laterality": laterality,
                          "nhs": nhs, "performing_trust": trust, "requesting_trust": (elsewhere or [trust])[0]})
    return found


def request_body(candidate: dict[str, Any], order_number: str | None) -> dict[str, Any]:
    """A duplicate-check request for ``candidate``; without an order number no order is recorded."""
    request: dict[str, Any] = {"modality": candidate["modality"], "bodySite": candidate["bodySite"],
                               "priority": "routine", "requestingTrust": candidate["requesting_trust"]}
    if order_number:
        request["placerOrderNumber"] = order_number
    if candidate.get("laterality") in ("left", "right", "both"):
        request["laterality"] = candidate["laterality"]
    return {"patient": {"identifiers": [{"system": NHS_NUMBER_SYSTEM, "value": candidate["nhs"]}]},
            "request": request}


#: How many days before today the study :func:`repeat_a_study` adds was performed.
REPEAT_DAYS_AGO = 2


def repeat_a_study(context: AppContext, today: date | None = None) -> str | None:
    """Add, through the FHIR ImagingStudy adapter, a repeat of the region's latest completed CT or X-ray (of a
    patient with an NHS number) performed :data:`REPEAT_DAYS_AGO` days ago: a small region, or one synthesised on a
    quiet stretch of its calendar, may hold no CT or X-ray from the last :data:`LOOK_BACK_DAYS` days, and the demo
    must still print a request that raises an alert. Returns what was added (modality and region), or None when the
    region holds no such study at all. Audited as the demo's agent."""
    from imaging import Study, apply_imaging_study, to_fhir
    from mpi import RegionalPatient, SourceRecord

    today = today or date.today()
    query = (select(Study, RegionalPatient.id)
             .join(SourceRecord, Study.source_record_id == SourceRecord.id)
             .join(RegionalPatient, SourceRecord.regional_patient_id == RegionalPatient.id)
             .where(Study.status == "completed", Study.modality.in_(["CT", "XR"]), Study.body_region.is_not(None),
                    Study.not_patient.is_(None), Study.study_date <= today, RegionalPatient.nhs_number.is_not(None))
             .order_by(Study.study_date.desc(), Study.modality, Study.id).limit(1))
    with unit_of_work(context.sessions) as session:
        row = session.execute(query).first()
        if row is None:
            return None
        study, regional_id = row
        resource = to_fhir(study, regional_id, context.trusts)
        for generated in ("id", "meta", "extension"):
            resource.pop(generated, None)
        suffix = secrets.token_hex(4).upper()
        resource["identifier"] = [{"system": "urn:dicom:uid", "value": f"urn:oid:2.25.{secrets.randbits(96)}"}, *(
            {**identifier, "value": f"DEMO{suffix}"} for identifier in resource["identifier"][1:])]
        resource["started"] = (today - timedelta(days=REPEAT_DAYS_AGO)).isoformat()
        if not resource.get("description") and not resource.get("procedureCode"):  # named as it was normalised
            side = study.laterality if study.laterality in ("left", "right") else None
            resource["description"] = " ".join(filter(None, (study.modality, side,
                                                             study.body_region.replace("-", " "))))
        outcome = apply_imaging_study(session, context.trusts, resource, agent=DEMO_AGENT)
        if not outcome.accepted:
            return None
        record(session, DEMO_AGENT, action="C", event_type="demo", subtype="repeat-study",
               regional_patient_id=regional_id, entity=f"ImagingStudy/{outcome.detail['studyInstanceUid']}")
        return f"{study.modality} {study.body_region}"


def choose_request(context: AppContext, token: str) -> DemoRequest | None:
    """A request that the running duplicate check answers with a warning (raising the first demo alert)."""
    candidates = find_candidates(context)
    if not candidates:
        added = repeat_a_study(context)
        if added is not None:
            print(f"  the region holds no CT or X-ray from the last {LOOK_BACK_DAYS} days: a repeat of its latest "
                  f"({added}) was added, performed {REPEAT_DAYS_AGO} days ago", flush=True)
            candidates = find_candidates(context)
    if not candidates:
        return None
    suffix = secrets.token_hex(3).upper()
    chosen = asyncio.run(_first_warning(context, token, candidates, suffix))
    if chosen is not None:
        return chosen
    first = candidates[0]
    return DemoRequest(request_body(first, f"DEMO-{suffix}-01"), first["requesting_trust"], False)


async def _first_warning(context: AppContext, token: str, candidates: list[dict[str, Any]],
                         suffix: str) -> DemoRequest | None:
    """Ask the app itself (in process, no socket) for each candidate until one gets a warning."""
    import httpx

    from api.http.app import create_app

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    transport = httpx.ASGITransport(app=create_app(context))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://demo.invalid", headers=headers) as client:
        for number, candidate in enumerate(candidates, start=1):
            # no order number: asking must not leave an outstanding order behind, which would itself be a prior
            body = request_body(candidate, None)
            response = await client.post("/api/v1/duplicate-check", json=body)
            if response.status_code in (404, 405):  # the duplicate check is not served (yet)
                return None
            if response.status_code == 200 and response.json().get("verdict") == "warning":
                return DemoRequest(request_body(candidate, f"DEMO-{suffix}-{number:02d}"),
                                   candidate["requesting_trust"], True, response.json().get("alertId"))
    return None


#: How the synthetic radiographers answer alerts (:func:`act_on_alerts`): shares of acknowledged, overridden,
#: cancelled; the rest stay open. Made up for demonstrations and the notebooks, not measured anywhere.
SYNTHETIC_ACTIONS = (("acknowledged", 0.45), ("overridden", 0.30), ("cancelled", 0.15))


def act_on_alerts(context: AppContext, *, seed: int = 7, keep_open: set[str] | None = None) -> dict[str, int]:
    """Answer the open alerts as synthetic radiographers would, so that a demonstration region has a history of
    acknowledgements, overrides (with the rule file's coded reasons) and cancellations (with the dose avoided).

    Deterministic for one ``seed`` and store; alerts in ``keep_open`` are left alone. Every step goes through the
    duplicate check's own alert functions, audited as user ``synthetic-radiographer``.
    """
    import random

    from dedupe import Coding, acknowledge, active_rules, cancel, list_alerts, override

    rng = random.Random(seed)
    rules = active_rules(context.settings.rules_file)
    agent = Agent("user", "synthetic-radiographer")
    done = {"acknowledged": 0, "overridden": 0, "cancelled": 0, "open": 0}
    with unit_of_work(context.sessions, write=True) as session:
        for alert in sorted(list_alerts(session, status="open", limit=100_000), key=lambda a: a.id):
            if keep_open and alert.id in keep_open:
                done["open"] += 1
                continue
            draw, action = rng.random(), "open"
            for name, share in SYNTHETIC_ACTIONS:
                if draw < share:
                    action = name
                    break
                draw -= share
            if action == "acknowledged":
                acknowledge(session, alert, user=agent.name, comment=None, agent=agent)
            elif action == "overridden":
                reason = rng.choice(rules.override_reasons)
                override(session, alert, rules, reason=Coding(reason.system, reason.code, reason.display),
                         comment="synthetic: clinical question differs from the prior's", user=agent.name,
                         agent=agent)
            elif action == "cancelled":
                cancel(session, alert, rules, user=agent.name, comment="synthetic: prior images reused",
                       agent=agent)
            done[action] += 1
    return done


def curl_command(base_url: str, token: str, body: dict[str, Any]) -> str:
    payload = json.dumps(body, separators=(",", ":")).replace("'", "'\\''")
    return (f"curl -sS -X POST {base_url}/api/v1/duplicate-check \\\n"
            f"  -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n"
            f"  -d '{payload}'")


def run_demo(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan demo [--people N] [--port P] [--mllp-port M] [--host H] [--seed S] [--no-serve]``."""
    db = sqlite_path(ctx.settings.db)
    region = db.resolve().parent / REGION_DIR
    start_afresh(db, region)
    interactive = sys.stderr.isatty()

    _step(1, f"writing a synthetic region of {args.people} people to {region}")
    context = AppContext.open(ctx.settings, background_checkpoint=True)
    with unit_of_work(context.sessions) as session:
        record(session, DEMO_AGENT, action="C", event_type="demo", subtype="build",
               detail={"people": args.people, "seed": args.seed})
    synth = _entry_point("regionsynth.cli:run_synth")
    status = synth(argparse.Namespace(people=args.people, out=str(region), seed=args.seed, years=SYNTH_YEARS,
                                      as_of=None, db=None), ctx)
    if status:
        return int(status)

    _step(2, "loading the region in bulk (identity, then imaging, then orders)")
    inputs = [p for p in sorted(region.iterdir()) if p.name != "truth"]
    # the bulk path (priorscan backfill): the same store as ingest gives, identity written in bulk and linked once
    report = backfill_paths(context, inputs, progress=interactive, train=False)
    print(report.render(), flush=True)

    _step(3, "relinking every source record with a freshly trained model")
    status = _entry_point("mpi.cli:run_link")(argparse.Namespace(no_train=False, db=None), ctx)
    if status:
        return int(status)

    _step(4, "creating an admin token")
    with unit_of_work(context.sessions) as session:
        token = issue_token(session, "demo-admin", ["*"], agent=DEMO_AGENT)

    _step(5, "finding a patient with a recent comparable study and raising a first alert")
    example = choose_request(context, token)
    trust = example.trust if example else context.trusts.ods_codes[0]

    _step(6, f"creating a radiographer at {trust}")
    username, password = f"radiographer.{trust.lower()}", secrets.token_urlsafe(12)
    try:
        with unit_of_work(context.sessions) as session:
            create_user(session, context.trusts, username=username, password=password, role="radiographer",
                        trust=trust, agent=DEMO_AGENT)
    except InputError as exc:
        raise ConfigurationError(f"could not create the demo radiographer: {exc.message}",
                                 code="config.demo") from exc

    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    base = f"http://{host}:{args.port}"
    lines = [
        "",
        "priorscan demo is ready",
        f"  radiographer page  {base}/ui/",
        f"  API docs           {base}/docs",
        f"  FHIR metadata      {base}/fhir/metadata",
        f"  MLLP               {host}:{args.mllp_port}" if args.mllp_port else "  MLLP               disabled",
        "",
        "admin token (every scope):",
        f"  {token}",
        "",
        f"radiographer sign-in at {trust} ({context.trusts.by_ods(trust).name}):",
        f"  username  {username}",
        f"  password  {password}",
        "",
    ]
    if example is None:
        lines.append("no recent CT or X-ray study was found to build a duplicate-check example")
    else:
        opened = " (one alert for this patient is already open on the radiographer page)" if example.alert_id else ""
        checked = "" if example.verified else " (not verified: the duplicate check did not answer with a warning)"
        lines += [f"a duplicate-check request that raises an alert{opened}{checked}:",
                  curl_command(base, token, example.body)]
    print("\n".join(lines), flush=True)
    if args.no_serve:
        context.engine.dispose()
        return 0
    from api.http.server import run_event_loop, serve
    from priorscan import metrics

    metrics.use_directory(ctx.settings.metrics_dir)
    try:
        return run_event_loop(serve(context, host=args.host, port=args.port, mllp_port=args.mllp_port,
                                    log_level=ctx.settings.log_level.lower()))
    finally:
        context.engine.dispose()
        metrics.release_directory()
