"""Factories for the workspace tests: patients through the real MPI, studies in the imaging index, requests through
the real duplicate check (as HL7, FHIR and the API would send them), and a second ``priorscan serve`` worker."""

from __future__ import annotations

import asyncio
import itertools
import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from dedupe import CheckRequest, PatientQuery, ProcedureQuery, active_rules, run_check
from dedupe.check import CheckOutcome
from imaging.tables import Study
from mpi import Demographics, PatientIndex
from mpi.nhs_number import check_digit
from priorscan.audit import Agent
from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry

LONDON = ZoneInfo("Europe/London")
AGENT = Agent("client", "workspace-tests")
_uids = itertools.count(1)


def nhs_number(n: int) -> str:
    """The ``n``-th valid NHS number of the 999 test range (never issued)."""
    found = 0
    for candidate in itertools.count(1):
        first = f"999{candidate:06d}"
        digit = check_digit(first)
        if digit is None or digit == 10:
            continue
        found += 1
        if found == n:
            return first + str(digit)
    raise AssertionError("unreachable")


def london(day: date, hour: int = 10, minute: int = 15) -> datetime:
    """A local (Europe/London) time on ``day``, as an aware UTC instant."""
    return datetime.combine(day, time(hour, minute), tzinfo=LONDON).astimezone(UTC)


def add_patient(session: Session, trusts: TrustRegistry, *, trust: str = "RTK", local_id: str = "AB100001",
                nhs: str | None = None, family: str = "Okafor", given: str = "Adaeze",
                birth_date: date | None = date(1970, 5, 17), sex: str = "female",
                verified: bool = True) -> tuple[str, int]:
    """A source record linked by the real MPI; (regional id, source record id)."""
    outcome = PatientIndex(session, trusts).upsert(Demographics(
        namespace=trusts.by_ods(trust).fhir_system, local_id=local_id, trust_ods=trust, nhs_number=nhs,
        nhs_verification=("01" if verified else "02") if nhs else None, family=family, given=given,
        birth_date=birth_date, sex=sex, postcode="GU1 4AA"), event="test", actor="workspace-tests")
    session.flush()
    return outcome.regional_id, outcome.source_record_id


def add_study(session: Session, source_record_id: int | None, *, on: date, days_ago: int = 10, modality: str = "CT",
              region: str | None = "head", laterality: str | None = "none", trust: str | None = "RYR",
              status: str = "completed", dose: float | None = 1.8, dlp: float | None = None,
              ctdivol: float | None = None, description: str | None = None) -> str:
    uid = f"2.25.{next(_uids)}{datetime.now(UTC).microsecond}"
    study_date = on - timedelta(days=days_ago)
    session.add(Study(study_instance_uid=uid, source_record_id=source_record_id, performing_trust=trust,
                      accession_number=f"{trust or 'X'}-{next(_uids)}", status=status, modality=modality,
                      body_region=region, laterality=laterality,
                      description=description or f"{modality} {region or ''}".strip(), study_date=study_date,
                      study_datetime=london(study_date), effective_dose_msv=dose, dlp_total_mgycm=dlp,
                      ctdivol_mgy=ctdivol, dose_source="rdsr" if dose is not None or dlp is not None else None))
    session.flush()
    return uid


def request(session: Session, trusts: TrustRegistry, *, nhs: str | None, at: datetime, trust: str = "RTK",
            placer: str | None = None, modality: str = "CT", body_site: str = "head", channel: str = "hl7",
            record_order: bool = True, **patient: Any) -> CheckOutcome:
    """A request checked as an entry point would (an order when ``placer`` is given), requested at ``at``."""
    rules = active_rules(None)
    query = ProcedureQuery(modality=modality, body_site=body_site, requesting_trust=trust,
                           placer_order_number=placer, requested_at=at)
    identifiers = ((NHS_NUMBER_SYSTEM, nhs),) if nhs else ()
    return run_check(session, trusts, rules, CheckRequest(
        PatientQuery(identifiers=identifiers, **patient), query, channel=channel, record_order=record_order,
        order_status="active" if placer and record_order else None), agent=AGENT)


class ServeWorker:
    """A second ``priorscan serve`` worker (HTTP and MLLP) on the same store, in a thread with its own loop."""

    def __init__(self, db_url: str) -> None:
        from api_factories import free_port

        from api.context import AppContext
        from priorscan.settings import Settings

        self.context = AppContext.open(Settings(db=db_url, env="test", mllp_writer_processes=0))
        self.port, self.mllp_port = free_port(), free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from api.http.server import serve

        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(serve(self.context, host="127.0.0.1", port=self.port,
                                               mllp_port=self.mllp_port, log_level="warning", ready=self.ready,
                                               stop=self.stop))
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def __enter__(self) -> ServeWorker:
        import time as clock

        self.thread.start()
        deadline = clock.monotonic() + 30
        while not self.ready.is_set():
            if clock.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the second worker did not start")
            clock.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=30)
        self.context.engine.dispose()

    def send_hl7(self, message: str) -> str:
        """Send one message over MLLP and return the ACK."""
        from hl7.client import MLLPClient

        with MLLPClient("127.0.0.1", self.mllp_port) as client:
            answer = client.send_message(message)
        return answer.decode() if isinstance(answer, bytes) else str(answer)
