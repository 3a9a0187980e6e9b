"""The Spark session of a relink: ``local[*]`` on this machine, or the cluster a ``--master`` URL names.

Spark runs the relink's Python functions (:mod:`mpi.scoring`, :mod:`mpi.decisions`, :mod:`mpi.clustering`) in
Python worker processes of its own; they must run the interpreter that has priorscan installed (this one on one
machine; on a cluster, an environment with the same package, shipped as Spark's documentation describes).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from priorscan.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOCAL_MASTER = "local[*]"


def spark_session(master: str | None = None, *, driver_memory: str | None = None,
                  shuffle_partitions: int | None = None, config: dict[str, Any] | None = None) -> SparkSession:
    """A Spark session for the relink (created, or the running one reused with its settings).

    Parameters
    ----------
    master
        ``local[*]`` (the default: every core of this machine) or a cluster's URL (``spark://host:7077``, ``yarn``,
        ``k8s://...``).
    driver_memory
        ``spark.driver.memory`` (``512m``, ``2g``): the relink never collects the records on the driver, so it can
        stay far smaller than the data.
    shuffle_partitions
        ``spark.sql.shuffle.partitions`` (default: 4 per core on one machine, Spark's own on a cluster).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # the extra is not installed
        raise InputError("--engine spark needs PySpark: pip install 'priorscan[spark]' (and a Java runtime)",
                         code="input.spark-missing") from exc
    # the Python workers Spark starts run this interpreter, the one with priorscan and its dependencies installed
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    master = master or LOCAL_MASTER
    builder = (SparkSession.builder.master(master).appName("priorscan-relink")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.python.worker.reuse", "true"))
    if master.startswith("local"):
        cores = os.cpu_count() or 2
        builder = builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions or 4 * cores))
    elif shuffle_partitions:
        builder = builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions))
    if driver_memory:
        builder = builder.config("spark.driver.memory", driver_memory)
    for key, value in (config or {}).items():
        builder = builder.config(key, str(value))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
