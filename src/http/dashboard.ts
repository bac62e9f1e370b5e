/**
 * The dashboard: one HTML page and a small inline script. It lists the
 * datasets (GET /datasets) and shows one of them (`/?dataset=name`, else the
 * default): its counts per class per split as a bar chart, every image page by
 * page as PNG thumbnails (GET /datasets/{name}/images, keyset paging, a class
 * and a split filter), and its runs with their progress. No framework, no
 * build step and no external assets: the page is this string.
 *
 * Dataset names are safe by construction, but class names and run errors come
 * from users and sources: the script builds every node with createElement and
 * textContent, never markup, and the Content-Security-Policy (a per-request
 * nonce) keeps any markup that slipped through from running.
 */
import { DEFAULT_DATASET } from "../core/registry";

/** Images per page of the browser: a multiple of the grid's usual column counts (6, 8, 12). */
const PAGE_SIZE = 48;

/** Thumbnails are drawn at about this many CSS pixels on their long side. */
const THUMB_PX = 56;

/** Runs shown for the dataset. */
const RUNS_SHOWN = 10;

/** How often the page re-reads the runs while one is active. */
const POLL_MS = 3000;

/**
 * The Content-Security-Policy of the page: only its own inline script and
 * style (by nonce), and requests to this origin.
 */
export function dashboardCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** The page; `nonce` is base64 or hex, the one dashboardCsp names. */
export function dashboardHtml(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>idx-etl</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
  h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 2px; } h3 { font-size: 15px; margin: 20px 0 8px; }
  a { color: #0b57d0; }
  table { border-collapse: collapse; background: #fff; }
  th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; vertical-align: middle; }
  th:first-child, td:first-child { text-align: left; }
  thead th { background: #f0f0f0; }
  .muted { color: #666; } .tag { font-size: 11px; border: 1px solid #bbb; border-radius: 3px; padding: 0 3px; margin-left: 4px; color: #555; }
  .status-complete, .status-loaded { color: #176f2c; } .status-failed { color: #b00020; } .status-empty { color: #777; }
  .status-queued, .status-extracting, .status-loading { color: #8a5a00; }
  #datasets tr.current { background: #eef3fd; } #datasets tr.current a { font-weight: 600; }
  #error:empty { display: none; } #error { color: #b00020; white-space: pre-wrap; }
  progress { width: 90px; vertical-align: middle; }
  #chart th[scope="row"] { font-weight: normal; max-width: 16em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  #chart td { text-align: left; width: 280px; padding: 1px 6px; }
  #chart .lbl { color: #888; display: inline-block; min-width: 2.2em; }
  .bar-row { display: flex; align-items: center; gap: 6px; }
  .track { flex: 1; height: 11px; background: #f1f1f1; }
  .bar { display: block; height: 100%; min-width: 1px; } .bar[data-count="0"] { min-width: 0; }
  .swatch { display: inline-block; width: 10px; height: 10px; }
  .bar-train { background: #4a7bd0; } .bar-test { background: #e08a2e; }
  .num { min-width: 4.5em; text-align: right; font-variant-numeric: tabular-nums; }
  .controls { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px; margin-bottom: 10px; }
  .controls label { display: flex; gap: 6px; align-items: center; }
  select, button { font: inherit; }
  #grid { list-style: none; margin: 0; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, 76px); gap: 8px; }
  #grid[aria-busy="true"] { opacity: 0.5; }
  #grid li { display: flex; flex-direction: column; align-items: center; font-size: 11px; }
  #grid a { display: flex; width: 64px; height: 64px; align-items: center; justify-content: center; background: #000; }
  #grid img { max-width: 64px; max-height: 64px; image-rendering: pixelated; }
  #grid .cap { width: 76px; text-align: center; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .scroll { overflow-x: auto; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<header>
  <h1>idx-etl</h1>
  <div class="muted">IDX image datasets in D1 · <a href="/docs">API</a> · <a href="/openapi.json">openapi.json</a></div>
</header>
<p id="error" role="alert"></p>
<h2 id="datasets-heading">Datasets</h2>
<div class="scroll"><table id="datasets" aria-labelledby="datasets-heading">
  <thead><tr><th scope="col">dataset</th><th scope="col">status</th><th scope="col">train</th><th scope="col">test</th>
  <th scope="col">classes</th><th scope="col">shape</th><th scope="col">size in D1</th><th scope="col">last run</th></tr></thead>
  <tbody></tbody>
</table></div>
<main id="dataset" hidden>
  <h2 id="dataset-name"></h2>
  <div id="dataset-meta" class="muted"></div>
  <div id="exports" class="muted"></div>
  <p id="dataset-empty" class="muted" hidden></p>
  <section id="counts" aria-labelledby="counts-heading" hidden>
    <h3 id="counts-heading">Images per class</h3>
    <div class="scroll"><table id="chart">
      <thead><tr><th scope="col">class</th><th scope="col"><span class="swatch bar-train"></span> train</th>
      <th scope="col"><span class="swatch bar-test"></span> test</th></tr></thead>
      <tbody></tbody><tfoot></tfoot>
    </table></div>
  </section>
  <section id="browse" aria-labelledby="browse-heading" hidden>
    <h3 id="browse-heading">Images</h3>
    <div class="controls">
      <label>Split <select id="split"><option value="train">train</option><option value="test">test</option></select></label>
      <label>Class <select id="label"><option value="">all classes</option></select></label>
      <button id="prev" type="button">← Previous</button>
      <span id="page-info" aria-live="polite"></span>
      <button id="next" type="button">Next →</button>
    </div>
    <ul id="grid" aria-label="Images" aria-busy="false"></ul>
  </section>
  <section aria-labelledby="runs-heading">
    <h3 id="runs-heading">Runs</h3>
    <div class="scroll"><table id="runs">
      <thead><tr><th scope="col">started</th><th scope="col">status</th><th scope="col">trigger</th><th scope="col">train</th>
      <th scope="col">test</th><th scope="col">duration</th><th scope="col">error</th></tr></thead>
      <tbody></tbody>
    </table></div>
  </section>
</main>
<script type="module" nonce="${nonce}">
const DEFAULT_DATASET = ${JSON.stringify(DEFAULT_DATASET)};
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

// ---------------------------------------------------------------- datasets

function renderDatasets(datasets) {
  const body = $("#datasets tbody");
  body.replaceChildren();
  for (const d of datasets) {
    const link = h("a", { href: "?dataset=" + encodeURIComponent(d.name), textContent: d.name, title: d.title ?? "" });
    const current = d.name === state.name;
    if (current) link.setAttribute("aria-current", "page");
    const first = cell("td", link);
    if (!d.registry) first.append(h("span", { className: "tag", textContent: "custom" }));
    const last = d.lastRun;
    const lastCell = cell("td");
    if (last) {
      lastCell.append(h("span", { className: "status-" + last.status, textContent: last.status + (last.unchanged ? " (unchanged)" : "") }));
      lastCell.append(" " + when(last.createdAt));
    } else lastCell.append(h("span", { className: "muted", textContent: "none" }));
    const tr = h("tr", { className: current ? "current" : "" },
      first,
      h("td", { className: "status-" + d.status, textContent: d.status + (d.activeRun ? " · run active" : "") }),
      cell("td", num(d.counts?.train)),
      cell("td", num(d.counts?.test)),
      cell("td", d.classCount ? num(d.classCount) : ""),
      cell("td", shapeText(d.shape)),
      sizeCell(d),
      lastCell);
    tr.dataset.name = d.name;
    body.append(tr);
  }
  if (datasets.length === 0) body.append(h("tr", null, h("td", { colSpan: 8, className: "muted", textContent: "no datasets" })));
}

/** A dataset not loaded shows what loading it would take, marked as an estimate. */
function sizeCell(d) {
  if (d.sizeBytes === null || d.sizeBytes === undefined) return cell("td");
  if (d.status === "loaded") return cell("td", bytes(d.sizeBytes));
  return h("td", { className: "muted", title: "about this much once loaded" }, "≈ " + bytes(d.sizeBytes));
}

function renderDatasetHeader(d) {
  document.title = d.name + " · idx-etl";
  $("#dataset-name").textContent = d.name;
  const meta = [d.title];
  if (d.shape) meta.push("images " + shapeText(d.shape));
  if (d.version) meta.push("version " + d.version + (d.swappedAt ? ", loaded " + when(d.swappedAt) : ""));
  $("#dataset-meta").textContent = meta.filter(Boolean).join(" · ");
  const exports = $("#exports");
  exports.replaceChildren();
  if (d.status === "loaded") {
    exports.append("exports: ");
    ["train.npy", "train-labels.npy", "test.npy", "test-labels.npy"].forEach((f, i) => {
      if (i > 0) exports.append(", ");
      exports.append(h("a", { href: dsPath(d.name, "/export/" + f), textContent: f }));
    });
    // Where downloads come from (null: no R2 bucket bound, so always D1, nothing to say).
    if (d.exportsStored === true) exports.append(" · streamed from R2");
    else if (d.exportsStored === false) exports.append(" · read from D1 until the job after the load has written them to R2");
  }
  const empty = $("#dataset-empty");
  empty.hidden = d.status !== "empty";
  empty.textContent = d.activeRun ? "Not loaded yet: a run is loading it." : "Not loaded yet: start a run with POST /runs {\\"dataset\\": \\"" + d.name + "\\"}.";
}

// ---------------------------------------------------------------- chart

/** One row per class: a bar per split, each split scaled to its largest class. */
function renderChart(stats) {
  const train = stats.splits.train.classes, test = stats.splits.test.classes;
  const byLabel = new Map();
  for (const c of train) byLabel.set(c.label, { label: c.label, name: c.name, train: c.count, test: 0 });
  for (const c of test) {
    const row = byLabel.get(c.label) ?? { label: c.label, name: c.name, train: 0, test: 0 };
    row.test = c.count;
    byLabel.set(c.label, row);
  }
  const rows = [...byLabel.values()].sort((a, b) => a.label - b.label);
  const max = { train: Math.max(1, ...rows.map((r) => r.train)), test: Math.max(1, ...rows.map((r) => r.test)) };
  const bar = (split, n) => {
    const b = h("span", { className: "bar bar-" + split });
    b.style.width = ((100 * n) / max[split]).toFixed(2) + "%";
    b.dataset.count = String(n);
    const track = h("span", { className: "track" }, b);
    track.setAttribute("aria-hidden", "true");
    return h("td", null, h("span", { className: "bar-row" }, track, h("span", { className: "num", textContent: num(n) })));
  };
  const body = $("#chart tbody");
  body.replaceChildren();
  for (const r of rows) {
    const th = h("th", { scope: "row", title: r.label + ": " + r.name }, h("span", { className: "lbl", textContent: String(r.label) }), h("span", { className: "name", textContent: r.name }));
    const tr = h("tr", null, th, bar("train", r.train), bar("test", r.test));
    tr.dataset.label = String(r.label);
    body.append(tr);
  }
  $("#chart tfoot").replaceChildren(h("tr", null, h("th", { scope: "row", textContent: "total" }),
    h("th", { textContent: num(stats.splits.train.total) }), h("th", { textContent: num(stats.splits.test.total) })));
}

// ---------------------------------------------------------------- image browser

function classesOf(d) {
  if (Array.isArray(d.classes)) return d.classes;
  return (state.stats?.splits.train.classes ?? []).map(({ label, name }) => ({ label, name }));
}
const className = (label) => classesOf(state.dataset).find((c) => c.label === label)?.name ?? String(label);

function renderControls() {
  const d = state.dataset;
  const splitSel = $("#split");
  for (const opt of splitSel.options) opt.textContent = opt.value + " (" + num(d.counts?.[opt.value] ?? 0) + ")";
  splitSel.value = state.split;
  const labelSel = $("#label");
  labelSel.replaceChildren(h("option", { value: "", textContent: "all classes" }));
  for (const c of classesOf(d)) {
    const text = c.name === String(c.label) ? c.name : c.label + " · " + c.name;
    labelSel.append(h("option", { value: String(c.label), textContent: text }));
  }
  if (state.label !== null && !classesOf(d).some((c) => c.label === state.label)) state.label = null;
  labelSel.value = state.label === null ? "" : String(state.label);
}

/** Thumbnails at about THUMB_PX on their long side, whatever the images' shape. */
function thumbScale(shape) {
  const side = shape ? Math.max(shape.rows, shape.cols) : 28;
  return Math.min(16, Math.max(1, Math.round(THUMB_PX / side)));
}

/** How many images the current filter matches, from the counts: for "of N" and the page count. */
function matching() {
  if (!state.stats) return null;
  const s = state.stats.splits[state.split];
  if (state.label === null) return s.total;
  return s.classes.find((c) => c.label === state.label)?.count ?? 0;
}

async function loadPage() {
  const seq = ++state.pageSeq;
  const grid = $("#grid");
  grid.setAttribute("aria-busy", "true");
  $("#prev").disabled = true;
  $("#next").disabled = true;
  const q = new URLSearchParams({ split: state.split, limit: String(PAGE_SIZE) });
  if (state.after !== null) q.set("after", String(state.after));
  if (state.label !== null) q.set("label", String(state.label));
  let page;
  try {
    page = await api(dsPath(state.name, "/images?" + q));
  } catch (err) {
    if (seq !== state.pageSeq) return;
    showError(err);
    grid.setAttribute("aria-busy", "false");
    $("#prev").disabled = state.back.length === 0;
    return;
  }
  if (seq !== state.pageSeq) return;
  state.next = page.next;
  const scale = thumbScale(state.dataset.shape);
  const shape = state.dataset.shape;
  const items = page.images.map(({ idx, label }) => {
    const name = className(label);
    const src = dsPath(state.name, "/images/" + state.split + "/" + idx + ".png?scale=" + scale);
    const img = h("img", { src, alt: name + ", " + state.split + " image " + idx, decoding: "async" });
    if (shape) { img.width = shape.cols * scale; img.height = shape.rows * scale; }
    const link = h("a", { href: dsPath(state.name, "/images/" + state.split + "/" + idx + ".png?scale=8"), title: state.split + "/" + idx + " · " + label + " " + name }, img);
    const li = h("li", null, link, h("span", { className: "cap", textContent: "#" + idx + " · " + name }));
    li.dataset.idx = String(idx);
    return li;
  });
  grid.replaceChildren(...items);
  if (items.length === 0) grid.append(h("li", { className: "muted", textContent: "no images" }));
  const total = matching();
  const pageNo = state.back.length + 1;
  let info = "page " + pageNo + (total !== null ? " of " + Math.max(1, Math.ceil(total / PAGE_SIZE)) : "");
  if (page.images.length > 0) info += " · idx " + page.images[0].idx + "–" + page.images.at(-1).idx;
  if (total !== null) info += " · " + num(total) + " image" + (total === 1 ? "" : "s");
  $("#page-info").textContent = info;
  $("#prev").disabled = state.back.length === 0;
  $("#next").disabled = state.next === null;
  grid.setAttribute("aria-busy", "false");
}

function restart() {
  state.back = [];
  state.after = null;
  syncAddress();
  return loadPage();
}

$("#split").addEventListener("change", (e) => { state.split = e.target.value; restart(); });
$("#label").addEventListener("change", (e) => { state.label = e.target.value === "" ? null : Number(e.target.value); restart(); });
$("#next").addEventListener("click", () => {
  if (state.next === null) return;
  state.back.push(state.after);
  state.after = state.next;
  loadPage();
});
$("#prev").addEventListener("click", () => {
  if (state.back.length === 0) return;
  state.after = state.back.pop();
  loadPage();
});

// ---------------------------------------------------------------- runs

function renderRuns(runs) {
  const body = $("#runs tbody");
  body.replaceChildren();
  for (const r of runs) {
    const status = h("td", { className: "status-" + r.status }, r.status + (r.unchanged ? " (unchanged)" : ""));
    if (ACTIVE.has(r.status)) {
      const expected = (r.splits.train.expected ?? 0) + (r.splits.test.expected ?? 0);
      const loaded = r.splits.train.loaded + r.splits.test.loaded;
      const bar = h("progress", { max: Math.max(1, expected) });
      if (expected > 0) bar.value = loaded;
      bar.setAttribute("aria-label", "progress of run " + r.id);
      status.append(" ", bar);
    }
    const split = (s) => num(r.splits[s].loaded) + " / " + num(r.splits[s].expected);
    const error = r.error ?? (r.retrying ? "retrying: " + r.retrying : "");
    const tr = h("tr", null, cell("td", when(r.createdAt)), status, cell("td", r.trigger), cell("td", split("train")),
      cell("td", split("test")), cell("td", (r.durationMs / 1000).toFixed(1) + " s"), h("td", { className: "error", textContent: error }));
    tr.dataset.id = r.id;
    body.append(tr);
  }
  if (runs.length === 0) body.append(h("tr", null, h("td", { colSpan: 7, className: "muted", textContent: "no runs yet" })));
}

/** While a run is active the runs are re-read; when it ends, the dataset (and its images) may have changed. */
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
}
</script>
</body>
</html>
`;
}
