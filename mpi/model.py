"""The Fellegi–Sunter model: comparisons, m and u probabilities per level, the prior, term frequencies, thresholds.

For a pair of records and each comparison at level *l*, ``m = P(l | same person)`` and ``u = P(l | different
people)``; the pair's match weight is ``log2(prior / (1 - prior)) + Σ log2(m / u)`` and its match probability
``1 / (1 + 2^-weight)``. A comparison with missing data on either side adds nothing.

Term-frequency adjustment (for family name, given name and postcode): on an exact agreement, ``u`` is replaced by
the share of records holding that value (Splink's method), so agreeing on a rare name weighs more than agreeing
on ``SMITH``.

Households: what a household shares (residence, phone) is far commoner between relatives than between strangers,
so the fields are not independent of the family name. Where family names agree, those comparisons use
``u_same_family``, learnt among pairs of different people of the same family name, instead of ``u``. And once two
records share a family name *and* a home, the different people they could be are relatives, not strangers:
relatives share a birth date far more often (twins), a first name now and then (a mother and a daughter), so the
person's own comparisons (given and middle names, birth date, sex) then use ``u_household``, learnt among different
people of one household (:func:`mpi.training.estimate_u_household`). The model reads the chain of evidence in order: the
family name (against everyone), the home (against people of that family name), the person (against the household).

Thresholds are posterior probabilities, so they are derived from the model rather than chosen on a score scale:

- ``match_threshold`` (0.999 before training): a pair is linked automatically when the model puts the chance that
  it is the same person at or above it. Training derives it from the model's own posteriors over the blocked
  pairs (:func:`mpi.decisions.derive_match_threshold`): the lowest threshold, not below 0.98, at which the expected
  precision of the automatic links (their mean posterior) is still 99.9%, the project's precision floor.
- ``possible_threshold`` (default 0.5): below ``match_threshold`` and at or above this, the pair is more likely the
  same person than not, and a person reviews it; below it, the records stay apart.

The whole model serialises to JSON (:meth:`Model.to_dict`) with a version that is a hash of its content, so every
link records exactly which model made it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mpi.comparisons import Comparison, default_comparisons

FORMAT = 1
#: No level is ever impossible among true matches (errors happen) nor among non-matches.
M_FLOOR = 1e-4
U_FLOOR = 1e-9

#: The shipped prior model (``mpi/data/prior_model.json``): m and u per level, the prior and the thresholds, each
#: with its source. It scores before the store has enough records to train (see :data:`mpi.training.MIN_RECORDS`),
#: and is EM's starting point and the smoothing target of every estimate.
SHIPPED_PRIOR_FILE = Path(__file__).with_name("data") / "prior_model.json"


def _read_shipped_prior() -> dict[str, Any]:
    with SHIPPED_PRIOR_FILE.open(encoding="utf-8") as handle:
        return dict(json.load(handle))


SHIPPED_PRIOR: dict[str, Any] = _read_shipped_prior()
#: Per comparison, one probability per level, in the order of the comparison's labels.
PRIOR_KNOWLEDGE: dict[str, tuple[list[float], list[float]]] = {
    name: (list(entry["m"]), list(entry["u"])) for name, entry in SHIPPED_PRIOR["comparisons"].items()}
#: Among pairs of records sharing a family name and a home, the share that are one person (before training).
HOUSEHOLD_PRIOR_SHARE = float(SHIPPED_PRIOR.get("household_prior", 0.5))
#: How many other records of relatives sharing its family name a record has, before training.
HOUSEHOLD_PRIOR_KIN = float(SHIPPED_PRIOR.get("kin_per_record", 1.5))
#: Per person's own comparison, u among different people of one household (relatives), in label order.
HOUSEHOLD_PRIOR_KNOWLEDGE: dict[str, list[float]] = {
    name: list(entry["u"]) for name, entry in SHIPPED_PRIOR.get("u_household", {}).items()}
DEFAULT_PRIOR = float(SHIPPED_PRIOR["prior"])
DEFAULT_MATCH_THRESHOLD = float(SHIPPED_PRIOR["match_threshold"])
DEFAULT_POSSIBLE_THRESHOLD = float(SHIPPED_PRIOR["possible_threshold"])
#: ``Model.training["kind"]`` of the shipped prior model and of a model trained by EM.
SHIPPED_KIND = "shipped-prior"
TRAINED_KIND = "em"


def realign(values: list[float], stored: list[str] | tuple[str, ...], labels: tuple[str, ...],
            prior: list[float]) -> list[float]:
    """``values`` given per ``stored`` label, laid out per ``labels``: a level the values lack takes ``prior``'s
    value (prior knowledge, in ``labels`` order) and the whole is renormalised to sum to what it summed to.

    Values already laid out per ``labels`` (or whose labels are not known) are returned as they are.
    """
    values = [float(v) for v in values]
    if not stored or list(stored) == list(labels) or len(stored) != len(values) or len(prior) != len(labels):
        return values
    by_label = dict(zip(stored, values, strict=True))
    out = [by_label.get(label, float(prior[i])) for i, label in enumerate(labels)]
    total, kept = sum(out), sum(values)
    return [v * kept / total for v in out] if total > 0 and kept > 0 else out


def home_key(postcode: Any, address: Any) -> str:
    """One home as :attr:`Model.shared_home` holds it: the normalised postcode and address, ``|`` between."""
    return f"{postcode or ''}|{address or ''}"


def one_of(values: NDArray[Any], wanted: Iterable[str]) -> NDArray[np.bool_]:
    """Whether each of ``values`` (strings, or None) is one of ``wanted``, by hashing: linear in both.

    Not ``np.isin``: on arrays of Python objects it compares every value with every wanted one, and both the
    values (a frame's vocabulary) and the wanted ones (shared homes and phones) grow with the store; at 2 M records
    that made the relink spend most of its time here. A ``frozenset`` is used as it is (a model keeps its lists as
    sets: :meth:`Model._set_of`)."""
    held = wanted if isinstance(wanted, frozenset) else frozenset(wanted)
    return np.fromiter((v in held for v in values), dtype=bool, count=len(values))


@dataclass
class Model:
    """A trained (or default) Fellegi–Sunter model."""

    comparisons: list[Comparison] = field(default_factory=default_comparisons)
    m: list[list[float]] = field(default_factory=list)
    u: list[list[float]] = field(default_factory=list)
    prior: float = DEFAULT_PRIOR
    match_threshold: float = DEFAULT_MATCH_THRESHOLD
    possible_threshold: float = DEFAULT_POSSIBLE_THRESHOLD
    # u of what a household shares (residence, phone) among different people with the same family name: relatives
    u_same_family: dict[str, list[float]] = field(default_factory=dict)
    # u of the person's own comparisons (given and middle names, birth date, sex) among different people of a household
    u_household: dict[str, list[float]] = field(default_factory=dict)
    # among pairs sharing a family name and a home: the share that are one person (0: no household model)
    household_prior: float = 0.0
    # records of relatives of one family name per record (how many of a family name's holders are kin)
    kin_per_record: float = 0.0
    tf: dict[str, dict[str, int]] = field(default_factory=dict)  # column → value → count (values seen twice+)
    # given and family names that are more likely not the person's name than theirs (``DAUGHTER``, ``INMATE``;
    # ``OCCUPANT``, ``RESIDENT``): learnt from the store (:func:`mpi.training.stand_in_names`); compared as none
    stand_in_given: list[str] = field(default_factory=list)
    stand_in_family: list[str] = field(default_factory=list)
    # phone numbers and homes (``postcode|address``) held by more records than one household holds (a switchboard,
    # a GP surgery's number, a care home, a hostel): learnt from the store (:func:`mpi.training.shared_homes`); such
    # a phone is compared as none, and such an address as none beside its postcode (hazard H-ID-33)
    shared_phone: list[str] = field(default_factory=list)
    shared_home: list[str] = field(default_factory=list)
    tf_total: int = 0
    training: dict[str, Any] = field(default_factory=dict)  # how it was trained (counts, iterations, recall)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    version: str = ""

    def __post_init__(self) -> None:
        if not self.m or not self.u:
            self.m = [list(PRIOR_KNOWLEDGE[c.name][0]) for c in self.comparisons]
            self.u = [list(PRIOR_KNOWLEDGE[c.name][1]) for c in self.comparisons]
        for c, m, u in zip(self.comparisons, self.m, self.u, strict=True):
            if len(m) != c.levels_count or len(u) != c.levels_count:
                raise ValueError(f"comparison {c.name}: expected {c.levels_count} m and u values")
        self._tables: list[NDArray[np.float64]] | None = None
        self._family_tables: dict[int, NDArray[np.float64]] | None = None
        self._household_tables: dict[int, NDArray[np.float64]] | None = None
        if not self.version:
            self.version = self.content_version()

    # --- derived quantities -----------------------------------------------------------------------------------

    @property
    def prior_weight(self) -> float:
        """``log2(prior / (1 - prior))``: the weight of a pair about which nothing is known."""
        return math.log2(self.prior / (1 - self.prior))

    def weight_tables(self) -> list[NDArray[np.float64]]:
        """``log2(m / u)`` per comparison and level."""
        if self._tables is None:
            self._tables = [np.log2(np.maximum(np.asarray(m), M_FLOOR) / np.maximum(np.asarray(u), U_FLOOR))
                            for m, u in zip(self.m, self.u, strict=True)]
        return self._tables

    def same_family_tables(self) -> dict[int, NDArray[np.float64]]:
        """``log2(m / u)`` with u among people of the same family name, per household-shared comparison index."""
        if self._family_tables is None:
            self._family_tables = {}
            for i, c in enumerate(self.comparisons):
                if c.name in self.u_same_family:
                    u = np.maximum(np.asarray(self.u_same_family[c.name]), U_FLOOR)
                    self._family_tables[i] = np.log2(np.maximum(np.asarray(self.m[i]), M_FLOOR) / u)
        return self._family_tables

    @property
    def household_weight(self) -> float:
        """``log2(share / (1 - share))`` of :attr:`household_prior`: the weight of a pair known to share a family
        name and a home, before the person's own fields are compared."""
        share = min(max(self.household_prior, 1e-9), 1 - 1e-9)
        return math.log2(share / (1 - share))

    def household_tables(self) -> dict[int, NDArray[np.float64]]:
        """``log2(m / u)`` with u among different people of one household, per person's comparison index."""
        if self._household_tables is None:
            self._household_tables = {}
            for i, c in enumerate(self.comparisons):
                if c.name in self.u_household:
                    u = np.maximum(np.asarray(self.u_household[c.name]), U_FLOOR)
                    self._household_tables[i] = np.log2(np.maximum(np.asarray(self.m[i]), M_FLOOR) / u)
        return self._household_tables

    def index_of(self, name: str) -> int | None:
        for i, c in enumerate(self.comparisons):
            if c.name == name:
                return i
        return None

    def term_frequency(self, column: str, values: NDArray[Any]) -> NDArray[np.float64]:
        """The share of records holding each value (at least one record's share)."""
        table = self.tf.get(column, {})
        total = max(self.tf_total, 1)
        counts = np.fromiter((table.get(v, 1) for v in values), dtype=np.float64, count=len(values))
        return counts / total

    def term_frequency_of_codes(self, column: str, frame: Any, codes: NDArray[np.int32]) -> NDArray[np.float64]:
        """:meth:`term_frequency` of values given by their codes in ``frame`` (a :class:`mpi.frames.Frame`):
        looked up once per distinct value of the frame, cached with it for this model."""
        key = ("tf", self.version, column)
        shares = frame.cache.get(key)
        if shares is None:
            shares = frame.cache[key] = self.term_frequency(column, frame.vocab[column])
        return shares[codes]  # type: ignore[no-any-return]

    def stand_in(self, side: Any, column: str = "given") -> NDArray[np.bool_]:
        """Rows of ``side`` (a :class:`mpi.frames.Frame`) whose ``column`` (``given`` or ``family``) is a stand-in
        (:attr:`stand_in_given`, :attr:`stand_in_family`): looked up once per distinct value of a coded frame,
        cached with it for this model."""
        return self._held(side, column, "stand_in_given" if column == "given" else "stand_in_family", "stand-in")

    def shared(self, side: Any, what: str) -> NDArray[np.bool_]:
        """Rows of ``side`` (a :class:`mpi.frames.Frame`) whose phone (``what="phone"``) or home (``"home"``: its
        postcode and address, :func:`home_key`) more records share than a household holds
        (:attr:`shared_phone`, :attr:`shared_home`)."""
        if what == "phone":
            return self._held(side, "phone", "shared_phone", "shared")
        if not self.shared_home:
            return np.zeros(side.size, dtype=bool)
        out = self._held(side, "address", "_shared_addresses", "shared")
        rows = np.flatnonzero(out)
        if len(rows):
            homes = np.frompyfunc(home_key, 2, 1)(side["postcode"][rows], side["address"][rows])
            out[rows] = one_of(homes, self._set_of("shared_home"))
        return out

    @cached_property
    def _shared_addresses(self) -> frozenset[str]:
        """The addresses of :attr:`shared_home`, without their postcodes (a first, cheap look-up by address)."""
        return frozenset(home.split("|", 1)[1] for home in self.shared_home)

    def _set_of(self, attribute: str) -> frozenset[str]:
        """The list ``attribute`` of this model (:attr:`shared_home`, :attr:`stand_in_given` ...) as a set, built
        once per model: link-on-write looks values up in it for every new record, on frames that hold no
        vocabulary to cache the answer with. The lists are not changed after a model is made."""
        sets: dict[str, frozenset[str]] = self.__dict__.setdefault("_sets", {})
        held = sets.get(attribute)
        if held is None:
            held = sets[attribute] = frozenset(getattr(self, attribute))
        return held

    def _held(self, side: Any, column: str, attribute: str, kind: str) -> NDArray[np.bool_]:
        """Rows of ``side`` whose ``column`` is one of the model's list ``attribute``: looked up once per distinct
        value of a coded frame, cached with it for this model (``kind`` names the list in the cache)."""
        values = self._set_of(attribute)
        if not values:
            return np.zeros(side.size, dtype=bool)
        if column in side.vocab and f"{column}__code" in side:
            key = (kind, column, self.version)
            flags = side.cache.get(key)
            if flags is None:
                flags = side.cache[key] = one_of(side.vocab[column], values)
            return flags[side[f"{column}__code"]]  # type: ignore[no-any-return]
        return one_of(side[column], values)

    # --- serialisation ------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "created_at": self.created_at,
            "prior": self.prior,
            "match_threshold": self.match_threshold,
            "possible_threshold": self.possible_threshold,
            "comparisons": [{**c.to_dict(), "labels": list(c.labels), "m": m, "u": u}
                            for c, m, u in zip(self.comparisons, self.m, self.u, strict=True)],
            "u_same_family": self.u_same_family,
            **({"u_household": self.u_household, "household_prior": self.household_prior,
                "kin_per_record": self.kin_per_record} if self.u_household else {}),
            "tf_total": self.tf_total,
            "tf": self.tf,
            **({"stand_in_given": list(self.stand_in_given)} if self.stand_in_given else {}),
            **({"stand_in_family": list(self.stand_in_family)} if self.stand_in_family else {}),
            **({"shared_phone": list(self.shared_phone)} if self.shared_phone else {}),
            **({"shared_home": list(self.shared_home)} if self.shared_home else {}),
            "training": self.training,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Model:
        if data.get("format") != FORMAT:
            return cls.default()
        comparisons, ms, us = [], [], []
        realigned = False
        stored_labels: dict[str, list[str]] = {}
        for entry in data["comparisons"]:
            settings = {k: v for k, v in entry.items() if k not in ("labels", "m", "u")}
            comparison = Comparison.from_dict(settings)
            comparisons.append(comparison)
            labels = list(entry.get("labels") or comparison.labels)
            stored_labels[comparison.name] = labels
            prior_m, prior_u = PRIOR_KNOWLEDGE.get(comparison.name, (entry["m"], entry["u"]))
            ms.append(realign(entry["m"], labels, comparison.labels, prior_m))
            us.append(realign(entry["u"], labels, comparison.labels, prior_u))
            realigned |= labels != list(comparison.labels)
        training = dict(data.get("training") or {})
        version = data.get("version", "")
        if realigned:
            # a model stored before a comparison gained a level: each level it knew keeps its values, a new one takes
            # the shipped prior knowledge (until the next ``priorscan link`` learns it); a version of its own
            training = {**training, "realigned": "levels added since the model was trained take prior knowledge"}
            version = ""
        labels_of = {c.name: c.labels for c in comparisons}
        if "u_household" in data:
            u_household = {name: realign(list(u), stored_labels.get(name, []), labels_of.get(name, ()),
                                         HOUSEHOLD_PRIOR_KNOWLEDGE.get(name, list(u)))
                           for name, u in dict(data.get("u_household") or {}).items()}
            household: dict[str, Any] = {"u_household": u_household,
                                         "household_prior": float(data.get("household_prior") or 0.0),
                                         "kin_per_record": float(data.get("kin_per_record") or 0.0)}
        else:
            # a model trained before relatives were learnt: the hand rules that kept twins apart are retired, so it
            # scores with the shipped knowledge of relatives until the next ``priorscan link``; its content changes,
            # so it gets a version of its own (every link says which)
            household = {"u_household": {name: list(u) for name, u in HOUSEHOLD_PRIOR_KNOWLEDGE.items()},
                         "household_prior": HOUSEHOLD_PRIOR_SHARE, "kin_per_record": HOUSEHOLD_PRIOR_KIN}
            training = {**training, "household": "shipped prior knowledge (model trained before relatives were learnt)"}
            version = ""
        return cls(comparisons=comparisons, m=ms, u=us, prior=data["prior"], match_threshold=data["match_threshold"],
                   possible_threshold=data["possible_threshold"], tf=dict(data.get("tf") or {}),
                   u_same_family={name: realign(u, stored_labels.get(name, []), labels_of.get(name, ()),
                                                PRIOR_KNOWLEDGE.get(name, (u, u))[1])
                                  for name, u in dict(data.get("u_same_family") or {}).items()}, **household,
                   tf_total=int(data.get("tf_total") or 0), training=training,
                   stand_in_given=[str(v) for v in data.get("stand_in_given") or []],
                   stand_in_family=[str(v) for v in data.get("stand_in_family") or []],
                   shared_phone=[str(v) for v in data.get("shared_phone") or []],
                   shared_home=[str(v) for v in data.get("shared_home") or []],
                   created_at=data.get("created_at", ""), version=version)

    def evolve(self, **changes: Any) -> Model:
        """A copy with ``changes`` applied (and a new version)."""
        fields: dict[str, Any] = {"comparisons": self.comparisons, "m": self.m, "u": self.u, "prior": self.prior,
                  "match_threshold": self.match_threshold, "possible_threshold": self.possible_threshold,
                  "u_same_family": self.u_same_family, "u_household": self.u_household,
                  "household_prior": self.household_prior, "kin_per_record": self.kin_per_record, "tf": self.tf,
                  "tf_total": self.tf_total, "stand_in_given": self.stand_in_given,
                  "stand_in_family": self.stand_in_family, "shared_phone": self.shared_phone,
                  "shared_home": self.shared_home,
                  "training": self.training}
        fields.update(changes)
        return Model(**fields)

    def content_version(self) -> str:
        """``fs-`` and a hash of everything that affects a score."""
        content = {k: v for k, v in self.to_dict().items() if k not in ("version", "created_at", "training")}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
        return f"fs-{digest[:12]}"

    @classmethod
    def default(cls) -> Model:
        """The shipped prior model (``mpi/data/prior_model.json``): judgement m and u, no term frequencies.

        Its version is the content hash of its parameters, like a trained model's, so a link made with it says so.
        """
        return cls(training={"kind": SHIPPED_KIND, "name": SHIPPED_PRIOR["name"],
                             "release": SHIPPED_PRIOR["release"]},
                   u_household={name: list(u) for name, u in HOUSEHOLD_PRIOR_KNOWLEDGE.items()},
                   household_prior=HOUSEHOLD_PRIOR_SHARE, kin_per_record=HOUSEHOLD_PRIOR_KIN)

    @property
    def kind(self) -> str:
        """``shipped-prior`` or ``em`` (trained on a store's records)."""
        kind = str(self.training.get("kind", SHIPPED_KIND))
        return SHIPPED_KIND if kind == "prior-knowledge" else kind

    def describe(self) -> str:
        """One line naming the model for people: which kind, its version, what it was trained on."""
        if self.kind == SHIPPED_KIND:
            return f"the shipped prior model {self.version} ({SHIPPED_PRIOR['name']} {SHIPPED_PRIOR['release']})"
        records = self.training.get("records")
        return f"a model trained on {records} records ({self.version})" if records else f"model {self.version}"

    def explain(self) -> list[dict[str, Any]]:
        """Per comparison and level: m, u and the weight (for documentation and the review page)."""
        out = []
        for c, m, u, table in zip(self.comparisons, self.m, self.u, self.weight_tables(), strict=True):
            out.append({"comparison": c.name, "levels": [
                {"label": label, "m": round(mi, 6), "u": float(f"{ui:.3g}"), "weight": round(float(w), 2)}
                for label, mi, ui, w in zip(c.labels, m, u, table, strict=True)]})
        return out
