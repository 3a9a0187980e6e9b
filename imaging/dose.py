"""Dose arithmetic: a study's dose summary from its irradiation events and the totals its reports state.

Pure functions over plain values: no SQL, no files, no DICOM. The SR tree is read in :mod:`imaging.rdsr`, the
reference tables (conversion coefficients, DRLs) are loaded in :mod:`imaging.reference` and passed in.

Counting rules, so that re-sent and growing reports are never counted twice:

- an irradiation event is identified by its Irradiation Event UID; storing it again replaces it;
- a report's accumulated totals are kept per *report key* (the scope of accumulation, or the report's own UID);
  a re-sent report under the same key keeps the largest values. Reports that share an irradiation event describe
  overlapping work, so only the largest of them counts; reports with disjoint events (two performed procedure
  steps) add up;
- a study total counts each group of overlapping reports by its largest accumulated value, and adds the events
  that no accumulated value covers (a report without that total, or events from image headers).

Effective dose is an **estimate** (a population index, not the patient's dose): E = k × DLP with k chosen by target
region and phantom (REFERENCE.md, ICRP 103), for CT only; it is labelled with how it was made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

CT = "ct"
PROJECTION = "projection"
FLUORO = "fluoro"
MAMMO = "mammo"
NM = "nm"
EVENT_KINDS = (CT, PROJECTION, FLUORO, MAMMO, NM)

HEAD_PHANTOM = 16
BODY_PHANTOM = 32

ESTIMATE_LABEL = "estimate (population index, not patient dose)"


@dataclass(frozen=True)
class DoseEvent:
    """One irradiation event (from an RDSR, or from one image's header when no RDSR exists)."""

    event_uid: str
    kind: str  # ct | projection | fluoro | mammo | nm
    source: str = "rdsr"  # rdsr | header
    target_region: str | None = None  # a value of imaging.regions.BODY_REGIONS
    phantom_cm: int | None = None  # 16 (head) or 32 (body) for CT
    laterality: str | None = None
    ctdivol_mgy: float | None = None
    dlp_mgycm: float | None = None
    dap_gym2: float | None = None
    dose_rp_gy: float | None = None
    agd_mgy: float | None = None
    activity_mbq: float | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class PlaneTotals:
    """One accumulated-dose container of a report (per acquisition plane for projection X-ray)."""

    plane: str = "single"  # single | a | b | unspecified
    dlp_total_mgycm: float | None = None
    dap_total_gym2: float | None = None
    dose_rp_total_gy: float | None = None
    fluoro_time_s: float | None = None
    agd_left_mgy: float | None = None
    agd_right_mgy: float | None = None
    activity_total_mbq: float | None = None
    event_count: int | None = None


TOTAL_FIELDS = ("dlp_total_mgycm", "dap_total_gym2", "dose_rp_total_gy", "fluoro_time_s", "agd_left_mgy",
                "agd_right_mgy", "activity_total_mbq")


@dataclass(frozen=True)
class ReportTotals:
    """What one dose report states about the whole of the work it covers."""

    report_key: str
    event_uids: frozenset[str] = frozenset()
    dlp_total_mgycm: float | None = None
    dap_total_gym2: float | None = None
    dose_rp_total_gy: float | None = None
    fluoro_time_s: float | None = None
    agd_left_mgy: float | None = None
    agd_right_mgy: float | None = None
    activity_total_mbq: float | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"events": sorted(self.event_uids)}
        out.update({name: getattr(self, name) for name in TOTAL_FIELDS if getattr(self, name) is not None})
        return out

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, object]) -> ReportTotals:
        events = data.get("events") or []
        values = {name: _float(data.get(name)) for name in TOTAL_FIELDS}
        return cls(key, frozenset(str(e) for e in events), **values)  # type: ignore[union-attr, attr-defined]


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _max(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _sum(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def report_totals(report_key: str, event_uids: Iterable[str], planes: Sequence[PlaneTotals]) -> ReportTotals:
    """Combine one report's accumulation containers: the largest per plane, added across planes A and B.

    A single-plane container and plane A/B containers in one report are not added to each other (some vendors send
    both); the larger of "single" and "A + B" is kept.
    """
    by_plane: dict[str, dict[str, float | None]] = {}
    for container in planes:
        current = by_plane.setdefault(container.plane, {})
        for name in TOTAL_FIELDS:
            current[name] = _max(current.get(name), getattr(container, name))
    values: dict[str, float | None] = {}
    for name in TOTAL_FIELDS:
        biplane = _sum(by_plane.get(p, {}).get(name) for p in ("a", "b"))
        single = _max(*(by_plane.get(p, {}).get(name) for p in ("single", "unspecified")))
        values[name] = _max(biplane, single)
    return ReportTotals(report_key, frozenset(event_uids), **values)


def merge_report(previous: ReportTotals | None, current: ReportTotals) -> ReportTotals:
    """The same report (same key) sent again: keep the largest totals and every event it ever named."""
    if previous is None:
        return current
    values = {name: _max(getattr(previous, name), getattr(current, name)) for name in TOTAL_FIELDS}
    return ReportTotals(current.report_key, previous.event_uids | current.event_uids, **values)


def _report_groups(reports: Sequence[ReportTotals]) -> list[list[ReportTotals]]:
    """Reports that share an irradiation event belong to one group (they cover overlapping work)."""
    parent = list(range(len(reports)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for index, report in enumerate(reports):
        for uid in report.event_uids:
            if uid in owner:
                parent[find(index)] = find(owner[uid])
            else:
                owner[uid] = index
    groups: dict[int, list[ReportTotals]] = {}
    for index, report in enumerate(reports):
        groups.setdefault(find(index), []).append(report)
    return list(groups.values())


def combined_total(events: Sequence[DoseEvent], reports: Sequence[ReportTotals], event_field: str,
                   report_field: str) -> float | None:
    """One study total: each group of overlapping reports counts its largest accumulated value for the events it
    covers, and events no accumulated value covers (disjoint reports without that total) are added one by one.

    Parameters
    ----------
    events : sequence of DoseEvent
        The study's distinct events (already filtered to the ones that count for this total).
    reports : sequence of ReportTotals
        The study's reports.
    event_field, report_field : str
        The event attribute and the report attribute holding the quantity.
    """
    total: float | None = None
    covered: set[str] = set()
    for group in _report_groups(reports):
        accumulated = _max(*(getattr(r, report_field) for r in group))
        if accumulated is not None:
            total = (total or 0.0) + accumulated
            for report in group:
                covered |= report.event_uids
    rest = _sum(getattr(e, event_field) for e in events if e.event_uid not in covered)
    if rest is not None:
        total = (total or 0.0) + rest
    return total


@dataclass(frozen=True)
class Coefficient:
    """A conversion coefficient k (mSv per mGy·cm) for one body region, defined for one CTDI phantom."""

    body_region: str
    phantom_cm: int
    k: float
    basis: str


@dataclass(frozen=True)
class EffectiveDose:
    """An effective-dose estimate and how it was made (``value`` None when it could not be made)."""

    value_msv: float | None
    method: str
    per_event: dict[str, float] = field(default_factory=dict)


def event_effective_dose(event: DoseEvent, study_region: str | None,
                         coefficients: Mapping[str, Coefficient]) -> tuple[float | None, str]:
    """E = k × DLP for one CT event; the region is the event's target region, else the study's."""
    if event.dlp_mgycm is None:
        return None, "no DLP"
    region = event.target_region or study_region
    coefficient = coefficients.get(region or "")
    if coefficient is None:
        return None, f"no coefficient for region {region or 'unknown'}"
    if event.phantom_cm is not None and event.phantom_cm != coefficient.phantom_cm:
        return None, f"k for {region} is defined for the {coefficient.phantom_cm} cm phantom"
    return coefficient.k * event.dlp_mgycm, region or ""


def effective_dose(events: Sequence[DoseEvent], dlp_total_mgycm: float | None, study_region: str | None,
                   coefficients: Mapping[str, Coefficient]) -> EffectiveDose:
    """Estimate a CT study's effective dose from its events, or from its total DLP when the events are incomplete.

    Parameters
    ----------
    events : sequence of DoseEvent
        The study's irradiation events (only CT events with a DLP are used).
    dlp_total_mgycm : float or None
        The study's total DLP (from :func:`summarise`).
    study_region : str or None
        The study's normalised body region, used for events without a target region.
    coefficients : mapping
        k by body region (:func:`imaging.reference.effective_dose_coefficients`).

    Returns
    -------
    EffectiveDose
        ``value_msv`` None when no estimate could be made, with the reason as ``method``.
    """
    ct_events = [e for e in events if e.kind == CT and e.dlp_mgycm is not None]
    if dlp_total_mgycm is None:
        return EffectiveDose(None, "not estimated: no DLP")
    events_dlp = sum(e.dlp_mgycm or 0.0 for e in ct_events)
    per_event: dict[str, float] = {}
    problems: list[str] = []
    for event in ct_events:
        value, note = event_effective_dose(event, study_region, coefficients)
        if value is None:
            problems.append(note)
        else:
            per_event[event.event_uid] = value
    complete = ct_events and not problems and events_dlp >= dlp_total_mgycm * 0.99  # vendors round totals
    if complete:
        regions = sorted({e.target_region or study_region or "" for e in ct_events})
        return EffectiveDose(sum(per_event.values()),
                             f"k×DLP per irradiation event ({', '.join(regions)}; ICRP 103), {ESTIMATE_LABEL}",
                             per_event)
    coefficient = coefficients.get(study_region or "")
    if coefficient is None:
        reason = problems[0] if problems else f"no coefficient for region {study_region or 'unknown'}"
        return EffectiveDose(None, f"not estimated: {reason}", per_event)
    return EffectiveDose(coefficient.k * dlp_total_mgycm,
                         f"k×total DLP ({coefficient.body_region}, {coefficient.phantom_cm} cm phantom; ICRP 103), "
                         f"{ESTIMATE_LABEL}", per_event)


@dataclass(frozen=True)
class DoseSummary:
    """A study's dose summary, in the units of the export contract."""

    dose_source: str | None = None  # rdsr | header | None
    irradiation_events: int | None = None
    ctdivol_mgy: float | None = None  # the highest CTDIvol among the events
    dlp_total_mgycm: float | None = None
    dap_total_gym2: float | None = None
    dose_rp_total_gy: float | None = None
    fluoro_time_s: float | None = None
    agd_left_mgy: float | None = None
    agd_right_mgy: float | None = None
    administered_activity_mbq: float | None = None
    effective_dose_msv: float | None = None
    effective_dose_method: str | None = None
    event_effective_dose: dict[str, float] = field(default_factory=dict)


def summarise(events: Sequence[DoseEvent], reports: Sequence[ReportTotals], *, study_region: str | None,
              coefficients: Mapping[str, Coefficient]) -> DoseSummary:
    """A study's dose summary from its distinct events and its reports' accumulated totals.

    RDSR events and reports take precedence; image-header events are used only when no RDSR was received.

    Parameters
    ----------
    events : sequence of DoseEvent
        Every stored event of the study (distinct by UID).
    reports : sequence of ReportTotals
        Every stored report's totals (distinct by report key).
    study_region : str or None
        The study's normalised body region (for effective dose).
    coefficients : mapping
        Effective-dose coefficients by body region.
    """
    rdsr = [e for e in events if e.source == "rdsr"]
    source: str | None
    if rdsr or reports:
        used, source = rdsr, "rdsr"
    else:
        used = [e for e in events if e.source == "header"]
        source = "header" if used else None
        reports = ()
    if source is None:
        return DoseSummary()

    def total(event_field: str, report_field: str, kinds: tuple[str, ...] | None = None,
              laterality: str | None = None) -> float | None:
        chosen = [e for e in used if (kinds is None or e.kind in kinds)
                  and (laterality is None or e.laterality == laterality)]
        return combined_total(chosen, reports, event_field, report_field)

    dlp = total("dlp_mgycm", "dlp_total_mgycm")
    estimate = effective_dose(used, dlp, study_region, coefficients)
    counted = [e for e in used if e.kind != NM]
    return DoseSummary(
        dose_source=source,
        irradiation_events=len(counted) if counted else None,
        ctdivol_mgy=_max(*(e.ctdivol_mgy for e in used)),
        dlp_total_mgycm=dlp,
        dap_total_gym2=total("dap_gym2", "dap_total_gym2"),
        dose_rp_total_gy=total("dose_rp_gy", "dose_rp_total_gy"),
        fluoro_time_s=total("duration_s", "fluoro_time_s", kinds=(FLUORO,)),
        agd_left_mgy=total("agd_mgy", "agd_left_mgy", laterality="left"),
        agd_right_mgy=total("agd_mgy", "agd_right_mgy", laterality="right"),
        administered_activity_mbq=total("activity_mbq", "activity_total_mbq"),
        effective_dose_msv=estimate.value_msv if dlp is not None else None,
        effective_dose_method=estimate.method if dlp is not None else None,
        event_effective_dose=estimate.per_event,
    )


# --- diagnostic reference levels ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Drl:
    """A national diagnostic reference level for one examination category (adult CT)."""

    category: str
    label: str
    ctdivol_mgy: float | None
    dlp_mgycm: float | None
    source: str


@dataclass(frozen=True)
class DrlComparison:
    """One study's dose against the DRL of its category (ratios above 1 exceed the DRL)."""

    category: str
    label: str
    drl_ctdivol_mgy: float | None
    drl_dlp_mgycm: float | None
    ctdivol_ratio: float | None
    dlp_ratio: float | None

    @property
    def above_drl(self) -> bool | None:
        ratios = [r for r in (self.ctdivol_ratio, self.dlp_ratio) if r is not None]
        return any(r > 1.0 for r in ratios) if ratios else None


_DRL_BY_REGION = {
    "head": "ct-head",
    "chest": "ct-chest",
    "pulmonary-angiography": "ctpa",
    "abdomen-pelvis": "ct-abdomen-pelvis",
    "chest-abdomen-pelvis": "ct-chest-abdomen-pelvis",
    "cervical-spine": "ct-cervical-spine",
}


def drl_category(modality: str | None, body_region: str | None, description: str | None = None,
                 patient_age_years: int | None = None) -> str | None:
    """The UK adult CT DRL category of a study, or ``None`` (not CT, a child, or a region without a DRL)."""
    if (modality or "").upper() != "CT":
        return None
    if patient_age_years is not None and patient_age_years < 16:
        return None
    words = f" {(description or '').upper()} "
    if " KUB" in words or "KIDNEYS URETERS" in words or "UROGRAM" in words or "RENAL COLIC" in words:
        return "ct-kub"
    return _DRL_BY_REGION.get(body_region or "")


def compare_with_drl(category: str | None, ctdivol_mgy: float | None, dlp_mgycm: float | None,
                     drls: Mapping[str, Drl]) -> DrlComparison | None:
    """Compare a study's CTDIvol and DLP with the DRL of ``category`` (``None`` without a category or DRL).

    DRLs are set for the median dose of a room's typical patients; a single study above one is a prompt to look,
    not a finding.
    """
    drl = drls.get(category or "")
    if drl is None:
        return None

    def ratio(value: float | None, level: float | None) -> float | None:
        return value / level if value is not None and level else None

    return DrlComparison(drl.category, drl.label, drl.ctdivol_mgy, drl.dlp_mgycm, ratio(ctdivol_mgy, drl.ctdivol_mgy),
                         ratio(dlp_mgycm, drl.dlp_mgycm))
