"""Dose arithmetic: a study's dose summary from its irradiation events and the totals its reports state.

Pure functions over plain values: no SQL, no files, no DICOM. The SR tree is read in :mod:`imaging.rdsr`, the
reference tables (conversion coefficients, DRLs) are loaded in :mod:`imaging.reference` and passed in.

Counting rules, so that every irradiation event counts once, however often and in however many reports it is sent:

- an irradiation event is identified by its Irradiation Event UID; storing it again replaces it;
- a report's accumulated totals are kept per *report key*, the report's own SOP Instance UID: the same report sent
  again keeps the largest values and every event it ever named. The *scope* of accumulation is no key: the two
  reports of a continued CT examination share the study as their scope but describe different events;
- reports that share an irradiation event describe overlapping work (a growing report re-sent under a new SOP
  Instance UID), so only the largest of them counts, plus the events of the group it does not name; reports with
  disjoint events (a continued examination, two performed procedure steps) add up;
- reports that name no event at all and state the same totals are the same report re-sent;
- events that no accumulated value covers (a report without that total, or events from image headers) are added;
- a vendor's private dose *summary* (Siemens' Radiation Summary Report: study totals, no events; its report key
  starts with :data:`SUMMARY_KEY`) is a fallback, total by total: its DAP counts only when no RDSR event or report
  of the study states a DAP (and so for fluoroscopy time), since it restates what an RDSR of the same work would
  state; of several summaries of one study the largest value of each total counts (a summary re-sent as the
  examination grew is not added to its earlier self). It outranks image headers, as an RDSR does.

DLP, DAP, dose at the reference point, fluoroscopy time, AGD and activity are all totalled by these rules, and the
effective dose is estimated from the same DLP total, so the two never disagree.

Effective dose is an **estimate** (a population index, not the patient's dose): E = k × DLP with k chosen by target
region, age and CTDI phantom (REFERENCE.md: ICRP 103 for adults; AAPM Report 96 after Shrimpton 2005 for children),
for CT only; it is labelled with how it was made, and withheld, with the reason, where k would not apply.

DRLs: a UK national DRL is compared only with the examination it was set for (:func:`drl_category`), and it applies
to the median dose of a group of typical adult patients, not to one study; each comparison says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from imaging.regions import REGIONS

CT = "ct"
PROJECTION = "projection"
FLUORO = "fluoro"
MAMMO = "mammo"
NM = "nm"
EVENT_KINDS = (CT, PROJECTION, FLUORO, MAMMO, NM)

#: The start of a vendor dose summary's report key (:func:`is_summary`).
SUMMARY_KEY = "summary:"

HEAD_PHANTOM = 16
BODY_PHANTOM = 32
ADULT_AGE = 16  # REFERENCE.md: paediatric is under 16; adult coefficients and DRLs apply from 16

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
    protocol: str | None = None  # the Acquisition Protocol as the device names it
    localizer: bool = False  # a CT localizer (topogram, scout): counted for dose, not for the examined anatomy
    compression_thickness_mm: float | None = None  # a mammographic view's compressed breast thickness


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


def is_summary(report: ReportTotals) -> bool:
    """Whether ``report`` is a vendor's private dose summary (study totals without events), not an RDSR."""
    return report.report_key.startswith(SUMMARY_KEY)


def _largest_summary(summaries: Sequence[ReportTotals]) -> ReportTotals:
    """Several summaries of one study as one: the largest value of each total."""
    values = {name: _max(*(getattr(s, name) for s in summaries)) for name in TOTAL_FIELDS}
    return ReportTotals(min(s.report_key for s in summaries), frozenset(), **values)


def _report_groups(reports: Sequence[ReportTotals]) -> list[list[ReportTotals]]:
    """Reports that share an irradiation event belong to one group (they cover overlapping work), and so do reports
    that name no event and state the same totals (one report re-sent under a new SOP Instance UID)."""
    parent = list(range(len(reports)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    eventless: dict[tuple[float | None, ...], int] = {}
    for index, report in enumerate(reports):
        for uid in report.event_uids:
            if uid in owner:
                parent[find(index)] = find(owner[uid])
            else:
                owner[uid] = index
        stated = tuple(getattr(report, name) for name in TOTAL_FIELDS)
        if not report.event_uids and any(v is not None for v in stated):
            if stated in eventless:
                parent[find(index)] = find(eventless[stated])
            else:
                eventless[stated] = index
    groups: dict[int, list[ReportTotals]] = {}
    for index, report in enumerate(reports):
        groups.setdefault(find(index), []).append(report)
    return list(groups.values())


def combined_total(events: Sequence[DoseEvent], reports: Sequence[ReportTotals], event_field: str,
                   report_field: str) -> float | None:
    """One study total, each irradiation event counted once whichever reports name it.

    Reports are grouped by the events they share (:func:`_report_groups`). In each group the report with the
    largest accumulated value stands for the events it names (vendors round event values, so the report's own
    total is preferred); the group's events that this report does not name are added one by one, as are the events
    of reports without that total and events that no report names.

    Parameters
    ----------
    events : sequence of DoseEvent
        The study's distinct events (already filtered to the ones that count for this total).
    reports : sequence of ReportTotals
        The study's reports (distinct by report key).
    event_field, report_field : str
        The event attribute and the report attribute holding the quantity.
    """
    total: float | None = None
    covered: set[str] = set()
    for group in _report_groups(reports):
        stated = [r for r in group if getattr(r, report_field) is not None]
        if not stated:
            continue
        best = max(stated, key=lambda r: (getattr(r, report_field), len(r.event_uids), r.report_key))
        total = (total or 0.0) + getattr(best, report_field)
        covered |= best.event_uids
    rest = _sum(getattr(e, event_field) for e in events if e.event_uid not in covered)
    if rest is not None:
        total = (total or 0.0) + rest
    return total


@dataclass(frozen=True)
class Coefficient:
    """A conversion coefficient k (mSv per mGy·cm) for one body region and age band, defined for one CTDI phantom.

    ``age_min`` and ``age_max`` are whole years, both inclusive (``age_max`` None: no upper bound). Adult rows start
    at 16; paediatric rows name the reference age of their source in ``basis``.
    """

    body_region: str
    phantom_cm: int
    k: float
    basis: str
    age_min: int = ADULT_AGE
    age_max: int | None = None

    @property
    def paediatric(self) -> bool:
        return self.age_min < ADULT_AGE

    def covers(self, age_years: int) -> bool:
        return self.age_min <= age_years and (self.age_max is None or age_years <= self.age_max)


@dataclass(frozen=True)
class CoefficientTable:
    """Every coefficient row; :meth:`find` picks the one for a region and an age."""

    rows: tuple[Coefficient, ...]

    def find(self, body_region: str | None, age_years: int | None) -> Coefficient | None:
        """The row for ``body_region`` at ``age_years`` (an adult row when the age is not known)."""
        if not body_region:
            return None
        age = ADULT_AGE if age_years is None else age_years
        return next((row for row in self.rows if row.body_region == body_region and row.covers(age)), None)

    def get(self, body_region: str) -> Coefficient | None:
        """The adult row for ``body_region``."""
        return self.find(body_region, None)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class EffectiveDose:
    """An effective-dose estimate and how it was made (``value`` None when it could not be made)."""

    value_msv: float | None
    method: str
    per_event: dict[str, float] = field(default_factory=dict)


def _who(age_years: int | None) -> str:
    return "age not stated: adult coefficients assumed" if age_years is None else f"age {age_years}"


def _phantom_problem(coefficient: Coefficient, phantom_cm: int | None, age_years: int | None) -> str | None:
    """Why ``coefficient`` cannot be applied to a DLP measured on ``phantom_cm`` (None when it can)."""
    if phantom_cm is None:
        if coefficient.paediatric:
            return (f"the CTDI phantom is not stated, and the paediatric k for {coefficient.body_region} "
                    f"({coefficient.basis}) is defined for the {coefficient.phantom_cm} cm phantom")
        return None  # adults: 16 cm head, 32 cm body is the near-universal convention; the method says so
    if phantom_cm != coefficient.phantom_cm:
        return (f"DLP measured on the {phantom_cm} cm phantom, but k for {coefficient.body_region} "
                f"({_who(age_years)}) is defined for the {coefficient.phantom_cm} cm phantom")
    return None


def _coefficient(region: str | None, age_years: int | None,
                 coefficients: CoefficientTable) -> tuple[Coefficient | None, str]:
    coefficient = coefficients.find(region, age_years)
    if coefficient is not None:
        return coefficient, ""
    if region and age_years is not None and age_years < ADULT_AGE:
        return None, f"no published coefficient for {region} at age {age_years}"
    return None, f"no coefficient for region {region or 'unknown'}"


def event_effective_dose(event: DoseEvent, study_region: str | None, coefficients: CoefficientTable,
                         age_years: int | None = None) -> tuple[float | None, str]:
    """E = k × DLP for one CT event; the region is the event's target region, else the study's.

    Returns the estimate (None when it cannot be made) and the region used or the reason.
    """
    if event.dlp_mgycm is None:
        return None, "no DLP"
    region = event.target_region or study_region
    coefficient, reason = _coefficient(region, age_years, coefficients)
    if coefficient is None:
        return None, reason
    problem = _phantom_problem(coefficient, event.phantom_cm, age_years)
    if problem is not None:
        return None, problem
    return coefficient.k * event.dlp_mgycm, region or ""


def _accounts_for(events_dlp: float, total: float, count: int) -> bool:
    """Whether events' DLPs add up to the total, allowing for vendors' rounding of each value."""
    return abs(events_dlp - total) <= max(0.01 * total, 0.5 * count)


def _within(region: str | None, study_region: str) -> bool:
    """Whether an event's region is part of the study's (chest within chest-abdomen-pelvis)."""
    if region is None or region == study_region:
        return True
    inner, outer = REGIONS.get(region), REGIONS.get(study_region)
    return inner is not None and outer is not None and inner.parts <= outer.parts


def _label(coefficient: Coefficient, age_years: int | None) -> str:
    """How a coefficient was chosen, shortly: its source (the adult table's name, a child's full reference)."""
    if coefficient.paediatric:
        return f"{coefficient.basis}; age {age_years}, paediatric"
    return f"{coefficient.basis.split(' (')[0].split(';')[0]}; {_who(age_years)}"


def effective_dose(events: Sequence[DoseEvent], dlp_total_mgycm: float | None, study_region: str | None,
                   coefficients: CoefficientTable, age_years: int | None = None) -> EffectiveDose:
    """Estimate a CT study's effective dose, consistently with its total DLP.

    - When the CT events' DLPs add up to the study total (within vendors' rounding), E is the sum of k × DLP per
      event, each with the coefficient of its target region (else the study's) and age;
    - otherwise E = k × total DLP with the study region's coefficient, provided every event's region lies within
      the study's region and the phantoms the events state are the coefficient's;
    - no estimate otherwise, with the reason: a coefficient applied to a DLP measured on another phantom (a head on
      the 32 cm phantom, a neck or a child's body on the 16 cm one) or to a child without a published coefficient
      would be wrong by a factor of two or more.

    Parameters
    ----------
    events : sequence of DoseEvent
        The study's irradiation events (CT events are used).
    dlp_total_mgycm : float or None
        The study's total DLP (from :func:`summarise`).
    study_region : str or None
        The study's normalised body region, used for events without a target region.
    coefficients : CoefficientTable
        k by body region and age (:func:`imaging.reference.effective_dose_coefficients`).
    age_years : int, optional
        The patient's age at the study; adult coefficients are assumed when it is not known (and the method says
        so).

    Returns
    -------
    EffectiveDose
        ``value_msv`` None when no estimate could be made, with the reason as ``method``.
    """
    if dlp_total_mgycm is None:
        return EffectiveDose(None, "not estimated: no DLP")
    ct_events = [e for e in events if e.kind == CT]
    with_dlp = [e for e in ct_events if e.dlp_mgycm is not None]
    events_dlp = sum(e.dlp_mgycm or 0.0 for e in with_dlp)
    if with_dlp and _accounts_for(events_dlp, dlp_total_mgycm, len(with_dlp)):
        per_event: dict[str, float] = {}
        used: dict[str, Coefficient] = {}
        for event in with_dlp:
            value, note = event_effective_dose(event, study_region, coefficients, age_years)
            if value is None:
                return EffectiveDose(None, f"not estimated: {note}")
            per_event[event.event_uid] = value
            coefficient = coefficients.find(note, age_years)
            if coefficient is not None:
                used[note] = coefficient
        bases = sorted({_label(c, age_years) for c in used.values()})
        return EffectiveDose(sum(per_event.values()),
                             f"k×DLP per irradiation event ({', '.join(sorted(used))}; {' / '.join(bases)}), "
                             f"{ESTIMATE_LABEL}", per_event)
    coefficient, reason = _coefficient(study_region, age_years, coefficients)
    if coefficient is None or study_region is None:
        return EffectiveDose(None, f"not estimated: {reason}")
    outside = sorted({e.target_region for e in ct_events if not _within(e.target_region, study_region)
                      and e.target_region is not None})
    if outside:
        return EffectiveDose(None, f"not estimated: the events' DLPs do not add up to the total and they image "
                                   f"{', '.join(outside)} beyond the study's {study_region}")
    phantoms: list[int | None] = [*sorted({e.phantom_cm for e in ct_events if e.phantom_cm is not None})]
    for phantom in phantoms or [None]:
        problem = _phantom_problem(coefficient, phantom, age_years)
        if problem is not None:
            return EffectiveDose(None, f"not estimated: {problem}")
    return EffectiveDose(coefficient.k * dlp_total_mgycm,
                         f"k×total DLP ({coefficient.body_region}, {coefficient.phantom_cm} cm phantom; "
                         f"{_label(coefficient, age_years)}), {ESTIMATE_LABEL}")


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


def _states_totals(report: ReportTotals) -> bool:
    """Whether ``report`` is a vendor's summary that states a total (one that states none counts for nothing)."""
    return is_summary(report) and any(getattr(report, name) is not None for name in TOTAL_FIELDS)


def dose_source(event_sources: Sequence[str], reports: Sequence[ReportTotals]) -> str | None:
    """Where a study's dose summary comes from (:attr:`DoseSummary.dose_source`, as :func:`summarise` decides it):
    ``rdsr`` when an RDSR event, an RDSR's totals or a vendor's summary stating a total was received (a summary is a
    dose SR too, so the export's ``dose_source`` stays rdsr), else ``header`` when an image header gave an event,
    else None.

    Parameters
    ----------
    event_sources : sequence of str
        The :attr:`DoseEvent.source` of each of the study's events.
    reports : sequence of ReportTotals
        Every stored report's totals.
    """
    if "rdsr" in event_sources or any(not is_summary(r) or _states_totals(r) for r in reports):
        return "rdsr"
    return "header" if "header" in event_sources else None


def summarise(events: Sequence[DoseEvent], reports: Sequence[ReportTotals], *, study_region: str | None,
              coefficients: CoefficientTable, patient_age_years: int | None = None) -> DoseSummary:
    """A study's dose summary from its distinct events and its reports' accumulated totals.

    RDSR events and reports take precedence; a vendor's dose summary (:func:`is_summary`) gives the totals no RDSR
    of the study states (its largest values), and image-header events are used only when neither was received.

    Parameters
    ----------
    events : sequence of DoseEvent
        Every stored event of the study (distinct by UID).
    reports : sequence of ReportTotals
        Every stored report's totals (distinct by report key).
    study_region : str or None
        The study's normalised body region (for effective dose).
    coefficients : CoefficientTable
        Effective-dose coefficients by body region and age.
    patient_age_years : int, optional
        The patient's age at the study (paediatric coefficients, or none, under 16).
    """
    source = dose_source([e.source for e in events], reports)
    if source is None:
        return DoseSummary()
    summaries = [r for r in reports if _states_totals(r)]
    fallback = _largest_summary(summaries) if summaries else None
    if source == "rdsr":
        used, reports = [e for e in events if e.source == "rdsr"], [r for r in reports if not is_summary(r)]
    else:
        used, reports = [e for e in events if e.source == "header"], ()

    def total(event_field: str, report_field: str, kinds: tuple[str, ...] | None = None,
              laterality: str | None = None) -> float | None:
        chosen = [e for e in used if (kinds is None or e.kind in kinds)
                  and (laterality is None or e.laterality == laterality)]
        value = combined_total(chosen, reports, event_field, report_field)
        if value is None and fallback is not None:  # only what no RDSR of the study states
            value = getattr(fallback, report_field)
        return value

    dlp = total("dlp_mgycm", "dlp_total_mgycm")
    estimate = effective_dose(used, dlp, study_region, coefficients, patient_age_years)
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

DRL_NOTE = ("a national DRL is set for the median dose of a group of typical adult patients having this examination "
            "for this indication: one study above it is a prompt to review the protocol, not a finding about this "
            "patient")


@dataclass(frozen=True)
class Drl:
    """A national diagnostic reference level for one adult CT examination category.

    ``body_regions`` are the normalised regions the examination can be filed under; ``terms`` are words of its
    description that select it (a category with terms is chosen only when one of them is named).
    """

    category: str
    label: str
    ctdivol_mgy: float | None
    dlp_mgycm: float | None
    source: str
    indication: str = ""
    body_regions: frozenset[str] = frozenset()
    terms: tuple[str, ...] = ()


@dataclass(frozen=True)
class DrlComparison:
    """One study's dose against the DRL of its category (ratios above 1 exceed the DRL)."""

    category: str
    label: str
    drl_ctdivol_mgy: float | None
    drl_dlp_mgycm: float | None
    ctdivol_ratio: float | None
    dlp_ratio: float | None
    indication: str = ""
    note: str = DRL_NOTE

    @property
    def above_drl(self) -> bool | None:
        ratios = [r for r in (self.ctdivol_ratio, self.dlp_ratio) if r is not None]
        return any(r > 1.0 for r in ratios) if ratios else None


def _words(text: str | None) -> str:
    return f" {' '.join(re.sub(r'[^A-Z0-9]+', ' ', (text or '').upper()).split())} "


def drl_category(modality: str | None, body_region: str | None, description: str | None = None,
                 patient_age_years: int | None = None, drls: Mapping[str, Drl] | None = None) -> str | None:
    """The UK adult CT DRL category of a study, or ``None`` when no national DRL matches it.

    A category is chosen only for an adult CT (age known, 16 or over) whose body region is one the category can be
    filed under. Categories with ``terms`` (urogram, KUB, colonography, HRCT, sinuses, CTPA, neck-chest-abdomen-
    pelvis) are chosen when the description names one of their terms, checked in the table's order; otherwise the
    first category of the region without terms (CT head, chest, abdomen-pelvis ...). A CT urogram is therefore never
    compared with the KUB DRL, nor a colonography with the abdomen-pelvis one, nor an HRCT with the chest one.

    Parameters
    ----------
    modality, body_region : str or None
        The study's normalised modality and body region.
    description : str, optional
        The study or procedure description.
    patient_age_years : int, optional
        The patient's age at the study; the national DRLs here are for adults.
    drls : mapping, optional
        The DRL table (:func:`imaging.reference.national_drls` when omitted).
    """
    if (modality or "").upper() != "CT" or not body_region:
        return None
    if patient_age_years is None or patient_age_years < ADULT_AGE:
        return None
    if drls is None:
        from imaging.reference import national_drls

        drls = national_drls()
    words = _words(description)
    candidates = [d for d in drls.values() if not d.body_regions or body_region in d.body_regions]
    for drl in candidates:
        if drl.terms and any(f" {term} " in words for term in drl.terms):
            return drl.category
    return next((d.category for d in candidates if not d.terms), None)


def compare_with_drl(category: str | None, ctdivol_mgy: float | None, dlp_mgycm: float | None,
                     drls: Mapping[str, Drl]) -> DrlComparison | None:
    """Compare a study's CTDIvol and DLP with the DRL of ``category`` (``None`` without a category or DRL).

    DRLs are set for the median dose of a room's typical patients; a single study above one is a prompt to look,
    not a finding (the comparison's ``note`` says so wherever it is shown).
    """
    drl = drls.get(category or "")
    if drl is None:
        return None

    def ratio(value: float | None, level: float | None) -> float | None:
        return value / level if value is not None and level else None

    return DrlComparison(drl.category, drl.label, drl.ctdivol_mgy, drl.dlp_mgycm, ratio(ctdivol_mgy, drl.ctdivol_mgy),
                         ratio(dlp_mgycm, drl.dlp_mgycm), drl.indication)
