"""Prometheus metrics: what the integration teams watch, in the exposition format at ``GET /metrics``.

Two kinds of figure:

- **counted as they happen**, in the process that does the work: HTTP requests and their latency by route (the
  duplicate check and CDS Hooks among them), HL7 messages received and acknowledged per channel, trust, type and
  ACK code with their time to ACK, open MLLP connections, duplicate-check verdicts per channel, link-on-write
  outcomes. ``priorscan serve`` runs in prometheus-client's multi-process mode
  (:func:`use_directory`, before any metric exists): the serving process and its MLLP writer processes each write
  their values to files in one directory, and ``/metrics`` adds them up. Several ``serve`` workers are scraped one
  by one, as Prometheus does with any replicated service;
- **read from the store** when scraped (:class:`StoreCollector`): feed health per feed (last message, last hour's
  messages and refusals, quiet), dead letters waiting per channel, each DICOMweb poller's last poll (when, and
  what it saw) and how far its reconciliation lags (every date listed again since when), and the serving
  process's connection pool. These hold across workers, and cover pollers run as processes of their own
  (``priorscan dicomweb poll``), because the store does.

No label ever carries patient data: trusts are ODS codes, routes are templates (``/fhir/Patient/{id}``), message
types are HL7 event codes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram
    from sqlalchemy import Engine

    from priorscan.trusts import TrustRegistry

ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Latency buckets (seconds): the duplicate check's targets are tens of milliseconds, feeds' ACKs up to seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def use_directory(directory: Path | None = None) -> Path:
    """Put this process (and the processes it starts) in multi-process mode, values kept under ``directory``
    (a new temporary directory when None). Call before the first metric is used.

    This is the one place priorscan writes the environment: prometheus-client reads its mode from it, and writer
    processes started later inherit it.
    """
    import prometheus_client.values as values

    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="priorscan-metrics-"))
    else:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):  # a previous run's values must not add to this one's
            stale.unlink()
    os.environ[ENV] = str(directory)
    values.ValueClass = values.get_value_class()
    _instruments.cache_clear()
    return directory


def release_directory() -> None:
    """Leave multi-process mode and delete its files (at the end of ``serve``)."""
    directory = os.environ.pop(ENV, None)
    if directory and Path(directory).name.startswith("priorscan-metrics-"):
        shutil.rmtree(directory, ignore_errors=True)


def multiprocess_directory() -> str | None:
    return os.environ.get(ENV)


def process_ended(pid: int) -> None:
    """Forget a dead process's live gauges (open connections, pool use)."""
    if multiprocess_directory():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


@dataclass(frozen=True)
class Instruments:
    http_requests: Counter
    http_seconds: Histogram
    hl7_messages: Counter
    hl7_ack_seconds: Histogram
    mllp_connections: Gauge
    mllp_closed: Counter
    verdicts: Counter
    link_outcomes: Counter


@cache
def _instruments() -> tuple[Instruments, Any]:
    """The metrics and, in single-process mode, the registry holding them (multi-process mode reads files)."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    registry = None if multiprocess_directory() else CollectorRegistry()
    made = Instruments(
        http_requests=Counter("priorscan_http_requests", "HTTP requests answered", ["method", "route", "status"],
                              registry=registry),
        http_seconds=Histogram("priorscan_http_request_seconds", "Time to answer an HTTP request",
                               ["method", "route"], buckets=LATENCY_BUCKETS, registry=registry),
        hl7_messages=Counter("priorscan_hl7_messages", "HL7 v2 messages acknowledged",
                             ["channel", "trust", "type", "ack"], registry=registry),
        hl7_ack_seconds=Histogram("priorscan_hl7_ack_seconds", "Time from a message's arrival to its ACK",
                                  ["channel"], buckets=LATENCY_BUCKETS, registry=registry),
        mllp_connections=Gauge("priorscan_mllp_connections", "Open MLLP connections", multiprocess_mode="livesum",
                               registry=registry),
        mllp_closed=Counter("priorscan_mllp_connections_closed", "MLLP connections the listener closed: 'limit' "
                            "(too many at once), 'deadline' (no whole message in time)", ["reason"],
                            registry=registry),
        verdicts=Counter("priorscan_duplicate_check_verdicts", "Duplicate-check verdicts", ["channel", "verdict"],
                         registry=registry),
        link_outcomes=Counter("priorscan_link_outcomes", "Link-on-write outcomes (match, possible-match, new)",
                              ["state"], registry=registry),
    )
    return made, registry


def instruments() -> Instruments:
    """The process's metrics (created on first use, in the mode :func:`use_directory` chose)."""
    return _instruments()[0]


def hl7_acknowledged(channel: str, trust: str | None, message_type: str | None, ack: str, seconds: float) -> None:
    """One HL7 message acknowledged: ``channel`` mllp | http | ingest; ``trust`` the sender's ODS code."""
    m = instruments()
    m.hl7_messages.labels(channel, trust or "unknown", _event(message_type), ack).inc()
    m.hl7_ack_seconds.labels(channel).observe(seconds)


def _event(message_type: str | None) -> str:
    """``ADT^A04`` from ``ADT^A04^ADT_A01`` (never more than the message code and event)."""
    if not message_type:
        return "unknown"
    parts = message_type.split("^")
    return "^".join(p for p in parts[:2] if p)[:20] or "unknown"


def ack_code(ack: str) -> str:
    """MSA-1 of an ACK's text (``AA``, ``AE`` ...), or ``??`` when it has none."""
    for segment in ack.replace("\n", "\r").split("\r"):
        if segment.startswith("MSA") and len(segment) > 4:
            return segment.split(segment[3])[1][:2] or "??"
    return "??"


def verdict(channel: str, outcome: str) -> None:
    instruments().verdicts.labels(channel, outcome).inc()


def link_outcome(state: str) -> None:
    instruments().link_outcomes.labels(state).inc()


# --- read from the store at scrape time ----------------------------------------------------------------------------

class StoreCollector:
    """Figures read from the store when ``/metrics`` is scraped (the same for every worker)."""

    def __init__(self, engine: Engine, trusts: TrustRegistry) -> None:
        self.engine = engine
        self.trusts = trusts

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily
        from sqlalchemy import func, select

        from priorscan.db import session_factory
        from priorscan.feed_health import feed_statuses, roll_up
        from priorscan.tables import DeadLetter, PollCursor

        last = GaugeMetricFamily("priorscan_feed_last_message_timestamp_seconds",
                                 "When each HL7 feed last sent a message (Unix time)",
                                 labels=["trust", "facility", "application", "family"])
        hour = GaugeMetricFamily("priorscan_feed_messages_last_hour", "Messages each feed sent in the last hour",
                                 labels=["trust", "facility", "application", "family"])
        refused = GaugeMetricFamily("priorscan_feed_rejected_last_hour",
                                    "Messages of each feed refused (AE/AR) in the last hour",
                                    labels=["trust", "facility", "application", "family"])
        quiet = GaugeMetricFamily("priorscan_feed_quiet", "1 when a feed has gone quiet beyond its usual gap",
                                  labels=["trust", "facility", "application", "family"])
        waiting = GaugeMetricFamily("priorscan_dead_letters_waiting", "Rejected inputs not yet replayed or discarded",
                                    labels=["channel"])
        polled = GaugeMetricFamily("priorscan_poller_last_poll_timestamp_seconds",
                                   "When each poller last moved its cursor (Unix time)", labels=["source"])
        seen = GaugeMetricFamily("priorscan_poller_last_poll_studies",
                                 "What each DICOMweb poller's last poll did with the studies it saw",
                                 labels=["source", "result"])
        reconciled = GaugeMetricFamily("priorscan_poller_reconciled_timestamp_seconds",
                                       "Every study date of the PACS was listed again since this time (Unix time): "
                                       "how far the poller's reconciliation lags", labels=["source"])
        sessions = session_factory(self.engine)
        roll_up(sessions)
        with sessions() as session:
            for status in feed_statuses(session, self.trusts):
                labels = [status.trust or "unknown", status.sending_facility, status.sending_application,
                          status.family]
                if status.last_message_at is not None:
                    last.add_metric(labels, status.last_message_at.timestamp())
                hour.add_metric(labels, status.messages_last_hour)
                refused.add_metric(labels, status.rejected_last_hour)
                quiet.add_metric(labels, 1.0 if status.quiet else 0.0)
            for channel, count in session.execute(select(DeadLetter.channel, func.count())
                                                  .where(DeadLetter.status == "new").group_by(DeadLetter.channel)):
                waiting.add_metric([channel], count)
            for source, updated, position in session.execute(select(PollCursor.source, PollCursor.updated_at,
                                                                    PollCursor.position)):
                if source.startswith("feed-activity/"):
                    continue
                label = _source_label(source)
                polled.add_metric([label], updated.timestamp())
                for result, count in ((position or {}).get("last_poll") or {}).items():
                    if isinstance(count, int | float):
                        seen.add_metric([label, str(result)], float(count))
                listed = [r.get("listed_at") for r in (position or {}).get("ranges", []) if isinstance(r, dict)]
                if listed and all(listed):
                    oldest = min(datetime.fromisoformat(str(stamp)) for stamp in listed)
                    reconciled.add_metric([label], oldest.timestamp())
        pool = GaugeMetricFamily("priorscan_db_pool_connections", "The serving process's database connections",
                                 labels=["state"])
        status_of = getattr(self.engine.pool, "checkedout", None)
        if callable(status_of):
            pool.add_metric(["checked_out"], float(status_of()))
            size = getattr(self.engine.pool, "size", None)
            if callable(size):
                pool.add_metric(["size"], float(size()))
        yield from (last, hour, refused, quiet, waiting, polled, seen, reconciled, pool)


def _source_label(source: str) -> str:
    """A poller's source without credentials or query (``https://pacs.example/dicom-web``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(source)
    if parts.scheme and parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
    return source[:200]


def exposition(engine: Engine, trusts: TrustRegistry) -> tuple[bytes, str]:
    """The metrics of this worker (all its processes) and of the store, and their content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    directory = multiprocess_directory()
    if directory:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        own = _instruments()[1]
        registry.register(_Delegate(own))  # type: ignore[arg-type]
    registry.register(StoreCollector(engine, trusts))  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Delegate:
    """Another registry's metrics, collected into the scrape's registry."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self.registry.collect()


__all__ = ["Instruments", "StoreCollector", "exposition", "hl7_acknowledged", "instruments", "link_outcome",
           "multiprocess_directory", "process_ended", "release_directory", "use_directory", "verdict"]
