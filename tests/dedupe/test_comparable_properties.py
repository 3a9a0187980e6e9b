"""Properties of the pure rule engine (hypothesis), over the packaged rule table and the whole vocabulary:

- left never matches right;
- MR never compares with CT (nor any modality with another);
- pregnancy (ionising, abdomen or pelvis) is never downgraded, whatever else the request states;
- adding an unrelated prior never lowers a verdict (nor removes a prior);
- a prior's ``daysAgo`` is the difference of the two London calendar dates, whatever offset the times were sent in.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from dedupe_factories import RULES, exam, facts
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe import judge
from dedupe.circumstances import ONCOLOGY, PLANNED_FOLLOW_UP, PREGNANCY, TRANSFER, TRAUMA
from dedupe.comparable import Exam, local_date
from imaging.dicom_time import LOCAL_ZONE, study_time
from imaging.procedures import MODALITIES
from imaging.regions import BODY_REGIONS, LATERALITIES, REGIONS

_RANK = {"clear": 0, "info": 1, "warning": 2}
modalities = st.sampled_from(MODALITIES)
regions = st.sampled_from(BODY_REGIONS)
sides = st.sampled_from((*LATERALITIES, None))
circumstance_sets = st.frozensets(st.sampled_from((TRAUMA, TRANSFER, ONCOLOGY, PLANNED_FOLLOW_UP, PREGNANCY)))
ages = st.one_of(st.none(), st.integers(0, 99))
days = st.integers(-3, 400)
statuses = st.sampled_from(("completed", "scheduled", "cancelled"))


@st.composite
def exams(draw: st.DrawFn, modality: st.SearchStrategy[str] = modalities) -> Exam:
    named = draw(st.lists(regions, min_size=1, max_size=3, unique=True))
    return exam(draw(days), modality=draw(modality), region=named[0], regions=tuple(named),
                laterality=draw(sides), status=draw(statuses), trust=draw(st.sampled_from(("RTK", "RXC", "RYR"))))


@settings(max_examples=300, deadline=None)
@given(modality=modalities, region=st.sampled_from([r for r, v in REGIONS.items() if v.paired]), age=ages,
       circumstances=circumstance_sets, prior=exams())
def test_left_never_matches_right(modality, region, age, circumstances, prior) -> None:  # type: ignore[no-untyped-def]
    left = facts(modality, region, "left", age=age, circumstances=circumstances)
    right = replace(prior, procedure=replace(prior.procedure, laterality="right"))
    assert judge(RULES, left, [right]).priors == []


@settings(max_examples=300, deadline=None)
@given(request_modality=modalities, region=regions, side=sides, circumstances=circumstance_sets, age=ages,
       prior=exams())
def test_one_modality_never_compares_with_another(request_modality, region, side, circumstances, age,  # type: ignore[no-untyped-def]
                                                  prior) -> None:
    request = facts(request_modality, region, side, age=age, circumstances=circumstances)
    found = judge(RULES, request, [prior]).priors
    if prior.procedure.modality != request_modality:
        assert found == []


@settings(max_examples=200, deadline=None)
@given(region=regions, prior=exams(st.sampled_from(("CT", "MR"))), age=ages)
def test_mr_never_compares_with_ct(region, prior, age) -> None:  # type: ignore[no-untyped-def]
    other = "CT" if prior.procedure.modality == "MR" else "MR"
    assert judge(RULES, facts(other, region, age=age), [prior]).priors == []


@settings(max_examples=300, deadline=None)
@given(modality=st.sampled_from(RULES.ionising_modalities), region=st.sampled_from(RULES.exceptions.pregnancy.regions),
       others=st.frozensets(st.sampled_from((TRAUMA, ONCOLOGY, PLANNED_FOLLOW_UP))), age=ages,
       priors=st.lists(exams(), max_size=4))
def test_pregnancy_is_never_downgraded(modality, region, others, age, priors) -> None:  # type: ignore[no-untyped-def]
    pregnant = judge(RULES, facts(modality, region, age=age, circumstances=others | {PREGNANCY}), priors)
    plain = judge(RULES, facts(modality, region, age=age), priors)
    assert [p.severity for p in pregnant.priors] == [p.severity for p in plain.priors]
    assert pregnant.verdict == plain.verdict


@settings(max_examples=300, deadline=None)
@given(modality=modalities, region=regions, side=sides, circumstances=circumstance_sets, age=ages,
       priors=st.lists(exams(), max_size=4), added=exams())
def test_adding_a_prior_never_lowers_a_verdict(modality, region, side, circumstances, age, priors, added) -> None:  # type: ignore[no-untyped-def]
    request = facts(modality, region, side, age=age, circumstances=circumstances)
    before = judge(RULES, request, priors)
    after = judge(RULES, request, [*priors, added])
    assert _RANK[after.verdict] >= _RANK[before.verdict]
    assert {id(p.exam) for p in before.priors} <= {id(p.exam) for p in after.priors}


@settings(max_examples=300, deadline=None)
@given(performed=st.datetimes(datetime(2024, 1, 1), datetime(2027, 12, 31)),
       later=st.timedeltas(timedelta(0), timedelta(days=80)),
       offset_minutes=st.sampled_from((-300, 0, 60, 120, 330)))
def test_days_ago_is_the_difference_of_london_dates(performed, later, offset_minutes) -> None:  # type: ignore[no-untyped-def]
    """The prior's time as a modality sends it (DICOM date, time and Timezone Offset From UTC), the request's as an
    aware instant: the judgement's days ago is the difference of their calendar dates in London."""
    zone = timezone(timedelta(minutes=offset_minutes))
    instant = performed.replace(tzinfo=UTC, microsecond=0)
    sent = instant.astimezone(zone)
    sign = "-" if offset_minutes < 0 else "+"
    offset = f"{sign}{abs(offset_minutes) // 60:02d}{abs(offset_minutes) % 60:02d}"
    read = study_time(sent.strftime("%Y%m%d"), sent.strftime("%H%M%S"), offset)
    assert read.instant == instant
    requested_at = instant + later
    prior = Exam(kind="study", status="completed", procedure=facts().procedure, on_date=read.local_date,
                 trust="RTK", at=read.instant, study_instance_uid="2.25.1")
    request = facts(on=local_date(requested_at, RULES.timezone))
    [shown] = judge(RULES, request, [prior]).priors or [None]
    expected = (requested_at.astimezone(LOCAL_ZONE).date() - instant.astimezone(LOCAL_ZONE).date()).days
    if expected <= 90:
        assert shown is not None and shown.days_ago == expected


_WORDS = ("no", "not", "denies", "pregnant", "contrast", "for", "trauma", "RTC", "staging", "post-op", "?", "-", ",",
          "query", "negative", "excluded", "planned", "transferred", "from", "GP", "as", "but", "and", "leak")


@settings(max_examples=300, deadline=None)
@given(before=st.lists(st.sampled_from(_WORDS), max_size=12), after=st.lists(st.sampled_from(_WORDS), max_size=12),
       priority=st.sampled_from((None, "stat", "routine")))
def test_a_sentence_stating_pregnancy_is_never_negated_by_another(before, after, priority) -> None:  # type: ignore[no-untyped-def]
    """Negation applies to the term it negates: whatever the sentences around it say, "Pregnant." counts."""
    from dedupe.circumstances import RequestReason, read_circumstances

    text = f"{' '.join(before)}. Pregnant. Headache {' '.join(after)}"
    assert PREGNANCY in read_circumstances(RULES, priority=priority, reason=RequestReason(text)), text
