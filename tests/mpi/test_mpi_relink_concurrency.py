"""A relink and the live feeds at the same time: what a feed commits while a relink runs is never overwritten.

The relink reads every record, scores, and writes its clusters; a record linked, merged or updated live in between
would be overwritten from the relink's stale read (hazard H-ID-31). Live identity writes wait for the relink.
"""

from __future__ import annotations

import threading
from datetime import date

from sqlalchemy import func, select

from mpi import Demographics, PatientIndex
from mpi.batch import relink
from mpi.tables import SourceRecord
from priorscan.db import make_engine, session_factory
from priorscan.trusts import default_trusts

RTK = "https://fhir.rtk.nhs.uk/Id/mrn"


def _person(local_id: str, given: str) -> Demographics:
    return Demographics(RTK, local_id, family="Okafor", given=given, birth_date=date(1970, 5, 17), sex="female",
                        postcode="KT16 0PZ")


def test_a_live_write_waits_for_a_running_relink_and_is_kept(store_url: str) -> None:
    engine = make_engine(store_url)
    factory = session_factory(engine)
    try:
        with factory() as setup:
            PatientIndex(setup, default_trusts()).upsert(_person("R1", "Adaeze"), event="ADT^A04", actor="feed")
            setup.commit()
        relinking = factory()
        relink(relinking, train=False)  # holds the live writes from here until it commits
        outcome: dict[str, object] = {}

        def live_feed() -> None:
            with factory() as feed:
                result = PatientIndex(feed, default_trusts()).upsert(_person("R2", "Chioma"), event="ADT^A04",
                                                                      actor="feed")
                feed.commit()
                outcome["regional_id"] = result.regional_id

        feed = threading.Thread(target=live_feed)
        feed.start()
        feed.join(2.0)
        assert feed.is_alive(), "a live write went ahead while the relink had not committed"
        relinking.commit()
        relinking.close()
        feed.join(30)
        assert not feed.is_alive() and outcome.get("regional_id")
        with factory() as check:
            kept = check.scalar(select(SourceRecord.regional_patient_id).where(SourceRecord.local_id == "R2"))
            assert kept == outcome["regional_id"]
            assert check.scalar(select(func.count()).select_from(SourceRecord)) == 2
    finally:
        engine.dispose()
