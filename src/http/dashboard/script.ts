/**
 * The dashboard's script, run in the browser: helpers, the page's state (kept
 * in the address), loading a dataset and polling its active run. The views it
 * draws are in ./views.ts, ./downloads.ts and ./browser.ts.
 *
 * Dataset names are safe by construction, but class names and run errors come
 * from users and sources: the script builds every node with createElement and
 * textContent, never markup, and the Content-Security-Policy (a per-request
 * nonce) keeps any markup that slipped through from running.
 */
import { DEFAULT_DATASET } from "../../core/registry";
import { BROWSER } from "./browser";
import { DOWNLOADS_VIEW } from "./downloads";
import { DATASET_VIEWS, RUNS_VIEW } from "./views";

/** Images per page of the browser: a multiple of the grid's usual column counts (6, 8, 12). */
const PAGE_SIZE = 48;

/** Thumbnails are drawn at about this many CSS pixels on their long side. */
const THUMB_PX = 56;

/** Runs shown for the dataset. */
const RUNS_SHOWN = 10;

/** How often the page re-reads the runs while one is active. */
const POLL_MS = 3000;

const BASE = `const DEFAULT_DATASET = ${JSON.stringify(DEFAULT_DATASET)};
const PAGE_SIZE = ${PAGE_SIZE}, THUMB_PX = ${THUMB_PX}, RUNS_SHOWN = ${RUNS_SHOWN}, POLL_MS = ${POLL_MS};
const ACTIVE = new Set(["queued", "extracting", "loading"]);
const $ = (sel) => document.querySelector(sel);

/** An element; props are DOM properties (never markup), children nodes or text. */
function h(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) if (v !== undefined && v !== null) e[k] = v;
  for (const c of children) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  return e;
}
const cell = (tag, ...children) => h(tag, null, ...children);
const num = (x) => (x === null || x === undefined ? "?" : x.toLocaleString("en"));
const when = (iso) => (iso ? new Date(iso).toLocaleString("en") : "");
function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let u = 0;
  while (n >= 1000 && u < units.length - 1) { n /= 1000; u++; }
  return (u === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + units[u];
}
const shapeText = (s) => (s ? s.rows + "×" + s.cols + "×" + s.channels : "");
/** A dataset's API path: names are restricted, but encoding costs nothing. */
const dsPath = (name, rest = "") => "/datasets/" + encodeURIComponent(name) + rest;

async function api(path) {
  const res = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(path + ": " + (body && typeof body.error === "string" ? body.error : res.status + " " + res.statusText));
  return body;
}

function showError(err) {
  const line = String(err && err.message ? err.message : err);
  const box = $("#error");
  box.textContent = box.textContent ? box.textContent + "\\n" + line : line;
}

// ---------------------------------------------------------------- state

const query = new URLSearchParams(location.search);
const labelParam = query.get("label");
const state = {
  name: query.get("dataset") || DEFAULT_DATASET,
  dataset: null,
  stats: null,
  split: query.get("split") === "test" ? "test" : "train",
  label: labelParam !== null && /^\\d+$/.test(labelParam) ? Number(labelParam) : null,
  /** The after of every page before the current one: Previous pops it. */
  back: [],
  /** Null on the first page: the API then starts from the split's first image. */
  after: null,
  next: null,
  /** Answers to an older request than the latest are dropped. */
  pageSeq: 0,
  polling: false,
};

/** Dataset, split and class go in the address, so a reload or a shared link shows the same images. */
function syncAddress() {
  const q = new URLSearchParams();
  if (state.name !== DEFAULT_DATASET || query.has("dataset")) q.set("dataset", state.name);
  if (state.split !== "train") q.set("split", state.split);
  if (state.label !== null) q.set("label", String(state.label));
  const s = q.toString();
  history.replaceState(null, "", s ? "?" + s : location.pathname);
}
`;

const START = `/** While a run is active the runs are re-read; when it ends, the dataset (and its images) may have changed. */
function poll(active) {
  if (!active || state.polling) return;
  state.polling = true;
  const tick = async () => {
    try {
      const { runs } = await api(dsPath(state.name, "/runs?limit=" + RUNS_SHOWN));
      renderRuns(runs);
      if (runs.some((r) => ACTIVE.has(r.status))) return setTimeout(tick, POLL_MS);
      state.polling = false;
      await loadDataset(false);
    } catch (err) {
      state.polling = false;
      showError(err);
    }
  };
  setTimeout(tick, POLL_MS);
}

// ---------------------------------------------------------------- start

async function loadDataset(first) {
  const [list, d, runs] = await Promise.all([
    api("/datasets"),
    api(dsPath(state.name)).catch((err) => { showError(err); return null; }),
    api(dsPath(state.name, "/runs?limit=" + RUNS_SHOWN)).catch((err) => err),
  ]);
  renderDatasets(list.datasets);
  if (!d) return;
  // A run that ended unchanged leaves the rows as they were: the reader keeps their page.
  const changed = first || state.dataset?.version !== d.version;
  state.dataset = d;
  $("#dataset").hidden = false;
  renderDatasetHeader(d);
  if (runs instanceof Error) showError(runs);
  else renderRuns(runs.runs);
  const loaded = d.status === "loaded";
  $("#counts").hidden = !loaded;
  $("#browse").hidden = !loaded;
  if (loaded && changed) {
    state.stats = await api(dsPath(state.name, "/stats"));
    renderChart(state.stats);
    renderControls();
    state.back = [];
    state.after = null;
    syncAddress();
    await loadPage();
  }
  poll(Boolean(d.activeRun) || (!(runs instanceof Error) && runs.runs.some((r) => ACTIVE.has(r.status))));
}

try {
  await loadDataset(true);
  document.body.dataset.ready = $("#error").textContent ? "error" : "true";
} catch (err) {
  showError(err);
  document.body.dataset.ready = "error";
}`;

/** The script: one module, its parts in the order they run. */
export function dashboardScript(): string {
  return [BASE, DATASET_VIEWS, DOWNLOADS_VIEW, BROWSER, RUNS_VIEW, START].join("\n");
}
