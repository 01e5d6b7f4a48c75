// Shared helpers of the dashboard's pages: building DOM safely, calling the API, formatting, and charts.
//
// Everything a user logged (feature names, error texts, run names, table cells) reaches the page through
// el()/text nodes (shown as text, never parsed as HTML) or, in charts, through plotText() (plotly.js reads a
// few HTML-like tags in its labels, so < > & are turned into entities it shows literally).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const TOKEN_KEY = "watchkeeper.token";

// el("a", {href: "#/", class: "x", onclick: fn}, "text", child, ...): an element; strings become text nodes.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// Escapes text for plotly.js labels, titles and hover text.
export function plotText(value) {
  return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

// GET /api/v1/<path>?<params> as JSON; params with undefined/null values are left out, arrays repeat.
export async function api(path, params = {}, options = {}) {
  const url = new URL(`/api/v1/${path}`, location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(v));
  }
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let body = options.body;
  if (body !== undefined && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const started = performance.now();
  const response = await fetch(url, { method: options.method || "GET", headers, body });
  const timing = (window.__wkTimings = window.__wkTimings || []);
  timing.push({ path, ms: performance.now() - started, status: response.status });
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, problemText(response.status, data));
  return data;
}

function problemText(status, data) {
  const detail = data && data.detail;
  if (Array.isArray(detail)) return detail.map((d) => `${d.field}: ${d.message}`).join("; ");
  if (typeof detail === "string") return detail;
  return `the server answered ${status}`;
}

// -- formatting ----------------------------------------------------------------------------------------

export function fmtNum(value, unit = "") {
  if (value === null || value === undefined) return "–";
  if (value === "inf" || value === "-inf") return value === "inf" ? "∞" : "-∞";
  const v = Number(value);
  let text;
  if (unit === "share") text = `${(v * 100).toFixed(Math.abs(v) < 0.01 && v !== 0 ? 2 : 1)}%`;
  else if (Math.abs(v) >= 1e6) text = `${(v / 1e6).toFixed(2)}M`;
  else if (Math.abs(v) >= 1e4) text = `${(v / 1e3).toFixed(1)}k`;
  else if (Math.abs(v) >= 100) text = v.toFixed(0);
  else if (Math.abs(v) >= 1) text = v.toFixed(2);
  else text = v.toPrecision(3);
  return unit && unit !== "share" ? `${text} ${unit}` : text;
}

export function fmtTime(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtAgo(seconds) {
  if (!seconds) return "–";
  const s = Date.now() / 1000 - seconds;
  if (s < 0) return "in the future";
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function statusDot(status, title) {
  return el("span", { class: `dot ${status || "none"}`, title: title || status || "no data", role: "img",
    "aria-label": status || "no data" });
}

// -- page states ---------------------------------------------------------------------------------------

export function loading(root, what = "Loading…") {
  root.replaceChildren(el("div", { class: "loading" }, what));
}

export function showError(root, error) {
  const message = error instanceof ApiError ? error.message : `${error}`;
  root.replaceChildren(el("div", { class: "error", role: "alert" }, message));
}

export function empty(text) {
  return el("div", { class: "empty" }, text);
}

// A table of text cells: columns [{key, title, num, render(row) -> Node|string}], rows of objects.
export function table(columns, rows, options = {}) {
  const head = el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c.title)));
  const body = rows.map((row) =>
    el(
      "tr",
      { class: options.rowClass ? options.rowClass(row) : undefined },
      columns.map((c) => {
        const value = c.render ? c.render(row) : row[c.key];
        return el("td", { class: c.num ? "num" : undefined }, value === undefined || value === null ? "–" : value);
      }),
    ),
  );
  return el("table", { class: `data ${options.class || ""}` }, el("thead", {}, head), el("tbody", {}, body));
}

// -- charts --------------------------------------------------------------------------------------------

export const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const EVENT_COLOURS = { firing: "#c62828", pending: "#c27c0e", resolved: "#1a7f4b", inactive: "#9aa5b1" };

// Seconds and values (null for a gap) as a plotly line trace.
export function line(name, t, v, extra = {}) {
  return {
    type: "scattergl",
    mode: "lines",
    name: plotText(name),
    x: t.map((s) => s * 1000),
    y: v.map((x) => (x === "inf" || x === "-inf" ? null : x)),
    connectgaps: false,
    hovertemplate: `%{y:.4g}<extra>${plotText(name)}</extra>`,
    ...extra,
  };
}

// A line trace broken where buckets are missing: the API gives only the buckets that hold points, and a
// line drawn straight across hours without data would show values nobody measured.
export function withGaps(trace, step) {
  if (!trace.x || trace.x.length < 2 || !String(trace.type || "").startsWith("scatter") || trace.fill) return trace;
  const gap = 1.5 * step * 1000;
  const x = [trace.x[0]];
  const y = [trace.y[0]];
  for (let i = 1; i < trace.x.length; i++) {
    if (trace.x[i] - trace.x[i - 1] > gap) {
      x.push(trace.x[i - 1] + step * 1000);
      y.push(null);
    }
    x.push(trace.x[i]);
    y.push(trace.y[i]);
  }
  return { ...trace, x, y };
}

// Vertical markers on the time axis for alert state changes ({rule, to, t}), with the rule in the hover.
export function eventMarks(events) {
  const shapes = [];
  const marks = { x: [], y: [], text: [], color: [] };
  for (const e of events || []) {
    if (!["firing", "resolved"].includes(e.to)) continue;
    const colour = EVENT_COLOURS[e.to] || "#888";
    shapes.push({ type: "line", xref: "x", yref: "paper", x0: e.t * 1000, x1: e.t * 1000, y0: 0, y1: 1,
      line: { color: colour, width: 1, dash: e.to === "firing" ? "solid" : "dot" } });
    marks.x.push(e.t * 1000);
    marks.y.push(0.03);
    marks.text.push(`${plotText(e.rule)} ${e.to}`);
    marks.color.push(colour);
  }
  const trace = { type: "scatter", mode: "markers", x: marks.x, y: marks.y, yaxis: "y2", name: "alerts",
    text: marks.text, hovertemplate: "%{text}<extra></extra>", showlegend: false,
    marker: { symbol: "triangle-up", size: 10, color: marks.color } };
  return { shapes, trace: marks.x.length ? trace : null };
}

// A time-series chart in `div`: zoom by dragging, pan with shift-drag or the toolbar, double-click resets.
// options: {unit, events, range: {start, end}, yTitle, height, percent, layout}
export function timeChart(div, traces, options = {}) {
  const { shapes, trace } = eventMarks(options.events);
  const step = options.step || (options.range && options.range.step);
  const lines = step ? traces.map((t) => withGaps(t, step)) : traces;
  const data = trace ? [...lines, trace] : lines;
  const layout = {
    margin: { l: 52, r: 12, t: 8, b: 30 },
    height: options.height,
    showlegend: traces.length > 1,
    legend: { orientation: "h", y: -0.18, font: { size: 11 } },
    hovermode: "x unified",
    dragmode: "zoom",
    xaxis: { type: "date", range: options.range ? [options.range.start * 1000, options.range.end * 1000] : undefined },
    yaxis: { title: options.yTitle ? { text: plotText(options.yTitle), font: { size: 11 } } : undefined,
      tickformat: options.unit === "share" ? ".1%" : undefined, rangemode: "tozero", automargin: true },
    yaxis2: { overlaying: "y", range: [0, 1.05], visible: false, fixedrange: true },
    shapes,
    ...(options.layout || {}),
  };
  const drawn = Plotly.react(div, data, layout, { displaylogo: false, responsive: true,
    modeBarButtonsToRemove: ["lasso2d", "select2d", "toImage"] });
  // a zoomed or panned chart holds the page still: the shell's once-a-minute redraw would undo the zoom
  return drawn.then((plot) => {
    if (!plot.__wkWatched) {
      plot.__wkWatched = true;
      plot.on("plotly_relayout", (change) => {
        if (Object.keys(change).some((k) => k.startsWith("xaxis.range") || k.startsWith("yaxis.range"))) {
          window.__wkZoomed = true;
        }
      });
    }
    return plot;
  });
}

// A sparkline as inline SVG (cheaper than a plotly chart when a page shows dozens of them).
export function sparkline(t, v, status = "none") {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 110 28");
  svg.setAttribute("preserveAspectRatio", "none");
  const points = [];
  const ys = v.filter((x) => typeof x === "number");
  if (ys.length) {
    const lo = Math.min(...ys);
    const hi = Math.max(...ys);
    const t0 = t[0];
    const span = t[t.length - 1] - t0 || 1;
    for (let i = 0; i < t.length; i++) {
      if (typeof v[i] !== "number") continue;
      const x = ((t[i] - t0) / span) * 108 + 1;
      const y = hi === lo ? 14 : 26 - ((v[i] - lo) / (hi - lo)) * 24;
      points.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    }
  }
  const path = document.createElementNS(ns, "polyline");
  path.setAttribute("points", points.join(" "));
  path.setAttribute("fill", "none");
  const colour = { ok: "#1a7f4b", warn: "#c27c0e", bad: "#c62828" }[status] || "#5f6b7a";
  path.setAttribute("stroke", colour);
  path.setAttribute("stroke-width", "1.5");
  svg.append(path);
  return svg;
}

// The time range in the API's form from a page context.
export function rangeParams(ctx) {
  return { start: ctx.range.start, end: ctx.range.end };
}
