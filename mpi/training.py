"""Training: term frequencies, u from random pairs, m by expectation maximisation over blocked pairs.

Everything is learnt from the store's own records, with no labelled pairs:

1. *Term frequencies* of family names, given names and postcodes: how many records hold each value.
2. *u* (the chance of each level between different people) from random pairs of records: almost every random
   pair is two different people, so level frequencies among them estimate u directly.
3. *m* (the chance of each level for the same person) by EM with u held fixed (as Splink does), over pairs that
   agree on one field (one run per training rule; the rule's own comparison is left out of that run, since its
   agreement is by construction): the E-step gives each pair its probability of being a match from the current m,
   the M-step re-estimates m as the level frequencies weighted by those probabilities. EM runs over the distinct
   level patterns with their counts, so millions of pairs cost no more than a few thousand patterns.
4. *Stand-in names* (``DAUGHTER``, ``INMATE``; ``OCCUPANT``): given names whose holders disagree with every record
   of their family name and birth date (family names: of their given name and birth date), where a name's holders
   mostly agree with their own other records (:func:`stand_in_names`); compared as no name from then on, EM runs
   included.
5. The *prior* (the chance that two random records are the same person) = expected matching pairs / all pairs
   of records, where each run's expected matches are scaled up by the share of true matches its rule catches.

Estimates are smoothed towards the prior-knowledge values (a few dozen pseudo-observations), so a small store
still gets a sensible model.

A store of more than :data:`TRAINING_SAMPLE` records trains on a sample of about that many, chosen by a hash of the
record id (:func:`in_training_sample`): the same records whichever engine asks (the relink in one process, or the
Spark relink's tasks, each over its own partition), fed to :func:`train` in record-id order, so both engines train
the same model (:func:`train_if_supported`).
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from rapidfuzz.distance import OSA

from mpi.blocking import pairs_within_runs
from mpi.comparisons import Comparison, IdentifierComparison, MiddleNameComparison, similarity
from mpi.frames import Frame, frame_from_table
from mpi.identifier_systems import all_tokens
from mpi.model import (
    HOUSEHOLD_PRIOR_KIN,
    HOUSEHOLD_PRIOR_KNOWLEDGE,
    HOUSEHOLD_PRIOR_SHARE,
    M_FLOOR,
    TRAINED_KIND,
    U_FLOOR,
    Model,
    home_key,
)
from mpi.scoring import comparison_levels, one_home, shared_homes_as_none

log = logging.getLogger(__name__)

#: Fewer active records than this and the store cannot support a model of its own: u from random pairs bottoms out
#: at one observation's share (1 / pairs drawn), so agreement levels whose true u is rarer (a birth date, ~3e-5; a
#: postcode, ~1e-4) are estimated far too common and lose most of their weight, while EM has too few agreeing pairs
#: per rule to learn m. At 1,000 records the 50,000 random pairs drawn put the floor at 2e-5, below those u.
MIN_RECORDS = 1_000
#: A trained model replaces the current one only when this many EM runs learnt from enough pairs, one of them
#: the birth-date run (the prior is estimated from it).
MIN_EM_RUNS = 2
MIN_EM_PAIRS = 200


@dataclass(frozen=True)
class TrainingEvidence:
    """Whether a store's records (or a model trained on them) are enough to replace the model in use, and why."""

    enough: bool
    reason: str


def evidence_of_store(records: int) -> TrainingEvidence:
    """Whether ``records`` active records are enough to try training (see :data:`MIN_RECORDS`)."""
    if records < MIN_RECORDS:
        return TrainingEvidence(False, f"{records} records are too few to train (at least {MIN_RECORDS:,} needed)")
    return TrainingEvidence(True, f"{records} records")


def evidence_of_model(model: Model) -> TrainingEvidence:
    """Whether a freshly trained ``model`` learnt enough to replace the model in use (see :data:`MIN_EM_RUNS`)."""
    runs = [run for run in model.training.get("runs", []) if run.get("pairs", 0) >= MIN_EM_PAIRS]
    if len(runs) < MIN_EM_RUNS or not any(run["rule"] == "birth-date" for run in runs):
        learnt = ", ".join(f"{run['rule']} ({run['pairs']} pairs)" for run in model.training.get("runs", []))
        return TrainingEvidence(False, f"training learnt too little (EM runs: {learnt or 'none'}; at least "
                                       f"{MIN_EM_RUNS} with {MIN_EM_PAIRS} pairs, one of them on birth dates)")
    return TrainingEvidence(True, f"{len(runs)} EM runs")


#: A store of more active records than this trains on a sample of about this many (as Splink samples): u, EM and
#: the term frequencies are estimated as well from 200 000 records as from millions, and the Spark relink's driver
#: holds the records it trains on (~100 MB at this size), never the store.
TRAINING_SAMPLE = 200_000
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


def sample_hash(record_ids: NDArray[np.int64], *, seed: int = 0) -> NDArray[np.uint64]:
    """A 64-bit hash of each record id (SplitMix64's finaliser over ``id + (seed + 1) × γ``).

    Uniform over the hash range and unrelated to how ids were given out: consecutive ids (one person's records,
    loaded together) land far apart. Integer arithmetic modulo 2**64, so the value is the same on every machine.
    """
    z = np.asarray(record_ids, dtype=np.int64).astype(np.uint64)
    z = z + np.uint64(((seed + 1) * _GOLDEN_GAMMA) & _MASK64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))  # type: ignore[no-any-return]


def in_training_sample(record_ids: NDArray[np.int64], *, records: int, sample: int = TRAINING_SAMPLE,
                       seed: int = 0) -> NDArray[np.bool_]:
    """Whether each of ``record_ids`` is one that a store of ``records`` active records trains on.

    Every record when ``records <= sample``; beyond, those whose :func:`sample_hash` lies in the lowest
    ``sample / records`` of the hash range: about ``sample`` records (a binomial count: 200 000 ± 450, one standard
    deviation). Whether a record is chosen depends only on its id, the store's size and the seed, never on which
    process, partition or order reads it: the single-machine relink filters its table with this function and the
    Spark relink its partitions, and both train on the same records.
    """
    ids = np.asarray(record_ids, dtype=np.int64)
    if records <= sample:
        return np.ones(len(ids), dtype=bool)
    below = (max(sample, 0) << 64) // records  # < 2**64 since sample < records
    return sample_hash(ids, seed=seed) < np.uint64(below)  # type: ignore[no-any-return]


def sampled_frame(table: pd.DataFrame, frame: Frame, *, sample: int = TRAINING_SAMPLE, seed: int = 0) -> Frame:
    """The frame of the records of ``table`` (every active record, in record-id order; ``frame`` is its frame) that
    :func:`in_training_sample` chooses: ``frame`` itself when it chooses every one."""
    chosen = in_training_sample(table["record_id"].to_numpy(dtype=np.int64), records=len(table), sample=sample,
                                seed=seed)
    return frame if chosen.all() else frame_from_table(table.loc[chosen].reset_index(drop=True))


def train_if_supported(records: int, training_frame: Callable[[], Frame], *, base: Model,
                       blocked_pairs: int | Callable[[], int], seed: int = 0) -> tuple[Model, str | None]:
    """A model trained for a store of ``records`` active records when the store supports one, else ``base`` (the
    model in use) and why not.

    Training replaces the model in use only with enough evidence: enough records to try (:func:`evidence_of_store`)
    and enough learnt from them (:func:`evidence_of_model`). Both relink engines train through here.

    Parameters
    ----------
    records
        Active records in the store.
    training_frame
        Builds the frame of the records :func:`in_training_sample` chooses, in record-id order (called only when
        the store has enough records to try).
    blocked_pairs
        The blocked pairs the relink scores (for the training report), or what counts them, asked once the model is
        trained (the local relink finds its pairs on the spare core meanwhile).
    """
    evidence = evidence_of_store(records)
    if evidence.enough:
        frame = training_frame()
        candidate = train(frame, base=base, seed=seed, records=records)
        counted = blocked_pairs() if callable(blocked_pairs) else blocked_pairs
        training = {**candidate.training, "blocked_pairs": int(counted)}
        if frame.size < records:
            training.update(sampled_records=int(frame.size), records=int(records))
        candidate = candidate.evolve(training=training)
        evidence = evidence_of_model(candidate)
        if evidence.enough:
            return candidate, None
    log.info("not trained: %s; linking with %s", evidence.reason, base.describe())
    return base, evidence.reason


TF_COLUMNS = ("family", "given", "postcode")
#: Pseudo-observations pulling estimates towards prior knowledge.
SMOOTHING = 20.0


def term_frequencies(frame: Frame, columns: tuple[str, ...] = TF_COLUMNS,
                     min_count: int = 2) -> tuple[dict[str, dict[str, int]], int]:
    """Counts of values held by at least ``min_count`` records, per column, and the number of records."""
    tables: dict[str, dict[str, int]] = {}
    for column in columns:
        if column in frame.vocab:  # counted over the frame's value codes
            values = frame.vocab[column]
            counts = np.bincount(frame[f"{column}__code"], minlength=len(values))
        else:
            values, counts = np.unique(frame[column].astype(str), return_counts=True)
        keep = (counts >= min_count) & (values != "")
        tables[column] = {str(v): int(c) for v, c in sorted(zip(values[keep], counts[keep], strict=True))}
    return tables, frame.size


def random_pairs(size: int, count: int, rng: np.random.Generator) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``count`` random pairs of distinct rows."""
    if size < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    left = rng.integers(0, size, count)
    right = rng.integers(0, size - 1, count)
    right = right + (right >= left)  # never a row with itself
    return left, right


def _smoothed(counts: NDArray[np.float64], prior: list[float], floor: float) -> list[float]:
    """Level frequencies pulled towards prior knowledge; never below one observation's share (a level never
    seen in n pairs has a chance we can only bound by 1/n, not set near zero)."""
    total = counts.sum()
    estimate = (counts + SMOOTHING * np.asarray(prior)) / (total + SMOOTHING)
    estimate = np.maximum(estimate, max(floor, 1.0 / max(total, 1.0)))
    return [float(x) for x in estimate / estimate.sum()]


def _smoothed_unseen_together(counts: NDArray[np.float64], prior: list[float], floor: float) -> list[float]:
    """Level frequencies as :func:`_smoothed`, except that the levels never seen share one observation's share.

    Not seeing any of k levels in n pairs bounds their *total* chance by about 1/n, not each one's: a floor of
    1/n per level would give the k levels together k/n, a chance the data have just argued against. The unseen
    levels together get what :func:`_smoothed` would give them before its floor, or one observation's share if
    that is more, split between them as ``prior`` splits them (what the pairs cannot tell apart is left as prior
    knowledge has it); a level seen at least once keeps :func:`_smoothed`'s estimate. No unseen level falls below
    its ``prior`` chance, either: :func:`estimate_u_same_family`'s prior is the ordinary u, and different people of
    one family name share a home or a street at least as often as any two people do.
    """
    total = counts.sum()
    bound = max(floor, 1.0 / max(total, 1.0))
    prior_array = np.asarray(prior, dtype=np.float64)
    estimate = (counts + SMOOTHING * prior_array) / (total + SMOOTHING)
    unseen = counts == 0
    estimate[~unseen] = np.maximum(estimate[~unseen], bound)
    if unseen.any():
        mass = max(float(estimate[unseen].sum()), bound)
        split = prior_array[unseen] / max(float(prior_array[unseen].sum()), floor)
        estimate[unseen] = np.maximum(mass * split, np.maximum(prior_array[unseen], floor))
    return [float(x) for x in estimate / estimate.sum()]


def level_counts(levels: NDArray[np.int8], levels_count: int, weights: NDArray[np.float64] | None = None
                 ) -> NDArray[np.float64]:
    present = levels >= 0
    return np.bincount(levels[present].astype(np.int64), weights=None if weights is None else weights[present],
                       minlength=levels_count).astype(np.float64)


def estimate_u(model: Model, frame: Frame, *, pairs: int = 1_000_000, seed: int = 0) -> list[list[float]]:
    """u per comparison level from random pairs of ``frame``'s records."""
    n = frame.size
    count = min(pairs, n * (n - 1) // 2)
    left, right = random_pairs(n, count, np.random.default_rng(seed))
    levels = comparison_levels(model, frame.take(left), frame.take(right))
    return [_smoothed(level_counts(levels[:, i], c.levels_count), model.u[i], U_FLOOR)
            for i, c in enumerate(model.comparisons)]


def _distinct_patterns(levels: NDArray[np.int8]) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
    """The distinct rows of ``levels`` and how often each occurs (rows coded as one integer: quicker to sort)."""
    if len(levels) == 0:
        return levels, np.zeros(0)
    base = int(levels.max()) + 2  # levels run from -1
    code = np.zeros(len(levels), dtype=np.int64)
    for i in range(levels.shape[1]):
        code = code * base + (levels[:, i].astype(np.int64) + 1)
    distinct, first, counts = np.unique(code, return_index=True, return_counts=True)
    return levels[first], counts.astype(np.float64)


@dataclass
class EMResult:
    m: list[list[float]]
    match_share: float  # share of matches among the pairs EM ran over
    iterations: int
    converged: bool


def expectation_maximisation(model: Model, levels: NDArray[np.int8], u: list[list[float]], *,
                             household: Model | None = None, max_iterations: int = 50, tolerance: float = 1e-5
                             ) -> EMResult:
    """m and the match share by EM over ``levels`` (pairs × comparisons), u fixed.

    With ``household`` (a model that has learnt how the people of one home differ: ``u_household``), the pairs
    whose records give one home (:func:`mpi.scoring.one_home`) are weighed as the scoring weighs them: one person
    or *relatives*, not one person or strangers. Their home (and the phone it shares) says nothing in the E-step,
    their own fields weigh against ``u_household``, and they keep a match share of their own. Otherwise twins (one
    birth date, one family name, one home) and a father and son of one name are matches in EM's eyes (the shared
    home weighs as it does for strangers) and EM learns that one person's given name or birth date often differ.
    The M-step counts every pair's levels, the home's included.
    """
    patterns, counts = _distinct_patterns(levels)
    m = [list(x) for x in model.m]
    share = 0.01
    log_u = [np.log(np.maximum(np.asarray(x), U_FLOOR)) for x in u]
    home = np.zeros(len(patterns), dtype=bool)
    log_u_home = list(log_u)
    if household is not None and household.u_household and len(patterns):
        home = one_home(household, patterns)
        for i, c in enumerate(model.comparisons):
            if c.name in household.u_household:
                log_u_home[i] = np.log(np.maximum(np.asarray(household.u_household[c.name]), U_FLOOR))
    home_share = 0.5
    converged = False
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 (read after the loop)
        log_bf = np.zeros(len(patterns))
        for i, c in enumerate(model.comparisons):
            column = patterns[:, i]
            present = column >= 0
            log_m = np.log(np.maximum(np.asarray(m[i]), M_FLOOR))
            away = present & ~home
            log_bf[away] += log_m[column[away]] - log_u[i][column[away]]
            if not c.shared_by_household:
                here = present & home
                log_bf[here] += log_m[column[here]] - log_u_home[i][column[here]]
        logit = np.where(home, np.log(home_share / (1 - home_share)), np.log(share / (1 - share))) + log_bf
        posterior = 1.0 / (1.0 + np.exp(-np.clip(logit, -500, 500)))
        weighted = posterior * counts
        away_counts = counts[~home].sum()
        new_share = float(np.clip(weighted[~home].sum() / away_counts, 1e-9, 1 - 1e-9)) if away_counts else share
        home_counts = counts[home].sum()
        new_home_share = (float(np.clip(weighted[home].sum() / home_counts, 1e-9, 1 - 1e-9)) if home_counts
                          else home_share)
        new_m = [_smoothed(level_counts(patterns[:, i], c.levels_count, weighted), model.m[i], M_FLOOR)
                 for i, c in enumerate(model.comparisons)]
        change = max(abs(a - b) for old, new in zip(m, new_m, strict=True) for a, b in zip(old, new, strict=True))
        if home.any():
            change = max(change, abs(new_share - share), abs(new_home_share - home_share))
        m, share, home_share = new_m, new_share, new_home_share
        if change < tolerance:
            converged = True
            break
    matches = float(np.clip((posterior * counts).sum() / max(counts.sum(), 1.0), 1e-9, 1 - 1e-9)) if len(
        patterns) else share
    return EMResult(m=m, match_share=matches, iterations=iteration, converged=converged)


@dataclass(frozen=True)
class TrainingRule:
    """Pairs that agree on some fields, for one EM run that learns m for every *other* comparison (as Splink).

    Rules are chosen so that agreeing pairs are mostly *one person or strangers*, never mostly a household: pairs
    agreeing on a postcode or a family name alone are dominated by relatives, and EM would learn "same household"
    instead of "same person".
    """

    name: str
    columns: tuple[str, ...]  # frame columns the pairs agree on
    comparisons: tuple[str, ...]  # comparisons this rule cannot learn (agreement by construction)
    catch: str | None = None  # comparison whose exact-level m is the share of true matches the rule catches


TRAINING_RULES = (
    TrainingRule("birth-date", ("dob_full",), ("birth_date",), catch="birth_date"),
    TrainingRule("names", ("given_ph", "family_first_ph"), ("given", "family")),
    TrainingRule("nhs-number", ("nhs_valid_number",), ("nhs_number",)),
)
#: Blocks larger than this are left out of training (a placeholder value says nothing).
TRAINING_BLOCK_CAP = 5_000


def pairs_agreeing(values: NDArray[Any], *, max_pairs: int, rng: np.random.Generator,
                   cap: int = TRAINING_BLOCK_CAP) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    """Pairs of rows with the same non-empty value: all of them, or a uniform sample of ``max_pairs``.

    Returns the left rows, the right rows and how many such pairs there are in all.
    """
    present = np.flatnonzero(values != "")
    codes, _ = pd.factorize(values[present])
    order = present[np.argsort(codes, kind="stable")]
    sorted_codes = np.sort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]) if len(order) else np.zeros(0, int)
    sizes = np.diff(np.r_[starts, len(order)])
    usable = (sizes >= 2) & (sizes <= cap)
    starts, sizes = starts[usable], sizes[usable]
    per_group = sizes.astype(np.float64) * (sizes - 1) / 2
    total = int(per_group.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, 0
    count = min(max_pairs, total)
    group = rng.choice(len(sizes), size=count, p=per_group / per_group.sum())
    first = rng.integers(0, sizes[group])
    second = rng.integers(0, sizes[group] - 1)
    second = second + (second >= first)
    return order[starts[group] + first], order[starts[group] + second], total


def training_columns(frame: Frame) -> dict[str, NDArray[Any]]:
    """The frame's columns plus those training rules agree on."""
    full = (frame["birth_month"] > 0) & (frame["birth_day"] > 0)
    return {**frame,
            "family_first_ph": np.asarray([v.split(" ", 1)[0] for v in frame["family_ph"]], dtype=object),
            "dob_full": np.where(full, frame["dob"], ""),
            "nhs_valid_number": np.where(frame["nhs_valid"], frame["nhs_number"], "")}


def _combined(columns: dict[str, NDArray[Any]], names: tuple[str, ...]) -> NDArray[Any]:
    if len(names) == 1:
        return columns[names[0]]
    parts = [columns[n].astype(str) for n in names]
    missing = np.zeros(len(parts[0]), dtype=bool)
    for part in parts:
        missing |= part == ""
    joined = parts[0]
    for part in parts[1:]:
        joined = np.char.add(np.char.add(joined, "|"), part)
    return np.where(missing, "", joined).astype(object)


def train(frame: Frame, pairs: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None, *,
          base: Model | None = None, u_pairs: int = 150_000, em_pairs: int = 180_000, seed: int = 0,
          records: int | None = None) -> Model:
    """A model trained on ``frame``'s records.

    m is learnt by one EM run per :data:`TRAINING_RULES` entry over (a sample of) the pairs agreeing on that
    rule's field, with that field's comparison left out (its level is agreement by construction); each
    comparison's m is the mean over the runs that could learn it. The prior is the expected number of matching
    pairs, from each run's match share scaled up by the share of true matches its rule catches (its field's
    m for exact agreement), over all pairs of records.

    Parameters
    ----------
    frame
        Every record to link (normalised).
    pairs
        The blocked pairs the linker will score (only counted, for the training report).
    base
        Comparisons, thresholds and starting values (the default model when ``None``).
    records
        Active records in the store, when ``frame`` is a sample of them (:func:`in_training_sample`).
    """
    base = base or Model.default()
    rng = np.random.default_rng(seed)
    shared_phone, shared_home, shared_run = shared_homes(frame, records=records or frame.size)
    common_identifiers = shared_identifiers(frame, records=records or frame.size)
    shared_run["shared_identifier"] = len(common_identifiers)
    base = base.evolve(shared_phone=shared_phone, shared_home=shared_home,
                       comparisons=[replace(c, shared_values=common_identifiers) if isinstance(c, IdentifierComparison)
                                    else c for c in base.comparisons])
    columns = training_columns(frame)
    stand_ins, stand_in_run = stand_in_names(base, frame, columns, column="given")
    family_stand_ins, family_stand_in_run = stand_in_names(base, frame, columns, column="family")
    base = base.evolve(stand_in_given=stand_ins, stand_in_family=family_stand_ins)
    # samples in proportion to the store, within bounds: enough pairs per level, not more than needed
    u_pairs = min(u_pairs, max(50_000, 5 * frame.size))
    em_pairs = min(em_pairs, max(90_000, 5 * frame.size))
    tf, total = term_frequencies(frame)
    u = estimate_u(base, frame, pairs=u_pairs, seed=seed)
    start = Model(comparisons=base.comparisons, m=base.m, u=u, prior=base.prior, stand_in_given=stand_ins,
                  stand_in_family=family_stand_ins, shared_phone=shared_phone,
                  shared_home=shared_home)
    runs: list[dict[str, Any]] = []
    run_levels: list[tuple[TrainingRule, NDArray[np.int8], list[int], int]] = []
    for rule in TRAINING_RULES:
        fixed = [i for i in (base.index_of(name) for name in rule.comparisons) if i is not None]
        key = _combined(columns, rule.columns)
        left, right, in_all = pairs_agreeing(key, max_pairs=em_pairs // len(TRAINING_RULES), rng=rng)
        if len(left) < 50:
            continue
        levels = comparison_levels(base, frame.take(left), frame.take(right))
        levels[:, fixed] = -1
        run_levels.append((rule, levels, fixed, in_all))
    # m first against strangers alone; then, once the households have taught how relatives differ, again with
    # the pairs at one home weighed as one person or relatives (:func:`expectation_maximisation`)
    household_model: Model | None = None
    for _ in range(2):
        learnt: list[list[list[float]]] = [[] for _ in base.comparisons]
        results: list[tuple[TrainingRule, EMResult, int]] = []
        runs = []
        for rule, levels, fixed, in_all in run_levels:
            result = expectation_maximisation(start, levels, u, household=household_model)
            results.append((rule, result, in_all))
            for i in range(len(base.comparisons)):
                if i not in fixed and (levels[:, i] >= 0).sum() >= 50:
                    learnt[i].append(result.m[i])
            runs.append({"rule": rule.name, "pairs": int(len(levels)), "pairs_in_all": in_all,
                         "iterations": result.iterations, "converged": result.converged,
                         "match_share": result.match_share, "households": household_model is not None})
        m = [list(np.mean(np.asarray(options), axis=0)) if options else list(base.m[i])
             for i, options in enumerate(learnt)]
        middle_m, middle_pairs = estimate_m_middle(base, frame, columns, prior=m, rng=np.random.default_rng(seed))
        if middle_m is not None:
            m[base.comparisons.index(middle_m[0])] = middle_m[1]
        learnt_model = Model(comparisons=base.comparisons, m=m, u=u, prior=base.prior, stand_in_given=stand_ins,
                             stand_in_family=family_stand_ins, shared_phone=shared_phone, shared_home=shared_home)
        household_rng = copy.deepcopy(rng)  # both passes draw the same pairs of one family and of one home
        family_pairs = same_family_pairs(columns, rng=household_rng)
        u_household, household_run = estimate_u_household(learnt_model, frame, columns, rng=household_rng)
        if not u_household or not household_run["pairs"]:
            break
        household_model = learnt_model.evolve(u_household=u_household,
                                              household_prior=float(household_run["match_share"]))
    # learnt once, with the last pass's model: a first pass's estimate was thrown away for the second's (each pass
    # still draws these pairs before the pairs of one home, from the same copy of the generator: those are unchanged)
    u_same_family = estimate_u_same_family(learnt_model, frame, family_pairs)
    matches_estimates: list[float] = []
    for rule, result, in_all in results:
        caught_by = base.index_of(rule.catch) if rule.catch else None
        if caught_by is not None:
            matches_estimates.append(result.match_share * in_all / max(m[caught_by][0], 0.05))
    all_pairs = frame.size * (frame.size - 1) / 2
    expected_matches = float(np.median(matches_estimates)) if matches_estimates else base.prior * all_pairs
    prior = float(np.clip(expected_matches / max(all_pairs, 1.0), 1e-12, 0.5))
    training: dict[str, Any] = {
        "kind": TRAINED_KIND, "records": int(frame.size), "u_pairs": int(min(u_pairs, all_pairs)), "runs": runs,
        "expected_matching_pairs": expected_matches,
        "blocked_pairs": int(len(pairs[0])) if pairs is not None else None,
        "household": household_run,
        "stand_in_given": stand_in_run,
        "stand_in_family": family_stand_in_run,
        "shared_homes": shared_run,
        "middle_m_pairs": middle_pairs,
    }
    log.info("trained on %d records: %d EM runs, prior %.3g (%.0f expected matching pairs)", frame.size, len(runs),
             prior, expected_matches)
    return Model(comparisons=base.comparisons, m=[[float(x) for x in row] for row in m], u=u, prior=prior,
                 match_threshold=base.match_threshold, possible_threshold=base.possible_threshold, tf=tf,
                 tf_total=total, training=training, u_same_family=u_same_family, u_household=u_household,
                 household_prior=float(household_run["match_share"]), kin_per_record=float(household_run["kin"]),
                 stand_in_given=stand_ins, stand_in_family=family_stand_ins, shared_phone=shared_phone,
                 shared_home=shared_home)


#: m of the middle name is read from pairs of one person only with at least this many of them holding one each.
MIDDLE_M_PAIRS = 200


def estimate_m_middle(model: Model, frame: Frame, columns: dict[str, NDArray[Any]], *, prior: list[list[float]],
                      rng: np.random.Generator, pairs: int = 100_000
                      ) -> tuple[tuple[Comparison, list[float]] | None, int]:
    """m of the middle name from pairs of one person: the same given name, family name and full birth date.

    EM cannot learn it from its runs: pairs with one birth date hold twins, whose home, family name and birth date
    make them a match in EM's eyes (the shared home weighs as it does for strangers there) and whose middle names
    differ, so EM would learn that one person's middle names often differ; and where the first given names agree
    an agreeing middle name is no evidence (:class:`mpi.comparisons.MiddleNameComparison`). Two records agreeing on
    given name, family name and full birth date are one person nearly always (twins are given two names); how
    often their middle names agree, as far as both go, or differ is m, smoothed towards the runs' m (``prior``).

    Returns the comparison with its m (``None`` with fewer than :data:`MIDDLE_M_PAIRS` pairs holding middle names
    on both sides) and the pairs counted.
    """
    index = model.index_of("middle")
    comparison = model.comparisons[index] if index is not None else None
    if index is None or not isinstance(comparison, MiddleNameComparison):
        return None, 0
    left, right, _ = pairs_agreeing(_combined(columns, ("given", "family", "dob_full")), max_pairs=pairs, rng=rng)
    levels = comparison.levels_whatever_the_first_names(frame.take(left), frame.take(right))
    levels = levels[levels >= 0]
    if len(levels) < MIDDLE_M_PAIRS:
        return None, int(len(levels))
    counts = level_counts(levels, comparison.levels_count)
    return (comparison, _smoothed(counts, prior[index], M_FLOOR)), int(len(levels))


#: A given name is judged a stand-in only on this many holders that have a record of their family name and birth
#: date to be compared with.
STAND_IN_HOLDERS = 3
#: Per name column: the columns whose agreement (with the full birth date) makes the pairs a holder is compared
#: over, and the levels at which a holder's name agrees with another record's. A given name's distant spelling
#: does not (short words reach it by chance, ``DAU`` and ``DAKOTA``); a family name's does (a slip in a short one,
#: ``DOT`` for ``DOE``, reaches no closer), as do a crossed one and the ones a marriage would not explain away.
STAND_IN_RULES = {
    "given": (("family", "dob_full"),
              ("exact", "swapped", "nickname", "jaro-winkler>=0.92", "phonetic", "initial-or-middle")),
    "family": (("given", "dob_full"), ("exact", "swapped", "words-shared", "jaro-winkler>=0.92", "phonetic",
                                       "jaro-winkler>=0.80", "crossed")),
}
#: Records sharing one name and birth date beyond this are a placeholder, not one person's (left out).
STAND_IN_GROUP = 50
#: Pseudo-observations of the store's overall share pulling a value's share towards it.
STAND_IN_SMOOTHING = 2.0


def stand_in_names(model: Model, frame: Frame, columns: dict[str, NDArray[Any]], *, column: str = "given"
                   ) -> tuple[list[str], dict[str, Any]]:
    """Given (or family) names that are more likely *not* their holder's name than theirs, learnt from the store.

    A record's other records share its family name and its full birth date (for a family name: its given name and
    birth date), and so do a twin's. Over those pairs (in groups of at most :data:`STAND_IN_GROUP` records:
    a larger one is a placeholder, not a person) whose other evidence says one person or one household
    (:func:`_one_person_or_household`; in a large store many strangers share a family name and a birth date, and a
    real name held once by each of several of them would otherwise look like no name), a holder of a real
    name almost always finds a record whose name agrees (:data:`STAND_IN_RULES`: exact, nickname, close spelling,
    sound, initial): its own other records; one whose name agrees with none of them is a twin seen once, or a
    record whose name is not a name (``DAUGHTER``, ``INMATE``; ``OCCUPANT``, ``RESIDENT``). Per value, the share of
    its holders (among those with such a pair) that agree with none is smoothed towards the store's overall share
    (:data:`STAND_IN_SMOOTHING` pseudo-observations); a value held so by at least :data:`STAND_IN_HOLDERS` records
    whose smoothed share is at least one half (more likely not the person's name than theirs) is a stand-in. It
    is then compared as no name; a record with a stand-in given name is *weak* (rule 8,
    :func:`mpi.scoring.weak_records`).

    Returns the stand-ins (sorted) and a summary for the training report.
    """
    index = model.index_of(column)
    if index is None or column not in STAND_IN_RULES:
        return [], {"holders": 0, "stand_ins": 0}
    agreeing_on, agreeing_levels = STAND_IN_RULES[column]
    key = _combined(columns, agreeing_on)
    present = np.flatnonzero((key != "") & (frame[column] != ""))
    codes, _ = pd.factorize(key[present])
    order = present[np.argsort(codes, kind="stable")]
    found = list(pairs_within_runs(np.sort(codes, kind="stable"), STAND_IN_GROUP))
    left = order[np.concatenate([a for a, _ in found])] if found else np.zeros(0, dtype=np.int64)
    right = order[np.concatenate([b for _, b in found])] if found else np.zeros(0, dtype=np.int64)
    if len(left) == 0:
        return [], {"holders": 0, "stand_ins": 0}
    left, right = _one_person_or_household(model, frame, left, right)
    if len(left) == 0:
        return [], {"holders": 0, "stand_ins": 0}
    comparison = model.comparisons[index]
    levels = comparison.levels(frame.take(left), frame.take(right))
    agree = np.isin(levels, [comparison.labels.index(label) for label in agreeing_levels
                             if label in comparison.labels])
    agree |= _one_slip_apart(frame[column][left], frame[column][right], ~agree)
    rows = np.concatenate([left, right])
    agreeing = np.zeros(frame.size, dtype=bool)
    agreeing[rows[np.concatenate([agree, agree])]] = True
    held = np.unique(rows)
    values = frame[column][held]
    never = ~agreeing[held]
    overall = float(never.mean())
    table = pd.DataFrame({"value": values, "never": never}).groupby("value")["never"].agg(["size", "sum"])
    share = (table["sum"] + STAND_IN_SMOOTHING * overall) / (table["size"] + STAND_IN_SMOOTHING)
    chosen = table.index[(table["size"] >= STAND_IN_HOLDERS) & (share >= 0.5)]
    stand_ins = sorted(str(v) for v in chosen)
    return stand_ins, {"holders": int(len(held)), "holders_agreeing_with_none": float(overall),
                       "stand_ins": len(stand_ins)}


#: A name this long or longer that is one edit from another record's is a slip of it (``JRFFREY``, ``KNNETH``,
#: ``AMT`` for ``AMY``), not a stand-in; two letters reach each other by chance.
SLIP_MIN_LENGTH = 3


def _one_slip_apart(left: NDArray[Any], right: NDArray[Any], where: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Per pair (only where ``where``): both values at least :data:`SLIP_MIN_LENGTH` long and one insertion,
    deletion, substitution or swap of neighbours apart. A typing slip a large store holds three times over (a
    thousand ``JEFFREY`` records give ``JRFFREY`` thrice) agrees with its holder's own other records only so: the
    comparison's levels put a slip in the first letters below close spelling."""
    lengths = np.frompyfunc(len, 1, 1)
    long_enough = (lengths(left).astype(np.int64) >= SLIP_MIN_LENGTH) & (lengths(right).astype(np.int64)
                                                                         >= SLIP_MIN_LENGTH)
    asked = np.flatnonzero(where & long_enough)
    out = np.zeros(len(left), dtype=bool)
    out[asked] = similarity(left[asked], right[asked], OSA.distance) <= 1
    return out


#: Comparisons that say who a record's person is by name or birth date; a stand-in's pairs agree on some of these by
#: construction, so the evidence that two records are one person or one household is read from the others.
_NAMES_AND_BIRTH_DATE = frozenset({"given", "family", "middle", "birth_date"})


def _one_person_or_household(model: Model, frame: Frame, left: NDArray[np.int64], right: NDArray[np.int64]
                             ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The pairs whose evidence beyond names and birth date (identifiers, sex, residence, phone) weighs *for* one
    person or one household (a positive sum of ``model``'s weights; a missing field weighs nothing). Two strangers
    of one family name and birth date (different homes, different NHS numbers) are left out."""
    others = [i for i, c in enumerate(model.comparisons) if c.name not in _NAMES_AND_BIRTH_DATE]
    if not others or len(left) == 0:
        return left, right
    left_side, right_side = frame.take(left), frame.take(right)
    weight = np.zeros(len(left))
    tables = model.weight_tables()
    for i in others:
        comparison = model.comparisons[i]
        levels = shared_homes_as_none(model, comparison.name, comparison.levels(left_side, right_side), left_side,
                                      right_side)
        present = levels >= 0
        weight[present] += tables[i][levels[present]]
    kept = weight > 0
    return left[kept], right[kept]


#: Pairs of one family name's first sound :func:`estimate_u_same_family` learns from, at most.
SAME_FAMILY_PAIRS = 40_000


def same_family_pairs(columns: dict[str, NDArray[Any]], *, rng: np.random.Generator,
                      pairs: int = SAME_FAMILY_PAIRS) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The pairs :func:`estimate_u_same_family` learns from: a sample of at most ``pairs`` pairs of records agreeing
    on the family name's first sound (``columns``: :func:`training_columns`), drawn with ``rng``."""
    left, right, _ = pairs_agreeing(columns["family_first_ph"], max_pairs=pairs, rng=rng)
    return left, right


def estimate_u_same_family(model: Model, frame: Frame,
                           pairs: tuple[NDArray[np.int64], NDArray[np.int64]]) -> dict[str, list[float]]:
    """u of household-shared comparisons among *different* people with the same family name.

    Pairs agreeing on the family name's first sound (``pairs``: :func:`same_family_pairs`) whose own identifiers
    (names, birth date, NHS number, sex) weigh against a match are different people; how often they share a
    residence or a phone is the household rate that replaces u when family names agree.
    """
    left, right = pairs
    if len(left) < 100:
        return {}
    levels = comparison_levels(model, frame.take(left), frame.take(right))
    personal = np.zeros(len(left))
    for i, (c, table) in enumerate(zip(model.comparisons, model.weight_tables(), strict=True)):
        if not c.shared_by_household:
            present = levels[:, i] >= 0
            personal[present] += table[levels[present, i]]
    strangers = personal < -5  # clearly different people: at least 32 to 1 against on their own identifiers
    out = {}
    for i, c in enumerate(model.comparisons):
        if c.shared_by_household:
            column = levels[strangers, i]
            if (column >= 0).sum() >= 100:
                out[c.name] = _smoothed_unseen_together(level_counts(column, c.levels_count), model.u[i], U_FLOOR)
    return out


#: A phone number or an address held by more records than this is not one household's (a household of six, each
#: registered at all five trusts, holds thirty): a switchboard, a care home, a hostel, a placeholder.
HOME_CAP = 30


def shared_homes(frame: Frame, *, records: int) -> tuple[list[str], list[str], dict[str, Any]]:
    """Phone numbers and homes (:func:`mpi.model.home_key`: postcode and address) held by more records than a
    household holds (:data:`HOME_CAP`, scaled to ``frame`` when it is a sample of the store's ``records``).

    A number every record of a trust's extract carries (``01483 000000`` keyed for no number, a switchboard, a
    surgery's number) and an address a hundred residents share (a care home, a hostel, a prison) are not one home:
    read as one, every pair holding them took the household prior (most pairs at one home are one person) and
    strangers were merged (hazard H-ID-33). Such values are compared as none (the residence by its postcode alone).
    """
    cap = HOME_CAP * frame.size / max(records, frame.size, 1)
    phones = frame["phone"]
    values, counts = np.unique(phones[phones != ""].astype(str), return_counts=True)
    shared_phone = sorted(str(v) for v in values[counts > cap])
    addressed = frame["address"] != ""
    homes = np.frompyfunc(home_key, 2, 1)(frame["postcode"][addressed], frame["address"][addressed])
    values, counts = np.unique(homes.astype(str), return_counts=True)
    shared_home = sorted(str(v) for v in values[counts > cap])
    return shared_phone, shared_home, {"cap": cap, "shared_phone": len(shared_phone),
                                       "shared_home": len(shared_home)}
def shared_identifiers(frame: Frame, *, records: int) -> list[str]:
    """Identifiers (``system|VALUE``, own keys and further ones) held by more records than one person holds
    (:data:`HOME_CAP`, scaled as :func:`shared_homes` scales it): a placeholder keyed where the number was not known,
    a family's or an insurance group's number. Compared as none (:class:`mpi.comparisons.IdentifierComparison`,
    hazard H-ID-61), as a phone number many records share is (H-ID-33)."""
    cap = HOME_CAP * frame.size / max(records, frame.size, 1)
    held: Counter[str] = Counter()
    for value, count in zip(*np.unique(frame["identifiers"][frame["identifiers"] != ""].astype(str),
                                       return_counts=True), strict=True):
        for token in set(all_tokens(str(value))):
            held[token] += int(count)
    return sorted(token for token, count in held.items() if count > cap)


#: A pair counts as two relatives for one field's u when the other fields put it this likely apart.
RELATIVE_CONFIDENCE = 0.95
#: Pseudo-observations (half one person, half relatives) smoothing the share of one person among pairs at one home:
#: Laplace's rule of succession.
HOUSEHOLD_SHARE_SMOOTHING = 2.0
#: The person's own comparisons whose u differs among relatives (learnt among different people of one household).
HOUSEHOLD_COMPARISONS = ("family", "given", "middle", "birth_date", "sex")


def estimate_u_household(model: Model, frame: Frame, columns: dict[str, NDArray[Any]], *,
                         rng: np.random.Generator, pairs: int = 40_000
                         ) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """u of the person's own comparisons among *different people of one household* (family name and home shared).

    Two records that share a family name and a home are either one person or two relatives, and relatives share a
    birth date (twins), a first name (a mother and a daughter) or a sex far more often than strangers do. Over the
    pairs agreeing on the family name's first sound and on the postcode or the address (kept where the family name
    and the home agree by their comparisons), EM runs with m held fixed (learnt from the other runs, where most
    pairs are not relatives) and u free for :data:`HOUSEHOLD_COMPARISONS`: what EM puts in the non-match class is
    how relatives look. NHS numbers take part with their ordinary u (relatives hold different numbers as strangers
    do); what the pairs agree on by construction (family name, home, phone) is left out. Estimates are smoothed
    towards the shipped prior knowledge, so a store with few households (FEBRL has none) keeps those values.

    Returns the u per comparison and a summary of the run for the training report.
    """
    chosen = [i for i, c in enumerate(model.comparisons) if c.name in HOUSEHOLD_COMPARISONS]
    if not chosen:
        return {}, {"pairs": 0, "match_share": HOUSEHOLD_PRIOR_SHARE, "kin": 0.0}
    # a home holds a household: an address shared by more records (a care home, a street without house numbers,
    # a placeholder) says nothing of relatives
    left, right, in_all = pairs_agreeing(columns["address"], max_pairs=pairs, rng=rng, cap=HOME_CAP)
    sampled = max(len(left), 1)
    prior_u = [list(HOUSEHOLD_PRIOR_KNOWLEDGE.get(model.comparisons[i].name, model.u[i])) for i in chosen]
    start = {model.comparisons[i].name: u for i, u in zip(chosen, prior_u, strict=True)}
    if len(left) == 0:
        return start, {"pairs": 0, "match_share": HOUSEHOLD_PRIOR_SHARE, "kin": HOUSEHOLD_PRIOR_KIN}
    levels = comparison_levels(model, frame.take(left), frame.take(right))
    levels = levels[one_home(model, levels)]
    used = [i for i, c in enumerate(model.comparisons) if i in chosen or c.name == "nhs_number"]
    levels[:, [i for i in range(levels.shape[1]) if i not in used]] = -1
    if len(levels) < 50:
        return start, {"pairs": int(len(levels)), "match_share": HOUSEHOLD_PRIOR_SHARE, "kin": HOUSEHOLD_PRIOR_KIN}
    patterns, counts = _distinct_patterns(levels)
    log_m = [np.log(np.maximum(np.asarray(x), M_FLOOR)) for x in model.m]
    u = [np.asarray(x, dtype=np.float64) for x in model.u]
    for i, prior in zip(chosen, prior_u, strict=True):
        u[i] = np.asarray(prior, dtype=np.float64)
    share = 0.5
    iteration = 0
    apart = np.zeros(len(patterns))
    for iteration in range(1, 51):  # noqa: B007 (read after the loop)
        parts = np.zeros((len(patterns), len(used)))
        for k, i in enumerate(used):
            column = patterns[:, i]
            present = column >= 0
            parts[present, k] = log_m[i][column[present]] - np.log(np.maximum(u[i], U_FLOOR))[column[present]]
        logit = np.log(share / (1 - share)) + parts.sum(axis=1)
        posterior = 1.0 / (1.0 + np.exp(-np.clip(logit, -500, 500)))
        apart = (1.0 - posterior) * counts
        new_share = float(np.clip((posterior * counts).sum() / counts.sum(), 1e-6, 1 - 1e-6))
        change = abs(new_share - share)
        for k, i in enumerate(used):
            if i not in chosen:
                continue
            # relatives as the *other* fields tell them: a field's own oddity (a duplicate whose birth date was
            # keyed wrong) must not make the pair a relative and teach that relatives look like that
            without = 1.0 / (1.0 + np.exp(np.clip(logit - parts[:, k], -500, 500)))
            sure = counts * (without >= RELATIVE_CONFIDENCE)
            prior = prior_u[chosen.index(i)]
            seen = level_counts(patterns[:, i], model.comparisons[i].levels_count, sure)
            new = np.maximum((seen + SMOOTHING * np.asarray(prior)) / (seen.sum() + SMOOTHING), U_FLOOR)
            new = new / new.sum()
            change = max(change, float(np.abs(new - u[i]).max()))
            u[i] = new
        share = new_share
        if change < 1e-6:
            break
    out = {model.comparisons[i].name: [float(x) for x in u[i]] for i in chosen}
    # relatives of one family name per record: the relatives found, scaled from the sample to every pair at one
    # home, those of one family name, both ends of each pair; smoothed towards prior knowledge
    family_index = model.index_of("family")
    same_name = float(out["family"][0]) if "family" in out else 1.0
    kin_found = float(apart.sum()) * in_all / sampled * same_name * 2
    kin = (kin_found + SMOOTHING * HOUSEHOLD_PRIOR_KIN) / (frame.size + SMOOTHING) if family_index is not None else 0.0
    # the share of one person among the pairs by Laplace's rule (one pseudo-observation of each kind): a store with
    # few pairs at one home says little, and one with a thousand and no relatives among them says that a pair at
    # one home is one person there (FEBRL). Twenty pseudo-observations of one half, as the levels' frequencies are
    # smoothed, made ten imagined relatives outweigh a thousand pairs that held none.
    pairs_seen = float(counts.sum())
    share = (share * pairs_seen + HOUSEHOLD_SHARE_SMOOTHING * 0.5) / (pairs_seen + HOUSEHOLD_SHARE_SMOOTHING)
    return out, {"pairs": int(len(levels)), "match_share": share, "relatives": float(apart.sum()), "kin": kin,
                 "iterations": iteration}
