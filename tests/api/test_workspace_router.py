"""The workspace's JSON over a real HTTP server: signed-in people only, trust-scoped, audited per patient, no-store,
and the live channel (server-sent events) fed by the database from another worker's writes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from api_factories import PASSWORD, make_user
from fixed_dates import AS_OF
from sqlalchemy import select
from workspace_factories import add_patient, add_study, london, nhs_number, request

from api.context import AppContext
from api.http.deps import SESSION_COOKIE
from priorscan.settings import Settings
from priorscan.tables import AuditEvent

JSON = {"Accept": "application/json"}


def sign_in(base: str, username: str) -> dict[str, str]:
    response = httpx.post(base + "/ui/login", data={"username": username, "password": PASSWORD}, headers=JSON)
    assert response.status_code == 200, response.text
    return {SESSION_COOKIE: response.cookies[SESSION_COOKIE]}


def seed(context: AppContext, n: int = 1, *, placer: str = "ORD-1", trust: str = "RTK") -> str:
    """A patient at RTK and RYR with a CT head 10 days ago at RYR, and a CT head request at ``trust``; regional id."""
    number = nhs_number(n)
    with context.sessions() as session:
        add_patient(session, context.trusts, trust="RTK", local_id=f"AB{n:06d}", nhs=number)
        regional_id, ryr = add_patient(session, context.trusts, trust="RYR", local_id=f"{n:08d}", nhs=number)
        add_study(session, ryr, on=AS_OF, days_ago=10)
        request(session, context.trusts, nhs=number, at=london(AS_OF), placer=placer, trust=trust)
        session.commit()
    return regional_id


def audits(context: AppContext, subtype: str) -> list[AuditEvent]:
    with context.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.event_type == "workspace",
                                                             AuditEvent.subtype == subtype)))


def test_the_workspace_needs_a_session_and_shows_ones_own_trust(live_server) -> None:  # type: ignore[no-untyped-def]
    context, base = live_server.context, live_server.base_url
    regional_id = seed(context)
    seed(context, 2, placer="ORD-RXC", trust="RXC")
    make_user(context)
    make_user(context, "analyst.one", role="analyst", trust=None)
    url = f"{base}/api/v1/workspace/worklist?date={AS_OF.isoformat()}"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, cookies=sign_in(base, "analyst.one")).status_code == 403  # no clinical scope
    cookie = sign_in(base, "rad.one")
    assert httpx.get(url + "&trust=RXC", cookies=cookie).status_code == 403
    response = httpx.get(url, cookies=cookie)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert (body["trust"], body["openAlerts"]) == ("RTK", 1)
    assert [i["placerOrderNumber"] for i in body["items"]] == ["ORD-1"]
    item = body["items"][0]
    assert (item["verdict"], item["identity"], item["nearestPriorDays"]) == ("warning", "confirmed", 10)
    worklist_audit = audits(context, "worklist")
    assert [(a.regional_patient_id, a.agent_name) for a in worklist_audit] == [(regional_id, "rad.one")]

    view = httpx.get(f"{base}/api/v1/workspace/requests/{item['id']}", cookies=cookie)
    assert view.status_code == 200 and view.json()["patient"]["name"] == "OKAFOR, Adaeze"
    assert [(a.regional_patient_id, a.entity) for a in audits(context, "request-view")] == [
        (regional_id, f"request/{item['id']}")]
    rxc = httpx.get(f"{base}/api/v1/workspace/worklist", headers={"Authorization": f"Bearer {live_server.token()}"},
                    params={"trust": "RXC", "date": AS_OF.isoformat()}).json()
    other = rxc["items"][0]["id"]
    assert httpx.get(f"{base}/api/v1/workspace/requests/{other}", cookies=cookie).status_code == 404

    patient = httpx.get(f"{base}/api/v1/workspace/patients/{regional_id}?asOf={AS_OF}", cookies=cookie)
    assert patient.status_code == 200
    assert [s["trust"] for s in patient.json()["studies"]] == ["RYR"]  # another trust's imaging: the point
    seen = audits(context, "patient-view")
    assert [(a.regional_patient_id, (a.detail or {}).get("trust")) for a in seen] == [(regional_id, "RTK")]
    assert httpx.get(f"{base}/api/v1/workspace/patients/RPNOBODY", cookies=cookie).status_code == 404


def test_the_session_lists_the_pages_of_the_role(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    context, base = live_server_sqlite.context, live_server_sqlite.base_url
    make_user(context)
    make_user(context, "analyst.one", role="analyst", trust=None)
    pages = [p["id"] for p in httpx.get(base + "/ui/session", cookies=sign_in(base, "rad.one")).json()["pages"]]
    assert pages == ["worklist", "request", "patient", "check"]
    analyst = sign_in(base, "analyst.one")
    answer = httpx.get(base + "/ui/session", cookies=analyst).json()
    assert (answer["pages"], answer["live"]) == ([], False)
    assert httpx.get(base + "/api/v1/workspace/events", cookies=analyst).status_code == 403  # no live channel


def test_a_pages_own_live_source_reaches_only_the_roles_it_names(session, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A page plugged into the shell sends its changes to the people whose role grants its scope, and to no one else."""
    from datetime import UTC, datetime

    from api.http.deps import Principal
    from api.workspace import Change, ChangeFeed, register_source
    from api.workspace import live as live_module

    monkeypatch.setattr(live_module, "_SOURCES", list(live_module._SOURCES))
    stamp = datetime.now(UTC)
    register_source(lambda s, trust, since: [Change("review", "item-1", stamp, {"queue": 1})],
                    scope="priorscan/mpi-review")
    steward = Principal("user", "steward", ("priorscan/mpi-review",), role="mpi-steward")
    radiographer = Principal("user", "rad", ("priorscan/alerts",), trust_ods="RTK", role="radiographer")
    before = stamp.replace(year=stamp.year - 1)
    assert [c.event for c in ChangeFeed(before, allows=steward.allows).read(session, None)] == ["review"]
    assert [c.event for c in ChangeFeed(before, allows=radiographer.allows).read(session, "RTK")] == []


def test_the_live_channel_sends_an_alert_raised_by_another_worker(live_server) -> None:  # type: ignore[no-untyped-def]
    context, base = live_server.context, live_server.base_url
    make_user(context)
    cookie = sign_in(base, "rad.one")
    found: list[dict[str, Any]] = []
    with httpx.stream("GET", base + "/api/v1/workspace/events", cookies=cookie, timeout=20) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                found.append({"event": event, **json.loads(line[6:])})
                if event == "hello":
                    # another worker: its own engine and process state, the same database
                    other = AppContext.open(Settings(db=context.engine.url.render_as_string(hide_password=False),
                                                     env="test"))
                    try:
                        seed(other, placer="ORD-LIVE")
                        seed(other, 2, placer="ORD-ELSEWHERE", trust="RXC")
                    finally:
                        other.engine.dispose()
                if event == "change":
                    break
    assert found[0] == {"event": "hello", "openAlerts": 0, "trust": "RTK"}
    changes = [c for e in found if e["event"] == "change" for c in e["changes"]]
    assert {(c["event"], c["placerOrderNumber"]) for c in changes} == {("alert", "ORD-LIVE"), ("request", "ORD-LIVE")}
    assert found[-1]["openAlerts"] == 1
    assert all("okafor" not in json.dumps(c).lower() for c in changes)  # no patient details down the stream


@pytest.mark.parametrize("date_text", ["2026-02-30", "yesterday", "15/06/2026"])
def test_a_date_that_is_not_a_date_is_refused(live_server_sqlite, date_text: str) -> None:  # type: ignore[no-untyped-def]
    make_user(live_server_sqlite.context)
    base = live_server_sqlite.base_url
    response = httpx.get(f"{base}/api/v1/workspace/worklist", params={"date": date_text},
                         cookies=sign_in(base, "rad.one"))
    assert response.status_code == 422


def test_the_worklist_defaults_to_today_in_london(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    from api.workspace import local_today

    make_user(live_server_sqlite.context)
    base = live_server_sqlite.base_url
    body = httpx.get(f"{base}/api/v1/workspace/worklist", cookies=sign_in(base, "rad.one")).json()
    assert body["date"] == body["today"] == local_today("Europe/London").isoformat()
