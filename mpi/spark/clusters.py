"""Clustering as Spark jobs: connected components by label propagation, then the integrity check per component.

1. Components of the match links (and manual links): every record takes the smallest id among itself and its
   neighbours' labels, again and again, until no label changes (as many rounds as the longest path in a
   component: a handful for patients' records). Only the edges and the labels move; each round is a join and a
   group-by over DataFrames.
2. Components of three or more records go, whole, to one partition each (partitioned by component) with their
   records' match fields, links and manual no-matches; there :func:`mpi.clustering.cluster` runs on them exactly as
   in the single-machine relink, with its conflicts scored by :func:`mpi.linkage.conflict_kind`.
3. Review items whose two patients' records each agree on a birth date or a given name, and differ on it, are left out
   (:func:`without_two_people`, :mod:`mpi.patient_evidence`), each item with its patients' records in one partition.

A cluster's label is the smallest record id in it, as the single-machine relink labels by the smallest row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mpi.clustering import AGAINST, cluster
from mpi.frames import frame_from_table
from mpi.linkage import conflict_kind
from mpi.patient_evidence import two_people
from mpi.scoring import score_frames, weak_records
from mpi.spark.columns import MATCH_COLUMNS, model_of

if TYPE_CHECKING:
    from pyspark.broadcast import Broadcast
    from pyspark.sql import DataFrame

#: Label propagation stops after this many rounds whatever happens (a component that long is a defect).
MAX_ROUNDS = 60


def connected_components(edges: DataFrame) -> tuple[DataFrame, int]:
    """``(record_id, label)`` for every record on an edge of ``edges`` (``a``, ``b``), the label being the smallest
    record id of its component; and the number of rounds it took."""
    from pyspark.sql import functions as F

    both = (edges.select(F.col("a").alias("src"), F.col("b").alias("dst"))
            .union(edges.select(F.col("b").alias("src"), F.col("a").alias("dst"))).distinct().localCheckpoint())
    labels = (both.groupBy("src").agg(F.least(F.min("dst"), F.first("src")).alias("label"))
              .withColumnRenamed("src", "record_id").localCheckpoint())
    for rounds in range(1, MAX_ROUNDS + 1):
        seen = (both.join(labels, both["dst"] == labels["record_id"]).groupBy("src")
                .agg(F.min("label").alias("seen")))
        updated = (labels.join(seen, labels["record_id"] == seen["src"], "left")
                   .select("record_id", F.least("label", F.coalesce("seen", "label")).alias("label"),
                           (F.col("seen") < F.col("label")).alias("moved")).localCheckpoint())
        moved = updated.where("moved").limit(1).count()
        labels = updated.drop("moved")
        if not moved:
            return labels, rounds
    raise RuntimeError(f"label propagation did not settle in {MAX_ROUNDS} rounds")


def integrity(records: DataFrame, components: DataFrame, edges: DataFrame, forbidden: DataFrame,
              model: Broadcast[str], partitions: int) -> DataFrame:
    """``(record_id, label, broken)`` for the records of components of three or more records: the clusters
    :func:`mpi.clustering.cluster` makes of each (``broken``: the component was rebuilt around a conflict).

    ``edges``: ``(a, b, strength)`` links (manual links ``inf``); ``forbidden``: ``(a, b)`` manual no-matches.
    """
    from pyspark.sql import functions as F

    sizes = components.groupBy("label").agg(F.count("*").alias("size")).where("size >= 3")
    members = components.join(sizes.select("label"), "label")
    record_rows = (members.join(records.select("record_id", *MATCH_COLUMNS), "record_id")
                   .select("label", F.lit("r").alias("kind"), F.col("record_id").alias("a"),
                           F.lit(None).cast("long").alias("b"), F.lit(None).cast("double").alias("strength"),
                           *MATCH_COLUMNS))
    owner = members.select(F.col("record_id").alias("owner"), "label")
    edge_rows = (edges.join(owner, edges["a"] == owner["owner"])
                 .select("label", F.lit("e").alias("kind"), "a", "b", "strength"))
    forbidden_rows = (forbidden.join(owner, forbidden["a"] == owner["owner"])
                      .join(members.select(F.col("record_id").alias("b_owner"), F.col("label").alias("b_label")),
                            F.col("b") == F.col("b_owner"))
                      .where(F.col("label") == F.col("b_label"))
                      .select("label", F.lit("f").alias("kind"), "a", "b",
                              F.lit(None).cast("double").alias("strength")))
    rows = record_rows.unionByName(edge_rows, allowMissingColumns=True).unionByName(forbidden_rows,
                                                                                    allowMissingColumns=True)

    def rebuild(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        current = model_of(model.value)
        parts = list(batches)  # whole components: the partition is by component
        if not parts:  # a partition no component hashed to
            return
        pdf = pd.concat(parts, ignore_index=True)
        if pdf.empty:
            return
        recs = pdf[pdf["kind"] == "r"].sort_values("a", kind="stable")
        ids = recs["a"].to_numpy(dtype=np.int64)
        row_of = pd.Series(np.arange(len(ids), dtype=np.int64), index=ids)
        table = recs[list(MATCH_COLUMNS)].reset_index(drop=True)
        table["record_id"] = ids
        frame = frame_from_table(table)
        links = pdf[pdf["kind"] == "e"]
        left = row_of[links["a"].to_numpy()].to_numpy()
        right = row_of[links["b"].to_numpy()].to_numpy()
        strength = links["strength"].to_numpy(dtype=np.float64)
        order = np.lexsort((np.maximum(left, right), np.minimum(left, right)))  # as mpi.linkage orders its links
        left, right, strength = left[order], right[order], strength[order]
        manual_apart = pdf[pdf["kind"] == "f"]
        size = len(ids)
        forbidden_codes = np.unique(
            np.minimum(row_of[manual_apart["a"].to_numpy()].to_numpy(), row_of[manual_apart["b"].to_numpy()].to_numpy())
            * size + np.maximum(row_of[manual_apart["a"].to_numpy()].to_numpy(),
                                row_of[manual_apart["b"].to_numpy()].to_numpy()))

        def conflicts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            out = conflict_kind(current, score_frames(current, frame.take(a), frame.take(b), resolve_ambiguity=False))
            if len(forbidden_codes):
                out[np.isin(np.minimum(a, b) * size + np.maximum(a, b), forbidden_codes)] = AGAINST
            return out

        labels, _rebuilt = cluster(size, left, right, strength, conflicts, firm=~weak_records(frame, current))
        component = recs["label"].to_numpy(dtype=np.int64)
        final = ids[labels]
        split = pd.Series(final).groupby(component).transform("nunique").to_numpy() > 1
        yield pd.DataFrame({"record_id": ids, "label": final, "broken": split})

    return (rows.repartition(partitions, "label").mapInPandas(rebuild, "record_id long, label long, broken boolean"))


def strongest_links(links: DataFrame, labels: DataFrame) -> DataFrame:
    """``(record_id, partner, probability)``: each record's strongest match link inside its cluster, whose pair
    explains its link (ties as :func:`mpi.linkage.link_frame` breaks them)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    la = labels.select(F.col("record_id").alias("a"), F.col("label").alias("label_a"))
    lb = labels.select(F.col("record_id").alias("b"), F.col("label").alias("label_b"))
    inside = links.join(la, "a").join(lb, "b").where(F.col("label_a") == F.col("label_b"))
    ends = (inside.select(F.col("a").alias("record_id"), F.col("b").alias("partner"), "weight", "probability",
                          F.lit(0).alias("side"))
            .union(inside.select(F.col("b").alias("record_id"), F.col("a").alias("partner"), "weight", "probability",
                                 F.lit(1).alias("side"))))
    best = Window.partitionBy("record_id").orderBy(F.col("weight").desc(), F.col("side").desc(),
                                                   F.col("partner").desc())
    return (ends.withColumn("rank", F.row_number().over(best)).where("rank = 1")
            .select("record_id", "partner", "probability"))


def review_pairs(possible: DataFrame, links: DataFrame, labels: DataFrame, decided: DataFrame) -> DataFrame:
    """``(a, b, probability, weight, ambiguous)``: one review item per two patients, their strongest pair among the
    possible matches and the match links the integrity check refused (pairs a person decided left out), as
    :func:`mpi.linkage.link_frame` picks them; ``ambiguous``: sent by rule 8 (``possible`` carries the flag)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    candidates = (possible.select("a", "b", "weight", "probability", F.lit(0).alias("kind"), "ambiguous")
                  .union(links.select("a", "b", "weight", "probability", F.lit(1).alias("kind"),
                                      F.lit(False).alias("ambiguous"))))
    la = labels.select(F.col("record_id").alias("a"), F.col("label").alias("label_a"))
    lb = labels.select(F.col("record_id").alias("b"), F.col("label").alias("label_b"))
    apart = (candidates.join(la, "a").join(lb, "b").where(F.col("label_a") != F.col("label_b"))
             .join(decided, ["a", "b"], "left_anti"))
    pick = Window.partitionBy(F.least("label_a", "label_b"), F.greatest("label_a", "label_b")).orderBy(
        F.col("weight").desc(), F.col("kind").asc(), F.col("a").asc(), F.col("b").asc())
    return (apart.withColumn("rank", F.row_number().over(pick)).where("rank = 1")
            .select("a", "b", "probability", "weight", "ambiguous"))


def without_two_people(reviews: DataFrame, labels: DataFrame, records: DataFrame, model: Broadcast[str],
                       partitions: int) -> DataFrame:
    """``reviews`` without the items whose two patients the birth dates or given names of their records put apart
    (:func:`mpi.patient_evidence.two_people`), as :func:`mpi.linkage.link_frame` leaves them out: each item goes,
    with both its patients' records and their match fields, to one partition (by item), where ``two_people`` runs
    on them, each side of an item its own patient."""
    from pyspark.sql import functions as F

    la = labels.select(F.col("record_id").alias("a"), F.col("label").alias("label_a"))
    lb = labels.select(F.col("record_id").alias("b"), F.col("label").alias("label_b"))
    items = reviews.select("a", "b").join(la, "a").join(lb, "b")
    sides = (items.select("a", "b", F.col("label_a").alias("label"), F.lit(0).alias("side"))
             .union(items.select("a", "b", F.col("label_b").alias("label"), F.lit(1).alias("side"))))
    members = labels.join(records.select("record_id", *MATCH_COLUMNS), "record_id")
    rows = sides.join(members, "label").select("a", "b", "side", "record_id", *MATCH_COLUMNS)

    def decide(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        current = model_of(model.value)
        parts = list(batches)  # whole items: the partition is by item
        pdf = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if pdf.empty:
            return
        pdf = pdf.sort_values(["a", "b", "side", "record_id"], kind="stable").reset_index(drop=True)
        table = pdf[list(MATCH_COLUMNS)].copy()
        table["record_id"] = pdf["record_id"].to_numpy(dtype=np.int64)
        frame = frame_from_table(table)
        patient = pdf.groupby(["a", "b", "side"], sort=False).ngroup().to_numpy(dtype=np.int64)
        rows_at = pd.Series(np.arange(len(pdf), dtype=np.int64))
        own = ((pdf["side"] == 0) & (pdf["record_id"] == pdf["a"])) | ((pdf["side"] == 1)
                                                                     & (pdf["record_id"] == pdf["b"]))
        ends = pdf.loc[own, ["a", "b", "side"]].assign(row=rows_at[own].to_numpy())
        pairs = ends[ends["side"] == 0].merge(ends[ends["side"] == 1], on=["a", "b"], suffixes=("_l", "_r"))
        apart = two_people(current, frame, patient, pairs["row_l"].to_numpy(dtype=np.int64),
                           pairs["row_r"].to_numpy(dtype=np.int64))
        yield pd.DataFrame({"a": pairs["a"].to_numpy(dtype=np.int64), "b": pairs["b"].to_numpy(dtype=np.int64),
                            "apart": apart})

    decided = rows.repartition(partitions, "a", "b").mapInPandas(decide, "a long, b long, apart boolean")
    return reviews.join(decided.where("apart").select("a", "b"), ["a", "b"], "left_anti")
