/**
 * The dashboard's image browser, as script text run in the browser: a split's
 * images page by page as PNG thumbnails (keyset paging on idx), filtered by
 * split and class. It uses the helpers and state of ./script.ts.
 */

export const BROWSER = `// ---------------------------------------------------------------- image browser

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
`;
