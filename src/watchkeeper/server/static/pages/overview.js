// A deployment's health: a chart per panel (traffic, latency percentiles, errors by type, drift, labelled
// performance with its interval, labels), with alert firings marked on the time axis and each panel's
// newest value coloured by the alerts on its signals.

import { api, el, empty, fmtNum, fmtTime, line, statusDot, timeChart } from "../lib.js";

const LABELS = {
  request_rate: "requests / s", latency_p50_ms: "p50", latency_p95_ms: "p95", latency_p99_ms: "p99",
  error_rate: "all errors", dataset_drift_share: "drifted features", accuracy: "accuracy",
  roc_auc: "ROC AUC", accuracy_baseline: "accuracy at training", label_pending_rate: "awaiting labels",
};

function seriesName(s) {
  if (s.name === "error_type_rate") return s.labels.error_type || "error";
  const base = LABELS[s.name] || s.name;
  const extra = Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(", ");
  return extra ? `${base} {${extra}}` : base;
}

function traces(panel) {
  const out = [];
  const band = {};
  for (const s of panel.series) {
    if (s.name === "accuracy_ci_low" || s.name === "accuracy_ci_high") {
      band[s.name] = s;
      continue;
    }
    if (s.labels.endpoint || s.labels.stage) continue; // per-endpoint series: the total is drawn
    const extra = s.name === "accuracy_baseline" ? { line: { dash: "dash", width: 1 } } : {};
    out.push(line(seriesName(s), s.t, s.v, extra));
  }
  if (band.accuracy_ci_low && band.accuracy_ci_high) {
    // the 95% interval as a shaded band: the low bound first, then the high one filled down to it
    const quiet = { line: { width: 0 }, hoverinfo: "skip", hovertemplate: null };
    out.unshift(line("accuracy 95% interval", band.accuracy_ci_high.t, band.accuracy_ci_high.v,
      { ...quiet, fill: "tonexty", fillcolor: "rgba(31,119,180,0.15)" }));
    out.unshift(line("interval low", band.accuracy_ci_low.t, band.accuracy_ci_low.v, { ...quiet, showlegend: false }));
  }
  return out;
}

export async function render(root, ctx) {
  const data = await api("views/overview", {
    project: ctx.project, model: ctx.model, version: ctx.version, start: ctx.range.start, end: ctx.range.end,
  });
  if (!ctx.isCurrent()) return;
  const parts = [el("h1", {}, `${data.model} v${data.version}`)];
  if (data.alerts.length) {
    parts.push(el("div", { class: "card", "data-open-alerts": data.alerts.length },
      el("h3", {}, "Open alerts"),
      el("ul", {}, data.alerts.map((a) => el("li", {},
        el("span", { class: `badge ${a.state}` }, a.state), " ", el("strong", {}, a.rule), " ",
        Object.entries(a.labels).filter(([k]) => !["alertname", "project", "model", "version"].includes(k))
          .map(([k, v]) => `${k}=${v}`).join(", "),
        a.summary ? el("div", { class: "muted" }, a.summary) : "",
        el("span", { class: "muted" }, ` since ${fmtTime(a.fired_at || a.active_at)}`))))));
  }
  if (data.drifting_features.length) {
    parts.push(el("p", {}, "Drifting now: ", data.drifting_features.map((f, i) => [i ? ", " : "",
      el("a", { href: ctx.href(`/p/${ctx.enc(ctx.project)}/m/${ctx.enc(ctx.model)}/v/${ctx.enc(ctx.version)}/drift`, { feature: f }) }, f)])));
  }
  const grid = el("div", { class: "grid" });
  const charts = [];
  for (const panel of data.panels) {
    const chart = el("div", { class: "chart" });
    const card = el("section", { class: "card", "data-panel": panel.key, "data-status": panel.status },
      el("h3", {}, statusDot(panel.status), panel.title,
        el("span", { class: "value", "data-current": panel.current === null ? "" : panel.current },
          fmtNum(panel.current, panel.unit === "share" ? "share" : panel.unit))),
      panel.series.length ? chart : empty("No data in this range."));
    grid.append(card);
    if (panel.series.length) charts.push([chart, panel]);
  }
  parts.push(grid);
  root.replaceChildren(...parts);
  for (const [chart, panel] of charts) {
    await timeChart(chart, traces(panel), { unit: panel.unit, events: data.events, range: data });
  }
  return () => charts.forEach(([chart]) => window.Plotly && Plotly.purge(chart));
}
