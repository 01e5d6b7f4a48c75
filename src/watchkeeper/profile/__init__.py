"""Column and dataset profiles built from sketches: mergeable, serialisable summaries of data."""

from watchkeeper.profile.column import KINDS, ColumnProfile
from watchkeeper.profile.dataset import Profile, profile
from watchkeeper.profile.traffic import Endpoint, Traffic, Usage
from watchkeeper.profile.vector import VectorSummary

__all__ = ["KINDS", "ColumnProfile", "Endpoint", "Profile", "Traffic", "Usage", "VectorSummary", "profile"]
