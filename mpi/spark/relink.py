"""``priorscan link --engine spark``: the batch relink of :mod:`mpi.batch` on Apache Spark.

The same model (trained by :func:`mpi.training.train` behind the same gate, or the model in use), the same
comparisons, scorer and decisions, the same clustering with its integrity check, and the same write-back
(:func:`mpi.batch.write_patients`, :func:`~mpi.batch.write_links`, :func:`~mpi.batch.write_reviews`: the same
tables, link events and review items with their explanations). What differs is where the work runs:

- the records are read from the store by Spark tasks, one slice of ids each, never through the driver; when the
  blocking keys changed since the last refresh (:func:`mpi.batch.keys_are_current`), the tasks compare their
  records' stored keys with the keys of today and send the driver only the differences to write;
- blocking, scoring, decisions and clustering are Spark jobs (:mod:`mpi.spark.pairs`, :mod:`mpi.spark.clusters`);
- training reads a bounded sample of the records on the driver: the records
  :func:`mpi.training.in_training_sample` chooses (every one up to :data:`~mpi.training.TRAINING_SAMPLE`, about that
  many beyond), chosen by the tasks; the single-machine relink trains on the same records, so the model is the same;
- the driver receives only what it writes, one partition at a time (``toLocalIterator``), and small things: the
  manual decisions, a few figures per partition, and the clusters that contend for one regional id.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from mpi.batch import (
    RelinkResult,
    _golden,
    assign_held_ids,
    hold_live_writes,
    key_changes,
    keys_are_current,
    keys_refreshed,
    load_table,
    merged_records,
    save_model,
    supersede_reviews,
    survivor_of,
    write_key_changes,
    write_links,
    write_patients,
    write_reviews,
)
from mpi.decisions import MATCH, MATCH_CODE, NO_MATCH, POSSIBLE, POSSIBLE_CODE
from mpi.frames import Frame, frame_from_table
from mpi.linkage import DERIVATION_FLOOR
from mpi.model import Model
from mpi.records import new_regional_id
from mpi.scoring import explanations, with_rule_8
from mpi.spark.clusters import (
    connected_components,
    integrity,
    review_pairs,
    strongest_links,
    without_two_people,
)
from mpi.spark.columns import RECORD_SCHEMA, golden_table, model_of, pair_frames, spark_records
from mpi.spark.pairs import ambiguous_records, blocked_pairs, decide, derive_match_threshold, score_pairs, with_sides
from mpi.tables import ManualDecision, SourceRecord
from mpi.training import TRAINING_SAMPLE, in_training_sample, train_if_supported
from priorscan.db import utcnow

if TYPE_CHECKING:
    from pyspark.broadcast import Broadcast
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

#: Records per slice read by one task.
SLICE_RECORDS = 50_000
#: Rows written per statement batch.
WRITE_BATCH = 5_000


def spark_relink(session: Session, spark: SparkSession, db_url: str, *, train: bool = True,
                 actor: str = "batch-relink", seed: int = 0, training_sample: int = TRAINING_SAMPLE) -> RelinkResult:
    """Relink every active source record on ``spark``; the caller commits ``session``.

    ``db_url`` is the store as the Spark tasks reach it (the same store ``session`` writes to).
    """

    from mpi.service import active_model

    timings: dict[str, float] = {}
    started = mark = time.perf_counter()
    hold_live_writes(session)  # before the tasks read: nothing written live in between is overwritten
    count, first, last = session.execute(select(func.count(), func.min(SourceRecord.id), func.max(SourceRecord.id))
                                         .where(SourceRecord.active.is_(True))).one()
    current = active_model(session)
    if not count:
        return RelinkResult(0, 0, 0, 0, 0, 0, 0, current.version, False, timings, current.describe())
    partitions = max(spark.sparkContext.defaultParallelism * 2, count // SLICE_RECORDS + 1)
    records = _read_records(spark, db_url, first, last, partitions).localCheckpoint(eager=True)
    timings["load_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    if not keys_are_current(session):  # as the local relink: only when the keys changed since the last refresh
        for batch in _batches(_key_changes(records, db_url)):
            write_key_changes(session.connection(), pd.DataFrame(batch, columns=["source_record_id", "key", "stale"]))
        keys_refreshed(session)
    timings["keys_s"] = time.perf_counter() - mark

    manual_match, manual_apart = _manual_pairs(session, spark)
    linked = link_records(records, current, count=count, train=train, seed=seed, training_sample=training_sample,
                          manual_match=manual_match, manual_apart=manual_apart, partitions=partitions)
    timings.update(linked.timings)
    model, trained, note = linked.model, linked.trained, linked.training_note
    broadcast = linked.broadcast
    if trained:
        save_model(session, model, records=count)
    mark = time.perf_counter()
    outcome = _outcome(records, linked.labels, linked.strongest, linked.reviews)
    changed, patients, review_items = _write(session, spark, records, outcome, linked.reviews, broadcast, model,
                                             actor)
    timings["write_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started
    linked.release()
    log.info("relinked %d records on Spark: %d pairs, %d patients, %d changed, %d to review", count,
             linked.pairs_scored, patients, changed, review_items)
    return RelinkResult(records=int(count), pairs_scored=linked.pairs_scored, match_links=linked.match_links,
                        patients=patients, records_changed=changed, review_items=review_items,
                        components_rebuilt=linked.components_rebuilt, model_version=model.version, trained=trained,
                        timings=timings, model_description=model.describe(), training_note=note)


# --- linking: records → model, clusters, strongest links, review items ---------------------------------------------

@dataclass
class SparkLinkage:
    """What :func:`link_records` found, as DataFrames (checkpointed: computed once)."""

    model: Model  # the model that decided (trained here, its threshold derived, or the one given)
    trained: bool
    training_note: str | None  # why the given model was kept, when it was
    broadcast: Broadcast[str]  # the model's parameters, as the tasks read them
    labels: DataFrame  # (record_id, label): label = the smallest record id of the record's cluster
    strongest: DataFrame  # (record_id, partner, probability): each linked record's strongest link in its cluster
    reviews: DataFrame  # (a, b, probability, weight, ambiguous): one review item per two patients
    pairs_scored: int
    match_links: int
    components_rebuilt: int
    timings: dict[str, float] = field(default_factory=dict)
    _held: list[DataFrame] = field(default_factory=list)

    def release(self) -> None:
        for frame in self._held:
            frame.unpersist()


def link_records(records: DataFrame, current: Model, *, count: int, train: bool, seed: int = 0,
                 training_sample: int = TRAINING_SAMPLE, manual_match: DataFrame | None = None,
                 manual_apart: DataFrame | None = None, partitions: int | None = None) -> SparkLinkage:
    """Link record rows (``record_id`` and the match columns): :func:`mpi.linkage.link_frame` on Spark.

    Blocking, training (when ``train``, behind the gate of :mod:`mpi.training`), scoring with the threshold derived
    from the scored pairs (when trained), decisions, clusters with the integrity check, each record's strongest link
    and the review items. ``manual_match`` and ``manual_apart`` are ``(a, b)`` pairs, ``a < b``, that people
    decided (none when not given).
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark = records.sparkSession
    timings: dict[str, float] = {}
    partitions = partitions or max(spark.sparkContext.defaultParallelism * 2, count // SLICE_RECORDS + 1)
    empty = "a long, b long"
    manual_match = manual_match if manual_match is not None else spark.createDataFrame([], empty)
    manual_apart = manual_apart if manual_apart is not None else spark.createDataFrame([], empty)

    mark = time.perf_counter()
    pairs = blocked_pairs(records).persist(StorageLevel.MEMORY_AND_DISK)
    pairs_scored = pairs.count()
    timings["block_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    model, note = current, None if train else "--no-train"
    if train:
        model, note = _train(records, count, current, blocked_pairs=int(pairs_scored), seed=seed,
                             sample=training_sample)
    trained = note is None
    timings["train_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    broadcast = _broadcast(spark, model)
    floor = min(model.possible_threshold, DERIVATION_FLOOR)
    probable = score_pairs(pairs, records, broadcast, floor).persist(StorageLevel.MEMORY_AND_DISK)
    probable.count()
    pairs.unpersist()
    if trained:
        threshold = derive_match_threshold(probable)
        model = model.evolve(match_threshold=threshold,
                             training={**model.training, "match_threshold_derived_from_pairs": int(pairs_scored)})
        broadcast = _broadcast(spark, model)
    ambiguous = ambiguous_records(probable, records, broadcast, model.possible_threshold)
    decided = decide(probable, ambiguous, broadcast, model.possible_threshold).persist(StorageLevel.MEMORY_AND_DISK)
    decided.count()
    probable.unpersist()
    timings["score_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    matches = decided.where(F.col("code") == MATCH_CODE).join(manual_apart, ["a", "b"], "left_anti")
    possible = decided.where(F.col("code") == POSSIBLE_CODE)
    match_links = matches.count()
    edges = (matches.select("a", "b", F.col("weight").alias("strength"))
             .union(manual_match.select("a", "b", F.lit(float("inf")).alias("strength")))).localCheckpoint()
    components, rounds = connected_components(edges.select("a", "b"))
    rebuilt = integrity(records, components, edges, manual_apart, broadcast, partitions).localCheckpoint()
    labels = (records.select("record_id")
              .join(components.withColumnRenamed("label", "component"), "record_id", "left")
              .join(rebuilt.select("record_id", F.col("label").alias("final")), "record_id", "left")
              .select("record_id", F.coalesce("final", "component", "record_id").alias("label"))).localCheckpoint()
    components_rebuilt = (rebuilt.where("broken").select("record_id").join(components, "record_id")
                          .select("label").distinct().count())
    reviews = without_two_people(review_pairs(possible, matches, labels, manual_match.union(manual_apart)), labels,
                                 records, broadcast, partitions).localCheckpoint()
    strongest = strongest_links(matches, labels).localCheckpoint()
    timings["cluster_s"] = time.perf_counter() - mark
    timings["cluster_rounds"] = float(rounds)
    return SparkLinkage(model=model, trained=trained, training_note=note, broadcast=broadcast, labels=labels,
                        strongest=strongest, reviews=reviews, pairs_scored=int(pairs_scored),
                        match_links=int(match_links), components_rebuilt=int(components_rebuilt), timings=timings,
                        _held=[decided])


# --- reading -------------------------------------------------------------------------------------------------------

def _slices(first: int, last: int, partitions: int) -> list[tuple[int, int]]:
    """``partitions`` closed ranges of record ids from ``first`` to ``last`` (the empty ones left out)."""
    edges = np.linspace(first, last + 1, partitions + 1).astype(np.int64)
    return [(int(lo), int(hi) - 1) for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]


def _read_records(spark: SparkSession, db_url: str, first: int, last: int, partitions: int) -> DataFrame:
    """Every active record as a record row, read by Spark tasks in slices of ids (:func:`mpi.batch.load_table`)."""
    slices = _slices(first, last, partitions)

    def read(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from priorscan.db import make_engine

        engine = make_engine(db_url)
        try:
            for pdf in batches:
                for lo, hi in zip(pdf["lo"].tolist(), pdf["hi"].tolist(), strict=True):
                    with Session(engine) as reader:
                        table = load_table(reader, ids=(lo, hi))
                    if len(table):
                        yield spark_records(table)
        finally:
            engine.dispose()

    ranges = spark.createDataFrame(pd.DataFrame(slices, columns=["lo", "hi"])).repartition(len(slices))
    return ranges.mapInPandas(read, RECORD_SCHEMA)


def _key_changes(records: DataFrame, db_url: str) -> DataFrame:
    """What the stored blocking keys of the records lack and have too many (:func:`mpi.batch.key_changes`), found by
    the tasks: each reads the stored keys of its own batches of records with its own connection and compares them
    with the keys of their match fields; only the differences reach the driver, which writes them."""
    from mpi.spark.columns import MATCH_COLUMNS

    def changes(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from priorscan.db import make_engine

        engine = make_engine(db_url)
        try:
            with engine.connect() as connection:
                for pdf in batches:
                    found = key_changes(connection, pdf)
                    if len(found):
                        yield found
        finally:
            engine.dispose()

    return records.select("record_id", *MATCH_COLUMNS).mapInPandas(
        changes, "source_record_id long, key string, stale boolean")


def _manual_pairs(session: Session, spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    """The people's decisions between active records, ``(a, b)`` with ``a < b``: links, and no-matches."""
    a, b = aliased(SourceRecord), aliased(SourceRecord)
    rows = session.execute(
        select(ManualDecision.record_a_id, ManualDecision.record_b_id, ManualDecision.decision)
        .join(a, a.id == ManualDecision.record_a_id).join(b, b.id == ManualDecision.record_b_id)
        .where(a.active.is_(True), b.active.is_(True))).all()
    out = []
    for decision in (MATCH, NO_MATCH):
        pairs = [(min(x, y), max(x, y)) for x, y, d in rows if d == decision]
        out.append(spark.createDataFrame(pd.DataFrame(pairs or [], columns=["a", "b"], dtype=np.int64),
                                         "a long, b long"))
    return out[0], out[1]


# --- training ------------------------------------------------------------------------------------------------------

def _train(records: DataFrame, count: int, current: Model, *, blocked_pairs: int, seed: int,
           sample: int) -> tuple[Model, str | None]:
    """:func:`mpi.training.train_if_supported` on the records :func:`mpi.training.in_training_sample` chooses (every
    record up to ``sample``, about ``sample`` beyond): chosen by the tasks, each in its own partition, and only they
    collected on the driver, in record-id order, as the single-machine relink trains on them."""
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    from mpi.spark.columns import MATCH_COLUMNS

    @pandas_udf("boolean")  # type: ignore[call-overload]
    def chosen(record_ids: pd.Series) -> pd.Series:
        return pd.Series(in_training_sample(record_ids.to_numpy(dtype=np.int64), records=count, sample=sample,
                                            seed=seed), index=record_ids.index)

    def training_frame() -> Frame:
        rows = records.select("record_id", *MATCH_COLUMNS).where(chosen(F.col("record_id")))
        table = pd.DataFrame(rows.toPandas()).sort_values("record_id", kind="stable").reset_index(drop=True)
        return frame_from_table(table)

    return train_if_supported(count, training_frame, base=current, blocked_pairs=blocked_pairs, seed=seed)


def _broadcast(spark: SparkSession, model: Model) -> Broadcast[str]:
    parameters = json.dumps(model.to_dict())
    if model_of(parameters).version != model.version:  # what the workers rebuild is the model that links
        raise RuntimeError("the model does not survive its JSON form unchanged")
    return spark.sparkContext.broadcast(parameters)


# --- the outcome per record, and writing it --------------------------------------------------------------------------

def _outcome(records: DataFrame, labels: DataFrame, strongest: DataFrame, reviews: DataFrame) -> DataFrame:
    """Per record: its cluster and regional id (kept or new), link state, score and explaining partner, and
    whether it changed (as :func:`mpi.batch._write` decides them)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    base = (records.select("record_id", F.col("regional_patient_id").alias("old_rid"),
                           F.col("link_state").alias("old_state"), F.coalesce("link_manual", F.lit(False))
                           .alias("manual"))
            .join(labels, "record_id"))
    held = (base.where(F.col("old_rid").isNotNull()).groupBy("label", F.col("old_rid").alias("rid"))
            .agg(F.count("*").alias("n")))
    per_label = Window.partitionBy("label")
    per_rid = Window.partitionBy("rid")
    held = held.withColumn("rids", F.count("*").over(per_label)).withColumn("labels", F.count("*").over(per_rid))
    sole = held.where((F.col("rids") == 1) & (F.col("labels") == 1)).select("label", "rid")
    contested = held.where((F.col("rids") > 1) | (F.col("labels") > 1)).select("label", "rid", "n")
    kept = sole.union(_settle_contested(contested))

    def fresh_ids(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            missing = pdf["rid"].isna().to_numpy()
            rid = pdf["rid"].astype(object).to_numpy()
            rid[missing] = [new_regional_id() for _ in range(int(missing.sum()))]
            yield pd.DataFrame({"label": pdf["label"], "new_rid": rid, "fresh": missing})

    # new ids are random: made once, checkpointed, never recomputed
    ids = (labels.select("label").distinct().join(kept, "label", "left")
           .mapInPandas(fresh_ids, "label long, new_rid string, fresh boolean").localCheckpoint(eager=True))
    sizes = labels.groupBy("label").agg(F.count("*").alias("size"))
    reviewed = reviews.select(F.col("a").alias("record_id")).distinct().withColumn("reviewed", F.lit(True))
    state = (F.when(F.col("manual"), F.col("old_state"))
             .when(F.coalesce("reviewed", F.lit(False)) & (F.col("size") == 1), F.lit(POSSIBLE))
             .otherwise(F.lit(MATCH)))
    out = (base.join(ids, "label").join(sizes, "label").join(reviewed, "record_id", "left")
           .join(strongest, "record_id", "left").withColumn("state", state)
           .withColumn("changed", ~(F.col("new_rid").eqNullSafe(F.col("old_rid"))
                                    & F.col("state").eqNullSafe(F.col("old_state")))))
    return out.localCheckpoint(eager=True)


def _settle_contested(contested: DataFrame) -> DataFrame:
    """``(label, rid)``: the regional id each cluster keeps of ``contested`` (``label, rid, n``: clusters holding
    several old ids, or old ids spread over several clusters), as :func:`mpi.batch.assign_held_ids` decides them.

    Not on the driver: after a first relink of a store linked one record at a time, most clusters can be contested.
    Whether a cluster keeps an id depends only on rows sharing its label or that id, so the greedy choice is made
    per connected component of the clusters joined by the ids they share (every cluster holding an id joined to
    the smallest such cluster), in the same order, as Spark jobs; the union of the components' choices is the
    single pass's choice over all rows.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    sharing = contested.withColumn("first", F.min("label").over(Window.partitionBy("rid")))
    components, _ = connected_components(sharing.select(F.col("label").alias("a"), F.col("first").alias("b")))
    grouped = (contested.join(components.select(F.col("record_id").alias("label"), F.col("label").alias("component")),
                              "label"))

    def settle(pdf: pd.DataFrame) -> pd.DataFrame:
        kept = assign_held_ids(pdf)
        return pd.DataFrame({"label": np.fromiter(kept, dtype=np.int64, count=len(kept)),
                             "rid": pd.Series(list(kept.values()), dtype=object)})

    return grouped.groupBy("component").applyInPandas(settle, "label long, rid string")


def _write(session: Session, spark: SparkSession, records: DataFrame, outcome: DataFrame, reviews: DataFrame,
           model_parameters: Broadcast[str], model: Model, actor: str) -> tuple[int, int, int]:
    """Write the outcome through :mod:`mpi.batch`'s writers, streamed a partition at a time."""
    from pyspark.sql import functions as F

    now = utcnow()
    changed = outcome.where("changed")
    # regional patients: the golden record of every patient a changed record is in; retired ones where most went
    touched_ids = changed.select("new_rid").distinct()
    members = (outcome.join(touched_ids, "new_rid").select("record_id", "new_rid", "fresh")
               .join(records, "record_id"))
    golden = members.repartition("new_rid").mapInPandas(
        _golden_rows, "id string, fresh boolean, family string, given string, birth_date string, sex string, "
                      "postcode string, address string, nhs_number string")
    for batch in _batches(golden):
        for row in batch:
            row["birth_date"] = date.fromisoformat(row["birth_date"]) if row["birth_date"] else None
        write_patients(session, fresh=[{k: v for k, v in r.items() if k != "fresh"} for r in batch if r["fresh"]],
                       touched=[{k: v for k, v in r.items() if k != "fresh"} for r in batch if not r["fresh"]],
                       retired={}, now=now)
    remaining = outcome.select(F.col("new_rid").alias("old_rid")).distinct()
    gone = (changed.where(F.col("old_rid").isNotNull()).join(remaining, "old_rid", "left_anti")
            .groupBy("old_rid", "new_rid").agg(F.count("*").alias("n"), F.min("record_id").alias("first")))
    from pyspark.sql import Window

    most = Window.partitionBy("old_rid").orderBy(F.col("n").desc(), F.col("first").asc())
    retired = gone.withColumn("rank", F.row_number().over(most)).where("rank = 1").select("old_rid", "new_rid")
    for batch in _batches(retired):
        write_patients(session, fresh=[], touched=[], retired={r["old_rid"]: r["new_rid"] for r in batch}, now=now)

    # links, each automatic one with the explanation of the pair that made it
    explained = _explained(changed, records, model_parameters)
    changes = 0
    for batch in _batches(explained):
        changes += len(batch)
        write_links(session, [{"id": r["record_id"], "from_regional_id": r["old_rid"],
                               "regional_patient_id": r["new_rid"], "link_state": r["state"], "manual": r["manual"],
                               "link_score": None if r["probability"] is None or r["probability"] != r["probability"]
                               else float(r["probability"]),
                               "link_weights": json.loads(r["weights"]) if r["weights"] else None} for r in batch],
                    model=model, actor=actor, now=now)
    _follow_survivors(session, spark, outcome)

    # review queue: open automatic items replaced by this run's possible matches
    supersede_reviews(session)
    candidate = outcome.select(F.col("record_id").alias("b"), F.col("new_rid").alias("candidate_regional_id"))
    review_rows = _review_explanations(reviews.join(candidate, "b"), records, model_parameters)
    opened = 0
    for batch in _batches(review_rows):
        opened += len(batch)
        write_reviews(session, [{"source_record_id": r["a"], "candidate_record_id": r["b"],
                                 "candidate_regional_id": r["candidate_regional_id"], "score": float(r["probability"]),
                                 "weights": json.loads(r["weights"])} for r in batch], model=model, now=now)
    session.flush()
    patients = outcome.select("label").distinct().count()
    return changes, int(patients), opened


def _golden_rows(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """:func:`mpi.batch._golden` over the records of whole patients (the partition is by regional id)."""
    parts = list(batches)
    if not parts:  # a partition no patient hashed to
        return
    pdf = pd.concat(parts, ignore_index=True)
    if pdf.empty:
        return
    pdf = pdf.sort_values("record_id", kind="stable").reset_index(drop=True)
    golden = _golden(golden_table(pdf), pdf["new_rid"].to_numpy(dtype=object))
    fresh = pdf.groupby("new_rid")["fresh"].first()
    out = golden.reset_index().rename(columns={"rid": "id"})
    out["fresh"] = fresh.reindex(out["id"]).to_numpy(dtype=bool)
    yield out[["id", "fresh", "family", "given", "birth_date", "sex", "postcode", "address", "nhs_number"]]


def _explained(changed: DataFrame, records: DataFrame, model_parameters: Broadcast[str]) -> DataFrame:
    """The changed records with the explanation (JSON) of their strongest link where an automatic link has one."""
    from pyspark.sql import functions as F

    rows = changed.select("record_id", "old_rid", "new_rid", "state", "manual", "probability", "partner")
    to_explain = rows.where(F.col("partner").isNotNull() & ~F.col("manual"))
    plain = rows.where(F.col("partner").isNull() | F.col("manual")).withColumn("weights", F.lit(None).cast("string"))

    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        current = model_of(model_parameters.value)
        for pdf in batches:
            left, right = pair_frames(pdf, "record_id", "partner")
            weights = [json.dumps(w) for w in explanations(current, left, right)]
            yield pdf[["record_id", "old_rid", "new_rid", "state", "manual", "probability", "partner"]].assign(
                weights=weights)

    schema = ("record_id long, old_rid string, new_rid string, state string, manual boolean, probability double, "
              "partner long, weights string")
    return plain.unionByName(with_sides(to_explain, records, "record_id", "partner").mapInPandas(explain, schema))


def _review_explanations(reviews: DataFrame, records: DataFrame, model_parameters: Broadcast[str]) -> DataFrame:
    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        current = model_of(model_parameters.value)
        for pdf in batches:
            left, right = pair_frames(pdf)
            weights = [json.dumps(with_rule_8(w, bool(ambiguous))) for w, ambiguous in zip(
                explanations(current, left, right), pdf["ambiguous"].fillna(False).tolist(), strict=True)]
            yield pdf[["a", "b", "probability", "candidate_regional_id"]].assign(weights=weights)

    return with_sides(reviews, records).mapInPandas(
        explain, "a long, b long, probability double, candidate_regional_id string, weights string")


def _follow_survivors(session: Session, spark: SparkSession, outcome: DataFrame) -> None:
    """Records merged away follow the record they were merged into (:func:`mpi.batch._follow_survivors`)."""
    from sqlalchemy import update

    merged = merged_records(session)
    if not merged:
        return
    survivors = survivor_of(merged)
    targets = spark.createDataFrame(pd.DataFrame({"record_id": sorted(set(survivors.values()))}, dtype=np.int64))
    regional_of = {int(r["record_id"]): r["new_rid"] for r in
                   outcome.join(targets, "record_id").select("record_id", "new_rid").collect()}
    updates = [{"id": rid, "regional_patient_id": regional_of[survivors[rid]]} for rid, _target, current in merged
               if regional_of.get(survivors[rid]) and regional_of[survivors[rid]] != current]
    if updates:
        session.execute(update(SourceRecord), updates)


def _batches(frame: DataFrame) -> Iterator[list[dict[str, Any]]]:
    """The rows of ``frame`` streamed to the driver one partition at a time, in lists of :data:`WRITE_BATCH`."""
    batch: list[dict[str, Any]] = []
    for row in frame.toLocalIterator(prefetchPartitions=False):
        batch.append(row.asDict())
        if len(batch) >= WRITE_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
