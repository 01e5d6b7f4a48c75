// A deployment's drift: a heatmap of feature x bucket coloured by each bucket's worst drift score (a dot
// where some window of the bucket drifted), the share of drifted features over time with the alert changes
// marked, and for one feature and one window the reference and current distributions overlaid with the
// drift test of the two. The feature and the window live in the address (?feature=..&at=..), so a view can
// be shared; clicking a heatmap cell chooses both.

import { api, el, empty, fmtNum, fmtTime, eventMarks, line, plotText, timeChart } from "../lib.js";

const SCALE = [[0, "#fff7ec"], [0.25, "#fdd49e"], [0.5, "#fc8d59"], [0.75, "#d7301f"], [1, "#7f0000"]];
const REFERENCE = "#1f77b4";
const CURRENT = "#d62728";
const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d", "toImage"] };

function fmtP(p) {
  if (p === null || p === undefined) return "–";
  if (p === "inf" || p === "-inf") return String(p);
  return p < 1e-4 ? Number(p).toExponential(1) : Number(p).toPrecision(3);
}

// One heatmap trace per statistic (KS D, chi-squared, z, ...): their scales differ by orders of magnitude,
// so each gets its own colour axis and colour bar rather than one scale that would wash out the small ones.
export function heatmapFigure(data) {
  const groups = [];
  for (const f of data.features) {
    let g = groups.find((x) => x.statistic === f.statistic);
    if (!g) groups.push((g = { statistic: f.statistic, features: [] }));
    g.features.push(f);
  }
  const half = data.step * 500;
  const x = data.t.map((s) => s * 1000 + half); // a cell spans its bucket [t, t + step)
  const traces = [];
  const layout = {
    margin: { l: 140, r: 30 + 80 * groups.length, t: 8, b: 36 },
    height: Math.max(220, 30 * data.features.length + 70),
    xaxis: { type: "date", range: [data.start * 1000, data.end * 1000] },
    yaxis: { type: "category", categoryorder: "array", autorange: "reversed", automargin: true,
      categoryarray: data.features.map((f) => plotText(f.feature)) },
    yaxis2: { overlaying: "y", range: [0, 1.05], visible: false, fixedrange: true },
    showlegend: false,
    dragmode: "zoom",
  };
  groups.forEach((g, i) => {
    const axis = i ? `coloraxis${i + 1}` : "coloraxis";
    let top = 1e-9;
    for (const f of g.features) for (const v of f.worst) if (typeof v === "number" && v > top) top = v;
    layout[axis] = {
      colorscale: SCALE, cmin: 0, cmax: top,
      colorbar: { title: { text: `drift score<br>${plotText(g.statistic)}`, side: "right", font: { size: 11 } },
        x: 1.01 + i * 0.085, xanchor: "left", thickness: 12, len: 1, outlinewidth: 0 },
    };
    // every trace spans every feature (nulls elsewhere, drawn as gaps): plotly's heatmap fails on a
    // category axis whose categories it does not all hold
    const mine = (f) => f.statistic === g.statistic;
    const gap = data.t.map(() => null);
    traces.push({
      type: "heatmap", coloraxis: axis, x, y: data.features.map((f) => plotText(f.feature)),
      z: data.features.map((f) => (mine(f) ? f.worst : gap)), xgap: 1, ygap: 1, hoverongaps: false,
      customdata: data.features.map((f) => f.detected.map((d) => (d === 1 ? "drifted" : d === 0 ? "no drift" : "–"))),
      hovertemplate: `%{y}<br>%{x}<br>worst ${plotText(g.statistic)}: %{z:.4g} (%{customdata})<extra></extra>`,
      meta: data.features.map((f) => f.feature),
    });
  });
  // drifted buckets as dots on their cells
  const dots = { x: [], y: [], customdata: [] };
  for (const f of data.features) {
    f.detected.forEach((d, j) => {
      if (d === 1) {
        dots.x.push(x[j]);
        dots.y.push(plotText(f.feature));
        dots.customdata.push([f.feature, data.t[j]]);
      }
    });
  }
  if (dots.x.length) {
    traces.push({ type: dots.x.length > 3000 ? "scattergl" : "scatter", mode: "markers", name: "drift detected",
      ...dots, marker: { size: 4, color: "#111", opacity: 0.75 }, hovertemplate: "%{y}: drift detected<extra></extra>" });
  }
  const { shapes, trace } = eventMarks(data.events);
  if (trace) traces.push(trace);
  layout.shapes = shapes;
  return { traces, layout };
}

function distributionFigure(d) {
  const plot = d.plot;
  const traces = [];
  const sides = [["reference", REFERENCE], ["current", CURRENT]];
  if (plot.type === "histogram") {
    const mid = plot.edges.slice(1).map((e, i) => (e + plot.edges[i]) / 2);
    const width = plot.edges.slice(1).map((e, i) => e - plot.edges[i]);
    for (const [side, colour] of sides) {
      if (!plot[side]) continue;
      traces.push({ type: "bar", name: side, x: mid, y: plot[`${side}_density`], width, opacity: 0.55,
        marker: { color: colour }, customdata: plot[side],
        hovertemplate: `%{x:.4g}: density %{y:.4g}, share %{customdata:.2%}<extra>${side}</extra>` });
    }
  } else {
    const cats = plot.categories.map(plotText);
    for (const [side, colour] of sides) {
      if (!plot[side]) continue;
      traces.push({ type: "bar", name: side, x: cats, y: plot[side], opacity: 0.8, marker: { color: colour },
        hovertemplate: `%{x}: %{y:.2%}<extra>${side}</extra>` });
    }
  }
  const layout = {
    margin: { l: 56, r: 12, t: 8, b: 48 },
    barmode: plot.type === "histogram" ? "overlay" : "group",
    bargap: plot.type === "histogram" ? 0 : 0.15,
    showlegend: true,
    legend: { orientation: "h", y: 1.12, x: 0 },
    xaxis: { title: { text: plotText(plot.label || d.feature), font: { size: 11 } }, automargin: true,
      type: plot.type === "histogram" ? "linear" : "category" },
    yaxis: { title: { text: plot.type === "histogram" ? "density" : "share", font: { size: 11 } },
      tickformat: plot.type === "histogram" ? undefined : ".0%", rangemode: "tozero" },
  };
  return { traces, layout };
}

// The buckets holding any drift point, newest first: the windows a user can pick.
function bucketsWithData(data) {
  const out = [];
  data.t.forEach((t, j) => {
    if (data.features.some((f) => typeof f.worst[j] === "number")) out.push(t);
  });
  return out.reverse();
}

async function drawDistribution(box, ctx, data, feature, at) {
  const range = at === "all" ? { start: data.start, end: data.end } : { start: at, end: Math.min(at + data.step, data.end) };
  let d;
  try {
    d = await api("views/distribution", { project: ctx.project, model: ctx.model, version: ctx.version, feature,
      start: range.start, end: range.end });
  } catch (error) {
    box.replaceChildren(el("div", { class: "error", role: "alert" }, error.message));
    return null;
  }
  if (!ctx.isCurrent()) return null;
  const t = d.test;
  const facts = el("dl", { class: "drift-facts" },
    el("dt", {}, "window"), el("dd", {}, `${fmtTime(d.start)} – ${fmtTime(d.end)}`),
    el("dt", {}, "windows"), el("dd", { "data-merged": d.windows.merged, "data-total": d.windows.total },
      `merged ${d.windows.merged} of ${d.windows.total} windows` +
      (d.windows.total > d.windows.merged ? ` (at most ${d.windows.cap}, evenly spread)` : "")),
    el("dt", {}, "rows"), el("dd", {}, `reference ${d.rows.reference ?? "–"}, current ${d.rows.current}`));
  const verdict = t
    ? el("table", { class: "data drift-test" },
      el("thead", {}, el("tr", {}, ["test", t.statistic_name, "p-value", "p adjusted", t.effect_name || "effect", "drift"]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, el("tr", { "data-test": t.method || "" },
        el("td", {}, t.method || t.status),
        el("td", { class: "num", "data-statistic": t.statistic ?? "" }, fmtNum(t.statistic)),
        el("td", { class: "num", "data-p-value": t.p_value ?? "" }, fmtP(t.p_value)),
        el("td", { class: "num" }, fmtP(t.p_adjusted)),
        el("td", { class: "num" }, fmtNum(t.effect)),
        el("td", { "data-detected": String(t.detected) },
          t.detected === null ? "not compared" : el("span", { class: `badge ${t.detected ? "bad" : "ok"}` },
            t.detected ? "drifted" : "no drift")))))
    : null;
  const chart = el("div", { class: "chart tall drift-dist" });
  box.replaceChildren(facts, verdict || "", d.message ? el("p", { class: "muted" }, d.message) : "",
    d.plot ? chart : empty("No distribution to show for this column."));
  box.dataset.feature = d.feature;
  if (d.plot) {
    const { traces, layout } = distributionFigure(d);
    await Plotly.react(chart, traces, layout, CONFIG);
  }
  return chart;
}

export async function render(root, ctx) {
  const data = await api("views/drift", { project: ctx.project, model: ctx.model, version: ctx.version,
    start: ctx.range.start, end: ctx.range.end });
  if (!ctx.isCurrent()) return;
  const charts = [];
  const parts = [el("h1", {}, `Drift · ${data.model} v${data.version}`)];
  if (!data.features.length) {
    parts.push(empty(data.reference
      ? "No drift signals in this range: the monitor compares each window with the reference once it closes."
      : "This version has no reference profile, so nothing is compared. Log one from its training run."));
    root.replaceChildren(el("div", { class: "drift-page" }, ...parts));
    return undefined;
  }
  const names = data.features.map((f) => f.feature);
  const buckets = bucketsWithData(data);
  const feature = ctx.params.get("feature") || names[0];
  const atParam = ctx.params.get("at");
  let at = atParam === "all" ? "all" : Number(atParam);
  if (atParam !== "all" && !(Number.isFinite(at) && atParam !== null)) at = buckets.length ? buckets[0] : "all";

  const heat = el("div", { class: "chart heatmap" });
  parts.push(el("section", { class: "card", "data-panel": "heatmap" },
    el("h3", {}, "Drift by feature and time"),
    el("p", { class: "muted" }, `Each cell is the worst window of its ${data.step / 60}-minute bucket; a dot marks a ` +
      "bucket in which the feature drifted. Scores are each test's statistic (KS D for numbers, chi-squared for " +
      "categories, z for booleans), each on its own colour scale. Click a cell to compare its distributions."),
    heat));

  const share = el("div", { class: "chart" });
  const hasShare = data.dataset_drift_share.some((v) => typeof v === "number");
  parts.push(el("section", { class: "card", "data-panel": "share" }, el("h3", {}, "Share of drifted features"),
    hasShare ? share : empty("No dataset drift share in this range.")));

  const featureSelect = el("select", { name: "feature", "aria-label": "feature",
    onchange: () => ctx.setParams({ feature: featureSelect.value, at }) },
  (names.includes(feature) ? names : [feature, ...names]).map((n) => el("option", { value: n, selected: n === feature }, n)));
  const windowSelect = el("select", { name: "at", "aria-label": "window",
    onchange: () => ctx.setParams({ feature, at: windowSelect.value }) },
  el("option", { value: "all", selected: at === "all" }, "the whole range"),
  (buckets.includes(at) || at === "all" ? buckets : [at, ...buckets]).map((t) => el("option", { value: t, selected: t === at },
    `${fmtTime(t)} – ${fmtTime(t + data.step).slice(11)}`)));
  const distBox = el("div", { class: "drift-dist-box" });
  parts.push(el("section", { class: "card", "data-panel": "distribution", "data-feature": feature, "data-at": at },
    el("h3", {}, "Reference and current distribution"),
    el("div", { class: "toolbar" }, el("label", {}, "Feature ", featureSelect), el("label", {}, "Window ", windowSelect)),
    distBox));

  const rows = data.features.map((f) => el("tr", { "data-feature": f.feature, class: f.feature === feature ? "chosen" : undefined },
    el("td", {}, el("a", { href: ctx.href(location.hash.replace(/^#/, "").split("?")[0], { feature: f.feature, at }) }, f.feature)),
    el("td", {}, f.test || "–"),
    el("td", { class: "num", "data-score": f.newest.score ?? "" }, fmtNum(f.newest.score)),
    el("td", { class: "num" }, fmtP(f.newest.p_value)),
    el("td", {}, f.newest.detected === null ? "–" : el("span", { class: `badge ${f.newest.detected ? "bad" : "ok"}` },
      f.newest.detected ? "drifted" : "no drift")),
    el("td", { class: "num", "data-drifted-buckets": f.drifted_buckets }, `${f.drifted_buckets} of ${buckets.length}`)));
  parts.push(el("section", { class: "card", "data-panel": "features" }, el("h3", {}, "Features, most drifted first"),
    el("table", { class: "data" }, el("thead", {}, el("tr", {}, ["feature", "test", "newest score", "p-value", "newest",
      "buckets drifted"].map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows))));
  root.replaceChildren(el("div", { class: "drift-page" }, ...parts));

  const fig = heatmapFigure(data);
  heat.style.height = `${fig.layout.height}px`; // the chart grows with the features, not the stylesheet's 260 px
  await Plotly.react(heat, fig.traces, fig.layout, CONFIG);
  charts.push(heat);
  heat.on("plotly_click", (event) => {
    const p = event.points && event.points[0];
    if (!p) return;
    let name;
    let t;
    if (p.data.type === "heatmap") {
      const [row, col] = p.pointNumber;
      name = p.data.meta[row];
      t = data.t[col];
    } else if (Array.isArray(p.customdata)) {
      [name, t] = p.customdata;
    }
    if (name !== undefined && t !== undefined) ctx.setParams({ feature: name, at: t });
  });
  if (hasShare) {
    await timeChart(share, [line("drifted features (worst window)", data.t, data.dataset_drift_share)],
      { unit: "share", events: data.events, range: data });
    charts.push(share);
  }
  const distChart = await drawDistribution(distBox, ctx, data, feature, at);
  if (distChart) charts.push(distChart);
  return () => charts.forEach((c) => window.Plotly && Plotly.purge(c));
}
