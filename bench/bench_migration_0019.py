"""Migration 0019 (identifiers into the match fields, H-ID-61) on a store of N records stored before it.

``python -m bench migration_0019 URL N``: URL an empty store (SQLite file or PostgreSQL database), N records written
as the code before identifiers were evidence left them (match fields without ``identifiers``; every other record
with one further identifier), then the store stamped 0018 and migrated; prints the migration's CPU and wall seconds.
"""

from __future__ import annotations

import json
import resource
import time
from datetime import UTC, datetime

from sqlalchemy import text

from priorscan.db import make_engine, migrate

BATCH = 50_000


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    url, n = argv[0], int(argv[1])
    engine = make_engine(url)
    migrate(engine)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    fields = json.dumps({"family": "SMITH", "given": "JOHN", "birth_year": 1970, "postcode": "GU27XX"})
    json_value = "CAST(:mf AS JSONB)" if engine.dialect.name == "postgresql" else ":mf"
    with engine.begin() as connection:
        for start in range(0, n, BATCH):
            rows = [{"id": i, "ns": "https://fhir.rtk.nhs.uk/Id/mrn", "lid": f"A{i}", "mf": fields, "now": now}
                    for i in range(start + 1, min(n, start + BATCH) + 1)]
            connection.execute(text(
                "INSERT INTO source_record (id, namespace, local_id, source_kind, provisional, active, "
                f"nhs_number_valid, match_fields, link_manual, version, created_at, updated_at) VALUES (:id, :ns, "
                f":lid, 'hl7', false, true, false, {json_value}, false, 1, :now, :now)"), rows)
            connection.execute(text("INSERT INTO source_identifier (source_record_id, system, value) VALUES "
                                    "(:id, 'https://fhir.rxc.nhs.uk/Id/mrn', :lid)"),
                               [{"id": r["id"], "lid": "B" + str(r["lid"])} for r in rows if int(str(r["id"])) % 2])
        connection.execute(text("UPDATE alembic_version SET version_num = '0018'"))
    cpu, wall = _cpu(), time.perf_counter()
    migrate(engine)
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    with engine.connect() as connection:
        keys = connection.execute(text("SELECT count(*) FROM blocking_key WHERE key LIKE 'i:%'")).scalar()
    engine.dispose()
    print(f"{engine.dialect.name} records={n} migrate cpu_s={cpu:.1f} wall_s={wall:.1f} i_keys={keys}")
    return 0
