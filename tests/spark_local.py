"""pyspark in local mode, as the tests and the benchmarks run it: loopback only, the
workers on this interpreter, and the project's root on their path."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def local_session(master: str, **conf: str) -> Any:
    """A SparkSession on `master` (e.g. "local[2]") with `conf` set.

    The workers run this interpreter, which has the loader installed; the project's root
    on their path is what a wheel's site-packages gives them, where Spark 4 looks for
    `pyspark_*` packages (an editable install hides them from that search)."""
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    path = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    builder = (
        SparkSession.builder.master(master)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
    )
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
