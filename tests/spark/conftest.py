"""One local Spark session (2 cores) for the Spark tests, or a skip saying why there can be none."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.skip("PySpark is not installed (pip install 'watchkeeper[spark]'): Spark tests skipped")
    if _java() is None:
        pytest.skip("no Java (neither JAVA_HOME nor java on PATH): Spark needs Java 17; Spark tests skipped")
    from watchkeeper.spark import session

    s = session("local[2]", driver_memory="1g", sql_shuffle_partitions=2)
    s.sparkContext.setLogLevel("ERROR")  # the failing tasks of the error tests would print their tracebacks
    yield s
    s.stop()
