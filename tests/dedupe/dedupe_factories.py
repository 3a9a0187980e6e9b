"""Factories for the tests of dedupe/: rule sets, exams and requests for the pure judgement; patients, studies and
checks in a real store (patients go through the real MPI, studies are rows of the imaging index)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from dedupe import (
    CheckRequest,
    Exam,
    PatientQuery,
    Procedure,
    ProcedureCode,
    ProcedureQuery,
    RequestFacts,
    RequestReason,
    load_rules,
    run_check,
)
from dedupe.check import CheckOutcome
from dedupe.vocabulary import rule_vocabulary
from imaging.tables import Study
from mpi import Demographics, PatientIndex
from mpi.nhs_number import check_digit
from priorscan.audit import Agent
from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry

TODAY = date(2025, 3, 31)
AGENT = Agent("client", "dedupe-tests")
RULES = load_rules(vocabulary=rule_vocabulary())
_uids = itertools.count(1)


def nhs_number(n: int) -> str:
    """A valid NHS number in the 999 test range (never issued), the ``n``-th one."""
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


# --- pure judgement ---------------------------------------------------------------------------------------------

def procedure(modality: str | None = "CT", region: str | None = "head", laterality: str | None = "none",
              code: str | None = None, system: str | None = None, regions: tuple[str, ...] = ()) -> Procedure:
    return Procedure(modality, region, laterality, system, code, regions)


def exam(days_ago: int = 10, *, modality: str = "CT", region: str | None = "head", laterality: str | None = "none",
         status: str = "completed", kind: str = "study", trust: str = "RTK", code: str | None = None,
         system: str | None = None, dose: float | None = 2.0, on: date = TODAY, regions: tuple[str, ...] = ()) -> Exam:
    """One of the patient's exams, ``days_ago`` calendar days before ``on`` (``regions``: every region it names)."""
    uid = f"2.25.{next(_uids)}" if kind == "study" else None
    return Exam(kind=kind, status=status, procedure=procedure(modality, region, laterality, code, system, regions),
                on_date=on - timedelta(days=days_ago), trust=trust, study_instance_uid=uid,
                accession_number=f"ACC{next(_uids)}", placer_order_number="P-OLD" if kind == "order" else None,
                description=f"{modality} {region}", effective_dose_msv=dose)


def facts(modality: str = "CT", region: str | None = "head", laterality: str | None = "none", *,
          circumstances: frozenset[str] = frozenset(), age: int | None = 40, trust: str = "RTK",
          code: str | None = None, system: str | None = None, on: date = TODAY,
          regions: tuple[str, ...] = ()) -> RequestFacts:
    return RequestFacts(procedure(modality, region, laterality, code, system, regions), on, trust, circumstances,
                        age)


# --- the store --------------------------------------------------------------------------------------------------

def add_patient(session: Session, trusts: TrustRegistry, *, trust: str = "RTK", local_id: str = "AB100001",
                nhs: str | None = None, family: str = "Okafor", given: str = "Adaeze",
                birth_date: date | None = date(1970, 5, 17), sex: str = "female",
                postcode: str = "GU1 4AA") -> tuple[str, int]:
    """A source record linked by the real MPI; (regional id, source record id)."""
    outcome = PatientIndex(session, trusts).upsert(Demographics(
        namespace=trusts.by_ods(trust).fhir_system, local_id=local_id, trust_ods=trust, nhs_number=nhs,
        nhs_verification="01" if nhs else None, family=family, given=given, birth_date=birth_date, sex=sex,
        postcode=postcode), event="test", actor="dedupe-tests")
    session.flush()
    return outcome.regional_id, outcome.source_record_id


def add_study(session: Session, source_record_id: int, *, days_ago: int = 10, on: date = TODAY,
              modality: str = "CT", region: str | None = "head", laterality: str | None = "none",
              trust: str = "RTK", status: str = "completed", dose: float | None = 1.8,
              code: str | None = None, system: str | None = None, accession: str | None = None,
              description: str | None = None, regions: str | None = None, patient_age: int | None = None) -> str:
    uid = f"2.25.{next(_uids)}{datetime.now(UTC).microsecond}"
    study_date = on - timedelta(days=days_ago)
    session.add(Study(study_instance_uid=uid, source_record_id=source_record_id, performing_trust=trust,
                      accession_number=accession or f"{trust}-{next(_uids)}", status=status, modality=modality,
                      body_region=region, laterality=laterality, procedure_system=system, procedure_code=code,
                      description=description or f"{modality} {region or ''}".strip(), body_regions=regions,
                      study_date=study_date,
                      study_datetime=datetime(study_date.year, study_date.month, study_date.day, 10, tzinfo=UTC),
                      effective_dose_msv=dose, patient_age_years=patient_age))
    session.flush()
    return uid


def check(session: Session, trusts: TrustRegistry, *, identifiers: tuple[tuple[str, str], ...] = (),
          modality: str | None = "CT", body_site: str | None = "head", laterality: str | None = None,
          code: ProcedureCode | None = None, priority: str | None = None, reason: str | None = None,
          trust: str | None = "RXC", placer: str | None = None, on: date = TODAY, channel: str = "api",
          **patient: Any) -> CheckOutcome:
    """Run the duplicate check as of ``on`` (noon, local) and return its outcome (not committed)."""
    query = ProcedureQuery(codes=(code,) if code else (), modality=modality, body_site=body_site,
                           laterality=laterality, priority=priority, reason=RequestReason(reason),
                           requesting_trust=trust, placer_order_number=placer,
                           requested_at=datetime(on.year, on.month, on.day, 12, tzinfo=UTC), request_date=on)
    return run_check(session, trusts, RULES, CheckRequest(PatientQuery(identifiers=identifiers, **patient), query,
                                                          channel=channel), agent=AGENT)


def by_nhs(number: str) -> tuple[tuple[str, str], ...]:
    return ((NHS_NUMBER_SYSTEM, number),)
