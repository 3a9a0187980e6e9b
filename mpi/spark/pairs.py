"""Blocking, scoring and decisions as Spark jobs: the pairs of the relink, partitioned by blocking key.

Each step runs a pure function of the single-machine relink on a pandas batch inside Spark (``mapInPandas``):

- keys: :func:`mpi.blocking.key_table` per batch of records; a key held by 2 to :data:`~mpi.blocking.MAX_BLOCK_SIZE`
  records makes pairs, every pair once (the blocks are grouped by key: the shuffle partitions them by key);
- scoring: :func:`mpi.scoring.score_frames` per batch of pairs, keeping the decisions' inputs of the pairs at or
  above the possible threshold (and every pair with one verified NHS number), as :func:`mpi.linkage.link_frame`;
- the match threshold: :func:`mpi.decisions.derive_match_threshold`'s rule, computed over range partitions of the
  sorted posteriors (no partition's values leave it; only its count and sum do);
- rule 8 (a record without a given name or a birth date): :func:`mpi.scoring.evidence_apart` between every two
  probable partners of each such record, grouped by that record, then each of its pairs weighed against the
  partners kept apart from its own (:func:`mpi.scoring.exclusive_probability`), as
  :func:`mpi.scoring.ambiguous_pairs`;
- decisions: :func:`mpi.decisions.decide_many`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mpi.blocking import MAX_BLOCK_SIZE, key_table
from mpi.decisions import decide_many
from mpi.linkage import DERIVATION_FLOOR
from mpi.scoring import (
    AMBIGUITY_PARTNERS,
    ScoredPairs,
    evidence_apart,
    exclusive_probability,
    score_frames,
    weak_records,
)
from mpi.spark.columns import MATCH_COLUMNS, model_of, pair_frames

if TYPE_CHECKING:
    from pyspark.broadcast import Broadcast
    from pyspark.sql import DataFrame

PAIR_SCHEMA = "a long, b long"
SCORE_SCHEMA = ("a long, b long, weight double, probability double, hard_conflict boolean, nhs_different boolean, "
                "nhs_unsupported boolean, personal_weight double, nhs_verified_same boolean, undistinguished boolean, "
                "l_weak boolean, r_weak boolean")
_FLAGS = ("hard_conflict", "nhs_different", "nhs_unsupported", "nhs_verified_same", "undistinguished")


def with_sides(pairs: DataFrame, records: DataFrame, left: str = "a", right: str = "b") -> DataFrame:
    """``pairs`` with both records' match fields (``l_…`` of ``left``, ``r_…`` of ``right``)."""
    from pyspark.sql import functions as F

    fields = records.select("record_id", *MATCH_COLUMNS)
    for prefix, column in (("l_", left), ("r_", right)):
        renamed = fields.select(F.col("record_id").alias(f"{prefix}id"),
                                *[F.col(name).alias(f"{prefix}{name}") for name in MATCH_COLUMNS])
        pairs = pairs.join(renamed, pairs[column] == renamed[f"{prefix}id"]).drop(f"{prefix}id")
    return pairs


def blocked_pairs(records: DataFrame, *, max_block_size: int = MAX_BLOCK_SIZE) -> DataFrame:
    """``(a, b)``, ``a < b``: every two records sharing a blocking key held by at most ``max_block_size`` records,
    once (the pairs of :func:`mpi.blocking.blocked_pairs`, by record id)."""
    from pyspark.sql import functions as F

    def keys(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            table = key_table(pdf.reset_index(drop=True))
            yield pd.DataFrame({"key": table["key"].to_numpy(dtype=object),
                                "record_id": pdf["record_id"].to_numpy(dtype=np.int64)[table["row"].to_numpy()]})

    def pairs_of_blocks(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            lefts, rights = [], []
            for members in pdf["ids"]:
                ids = np.sort(np.asarray(members, dtype=np.int64))
                first, second = np.triu_indices(len(ids), k=1)
                lefts.append(ids[first])
                rights.append(ids[second])
            if lefts:
                yield pd.DataFrame({"a": np.concatenate(lefts), "b": np.concatenate(rights)})

    # one row per key and record; a block is gathered only once its size is known to be within the bound: a key
    # that a large part of the region holds (collected whole before, then dropped) ran a task out of its heap at
    # 2 M records, whatever the partitions
    key_rows = records.select("record_id", *MATCH_COLUMNS).mapInPandas(keys, "key string, record_id long").distinct()
    sizes = key_rows.groupBy("key").agg(F.count("*").alias("size")).where(
        (F.col("size") >= 2) & (F.col("size") <= max_block_size))
    blocks = key_rows.join(sizes.select("key"), "key", "left_semi").groupBy("key").agg(
        F.collect_list("record_id").alias("ids"))
    return blocks.select("ids").mapInPandas(pairs_of_blocks, PAIR_SCHEMA).where(F.col("a") < F.col("b")).distinct()


def score_pairs(pairs: DataFrame, records: DataFrame, model: Broadcast[str], floor: float) -> DataFrame:
    """The decisions' inputs of the blocked pairs at or above ``floor`` (and of every pair whose records hold one
    verified NHS number): :func:`mpi.scoring.score_frames` per batch, as :func:`mpi.linkage.link_frame` keeps them."""

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        current = model_of(model.value)
        for pdf in batches:
            left, right = pair_frames(pdf)
            scored = score_frames(current, left, right, resolve_ambiguity=False)
            keep = (scored.probability >= floor) | scored.nhs_verified_same
            out = pd.DataFrame({"a": pdf["a"].to_numpy()[keep], "b": pdf["b"].to_numpy()[keep],
                                "weight": scored.weight[keep], "probability": scored.probability[keep],
                                "hard_conflict": scored.hard_conflict[keep],
                                "nhs_different": scored.nhs_different[keep],
                                "nhs_unsupported": scored.nhs_unsupported[keep],
                                "personal_weight": scored.personal_weight[keep],
                                "nhs_verified_same": scored.nhs_verified_same[keep],
                                "undistinguished": scored.undistinguished[keep],
                                "l_weak": weak_records(left, current)[keep],
                                "r_weak": weak_records(right, current)[keep]})
            yield out

    return with_sides(pairs, records).mapInPandas(score, SCORE_SCHEMA)


def derive_match_threshold(probable: DataFrame, *, target_precision: float = 0.999, floor: float = DERIVATION_FLOOR,
                           ceiling: float = 0.999) -> float:
    """:func:`mpi.decisions.derive_match_threshold` over the posteriors of ``probable``, distributed.

    The posteriors at or above ``floor`` are sorted (descending) into range partitions; each partition sends only
    its count and its sum of ``p - target`` to the driver, which gives every partition the running sum before it;
    each partition then finds its last position where the expected precision (the mean posterior of the pairs
    ranked so far) still meets the target. The mean of a descending sequence never rises, so those positions are
    a prefix and the threshold is the posterior at the last of them.
    """
    from pyspark.sql import functions as F

    ranked = probable.where(F.col("probability") >= floor).select("probability").orderBy(F.col("probability").desc())
    rdd = ranked.rdd.map(lambda row: float(row[0]))

    def totals(index: int, values: Iterable[float]) -> Iterator[tuple[int, int, float]]:
        p = np.fromiter(values, dtype=np.float64)
        yield index, len(p), float(np.sum(p - target_precision))

    parts = sorted(rdd.mapPartitionsWithIndex(totals).collect())
    if sum(count for _, count, _ in parts) == 0:
        return ceiling
    before: dict[int, float] = {}
    running = 0.0
    for index, _count, total in parts:
        before[index] = running
        running += total

    def last_ok(index: int, values: Iterable[float]) -> Iterator[float]:
        p = np.fromiter(values, dtype=np.float64)
        if len(p):
            ok = np.flatnonzero(before[index] + np.cumsum(p - target_precision) >= 0)
            if len(ok):
                yield float(p[ok[-1]])

    found = rdd.mapPartitionsWithIndex(last_ok).collect()
    if not found:
        return ceiling
    return float(min(ceiling, max(floor, min(found))))


def ambiguous_records(probable: DataFrame, records: DataFrame, model: Broadcast[str],
                      possible_threshold: float) -> DataFrame:
    """``(weak, partner)``: the probable pairs of a weak record (without a given name or a birth date) that rule 8
    caps, because its probable partners include two people the evidence keeps apart and the pair is no match once
    the record is known to be at most one of them: :func:`mpi.scoring.ambiguous_pairs`, grouped by the weak
    record, with :func:`mpi.scoring.exclusive_probability` over each group."""
    from pyspark.sql import functions as F

    candidate = probable.where(F.col("undistinguished") & (F.col("probability") >= possible_threshold))
    weak = (candidate.where("l_weak").select(F.col("a").alias("weak"), F.col("b").alias("partner"), "probability")
            .union(candidate.where("r_weak").select(F.col("b").alias("weak"), F.col("a").alias("partner"),
                                                    "probability")))
    groups = (weak.groupBy("weak").agg(F.collect_list(F.struct("partner", "probability")).alias("partners"))
              .where((F.size("partners") >= 2) & (F.size("partners") <= AMBIGUITY_PARTNERS)))

    def partner_pairs(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            owners, firsts, seconds = [], [], []
            for owner, partners in zip(pdf["weak"].tolist(), pdf["partners"], strict=True):
                ids = np.sort(np.asarray([p["partner"] for p in partners], dtype=np.int64))
                first, second = np.triu_indices(len(ids), k=1)
                owners.append(np.full(len(first), owner, dtype=np.int64))
                firsts.append(ids[first])
                seconds.append(ids[second])
            if owners:
                yield pd.DataFrame({"weak": np.concatenate(owners), "a": np.concatenate(firsts),
                                    "b": np.concatenate(seconds)})

    def apart(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        current = model_of(model.value)
        for pdf in batches:
            left, right = pair_frames(pdf)
            torn = evidence_apart(current, score_frames(current, left, right, resolve_ambiguity=False))
            yield pd.DataFrame({"weak": pdf["weak"].to_numpy()[torn], "a": pdf["a"].to_numpy()[torn],
                                "b": pdf["b"].to_numpy()[torn]})

    def capped(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        threshold = model_of(model.value).match_threshold
        for pdf in batches:
            weak_ids, partner_ids, probabilities, owners, firsts, seconds = [], [], [], [], [], []
            for owner, partners, rivals in zip(pdf["weak"].tolist(), pdf["partners"], pdf["rivals"], strict=True):
                weak_ids += [owner] * len(partners)
                partner_ids += [p["partner"] for p in partners]
                probabilities += [p["probability"] for p in partners]
                owners += [owner] * len(rivals)
                firsts += [r["a"] for r in rivals]
                seconds += [r["b"] for r in rivals]
            weak_rows = np.asarray(weak_ids, dtype=np.int64)
            partner_rows = np.asarray(partner_ids, dtype=np.int64)
            exclusive, rivalled = exclusive_probability(
                weak_rows, partner_rows, np.asarray(probabilities, dtype=np.float64),
                np.asarray(owners, dtype=np.int64), np.asarray(firsts, dtype=np.int64),
                np.asarray(seconds, dtype=np.int64))
            torn = rivalled & (exclusive < threshold)
            yield pd.DataFrame({"weak": weak_rows[torn], "partner": partner_rows[torn]})

    pairs = groups.mapInPandas(partner_pairs, "weak long, a long, b long")
    rivals = (with_sides(pairs, records).mapInPandas(apart, "weak long, a long, b long")
              .groupBy("weak").agg(F.collect_list(F.struct("a", "b")).alias("rivals")))
    return groups.join(rivals, "weak").mapInPandas(capped, "weak long, partner long")


def decide(probable: DataFrame, ambiguous: DataFrame, model: Broadcast[str], possible_threshold: float) -> DataFrame:
    """``(a, b, weight, probability, code, ambiguous)`` of the pairs decided *match* (2) or *possible match* (1) by
    :func:`mpi.decisions.decide_many`, with rule 8 marked where :func:`ambiguous_records` found it (``ambiguous``,
    which a review item's explanation names)."""
    from pyspark.sql import functions as F

    torn = ambiguous.select(F.col("weak").alias("torn_weak"), F.col("partner").alias("torn_partner"))
    left_torn = torn.select(F.col("torn_weak").alias("left_torn"), F.col("torn_partner").alias("left_partner"))
    right_torn = torn.select(F.col("torn_weak").alias("right_torn"), F.col("torn_partner").alias("right_partner"))
    marked = (probable.join(left_torn, (probable["a"] == left_torn["left_torn"])
                            & (probable["b"] == left_torn["left_partner"]), "left")
              .join(right_torn, (F.col("b") == right_torn["right_torn"]) & (F.col("a") == right_torn["right_partner"]),
                    "left"))
    candidate = F.col("undistinguished") & (F.col("probability") >= possible_threshold)
    marked = marked.withColumn("ambiguous", candidate & (
        (F.col("l_weak") & F.col("left_torn").isNotNull())
        | (F.col("r_weak") & F.col("right_torn").isNotNull()))).drop("left_torn", "right_torn", "left_partner",
                                                                     "right_partner")

    def codes(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        current = model_of(model.value)
        for pdf in batches:
            n = len(pdf)
            flags = {name: pdf[name].fillna(False).to_numpy(dtype=bool) for name in (*_FLAGS, "ambiguous")}
            zeros = np.zeros(n, dtype=bool)
            scored = ScoredPairs(levels=np.zeros((n, 0), dtype=np.int8), field_weights=np.zeros((n, 0), np.float32),
                                 weight=pdf["weight"].to_numpy(dtype=np.float64),
                                 probability=pdf["probability"].to_numpy(dtype=np.float64),
                                 nhs_exact=zeros, sibling=zeros, birth_differs=zeros, names_differ=zeros,
                                 personal_weight=pdf["personal_weight"].to_numpy(dtype=np.float64), **flags)
            code = decide_many(scored, current)
            keep = code > 0
            yield pd.DataFrame({"a": pdf["a"].to_numpy()[keep], "b": pdf["b"].to_numpy()[keep],
                                "weight": scored.weight[keep], "probability": scored.probability[keep],
                                "code": code[keep].astype(np.int32), "ambiguous": flags["ambiguous"][keep]})

    return marked.mapInPandas(codes, "a long, b long, weight double, probability double, code int, ambiguous boolean")
