// A deployment's predictions and performance: what the model answered over time (confidence quartiles as a
// band around the median, mean prediction, positive rate, low-confidence rate, class shares), its labelled
// performance with the 95% intervals as bands and the training baselines dashed, the labels' arrival, and
// the outputs' distributions in the newest bucket against the reference. Panels without data say why.

import { api, el, empty, fmtNum, fmtTime, line, plotText, statusDot, timeChart, COLOURS } from "../lib.js";

const NAMES = {
  confidence_p50: "median confidence", confidence_p25: "confidence p25", confidence_p75: "confidence p75",
  confidence_mean: "mean confidence", prediction_mean: "mean prediction", positive_rate: "positive rate",
  low_confidence_rate: "low-confidence rate", accuracy: "accuracy", accuracy_baseline: "accuracy at training",
  roc_auc: "ROC AUC", roc_auc_baseline: "ROC AUC at training", f1: "F1", precision: "precision", recall: "recall",
  f1_baseline: "F1 at training", mae: "MAE", rmse: "RMSE", mae_baseline: "MAE at training",
  rmse_baseline: "RMSE at training", labelled_rows: "labelled predictions", label_pending_rate: "awaiting a label",
};

// Why a panel can be empty, in the words of the signals it would show.
const EMPTY = {
  confidence: "No confidence signals: they come from a score in [0, 1] or an output named like a probability.",
  outputs: "No prediction signals in this range.",
  classes: "No class shares: they come from categorical or boolean outputs, and this model's outputs are numbers.",
  accuracy: "No labelled predictions in this range (accuracy needs labels joined to predictions).",
  roc_auc: "No ROC AUC: it needs labels and a score.",
  prf: "No labelled predictions in this range.",
  regression: "No regression errors: this model's labels are classes.",
  labelled: "No labels in this range.",
  pending: "No predictions with ids in this range, so label arrival is not tracked.",
};

// [low, high] interval signals drawn as a band behind their metric.
const BANDS = {
  accuracy_ci_low: ["accuracy", "accuracy_ci_high"], roc_auc_ci_low: ["roc_auc", "roc_auc_ci_high"],
  mae_ci_low: ["mae", "mae_ci_high"], confidence_p25: ["confidence_p50", "confidence_p75"],
};
const UPPER = new Set(Object.values(BANDS).map(([, high]) => high));

function labelText(s) {
  const base = NAMES[s.name] || s.name;
  const rest = Object.entries(s.labels).filter(([k]) => k !== "output" && k !== "class").map(([k, v]) => `${k}=${v}`);
  const parts = [];
  if (s.labels.output) parts.push(s.labels.output);
  if (s.labels.class !== undefined) parts.push(`class ${s.labels.class}`);
  return [parts.join(" "), base, rest.join(", ")].filter(Boolean).join(" · ");
}

function translucent(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

function sameLabels(a, b) {
  return JSON.stringify(a.labels) === JSON.stringify(b.labels);
}

function traces(panel) {
  const out = [];
  const bands = [];
  let colour = 0;
  const colours = new Map();
  const colourOf = (s) => {
    const key = `${s.name}|${JSON.stringify(s.labels)}`;
    if (!colours.has(key)) colours.set(key, COLOURS[colour++ % COLOURS.length]);
    return colours.get(key);
  };
  for (const s of panel.series) {
    if (UPPER.has(s.name)) continue;
    if (BANDS[s.name]) {
      const [main, highName] = BANDS[s.name];
      const high = panel.series.find((x) => x.name === highName && sameLabels(x, s));
      const of = panel.series.find((x) => x.name === main && sameLabels(x, s)) || s;
      if (high) bands.push([s, high, of]);
      continue;
    }
    const dashed = s.name.endsWith("_baseline");
    const extra = dashed ? { line: { dash: "dash", width: 1.5, color: colourOf({ name: s.name.replace(/_baseline$/, ""), labels: s.labels }) } }
      : { line: { width: 2, color: colourOf(s) } };
    out.push(line(labelText(s), s.t, s.v, extra));
  }
  // each interval: its low bound, then its high bound filled down to it, drawn under the lines
  for (const [low, high, of] of bands.reverse()) {
    const c = colourOf(of);
    const quiet = { line: { width: 0, color: c }, hoverinfo: "skip", hovertemplate: null };
    const what = low.name.startsWith("confidence") ? "p25–p75" : "95% interval";
    out.unshift(line(`${labelText(of)} ${what}`, high.t, high.v,
      { ...quiet, fill: "tonexty", fillcolor: translucent(c, 0.18), type: "scatter" }));
    out.unshift(line(`${labelText(of)} low`, low.t, low.v, { ...quiet, showlegend: false, type: "scatter" }));
  }
  return out;
}

function outputFigure(col) {
  const plot = col.plot;
  const data = [];
  const sides = [["reference", "#1f77b4"], ["current", "#d62728"]];
  if (plot.type === "histogram") {
    const mid = plot.edges.slice(1).map((e, i) => (e + plot.edges[i]) / 2);
    const width = plot.edges.slice(1).map((e, i) => e - plot.edges[i]);
    for (const [side, c] of sides) {
      if (plot[side]) data.push({ type: "bar", name: side, x: mid, y: plot[side], width, opacity: 0.55, marker: { color: c },
        hovertemplate: `%{x:.3g}: %{y:.2%}<extra>${side}</extra>` });
    }
  } else {
    for (const [side, c] of sides) {
      if (plot[side]) data.push({ type: "bar", name: side, x: plot.categories.map(plotText), y: plot[side], opacity: 0.8,
        marker: { color: c }, hovertemplate: `%{x}: %{y:.2%}<extra>${side}</extra>` });
    }
  }
  const layout = {
    margin: { l: 52, r: 12, t: 8, b: 40 }, height: 240, showlegend: true, legend: { orientation: "h", y: 1.15, x: 0 },
    barmode: plot.type === "histogram" ? "overlay" : "group", bargap: plot.type === "histogram" ? 0 : 0.15,
    xaxis: { title: { text: plotText(col.output), font: { size: 11 } }, type: plot.type === "histogram" ? "linear" : "category" },
    yaxis: { title: { text: "share", font: { size: 11 } }, tickformat: ".0%", rangemode: "tozero" },
  };
  return { data, layout };
}

export async function render(root, ctx) {
  const data = await api("views/predictions", { project: ctx.project, model: ctx.model, version: ctx.version,
    start: ctx.range.start, end: ctx.range.end });
  if (!ctx.isCurrent()) return undefined;
  const parts = [el("h1", {}, `Predictions and performance · ${data.model} v${data.version}`)];
  const grid = el("div", { class: "grid" });
  const charts = [];
  const labelled = data.panels.find((p) => p.key === "labelled");
  for (const panel of data.panels) {
    // a headline metric of the newest bucket is only as good as the labels behind it: say how many
    const basis = ["accuracy", "roc_auc", "prf", "regression"].includes(panel.key) && panel.current !== null && labelled
      && labelled.current !== null ? el("span", { class: "muted basis" }, `${fmtNum(labelled.current)} labelled per window`) : "";
    const chart = el("div", { class: "chart" });
    const unit = panel.unit === "share" ? "share" : "";
    grid.append(el("section", { class: "card", "data-panel": panel.key, "data-status": panel.status },
      el("h3", {}, statusDot(panel.status), panel.title,
        el("span", { class: "value", "data-current": panel.current === null ? "" : panel.current }, fmtNum(panel.current, unit)),
        basis),
      panel.series.length ? chart : empty(EMPTY[panel.key] || "No data in this range.")));
    if (panel.series.length) charts.push([chart, panel]);
  }
  parts.push(grid);

  const outs = data.outputs;
  const outCharts = [];
  const box = el("section", { class: "card", "data-panel": "output-distributions" }, el("h3", {}, "Outputs in the newest bucket"));
  if (!outs || !outs.columns.length) {
    box.append(empty("No window with outputs in this range."));
  } else {
    box.dataset.merged = outs.windows.merged;
    box.dataset.total = outs.windows.total;
    box.append(el("p", { class: "muted" }, `${fmtTime(outs.start)} – ${fmtTime(outs.end)}: merged ${outs.windows.merged} of ` +
      `${outs.windows.total} windows. Against the reference's column of the same name where it has one ` +
      "(its training labels for the predicted label); a score the reference lacks is shown alone."));
    const inner = el("div", { class: "outputs-grid" });
    for (const col of outs.columns) {
      const chart = el("div", { class: "chart" });
      const t = col.test;
      inner.append(el("div", { "data-output": col.output },
        el("h4", {}, col.output, t ? el("span", { class: "muted" }, ` · ${t.method} ${t.statistic_name} ${fmtNum(t.statistic)}, `,
          el("span", { class: `badge ${t.detected ? "bad" : "ok"}` }, t.detected ? "drifted" : "no drift")) : ""),
        col.plot ? chart : empty("No distribution for this output.")));
      if (col.plot) outCharts.push([chart, col]);
    }
    box.append(inner);
  }
  parts.push(box);
  root.replaceChildren(el("div", { class: "predictions-page" }, ...parts));

  for (const [chart, panel] of charts) {
    // confidences live in [0.5, 1]: a zero-based axis would flatten their band into a line
    const layout = panel.key === "confidence" ? { yaxis: { rangemode: "normal", automargin: true } } : undefined;
    await timeChart(chart, traces(panel), { unit: panel.unit, events: data.events, range: data, layout });
  }
  for (const [chart, col] of outCharts) {
    const { data: tr, layout } = outputFigure(col);
    await Plotly.react(chart, tr, layout, { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d", "toImage"] });
  }
  return () => [...charts, ...outCharts].forEach(([chart]) => window.Plotly && Plotly.purge(chart));
}
