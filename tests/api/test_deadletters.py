"""``priorscan deadletters list|replay``: reasons without raw text; replay marks what now goes through."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_factories import ADT, fhir_patient, hl7
from sqlalchemy import select

from api.context import AppContext
from api.feeds.deadletters import replay_dead_letters
from priorscan.outcome import ItemOutcome
from priorscan.tables import DeadLetter

Cli = Callable[..., tuple[int, str, str]]
SECRET_NAME = "TESTER^ALEX"


def _letter(context: AppContext, **values: Any) -> int:
    defaults: dict[str, Any] = {"channel": "mllp", "content_type": "hl7v2", "source": "10.0.0.9",
                                "error_code": "hl7.trust", "reason": "PID-3 names no known trust",
                                "raw": hl7(ADT, "A1"), "received_at": datetime.now(UTC)}
    with context.sessions() as session:
        row = DeadLetter(**{**defaults, **values})
        session.add(row)
        session.commit()
        return row.id


def _statuses(context: AppContext) -> dict[int, str]:
    with context.sessions() as session:
        return {row.id: row.status for row in session.scalars(select(DeadLetter))}


def test_list_prints_reasons_but_never_the_raw_text(context: AppContext, run_cli: Cli) -> None:
    older = _letter(context, received_at=datetime.now(UTC) - timedelta(hours=1))
    newer = _letter(context, content_type="fhir-json", channel="fhir", error_code="fhir.invalid",
                    reason="Patient.birthDate is not a date", raw=json.dumps(fhir_patient()))
    done = _letter(context, status="replayed")
    status, out, _ = run_cli("--db", context.settings.db, "deadletters", "list")
    assert status == 0
    assert SECRET_NAME not in out and "Tester" not in out and "AB123456" not in out
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["id", "received_at", "channel", "content_type", "error_code", "reason"]
    assert [int(line.split()[0]) for line in lines[1:3]] == [older, newer]  # oldest first
    assert "Patient.birthDate is not a date" in out and "hl7.trust" in out
    assert str(done) not in [line.split()[0] for line in lines[1:-1]]
    assert lines[-1] == "2 of 2 dead letter(s) with status new shown"
    _, everything, _ = run_cli("--db", context.settings.db, "deadletters", "list", "--status", "all", "--limit", "1")
    assert everything.splitlines()[-1] == "1 of 3 dead letter(s) with any status shown"


class ReplayHandlers:
    """Fake services: accept what is marked good; reject (and dead-letter afresh, as the services do) the rest."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.seen: list[str] = []

    def _reject(self, kind: str, raw: str, source: str) -> ItemOutcome:
        _letter(self.context, channel="replay", source=source, raw=raw, reason="still wrong")
        return ItemOutcome.rejected(kind, "still wrong", "hl7.trust")

    def hl7_message(self, context: AppContext, raw: str, *, source: str) -> ItemOutcome:
        self.seen.append(source)
        return ItemOutcome.ok("ADT^A04") if "GOOD" in raw else self._reject("ADT^A04", raw, source)

    def fhir_resource(self, context: AppContext, resource: dict[str, Any], *, source: str) -> list[ItemOutcome]:
        self.seen.append(source)
        return [ItemOutcome.ok("Patient")]

    def dicom_file(self, context: AppContext, path: Any) -> ItemOutcome:  # never replayed
        raise AssertionError("DICOM files are not kept as dead letters")

    def dicom_json(self, context: AppContext, dataset: dict[str, Any], *, source: str) -> ItemOutcome:
        self.seen.append(source)
        return ItemOutcome.ok("DICOM JSON")


def test_replay_marks_accepted_items_and_supersedes_rejected_ones(context: AppContext) -> None:
    good = _letter(context, raw=hl7(ADT, "A1").replace("TESTER", "GOOD"))
    bad = _letter(context)
    fhir = _letter(context, content_type="fhir-json", raw=json.dumps(fhir_patient()))
    qido = _letter(context, content_type="dicom-json", raw=json.dumps({"0020000D": {"vr": "UI", "Value": ["1.2"]}}))
    broken = _letter(context, content_type="fhir-json", raw="{not json")
    binary = _letter(context, content_type="dicom", raw="")
    handlers = ReplayHandlers(context)
    report = replay_dead_letters(context, handlers=handlers)
    assert sorted(report.accepted) == sorted([good, fhir, qido])
    assert [(i, code) for i, code, _ in report.rejected] == [(bad, "hl7.trust"), (broken, "input.json")]
    assert report.skipped == [(binary, "content type dicom cannot be replayed")]
    assert report.exit_code == 1
    statuses = _statuses(context)
    assert statuses[good] == statuses[fhir] == statuses[qido] == "replayed"
    assert statuses[bad] == "superseded"  # the service kept a fresh copy with today's reason
    fresh = [i for i, s in statuses.items() if i > binary]
    assert len(fresh) == 1 and statuses[fresh[0]] == "new"
    assert statuses[broken] == "new"  # nothing replaced it: it stays
    assert f"deadletter:{good}" in handlers.seen


def test_replay_given_ids_only_and_skips_others(context: AppContext) -> None:
    first = _letter(context, raw=hl7(ADT, "A1").replace("TESTER", "GOOD"))
    second = _letter(context, raw=hl7(ADT, "A2").replace("TESTER", "GOOD"))
    done = _letter(context, status="replayed")
    report = replay_dead_letters(context, [second, done, 999], handlers=ReplayHandlers(context))
    assert report.accepted == [second]
    assert report.skipped == [(done, "status is replayed"), (999, "no such dead letter")]
    assert _statuses(context)[first] == "new"


def test_replay_command_prints_counts(context: AppContext, run_cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import api.feeds.deadletters

    _letter(context, raw=hl7(ADT, "A1").replace("TESTER", "GOOD"))
    original = api.feeds.deadletters.replay_dead_letters
    monkeypatch.setattr(api.feeds.deadletters, "replay_dead_letters",
                        lambda ctx, ids: original(ctx, ids, handlers=ReplayHandlers(ctx)))
    status, out, _ = run_cli("--db", context.settings.db, "deadletters", "replay")
    assert status == 0
    assert out.startswith("tried 1 dead letter(s): 1 accepted and marked replayed, 0 still rejected, 0 skipped")
