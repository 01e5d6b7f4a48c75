"""Data signals of a window: drift of each input column against the model version's reference, missing
values and values of an unexpected type.

Input columns are those of role ``input`` in the window's profile (every column when it has no roles).

Drift (only with a reference): :func:`watchkeeper.drift.drift` of the reference profile against the
window's, over the input columns, with ``settings.alpha``; for each compared column (label ``feature``):

* ``drift_score``: the statistic of the column's method (KS ``D`` for numbers, chi-squared for categories,
  the z statistic for booleans, ...), as the drift module reports it;
* ``drift_p_value``: that method's p-value before the multiple-testing correction (NaN for a distance);
* ``drift_detected``: 1 when the column drifted by the drift module's decision, else 0.

and for the window: ``dataset_drift_share`` (the share of compared columns that drifted) and
``dataset_drift`` (1 when that share reaches the policy's ``drift_share``). Both are NaN when a reference
exists but no column could be compared. Columns the drift module could not compare (only on one side, of
another kind, empty) get no drift signals.

``missing_rate{feature}`` (with or without a reference): the share of the window's rows in which the
column had no value::

    missing_rate = (None/null values + NaN values + rows without the column) / rows

where ``rows`` is the window's row count (at least the column's own count); "rows without the column" are
rows of replicas or calls whose inputs did not carry it at all.

``type_change_rate{feature}`` (only with a reference): the share of the window's present (non-null)
values whose kind differs from the reference column's kind. A column profile counts its values by the
family they were summarised in — numbers (ints and floats alike, NaN and ±inf included, strings parsed as
numbers for a column declared numeric), strings (numbers too, in a column declared categorical or text),
booleans, vectors (of any length) — and keeps the rest
(parse failures of a declared numeric column, lists of non-numbers, structs, bytes) out of every family.
So, exactly from those counts::

    type_change_rate = 1 - (values in the family of the reference's kind) / (non-null values)

with the family of kind ``numeric``/``datetime`` being numbers, ``categorical``/``text`` strings,
``boolean`` booleans and ``vector`` vectors. An int where floats were is therefore no change; a string, a
boolean or an unparseable value in a numeric feature is. NaN when the window has no non-null value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from watchkeeper.drift import drift
from watchkeeper.monitor.base import Derived, WindowContext
from watchkeeper.profile import ColumnProfile, Profile


def derive(ctx: WindowContext) -> Iterator[Derived]:
    prof = ctx.profile
    if prof is None:
        return
    names = prof.inputs()
    for name in names:
        yield Derived("missing_rate", missing_rate(prof, name), {"feature": name})
    ref = ctx.reference
    if ref is None:
        return
    for name in names:
        if name in ref:
            rate = type_change_rate(ref[name], prof[name])
            if rate is not None:
                yield Derived("type_change_rate", rate, {"feature": name})
    if not names:
        return
    result = drift(ref, prof, columns=names, alpha=ctx.settings.alpha)
    for col in result.compared:
        labels = {"feature": col.column}
        yield Derived("drift_score", float(col.statistic), labels)
        yield Derived("drift_p_value", float(col.p_value), labels)
        yield Derived("drift_detected", 1.0 if col.drifted else 0.0, labels)
    if result.compared:
        yield Derived("dataset_drift_share", float(result.share))
        yield Derived("dataset_drift", 1.0 if result.drifted else 0.0)
    else:
        yield Derived("dataset_drift_share", math.nan)
        yield Derived("dataset_drift", math.nan)


def missing_rate(prof: Profile, name: str) -> float:
    """Share of the profile's rows in which column ``name`` was null, NaN or absent (see the module doc)."""
    col = prof[name]
    rows = max(prof.rows, col.count)
    if not rows:
        return math.nan
    return (col.missing + col.counts.nan + (rows - col.count)) / rows


def type_change_rate(ref: ColumnProfile, cur: ColumnProfile) -> float | None:
    """Share of ``cur``'s non-null values outside the value family of ``ref``'s kind (see the module doc);
    None when the reference column holds no values to have a kind, NaN when ``cur`` has none."""
    expected = _family(ref.kind)
    if expected is None:
        return None
    present = cur.count - cur.missing
    if present <= 0:
        return math.nan
    same = min(_family_count(cur, expected), present)
    return (present - same) / present


def _family(kind: str) -> str | None:
    return {
        "numeric": "numbers",
        "datetime": "numbers",
        "categorical": "strings",
        "text": "strings",
        "boolean": "booleans",
        "vector": "vectors",
    }.get(kind)


def _family_count(col: ColumnProfile, family: str) -> int:
    if family == "numbers":
        return col.numeric.seen if col.numeric is not None else 0
    if family == "strings":
        return col.strings.seen if col.strings is not None else 0
    if family == "booleans":
        return col.true_count + col.false_count
    vectors = col.vectors
    return (vectors.n + vectors.nonfinite if vectors is not None else 0) + col.vector_mismatch
