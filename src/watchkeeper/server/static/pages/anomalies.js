// A deployment's anomaly detectors (run.watch_anomalies): per detector, the top entities' largest score per
// bucket with the threshold as a dashed horizontal line and a ringed marker on every bucket that had a window
// above it, and a table of the entities ranked by windows above the threshold. Clicking an entity charts it
// alone; the choice lives in the address (?detector=..&entity=..), so a view can be shared. Entity and
// detector names are the user's: they reach the page through el() and the charts through plotText().

import { api, el, empty, eventMarks, fmtNum, fmtTime, line, plotText, table, timeChart, COLOURS } from "../lib.js";

const NO_DETECTORS = "no anomaly detectors report for this deployment; see docs/anomaly.md (run.watch_anomalies)";
const ABOVE = "#c62828";

function entityName(entity) {
  return entity === "" ? "(every row: no entity column)" : entity;
}

function traces(series) {
  const out = [];
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const name = entityName(s.entity);
    const group = `entity-${i}`;
    out.push(line(name, s.t, s.v, { legendgroup: group, line: { width: 1.5, color: colour } }));
    const at = s.anomalies.map((n, j) => (n > 0 && typeof s.v[j] === "number" ? j : -1)).filter((j) => j >= 0);
    if (at.length) {
      out.push({
        // fill "none" (plotly's default) keeps timeChart from breaking this trace at gaps, which would
        // shift its points against their customdata
        type: "scatter", mode: "markers", fill: "none", name: `${plotText(name)} above the threshold`, legendgroup: group,
        showlegend: false, x: at.map((j) => s.t[j] * 1000), y: at.map((j) => s.v[j]),
        customdata: at.map((j) => s.anomalies[j]),
        marker: { size: 9, color: colour, line: { color: ABOVE, width: 2 } },
        hovertemplate: `%{y:.4g}, %{customdata} window(s) above the threshold<extra>${plotText(name)}</extra>`,
      });
    }
  });
  return out;
}

function thresholdLayout(panel, events, single) {
  const { shapes } = eventMarks(events);
  const layout = {
    shapes, annotations: [], showlegend: !single,
    legend: { orientation: "v", x: 1.01, y: 1, font: { size: 11 } },
    margin: { l: 52, r: 12, t: 8, b: 30 },
    yaxis: { title: { text: "anomaly score (worst window)", font: { size: 11 } }, rangemode: "normal", automargin: true },
  };
  if (typeof panel.threshold === "number") {
    shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: panel.threshold, y1: panel.threshold,
      line: { color: ABOVE, width: 1.5, dash: "dash" } });
    layout.annotations.push({ xref: "paper", x: 1, xanchor: "right", yref: "y", y: panel.threshold, yanchor: "bottom",
      text: `threshold ${plotText(fmtNum(panel.threshold))}`, showarrow: false, font: { size: 11, color: ABOVE },
      bgcolor: "rgba(255,255,255,0.85)" });
  }
  return layout;
}

function detectorCard(panel, ctx, base, chosen) {
  const card = el("section", { class: "card", "data-detector": panel.detector, "data-entities": panel.entities,
    "data-anomalies": panel.anomalies, "data-threshold": panel.threshold === null ? "" : panel.threshold });
  card.append(el("h3", {}, panel.detector,
    el("span", { class: "muted", style: { fontWeight: 400 } },
      `newest threshold ${fmtNum(panel.threshold)} · ${panel.entities} entities · ${panel.windows} windows scored · `),
    el("span", { class: `badge ${panel.anomalies ? "bad" : "ok"}` }, `${panel.anomalies} above the threshold`)));
  if (panel.late_rows) {
    card.append(el("p", { class: "muted" }, `${panel.late_rows} KPI rows came after their window was scored and were dropped.`));
  }
  if (!panel.entities) {
    card.append(empty("This detector scored no window in this range."));
    return { card, chart: null };
  }
  const only = chosen !== undefined ? panel.series.filter((s) => s.entity === chosen) : [];
  const shown = only.length ? only : panel.series;
  const notes = [];
  if (only.length) {
    notes.push(`Showing ${entityName(chosen)} only · `,
      el("a", { href: ctx.href(base, { detector: ctx.params.get("detector"), entity: null }), "data-show-all": "" }, "show every entity"));
  } else if (panel.series_capped) {
    notes.push(`The chart shows the ${panel.series.length} highest ranked of ${panel.entities} entities; click one in the table to chart it alone.`);
  } else {
    notes.push("Click an entity in the table to chart it alone.");
  }
  card.append(el("p", { class: "muted" }, notes));
  const chart = el("div", { class: shown.length > 1 ? "chart tall" : "chart", "data-charted": shown.length });
  card.append(chart);

  const link = (row) => ctx.href(base, { detector: panel.detector, entity: row.entity });
  const columns = [
    { title: "#", num: true, render: (row) => String(row.rank) },
    { title: "entity", render: (row) => (row.entity === "" ? entityName("") : el("a", { href: link(row) }, row.entity)) },
    { title: "windows above threshold", num: true, render: (row) =>
      (row.anomalies ? el("span", { class: "badge bad" }, String(row.anomalies)) : "0") },
    { title: "windows scored", num: true, render: (row) => String(row.windows) },
    { title: "newest score", num: true, render: (row) => el("span", { title: row.newest_t ? `bucket of ${fmtTime(row.newest_t)}` : "" },
      fmtNum(row.newest_score)) },
    { title: "max score", num: true, render: (row) => fmtNum(row.max_score) },
  ];
  const ranked = panel.table.map((row, i) => ({ ...row, rank: i + 1 }));
  const rows = table(columns, ranked, { class: "drift-table anomaly-entities",
    rowClass: (row) => (row.entity === chosen ? "selected" : undefined) });
  rows.querySelectorAll("tbody tr").forEach((tr, i) => {
    const row = panel.table[i];
    tr.dataset.entity = row.entity;
    tr.dataset.anomalies = row.anomalies;
    if (row.entity !== "") tr.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      location.hash = link(row);
    });
  });
  card.append(el("div", { class: "drift-table-wrap", style: { maxHeight: "420px", overflowY: "auto", marginTop: "8px" } }, rows));
  if (panel.table_capped) {
    card.append(el("p", { class: "muted" }, `Listing the ${panel.table.length} highest ranked of ${panel.entities} entities.`));
  }
  return { card, chart, shown };
}

export async function render(root, ctx) {
  const detector = ctx.params.get("detector") || undefined;
  const entity = ctx.params.has("entity") ? ctx.params.get("entity") : undefined;
  const data = await api("views/anomalies", { project: ctx.project, model: ctx.model, version: ctx.version,
    start: ctx.range.start, end: ctx.range.end, detector, entity });
  if (!ctx.isCurrent()) return undefined;
  const base = `/p/${ctx.enc(ctx.project)}/m/${ctx.enc(ctx.model)}/v/${ctx.enc(ctx.version)}/anomalies`;
  const parts = [el("h1", {}, `Anomalies · ${data.model} v${data.version}`)];
  if (!data.detectors.length) {
    parts.push(empty(NO_DETECTORS));
    root.replaceChildren(el("div", { class: "anomalies-page" }, ...parts));
    return undefined;
  }
  if (data.detectors.length > 1 || detector) {
    const select = el("select", { "aria-label": "detector", onchange: (event) =>
      ctx.setParams({ detector: event.target.value || null, entity: null }) },
    el("option", { value: "" }, "every detector"),
    data.detectors.map((d) => el("option", { value: d, selected: d === detector }, d)));
    parts.push(el("div", { class: "toolbar" }, el("label", {}, "Detector ", select)));
  }
  parts.push(el("p", { class: "muted" }, "A point is the worst window of its bucket; a ringed point is a bucket with ",
    "windows above the detector's threshold (dashed). Entities are ranked by windows above the threshold in the ",
    "range, then by their largest score."));
  if (!data.panels.length) parts.push(empty(`No detector named ${detector} reports for this deployment.`));
  const charts = [];
  for (const panel of data.panels) {
    const { card, chart, shown } = detectorCard(panel, ctx, base, entity);
    parts.push(card);
    if (chart) charts.push([chart, panel, shown]);
  }
  root.replaceChildren(el("div", { class: "anomalies-page" }, ...parts));
  for (const [chart, panel, shown] of charts) {
    await timeChart(chart, traces(shown), { events: data.events, range: data,
      layout: thresholdLayout(panel, data.events, shown.length < 2) });
  }
  return () => charts.forEach(([chart]) => window.Plotly && Plotly.purge(chart));
}
