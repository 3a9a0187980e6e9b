"""A study indexed before the normaliser learnt its wording is a prior once ``priorscan imaging reread-procedures`` has
read it again (hazard H-CMP-12): until then it keeps the reading it was stored with, and the duplicate check compares
by the stored reading. What the index does not keep (a region from Body Part Examined, a side the images stated) is
never overridden by the re-read."""

from __future__ import annotations

from dedupe_factories import add_patient, add_study, check
from sqlalchemy import select
from sqlalchemy.orm import Session

from imaging import Study, reread_procedures
from priorscan.audit import Agent
from priorscan.db import session_factory
from priorscan.tables import AuditEvent
from priorscan.trusts import TrustRegistry

AGENT = Agent("user", "tests")


def _prior_uids(session: Session, trusts: TrustRegistry, local_id: str, **request: str) -> list[str]:
    outcome = check(session, trusts, identifiers=((trusts.by_ods("RTK").fhir_system, local_id),), trust="RTK",
                    **request)
    session.commit()
    return [p["studyInstanceUid"] for p in outcome.priors]


def _reading(session: Session, uid: str) -> tuple[object, ...]:
    study = session.scalar(select(Study).where(Study.study_instance_uid == uid))
    assert study is not None
    return study.modality, study.body_region, study.body_regions, study.laterality, study.normalisation


def test_a_study_stored_with_an_old_reading_is_a_prior_after_the_reread(db: Session, trusts: TrustRegistry) -> None:
    _, record_id = add_patient(db, trusts, trust="RTK", local_id="RR100001")
    # as the index stored "US TV" before it knew the wording: no region, so never a prior
    uid = add_study(db, record_id, days_ago=10, modality="US", region=None, laterality=None, description="US TV",
                    dose=None)
    db.commit()
    assert _prior_uids(db, trusts, "RR100001", modality="US", body_site="pelvis") == []
    sessions = session_factory(db.get_bind())
    dry = reread_procedures(sessions, trusts, agent=AGENT, dry_run=True)
    assert [c.study_instance_uid for c in dry.changes] == [uid]
    db.expire_all()
    assert _reading(db, uid)[1] is None  # a dry run changes nothing
    report = reread_procedures(sessions, trusts, agent=AGENT, batch=1)
    assert [(c.study_instance_uid, c.after["body_region"]) for c in report.changes] == [(uid, "pelvis")]
    db.expire_all()
    assert _reading(db, uid) == ("US", "pelvis", None, "none", "description")
    assert _prior_uids(db, trusts, "RR100001", modality="US", body_site="pelvis") == [uid]
    again = reread_procedures(sessions, trusts, agent=AGENT)
    assert (again.studies, again.changes) == (report.studies, [])  # idempotent
    events = db.scalars(select(AuditEvent).where(AuditEvent.subtype == "procedure-reread")).all()
    assert [(e.entity, e.detail["after"]["body_region"]) for e in events] == [(f"ImagingStudy/{uid}", "pelvis")]


def test_a_cta_chest_stored_as_every_territory_is_no_longer_a_prior_of_a_ctca(db: Session,
                                                                               trusts: TrustRegistry) -> None:
    _, record_id = add_patient(db, trusts, trust="RTK", local_id="RR100002")
    uid = add_study(db, record_id, days_ago=3, region="angiography", description="CTA chest")  # as stored before
    db.commit()
    assert _prior_uids(db, trusts, "RR100002", body_site="CT coronary angiogram") == [uid]  # every territory
    reread_procedures(session_factory(db.get_bind()), trusts, agent=AGENT)
    db.expire_all()
    assert _reading(db, uid)[1:3] == ("pulmonary-angiography", "pulmonary-angiography aortic-angiography")
    assert _prior_uids(db, trusts, "RR100002", body_site="CT coronary angiogram") == []
    assert _prior_uids(db, trusts, "RR100002", body_site="CTPA") == [uid]


def test_what_the_index_does_not_keep_is_not_overridden(db: Session, trusts: TrustRegistry) -> None:
    _, record_id = add_patient(db, trusts, trust="RTK", local_id="RR100003")
    # a region read from Body Part Examined (not stored): the description names none, so the stored reading stands
    from_anatomy = add_study(db, record_id, modality="XR", region="knee", laterality="left",
                             description="Plain film 2 views")
    # a side the images stated: the description names none, so the side stands
    with_side = add_study(db, record_id, modality="XR", region="knee", laterality="right", description="XR Knee")
    db.commit()
    for uid, normalisation in ((from_anatomy, "anatomy"), (with_side, "description")):
        db.execute(Study.__table__.update().where(Study.study_instance_uid == uid)
                   .values(normalisation=normalisation, contrast=False))
    db.commit()
    report = reread_procedures(session_factory(db.get_bind()), trusts, agent=AGENT)
    assert report.changes == [] and report.kept >= 1
    db.expire_all()
    assert _reading(db, from_anatomy)[1:4] == ("knee", None, "left")
    assert _reading(db, with_side)[1:4] == ("knee", None, "right")
