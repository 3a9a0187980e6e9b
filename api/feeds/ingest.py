"""``priorscan ingest PATH...``: load files and folders of HL7 v2, FHIR JSON/NDJSON, DICOM and DICOM JSON.

Formats are told by content (:mod:`api.feeds.ingest_formats`). Loading runs in three phases so that identity arrives
before studies and studies before orders (see :class:`api.feeds.ingest_formats.Phase`); each phase re-reads the files
that may hold its items, one file at a time, so memory does not grow with the size of the input.

Each item goes to the handler that owns its kind (HL7 service, FHIR service, imaging adapters); handlers open their
own sessions, commit, and dead-letter what they reject. Whatever goes wrong here or in a handler is counted as a
rejection with its reason: nothing is dropped silently. The exit status is 0 when nothing was rejected, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from api.feeds.ingest_formats import (
    FORMAT_PHASES,
    Detected,
    FileFormat,
    Phase,
    detect,
    dicom_json_items,
    fhir_json_items,
    hl7_messages,
    ndjson_items,
)
from priorscan.audit import Agent
from priorscan.errors import PriorscanError
from priorscan.hl7v2 import CHARSET_ERROR
from priorscan.outcome import ItemOutcome
from priorscan.tables import DeadLetter
from priorscan.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from api.context import AppContext
    from priorscan.cli import CliContext

log = logging.getLogger(__name__)

INGEST_AGENT = Agent("feed", "priorscan-ingest")
INGEST_CHANNEL = "ingest"
EXAMPLES_PER_REASON = 3


# --- handlers -------------------------------------------------------------------------------------------------------

class IngestHandlers(Protocol):
    """Who applies each kind of item; :data:`DEFAULT_HANDLERS` calls the services, tests inject fakes."""

    def hl7_message(self, context: AppContext, raw: str, *, source: str) -> ItemOutcome: ...

    def fhir_resource(self, context: AppContext, resource: dict[str, Any], *, source: str) -> list[ItemOutcome]: ...

    def dicom_file(self, context: AppContext, path: Path) -> ItemOutcome: ...

    def dicom_json(self, context: AppContext, dataset: dict[str, Any], *, source: str) -> ItemOutcome: ...


class ServiceHandlers:
    """The real handlers, imported when first used (they belong to other packages)."""

    def __init__(self, agent: Agent = INGEST_AGENT, channel: str = INGEST_CHANNEL) -> None:
        self.agent = agent
        self.channel = channel

    def hl7_message(self, context: AppContext, raw: str, *, source: str) -> ItemOutcome:
        from api.feeds.hl7_service import process_message

        return process_message(context, raw, channel=self.channel, agent=self.agent, source=source)

    def fhir_resource(self, context: AppContext, resource: dict[str, Any], *, source: str) -> list[ItemOutcome]:
        from api.feeds.fhir_service import process_resource

        return list(process_resource(context, resource, agent=self.agent, source=source, channel=self.channel))

    def dicom_file(self, context: AppContext, path: Path) -> ItemOutcome:
        from imaging import ingest_dicom_file

        return ingest_dicom_file(context.sessions, context.trusts, path, agent=self.agent)

    def dicom_json(self, context: AppContext, dataset: dict[str, Any], *, source: str) -> ItemOutcome:
        from imaging import ingest_dicom_json

        return ingest_dicom_json(context.sessions, context.trusts, dataset, agent=self.agent, source=source)


DEFAULT_HANDLERS: IngestHandlers = ServiceHandlers()


# --- the report -----------------------------------------------------------------------------------------------------

@dataclass
class IngestReport:
    """Counts of accepted items per kind, and of rejected items per kind and reason, with a few example sources."""

    accepted: Counter[str] = field(default_factory=Counter)
    rejected: defaultdict[str, Counter[tuple[str, str]]] = field(default_factory=lambda: defaultdict(Counter))
    examples: defaultdict[tuple[str, str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    files: Counter[str] = field(default_factory=Counter)  # per detected format
    skipped_hidden: int = 0
    seconds: float = 0.0
    notes: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # values not read
    #: studies that are QA, physics or phantom tests, not a patient's examination (kept; never priors)
    not_patient: set[str] = field(default_factory=set)

    def add(self, outcome: ItemOutcome, source: str) -> None:
        if outcome.accepted:
            self.accepted[outcome.kind] += 1
            notes = outcome.detail.get("notes")
            if isinstance(notes, list):  # accepted, but some values were refused (a unit, an offset): say which
                self.notes[outcome.kind].update(str(note) for note in notes)
            if outcome.detail.get("notPatient") and outcome.detail.get("studyInstanceUid"):
                self.not_patient.add(str(outcome.detail["studyInstanceUid"]))
            return
        key = (outcome.error_code or "input", outcome.reason or "rejected without a reason")
        self.rejected[outcome.kind][key] += 1
        examples = self.examples[(outcome.kind, *key)]
        if len(examples) < EXAMPLES_PER_REASON and source not in examples:
            examples.append(source)

    def reject(self, kind: str, reason: str, source: str, code: str = "input") -> None:
        self.add(ItemOutcome.rejected(kind, reason, code), source)

    @property
    def accepted_total(self) -> int:
        return sum(self.accepted.values())

    @property
    def rejected_total(self) -> int:
        return sum(sum(reasons.values()) for reasons in self.rejected.values())

    @property
    def exit_code(self) -> int:
        return 0 if self.rejected_total == 0 else 1

    def render(self) -> str:
        """The report as printed: totals, accepted per kind, rejected per kind with grouped reasons."""
        files = sum(self.files.values())
        lines = [f"ingested {files} file(s) in {self.seconds:.1f} s: {self.accepted_total} item(s) accepted, "
                 f"{self.rejected_total} rejected"]
        if self.files:
            lines.append("  files: " + ", ".join(f"{n} {fmt}" for fmt, n in sorted(self.files.items())))
        if self.skipped_hidden:
            lines.append(f"  skipped {self.skipped_hidden} hidden file(s) (names starting with '.')")
        if self.accepted:
            lines.append("accepted:")
            lines.extend(f"  {kind:<24} {count:>8}" for kind, count in sorted(self.accepted.items()))
        if self.not_patient:
            lines.append(f"  {len(self.not_patient)} stud(ies) say they are a QA, physics or phantom test, not a "
                         "patient's examination: indexed, never offered as priors, left out of dose audits")
        if self.notes:
            lines.append("accepted, with notes (a value not read, or read on an assumption; the item was kept):")
            for kind, notes in sorted(self.notes.items()):
                lines.extend(f"  {kind:<24} {count:>6} × {note}" for note, count in notes.most_common(10))
        if self.rejected:
            lines.append("rejected:")
            for kind, reasons in sorted(self.rejected.items()):
                lines.append(f"  {kind:<24} {sum(reasons.values()):>8}")
                for (code, reason), count in reasons.most_common():
                    examples = self.examples.get((kind, code, reason), [])
                    lines.append(f"    {count:>6} × {reason} [{code}]" + (f"  e.g. {', '.join(examples)}"
                                                                            if examples else ""))
        return "\n".join(lines)


# --- walking the input ----------------------------------------------------------------------------------------------

def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def iter_files(paths: Iterable[Path | str], report: IngestReport) -> Iterator[Path]:
    """Every regular file under ``paths`` (folders recursively, in sorted order); missing paths are rejections."""
    for given in paths:
        path = Path(given)
        if path.is_file():
            yield path
        elif path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if name.startswith("."):
                        report.skipped_hidden += 1
                        continue
                    candidate = Path(root) / name
                    if candidate.is_file():
                        yield candidate
        else:
            report.reject("path", "no such file or folder", str(path), "input.path")


def classify(paths: Iterable[Path | str], report: IngestReport) -> Iterator[Detected]:
    """The loadable files under ``paths``, each with its format, as the walk finds them; the files are counted per
    format in ``report``, and what cannot be loaded (unreadable, empty, not a known format) is rejected there."""
    for path in iter_files(paths, report):
        try:
            found = detect(path)
        except OSError as exc:
            report.reject("file", f"cannot read the file ({exc.strerror or type(exc).__name__})", _display(path),
                          "input.io")
            continue
        report.files[found.format.value] += 1
        if found.format in (FileFormat.EMPTY, FileFormat.UNKNOWN):
            report.reject("file", found.reason or "not a recognised format", _display(path), "format")
        else:
            yield found


# --- applying items -------------------------------------------------------------------------------------------------

def _dead_letter(context: AppContext | None, content_type: str, source: str, code: str, reason: str,
                 raw: str) -> None:
    """Keep an item whose handler failed unexpectedly, so it can be replayed once the fault is fixed."""
    if context is None:
        return
    try:
        with unit_of_work(context.sessions, write=True) as session:
            session.add(DeadLetter(channel=INGEST_CHANNEL, content_type=content_type, source=source[:500],
                                   error_code=code, reason=reason, raw=raw))
    except Exception as exc:  # the report still counts the rejection
        log.error("could not dead-letter an item from %s (%s)", source, type(exc).__name__)


def _unexpected(kind: str, source: str, exc: Exception) -> ItemOutcome:
    # The exception's message may quote the input (patient data): log its type only, details at debug level.
    log.error("handler failed on %s (%s)", source, type(exc).__name__)
    log.debug("handler failure on %s", source, exc_info=exc)
    return ItemOutcome.rejected(kind, f"internal error while applying ({type(exc).__name__})", "internal")


def _apply_hl7(context: AppContext, handlers: IngestHandlers, found: Detected, phase: Phase,
               report: IngestReport) -> None:
    for message in hl7_messages(found.path):
        if message.phase != phase:
            continue
        source = f"{_display(found.path)}#{message.position}"
        if not message.text.startswith("MSH"):
            report.reject("HL7", "text outside any HL7 message (before the first MSH segment)", source, "hl7.no-msh")
            continue
        if message.problem is not None:  # kept byte for byte (as ISO 8859-1) to be replayed once it can be read
            report.reject(message.event or "HL7", message.problem, source, CHARSET_ERROR)
            _dead_letter(context, "hl7v2", source, CHARSET_ERROR, message.problem, message.text)
            continue
        try:
            outcome = handlers.hl7_message(context, message.text, source=source)
        except PriorscanError as exc:
            outcome = ItemOutcome.rejected(message.event or "HL7", exc.message, exc.code)
        except Exception as exc:
            outcome = _unexpected(message.event or "HL7", source, exc)
            _dead_letter(context, "hl7v2", source, "internal", outcome.reason or "", message.text)
        report.add(outcome, source)


def _apply_fhir(context: AppContext, handlers: IngestHandlers, found: Detected, phase: Phase,
                report: IngestReport) -> None:
    ndjson = found.format is FileFormat.FHIR_NDJSON
    items = ndjson_items(found.path) if ndjson else fhir_json_items(found.path)
    for item in items:
        if ndjson and item.phase != phase:  # an NDJSON file is read in every phase; a JSON file only in its own
            continue
        source = _display(found.path) + (f":{item.position}" if ndjson else f"[{item.position}]" if item.position
                                         else "")
        if item.value is None:
            report.reject("FHIR", item.problem or "unreadable", source, "fhir.json")
            continue
        kind = str(item.value.get("resourceType"))
        try:
            outcomes = handlers.fhir_resource(context, item.value, source=source)
        except PriorscanError as exc:
            outcomes = [ItemOutcome.rejected(kind, exc.message, exc.code)]
        except Exception as exc:
            outcomes = [_unexpected(kind, source, exc)]
            _dead_letter(context, "fhir-json", source, "internal", outcomes[0].reason or "", json.dumps(item.value))
        if not outcomes:
            outcomes = [ItemOutcome.rejected(kind, "nothing to apply (no resources)", "fhir.empty")]
        for outcome in outcomes:
            report.add(outcome, source)


def _apply_dicom(context: AppContext, handlers: IngestHandlers, found: Detected, report: IngestReport) -> None:
    source = _display(found.path)
    try:
        outcome = handlers.dicom_file(context, found.path)
    except PriorscanError as exc:
        outcome = ItemOutcome.rejected("DICOM", exc.message, exc.code)
    except ImportError as exc:  # the handler itself is missing: our fault, not the file's
        outcome = _unexpected("DICOM", source, exc)
    except Exception as exc:  # pydicom raises many kinds on a corrupt file
        log.warning("DICOM file %s could not be read (%s)", source, type(exc).__name__)
        outcome = ItemOutcome.rejected("DICOM", f"DICOM file could not be read ({type(exc).__name__})",
                                       "dicom.corrupt")
    report.add(outcome, source)


def _apply_dicom_json(context: AppContext, handlers: IngestHandlers, found: Detected, report: IngestReport) -> None:
    for item in dicom_json_items(found.path):
        source = f"{_display(found.path)}[{item.position}]"
        if item.value is None:
            report.reject("DICOM JSON", item.problem or "unreadable", source, "dicom.json")
            continue
        try:
            outcome = handlers.dicom_json(context, item.value, source=source)
        except PriorscanError as exc:
            outcome = ItemOutcome.rejected("DICOM JSON", exc.message, exc.code)
        except Exception as exc:
            outcome = _unexpected("DICOM JSON", source, exc)
        report.add(outcome, source)


def _apply_file(context: AppContext, handlers: IngestHandlers, found: Detected, phase: Phase,
                report: IngestReport) -> None:
    try:
        if found.format is FileFormat.HL7V2:
            _apply_hl7(context, handlers, found, phase, report)
        elif found.format in (FileFormat.FHIR_JSON, FileFormat.FHIR_NDJSON):
            _apply_fhir(context, handlers, found, phase, report)
        elif found.format is FileFormat.DICOM:
            _apply_dicom(context, handlers, found, report)
        elif found.format is FileFormat.DICOM_JSON:
            _apply_dicom_json(context, handlers, found, report)
    except OSError as exc:  # the file went away or became unreadable between phases
        report.reject("file", f"cannot read the file ({exc.strerror or type(exc).__name__})", _display(found.path),
                      "input.io")


@dataclass(frozen=True)
class BulkOptions:
    """How ``priorscan backfill`` loads (:mod:`api.feeds.bulk_load`): :func:`load_paths`'s mode for large extracts."""

    workers: int | None = None  # worker processes reading items (None: one per core; 0: this process)
    batch: int = 5_000  # identity items per transaction
    train: bool = True  # train a fresh model for the batch relink (False: link with the model in use)
    restart: bool = False  # forget where an earlier run of the same load stopped


def load_paths(context: AppContext, paths: Sequence[Path | str], *, bulk: BulkOptions | None = None,
               handlers: IngestHandlers = DEFAULT_HANDLERS, progress: bool = False) -> IngestReport:
    """Load every file under ``paths`` in three phases (identity, imaging, orders) and report what became of it.

    The one path of ``priorscan ingest`` and ``priorscan backfill``: the files are found and classified, and the
    report counted, alike; only how items are applied differs with ``bulk``.

    Parameters
    ----------
    context
        The opened store, settings and trusts, passed on to the handlers.
    paths
        Files and folders (walked recursively; names starting with '.' are skipped and counted).
    bulk
        None (``ingest``): every item through the handler that owns its kind, file by file, phase by phase.
        :class:`BulkOptions` (``backfill``): the resumable bulk stages of :mod:`api.feeds.bulk_load`, which report in a
        :class:`api.feeds.bulk_load.BackfillReport`.
    handlers
        Who applies each kind of item (:data:`DEFAULT_HANDLERS` in production; per message only).
    progress
        Show progress bars on stderr.

    Returns
    -------
    IngestReport
        Accepted and rejected counts with grouped reasons; ``exit_code`` is 0 only when nothing was rejected.
    """
    started = time.monotonic()
    if bulk is None:
        report = IngestReport()
        _per_message(context, handlers, list(classify(paths, report)), report, progress)
    else:
        from api.feeds.bulk_load import BackfillReport, load_in_bulk  # the bulk stages build on this module

        report = bulk_report = BackfillReport()
        load_in_bulk(context, paths, bulk_report, bulk, progress=progress)
    report.seconds = time.monotonic() - started
    return report


def _per_message(context: AppContext, handlers: IngestHandlers, detected: list[Detected], report: IngestReport,
                 progress: bool) -> None:
    from tqdm import tqdm

    for phase in Phase:
        files = [found for found in detected if phase in found.phases]
        if not files:
            continue
        bar = tqdm(files, desc=f"{phase.value}/3 {phase.label}", unit="file", file=sys.stderr, disable=not progress,
                   leave=True, dynamic_ncols=True)
        for found in bar:
            _apply_file(context, handlers, found, phase, report)
            if progress:
                bar.set_postfix(accepted=report.accepted_total, rejected=report.rejected_total, refresh=False)
        bar.close()


def ingest_paths(context: AppContext, paths: Sequence[Path | str], handlers: IngestHandlers = DEFAULT_HANDLERS,
                 progress: bool = False) -> IngestReport:
    """:func:`load_paths` per message (``priorscan ingest``)."""
    return load_paths(context, paths, handlers=handlers, progress=progress)


def run_ingest(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan ingest PATH... [--no-progress]`` and ``priorscan backfill PATH... [--workers N] [--batch N]
    [--no-train] [--restart] [--no-progress]`` (``args.bulk``): load, print the report, exit 0 when nothing was
    rejected."""
    from api.context import AppContext

    bulk = BulkOptions(workers=args.workers, batch=args.batch, train=not args.no_train, restart=args.restart) \
        if getattr(args, "bulk", False) else None
    context = AppContext.open(ctx.settings)
    try:
        progress = not args.no_progress and sys.stderr.isatty()
        report = load_paths(context, args.paths, bulk=bulk, handlers=DEFAULT_HANDLERS, progress=progress)
    finally:
        context.engine.dispose()
    print(report.render())
    return report.exit_code


__all__ = ["DEFAULT_HANDLERS", "FORMAT_PHASES", "BulkOptions", "IngestHandlers", "IngestReport", "ServiceHandlers",
           "ingest_paths", "load_paths", "run_ingest"]
