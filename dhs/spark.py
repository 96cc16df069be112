"""The Spark session helper: works under ``spark-submit`` (cluster) and standalone (local mode)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from dhs.config import SparkSettings

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

DEFAULT_CONF: dict[str, str] = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.compression.codec": "zstd",
    "spark.sql.sources.partitionOverwriteMode": "static",
    "spark.python.worker.reuse": "true",
}


def launched_by_spark_submit() -> bool:
    """True inside a driver started by ``spark-submit`` (its JVM gateway is already running)."""
    return bool(os.environ.get("PYSPARK_GATEWAY_PORT"))


def get_spark(settings: SparkSettings | None = None, log_level: str = "WARN") -> "SparkSession":
    """Return the active SparkSession or build one from ``settings``.

    Under ``spark-submit`` the master given to spark-submit wins (``settings.master`` is only the default
    for ``dhs run`` in local mode). In local mode the Python workers use this interpreter. Spark's own log
    level is ``log_level`` from the start of the session (``spark.log.level``; run config
    ``logging.spark_level``).
    """
    try:
        from pyspark import SparkConf
        from pyspark.sql import SparkSession
    except ImportError:
        raise SystemExit("dhs: PySpark is not installed in this Python environment: install it with "
                         "pip install 'dhs[spark]', or run the jobs/*.py scripts with a cluster's spark-submit") from None

    settings = settings or SparkSettings()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(settings.app_name)
    if not launched_by_spark_submit() and not SparkConf().contains("spark.master"):
        builder = builder.master(settings.master)
    conf = dict(DEFAULT_CONF)
    conf["spark.sql.shuffle.partitions"] = str(settings.shuffle_partitions)
    show = settings.show_progress if settings.show_progress is not None else sys.stderr.isatty()
    conf["spark.ui.showConsoleProgress"] = "true" if show else "false"
    conf["spark.log.level"] = log_level
    conf.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in settings.conf.items()})
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(conf["spark.log.level"])
    return spark
