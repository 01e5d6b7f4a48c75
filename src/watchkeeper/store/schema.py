"""The store's tables, in SQLAlchemy Core: the current shape that queries are written against.

Alembic migrations in ``migrations/versions`` are the history that builds this shape; a test compares a
migrated database with this module so the two cannot drift apart.

Conventions, the same on every dialect:

* Times are seconds since the epoch as double precision: cheap to write, exact enough (microseconds) and
  free of time-zone handling in SQLite.
* A point's value of SQL ``NULL`` means NaN: SQLite turns a bound NaN into NULL anyway, so the store keeps one
  rule everywhere and the readers turn NULL back into NaN. Infinities are stored as such.
* JSON columns hold config, tags, summaries and table rows; non-finite floats inside them are tagged
  (see ``watchkeeper.sdk.values``), because JSON has no NaN.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Time = sa.Double
"""Seconds since the epoch."""

# -- tracking: projects, runs, signals, samples ---------------------------------------------------------

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("created_at", Time, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("job_type", sa.String(64), nullable=True),
    sa.Column("group_name", sa.String(256), nullable=True),
    sa.Column("notes", sa.Text, nullable=True),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
    sa.Column("model", sa.String(256), nullable=True),
    sa.Column("version", sa.String(128), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("host", sa.String(256), nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("heartbeat_at", Time, nullable=False),
    sa.Column("ended_at", Time, nullable=True),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("last_step", sa.BigInteger, nullable=True),
    sa.Index(None, "project_id", "created_at"),
    sa.Index(None, "status"),
)

series = sa.Table(
    "series",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    # what the series is about: a run id, or a deployment such as "model:fraud-clf@1.3.0"
    sa.Column("subject", sa.String(320), nullable=False),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    # the labels in canonical text form ("k=v,k2=v2", sorted), so that they can be part of a unique key
    sa.Column("labels_key", sa.String(1024), nullable=False),
    sa.UniqueConstraint("project_id", "subject", "name", "labels_key"),
    sa.Index(None, "run_id"),
)

points = sa.Table(
    "points",
    metadata,
    sa.Column("series_id", sa.Integer, sa.ForeignKey("series.id"), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=True),
    sa.Column("t", Time, nullable=False),
    sa.Column("value", sa.Double, nullable=True),  # NULL means NaN
    sa.Index(None, "series_id", "t"),
)

# Per-bucket aggregates of the points of subject series (run_id NULL: what monitors derive), at the widths of
# watchkeeper.store.signals.ROLLUP_WIDTHS, kept in step with the points by write_points: a month's chart
# reads a few hundred rows per series instead of 43,200. ``last_t``/``last_value``: the bucket's newest point.
point_rollups = sa.Table(
    "point_rollups",
    metadata,
    sa.Column("series_id", sa.Integer, sa.ForeignKey("series.id"), primary_key=True),
    sa.Column("width", sa.Integer, primary_key=True),  # seconds
    sa.Column("k", sa.BigInteger, primary_key=True),  # the bucket [k * width, (k + 1) * width)
    sa.Column("count", sa.Integer, nullable=False),  # non-NaN values
    sa.Column("nan", sa.Integer, nullable=False),
    sa.Column("sum", sa.Double, nullable=True),
    sa.Column("min", sa.Double, nullable=True),
    sa.Column("max", sa.Double, nullable=True),
    sa.Column("last_t", Time, nullable=False),
    sa.Column("last_value", sa.Double, nullable=True),
)

samples = sa.Table(
    "samples",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("key", sa.String(256), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=True),
    sa.Column("t", Time, nullable=False),
    sa.Column("row_index", sa.Integer, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    # the row's own time (a sampled request's "t") when it has a numeric one, else t: what queries filter
    # and order sampled requests by, newest first through the (project_id, row_t) index
    sa.Column("row_t", Time, nullable=False),
    sa.Index(None, "run_id", "key", "step"),
    sa.Index(None, "project_id", "row_t"),
)

# -- artifacts: content-addressed files, versioned per name ---------------------------------------------

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),  # sha256 of the manifest
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("created_by", sa.String(64), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.UniqueConstraint("project_id", "name", "version"),
)

artifact_files = sa.Table(
    "artifact_files",
    metadata,
    sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifacts.id"), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),  # sha256 of the content: the blob's name
    sa.Column("size", sa.BigInteger, nullable=False),
)

run_artifacts = sa.Table(
    "run_artifacts",
    metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifacts.id"), primary_key=True),
    sa.Column("role", sa.String(16), primary_key=True),  # "output" (logged) or "input" (used)
    sa.Column("t", Time, nullable=False),
)

# -- monitoring: model versions, profiles, references, labels, predictions -------------------------------

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("version", sa.String(128), nullable=False),
    sa.Column("training_run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.UniqueConstraint("project_id", "model", "version"),
)

profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("subject", sa.String(320), nullable=False),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),  # "window", "reference", "rollup"
    sa.Column("window_start", Time, nullable=False),
    sa.Column("window_end", Time, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("format_version", sa.SmallInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Index(None, "project_id", "subject", "window_start"),
    # readers follow profiles by id (the monitor runner's cursor, the /metrics totals): on SQLite an id must
    # never be handed out again once its row is deleted (roll-ups delete old windows), as PostgreSQL's
    # sequences never do
    sqlite_autoincrement=True,
)

references = sa.Table(
    "references",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("version", sa.String(128), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("profile_id", sa.BigInteger, sa.ForeignKey("profiles.id"), nullable=False),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.UniqueConstraint("project_id", "model", "version", "name"),
)

labels = sa.Table(
    "labels",
    metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("subject", sa.String(320), primary_key=True),
    sa.Column("prediction_id", sa.String(256), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("t", Time, nullable=False),
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("subject", sa.String(320), primary_key=True),  # a deployment, "model:fraud-clf@1.3.0"
    sa.Column("prediction_id", sa.String(256), primary_key=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("t", Time, nullable=False),
    sa.Column("value", sa.JSON, nullable=False),  # the model's outputs, e.g. {"score": 0.93, "label": 1}
    sa.Index(None, "project_id", "subject", "t"),
)

# -- alerting: rules, per-series state, notifications ----------------------------------------------------

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.UniqueConstraint("project_id", "name"),
)

alert_states = sa.Table(
    "alert_states",
    metadata,
    sa.Column("rule_id", sa.Integer, sa.ForeignKey("alert_rules.id"), primary_key=True),
    sa.Column("labels_key", sa.String(1024), primary_key=True),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # inactive, pending, firing, resolved
    sa.Column("active_at", Time, nullable=True),
    sa.Column("fired_at", Time, nullable=True),
    sa.Column("resolved_at", Time, nullable=True),
    sa.Column("last_value", sa.Double, nullable=True),
    sa.Column("last_notified_at", Time, nullable=True),
    sa.Column("last_true_at", Time, nullable=True),  # when the condition last held
    sa.Column("keep_firing_since", Time, nullable=True),  # first evaluation it stopped holding
)

alert_silences = sa.Table(
    "alert_silences",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project", sa.String(128), nullable=True),  # None: silences matching alerts of every project
    sa.Column("matchers", sa.JSON, nullable=False),  # [{"label", "op", "value"}], all must match
    sa.Column("starts_at", Time, nullable=False),
    sa.Column("ends_at", Time, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Index(None, "ends_at"),
)

alert_notifications = sa.Table(
    "alert_notifications",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.Integer, sa.ForeignKey("alert_rules.id"), nullable=True),
    sa.Column("labels_key", sa.String(1024), nullable=False),
    sa.Column("notifier", sa.String(128), nullable=False),
    sa.Column("t", Time, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # sent, failed
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index(None, "rule_id", "t"),
)

# Every state change of every alert series, for the dashboard's history and the markers on its charts.
alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.Integer, sa.ForeignKey("alert_rules.id"), nullable=True),
    sa.Column("rule_name", sa.String(256), nullable=False),
    sa.Column("project", sa.String(128), nullable=True),  # the series' project label or the rule's project
    sa.Column("labels_key", sa.String(1024), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("from_state", sa.String(16), nullable=False),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("t", Time, nullable=False),
    sa.Column("value", sa.Double, nullable=True),
    sa.Index(None, "t"),
    sa.Index(None, "project", "t"),
)

# -- monitors: cursors and settings kept across restarts, by key ("windows:cursor", ...) --------------------

monitor_state = sa.Table(
    "monitor_state",
    metadata,
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)

# -- leases: which process does a job that must run once per store (the monitors and alert rules) --------

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),  # the job, e.g. "monitor"
    sa.Column("holder", sa.String(256), nullable=False),  # who holds it: host, pid and a random part
    sa.Column("epoch", sa.BigInteger, nullable=False),  # +1 each time the lease changes hands
    sa.Column("acquired_at", Time, nullable=False),  # the database's clock, like the two below
    sa.Column("renewed_at", Time, nullable=False),
    sa.Column("expires_at", Time, nullable=False),
)

# -- ingest bookkeeping: batch ids already applied, so a resend is acknowledged, not applied twice -------

ingest_batches = sa.Table(
    "ingest_batches",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("received_at", Time, nullable=False),
)

# -- API tokens of the server: the sha256 of each token, never the token (see watchkeeper.store.tokens) ----

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),  # the public part: wk_<id>_<secret>
    # the project's name, not a key into projects: a token may be made before its project has any data
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("scope", sa.String(8), nullable=False),  # read, write
    sa.Column("digest", sa.String(64), nullable=False),  # sha256 of the whole token, hex
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("last_used_at", Time, nullable=True),
    sa.Column("revoked_at", Time, nullable=True),
    sa.Index(None, "project"),
)
