// Training runs, W&B-style: the project's runs with a checkbox each (the ticked ids are kept in the address,
// #/runs?project=..&ids=a,b), a chart per logged key with every ticked run overlaid (x: step, time since the
// run started, or wall time), keys grouped by their prefix ("train/", "val/"), and the runs' config and
// summary side by side with the rows whose values differ highlighted. Run names, keys and values are user
// text: shown through el() text nodes, and in charts through plotText().

import { api, COLOURS, el, empty, fmtNum, fmtTime, plotText } from "../lib.js";

const X_MODES = [["step", "Step"], ["relative", "Time since start"], ["time", "Wall time"]];

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

// A config or summary value (in the store's tagged JSON form) as text.
export function cellText(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 1 && "$float" in value) {
    return value.$float === "nan" ? "NaN" : value.$float === "inf" ? "∞" : value.$float === "-inf" ? "-∞" : String(value.$float);
  }
  // one line with a space after each comma and colon (newlines inside strings stay escaped as \n)
  return JSON.stringify(value, null, 1).replace(/\n\s*/g, " ");
}

function summaryText(summary) {
  const parts = [];
  for (const [key, value] of Object.entries(summary || {})) {
    if (typeof value !== "number") continue;
    parts.push(`${key} ${fmtNum(value)}`);
    if (parts.length === 3) break;
  }
  return parts.join(" · ");
}

function swatch(colour) {
  return el("span", { class: "run-swatch", style: { background: colour }, "aria-hidden": "true" });
}

function runsTable(all, chosen, colourOf, ctx, max) {
  const toggle = (id, on) => {
    const next = chosen.filter((x) => x !== id);
    if (on) next.push(id);
    ctx.setParams({ ids: next.join(",") || null });
  };
  const full = chosen.length >= max;
  const head = el("tr", {}, ["", "Name", "State", "Job type", "Model", "Created", "Duration", "Summary"]
    .map((t) => el("th", { scope: "col" }, t)));
  const rows = all.map((r) => {
    const on = chosen.includes(r.id);
    const box = el("input", { type: "checkbox", checked: on, disabled: !on && full, "data-run": r.id,
      "aria-label": `compare ${r.name}`, title: !on && full ? `at most ${max} runs at once` : undefined,
      onchange: (event) => toggle(r.id, event.target.checked) });
    return el("tr", { class: on ? "selected" : undefined, "data-run": r.id },
      el("td", {}, box, on ? swatch(colourOf(r.id)) : ""),
      el("td", {}, el("span", { class: "run-name" }, r.name), el("div", { class: "muted mono" }, r.id.slice(0, 8))),
      el("td", {}, el("span", { class: `badge state-${r.state}` }, r.state)),
      el("td", {}, r.job_type || "–"),
      el("td", {}, r.model ? `${r.model}${r.version ? ` v${r.version}` : ""}` : "–"),
      el("td", { title: fmtTime(r.created_at) }, fmtTime(r.created_at)),
      el("td", { class: "num" }, fmtDuration(r.duration)),
      el("td", { class: "muted" }, summaryText(r.summary)));
  });
  return el("table", { class: "data runs-table" }, el("thead", {}, head), el("tbody", {}, rows));
}

function traces(key, runs, mode, colourOf) {
  return key.runs.map((s) => {
    const run = runs.get(s.run_id);
    const x = mode === "step" ? s.step : mode === "relative" ? s.t.map((t) => t - run.created_at) : s.t.map((t) => t * 1000);
    const name = plotText(run.name);
    return {
      type: "scattergl", mode: s.v.length === 1 ? "markers" : "lines", name, x,
      y: s.v.map((v) => (v === "inf" || v === "-inf" ? null : v)),
      line: { color: colourOf(s.run_id), width: 1.8 }, marker: { color: colourOf(s.run_id) },
      connectgaps: false, hovertemplate: `%{y:.4g}<extra>${name}</extra>`, meta: { run: s.run_id },
    };
  });
}

function chart(div, key, runs, mode, colourOf) {
  const xaxis = mode === "time" ? { type: "date" }
    : { title: { text: mode === "step" ? "step" : "seconds since the run started", font: { size: 11 } } };
  // steps are whole numbers: no ticks between them on a short run
  const lastStep = Math.max(0, ...key.runs.map((s) => s.step[s.step.length - 1] || 0));
  if (mode === "step" && lastStep <= 10) xaxis.dtick = 1;
  return Plotly.react(div, traces(key, runs, mode, colourOf), {
    margin: { l: 52, r: 12, t: 8, b: 36 }, height: 240, showlegend: false, hovermode: "x unified",
    xaxis: { ...xaxis, zeroline: false }, yaxis: { automargin: true },
  }, { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d", "toImage"] });
}

function sideBySide(title, name, rows, selected, colourOf) {
  const onlyDiff = el("input", { type: "checkbox", "data-only-diff": name });
  const head = el("tr", {}, el("th", { scope: "col" }, "Key"),
    selected.map((r) => el("th", { scope: "col" }, swatch(colourOf(r.id)), " ", r.name)));
  const body = rows.map((row) => el("tr", { class: row.differs ? "diff" : undefined, "data-key": row.key },
    el("td", { class: "mono key" }, row.key),
    selected.map((r) => el("td", { class: row.missing.includes(r.id) ? "muted" : undefined },
      row.missing.includes(r.id) ? "–" : cellText(row.values[r.id])))));
  const tbl = el("table", { class: "data side-by-side", "data-table": name }, el("thead", {}, head), el("tbody", {}, body));
  onlyDiff.addEventListener("change", () => tbl.classList.toggle("only-diff", onlyDiff.checked));
  const differing = rows.filter((r) => r.differs).length;
  return el("section", { class: "card" },
    el("h3", {}, title, el("span", { class: "muted" }, `${differing} of ${rows.length} keys differ`),
      el("label", { class: "only-diff-toggle" }, onlyDiff, " only differing keys")),
    rows.length ? tbl : empty(`The selected runs have no ${name}.`));
}

export async function render(root, ctx) {
  const chosen = (ctx.params.get("ids") || "").split(",").map((x) => x.trim()).filter(Boolean);
  const mode = X_MODES.some(([m]) => m === ctx.params.get("x")) ? ctx.params.get("x") : "step";
  const data = await api("views/runs", { project: ctx.project, ids: chosen.length ? chosen.join(",") : undefined });
  if (!ctx.isCurrent()) return;
  const selected = data.selected;
  const ids = selected.map((r) => r.id);
  const colourOf = (id) => COLOURS[Math.max(0, ids.indexOf(id)) % COLOURS.length];
  const byId = new Map(selected.map((r) => [r.id, r]));
  const all = [...data.runs, ...selected.filter((r) => !data.runs.some((x) => x.id === r.id))];

  const parts = [el("h1", {}, ctx.project ? `Runs of ${ctx.project}` : "Runs")];
  if (!all.length) {
    parts.push(empty(ctx.project ? `No run in ${ctx.project} yet.` : "No run yet: log one with watchkeeper.init()."));
    root.replaceChildren(...parts);
    return;
  }
  const training = data.runs.filter((r) => r.job_type === "train").slice(0, data.max_compared).map((r) => r.id);
  parts.push(el("div", { class: "toolbar" },
    el("label", {}, "x axis ", el("select", { "aria-label": "x axis", "data-x": "",
      onchange: (event) => ctx.setParams({ x: event.target.value === "step" ? null : event.target.value }) },
    X_MODES.map(([m, title]) => el("option", { value: m, selected: m === mode }, title)))),
    training.length ? el("button", { type: "button", onclick: () => ctx.setParams({ ids: training.join(",") }) },
      "Select the training runs") : "",
    ids.length ? el("button", { type: "button", onclick: () => ctx.setParams({ ids: null }) }, "Clear selection") : "",
    el("span", { class: "muted" }, `${ids.length} of at most ${data.max_compared} runs selected`
      + (data.truncated ? `; the newest ${data.limit} runs are listed` : ""))));
  parts.push(runsTable(all, ids, colourOf, ctx, data.max_compared));

  const charts = [];
  if (!ids.length) {
    parts.push(empty("Tick runs to chart their logged keys and compare their config."));
  } else {
    parts.push(el("div", { class: "legend-runs" }, selected.map((r) => el("span", { class: "legend-run" },
      swatch(colourOf(r.id)), r.name))));
    const groups = new Map();
    for (const key of data.keys) {
      if (!groups.has(key.group)) groups.set(key.group, []);
      groups.get(key.group).push(key);
    }
    if (!data.keys.length) parts.push(empty("The selected runs logged no keys."));
    for (const [group, keys] of groups) {
      parts.push(el("h2", { "data-group": group }, group ? `${group}/` : "Other keys",
        el("span", { class: "muted" }, ` ${keys.length} chart${keys.length === 1 ? "" : "s"}`)));
      const grid = el("div", { class: "grid runs-grid" });
      for (const key of keys) {
        const div = el("div", { class: "chart run-chart", "data-key": key.key });
        const thinned = key.runs.filter((s) => s.width > 1);
        grid.append(el("section", { class: "card", "data-key": key.key }, el("h3", {}, key.key,
          thinned.length ? el("span", { class: "muted", title: "long series are shown as bucket means" },
            `mean per ${Math.max(...thinned.map((s) => s.width))} steps`) : ""), div));
        charts.push([div, key]);
      }
      parts.push(grid);
    }
    parts.push(el("h2", {}, "Config and summary"),
      el("div", { class: "grid side-by-side-grid" },
        sideBySide("Config", "config", data.config, selected, colourOf),
        sideBySide("Summary", "summary", data.summary, selected, colourOf)));
  }
  root.replaceChildren(...parts);
  for (const [div, key] of charts) await chart(div, key, byId, mode, colourOf);
  return () => {
    for (const [div] of charts) if (window.Plotly) Plotly.purge(div);
  };
}
