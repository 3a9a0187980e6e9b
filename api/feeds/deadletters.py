"""``priorscan deadletters list|replay``: rejected inputs, with their reasons, and trying them again.

Listing never prints the raw text (it holds patient data): only id, time, channel, content type, error code and the
reason, which by convention names fields, not values. Replay sends the raw text through the same services as the
feeds. An item accepted on replay is marked ``replayed``; one rejected again is dead-lettered afresh by its service
with the current reason, and the old row is then marked ``superseded`` so that one copy stays ``new``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from api.feeds.ingest import IngestHandlers, ServiceHandlers
from priorscan.audit import Agent
from priorscan.db import utcnow
from priorscan.errors import PriorscanError
from priorscan.outcome import ItemOutcome
from priorscan.tables import DeadLetter
from priorscan.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from api.context import AppContext
    from priorscan.cli import CliContext

REPLAY_AGENT = Agent("user", "cli")
REPLAY_CHANNEL = "replay"
REPLAYABLE = ("hl7v2", "fhir-json", "dicom-json")


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan deadletters list [--status new|replayed|superseded|discarded|all] [--limit N]``."""
    from priorscan.db import session_factory

    with session_factory(ctx.engine)() as session:
        query = select(DeadLetter).order_by(DeadLetter.received_at, DeadLetter.id)
        count = select(func.count()).select_from(DeadLetter)
        if args.status != "all":
            query = query.where(DeadLetter.status == args.status)
            count = count.where(DeadLetter.status == args.status)
        total = session.scalar(count) or 0
        rows = session.scalars(query.limit(max(args.limit, 0))).all()
        if rows:
            print(f"{'id':>7}  {'received_at':<25}  {'channel':<10}  {'content_type':<12}  {'error_code':<22}  reason")
        for row in rows:
            reason = re.sub(r"\s+", " ", row.reason or "").strip()
            print(f"{row.id:>7}  {row.received_at.isoformat(timespec='seconds'):<25}  {row.channel:<10}  "
                  f"{row.content_type:<12}  {row.error_code:<22}  {reason[:300]}")
    status = "any status" if args.status == "all" else f"status {args.status}"
    print(f"{len(rows)} of {total} dead letter(s) with {status} shown")
    return 0


@dataclass
class ReplayReport:
    """What became of each dead letter tried again."""

    accepted: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # id, error code, reason
    skipped: list[tuple[int, str]] = field(default_factory=list)  # id, why

    @property
    def exit_code(self) -> int:
        return 0 if not self.rejected and not self.skipped else 1

    def render(self) -> str:
        total = len(self.accepted) + len(self.rejected) + len(self.skipped)
        lines = [f"tried {total} dead letter(s): {len(self.accepted)} accepted and marked replayed, "
                 f"{len(self.rejected)} still rejected, {len(self.skipped)} skipped"]
        reasons = Counter((code, reason) for _, code, reason in self.rejected)
        for (code, reason), n in reasons.most_common():
            ids = [str(i) for i, c, r in self.rejected if (c, r) == (code, reason)][:10]
            lines.append(f"  {n:>5} × {reason} [{code}]  ids {', '.join(ids)}")
        for dead_id, why in self.skipped:
            lines.append(f"  skipped {dead_id}: {why}")
        return "\n".join(lines)


def _replay_one(context: AppContext, handlers: IngestHandlers, row: DeadLetter) -> list[ItemOutcome]:
    source = f"deadletter:{row.id}"
    if row.content_type == "hl7v2":
        return [handlers.hl7_message(context, row.raw, source=source)]
    value = json.loads(row.raw)
    if row.content_type == "fhir-json":
        return handlers.fhir_resource(context, value, source=source)
    return [handlers.dicom_json(context, value, source=source)]


def replay_dead_letters(context: AppContext, ids: Sequence[int] = (),
                        handlers: IngestHandlers | None = None) -> ReplayReport:
    """Try the dead letters ``ids`` again (every ``new`` one when empty), through ``handlers``.

    Parameters
    ----------
    context
        The opened store, settings and trusts.
    ids
        Dead-letter ids; those already replayed or discarded are skipped.
    handlers
        Who applies each kind (the HL7 and FHIR services and imaging adapters by default).
    """
    handlers = handlers or ServiceHandlers(agent=REPLAY_AGENT, channel=REPLAY_CHANNEL)
    report = ReplayReport()
    with unit_of_work(context.sessions) as session:  # which to replay: a read; each replay is a unit of its own
        if ids:
            found = {row.id: row for row in session.scalars(select(DeadLetter).where(DeadLetter.id.in_(list(ids))))}
            rows = []
            for dead_id in ids:
                row = found.get(dead_id)
                if row is None:
                    report.skipped.append((dead_id, "no such dead letter"))
                elif row.status != "new":
                    report.skipped.append((dead_id, f"status is {row.status}"))
                else:
                    rows.append(row)
        else:
            rows = list(session.scalars(select(DeadLetter).where(DeadLetter.status == "new")
                                        .order_by(DeadLetter.received_at, DeadLetter.id)))
    for row in rows:
        if row.content_type not in REPLAYABLE:
            report.skipped.append((row.id, f"content type {row.content_type} cannot be replayed"))
            continue
        try:
            outcomes = _replay_one(context, handlers, row)
        except ValueError:
            outcomes = [ItemOutcome.rejected(row.content_type, "the kept text is not valid JSON", "input.json")]
        except PriorscanError as exc:
            outcomes = [ItemOutcome.rejected(row.content_type, exc.message, exc.code)]
        except Exception as exc:  # a service fault: keep the dead letter, name the fault's type only
            outcomes = [ItemOutcome.rejected(row.content_type, f"internal error ({type(exc).__name__})", "internal")]
        failures = [o for o in outcomes if not o.accepted]
        with unit_of_work(context.sessions, write=True) as session:
            current = session.get(DeadLetter, row.id)
            if current is None:
                continue
            if outcomes and not failures:
                current.status, current.replayed_at = "replayed", utcnow()
                report.accepted.append(row.id)
            else:
                failure = failures[0] if failures else ItemOutcome.rejected(row.content_type, "nothing to apply")
                report.rejected.append((row.id, failure.error_code or "input", failure.reason or "rejected"))
                fresh = session.scalar(select(func.count()).select_from(DeadLetter).where(
                    DeadLetter.source == f"deadletter:{row.id}", DeadLetter.id != row.id,
                    DeadLetter.status == "new"))
                if fresh:
                    current.status, current.replayed_at = "superseded", utcnow()
    return report


def run_replay(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan deadletters replay [ID...]``: try the given dead letters (or every new one) again."""
    from api.context import AppContext

    context = AppContext.open(ctx.settings)
    try:
        report = replay_dead_letters(context, list(args.ids or []))
    finally:
        context.engine.dispose()
    print(report.render(), file=sys.stdout)
    return report.exit_code
