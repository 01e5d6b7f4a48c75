// Two versions of a model side by side (champion A, challenger B): every overview panel with both versions
// overlaid (A solid, B dashed, each version its own colour family), the newest values with their difference,
// and the drift of B's traffic against A's, per column, largest effect first, with the two distributions of
// the chosen column overlaid.

import { api, el, empty, fmtNum, line, plotText, statusDot, timeChart } from "../lib.js";

// Each version draws in its own family: the panel's first series in the strong shade, the others lighter.
const SHADES = {
  a: ["#1f77b4", "#6baed6", "#08519c", "#9ecae1", "#3182bd", "#c6dbef"],
  b: ["#d62728", "#fd8d3c", "#a50f15", "#fdae6b", "#e6550d", "#fdd0a2"],
};
const BANDS = { a: "rgba(31,119,180,0.13)", b: "rgba(214,39,40,0.11)" };
const DASH = { a: "solid", b: "dash" };
const LABELS = {
  request_rate: "requests / s", latency_p50_ms: "p50", latency_p95_ms: "p95", latency_p99_ms: "p99",
  error_rate: "all errors", dataset_drift_share: "drifted features", accuracy: "accuracy",
  roc_auc: "ROC AUC", accuracy_baseline: "accuracy at training", label_pending_rate: "awaiting labels",
};

function seriesLabel(s) {
  if (s.name === "error_type_rate") return s.labels.error_type || "error";
  const extra = Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(", ");
  const base = LABELS[s.name] || s.name;
  return extra ? `${base} {${extra}}` : base;
}

function seriesKey(s) {
  return `${s.name}|${Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(",")}`;
}

// The drawn series of a panel (per-endpoint and per-stage series left out: their total is drawn; the
// accuracy interval drawn as a band).
function drawn(series) {
  return series.filter((s) => !s.labels.endpoint && !s.labels.stage &&
    s.name !== "accuracy_ci_low" && s.name !== "accuracy_ci_high");
}

function traces(panel, data) {
  const keys = [];
  for (const side of ["a", "b"]) for (const s of drawn(panel[side].series)) {
    if (!keys.includes(seriesKey(s))) keys.push(seriesKey(s));
  }
  const single = keys.length === 1;
  const out = [];
  for (const side of ["a", "b"]) {
    const version = data[side];
    const band = {};
    for (const s of panel[side].series) if (s.name.startsWith("accuracy_ci_")) band[s.name] = s;
    if (band.accuracy_ci_low && band.accuracy_ci_high) {
      const quiet = { line: { width: 0 }, hoverinfo: "skip", hovertemplate: null, showlegend: false };
      out.push(line(`v${version} interval low`, band.accuracy_ci_low.t, band.accuracy_ci_low.v, quiet));
      out.push(line(`v${version} accuracy 95% interval`, band.accuracy_ci_high.t, band.accuracy_ci_high.v,
        { ...quiet, fill: "tonexty", fillcolor: BANDS[side] }));
    }
    for (const s of drawn(panel[side].series)) {
      const shade = SHADES[side][keys.indexOf(seriesKey(s)) % SHADES[side].length];
      const name = single ? `v${version}` : `v${version} ${seriesLabel(s)}`;
      out.push(line(name, s.t, s.v, { line: { color: shade, dash: DASH[side], width: side === "a" ? 2 : 2.2 },
        legendgroup: side, meta: { side } }));
    }
  }
  return out;
}

function unitOf(panel) {
  return panel.unit === "share" ? "share" : panel.unit;
}

function signed(value, unit) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number" && value > 0) return `+${fmtNum(value, unit)}`;
  return fmtNum(value, unit);
}

function versionPicker(label, side, current, versions, ctx) {
  const select = el("select", { "data-side": side, "aria-label": `version ${side.toUpperCase()}`,
    onchange: (event) => ctx.setParams({ [side]: event.target.value }) },
  versions.map((v) => el("option", { value: v, selected: v === current }, `v${v}`)));
  return el("label", {}, label, select);
}

function newestTable(data) {
  const head = el("tr", {}, el("th", {}, "Panel"), el("th", { class: "num" }, `v${data.a}`),
    el("th", { class: "num" }, `v${data.b}`), el("th", { class: "num" }, `v${data.b} − v${data.a}`));
  const rows = data.panels.map((p) => el("tr", { "data-panel": p.key },
    el("td", {}, p.title),
    ["a", "b"].map((side) => el("td", { class: "num", "data-side": side,
      "data-value": p[side].current === null ? "" : p[side].current },
    statusDot(p[side].status), " ", fmtNum(p[side].current, unitOf(p)))),
    el("td", { class: "num", "data-difference": p.difference === null ? "" : p.difference },
      signed(p.difference, unitOf(p)))));
  return el("table", { class: "data newest" }, el("thead", {}, head), el("tbody", {}, rows));
}

function fmtP(value) {
  if (value === null || value === undefined) return "–";
  if (value === "inf" || value === "-inf") return value === "inf" ? "∞" : "-∞";
  if (Math.abs(value) < 1e-4) return value === 0 ? "0" : Number(value).toExponential(1);
  return Number(value).toPrecision(3);
}

// The reference and current distributions of one column (the drift module's plot: shares per bin or class).
function distribution(div, column, data) {
  const plot = column.plot;
  if (!plot) {
    div.replaceChildren(empty(column.message || "No distribution for this column."));
    return;
  }
  let x;
  let xaxis = {};
  if (plot.type === "histogram") {
    x = plot.ref.map((_, i) => (plot.edges[i] + plot.edges[i + 1]) / 2);
  } else {
    x = plot.categories.map(plotText);
    xaxis = { type: "category" };
  }
  const bar = (side, values) => ({
    type: "bar", name: `v${data[side]}`, x, y: values, opacity: 0.65,
    marker: { color: SHADES[side][0], pattern: side === "b" ? { shape: "/" } : undefined },
    hovertemplate: `%{x}: %{y:.1%}<extra>v${data[side]}</extra>`,
  });
  Plotly.react(div, [bar("a", plot.ref), bar("b", plot.cur)], {
    barmode: "overlay", bargap: plot.type === "histogram" ? 0 : 0.15,
    margin: { l: 52, r: 12, t: 26, b: 40 }, height: 260,
    title: { text: plotText(`${column.column}${plot.label ? ` (${plot.label})` : ""}`), font: { size: 13 } },
    xaxis, yaxis: { tickformat: ".0%", rangemode: "tozero" },
    legend: { orientation: "h", y: -0.2 },
  }, { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d", "toImage"] });
}

const WINDOW_CHOICES = [12, 48, 240];

function driftSection(data, ctx) {
  const d = data.drift;
  const section = el("section", { class: "card compare-drift", "data-drift": "" });
  const choices = [...new Set([...WINDOW_CHOICES, d.limit])].sort((x, y) => x - y);
  section.append(el("h2", {}, `Drift of v${data.b}'s traffic against v${data.a}'s`,
    el("label", { class: "windows-choice" }, "windows merged per version (more: slower, more power) ",
      el("select", { "data-windows-limit": "", onchange: (event) => ctx.setParams({ windows: event.target.value }) },
        choices.map((n) => el("option", { value: n, selected: n === d.limit }, `at most ${n}`))))));
  const counts = ["a", "b"].map((side) => {
    const w = d.windows[side];
    const unreadable = w.unreadable ? `, ${w.unreadable} unreadable` : "";
    return `${w.merged} of ${w.total} (v${data[side]}, ${fmtNum(w.rows)} rows${unreadable})`;
  });
  section.append(el("p", { class: "muted", "data-windows": "" }, `Windows merged: ${counts.join("; ")}. `,
    "Reference: ", `v${data.a}`, "; a column drifts when its Holm-adjusted p-value is below ",
    String(d.policy ? d.policy.alpha : 0.01), " and its effect reaches the rule's minimum."));
  if (!d.columns.length) {
    section.append(empty(d.message || "No column to compare."));
    return { section, draw: () => {} };
  }
  const drifted = d.columns.filter((c) => c.drifted).length;
  section.append(el("p", { class: "verdict", "data-drifted": d.drifted ? "1" : "0" },
    el("span", { class: `badge ${d.drifted ? "bad" : "ok"}` }, d.drifted ? "dataset drifted" : "no dataset drift"),
    ` ${drifted} of ${d.compared} compared columns drifted`));
  const plotDiv = el("div", { class: "chart compare-dist" });
  let selected = null;
  const rows = d.columns.map((c) => {
    const row = el("tr", { class: c.drifted ? "drifted" : undefined, "data-column": c.column, tabindex: 0,
      onclick: () => choose(c, row), onkeydown: (e) => { if (e.key === "Enter") choose(c, row); } },
    el("td", {}, el("span", { class: "column-name" }, c.column), el("div", { class: "muted sub" }, c.role)),
    el("td", {}, c.method || "–", el("div", { class: "muted sub" }, c.kind)),
    el("td", { class: "num" }, fmtP(c.statistic)),
    el("td", { class: "num" }, fmtP(c.p_value)),
    el("td", { class: "num" }, fmtP(c.p_adjusted)),
    el("td", { class: "num", "data-effect": c.effect === null ? "" : c.effect, title: c.effect_name || undefined },
      fmtP(c.effect), c.effect_name ? el("div", { class: "muted sub" }, c.effect_name) : ""),
    el("td", {}, c.drifted === null ? el("span", { class: "muted", title: c.message }, c.status)
      : el("span", { class: `badge ${c.drifted ? "bad" : "ok"}` }, c.drifted ? "drifted" : "no")));
    return row;
  });
  function choose(column, row) {
    if (selected) selected.classList.remove("selected");
    selected = row;
    row.classList.add("selected");
    distribution(plotDiv, column, data);
  }
  const head = el("tr", {}, ["Column", "Test", "Statistic", "p-value", "Adjusted p", "Effect (score)", "Drifted"]
    .map((t, i) => el("th", { class: i >= 2 && i <= 5 ? "num" : undefined }, t)));
  section.append(el("div", { class: "compare-drift-body" },
    el("div", { class: "drift-table-wrap" },
      el("table", { class: "data drift-table" }, el("thead", {}, head), el("tbody", {}, rows))), plotDiv));
  return { section, draw: () => choose(d.columns[0], rows[0]) };
}

export async function render(root, ctx) {
  const listing = await api("views/deployments", { project: ctx.project, start: ctx.range.start, end: ctx.range.end });
  if (!ctx.isCurrent()) return;
  const versions = [...new Set(listing.deployments.filter((d) => d.project === ctx.project && d.model === ctx.model)
    .map((d) => d.version))].sort((x, y) => x.localeCompare(y, undefined, { numeric: true }));
  const a = ctx.params.get("a") || versions[0];
  const b = ctx.params.get("b") || versions.find((v) => v !== a) || a;
  if (!a) {
    root.replaceChildren(el("h1", {}, `Compare versions of ${ctx.model}`),
      empty(`No version of ${ctx.model} has served traffic in ${ctx.project}.`));
    return;
  }
  for (const v of [a, b]) if (!versions.includes(v)) versions.push(v);
  // the panels and the drift in parallel: the page waits for the slower of the two, not for their sum
  const query = { project: ctx.project, model: ctx.model, a, b, start: ctx.range.start, end: ctx.range.end,
    windows: ctx.params.get("windows") || undefined };
  const driftAnswer = api("views/compare", { ...query, part: "drift" });
  driftAnswer.catch(() => {}); // awaited below; not an unhandled rejection while the panels draw
  const data = await api("views/compare", { ...query, part: "panels" });
  if (!ctx.isCurrent()) return;

  const parts = [el("h1", {}, `${data.model}: v${data.a} and v${data.b} side by side`)];
  parts.push(el("div", { class: "toolbar compare-pickers" },
    versionPicker("A (reference, solid) ", "a", a, versions, ctx),
    versionPicker("B (compared, dashed) ", "b", b, versions, ctx),
    el("button", { type: "button", onclick: () => ctx.setParams({ a: b, b: a }) }, "Swap A and B"),
    ["a", "b"].map((side) => el("a", { href: ctx.href(`/p/${ctx.enc(ctx.project)}/m/${ctx.enc(ctx.model)}/v/${ctx.enc(data[side])}/overview`) },
      `v${data[side]} overview`))));
  if (a === b) parts.push(el("p", { class: "muted" }, "Both sides are the same version: pick another one for B."));
  parts.push(el("h2", {}, "Newest values"), newestTable(data));

  const grid = el("div", { class: "grid" });
  const charts = [];
  for (const panel of data.panels) {
    const any = panel.a.series.length || panel.b.series.length;
    const chart = el("div", { class: "chart" });
    grid.append(el("section", { class: "card compare-card", "data-panel": panel.key },
      el("h3", {}, panel.title,
        el("span", { class: "compare-values" },
          el("span", { class: "side-a" }, `v${data.a} ${fmtNum(panel.a.current, unitOf(panel))}`),
          el("span", { class: "side-b" }, `v${data.b} ${fmtNum(panel.b.current, unitOf(panel))}`),
          el("span", { class: "muted" }, `Δ ${signed(panel.difference, unitOf(panel))}`))),
      any ? chart : empty("No data in this range.")));
    if (any) charts.push([chart, panel]);
  }
  parts.push(el("h2", {}, "Panels"), grid);
  const placeholder = el("section", { class: "card compare-drift" }, el("div", { class: "loading" },
    `Comparing v${data.b}'s traffic with v${data.a}'s…`));
  parts.push(placeholder);
  root.replaceChildren(...parts);
  for (const [chart, panel] of charts) {
    await timeChart(chart, traces(panel, data), { unit: panel.unit, events: data.events, range: data });
  }
  let driftData;
  try {
    driftData = await driftAnswer;
  } catch (error) {
    if (ctx.isCurrent()) placeholder.replaceChildren(el("div", { class: "error", role: "alert" }, error.message));
    return cleanup(charts);
  }
  if (!ctx.isCurrent()) return cleanup(charts);
  const drift = driftSection({ ...data, drift: driftData.drift }, ctx);
  placeholder.replaceWith(drift.section);
  drift.draw();
  return cleanup(charts);
}

function cleanup(charts) {
  return () => {
    for (const [chart] of charts) if (window.Plotly) Plotly.purge(chart);
  };
}
