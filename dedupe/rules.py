"""The comparable-scan rule table: windows and tiers, exceptions, override reasons and typical doses, as data.

Clinical leads edit the table as a YAML (or TOML) file; ``settings.rules_file`` points at it, and the packaged
``dedupe/data/rules.yaml`` (REFERENCE.md's defaults) is used when it is unset. The file is validated on load, with
errors that name the file and the place in it, and its canonical content is hashed into :attr:`RuleSet.version`,
which every alert records so that an alert can say exactly which table produced it.

A :class:`RuleSet` is plain typed data; the judgement over it lives in :mod:`dedupe.comparable`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from priorscan.errors import ConfigurationError

log = logging.getLogger(__name__)

PACKAGED_RULES = Path(__file__).parent / "data" / "rules.yaml"
ANY = "any"

Severity = Literal["warning", "info"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    """One row of the table: for these modalities and region groups, how recent a prior must be to be shown."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    modalities: tuple[str, ...] = Field(min_length=1)
    regions: tuple[str, ...] = Field(min_length=1, description="region groups or body regions, or 'any'")
    warning_days: int | None = Field(default=None, ge=0)
    info_days: int | None = Field(default=None, ge=0)
    basis: str = ""

    @field_validator("modalities")
    @classmethod
    def _upper_modalities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(m.strip().upper() for m in value)

    @model_validator(mode="after")
    def _windows_in_order(self) -> Rule:
        if self.warning_days is not None and self.info_days is not None and self.info_days < self.warning_days:
            raise ValueError(f"info_days ({self.info_days}) is shorter than warning_days ({self.warning_days})")
        return self

    @property
    def any_region(self) -> bool:
        return ANY in self.regions

    @property
    def look_back_days(self) -> int | None:
        """The longest window of the rule (None: the rule never shows a prior)."""
        windows = [d for d in (self.warning_days, self.info_days) if d is not None]
        return max(windows) if windows else None

    def tier(self, days_ago: int) -> Severity | None:
        """The tier of a prior ``days_ago`` calendar days old: both window edges are inclusive."""
        days = max(days_ago, 0)
        if self.warning_days is not None and days <= self.warning_days:
            return "warning"
        if self.info_days is not None and days <= self.info_days:
            return "info"
        return None

    def describe(self) -> str:
        parts = []
        if self.warning_days is not None:
            parts.append(f"warning ≤ {self.warning_days} d")
        if self.info_days is not None:
            parts.append(f"info ≤ {self.info_days} d")
        return f"{self.title}: {', '.join(parts) if parts else 'never shown'}"


class KeywordTrigger(_Strict):
    """Words in the request's reason (whole words, any case) or coded reasons that mark a circumstance.

    A keyword counts where the reason asserts it: not where it is negated (the rule set's ``negation``), not inside
    one of the ``exclusions`` ("referred from GP" is no inter-hospital transfer), and, unless ``uncertain_counts``,
    not where it is only queried ("?metastases", "query trauma").
    """

    keywords: tuple[str, ...] = ()
    codes: tuple[str, ...] = Field(default=(), description="reason codes, as 'system|code' or bare codes")
    exclusions: tuple[str, ...] = Field(default=(), description="phrases in which a keyword does not count")
    uncertain_counts: bool = Field(default=False, description="whether a queried keyword ('?X') counts")


class Negation(_Strict):
    """How a reason negates a term (NegEx-style cues, read within one clause).

    A term is negated when a ``before`` cue ends at most ``window`` words before it, or an ``after`` cue starts at
    most ``window`` words after it, with no clause boundary (``. ; : ! ? , -`` and brackets) and no ``terminators``
    word in between; or when the clause right after it is only an ``answers`` word ("Pregnant: no"). A ``before``
    cue that starts a ``pseudo`` phrase ("no contrast") negates nothing. ``uncertain`` cues (and a "?") mark
    the rest of their clause as queried.
    """

    before: tuple[str, ...] = ("no", "not", "non", "denies", "denied", "without", "negative for", "no evidence of",
                               "no history of", "no known", "no sign of", "no signs of", "free of", "never",
                               "ruled out", "no longer", "not known to be")
    after: tuple[str, ...] = ("excluded", "negative", "ruled out", "unlikely", "denied", "absent", "not confirmed")
    answers: tuple[str, ...] = ("no", "n", "negative", "nil", "none")
    pseudo: tuple[str, ...] = ("no contrast", "no iv contrast", "no iv", "no change",
                               "no improvement", "not improving", "not resolving", "not sure", "not certain",
                               "no response")
    terminators: tuple[str, ...] = ("but", "however", "although", "though", "as", "because", "since", "due", "which",
                                    "who", "except", "apart", "aside", "and")
    uncertain: tuple[str, ...] = ("query", "possible", "possibly", "suspected", "suspect", "rule out", "r o",
                                  "to exclude", "exclude", "likely", "probable")
    window: int = Field(default=1, ge=0, le=5)


class TraumaException(KeywordTrigger):
    priorities: tuple[str, ...] = ("stat",)


class TransferException(KeywordTrigger):
    other_trust_within_days: int | None = Field(default=1, ge=0,
                                                description="a prior at another trust this recent marks a transfer")


class PaediatricException(_Strict):
    age_under_years: int = Field(default=16, ge=1, le=25)


class PregnancyException(KeywordTrigger):
    regions: tuple[str, ...] = Field(min_length=1)
    uncertain_counts: bool = True  # "?pregnant" is treated as pregnant: never downgraded


class Exceptions(_Strict):
    """The circumstances that change a prior's tier (REFERENCE.md, *Exceptions*)."""

    trauma: TraumaException
    transfer: TransferException
    oncology: KeywordTrigger
    planned_follow_up: KeywordTrigger
    paediatric: PaediatricException
    pregnancy: PregnancyException


class OverrideReason(_Strict):
    system: str
    code: str = Field(min_length=1)
    display: str = Field(min_length=1)
    comment_required: bool = False


class TypicalDose(_Strict):
    """A typical adult effective dose for a kind of procedure, used when the prior's own dose is unknown."""

    modalities: tuple[str, ...] = Field(min_length=1)
    regions: tuple[str, ...] = Field(min_length=1)
    effective_dose_msv: float = Field(ge=0)
    basis: str = ""

    @field_validator("modalities")
    @classmethod
    def _upper_modalities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(m.strip().upper() for m in value)


class Coverage(_Strict):
    """A region whose study stands in for other regions of one modality (a trauma pan-scan CT covers a CT head).

    Judgement, so it lives in the rule file: a prior (or a request) of ``region`` is compared as if it also named
    every region of ``covers``.
    """

    modalities: tuple[str, ...] = Field(min_length=1)
    region: str
    covers: tuple[str, ...] = Field(min_length=1)
    basis: str = ""

    @field_validator("modalities")
    @classmethod
    def _upper_modalities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(m.strip().upper() for m in value)


class AlertPolicy(_Strict):
    raise_for: tuple[Severity, ...] = ("warning", "info")


class OutstandingOrders(_Strict):
    """An outstanding order (or scheduled exam) for a comparable procedure is flagged at any age."""

    severity: Severity = "warning"


class RuleSet(_Strict):
    """The whole duplicate-check configuration; :attr:`version` is the hash of its canonical content."""

    name: str
    timezone: str = "Europe/London"
    ionising_modalities: tuple[str, ...]
    rules: tuple[Rule, ...] = Field(min_length=1)
    same_procedure: Rule | None = Field(default=None, description="windows for the same procedure code when no rule "
                                        "names its region (e.g. the region could not be read)")
    outstanding_orders: OutstandingOrders = OutstandingOrders()
    exceptions: Exceptions
    negation: Negation = Negation()
    override_reasons: tuple[OverrideReason, ...] = Field(min_length=1)
    typical_doses: tuple[TypicalDose, ...] = ()
    coverage: tuple[Coverage, ...] = ()
    alerts: AlertPolicy = AlertPolicy()

    @model_validator(mode="after")
    def _consistent(self) -> RuleSet:
        ids = [r.id for r in self.rules]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"rule ids must be unique: {', '.join(duplicated)} repeated")
        codes = [(r.system, r.code) for r in self.override_reasons]
        if len(set(codes)) != len(codes):
            raise ValueError("override reasons repeat a code")
        return self

    # Cached: the rule set is frozen, and every check reads these (hashing the content costs ~0.4 ms). A copy made
    # with ``model_copy(update=...)`` would keep the cached values: build a changed rule set with ``parse_rules``.
    @cached_property
    def version(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @cached_property
    def longest_window_days(self) -> int:
        rules = (*self.rules, self.same_procedure) if self.same_procedure else self.rules
        return max((r.look_back_days or 0) for r in rules)

    def covered(self, modality: str | None, regions: Iterable[str]) -> tuple[str, ...]:
        """``regions`` and every region a study of ``modality`` naming them covers (by :attr:`coverage`)."""
        found = list(dict.fromkeys(regions))
        for entry in self.coverage:
            if modality in entry.modalities and entry.region in found:
                found.extend(r for r in entry.covers if r not in found)
        return tuple(found)

    def override_reason(self, system: str | None, code: str | None) -> OverrideReason | None:
        """The configured override reason with ``code`` (in ``system`` when given)."""
        for reason in self.override_reasons:
            if reason.code == code and (not system or system == reason.system):
                return reason
        return None


@dataclass(frozen=True)
class Vocabulary:
    """What the rule file may name: the modality codes and body-region groups of the procedure normaliser."""

    modalities: frozenset[str]
    regions: frozenset[str]


def check_vocabulary(rule_set: RuleSet, vocabulary: Vocabulary) -> list[str]:
    """Places in ``rule_set`` naming a modality or region the normaliser never produces (empty when none)."""
    problems: list[str] = []
    known_modalities = ", ".join(sorted(vocabulary.modalities))
    known_regions = ", ".join(sorted(vocabulary.regions))

    def check(where: str, modalities: Iterable[str], regions: Iterable[str]) -> None:
        for modality in modalities:
            if modality not in vocabulary.modalities:
                problems.append(f"{where}: unknown modality {modality!r} (known: {known_modalities})")
        for region in regions:
            if region != ANY and region not in vocabulary.regions:
                problems.append(f"{where}: unknown region {region!r} (known: {known_regions})")

    check("ionising_modalities", rule_set.ionising_modalities, ())
    for i, rule in enumerate(rule_set.rules):
        check(f"rules[{i}] ({rule.id})", rule.modalities, rule.regions)
    if rule_set.same_procedure is not None:
        check("same_procedure", rule_set.same_procedure.modalities, rule_set.same_procedure.regions)
    for i, dose in enumerate(rule_set.typical_doses):
        check(f"typical_doses[{i}]", dose.modalities, dose.regions)
    check("exceptions.pregnancy", (), rule_set.exceptions.pregnancy.regions)
    for i, entry in enumerate(rule_set.coverage):
        check(f"coverage[{i}]", entry.modalities, (entry.region, *entry.covers))
    return problems


def parse_rules(data: Any, *, source: str, vocabulary: Vocabulary | None = None) -> RuleSet:
    """Validate rule-file content (already read as a mapping) into a :class:`RuleSet`.

    Parameters
    ----------
    data
        The file's content as loaded by YAML or TOML.
    source
        Where it came from, for error messages.
    vocabulary
        When given, every modality and region the file names must belong to it.

    Raises
    ------
    ConfigurationError
        With code ``config.rules``, naming each place in the file that is wrong.
    """
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: the rule file must hold a mapping at the top level", code="config.rules")
    try:
        rule_set = RuleSet.model_validate(data)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()]
        raise ConfigurationError(f"{source}: invalid rule file:\n  " + "\n  ".join(lines), code="config.rules") from exc
    if vocabulary is not None:
        problems = check_vocabulary(rule_set, vocabulary)
        if problems:
            raise ConfigurationError(f"{source}: invalid rule file:\n  " + "\n  ".join(problems), code="config.rules")
    return rule_set


def read_rule_file(path: Path) -> Any:
    """The content of a YAML (``.yaml``/``.yml``) or TOML (``.toml``) rule file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the rule file {path}: {exc.strerror or exc}",
                                 code="config.rules") from exc
    try:
        if Path(path).suffix.lower() == ".toml":
            return tomllib.loads(text)
        return yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{path}: the rule file is not valid {Path(path).suffix.lstrip('.').upper() or 'YAML'}"
                                 f": {exc}", code="config.rules") from exc


def load_rules(path: Path | None = None, *, vocabulary: Vocabulary | None = None) -> RuleSet:
    """Read and validate the rule file at ``path`` (the packaged default when None)."""
    path = Path(path) if path is not None else PACKAGED_RULES
    return parse_rules(read_rule_file(path), source=str(path), vocabulary=vocabulary)
