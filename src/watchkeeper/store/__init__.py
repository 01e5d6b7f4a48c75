"""The storage seam: SQLAlchemy Core over SQLite (embedded default) or PostgreSQL, with Alembic migrations."""

from watchkeeper.store.batch import (
    ArtifactFile,
    ArtifactLog,
    ArtifactVersion,
    Batch,
    LabelRows,
    Points,
    PredictionRows,
    ProfileLog,
    RunStart,
    RunUpdate,
    SampleRows,
    WriteResult,
)
from watchkeeper.store.engine import default_uri
from watchkeeper.store.runs import CRASHED, FAILED, FINISHED, RUNNING, RunInfo
from watchkeeper.store.store import Store

__all__ = [
    "CRASHED",
    "FAILED",
    "FINISHED",
    "RUNNING",
    "ArtifactFile",
    "ArtifactLog",
    "ArtifactVersion",
    "Batch",
    "LabelRows",
    "Points",
    "PredictionRows",
    "ProfileLog",
    "RunInfo",
    "RunStart",
    "RunUpdate",
    "SampleRows",
    "Store",
    "WriteResult",
    "default_uri",
]
