/**
 * The dashboard: one static HTML page with a little script that reads
 * GET /runs and GET /stats and draws sample images with GET /images/…png.
 * No framework and no build step: the page is this string.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>idx-etl · Fashion-MNIST in D1</title>
<link rel="icon" href="data:,">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
  h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
  table { border-collapse: collapse; background: #fff; }
  th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; }
  th:first-child, td:first-child { text-align: left; }
  .status-complete { color: #176f2c; } .status-failed { color: #b00020; } .muted { color: #777; }
  #samples { display: grid; grid-template-columns: max-content repeat(8, 56px); gap: 4px 6px; align-items: center; }
  #samples img { width: 56px; height: 56px; image-rendering: pixelated; background: #000; }
  #error { color: #b00020; }
</style>
</head>
<body>
<h1>idx-etl</h1>
<div class="muted">Fashion-MNIST in the D1 database <code>images</code> ·
  exports: <a href="/export/test.npy">test.npy</a>, <a href="/export/test-labels.npy">test-labels.npy</a>,
  <a href="/export/train.npy">train.npy</a>, <a href="/export/train-labels.npy">train-labels.npy</a></div>
<p id="error"></p>
<h2>Latest runs</h2>
<table id="runs"><thead><tr><th>started</th><th>status</th><th>trigger</th><th>train</th><th>test</th><th>duration</th><th>error</th></tr></thead><tbody></tbody></table>
<h2>Images per class</h2>
<table id="counts"><thead><tr><th>class</th><th>train</th><th>test</th></tr></thead><tbody></tbody></table>
<h2>Samples <span id="samples-split" class="muted"></span></h2>
<div id="samples"></div>
<script type="module">
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
const row = (cells) => { const tr = el("tr"); for (const c of cells) tr.append(c instanceof Node ? c : el("td", String(c))); return tr; };
const get = async (path) => { const r = await fetch(path); const j = await r.json(); if (!r.ok) throw new Error(path + ": " + j.error); return j; };
const n = (x) => x === null || x === undefined ? "?" : x.toLocaleString("en");
try {
  const [{ runs }, stats] = await Promise.all([get("/runs?limit=10"), get("/stats")]);
  const runsBody = document.querySelector("#runs tbody");
  for (const r of runs) {
    const status = el("td", r.status + (r.unchanged ? " (unchanged)" : ""), "status-" + r.status);
    runsBody.append(row([new Date(r.createdAt).toLocaleString("en"), status, r.trigger,
      n(r.splits.train.loaded) + " / " + n(r.splits.train.expected), n(r.splits.test.loaded) + " / " + n(r.splits.test.expected),
      (r.durationMs / 1000).toFixed(1) + " s", r.error ?? (r.retrying ? "retrying: " + r.retrying : "")]));
  }
  if (runs.length === 0) runsBody.append(row(["no runs yet", "", "", "", "", "", ""]));
  const countsBody = document.querySelector("#counts tbody");
  const test = stats.splits.test.classes;
  stats.splits.train.classes.forEach((c, i) => countsBody.append(row([c.name, n(c.count), n(test[i].count)])));
  countsBody.append(row([el("th", "total"), el("th", n(stats.splits.train.total)), el("th", n(stats.splits.test.total))]));
  const grid = document.querySelector("#samples");
  if (stats.samples) {
    document.querySelector("#samples-split").textContent = "(" + stats.samples.split + " split)";
    for (const c of stats.samples.byLabel) {
      grid.append(el("div", c.name));
      for (let i = 0; i < 8; i++) {
        const idx = c.idx[i];
        if (idx === undefined) { grid.append(el("div")); continue; }
        const img = el("img");
        img.src = "/images/" + stats.samples.split + "/" + idx + ".png?scale=2";
        img.alt = c.name + " #" + idx;
        img.title = stats.samples.split + "/" + idx;
        grid.append(img);
      }
    }
  } else grid.append(el("div", "no images loaded yet", "muted"));
  document.body.dataset.ready = "true";
} catch (err) {
  document.querySelector("#error").textContent = String(err);
  document.body.dataset.ready = "error";
}
</script>
</body>
</html>
`;
