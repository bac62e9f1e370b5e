/**
 * The dashboard's downloads view, as script text run in the browser: every
 * export file of the loaded version (GET /datasets/{name} `exports`) with its
 * size, and per client a snippet that opens the dataset, with a Copy button:
 * numpy, Keras, Hugging Face `datasets`, polars, torchvision (this Worker as a
 * mirror of the original archives, for the datasets torchvision knows) and
 * Croissant. URLs are this page's origin; the snippets' text is in
 * docs/data.md too.
 */

export const DOWNLOADS_VIEW = `// ---------------------------------------------------------------- downloads

/** torchvision's class of each registry dataset it downloads from a list of mirrors. */
const TORCHVISION = { "mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST" };

/**
 * Keras caches get_file() by file name, so an unversioned name would keep
 * serving the first download after a reload: the snippet names this version's
 * file, at its versioned URL (410 once replaced, naming the new one), with its
 * SHA-256 once the export job has computed it.
 */
function kerasGetFile(d, at) {
  const npz = (d.exports ?? []).find((e) => e.format === "npz");
  if (!npz || !d.version) return 'keras.utils.get_file("' + d.name + '.npz", "' + at + '/export/' + d.name + '.npz")';
  const hash = npz.sha256 ? ', file_hash="' + npz.sha256 + '"' : "";
  return 'keras.utils.get_file("' + d.name + '-' + d.version.slice(0, 8) + '.npz", "' + location.origin + npz.versionedUrl + '"' + hash + ')';
}

/** [client, code] for a loaded dataset, its URLs absolute on this origin. */
function snippets(d) {
  const at = location.origin + dsPath(d.name);
  const out = [
    ["numpy", 'import io, urllib.request\\nimport numpy as np\\n\\nget = lambda url: np.load(io.BytesIO(urllib.request.urlopen(url).read()))\\nx_train = get("' + at + '/export/train.npy?dtype=uint8")  # uint8 (n, rows, cols, channels); without ?dtype: float32 x / 255\\ny_train = get("' + at + '/export/train-labels.npy")'],
    ["Keras", 'import keras, numpy as np\\n\\npath = ' + kerasGetFile(d, at) + '\\nwith np.load(path) as f:  # as keras.datasets.mnist.load_data() returns it\\n    (x_train, y_train), (x_test, y_test) = (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])'],
    ["datasets", 'from datasets import load_dataset\\n\\nds = load_dataset("parquet", data_files={"train": "' + at + '/export/train.parquet", "test": "' + at + '/export/test.parquet"})\\nds["train"].features  # image: Image(), label: ClassLabel(names=[...])'],
    ["polars", 'import polars as pl\\n\\ndf = pl.read_parquet("' + at + '/export/train.parquet")  # image: struct{bytes, path}, label: i64'],
  ];
  const tv = TORCHVISION[d.name];
  if (tv) out.push(["torchvision", 'from torchvision import datasets\\n\\ndatasets.' + tv + '.mirrors = ["' + at + '/raw/"]  # the original archives, MD5-checked\\nds = datasets.' + tv + '("data", train=True, download=True)']);
  out.push(["Croissant", 'import mlcroissant as mlc\\n\\nds = mlc.Dataset("' + at + '/croissant.json")\\nrecords = ds.records(record_set="train")'] );
  return out;
}

function renderDownloads(d) {
  const files = $("#files tbody");
  files.replaceChildren();
  for (const e of d.exports ?? []) {
    const link = h("a", { href: e.url, textContent: e.url.slice(e.url.lastIndexOf("/") + 1) });
    files.append(h("tr", null, cell("td", link), cell("td", e.format), cell("td", bytes(e.bytes)),
      h("td", { className: "mono", textContent: e.sha256 ? e.sha256.slice(0, 16) + "…" : "after the export job", title: e.sha256 ?? "" })));
  }
  const list = $("#snippets");
  list.replaceChildren();
  if (d.status !== "loaded") return;
  for (const [client, code] of snippets(d)) {
    const pre = h("pre", null, h("code", { textContent: code }));
    const copy = h("button", { type: "button", textContent: "Copy" });
    copy.addEventListener("click", () => navigator.clipboard.writeText(code).then(
      () => { copy.textContent = "Copied"; setTimeout(() => (copy.textContent = "Copy"), 1500); },
      () => { copy.textContent = "Select and copy"; }));
    const item = h("li", null, h("div", { className: "snippet-head" }, h("strong", { textContent: client }), copy), pre);
    item.dataset.client = client;
    list.append(item);
  }
}
`;
