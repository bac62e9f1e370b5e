/**
 * The dashboard: one HTML page and a small inline script. It lists the
 * datasets (GET /datasets) and shows one of them (`/?dataset=name`, else the
 * default): its counts per class per split as a bar chart, every image page by
 * page as PNG thumbnails (GET /datasets/{name}/images, keyset paging, a class
 * and a split filter), and its runs with their progress. No framework, no
 * build step and no external assets: the page is this string.
 *
 * This module is the page's shell (markup and styles) and its
 * Content-Security-Policy; the script is in ./script.ts.
 */
import { dashboardScript } from "./script";

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
  .tag.unofficial { border-color: #b00020; color: #b00020; background: #fdecee; } .tag.official { border-color: #176f2c; color: #176f2c; }
  .status-complete, .status-loaded { color: #176f2c; } .status-failed, .status-broken { color: #b00020; } .status-empty { color: #777; }
  #dataset-problem:empty { display: none; } #dataset-problem { color: #b00020; }
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
  .mono, pre { font: 12px/1.4 ui-monospace, Menlo, Consolas, monospace; }
  #snippets { list-style: none; padding: 0; margin: 12px 0 0; display: grid; gap: 10px; max-width: 960px; }
  #snippets pre { margin: 4px 0 0; padding: 8px; background: #fff; border: 1px solid #ddd; overflow-x: auto; }
  .snippet-head { display: flex; gap: 10px; align-items: center; }
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
  <div id="provenance"></div>
  <p id="dataset-problem" role="status"></p>
  <div id="exports" class="muted"></div>
  <p id="dataset-empty" class="muted" hidden></p>
  <section id="downloads" aria-labelledby="downloads-heading" hidden>
    <h3 id="downloads-heading">Downloads</h3>
    <div class="scroll"><table id="files">
      <thead><tr><th scope="col">file</th><th scope="col">format</th><th scope="col">size</th><th scope="col">SHA-256</th></tr></thead>
      <tbody></tbody>
    </table></div>
    <ul id="snippets" aria-label="Open it from"></ul>
  </section>
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
${dashboardScript()}
</script>
</body>
</html>
`;
}
