"""The drift report: one self-contained HTML file (inline CSS, inline SVG charts, a few lines of inline
JavaScript to sort the table), readable offline.

It opens with the verdict and the columns that moved most, then a sortable table of every column, then one
card per column with the reference and current distributions overlaid. Every string that came from the data
(column names, categories, messages) is HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
import math
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watchkeeper.drift.dataset import ColumnDrift, DriftResult

REF_COLOUR = "#4c78a8"
CUR_COLOUR = "#f58518"

CSS = """
:root { --ref: REF_COLOUR; --cur: CUR_COLOUR; --bad: #c0392b; --good: #2e7d32; --muted: #6b7280; --line: #e5e7eb; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #111827;
       margin: 0; background: #f9fafb; }
main { max-width: 1180px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; }
.meta { color: var(--muted); font-size: 12px; }
.verdict { display: flex; gap: 16px; align-items: stretch; margin: 18px 0; flex-wrap: wrap; }
.tile { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; min-width: 170px; }
.tile .big { font-size: 26px; font-weight: 650; } .tile .label { color: var(--muted); font-size: 12px; }
.yes { color: var(--bad); } .no { color: var(--good); }
.rule { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; color: #374151;
        font-size: 13px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); font-size: 13px; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
th { background: #f3f4f6; cursor: pointer; user-select: none; position: sticky; top: 0; }
th.sorted-asc::after { content: " ▲"; } th.sorted-desc::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.badge.drift { background: #fdecea; color: var(--bad); } .badge.stable { background: #e8f5e9; color: var(--good); }
.badge.skip { background: #f3f4f6; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 14px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card h3 { font-size: 14px; margin: 0 0 2px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.card .stats { color: var(--muted); font-size: 12px; margin-bottom: 6px; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; border-radius: 2px; }
svg text { font-size: 10px; fill: #4b5563; }
a { color: inherit; }
""".replace("REF_COLOUR", REF_COLOUR).replace("CUR_COLOUR", CUR_COLOUR)

SORT_JS = """
// Each sortable table sorts itself: a header's column is its index in its own row. A cell's data-v is a
// number when the whole value is one (Number(), not parseFloat: "2024_q1" is text), else text; numbers sort
// before text, and equal keys keep a stable order by the row's first cell.
function wkKey(v) {
  var n = (v === null || v.trim() === "") ? NaN : Number(v);
  return isNaN(n) ? {num: false, text: v} : {num: true, val: n};
}
function wkCompare(x, y) {
  var a = wkKey(x), b = wkKey(y);
  if (a.num && b.num) { return a.val < b.val ? -1 : (a.val > b.val ? 1 : 0); }
  if (a.num !== b.num) { return a.num ? -1 : 1; }
  return a.text.localeCompare(b.text, "en");
}
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.setAttribute("tabindex", "0");
    th.setAttribute("role", "columnheader");
    function sort() {
      var body = table.tBodies[0];
      var asc = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) {
        h.classList.remove("sorted-asc", "sorted-desc");
        h.removeAttribute("aria-sort");
      });
      th.classList.add(asc ? "sorted-asc" : "sorted-desc");
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var r = wkCompare(a.cells[col].getAttribute("data-v"), b.cells[col].getAttribute("data-v"));
        if (r === 0) { r = wkCompare(a.cells[0].getAttribute("data-v"), b.cells[0].getAttribute("data-v")); }
        return asc ? r : -r;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
  });
});
"""


def _num(v: float, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}" if abs(v) >= 1 else f"{v:.{digits}f}"


def _sort_value(v: Any) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "-1e308"
    if isinstance(v, float) and math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"  # what JavaScript's Number() reads as the infinities
    if isinstance(v, bool):
        return "1" if v else "0"
    return escape(str(v), quote=True)


def _badge(c: ColumnDrift) -> str:
    if c.drifted is None:
        return f'<span class="badge skip">{escape(c.status)}</span>'
    return (
        '<span class="badge drift">drifted</span>'
        if c.drifted
        else '<span class="badge stable">stable</span>'
    )


def _histogram_svg(plot: dict[str, Any], width: int = 400, height: int = 150) -> str:
    edges, ref, cur = plot["edges"], plot["ref"], plot["cur"]
    n = len(ref)
    top = max(max(ref, default=0), max(cur, default=0)) or 1.0
    pad_l, pad_b, pad_t = 6, 18, 6
    w = (width - 2 * pad_l) / n
    h = height - pad_b - pad_t
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img">']
    for series, colour in ((ref, REF_COLOUR), (cur, CUR_COLOUR)):
        for i, v in enumerate(series):
            bh = h * v / top
            parts.append(
                f'<rect x="{pad_l + i * w:.1f}" y="{pad_t + h - bh:.1f}" width="{max(w - 1, 1):.1f}" '
                f'height="{bh:.1f}" fill="{colour}" fill-opacity="0.55"/>'
            )
    parts.append(
        f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{width - pad_l}" y2="{pad_t + h}" stroke="#9ca3af"/>'
    )
    for x, anchor, label in (
        (pad_l, "start", edges[0]),
        (width - pad_l, "end", edges[-1]),
        (width / 2, "middle", (edges[0] + edges[-1]) / 2),
    ):
        parts.append(
            f'<text x="{x:.1f}" y="{height - 4}" text-anchor="{anchor}">{escape(_num(label))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bars_svg(plot: dict[str, Any], width: int = 400) -> str:
    cats, ref, cur = plot["categories"], plot["ref"], plot["cur"]
    row, label_w = 22, 120
    height = row * len(cats) + 6
    top = max(max(ref, default=0), max(cur, default=0)) or 1.0
    bar_w = width - label_w - 95  # room for the "12.3% → 45.6%" label after the longer bar
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img">']
    for i, (c, p, q) in enumerate(zip(cats, ref, cur, strict=True)):
        y = 3 + i * row
        text = c if len(c) <= 18 else c[:17] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end"><title>{escape(c)}</title>'
            f"{escape(text)}</text>"
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 2}" width="{bar_w * p / top:.1f}" height="8" fill="{REF_COLOUR}"/>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 10}" width="{bar_w * q / top:.1f}" height="8" fill="{CUR_COLOUR}"/>'
        )
        parts.append(
            f'<text x="{label_w + bar_w * max(p, q) / top + 4:.1f}" y="{y + 14}">'
            f"{100 * p:.1f}% → {100 * q:.1f}%</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _card(c: ColumnDrift, anchor: str) -> str:
    head = f'<h3 id="{anchor}" title="{escape(c.column, quote=True)}">{escape(c.column)} {_badge(c)}</h3>'
    if c.drifted is None:
        return (
            f'<div class="card">{head}<div class="stats">{escape(c.kind)} · {escape(c.message)}</div></div>'
        )
    stats = (
        f"{escape(c.kind)} · {escape(c.method or '')} statistic {_num(c.statistic)} · p {_num(c.p_value)} "
        f"(adjusted {_num(c.p_adjusted)}) · {escape(c.effect_name or '')} {_num(c.effect)} · "
        f"n {c.ref_count:,} → {c.cur_count:,}"
    )
    if c.kind == "vector" and c.message:
        stats += f" · {escape(c.message)}"  # the dimension and the change of the mean row norm
    chart = ""
    if c.plot and c.plot.get("type") == "histogram":
        chart = _histogram_svg(c.plot)
    elif c.plot and c.plot.get("type") == "bars":
        chart = _bars_svg(c.plot)
    if chart and c.plot.get("label"):
        chart += f'<div class="stats">{escape(str(c.plot["label"]))}</div>'
    return f'<div class="card">{head}<div class="stats">{stats}</div>{chart}</div>'


def render(result: DriftResult, *, title: str = "Drift report") -> str:
    cols = result.columns
    compared = result.compared
    drifted = [c for c in cols if c.drifted]
    order = sorted(
        range(len(cols)),
        key=lambda i: (cols[i].drifted is None, -(cols[i].effect if not math.isnan(cols[i].effect) else -1)),
    )
    anchors = {i: f"col-{i}" for i in range(len(cols))}
    verdict_cls = "yes" if result.drifted else "no"
    policy = result.policy
    most = sorted(drifted, key=lambda c: -c.effect)[:5]
    most_html = (
        ", ".join(
            f'<a href="#{anchors[cols.index(c)]}">{escape(c.column)}</a> ({escape(c.effect_name or "")} '
            f"{_num(c.effect)})"
            for c in most
        )
        or "none"
    )
    skipped = len(cols) - len(compared)
    rows = []
    for i in order:
        c = cols[i]
        cells = [
            (c.column, f'<a href="#{anchors[i]}">{escape(c.column)}</a>', ""),
            (c.kind, escape(c.kind), ""),
            (c.method or "", escape(c.method or "–"), ""),
            (c.statistic, _num(c.statistic), "num"),
            (c.p_value, _num(c.p_value), "num"),
            (c.p_adjusted, _num(c.p_adjusted), "num"),
            (c.effect, _num(c.effect), "num"),
            (c.drifted if c.drifted is not None else -1, _badge(c), ""),
            (c.message, escape(c.message), ""),
        ]
        rows.append(
            "<tr>"
            + "".join(f'<td class="{cls}" data-v="{_sort_value(v)}">{html}</td>' for v, html, cls in cells)
            + "</tr>"
        )
    header = "".join(
        f"<th>{h}</th>"
        for h in (
            "column",
            "kind",
            "method",
            "statistic",
            "p-value",
            "adjusted p",
            "effect",
            "verdict",
            "note",
        )
    )
    cards = "".join(_card(cols[i], anchors[i]) for i in order)
    generated = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body><main>
<h1>{escape(title)}</h1>
<div class="meta">generated {generated} by watchkeeper · compared from {escape(result.source)} data</div>
<div class="verdict">
  <div class="tile"><div class="label">dataset drift</div>
    <div class="big {verdict_cls}" id="verdict">{"DRIFT" if result.drifted else "no drift"}</div></div>
  <div class="tile"><div class="label">drifted columns</div>
    <div class="big" id="drifted-count">{len(drifted)} / {len(compared)}</div></div>
  <div class="tile"><div class="label">share (dataset threshold {policy.drift_share:.0%})</div>
    <div class="big">{result.share:.0%}</div></div>
  <div class="tile"><div class="label">not compared</div><div class="big">{skipped}</div></div>
</div>
<div class="rule"><b>Most drifted:</b> {most_html}<br>
<b>Rule:</b> a column drifted when its test's p-value, adjusted for {len(compared)} columns ({escape(policy.correction)}),
is below {policy.alpha:g} <i>and</i> the change is large enough: Wasserstein distance ≥ {policy.numeric_min_effect:g}
reference standard deviations (numeric), or a category's share moving by ≥ {policy.categorical_min_effect * 100:g}
percentage points (categorical, boolean), or the mean embedding moving by ≥ {result.vector_min_effect:g} average
reference standard deviations (vector).</div>
<h2>Columns</h2>
<table class="sortable" id="columns"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>
<h2>Distributions <span class="legend"><span style="background:{REF_COLOUR}"></span>reference
<span style="background:{CUR_COLOUR}"></span>current</span></h2>
<div class="cards">{cards}</div>
</main><script>{SORT_JS}</script></body></html>
"""
