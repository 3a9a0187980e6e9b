"""Running it for real: metrics after real traffic, feed health and the quiet-feed flag, and logs that tie an ACK to
its audit rows (``GET /metrics``, ``GET /api/v1/feeds``, ``priorscan status``, JSON log lines)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from feeds_factories import adt, exchange, nhs_number, pid
from hl7.client import MLLPClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from priorscan.feed_health import feed_key, feed_statuses, roll_up, roll_up_batch, usual_gap
from priorscan.tables import AuditEvent, FeedActivity, HL7MessageLog
from priorscan.trusts import default_trusts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token(db_url: str, scopes: str) -> str:
    result = subprocess.run([sys.executable, "-m", "priorscan.cli", "--db", db_url, "token", "create", "--client",
                             f"ops-{scopes[:10]}", "--scopes", scopes], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


@contextmanager
def serving(db_url: str) -> Iterator[tuple[subprocess.Popen[str], str, int, list[str]]]:
    """``priorscan serve`` with HTTP and MLLP (writer processes as on any machine of two cores) and its log lines."""
    port, mllp_port = _free_port(), _free_port()
    process = subprocess.Popen([sys.executable, "-m", "priorscan.cli", "--db", db_url, "serve", "--port", str(port),
                                "--mllp-port", str(mllp_port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the server did not start:\n" + "".join(lines[-30:]))
            time.sleep(0.1)
        yield process, base, mllp_port, lines
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        reader.join(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition ``text`` (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_feeds_and_logs_after_real_traffic(sqlite_url: str) -> None:
    ops = _token(sqlite_url, "priorscan/operations")
    checker = _token(sqlite_url, "priorscan/duplicate-check")
    with serving(sqlite_url) as (_process, base, mllp_port, lines):
        assert httpx.get(base + "/metrics").status_code == 401
        assert httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {checker}"}).status_code == 403
        with MLLPClient("127.0.0.1", mllp_port) as client:
            people = ["ABBOTT^JANE", "BRENNAN^OMAR", "CHAUDHRY^LENA", "DUFFY^PETER", "EVANS^RUTH", "FOLEY^ALAN"]
            acks = [exchange(client, adt("A04", pid(f"OPS{n:05d}^^^RTK^MR~{nhs_number(700 + n)}^^^NHS^NH",
                                                    name=people[n], dob=f"19{50 + n}0{n + 1}1{n}"),
                                         control=f"OPS-RTK-{n}")) for n in range(5)]
            acks.append(exchange(client, adt("A04", pid("OPS90000^^^RXC^MR", name=people[5], dob="19771212"),
                                             control="OPS-RXC-1", facility="RXC")))
            acks.append(exchange(client, "MSH|^~\\&|PAS|RTK|PRIORSCAN|REGION|20240101||ADT^A04|OPS-BAD-1|P|2.4\r"
                                         "EVN|A04\r"))  # no PID: refused
        assert [a.code for a in acks[:6]] == ["AA"] * 6 and acks[6].code in ("AE", "AR")
        response = httpx.post(base + "/api/v1/duplicate-check", headers={"Authorization": f"Bearer {checker}",
                                                                         "X-Request-ID": "ops-check-1"},
                              json={"patient": {"identifiers": [{"system": "https://fhir.nhs.uk/Id/nhs-number",
                                                                 "value": nhs_number(700)}]},
                                    "request": {"modality": "CT", "bodySite": "head", "requestingTrust": "RTK"}})
        assert response.status_code == 200 and response.headers["x-request-id"] == "ops-check-1"
        text = httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {ops}"}).text
        assert _metric(text, "priorscan_hl7_messages_total", channel="mllp", trust="RTK", type="ADT^A04",
                       ack="AA") == 5
        assert _metric(text, "priorscan_hl7_messages_total", channel="mllp", trust="RXC", type="ADT^A04",
                       ack="AA") == 1
        refused = sum(_metric(text, "priorscan_hl7_messages_total", channel="mllp", trust="RTK", type="ADT^A04",
                              ack=code) for code in ("AE", "AR"))
        assert refused == 1
        assert _metric(text, "priorscan_hl7_ack_seconds_count", channel="mllp") == 7
        assert _metric(text, "priorscan_mllp_connections") == 0  # the connection was closed
        assert _metric(text, "priorscan_link_outcomes_total", state="new") == 6  # six people, each new
        assert _metric(text, "priorscan_duplicate_check_verdicts_total", channel="api", verdict="clear") == 1
        assert _metric(text, "priorscan_http_request_seconds_count", method="POST",
                       route="/api/v1/duplicate-check") == 1
        assert _metric(text, "priorscan_feed_messages_last_hour", trust="RTK", facility="RTK", application="PAS",
                       family="ADT") == 6
        assert _metric(text, "priorscan_feed_rejected_last_hour", trust="RTK", facility="RTK", application="PAS",
                       family="ADT") == 1
        assert _metric(text, "priorscan_dead_letters_waiting", channel="mllp") == 1
        feeds = httpx.get(base + "/api/v1/feeds", headers={"Authorization": f"Bearer {ops}"}).json()
        by_trust = {f["trust"]: f for f in feeds["feeds"]}
        assert by_trust["RTK"]["messagesLastHour"] == 6 and by_trust["RTK"]["deadLettersWaiting"] == 1
        assert by_trust["RXC"]["messagesLastHour"] == 1 and not by_trust["RXC"]["quiet"]
    # every log line is one JSON object; the ACKed message's id ties its log line to its audit rows
    records = [json.loads(line) for line in lines if line.strip()]
    assert records and all("event" in r and "level" in r for r in records)
    assert any(r.get("request_id") == "ops-check-1" for r in records)
    joined = "\n".join(lines)
    assert nhs_number(700) not in joined and "OPS00000" not in joined  # no identifiers in the logs
    from priorscan.db import make_engine

    engine = make_engine(sqlite_url)
    try:
        with Session(engine) as session:
            details = [d for d in session.scalars(select(AuditEvent.detail)) if d]
    finally:
        engine.dispose()
    assert any(d.get("message_id") == "RTK|OPS-RTK-0" for d in details)  # written in the writer process
    assert any(d.get("request_id") == "ops-check-1" for d in details)


# --- feed health: the roll-up and the quiet flag ----------------------------------------------------------------------

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def _log(session: Session, facility: str, times: list[datetime], *, application: str = "PAS",
         message_type: str = "ADT^A08", refused: int = 0) -> None:
    for n, at in enumerate(times):
        session.add(HL7MessageLog(sending_application=application, sending_facility=facility,
                                  control_id=f"{facility}-{application}-{message_type}-{n}-{at.timestamp()}",
                                  message_type=message_type, ack_code="AE" if n < refused else "AA", ack_text="",
                                  received_at=at))
    session.commit()


def test_a_feed_that_goes_quiet_beyond_its_usual_gap_is_flagged(session: Session) -> None:
    trusts = default_trusts()
    every_5_min = [NOW - timedelta(days=2) + timedelta(minutes=5 * n) for n in range(12 * 47)]  # stops ~1 h ago
    _log(session, "RYR", every_5_min)
    _log(session, "RTK", [NOW - timedelta(days=2) + timedelta(minutes=5 * n) for n in range(12 * 48)])  # to now
    _log(session, "RA2", [NOW - timedelta(minutes=30), NOW - timedelta(minutes=20)])  # new: no usual gap yet
    _log(session, "RXC", [NOW - timedelta(minutes=m) for m in (50, 40, 30)], message_type="ORU^R01", refused=1)
    roll_up_batch(session)
    statuses = {s.trust: s for s in feed_statuses(session, trusts, now=NOW)}
    assert statuses["RYR"].quiet and statuses["RYR"].usual_gap_s == 300 and statuses["RYR"].messages_last_hour == 0
    assert not statuses["RTK"].quiet and statuses["RTK"].messages_last_hour == 12
    assert not statuses["RA2"].quiet and statuses["RA2"].usual_gap_s is None
    assert statuses["RXC"].family == "ORU" and statuses["RXC"].rejected_last_hour == 1
    assert statuses["RXC"].error_rate_last_hour == pytest.approx(1 / 3)
    assert list(statuses)[0] == "RYR"  # quiet feeds first


def test_priorscan_status_names_a_quiet_feed_and_exits_1(session: Session) -> None:
    from priorscan.cli import CliContext, run_status
    from priorscan.db import utcnow
    from priorscan.settings import Settings

    now = utcnow()  # the status reads the clock: the feed is set up relative to it
    _log(session, "RYR", [now - timedelta(hours=3) + timedelta(minutes=5 * n) for n in range(24)])  # 1 h silent
    _log(session, "RTK", [now - timedelta(hours=2) + timedelta(minutes=5 * n) for n in range(24)])  # until now
    bind = session.get_bind()
    ctx = CliContext(Settings(db=bind.url.render_as_string(hide_password=False), env="test"))
    ctx.__dict__["engine"] = bind  # the test's store, already open
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = run_status(type("Args", (), {"json": False})(), ctx)
    lines = out.getvalue().splitlines()
    assert status == 1
    assert lines[1].startswith("RYR") and "QUIET" in lines[1] and "usually sends within 5 min" in lines[1]
    assert lines[2].startswith("RTK") and lines[2].rstrip().endswith("ok")


def test_roll_up_counts_each_message_once(session: Session) -> None:
    _log(session, "RTK", [NOW - timedelta(seconds=s) for s in range(0, 600, 7)])
    assert roll_up_batch(session) == 86
    assert roll_up_batch(session) == 0  # nothing new: nothing added twice
    _log(session, "RTK", [NOW + timedelta(seconds=1)], message_type="ADT^A31")
    assert roll_up_batch(session) == 1
    total = session.scalar(select(func.sum(FeedActivity.received)))
    assert total == session.scalar(select(func.count()).select_from(HL7MessageLog)) == 87
    assert session.scalar(select(func.sum(FeedActivity.received)).where(
        FeedActivity.feed == feed_key("RTK", "PAS", "ADT^A31"))) == 87


def test_concurrent_roll_ups_count_each_message_once(engine) -> None:  # type: ignore[no-untyped-def]
    from priorscan.db import session_factory

    sessions = session_factory(engine)
    with sessions() as session:
        _log(session, "RYR", [NOW - timedelta(seconds=s) for s in range(3000)])
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(3):
                roll_up(sessions, batch=400)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    roll_up(sessions)
    with sessions() as session:
        total = session.scalar(select(func.sum(FeedActivity.received)))
    # SQLite may refuse a second writer outright (busy); it never lets two count the same rows
    assert all("locked" in str(e) or "busy" in str(e).lower() for e in errors), errors
    assert total == 3000


@pytest.mark.parametrize(("minutes", "expected"), [
    ([], None),
    ([0, 1, 2, 3], None),  # three gaps: too few to say what is usual
    ([0, 5, 10, 15, 20, 25], 300.0),
    ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 60], 60.0),  # one long gap is not usual
])
def test_usual_gap(minutes: list[int], expected: float | None) -> None:
    assert usual_gap(NOW + timedelta(minutes=m) for m in minutes) == expected


def test_pollers_are_measured_from_the_store(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    """A poller runs as a process of its own (`priorscan dicomweb poll`): what it did is read from its cursor."""
    from priorscan.tables import PollCursor

    with live_server_sqlite.context.sessions() as session:
        session.add(PollCursor(source="https://poller:secret@pacs.example.nhs.uk/dicom-web?token=x", position={
            "version": 2, "last_poll": {"seen": 12, "new": 3, "reread": 1, "unchanged": 8},
            "ranges": [{"from": "20160101", "to": "20251231", "listed_at": "2026-06-01T10:00:00+00:00"},
                       {"from": "20260101", "to": None, "listed_at": "2026-06-14T09:30:00+00:00"}]}))
        session.commit()
    token = live_server_sqlite.token(["priorscan/operations"])
    text = httpx.get(live_server_sqlite.base_url + "/metrics", headers={"Authorization": f"Bearer {token}"}).text
    source = "https://pacs.example.nhs.uk/dicom-web"
    assert _metric(text, "priorscan_poller_last_poll_studies", source=source, result="new") == 3
    assert _metric(text, "priorscan_poller_last_poll_studies", source=source, result="seen") == 12
    assert _metric(text, "priorscan_poller_reconciled_timestamp_seconds", source=source) == datetime(
        2026, 6, 1, 10, 0, tzinfo=UTC).timestamp()
    assert "secret" not in text and "token=x" not in text  # no credentials in labels
