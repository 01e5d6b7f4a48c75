// A deployment's sampled request/response rows, newest first: every error the SDK kept and a share of the
// other requests, filterable by route, errors only and the outputs' label (in the address, so a filtered view
// can be shared), with a free-text search over the rows shown. A row's click shows its whole record as JSON.
//
// Rows come from GET /api/v1/samples (the filters are the server's); the routes and the counts per route and
// status in the range from GET /api/v1/views/samples. Paging goes back in time: "Older" asks for the rows
// before the oldest one shown (before=<its t>, kept in the address).

import { api, el, empty, fmtNum, fmtTime } from "../lib.js";

const PAGE = 50;

// A cell value as short text: strings as they are, numbers to 6 significant digits, the rest as JSON.
function short(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

// Inputs or outputs as "key=value, key=value" (a record), or the value itself.
function compact(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "object" && !Array.isArray(value)) {
    return Object.entries(value).map(([k, v]) => `${k}=${short(v)}`).join(", ");
  }
  return short(value);
}

function statusBadge(status) {
  const ok = status === "ok";
  return el("span", { class: `badge ${ok ? "ok" : "bad"}`, "data-status": status ?? "" }, status ?? "no status");
}

export async function render(root, ctx) {
  const p = ctx.params;
  const errorsOnly = p.get("errors") === "1";
  const route = p.get("route") || undefined;
  const label = p.get("label") || undefined;
  const search = (p.get("q") || "").trim();
  const before = Number(p.get("before"));
  const paged = p.has("before") && Number.isFinite(before) && before < ctx.range.end;
  const end = paged ? before : ctx.range.end;
  const subject = `model:${ctx.model}@${ctx.version}`;

  const [counts, found] = await Promise.all([
    api("views/samples", { project: ctx.project, model: ctx.model, version: ctx.version,
      start: ctx.range.start, end: ctx.range.end }),
    api("samples", { project: ctx.project, subject, route, status: errorsOnly ? "error" : undefined, label,
      start: ctx.range.start, end, limit: PAGE }),
  ]);
  if (!ctx.isCurrent()) return;

  const needle = search.toLowerCase();
  const rows = needle
    ? found.rows.filter((r) => JSON.stringify(r.data).toLowerCase().includes(needle) || (r.endpoint || "").toLowerCase().includes(needle))
    : found.rows;

  // past the server's bound the counts are of the newest rows only: shown as lower bounds ("5000+")
  const plus = counts.capped ? "+" : "";
  const routeCount = counts.routes.find((r) => r.route === route);
  const errorCount = route ? (routeCount ? routeCount.errors : 0) : counts.errors;
  const errorsBox = el("input", { type: "checkbox", name: "errors", checked: errorsOnly,
    onchange: () => ctx.setParams({ errors: errorsBox.checked ? "1" : null, before: null }) });
  const routeSelect = el("select", { name: "route", onchange: () => ctx.setParams({ route: routeSelect.value, before: null }) },
    el("option", { value: "" }, `all routes (${counts.rows}${plus})`),
    counts.routes.map((r) => el("option", { value: r.route, selected: r.route === route }, `${r.route} (${r.rows}${plus})`)));
  if (route && !routeCount) routeSelect.append(el("option", { value: route, selected: true }, `${route} (0)`));
  const labelInput = el("input", { type: "text", name: "label", value: label || "", size: 8, placeholder: "any",
    onchange: () => ctx.setParams({ label: labelInput.value.trim(), before: null }) });
  const searchInput = el("input", { type: "search", name: "q", value: search, size: 24, placeholder: "text in the rows shown",
    onchange: () => ctx.setParams({ q: searchInput.value.trim() }) });
  const toolbar = el("div", { class: "toolbar samples-filters" },
    el("label", {}, errorsBox, `errors only (${errorCount}${plus})`),
    el("label", {}, "route ", routeSelect),
    el("label", { title: "the outputs' label, as text" }, "label ", labelInput),
    el("label", {}, "search ", searchInput));

  const statuses = el("p", { class: "muted samples-statuses" }, counts.rows
    ? [counts.capped ? `The newest ${counts.rows} sampled rows of the range: ` : "In the range: ",
      counts.statuses.map((s, i) => [i ? ", " : "", statusBadge(s.status), ` ${s.rows}`])]
    : "No sampled rows in the range.");

  const summary = [`${found.rows.length} row${found.rows.length === 1 ? "" : "s"}`];
  if (paged) summary.push(` before ${fmtTime(before)}`);
  if (needle) summary.push(`, ${rows.length} matching “${search}”`);
  if (found.scan_limited) summary.push(` (label filter read the newest ${found.scan_limit} rows only)`);
  const pager = el("div", { class: "toolbar samples-pager" },
    el("span", { class: "muted", "data-shown": rows.length }, summary),
    el("span", { class: "pages" },
      paged ? el("button", { type: "button", "data-page": "newest", onclick: () => ctx.setParams({ before: null }) }, "← Newest") : "",
      found.truncated && found.rows.length
        ? el("button", { type: "button", "data-page": "older",
          onclick: () => ctx.setParams({ before: found.rows[found.rows.length - 1].t }) }, "Older →")
        : ""));

  const parts = [el("h1", {}, `Samples of ${ctx.model} v${ctx.version}`), toolbar, statuses, pager];
  if (!rows.length) {
    parts.push(empty(found.rows.length ? "No row shown matches the search." : "No sampled row matches these filters in the range."));
  } else {
    parts.push(sampleTable(rows));
  }
  root.replaceChildren(...parts);
}

function sampleTable(rows) {
  const head = el("tr", {}, ["Time", "Route", "Status", "Latency", "Error", "Inputs", "Outputs"]
    .map((title) => el("th", { scope: "col" }, title)));
  const body = el("tbody");
  for (const r of rows) {
    const d = r.data || {};
    const tr = el("tr", { class: "sample", tabindex: "0", "data-sample": r.sample_id, "aria-expanded": "false" },
      el("td", { class: "nowrap" }, fmtTime(r.t)),
      el("td", {}, r.endpoint ?? r.key),
      el("td", {}, statusBadge(d.status)),
      el("td", { class: "num" }, typeof d.latency_ms === "number" ? fmtNum(d.latency_ms, "ms") : "–"),
      el("td", { class: "error-text" }, d.error ?? ""),
      el("td", { class: "kv" }, compact(d.inputs)),
      el("td", { class: "kv" }, compact(d.outputs)));
    let detail = null;
    const toggle = () => {
      if (detail) {
        detail.remove();
        detail = null;
        tr.setAttribute("aria-expanded", "false");
        return;
      }
      const record = { sample_id: r.sample_id, run_id: r.run_id, key: r.key, ...d };
      detail = el("tr", { class: "sample-detail" },
        el("td", { colspan: 7 }, el("pre", { class: "sample-json" }, JSON.stringify(record, null, 2))));
      tr.after(detail);
      tr.setAttribute("aria-expanded", "true");
    };
    tr.addEventListener("click", (event) => {
      if (window.getSelection && String(window.getSelection()) !== "") return; // selecting text, not opening
      if (event.target.closest("a, button, input")) return;
      toggle();
    });
    tr.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        toggle();
      }
    });
    body.append(tr);
  }
  return el("table", { class: "data samples" }, el("thead", {}, head), body);
}
