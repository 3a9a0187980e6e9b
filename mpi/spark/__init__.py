"""The batch relink on Apache Spark (``priorscan link --engine spark``): the single-machine relink's pure functions
run as Spark jobs over partitions, with the same results (:mod:`mpi.spark.relink`)."""

from mpi.spark.relink import spark_relink
from mpi.spark.session import LOCAL_MASTER, spark_session

__all__ = ["LOCAL_MASTER", "spark_relink", "spark_session"]
