/**
 * The dashboard's read-only views, as script text run in the browser: the
 * datasets table, one dataset's header, its chart of images per class, and its
 * runs. They use the helpers and state of ./script.ts.
 */

export const DATASET_VIEWS = `// ---------------------------------------------------------------- datasets

function renderDatasets(datasets) {
  const body = $("#datasets tbody");
  body.replaceChildren();
  for (const d of datasets) {
    const link = h("a", { href: "?dataset=" + encodeURIComponent(d.name), textContent: d.name, title: d.title ?? "" });
    const current = d.name === state.name;
    if (current) link.setAttribute("aria-current", "page");
    const first = cell("td", link);
    if (!d.registry) first.append(h("span", { className: "tag", textContent: "custom" }));
    else if (d.official === false) first.append(unofficialTag(d));
    const last = d.lastRun;
    const lastCell = cell("td");
    if (last) {
      lastCell.append(h("span", { className: "status-" + last.status, textContent: last.status + (last.unchanged ? " (unchanged)" : "") }));
      lastCell.append(" " + when(last.createdAt));
    } else lastCell.append(h("span", { className: "muted", textContent: "none" }));
    const tr = h("tr", { className: current ? "current" : "" },
      first,
      h("td", { className: "status-" + d.status, textContent: d.status + (d.activeRun ? " · run active" : ""), title: d.hint ?? "" }),
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

/** A registry dataset whose rows are not the published files: a badge that says so, and from where. */
function unofficialTag(d) {
  return h("span", { className: "tag unofficial", textContent: "unofficial", title: "its archives did not match the published MD5s; source: " + (d.source ?? "unknown") });
}

/** Where the rows come from: official (published MD5s checked), or the source they were loaded from. */
function renderProvenance(d) {
  const box = $("#provenance");
  box.replaceChildren();
  if (d.status === "empty") return;
  if (d.official === true) box.append(h("span", { className: "tag official", textContent: "official" }), " the published files, MD5s checked · " + d.source);
  else if (d.official === false) box.append(d.registry ? unofficialTag(d) : h("span", { className: "tag", textContent: "custom" }), " loaded from " + d.source);
  else box.append(h("span", { className: "muted", textContent: "source not recorded (loaded before idx-etl recorded provenance; a reload records it)" }));
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
  renderProvenance(d);
  $("#dataset-problem").textContent = d.status === "broken" ? "Broken: " + d.hint : "";
  const exports = $("#exports");
  exports.replaceChildren();
  if (d.status === "loaded") {
    // Where downloads come from (null: no R2 bucket bound, so always D1, nothing to say).
    exports.append((d.exports ?? []).length + " export files below");
    if (d.exportsStored === true) exports.append(" · streamed from R2");
    else if (d.exportsStored === false) exports.append(" · read from D1 until the job after the load has written them to R2");
  }
  $("#downloads").hidden = d.status !== "loaded";
  renderDownloads(d);
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
`;

export const RUNS_VIEW = `// ---------------------------------------------------------------- runs

function renderRuns(runs) {
  const body = $("#runs tbody");
  body.replaceChildren();
  for (const r of runs) {
    const status = h("td", { className: "status-" + r.status, title: r.hint ?? "" }, r.status + (r.unchanged ? " (unchanged)" : "") + (r.stale ? " (stale)" : ""));
    if (ACTIVE.has(r.status)) {
      const expected = (r.splits.train.expected ?? 0) + (r.splits.test.expected ?? 0);
      const loaded = r.splits.train.loaded + r.splits.test.loaded;
      const bar = h("progress", { max: Math.max(1, expected) });
      if (expected > 0) bar.value = loaded;
      bar.setAttribute("aria-label", "progress of run " + r.id);
      status.append(" ", bar);
    }
    const split = (s) => num(r.splits[s].loaded) + " / " + num(r.splits[s].expected);
    const error = r.error ?? (r.stale ? "stale: " + r.hint : r.retrying ? "retrying: " + r.retrying : "");
    const tr = h("tr", null, cell("td", when(r.createdAt)), status, cell("td", r.trigger), cell("td", split("train")),
      cell("td", split("test")), cell("td", (r.durationMs / 1000).toFixed(1) + " s"), h("td", { className: "error", textContent: error }));
    tr.dataset.id = r.id;
    body.append(tr);
  }
  if (runs.length === 0) body.append(h("tr", null, h("td", { colSpan: 7, className: "muted", textContent: "no runs yet" })));
}
`;
