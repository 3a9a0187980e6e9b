"""Every patient a list shows is in the audit trail under that patient: "who looked at my record" finds the alerts
list and the identity review queue, not only a count of what they showed."""

from __future__ import annotations

import httpx
from api_factories import make_alert
from sqlalchemy import select
from test_mpi_router import seed

from priorscan.tables import AuditEvent


def _readers_of(context, regional_id: str) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with context.sessions() as session:
        return set(session.execute(select(AuditEvent.subtype, AuditEvent.agent_name)
                                   .where(AuditEvent.regional_patient_id == regional_id,
                                          AuditEvent.action == "R")).tuples())


def test_the_alerts_list_audits_each_patient_shown(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    context = live_server_sqlite.context
    patients = ["RPAUDIT000001", "RPAUDIT000002", "RPAUDIT000003"]
    for regional_id in [*patients, patients[0]]:
        make_alert(context, regional_patient_id=regional_id)
    token = live_server_sqlite.token(["priorscan/alerts"], client="alert-reader")
    answer = httpx.get(live_server_sqlite.base_url + "/api/v1/alerts?status=open",
                       headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and len(answer.json()["alerts"]) == 4
    for regional_id in patients:
        assert ("search", "alert-reader") in _readers_of(context, regional_id), regional_id


def test_the_review_queue_audits_each_patient_shown(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    server = live_server_sqlite
    seed(server)
    headers = {"Authorization": f"Bearer {server.token(['priorscan/mpi-review'], client='steward')}"}
    [item] = httpx.get(server.base_url + "/api/v1/mpi/review", headers=headers).json()["items"]
    shown = {item["record"]["regionalId"], item["candidate"]["regionalId"]}
    assert len(shown) == 2
    httpx.get(server.base_url + f"/api/v1/mpi/review/{item['id']}", headers=headers)
    for regional_id in shown:
        readers = _readers_of(server.context, regional_id)
        assert ("mpi-review-queue", "steward") in readers and ("mpi-review-item", "steward") in readers
