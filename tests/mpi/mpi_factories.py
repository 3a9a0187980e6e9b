"""Factories for the MPI tests: source records, and a patient index over a fresh store (fixtures in conftest)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from sqlalchemy.orm import Session

from mpi import Demographics, PatientIndex
from mpi.normalise import MatchRecord, to_match_record
from priorscan.db import make_engine, session_factory
from priorscan.trusts import default_trusts

TRUST_A = "https://fhir.rtk.nhs.uk/Id/mrn"
TRUST_B = "https://fhir.rxc.nhs.uk/Id/mrn"
TRUST_C = "https://fhir.rpc.nhs.uk/Id/mrn"

#: A valid NHS number (test range 999) and others, each passing the Modulus 11 check.
NHS = "9434765919"
NHS_OTHER = "9434765870"
NHS_THIRD = "9990000018"


def demographics(namespace: str = TRUST_A, local_id: str = "A1", **fields: Any) -> Demographics:
    """A typical adult's record; ``fields`` override (``None`` removes a field)."""
    base = Demographics(namespace=namespace, local_id=local_id, nhs_number=NHS, nhs_verification="01",
                        family="Whitfield", given="Eleanor Grace", birth_date=date(1978, 3, 14), sex="female",
                        postcode="GU1 4AB", address="12 Mill Lane, Guildford", phone="01483 555 123")
    return replace(base, **fields)


def match_record(record_id: int = 1, **fields: Any) -> MatchRecord:
    """A normalised record from the same defaults."""
    d = demographics(**fields)
    return to_match_record(record_id, {k: v for k, v in d.__dict__.items()})


@pytest.fixture
def session(sqlite_url: str) -> Iterator[Session]:
    engine = make_engine(sqlite_url)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


@pytest.fixture
def index(session: Session) -> PatientIndex:
    return PatientIndex(session, default_trusts())


def same_family_estimates(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, list[float]]]]:
    """Every call of :func:`mpi.training.estimate_u_same_family` from now on (the test's end): the model it was
    given and the u it gave, in order."""
    import mpi.training as training

    learnt = training.estimate_u_same_family
    calls: list[tuple[Any, dict[str, list[float]]]] = []

    def spy(model: Any, *args: Any, **kwargs: Any) -> dict[str, list[float]]:
        found = learnt(model, *args, **kwargs)
        calls.append((model, found))
        return found

    monkeypatch.setattr(training, "estimate_u_same_family", spy)
    return calls
