"""The workspace's read models on both backends: the worklist of a trust's day, one request with its patient and
priors, the patient's imaging with dose over rolling windows, and the live channel's change feed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from fixed_dates import AS_OF
from sqlalchemy import update
from sqlalchemy.orm import Session
from workspace_factories import add_patient, add_study, london, nhs_number, request

from api.workspace import (
    ChangeFeed,
    WorklistQuery,
    changes_since,
    complete_priors,
    read_patient_view,
    read_request,
    read_worklist,
)
from api.workspace.live import LOOKBACK
from dedupe.tables import Alert
from imaging import Study, patient_timeline
from priorscan.settings import Settings
from priorscan.trusts import TrustRegistry, load_trusts

TZ = "Europe/London"


@pytest.fixture
def trusts() -> TrustRegistry:
    return load_trusts(Settings().trusts_file)


def two_trust_patient(session: Session, trusts: TrustRegistry, n: int = 1, *, prior_days: int = 10,
                      family: str = "Okafor") -> tuple[str, str]:
    """A patient known at RTK and RYR with a CT head at RYR ``prior_days`` before AS_OF; (regional id, NHS no.)."""
    number = nhs_number(n)
    add_patient(session, trusts, trust="RTK", local_id=f"AB{n:06d}", nhs=number, family=family)
    regional_id, ryr = add_patient(session, trusts, trust="RYR", local_id=f"{n:08d}", nhs=number, family=family)
    add_study(session, ryr, on=AS_OF, days_ago=prior_days, trust="RYR", dose=1.9)
    return regional_id, number


def test_the_worklist_holds_the_trusts_requests_of_the_day_warnings_first(session: Session,
                                                                           trusts: TrustRegistry) -> None:
    _, warned = two_trust_patient(session, trusts, 1)
    _, clear_one = two_trust_patient(session, trusts, 2)
    request(session, trusts, nhs=clear_one, at=london(AS_OF, 8), placer="ORD-CLEAR", modality="XR",
            body_site="knee")
    request(session, trusts, nhs=warned, at=london(AS_OF, 11), placer="ORD-WARN")
    request(session, trusts, nhs=None, at=london(AS_OF, 9), placer="ORD-NOBODY", family="Unknown",
            birth_date=date(1999, 1, 1))
    request(session, trusts, nhs=warned, at=london(AS_OF, 9), placer="ORD-RXC", trust="RXC")  # another trust
    request(session, trusts, nhs=warned, at=london(AS_OF - timedelta(days=1)), placer="ORD-YESTERDAY")
    session.commit()

    items = read_worklist(session, WorklistQuery("RTK", AS_OF), timezone=TZ)
    assert [i.placer_order_number for i in items] == ["ORD-WARN", "ORD-NOBODY", "ORD-CLEAR"]
    warn, nobody, clear = items
    assert (warn.verdict, warn.identity, warn.status, warn.nearest_prior_days) == ("warning", "confirmed", "open", 10)
    assert warn.patient_name == "OKAFOR, Adaeze" and warn.nhs_number == f"{warned[:3]} {warned[3:6]} {warned[6:]}"
    assert (nobody.verdict, nobody.identity, nobody.nearest_prior_days) == ("clear", "unknown", None)
    assert (clear.verdict, clear.identity, clear.status) == ("clear", "confirmed", "active")
    # filters
    assert [i.placer_order_number for i in read_worklist(session, WorklistQuery("RTK", AS_OF, modality="XR"),
                                                         timezone=TZ)] == ["ORD-CLEAR"]
    assert [i.placer_order_number for i in read_worklist(session, WorklistQuery("RTK", AS_OF, status="open"),
                                                         timezone=TZ)] == ["ORD-WARN"]
    assert [i.placer_order_number for i in read_worklist(session, WorklistQuery("RTK", AS_OF, verdict="clear"),
                                                         timezone=TZ)] == ["ORD-NOBODY", "ORD-CLEAR"]
    assert [i.placer_order_number for i in read_worklist(session, WorklistQuery("RXC", AS_OF),
                                                         timezone=TZ)] == ["ORD-RXC"]


def test_a_request_without_an_order_number_is_on_the_worklist_by_its_alert(session: Session,
                                                                          trusts: TrustRegistry) -> None:
    _, number = two_trust_patient(session, trusts)
    outcome = request(session, trusts, nhs=number, at=london(AS_OF), placer=None, channel="api")
    session.commit()
    items = read_worklist(session, WorklistQuery("RTK", AS_OF), timezone=TZ)
    assert [(i.id, i.verdict, i.channel) for i in items] == [(f"alert-{outcome.alert_id}", "warning", "api")]


@pytest.mark.parametrize(("local_hour", "day"), [
    (0, AS_OF),  # 00:30 local is the day itself (23:30 UTC the day before in summer)
    (23, AS_OF),  # 23:30 local still is
])
def test_the_day_is_the_local_calendar_day(session: Session, trusts: TrustRegistry, local_hour: int,
                                           day: date) -> None:
    _, number = two_trust_patient(session, trusts)
    request(session, trusts, nhs=number, at=london(AS_OF, local_hour, 30), placer="ORD-EDGE")
    session.commit()
    assert [i.placer_order_number for i in read_worklist(session, WorklistQuery("RTK", day), timezone=TZ)] \
        == ["ORD-EDGE"]
    for other in (day - timedelta(days=1), day + timedelta(days=1)):
        assert read_worklist(session, WorklistQuery("RTK", other), timezone=TZ) == []


def test_the_request_view_names_the_patient_and_completes_a_prior_without_a_trust(session: Session,
                                                                                 trusts: TrustRegistry) -> None:
    number = nhs_number(3)
    regional_id, rtk = add_patient(session, trusts, trust="RTK", local_id="AB000003", nhs=number)
    _, ryr = add_patient(session, trusts, trust="RYR", local_id="00000003", nhs=number)
    uid = add_study(session, ryr, on=AS_OF, days_ago=5, trust=None)  # loaded without a performing trust
    outcome = request(session, trusts, nhs=number, at=london(AS_OF), placer="ORD-1")
    session.commit()
    assert outcome.priors[0]["trust"] is None  # what the check kept

    item = read_worklist(session, WorklistQuery("RTK", AS_OF), timezone=TZ)[0]
    view = read_request(session, trusts, item.id, trust="RTK", timezone=TZ)
    shown = view.as_json(today=AS_OF)
    patient = shown["patient"]
    assert patient["name"] == "OKAFOR, Adaeze"
    assert patient["nhsNumber"] == f"{number[:3]} {number[3:6]} {number[6:]}"
    assert (patient["birthDate"], patient["sex"], patient["hospitalNumber"]) == ("1970-05-17", "Female", "AB000003")
    assert patient["trusts"] == ["RTK", "RYR"] and patient["identityDoubt"] is None
    prior = shown["priors"][0]
    assert prior["studyInstanceUid"] == uid
    assert (prior["trust"], prior["trustKnown"]) == ("RYR", True)  # from the record the study arrived with
    assert prior["trustName"] == "University Hospitals Sussex NHS Foundation Trust"
    assert uid in prior["viewerUrl"]
    # an alert kept before priors had links (or whose trust had no viewer then) gets the trust's own viewer now
    kept = {k: v for k, v in outcome.priors[0].items() if k not in ("viewerUrl", "trustName")}
    (again,) = complete_priors(session, trusts, [kept])
    assert (again["trust"], again["trustKnown"]) == ("RYR", True)
    assert uid in again["viewerUrl"] and "trust=RYR" in again["viewerUrl"]
    # a study the index knows under no trust at all still gets the regional viewer's launch, and says so
    orphan = add_study(session, None, on=AS_OF, days_ago=5, trust=None)
    (lost,) = complete_priors(session, trusts, [{"studyInstanceUid": orphan, "trust": None, "viewerUrl": None}])
    assert lost["trustKnown"] is False and orphan in lost["viewerUrl"] and "IHEInvokeImageDisplay" in lost["viewerUrl"]
    assert shown["alert"]["actions"] == ["acknowledge", "override", "cancel"]
    assert regional_id == patient["regionalPatientId"] and rtk


def test_another_trusts_request_is_not_found(session: Session, trusts: TrustRegistry) -> None:
    from priorscan.errors import NotFoundError

    _, number = two_trust_patient(session, trusts)
    request(session, trusts, nhs=number, at=london(AS_OF), placer="ORD-1")
    session.commit()
    item = read_worklist(session, WorklistQuery("RTK", AS_OF), timezone=TZ)[0]
    with pytest.raises(NotFoundError):
        read_request(session, trusts, item.id, trust="RXC", timezone=TZ)
    for bad in ("order-x", "nothing", "alert-1", f"order-{10**9}"):
        with pytest.raises(NotFoundError):
            read_request(session, trusts, bad, trust="RTK", timezone=TZ)


def test_the_patient_view_sums_dose_over_rolling_windows_and_flags_the_drl(session: Session,
                                                                           trusts: TrustRegistry) -> None:
    number = nhs_number(4)
    regional_id, rtk = add_patient(session, trusts, trust="RTK", local_id="AB000004", nhs=number)
    add_study(session, rtk, on=AS_OF, days_ago=3, trust="RTK", modality="CT", region="head", dose=2.0, dlp=1200,
              ctdivol=60)  # above the head DRL (790 mGy.cm, 47 mGy)
    add_study(session, rtk, on=AS_OF, days_ago=200, trust="RTK", modality="CT", region="chest", dose=5.0)
    add_study(session, rtk, on=AS_OF, days_ago=400, trust="RTK", modality="XR", region="chest", dose=None)
    add_study(session, rtk, on=AS_OF, days_ago=20, trust="RTK", modality="US", region="abdomen", dose=None)
    request(session, trusts, nhs=number, at=london(AS_OF), placer="ORD-9")
    session.commit()
    view = read_patient_view(session, trusts, regional_id, as_of=AS_OF, timezone=TZ)
    assert view is not None
    windows = {w.label: (round(w.total_msv, 3), w.studies, w.without_estimate) for w in view.windows}
    assert windows == {"Last 30 days": (2.0, 1, 0), "Last 12 months": (7.0, 2, 0), "Last 5 years": (7.0, 3, 1),
                       "All on record": (7.0, 3, 1)}
    head = next(s for s in view.studies if s["bodySite"] == "head")
    assert head["drl"]["above"] is True
    assert [a["placerOrderNumber"] for a in view.alerts] == ["ORD-9"]
    assert view.orders == []  # the request is shown by its alert
    request(session, trusts, nhs=number, at=london(AS_OF), placer="ORD-10", modality="XR", body_site="knee")
    session.commit()
    view = read_patient_view(session, trusts, regional_id, as_of=AS_OF, timezone=TZ)
    assert view is not None and [o["placerOrderNumber"] for o in view.orders] == ["ORD-10"]


def test_a_qa_test_under_the_patient_adds_no_dose_and_no_drl_flag(session: Session, trusts: TrustRegistry) -> None:
    # hazard H-DICOM-03: a phantom's dose is no patient's, on the radiographer's patient page too
    regional_id, rtk = add_patient(session, trusts, trust="RTK", local_id="AB000006", nhs=nhs_number(6))
    add_study(session, rtk, on=AS_OF, days_ago=3, trust="RTK", dose=2.0, dlp=700, ctdivol=40)
    phantom = add_study(session, rtk, on=AS_OF, days_ago=2, trust="RTK", dose=9.0, dlp=2500, ctdivol=90)
    unestimated = add_study(session, rtk, on=AS_OF, days_ago=1, trust="RTK", dose=None, dlp=300)
    for uid in (phantom, unestimated):
        session.query(Study).filter(Study.study_instance_uid == uid).one().not_patient = "SeriesDescription: QA"
    session.commit()
    view = read_patient_view(session, trusts, regional_id, as_of=AS_OF, timezone=TZ)
    assert view is not None
    windows = {w.label: (round(w.total_msv, 3), w.studies, w.without_estimate) for w in view.windows}
    assert windows["Last 30 days"] == (2.0, 1, 0)
    shown = {s["studyInstanceUid"]: s for s in view.studies}
    assert shown[phantom]["notPatient"] == "SeriesDescription: QA" and shown[phantom]["drl"] is None
    timeline = patient_timeline(session, trusts, regional_id)
    assert timeline is not None and timeline.studies_without_estimate == 0


def test_a_childs_ct_is_not_flagged_against_the_adult_drl(session: Session, trusts: TrustRegistry) -> None:
    regional_id, rtk = add_patient(session, trusts, trust="RTK", local_id="AB000005", nhs=nhs_number(5),
                                   birth_date=AS_OF - timedelta(days=365 * 6))
    add_study(session, rtk, on=AS_OF, days_ago=3, trust="RTK", dose=2.0, dlp=1200, ctdivol=60)
    session.commit()
    view = read_patient_view(session, trusts, regional_id, as_of=AS_OF, timezone=TZ)
    assert view is not None and view.studies[0]["drl"] is None  # the UK adult table does not apply to a child


def test_the_change_feed_sees_a_late_commit_once(session: Session, trusts: TrustRegistry) -> None:
    _, number = two_trust_patient(session, trusts)
    session.commit()
    start = datetime.now(UTC)
    feed = ChangeFeed(start)
    feed.prime(session, "RTK")
    outcome = request(session, trusts, nhs=number, at=london(AS_OF), placer="ORD-LIVE")
    session.commit()
    first = feed.read(session, "RTK")
    assert {c.event for c in first} == {"alert", "request"}
    assert next(c for c in first if c.event == "alert").data["verdict"] == "warning"
    assert feed.read(session, "RTK") == []  # nothing twice
    assert feed.read(session, "RXC") == [] or all(c.data["requestingTrust"] == "RXC" for c in feed.read(session, "RXC"))
    # a change stamped before the cursor (a slow commit, a clock behind) but within the look-back is still sent
    session.execute(update(Alert).where(Alert.id == outcome.alert_id)
                    .values(status="acknowledged", updated_at=feed.cursor - LOOKBACK / 2))
    session.commit()
    late = feed.read(session, "RTK")
    assert [(c.event, c.data["status"]) for c in late] == [("alert", "acknowledged")]
    assert changes_since(session, "RXC", start - LOOKBACK) == []
