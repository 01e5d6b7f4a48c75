// Every deployment (of a project, or of all), one row per model version with a sparkline and the newest
// value of its key signals, coloured by the alerts on them, and its open alerts.

import { api, el, empty, fmtAgo, fmtNum, sparkline, statusDot } from "../lib.js";

const UNITS = { traffic: "req/s", latency: "ms", errors: "share", drift: "share", performance: "share" };

export async function render(root, ctx) {
  const data = await api("views/deployments", { project: ctx.project, start: ctx.range.start, end: ctx.range.end });
  if (!ctx.isCurrent()) return;
  const heading = el("h1", {}, ctx.project ? `Deployments of ${ctx.project}` : "Deployments");
  const parts = [heading];
  if (!data.deployments.length) {
    parts.push(empty(ctx.project ? `No model of ${ctx.project} has served traffic yet.` :
      "No model has served traffic yet: watch a model with the SDK (docs/monitoring.md), or run `watchkeeper demo`."));
  }
  const byProject = new Map();
  for (const d of data.deployments) {
    if (!byProject.has(d.project)) byProject.set(d.project, []);
    byProject.get(d.project).push(d);
  }
  for (const [project, items] of byProject) {
    if (!ctx.project) parts.push(el("h2", {}, el("a", { href: ctx.href(`/p/${ctx.enc(project)}`) }, project)));
    const titles = items[0].panels.map((p) => p.title);
    const head = el("tr", {}, el("th", {}, "Model version"), el("th", {}, "Alerts"),
      titles.map((t) => el("th", {}, t)), el("th", {}, "Last window"));
    const rows = items.map((d) => {
      const link = ctx.href(`/p/${ctx.enc(d.project)}/m/${ctx.enc(d.model)}/v/${ctx.enc(d.version)}/overview`);
      const alertBadges = [];
      if (d.alerts.firing) alertBadges.push(el("span", { class: "badge firing" }, `${d.alerts.firing} firing`));
      if (d.alerts.pending) alertBadges.push(el("span", { class: "badge pending" }, `${d.alerts.pending} pending`));
      if (!alertBadges.length) alertBadges.push(el("span", { class: "badge ok" }, "none"));
      return el("tr", { "data-deployment": d.subject },
        el("td", {}, el("a", { href: link, class: "deployment" }, `${d.model} v${d.version}`),
          d.reference ? "" : el("div", { class: "muted" }, "no reference")),
        el("td", {}, alertBadges),
        d.panels.map((p) => el("td", { "data-panel": p.key },
          el("span", { class: "spark" }, statusDot(p.status), sparkline(p.t, p.v, p.status),
            el("span", { class: "v" }, fmtNum(p.current, UNITS[p.key]))))),
        el("td", { class: "muted" }, fmtAgo(d.last)));
    });
    parts.push(el("table", { class: "data health" }, el("thead", {}, head), el("tbody", {}, rows)));
    parts.push(el("p", { class: "muted" },
      el("a", { href: ctx.href("/runs", { project }) }, "Training runs"), " · ",
      el("a", { href: ctx.href("/alerts", { project }) }, "Alerts")));
  }
  root.replaceChildren(...parts);
}
