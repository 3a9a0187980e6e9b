"""The command line: every contract command answers --help, and --db works before or after the command."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from priorscan.cli import build_parser

CONTRACT_COMMANDS = ["demo", "serve", "ingest", "link", "export xref", "export studies", "synth", "token create",
                     "user create", "cds trust", "audit export", "evaluate", "deadletters list", "deadletters replay",
                     "dicomweb poll", "migrate"]


@pytest.mark.parametrize("command", CONTRACT_COMMANDS)
def test_every_contract_command_has_help(command: str) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([*command.split(), "--help"])
    assert exit_info.value.code == 0


@pytest.mark.parametrize("argv", [
    ["--db", "{url}", "migrate"],  # global option before the command
    ["migrate", "--db", "{url}"],  # option after the command
])
def test_db_option_is_honoured_wherever_it_stands(tmp_path: Path, argv: list[str]) -> None:
    db = tmp_path / "chosen.db"
    url = f"sqlite:///{db}"
    result = subprocess.run([sys.executable, "-m", "priorscan.cli", *[a.format(url=url) for a in argv]],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert db.exists()
    assert not (tmp_path / "priorscan.db").exists()


def test_audit_export_writes_ndjson_audit_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    first = subprocess.run([sys.executable, "-m", "priorscan.cli", "--db", url, "audit", "export"],
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    second = subprocess.run([sys.executable, "-m", "priorscan.cli", "--db", url, "audit", "export"],
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in second.stdout.splitlines() if line.strip()]
    assert lines, "the first export is itself audited"
    assert all('"resourceType":"AuditEvent"' in line for line in lines)


def test_audit_events_validate_as_fhir_r4(session) -> None:  # type: ignore[no-untyped-def]
    from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent

    from priorscan.audit import Agent, record, to_fhir

    event = record(session, Agent("client", "order-entry", "127.0.0.1"), action="R", event_type="rest",
                   subtype="read", regional_patient_id="RPABCDEFGHJK", entity="Patient/RPABCDEFGHJK",
                   outcome="4", detail={"why": "test"})
    session.commit()
    resource = to_fhir(event)
    FhirAuditEvent.model_validate(resource)
    assert resource["entity"][0]["what"]["reference"] == "Patient/RPABCDEFGHJK"


def _handlers(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, str]:
    """Every subcommand's handler target (``package:function``), by its command line."""
    found: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                handler = sub.get_default("handler")
                if handler is not None:
                    found[f"{prefix}{name}"] = handler.target
                found |= _handlers(sub, f"{prefix}{name} ")
    return found


def test_commands_reach_other_packages_through_their_fronts_only() -> None:
    """The core names no module of another package (api, mpi, imaging, dedupe, regionsynth): only their fronts, and
    each front serves the function named."""
    import importlib

    handlers = _handlers(build_parser())
    assert set(CONTRACT_COMMANDS) <= set(handlers)
    for command, target in handlers.items():
        module_name, function_name = target.split(":")
        assert module_name in {"api", "mpi", "imaging", "dedupe", "regionsynth"} or \
            module_name.startswith("priorscan."), (command, target)
        assert callable(getattr(importlib.import_module(module_name), function_name)), (command, target)


def test_reread_procedures_runs_on_an_empty_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    result = subprocess.run([sys.executable, "-m", "priorscan.cli", "--db", url, "imaging", "reread-procedures",
                             "--dry-run"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "0 studies read again" in result.stdout
