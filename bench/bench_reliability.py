"""Reliability of the HL7 door (issue 15 item 4): hypothesis-generated HL7 through a real MLLP listener, kill -9 of
``priorscan serve`` mid-stream, the database going away and coming back, and a read-only database.

What is counted, for BENCHMARKS.md ("Reliability"):

- **inputs tried**, **ACKs** by code, **no ACK** (the connection dropped or stayed silent: a crash of the door);
- **AA not committed**: an AA whose message has no AA row in the idempotency log (it must never happen);
- **ACKed and lost**: a message that got AA and whose record is not in the store after the faults;
- **duplicates**: a message applied more than once (its accepted-audit rows counted per MSH-10).

``python -m bench reliability [--examples N] [--messages N] [--kills N] [--db URL]`` runs the long version; the
tests in ``tests/feeds/test_feeds_reliability.py`` run the same functions, bounded for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from priorscan.tables import AuditEvent, HL7MessageLog

START, END = b"\x0b", b"\x1c\x0d"


@dataclass
class Figures:
    """What one run saw."""

    inputs: int = 0
    acks: Counter[str] = field(default_factory=Counter)
    no_ack: int = 0
    aa_not_committed: int = 0
    acked_lost: int = 0
    duplicates: int = 0
    kills: int = 0
    seconds: float = 0.0
    unanswered: list[str] = field(default_factory=list)  # the first inputs that got no ACK (repr, cut)
    recovery_s: float | None = None  # from the fault's end to the first AA after it

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["acks"] = dict(self.acks)
        return out


# --- a minimal MLLP client (independent of priorscan's framer) ------------------------------------------------------

class Sender:
    """One MLLP connection that sends a frame and reads its ACK frames; reconnects after the listener drops it."""

    def __init__(self, port: int, timeout: float = 20.0) -> None:
        self.port, self.timeout = port, timeout
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def exchange(self, payload: bytes) -> str | None:
        """Send one framed message and return its last ACK's text (None: no ACK, the connection is then closed)."""
        try:
            sock = self._connect()
            sock.sendall(START + payload + END)
            data = b""
            while not data.endswith(END) or (_accept_only(data) and data.count(END) < 2):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                data += chunk
        except OSError:
            self.close()
            return None
        frames = [f.strip(b"\x0b") for f in data.split(END) if f.strip()]
        return frames[-1].decode("utf-8", "replace") if frames else None


def _accept_only(data: bytes) -> bool:
    """Whether the frames so far are only an enhanced-mode accept ACK after which an application ACK follows."""
    return b"MSA|CA|" in data and b"MSA|A" not in data.split(b"MSA|CA|", 1)[1]


def ack_code(ack: str | None) -> str:
    if not ack:
        return "none"
    for line in ack.replace("\n", "\r").split("\r"):
        if line[3:4] and line.startswith("MSA"):
            return line.split(line[3])[1] if len(line.split(line[3])) > 1 else "?"
    return "?"


# --- hypothesis-generated HL7 ---------------------------------------------------------------------------------------

def fuzz_strategy() -> Any:
    """Messages as hostile or broken senders write them: real ADT and ORU templates with fuzzed values (delimiters,
    escapes, control characters, any Unicode, huge repetitions), dropped or repeated segments, other types and
    versions, other segment ends, and plain binary. Each draws ``(payload, control id or None)``."""
    from hypothesis import strategies as st

    text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
    hl7ish = st.text(st.sampled_from(list("AB12 |^~\\&#\x00\x07\x1f\r\néÖ€XF.brH")), max_size=30)
    value = st.one_of(text, hl7ish, st.sampled_from(["", '""', "\\X00\\", "\\F\\", "A" * 300, "~" * 150,
                                                     "20240230", "99999999999999", "9990000018^^^NHS^NH"]))
    header_value = value.map(lambda v: v.replace("|", "").replace("\r", "").replace("\n", ""))
    kind = st.sampled_from(["ADT^A28", "ADT^A08", "ADT^A04", "ADT^A40", "ADT^A47", "ADT^A24", "ADT^A99",
                            "ORU^R01", "ORM^O01", "QRY^A19", "", "ADT"])
    version = st.sampled_from(["2.3", "2.4", "2.5", "2.5.1", "2.8", "3.0", ""])
    end = st.sampled_from(["\r", "\n", "\r\n"])

    @st.composite
    def message(draw: Any) -> tuple[bytes, str | None]:
        n = draw(st.integers(0, 10**9))
        control = f"FZ{n}"
        msh = (f"MSH|^~\\&|{draw(st.sampled_from(['PAS', 'RIS', draw(header_value)]))}|"
               f"{draw(st.sampled_from(['RTK', 'RXC', 'RYR', 'NOWHERE', draw(header_value)]))}|PRIORSCAN|REGION|"
               f"{draw(st.sampled_from(['20240101120000', draw(header_value)]))}||{draw(kind)}|{control}|P|"
               f"{draw(version)}")
        pid = (f"PID|1||{draw(value)}^^^{draw(st.sampled_from(['RTK', 'RXC', 'NHS', '']))}^MR"
               f"{'~' + draw(value) if draw(st.booleans()) else ''}||{draw(value)}^{draw(value)}||{draw(value)}|"
               f"{draw(st.sampled_from(['M', 'F', 'U', draw(value)]))}")
        others = [f"EVN|A28|{draw(value)}", pid, f"MRG|{draw(value)}^^^RTK^MR", f"PV1|1|{draw(value)}",
                  f"OBR|1|P1|F1|{draw(value)}^{draw(value)}^LOCAL|||{draw(value)}" + "|" * 17 + f"CT|{draw(value)}",
                  f"OBX|1|TX|19005-8^Impression^LN||{draw(value)}||||||F", f"ZDS|{draw(value)}^RIS^Application^DICOM",
                  f"{draw(st.sampled_from(['ZZZ', 'PI', 'P1D', ''])) }|{draw(value)}"]
        segments = draw(st.lists(st.sampled_from(others), max_size=8))
        joined = draw(end).join([msh, *segments]) + draw(end)
        return joined.encode("utf-8", "surrogatepass"), control

    @st.composite
    def plausible(draw: Any) -> tuple[bytes, str | None]:
        """A registration as a PAS sends it, one of its values now and then fuzzed (most are applied: AA)."""
        n = draw(st.integers(0, 10**9))
        name = st.from_regex(r"[A-Z][A-Z' -]{0,12}", fullmatch=True)
        fields = {"hn": f"FZ{n % 10**6:06d}", "family": draw(name), "given": draw(name),
                  "dob": draw(st.dates().map(lambda d: d.strftime("%Y%m%d"))), "sex": draw(st.sampled_from("MFU"))}
        if draw(st.integers(0, 3)) == 0:
            fields[draw(st.sampled_from(sorted(fields)))] = draw(value)
        control = f"FZ{n}"
        message = (f"MSH|^~\\&|PAS|RTK|PRIORSCAN|REGION|20240101120000||ADT^{draw(st.sampled_from(['A28', 'A08']))}|"
                   f"{control}|P|{draw(st.sampled_from(['2.3', '2.4', '2.5']))}\rEVN|A28|20240101120000\r"
                   f"PID|1||{fields['hn']}^^^RTK^MR||{fields['family']}^{fields['given']}||{fields['dob']}|"
                   f"{fields['sex']}\r")
        return message.encode("utf-8", "surrogatepass"), control

    raw = st.binary(min_size=1, max_size=400).map(lambda b: (b, None))
    return st.one_of(message(), plausible(), message(), plausible(), raw).map(
        # one frame per input (framing is tested on its own); an empty frame is a keep-alive and gets no ACK
        lambda m: (_one_frame(m[0]), m[1]))


def _one_frame(payload: bytes) -> bytes:
    payload = payload.replace(b"\x0b", b"").replace(b"\x1c", b"")
    return payload if payload.strip() else b"X" + payload


def aa_committed(engine: Engine, control_id: str) -> bool:
    with engine.connect() as connection:
        return bool(connection.scalar(select(func.count()).select_from(HL7MessageLog).where(
            HL7MessageLog.control_id == control_id, HL7MessageLog.ack_code == "AA")))


def fuzz(port: int, engine: Engine, examples: int, *, seed: int = 0) -> Figures:
    """Send ``examples`` hypothesis-generated messages over one MLLP connection (reconnecting when dropped)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as fixed_seed

    figures = Figures()
    sender = Sender(port)
    started = time.monotonic()

    @fixed_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(fuzz_strategy())
    def one(drawn: tuple[bytes, str | None]) -> None:
        payload, control = drawn
        figures.inputs += 1
        ack = sender.exchange(payload)
        code = ack_code(ack)
        figures.acks[code] += 1
        if ack is None:
            figures.no_ack += 1
            if len(figures.unanswered) < 5:
                figures.unanswered.append(repr(payload[:300]))
        elif code == "AA" and not aa_committed(engine, _echoed(ack) or control or ""):
            figures.aa_not_committed += 1

    try:
        one()
    finally:
        sender.close()
    figures.seconds = time.monotonic() - started
    return figures


def _echoed(ack: str) -> str | None:
    for line in ack.replace("\n", "\r").split("\r"):
        if line.startswith("MSA") and len(line) > 3:
            parts = line.split(line[3])
            return parts[2] if len(parts) > 2 else None
    return None


# --- kill -9 of priorscan serve mid-stream -------------------------------------------------------------------------

def registration(n: int) -> bytes:
    """An A28 for synthetic person ``n`` (its own hospital number, MSH-10 ``K<n>``)."""
    return (f"MSH|^~\\&|PAS|RTK|PRIORSCAN|REGION|20240101120000||ADT^A28|K{n}|P|2.4\r"
            f"EVN|A28|20240101120000\rPID|1||KL{n:06d}^^^RTK^MR||KILLTEST{n}^ANNA||19700101|F\r").encode()


@contextmanager
def serving(db_url: str, mllp_port: int, http_port: int,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:  # type: ignore[type-arg]
    """``priorscan serve`` in its own process group (so that kill -9 takes its writer processes too)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "priorscan.cli", "--db", db_url, "serve", "--port", str(http_port), "--mllp-port",
         str(mllp_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", mllp_port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("priorscan serve did not start") from None
                time.sleep(0.1)
        yield process
    finally:
        kill_group(process)


def kill_group(process: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """kill -9 the server and its writer processes (its own process group)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


def kill9(db_url: str, engine: Engine, messages: int, kills: int, ports: Callable[[], int], *,
          seed: int = 0) -> Figures:
    """Send ``messages`` registrations while ``priorscan serve`` is killed -9 ``kills`` times at random moments;
    after each kill the server is started again and the message without an ACK is sent again (as an interface
    engine does). Then count ACKed messages lost and messages applied twice."""
    rng = random.Random(seed)
    kill_at = sorted(rng.sample(range(1, messages), min(kills, messages - 1)))
    figures = Figures()
    acked: set[int] = set()
    started = time.monotonic()
    n = 0
    while n < messages:
        mllp_port, http_port = ports(), ports()
        with serving(db_url, mllp_port, http_port) as process:
            sender = Sender(mllp_port)
            next_kill = kill_at.pop(0) if kill_at else None
            while n < messages:
                if next_kill is not None and n == next_kill:
                    # kill while the message is in flight: send it, then kill -9 before reading its ACK
                    assert sender._connect()  # noqa: SLF001 - the raw socket, to kill mid-exchange
                    sender.sock.sendall(START + registration(n) + END)  # type: ignore[union-attr]
                    time.sleep(rng.uniform(0.0, 0.05))
                    kill_group(process)
                    figures.kills += 1
                    sender.close()
                    break  # the message is sent again after the restart
                figures.inputs += 1
                ack = sender.exchange(registration(n))
                code = ack_code(ack)
                figures.acks[code] += 1
                if code == "AA":
                    acked.add(n)
                    n += 1
                elif ack is None:
                    figures.no_ack += 1
                    break
            sender.close()
    figures.acked_lost = sum(1 for m in acked if not aa_committed(engine, f"K{m}"))
    figures.duplicates = applied_twice(engine, "K")
    figures.seconds = time.monotonic() - started
    return figures


def applied_twice(engine: Engine, prefix: str) -> int:
    """Messages (MSH-10 starting ``prefix``) applied more than once: accepted-audit rows beyond one per MSH-10."""
    with engine.connect() as connection:
        rows = connection.execute(select(AuditEvent.entity, func.count()).where(
            AuditEvent.event_type == "hl7", AuditEvent.outcome == "0",
            AuditEvent.entity.like(f"% MSH-10 {prefix}%")).group_by(AuditEvent.entity)).all()
    return sum(count - 1 for _, count in rows if count > 1)


# --- the database going away, and read-only ------------------------------------------------------------------------

def outage(port: int, fault: Callable[[bool], None], *, before: int, during: int, after: int, prefix: str,
           recover_within_s: float = 60.0) -> tuple[Figures, dict[str, list[str]]]:
    """Messages before the fault, during it (``fault(True)``) and after it is cleared (``fault(False)``), on one
    listener that is never restarted: the ACK codes of each phase (after the fault, until ``after`` AAs came or
    ``recover_within_s`` passed). During the fault no AA may come."""
    figures = Figures()
    sender = Sender(port, timeout=60)
    started = time.monotonic()
    serial = 0

    def send() -> str:
        nonlocal serial
        message = (f"MSH|^~\\&|PAS|RTK|PRIORSCAN|REGION|20240101120000||ADT^A28|{prefix}{serial}|P|2.4\r"
                   f"PID|1||{prefix}{serial:06d}^^^RTK^MR||OUTAGE{serial}^BEN||19700101|M\r").encode()
        serial += 1
        figures.inputs += 1
        ack = sender.exchange(message)
        code = ack_code(ack)
        figures.acks[code] += 1
        figures.no_ack += ack is None
        return code

    try:
        before_codes = [send() for _ in range(before)]
        fault(True)
        during_codes = [send() for _ in range(during)]
        fault(False)
        cleared = time.monotonic()
        deadline = cleared + recover_within_s
        after_codes: list[str] = []
        while len([c for c in after_codes if c == "AA"]) < after and time.monotonic() < deadline:
            after_codes.append(send())
            if after_codes[-1] == "AA" and figures.recovery_s is None:
                figures.recovery_s = time.monotonic() - cleared
    finally:
        sender.close()
    figures.seconds = time.monotonic() - started
    return figures, {"before": before_codes, "during": during_codes, "after": after_codes}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench reliability")
    parser.add_argument("--examples", type=int, default=2000, help="hypothesis-generated messages")
    parser.add_argument("--messages", type=int, default=1000, help="registrations sent across the kill -9 faults")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--db", default="sqlite", help="sqlite, or a PostgreSQL URL of an empty database")
    parser.add_argument("--outage", action="store_true",
                        help="PostgreSQL only: the database refusing connections, then read-only, under one listener "
                             "(the server's user must be allowed to ALTER DATABASE)")
    parser.add_argument("--during", type=int, default=50, help="messages sent during each outage")
    args = parser.parse_args(argv)
    if args.outage:
        results = run_outages(args.db, during=args.during)
    else:
        results = run_all(args.db, examples=args.examples, messages=args.messages, kills=args.kills)
    print(json.dumps(results, indent=2))
    return 0


def run_all(db: str, *, examples: int, messages: int, kills: int) -> dict[str, Any]:
    """Fuzz then kill -9 on a fresh store (a temporary SQLite file, or the PostgreSQL URL given)."""
    import tempfile

    from api.context import AppContext
    from api.feeds.mllp import stop_writer
    from priorscan.settings import Settings

    folder = tempfile.mkdtemp(prefix="priorscan-reliability-")
    url = f"sqlite:///{folder}/reliability.db" if db == "sqlite" else db
    context = AppContext.open(Settings(db=url, env="test"))
    free = _free_ports()
    try:
        mllp_port, http_port = free(), free()
        with serving(url, mllp_port, http_port):
            fuzzed = fuzz(mllp_port, context.engine, examples)
        killed = kill9(url, context.engine, messages, kills, free)
    finally:
        stop_writer(context)
        context.engine.dispose()
    return {"store": context.engine.dialect.name, "fuzz": fuzzed.as_dict(), "kill9": killed.as_dict()}


def database_fault(admin: Engine, database: str,
                   statements: Callable[[str, bool], list[str]]) -> Callable[[bool], None]:
    """A fault on one PostgreSQL database: ``statements(quoted name, on)`` run by ``admin``, then that database's
    connections ended so that the server's next ones meet the new state."""
    from sqlalchemy import text

    def fault(on: bool) -> None:
        with admin.connect() as connection:
            for sql in statements(f'"{database}"', on):
                connection.execute(text(sql))
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": database})
            connection.commit()

    return fault


GONE: Callable[[str, bool], list[str]] = lambda db, on: [  # noqa: E731
    f"ALTER DATABASE {db} WITH ALLOW_CONNECTIONS {'false' if on else 'true'}"]
READ_ONLY: Callable[[str, bool], list[str]] = lambda db, on: [  # noqa: E731
    f"ALTER DATABASE {db} SET default_transaction_read_only = on" if on
    else f"ALTER DATABASE {db} RESET default_transaction_read_only"]


def run_outages(url: str, *, during: int) -> dict[str, Any]:
    """The database going away, then read-only, each under a ``priorscan serve`` that is not restarted."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    free = _free_ports()
    out: dict[str, Any] = {"store": "postgresql"}
    try:
        for name, statements in (("gone", GONE), ("read_only", READ_ONLY)):
            mllp_port = free()
            with serving(url, mllp_port, free()):
                fault = database_fault(admin, str(parsed.database), statements)
                figures, phases = outage(mllp_port, fault, before=10, during=during, after=10,
                                         prefix=f"{name.upper()}{int(time.time())}-")
            out[name] = {**figures.as_dict(), "phases": {k: dict(Counter(v)) for k, v in phases.items()}}
    finally:
        admin.dispose()
    return out


def _free_ports() -> Callable[[], int]:
    def free() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    return free


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
