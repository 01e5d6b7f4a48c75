// Alerts of a project (or of every project the token reads): the series that fire, are pending or resolved,
// with a "Silence" action prefilled with the alert's labels; a timeline of their state changes in the range;
// the history of those changes; the notifications sent (and failed, with the error); and the silences, which
// can be expired. Address: #/alerts?project=<p>&rule=<name> (rule narrows everything to one rule).
//
// Data: GET /api/v1/alerts (current states), /alerts/history and /alerts/notifications (in the range),
// /silences; POST /silences and DELETE /silences/{id} change them.

import { api, el, empty, fmtAgo, fmtNum, fmtTime, plotText, showError } from "../lib.js";

const STATE_ORDER = { firing: 0, pending: 1, resolved: 2, inactive: 3 };
const STATE_COLOURS = { firing: "#c62828", pending: "#c27c0e", resolved: "#1a7f4b" };
const DURATIONS = [["1h", 3600], ["2h", 7200], ["4h", 4 * 3600], ["12h", 12 * 3600], ["1d", 86400], ["7d", 7 * 86400]];
// Shown elsewhere on a row (the rule's name and severity) or the same on every row of a project's page.
const HIDDEN_LABELS = new Set(["alertname", "severity", "project"]);
const HISTORY_SHOWN = 100;
const USER_KEY = "watchkeeper.user";

function labelText(labels, keepProject = false) {
  return Object.entries(labels || {}).filter(([k]) => !HIDDEN_LABELS.has(k) || (keepProject && k === "project"))
    .map(([k, v]) => `${k}=${v}`).join(", ");
}

// A series' name on the timeline's axis: the rule, the deployment as "model vN", then the other labels.
function shortName(rule, labels) {
  const rest = Object.entries(labels || {}).filter(([k]) => !HIDDEN_LABELS.has(k) && k !== "model" && k !== "version")
    .map(([k, v]) => `${k}=${v}`);
  const where = labels.model ? `${labels.model}${labels.version ? ` v${labels.version}` : ""}` : "";
  return [rule, where, rest.join(", ")].filter(Boolean).join(" · ");
}

function seriesKey(rule, labels) {
  return `${rule}\u0000${JSON.stringify(Object.entries(labels || {}).sort())}`;
}

function badge(state) {
  return el("span", { class: `badge ${state}`, "data-state": state }, state);
}

// The project an alert belongs to, as the server decides it: its project label, else its rule's project.
function projectOf(alert, fallback) {
  return alert.labels.project || alert.rule.project || fallback;
}

function deploymentLink(ctx, labels, project) {
  if (!labels.model || !labels.version || !project) return "";
  return el("a", { class: "deployment", href: ctx.href(`/p/${ctx.enc(project)}/m/${ctx.enc(labels.model)}/v/${ctx.enc(labels.version)}/overview`) },
    `${labels.model} v${labels.version}`);
}

// Whether a silence's matchers all match these labels (regular expressions match the whole value, as on the
// server; JavaScript's dialect differs from Python's in corners, so this is for display only).
function silenceMatches(silence, labels) {
  return silence.matchers.every((m) => {
    const value = labels[m.label] ?? "";
    if (m.op === "=") return value === m.value;
    if (m.op === "!=") return value !== m.value;
    let re;
    try {
      re = new RegExp(`^(?:${m.value})$`);
    } catch {
      return false;
    }
    return m.op === "=~" ? re.test(value) : !re.test(value);
  });
}

function matcherText(matchers) {
  return matchers.map((m) => `${m.label}${m.op}"${m.value}"`).join(", ");
}

export async function render(root, ctx) {
  const project = ctx.project;
  const rule = ctx.params.get("rule") || undefined;
  const range = { start: ctx.range.start, end: ctx.range.end };
  const [current, history, sent, silenceList] = await Promise.all([
    api("alerts", { project }),
    api("alerts/history", { project, rule, ...range, limit: 1000 }),
    api("alerts/notifications", { project, ...range, limit: 200 }),
    api("silences", { project }),
  ]);
  if (!ctx.isCurrent()) return;
  const redraw = async () => {
    try {
      await render(root, ctx);
    } catch (error) {
      showError(root, error);
    }
  };

  const alerts = current.alerts
    .filter((a) => a.state !== "inactive" && (!rule || a.rule.name === rule))
    .sort((a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || a.rule.name.localeCompare(b.rule.name));
  const active = silenceList.silences.filter((s) => s.state === "active");
  const notifications = sent.notifications.filter((n) => !rule || n.rule === rule);

  const title = [project ? `Alerts of ${project}` : "Alerts of every project"];
  if (rule) title.push(`: ${rule}`);
  const parts = [el("h1", {}, title)];
  if (rule) parts.push(el("p", {}, el("a", { href: ctx.href("/alerts", { project }) }, "← every rule")));
  const counts = { firing: 0, pending: 0, resolved: 0 };
  for (const a of alerts) counts[a.state] += 1;
  parts.push(el("p", { class: "alerts-counts" }, badge("firing"), ` ${counts.firing}  `, badge("pending"), ` ${counts.pending}  `,
    badge("resolved"), ` ${counts.resolved}`, el("span", { class: "muted" }, ` · ${active.length} active silence${active.length === 1 ? "" : "s"}`)));

  // -- current alerts, with the silence form under the row it was opened from
  parts.push(el("h2", {}, "Current alerts"));
  if (!alerts.length) parts.push(empty("No alert is firing, pending or resolved."));
  else parts.push(currentTable(ctx, alerts, active, project, rule, redraw));


  // -- timeline of state changes in the range
  parts.push(el("h2", {}, "Timeline"));
  const chart = el("div", { class: "chart alerts-timeline" });
  const events = [...history.events].reverse(); // oldest first
  if (events.length) parts.push(el("section", { class: "card" }, chart));
  else parts.push(empty("No state change in this range."));

  // -- history
  parts.push(el("h2", {}, "History", el("span", { class: "muted small" },
    ` ${history.events.length} change${history.events.length === 1 ? "" : "s"}${history.truncated ? " (the newest 1000)" : ""}`)));
  if (history.events.length) {
    const table = historyTable(ctx, history.events.slice(0, HISTORY_SHOWN), project);
    parts.push(table);
    if (history.events.length > HISTORY_SHOWN) {
      const more = el("button", { type: "button", "data-more": "history", onclick: () => {
        table.replaceWith(historyTable(ctx, history.events, project));
        more.remove();
      } }, `Show all ${history.events.length} changes`);
      parts.push(el("div", { class: "toolbar" }, more));
    }
  }

  // -- notifications
  parts.push(el("h2", {}, "Notifications", el("span", { class: "muted small" },
    ` ${notifications.length}${sent.truncated ? " (the newest 200)" : ""}`)));
  if (notifications.length) parts.push(notificationTable(notifications));
  else parts.push(empty("No notification was sent in this range."));

  // -- silences
  parts.push(el("h2", {}, "Silences"));
  if (silenceList.silences.length) parts.push(silenceTable(silenceList.silences, redraw));
  else parts.push(empty("No silence."));

  root.replaceChildren(...parts);
  if (events.length) await drawTimeline(chart, events, range);
  return () => window.Plotly && Plotly.purge(chart);
}

function currentTable(ctx, alerts, active, project, rule, redraw) {
  const head = el("tr", {}, ["State", "Rule", "Labels", "Value", "Since", "Last notified", ""].map((t) => el("th", { scope: "col" }, t)));
  const body = el("tbody");
  for (const a of alerts) {
    const since = a.state === "firing" ? a.fired_at : a.state === "pending" ? a.active_at : a.resolved_at;
    const silencedBy = active.filter((s) => silenceMatches(s, a.labels));
    const owner = projectOf(a, project);
    const silenceButton = el("button", { type: "button", class: "silence", onclick: () => {
      const open = tr.nextElementSibling && tr.nextElementSibling.classList.contains("silence-form") ? tr.nextElementSibling : null;
      if (open) {
        open.remove();
        return;
      }
      const form = silenceForm(a, owner, redraw, () => formRow.remove());
      const formRow = el("tr", { class: "silence-form" }, el("td", { colspan: 7 }, form));
      tr.after(formRow);
      form.querySelector("[name=created_by]").focus();
    } }, "Silence");
    const tr = el("tr", { "data-alert": a.rule.name, "data-state": a.state },
      el("td", {}, badge(a.state), silencedBy.length ? el("span", { class: "badge silenced", title: matcherText(silencedBy[0].matchers) }, "silenced") : ""),
      el("td", {}, rule ? a.rule.name : el("a", { href: ctx.href("/alerts", { project, rule: a.rule.name }) }, a.rule.name),
        a.rule.spec && a.rule.spec.severity ? el("div", { class: "muted" }, a.rule.spec.severity) : ""),
      el("td", { class: "kv" }, labelText(a.labels, !project), el("div", {}, deploymentLink(ctx, a.labels, owner))),
      el("td", { class: "num" }, fmtNum(a.last_value)),
      el("td", { class: "nowrap", title: fmtTime(since) }, fmtTime(since), el("div", { class: "muted" }, fmtAgo(since))),
      el("td", { class: "nowrap" }, a.last_notified_at ? fmtTime(a.last_notified_at) : "never"),
      el("td", {}, a.state === "resolved" ? "" : silenceButton));
    body.append(tr);
  }
  return el("table", { class: "data alerts-current" }, el("thead", {}, head), body);
}

// The form that silences alerts like this one: its labels as matchers (each can be left out), a duration, who
// and why; POSTs /api/v1/silences and redraws the page.
function silenceForm(alert, project, redraw, close) {
  const matchers = [["alertname", alert.rule.name], ...Object.entries(alert.labels).filter(([k]) => k !== "alertname")];
  const boxes = matchers.map(([label, value]) => {
    const box = el("input", { type: "checkbox", checked: true, "data-label": label });
    return { box, label, value, item: el("label", { class: "matcher" }, box, ` ${label}="${value}"`) };
  });
  const duration = el("select", { name: "duration" }, DURATIONS.map(([name, s]) => el("option", { value: s, selected: name === "2h" }, name)));
  const who = el("input", { type: "text", name: "created_by", required: true, size: 16, value: localStorage.getItem(USER_KEY) || "",
    placeholder: "your name" });
  const comment = el("input", { type: "text", name: "comment", size: 40, placeholder: "why (optional)" });
  const message = el("div", { class: "form-message", role: "status" });
  const submit = el("button", { type: "submit" }, "Create silence");
  const form = el("form", { class: "silence-form", onsubmit: async (event) => {
    event.preventDefault();
    const chosen = boxes.filter((b) => b.box.checked).map((b) => ({ label: b.label, op: "=", value: b.value }));
    if (!chosen.length) {
      message.replaceChildren(el("span", { class: "error" }, "Keep at least one matcher: a silence with none would silence every alert."));
      return;
    }
    const body = { matchers: chosen, duration: Number(duration.value), created_by: who.value.trim(), comment: comment.value };
    if (project) body.project = project;
    submit.disabled = true;
    try {
      await api("silences", {}, { method: "POST", body });
      localStorage.setItem(USER_KEY, body.created_by);
      await redraw();
    } catch (error) {
      submit.disabled = false;
      message.replaceChildren(el("span", { class: "error" }, error.message));
    }
  } },
  el("div", { class: "matchers" }, el("strong", {}, "Silence alerts matching "), boxes.map((b) => b.item)),
  el("div", { class: "toolbar" },
    el("label", {}, "for ", duration), el("label", {}, "by ", who), el("label", {}, "comment ", comment), submit,
    el("button", { type: "button", onclick: close }, "Cancel"),
    project ? el("span", { class: "muted" }, `in project ${project}`) : el("span", { class: "muted" }, "in every project")),
  message);
  return form;
}

function historyTable(ctx, events, project) {
  const head = el("tr", {}, ["Time", "Rule", "Labels", "Change", "Value"].map((t) => el("th", { scope: "col" }, t)));
  const body = el("tbody", {}, events.map((e) => el("tr", { "data-event": e.to_state },
    el("td", { class: "nowrap" }, fmtTime(e.t)),
    el("td", {}, e.rule),
    el("td", { class: "kv" }, labelText(e.labels, !project), el("div", {}, deploymentLink(ctx, e.labels, e.labels.project || e.project || project))),
    el("td", { class: "nowrap" }, badge(e.from_state), " → ", badge(e.to_state)),
    el("td", { class: "num" }, fmtNum(e.value)))));
  return el("table", { class: "data alerts-history" }, el("thead", {}, head), body);
}

function notificationTable(notifications) {
  const head = el("tr", {}, ["Time", "Rule", "Labels", "Notifier", "Status", "Error", "Payload"].map((t) => el("th", { scope: "col" }, t)));
  const body = el("tbody", {}, notifications.map((n) => el("tr", { "data-notifier": n.notifier, "data-status": n.status },
    el("td", { class: "nowrap" }, fmtTime(n.t)),
    el("td", {}, n.rule ?? "several rules"),
    el("td", { class: "kv" }, labelText(n.labels)),
    el("td", {}, n.notifier),
    el("td", {}, el("span", { class: `badge ${n.status === "sent" ? "ok" : "bad"}` }, n.status)),
    el("td", { class: "error-text" }, n.error ?? ""),
    el("td", {}, el("details", {}, el("summary", {}, n.payload && n.payload.title ? n.payload.title : "payload"),
      el("pre", { class: "cell" }, JSON.stringify(n.payload, null, 2)))))));
  return el("table", { class: "data alerts-notifications" }, el("thead", {}, head), body);
}

function silenceTable(list, redraw) {
  const head = el("tr", {}, ["State", "Matchers", "Project", "Starts", "Ends", "Created by", "Comment", ""].map((t) => el("th", { scope: "col" }, t)));
  const body = el("tbody", {}, list.map((s) => {
    const message = el("div", { class: "form-message" });
    const expire = el("button", { type: "button", class: "expire", onclick: async () => {
      expire.disabled = true;
      try {
        await api(`silences/${encodeURIComponent(s.id)}`, {}, { method: "DELETE" });
        await redraw();
      } catch (error) {
        expire.disabled = false;
        message.replaceChildren(el("span", { class: "error" }, error.message));
      }
    } }, "Expire");
    return el("tr", { "data-silence": s.id, "data-state": s.state },
      el("td", {}, el("span", { class: `badge ${s.state === "active" ? "warn" : s.state === "pending" ? "" : "ok"}` }, s.state)),
      el("td", { class: "kv" }, matcherText(s.matchers)),
      el("td", {}, s.project ?? "every project"),
      el("td", { class: "nowrap" }, fmtTime(s.starts_at)),
      el("td", { class: "nowrap" }, fmtTime(s.ends_at)),
      el("td", {}, s.created_by),
      el("td", { class: "error-text" }, s.comment),
      el("td", {}, s.state === "expired" ? "" : expire, message));
  }));
  return el("table", { class: "data alerts-silences" }, el("thead", {}, head), body);
}

// One row per alert series; a thick segment while it was pending or firing, a marker where it resolved.
async function drawTimeline(div, events, range) {
  const series = new Map();
  for (const e of events) {
    const key = seriesKey(e.rule, e.labels);
    if (!series.has(key)) series.set(key, { name: shortName(e.rule, e.labels), events: [] });
    series.get(key).events.push(e);
  }
  const rows = [...series.values()].sort((a, b) => a.name.localeCompare(b.name));
  const seg = { pending: { x: [], y: [], text: [] }, firing: { x: [], y: [], text: [] } };
  const resolved = { x: [], y: [], text: [] };
  const ticks = rows.map((_, i) => i);
  rows.forEach((s, row) => {
    // the state before the first change in the range, then each change's state until the next change
    let state = s.events[0].from_state;
    let since = range.start;
    const close = (until) => {
      if (seg[state] && until > since) {
        const text = `${plotText(s.name)}<br>${state} ${plotText(fmtTime(since))} – ${plotText(fmtTime(until))}`;
        seg[state].x.push(since * 1000, until * 1000, null);
        seg[state].y.push(row, row, null);
        seg[state].text.push(text, text, null);
      }
    };
    for (const e of s.events) {
      close(e.t);
      state = e.to_state;
      since = e.t;
      if (state === "resolved") {
        resolved.x.push(e.t * 1000);
        resolved.y.push(row);
        resolved.text.push(`${plotText(s.name)}<br>resolved ${plotText(fmtTime(e.t))}`);
      }
    }
    close(range.end);
  });
  const traces = ["pending", "firing"].map((state) => ({
    type: "scatter", mode: "lines", name: state, x: seg[state].x, y: seg[state].y, text: seg[state].text,
    line: { color: STATE_COLOURS[state], width: 14 }, hovertemplate: "%{text}<extra></extra>", connectgaps: false,
  }));
  traces.push({ type: "scatter", mode: "markers", name: "resolved", x: resolved.x, y: resolved.y, text: resolved.text,
    marker: { color: STATE_COLOURS.resolved, size: 11, symbol: "line-ns-open", line: { width: 3 } },
    hovertemplate: "%{text}<extra></extra>" });
  div.style.height = `${90 + 34 * rows.length}px`;
  const layout = {
    margin: { l: 20, r: 12, t: 8, b: 30 },
    showlegend: true,
    legend: { orientation: "h", y: 1.02, yanchor: "bottom", x: 0, font: { size: 11 } },
    hovermode: "closest",
    xaxis: { type: "date", range: [range.start * 1000, range.end * 1000] },
    yaxis: { tickvals: ticks, ticktext: rows.map((s) => plotText(s.name)), range: [rows.length - 0.5, -0.5],
      automargin: true, fixedrange: true, zeroline: false },
  };
  await Plotly.react(div, traces, layout, { displaylogo: false, responsive: true,
    modeBarButtonsToRemove: ["lasso2d", "select2d", "toImage"] });
}
