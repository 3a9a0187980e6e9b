"""Repeat imaging and what the alerts changed, for analysts and notebooks: pandas frames, pseudonymised.

Notebooks import these through :mod:`dedupe` (the package's front)::

    from dedupe import alerts_frame, repeats_frame
    from imaging import studies_frame
    studies = studies_frame(url, pseudonym_key=key)
    repeats = repeats_frame(studies)          # every study, with the comparable prior that makes it a repeat
    alerts = alerts_frame(url, pseudonym_key=key)

A **repeat** is a study for which the patient had a comparable study (the duplicate check's own rule table and
judgement, :func:`dedupe.comparable.judge`) within the rule's *warning* window before it, at the same trust or at
another one. It is counted from the table's windows alone: the circumstances that would downgrade an alert (trauma,
oncology, planned follow-up) are not known for past studies, so the rates measure how often imaging was repeated,
not how often it should not have been.
"""

from __future__ import annotations

import secrets
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select

from dedupe.comparable import Exam, Procedure, RequestFacts, judge
from dedupe.rules import RuleSet, load_rules
from dedupe.tables import Alert
from priorscan.csv_cells import neutral_cell
from priorscan.db import make_engine, session_factory

if TYPE_CHECKING:
    import pandas as pd

ALERT_COLUMNS = ("alert", "patient", "requesting_trust", "channel", "identity", "verdict", "status", "request_date",
                 "created_at",
                 "acted_at", "reason_code", "reason_display", "dose_avoided_msv", "prior_trust", "prior_days_ago",
                 "prior_rule", "prior_modality", "prior_body_region", "across_trusts")


def _pseudonym(key: bytes, value: str | None) -> str | None:
    from imaging import pseudonym

    return pseudonym(key, value)


def alerts_frame(engine: Engine | str, *, pseudonym_key: bytes | None = None) -> pd.DataFrame:
    """Every alert with its outcome (pseudonymised: no names, identifiers, order numbers or free text).

    Columns: ``alert`` and ``patient`` (keyed pseudonyms), ``requesting_trust``, ``channel``, ``identity``,
    ``verdict``, ``status`` (open, acknowledged, overridden, cancelled), ``request_date`` (the request's London
    date, which periods count by), ``created_at``, ``acted_at``,
    ``reason_code`` and ``reason_display`` (the coded override reason), ``dose_avoided_msv`` (an estimate, set when
    a request was cancelled), and the first prior shown: its ``prior_trust``, ``prior_days_ago``, ``prior_rule``,
    ``prior_modality``, ``prior_body_region``, and ``across_trusts`` (the prior was at another trust).
    """
    import pandas as pd

    key = pseudonym_key or secrets.token_bytes(32)
    owned = isinstance(engine, str)
    bound = make_engine(engine) if isinstance(engine, str) else engine
    rows: list[dict[str, Any]] = []
    try:
        with session_factory(bound)() as session:
            for alert in session.scalars(select(Alert).order_by(Alert.created_at)):
                first = (alert.priors or [{}])[0] if alert.priors else {}
                prior_trust = first.get("trust")
                rows.append({
                    "alert": _pseudonym(key, alert.id), "patient": _pseudonym(key, alert.regional_patient_id),
                    "requesting_trust": alert.requesting_trust, "channel": alert.channel,
                    "identity": alert.identity, "verdict": alert.verdict, "status": alert.status,
                    "request_date": alert.request_date, "created_at": alert.created_at,
                    "acted_at": alert.acted_at, "reason_code": alert.reason_code,
                    "reason_display": alert.reason_display, "dose_avoided_msv": alert.dose_avoided_msv,
                    "prior_trust": prior_trust, "prior_days_ago": first.get("daysAgo"),
                    "prior_rule": first.get("rule"), "prior_modality": first.get("modality"),
                    "prior_body_region": first.get("bodySite"),
                    "across_trusts": (None if not prior_trust or not alert.requesting_trust
                                      else prior_trust != alert.requesting_trust)})
    finally:
        if owned:
            bound.dispose()
    frame = pd.DataFrame(rows, columns=list(ALERT_COLUMNS))
    for column in ("created_at", "acted_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["request_date"] = pd.to_datetime(frame["request_date"])
    return frame


def repeats_frame(studies: pd.DataFrame, rules: RuleSet | None = None) -> pd.DataFrame:
    """Each completed study with whether it repeated a comparable study within the rule's warning window.

    Parameters
    ----------
    studies
        What :func:`imaging.studies_frame` returns.
    rules
        The rule table (the packaged default when None).

    Returns
    -------
    pandas.DataFrame
        ``patient``, ``study``, ``trust``, ``modality``, ``body_region``, ``study_date``, ``repeat`` (bool),
        ``prior_trust``, ``days_since_prior`` and ``across_trusts`` (the prior was at another trust) for repeats,
        and ``rule`` (the rule that fired).
    """
    import pandas as pd

    rules = rules or load_rules()
    usable = studies[(studies["status"] == "completed") & studies["patient"].notna() & studies["study_date"].notna()]
    if "withdrawn" in usable:
        usable = usable[usable["withdrawn"].isna()]
    if "not_patient" in usable:  # a QA or phantom test repeats nothing
        usable = usable[~usable["not_patient"].fillna(False).astype(bool)]
    usable = usable.sort_values(["patient", "study_date", "study"], kind="stable")
    records: list[dict[str, Any]] = []
    for _patient, own in usable.groupby("patient", sort=False):
        exams: list[Exam] = []
        for row in own.itertuples(index=False):
            procedure = Procedure(row.modality, row.body_region, row.laterality)
            on = row.study_date.date()
            request = RequestFacts(procedure=procedure, request_date=on, requesting_trust=row.trust)
            # earlier studies only (a study on the same day counts as earlier when it came first in the index)
            found = [p for p in judge(rules, request, exams).priors if p.severity == "warning"]
            prior = found[0] if found else None
            records.append({
                "patient": row.patient, "study": row.study, "trust": row.trust, "modality": row.modality,
                "body_region": row.body_region, "study_date": row.study_date, "repeat": prior is not None,
                "prior_trust": prior.exam.trust if prior else None,
                "days_since_prior": prior.days_ago if prior else None,
                "across_trusts": (prior.exam.trust != row.trust) if prior else None,
                "rule": prior.rule if prior else None})
            exams.append(Exam(kind="study", status="completed", procedure=procedure, on_date=on, trust=row.trust,
                              study_instance_uid=row.study))
    return pd.DataFrame(records, columns=["patient", "study", "trust", "modality", "body_region", "study_date",
                                          "repeat", "prior_trust", "days_since_prior", "across_trusts", "rule"])


def repeat_rates(repeats: pd.DataFrame, by: tuple[str, ...] = ("modality",), freq: str | None = None) -> pd.DataFrame:
    """Repeat rates: studies, repeats within and across trusts, and their shares, by ``by`` (and by period
    ``freq``, e.g. ``"M"`` for calendar months, when given)."""
    import pandas as pd

    frame = repeats.copy()
    keys = list(by)
    if freq:
        frame["period"] = frame["study_date"].dt.to_period(freq).dt.to_timestamp()
        keys = ["period", *keys]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "studies", "repeats", "within_trust", "across_trusts", "repeat_rate",
                                     "across_trust_rate"])
    frame[list(by)] = frame[list(by)].astype(object).where(frame[list(by)].notna(), "unknown")
    frame["within"] = frame["repeat"] & (frame["across_trusts"] == False)  # noqa: E712 - None is neither
    frame["across"] = frame["repeat"] & (frame["across_trusts"] == True)  # noqa: E712
    out = frame.groupby(keys).agg(studies=("study", "size"), repeats=("repeat", "sum"),
                                  within_trust=("within", "sum"), across_trusts=("across", "sum")).reset_index()
    out["repeat_rate"] = out["repeats"] / out["studies"]
    out["across_trust_rate"] = out["across_trusts"] / out["studies"]
    return out


def alert_outcomes(alerts: pd.DataFrame, freq: str = "M") -> pd.DataFrame:
    """Alerts raised per period (of the request's date), and how they ended: acknowledged, overridden, cancelled
    (request withdrawn as a duplicate) or still open, with the estimated dose the cancellations avoided."""
    import pandas as pd

    if alerts.empty:
        return pd.DataFrame(columns=["period", "raised", "acknowledged", "overridden", "cancelled", "open",
                                     "dose_avoided_msv"])
    frame = alerts.copy()
    created = frame["created_at"].dt.tz_convert("Europe/London").dt.tz_localize(None).dt.normalize()
    frame["period"] = frame["request_date"].fillna(created).dt.to_period(freq).dt.to_timestamp()
    counts = frame.pivot_table(index="period", columns="status", values="alert", aggfunc="count", fill_value=0)
    out = pd.DataFrame(index=counts.index)
    out["raised"] = counts.sum(axis=1)
    for status in ("acknowledged", "overridden", "cancelled", "open"):
        out[status] = counts[status] if status in counts else 0
    avoided = frame[frame["status"] == "cancelled"].groupby("period")["dose_avoided_msv"].sum(min_count=1)
    out["dose_avoided_msv"] = avoided.reindex(out.index).fillna(0.0)
    return out.reset_index()


def override_reasons(alerts: pd.DataFrame) -> pd.DataFrame:
    """Overridden alerts by coded reason (the IR(ME)R justification given), most common first."""
    overridden = alerts[alerts["status"] == "overridden"]
    reasons = overridden["reason_display"].fillna(overridden["reason_code"]).fillna("no reason recorded")
    return reasons.value_counts().rename_axis("reason").rename("alerts").reset_index()


def before_and_after(repeats: pd.DataFrame, go_live: date, *, trust: str | None = None,
                     by: tuple[str, ...] = ("modality",)) -> pd.DataFrame:
    """Repeat rates before and after a trust (or the region, when ``trust`` is None) went live, by ``by``.

    A study belongs to the period of its own date; ``trust`` restricts the studies to those performed there (the
    repeats it might have avoided).
    """
    import pandas as pd

    frame = repeats if trust is None else repeats[repeats["trust"] == trust]
    frame = frame.assign(period=frame["study_date"].dt.date.map(
        lambda d: "after" if d >= go_live else "before"))
    rates = repeat_rates(frame, by=("period", *by))
    return rates.sort_values([*by, "period"], key=lambda c: c.map({"before": 0, "after": 1}) if c.name == "period"
                             else c, kind="stable").reset_index(drop=True) if not rates.empty else pd.DataFrame(
        columns=rates.columns)




# --- the analysts' extract ---------------------------------------------------------------------------------------

#: The extract's tables and what each holds (the columns are documented in docs/analytics.md).
EXTRACT_TABLES = ("studies", "repeats", "alerts")


def write_extract(engine: Engine, out: Any, *, fmt: str = "parquet", pseudonym_key: bytes | None = None
                  ) -> dict[str, int]:
    """Write the pseudonymised analysts' extract (studies, repeats, alerts) under ``out``; rows per table.

    One key names patients in every table of one extract, so they join; a new key per extract (unless given)
    keeps extracts unlinkable to each other.
    """
    from pathlib import Path

    from imaging import studies_frame

    key = pseudonym_key or secrets.token_bytes(32)
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    studies = studies_frame(engine, pseudonym_key=key)
    tables = {"studies": studies, "repeats": repeats_frame(studies) if len(studies) else studies.iloc[0:0],
              "alerts": alerts_frame(engine, pseudonym_key=key)}
    written = {}
    for name, frame in tables.items():
        target = directory / f"{name}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(target, index=False)
        else:  # free text (protocol, station, description) comes from the feeds: no cell read as a formula
            text = frame.select_dtypes(include="object").columns
            frame.assign(**{name: frame[name].map(neutral_cell) for name in text}).to_csv(target, index=False)
        written[name] = len(frame)
    return written


def run_export_analytics(args: Any, ctx: Any) -> int:
    """``priorscan export analytics --out DIR [--format parquet|csv] [--pseudonym-key-file FILE]``."""
    from pathlib import Path

    from priorscan.audit import Agent, record
    from priorscan.errors import InputError
    from priorscan.unit_of_work import unit_of_work

    key = None
    if getattr(args, "pseudonym_key_file", None):
        key = Path(args.pseudonym_key_file).read_bytes().strip()
        if len(key) < 16:
            raise InputError("the pseudonym key file must hold at least 16 bytes", code="input.pseudonym-key")
    written = write_extract(ctx.engine, args.out, fmt=args.format, pseudonym_key=key)
    with unit_of_work(session_factory(ctx.engine)) as session:
        record(session, Agent("user", "cli"), action="E", event_type="export", subtype="analytics-export",
               detail={"format": args.format, "rows": written})
    for name, rows in written.items():
        print(f"{name}: {rows} rows → {Path(args.out) / f'{name}.{args.format}'}")
    return 0


__all__ = ["EXTRACT_TABLES", "alert_outcomes", "alerts_frame", "before_and_after", "override_reasons", "repeat_rates",
           "repeats_frame", "run_export_analytics", "write_extract"]
