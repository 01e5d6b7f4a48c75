// The dashboard's shell: routes the address's fragment to a page module, keeps the shared time range,
// draws the breadcrumbs and a deployment's tabs, and asks for an API token when the server wants one.
//
// Addresses: #/ (every deployment), #/p/<project>, #/p/<project>/m/<model>/v/<version>/<tab>,
// #/p/<project>/m/<model>/compare?a=<v>&b=<v>, #/runs?project=..&ids=.., #/alerts?project=..
// Every page address may carry range=<1h|6h|24h|7d|30d|90d> or from=<s>&to=<s> (seconds since the epoch).
// A page module exports `async render(root, ctx)`; it draws into root and may return a cleanup function.

import { ApiError, el, setToken, showError, token } from "./lib.js";

export const RANGES = [
  ["1h", 3600], ["6h", 6 * 3600], ["24h", 86400], ["7d", 7 * 86400], ["30d", 30 * 86400], ["90d", 90 * 86400],
];
const DEFAULT_RANGE = "24h";
const TABS = [
  ["overview", "Overview"], ["drift", "Drift"], ["predictions", "Predictions"], ["samples", "Samples"],
  ["anomalies", "Anomalies"],
];

// [pattern, page module, tab] in order; the first whose pattern matches the path wins.
const ROUTES = [
  [/^\/?$/, "home"],
  [/^\/p\/([^/]+)\/?$/, "home"],
  [/^\/p\/([^/]+)\/m\/([^/]+)\/v\/([^/]+)\/?(overview|drift|predictions|samples|anomalies)?$/, "deployment"],
  [/^\/p\/([^/]+)\/m\/([^/]+)\/compare$/, "compare"],
  [/^\/runs$/, "runs"],
  [/^\/alerts$/, "alerts"],
];

let cleanup = null;
let generation = 0;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?", 2);
  return { path, params: new URLSearchParams(query || "") };
}

// The page's time range from its parameters: {start, end, label, relative}.
export function currentRange(params) {
  const from = Number(params.get("from"));
  const to = Number(params.get("to"));
  if (params.has("from") && params.has("to") && Number.isFinite(from) && Number.isFinite(to) && from < to) {
    return { start: from, end: to, label: "custom", relative: false };
  }
  const label = params.get("range") || DEFAULT_RANGE;
  const found = RANGES.find(([name]) => name === label) || RANGES.find(([name]) => name === DEFAULT_RANGE);
  const end = Math.ceil(Date.now() / 1000);
  return { start: end - found[1], end, label: found[0], relative: true };
}

export function href(path, params = {}, keepRange = true) {
  const current = parseHash().params;
  const out = new URLSearchParams();
  if (keepRange) for (const key of ["range", "from", "to"]) if (current.has(key)) out.set(key, current.get(key));
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") out.delete(key);
    else out.set(key, String(value));
  }
  const query = out.toString();
  return `#${path}${query ? `?${query}` : ""}`;
}

// Sets (or with null removes) parameters of the current address, which re-renders the page.
export function setParams(changes) {
  const { path, params } = parseHash();
  for (const [key, value] of Object.entries(changes)) {
    if (value === undefined || value === null || value === "") params.delete(key);
    else params.set(key, String(value));
  }
  const query = params.toString();
  location.hash = `#${path}${query ? `?${query}` : ""}`;
}

function drawRangePicker(params) {
  const box = document.getElementById("range");
  const range = currentRange(params);
  const toLocal = (s) => new Date(s * 1000 - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const fromInput = el("input", { type: "datetime-local", "aria-label": "from", value: toLocal(range.start) });
  const toInput = el("input", { type: "datetime-local", "aria-label": "to", value: toLocal(range.end) });
  const apply = el("button", { type: "button", onclick: () => {
    const from = new Date(fromInput.value).getTime() / 1000;
    const to = new Date(toInput.value).getTime() / 1000;
    if (Number.isFinite(from) && Number.isFinite(to) && from < to) setParams({ range: null, from, to });
  } }, "Apply");
  box.replaceChildren(
    ...RANGES.map(([name]) =>
      el("button", { type: "button", class: range.label === name ? "active" : undefined, "data-range": name,
        onclick: () => setParams({ range: name, from: null, to: null }) }, name)),
    el("span", { class: "custom" }, fromInput, "–", toInput, apply),
  );
}

function drawCrumbs(parts) {
  const nav = document.getElementById("crumbs");
  const items = [];
  parts.forEach(([text, link], i) => {
    if (i) items.push(el("span", { class: "sep" }, "/"));
    items.push(link ? el("a", { href: link }, text) : el("span", {}, text));
  });
  nav.replaceChildren(...items);
}

function drawTabs(ctx) {
  const nav = document.getElementById("tabs");
  if (!ctx.version) {
    nav.replaceChildren();
    return;
  }
  const base = `/p/${enc(ctx.project)}/m/${enc(ctx.model)}/v/${enc(ctx.version)}`;
  nav.replaceChildren(
    ...TABS.map(([tab, title]) => el("a", { href: href(`${base}/${tab}`), class: ctx.tab === tab ? "active" : undefined,
      "data-tab": tab }, title)),
    el("a", { href: href(`/p/${enc(ctx.project)}/m/${enc(ctx.model)}/compare`, { a: ctx.version }), "data-tab": "compare" },
      "Compare versions"),
  );
}

export function enc(text) {
  return encodeURIComponent(text);
}

function askForToken(root, message) {
  const input = el("input", { type: "password", name: "token", placeholder: "wk_…", size: 40, "aria-label": "API token" });
  const form = el("form", { onsubmit: (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    render();
  } }, el("p", {}, message), input, " ", el("button", { type: "submit" }, "Use token"));
  root.replaceChildren(el("div", { class: "card" }, el("h3", {}, "This server needs an API token"), form));
}

async function render() {
  const mine = ++generation;
  if (typeof cleanup === "function") cleanup();
  cleanup = null;
  const { path, params } = parseHash();
  const root = document.getElementById("page");
  document.body.dataset.ready = "";
  window.__wkZoomed = false;
  let page = "notfound";
  let groups = [];
  for (const [pattern, name] of ROUTES) {
    const m = path.match(pattern);
    if (m) {
      page = name;
      groups = m.slice(1).map((g) => (g === undefined ? undefined : decodeURIComponent(g)));
      break;
    }
  }
  const ctx = { page, params, range: currentRange(params), href, setParams, enc, isCurrent: () => mine === generation };
  if (page === "home") ctx.project = groups[0];
  if (page === "deployment") [ctx.project, ctx.model, ctx.version, ctx.tab = "overview"] = groups;
  if (page === "compare") [ctx.project, ctx.model] = groups;
  if (page === "runs" || page === "alerts") ctx.project = params.get("project") || undefined;

  const crumbs = [["All deployments", href("/")]];
  if (ctx.project) crumbs.push([ctx.project, href(`/p/${enc(ctx.project)}`)]);
  if (ctx.model) crumbs.push([ctx.model, ctx.version ? undefined : undefined]);
  if (ctx.version) crumbs.push([`v${ctx.version}`, undefined]);
  if (page === "compare") crumbs.push(["compare versions", undefined]);
  if (page === "runs") crumbs.push(["training runs", undefined]);
  if (page === "alerts") crumbs.push(["alerts", undefined]);
  drawCrumbs(crumbs);
  drawTabs(ctx);
  drawRangePicker(params);
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === page || (page === "deployment" && a.dataset.nav === "home"));
  }
  document.title = ["watchkeeper", ctx.project, ctx.model && `${ctx.model}${ctx.version ? ` v${ctx.version}` : ""}`,
    ctx.tab || (page !== "home" ? page : undefined)].filter(Boolean).join(" · ");

  if (page === "notfound") {
    root.replaceChildren(el("div", { class: "empty" }, "No page at this address. ", el("a", { href: "#/" }, "All deployments")));
    document.body.dataset.ready = "1";
    return;
  }
  const module = page === "deployment" ? ctx.tab : page;
  try {
    const { render: draw } = await import(`./pages/${module}.js`);
    if (mine !== generation) return;
    cleanup = await draw(root, ctx);
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof ApiError && error.status === 401) {
      askForToken(root, token() ? "The token was refused; paste another one." : "Paste a token made with `watchkeeper token create`.");
    } else {
      showError(root, error);
      console.error(error);
    }
  }
  if (mine === generation) document.body.dataset.ready = "1";
}

// Relative ranges move with the clock: redraw the page every minute while it is visible.
setInterval(() => {
  const { params } = parseHash();
  if (document.visibilityState === "visible" && currentRange(params).relative && document.body.dataset.ready === "1"
      && !window.__wkZoomed) {
    render();
  }
}, 60000);

window.addEventListener("hashchange", render);
window.addEventListener("DOMContentLoaded", render);
