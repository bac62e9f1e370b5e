"""The clients ML people use, against a live idx-etl Worker.

Run by test/clients/clients.cli.ts with one argument, a JSON file:
  {"base": "http://127.0.0.1:PORT",
   "datasets": [{"name", "classes": [...], "files": {"trainImages": path, ...},
                 "published": {file name: md5} | null, "default": bool}]}
Each dataset's IDX source is read here from its .gz files (gzip + numpy), and
every check compares what a client gets from the Worker with it. Every check
runs, whatever the others do; each prints one JSON line on stdout:
  {"check": "<dataset> <what>", "ok": true|false, "detail": "...", "seconds": s}
Progress goes to stderr. The exit code is 0 whatever the results: the caller
reads the lines.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import struct
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

ORIGIN = "https://notebook.example"
SPLITS = ("train", "test")
FILE_KEYS = {"train": ("trainImages", "trainLabels"), "test": ("testImages", "testLabels")}


# ---------------------------------------------------------------- the source


def read_idx_gz(path: str) -> np.ndarray:
    """An IDX file (gzipped), as numpy: magic 0 0 0x08 ndim, big-endian dims, uint8 data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[0:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@dataclass
class Source:
    name: str
    classes: list[str]
    images: dict[str, np.ndarray]  # split -> (n, rows, cols, channels)
    labels: dict[str, np.ndarray]  # split -> (n,)
    files: dict[str, str]  # trainImages… -> path
    published: dict[str, str] | None
    default: bool

    @property
    def channels(self) -> int:
        return self.images["train"].shape[3]


def load_source(spec: dict) -> Source:
    images, labels = {}, {}
    for split in SPLITS:
        img_key, lbl_key = FILE_KEYS[split]
        x = read_idx_gz(spec["files"][img_key])
        images[split] = x if x.ndim == 4 else x[..., np.newaxis]
        labels[split] = read_idx_gz(spec["files"][lbl_key])
    return Source(
        spec["name"], spec["classes"], images, labels, spec["files"], spec.get("published"), spec.get("default", False)
    )


# ---------------------------------------------------------------- HTTP


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def http(method: str, url: str, headers: dict[str, str] | None = None) -> Answer:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=300) as res:
            return Answer(res.status, {k.lower(): v for k, v in res.headers.items()}, res.read())
    except urllib.error.HTTPError as err:
        return Answer(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def get_ok(url: str, headers: dict[str, str] | None = None) -> bytes:
    res = http("GET", url, headers)
    if res.status != 200:
        raise AssertionError(f"GET {url}: HTTP {res.status}: {res.body[:300]!r}")
    return res.body


def digest_of(url: str, algorithm: str) -> tuple[str, int]:
    """The digest of a URL's body, read in blocks: some files are hundreds of MB."""
    h = hashlib.new(algorithm)
    size = 0
    with urllib.request.urlopen(url, timeout=300) as res:
        while block := res.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def header_list(res: Answer, name: str) -> list[str]:
    return [s.strip().lower() for s in res.headers.get(name, "").split(",") if s.strip()]


def check(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


# ---------------------------------------------------------------- comparisons


def assert_images_equal(got: np.ndarray, want: np.ndarray, what: str) -> None:
    check(got.dtype == np.uint8, f"{what}: dtype {got.dtype}, want uint8")
    check(got.shape == want.shape, f"{what}: shape {got.shape}, want {want.shape}")
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)[0]
        raise AssertionError(f"{what}: first difference at {tuple(bad)}: {got[tuple(bad)]} != {want[tuple(bad)]}")


def png_pixels(png: bytes, channels: int) -> np.ndarray:
    """A PNG as (rows, cols, channels) uint8, in the mode its channels mean."""
    img = Image.open(io.BytesIO(png))
    want_mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    check(img.mode == want_mode, f"PNG mode {img.mode}, want {want_mode}")
    a = np.asarray(img)
    return a if a.ndim == 3 else a[..., np.newaxis]


def sample_rows(n: int) -> list[int]:
    return sorted(set(range(0, n, 97)) | {n - 1})


def keras_x(src: Source, split: str) -> np.ndarray:
    x = src.images[split]
    return x[..., 0] if src.channels == 1 else x


# ---------------------------------------------------------------- the checks


def check_cors(base: str, src: Source) -> str:
    url = f"{base}/datasets/{src.name}/export/train-labels.npy"
    pre = http(
        "OPTIONS",
        url,
        {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range, if-none-match",
        },
    )
    check(200 <= pre.status < 300, f"preflight: HTTP {pre.status}")
    check(pre.headers.get("access-control-allow-origin") in ("*", ORIGIN), f"preflight: ACAO {pre.headers}")
    check("get" in header_list(pre, "access-control-allow-methods"), "preflight does not allow GET")
    allowed = header_list(pre, "access-control-allow-headers")
    check("range" in allowed and "if-none-match" in allowed, f"preflight allows headers {allowed}")
    check(pre.headers.get("access-control-allow-credentials") is None, "preflight allows credentials")

    whole = get_ok(url)
    ranged = http("GET", url, {"Origin": ORIGIN, "Range": "bytes=-1000"})
    check(ranged.status == 206, f"ranged GET: HTTP {ranged.status}")
    check(ranged.body == whole[-1000:], "ranged GET: not the file's last 1000 bytes")
    check(ranged.headers.get("access-control-allow-origin") in ("*", ORIGIN), "ranged GET: no ACAO")
    exposed = header_list(ranged, "access-control-expose-headers")
    for h in ("content-range", "content-length", "accept-ranges", "etag"):
        check(h in exposed, f"ranged GET does not expose {h}: {exposed}")
    check(ranged.headers.get("content-range") == f"bytes {len(whole) - 1000}-{len(whole) - 1}/{len(whole)}", "Content-Range")
    return f"preflight {pre.status}, suffix range 206 of {len(whole)} bytes"


# Fashion-MNIST's published archives and MD5s, as torchvision's FashionMNIST.resources lists them
# (pytorch/vision, torchvision/datasets/mnist.py), which its downloader checks.
TORCHVISION_RESOURCES = {
    "fashion-mnist": [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ],
}


def check_raw(base: str, src: Source) -> str:
    # torchvision joins a mirror and a file name by plain concatenation: f"{mirror}{filename}".
    mirror = f"{base}/datasets/{src.name}/raw/"
    if src.name in TORCHVISION_RESOURCES:
        wanted = TORCHVISION_RESOURCES[src.name]
    else:
        wanted = []
        for path in src.files.values():
            with open(path, "rb") as f:
                wanted.append((os.path.basename(path), hashlib.md5(f.read()).hexdigest()))
    sizes = []
    for filename, md5 in wanted:
        got, size = digest_of(f"{mirror}{filename}", "md5")
        check(got == md5, f"{filename}: MD5 {got}, want {md5}")
        head = http("HEAD", f"{mirror}{filename}")
        check(head.status == 200 and head.headers.get("content-length") == str(size), f"HEAD {filename}: {head.status}")
        check(head.headers.get("etag") is not None, f"HEAD {filename}: no ETag")
        sizes.append(f"{filename} {size}")
    return ", ".join(sizes)


def check_npy_uint8(base: str, src: Source) -> str:
    for split in SPLITS:
        x = np.load(io.BytesIO(get_ok(f"{base}/datasets/{src.name}/export/{split}.npy?dtype=uint8")))
        assert_images_equal(x, src.images[split], f"{split}.npy?dtype=uint8")
        y = np.load(io.BytesIO(get_ok(f"{base}/datasets/{src.name}/export/{split}-labels.npy")))
        check(np.array_equal(y, src.labels[split]), f"{split}-labels.npy differs")
    return f"train {src.images['train'].shape}, test {src.images['test'].shape}"


def check_npz(base: str, src: Source) -> str:
    body = get_ok(f"{base}/datasets/{src.name}/export/{src.name}.npz")
    with np.load(io.BytesIO(body)) as npz:
        check(sorted(npz.files) == ["x_test", "x_train", "y_test", "y_train"], f"members {npz.files}")
        for split in SPLITS:
            assert_images_equal(npz[f"x_{split}"], keras_x(src, split), f"x_{split}")
            y = npz[f"y_{split}"]
            check(y.dtype == np.uint8 and np.array_equal(y, src.labels[split]), f"y_{split} differs ({y.dtype})")
    return f"{len(body)} bytes, x_train {keras_x(src, 'train').shape}"


def parquet_url(base: str, src: Source, split: str) -> str:
    return f"{base}/datasets/{src.name}/export/{split}.parquet"


def check_parquet_datasets(base: str, src: Source, cache: str) -> str:
    import datasets

    ds = datasets.load_dataset(
        "parquet", data_files={s: parquet_url(base, src, s) for s in SPLITS}, cache_dir=cache
    )
    for split in SPLITS:
        features = ds[split].features
        check(isinstance(features["image"], datasets.Image), f"{split}: image is {features['image']!r}")
        check(isinstance(features["label"], datasets.ClassLabel), f"{split}: label is {features['label']!r}")
        check(features["label"].names == src.classes, f"{split}: names {features['label'].names}")
        check(ds[split].num_rows == len(src.labels[split]), f"{split}: {ds[split].num_rows} rows")
        check(np.array_equal(np.array(list(ds[split]["label"])), src.labels[split]), f"{split}: labels differ")
        # The Image feature's own decoding, on a sample of rows.
        for i in sample_rows(ds[split].num_rows):
            img = np.asarray(ds[split][i]["image"])
            img = img if img.ndim == 3 else img[..., np.newaxis]
            assert_images_equal(img, src.images[split][i], f"{split} image {i} as datasets decodes it")
        # Every image: the PNG bytes datasets holds, decoded by PIL (twice as fast as building PIL images through it).
        raw = ds[split].cast_column("image", datasets.Image(decode=False))
        got = np.stack([png_pixels(item["bytes"], src.channels) for item in raw["image"]])
        assert_images_equal(got, src.images[split], f"{split} images")
    return f"Image + ClassLabel({len(src.classes)} names); {ds['train'].num_rows} + {ds['test'].num_rows} rows equal"


def check_parquet_polars(base: str, src: Source) -> str:
    import polars as pl

    rows = []
    for split in SPLITS:
        df = pl.read_parquet(parquet_url(base, src, split))
        check(df.columns == ["image", "label"], f"{split}: columns {df.columns}")
        check(df.schema["label"] == pl.Int64, f"{split}: label is {df.schema['label']}")
        check(
            df.schema["image"] == pl.Struct({"bytes": pl.Binary, "path": pl.String}), f"{split}: image is {df.schema['image']}"
        )
        check(np.array_equal(df["label"].to_numpy(), src.labels[split]), f"{split}: labels differ")
        images = df["image"].struct.unnest()
        check(images["path"].to_list() == [f"{split}/{i}.png" for i in range(df.height)], f"{split}: paths")
        pngs = images["bytes"]
        for i in sample_rows(df.height):
            assert_images_equal(png_pixels(pngs[i], src.channels), src.images[split][i], f"{split} image {i}")
        rows.append(df.height)
    return f"read_parquet over HTTP: {rows[0]} + {rows[1]} rows"


def check_parquet_pyarrow(base: str, src: Source) -> str:
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs = fsspec.filesystem("http")
    groups = []
    for split in SPLITS:
        url = parquet_url(base, src, split)
        head1, head2 = http("HEAD", url), http("HEAD", url)
        check(head1.status == 200, f"{split}: HEAD {head1.status}")
        etag = head1.headers.get("etag")
        check(etag is not None and etag == head2.headers.get("etag"), f"{split}: ETag {etag} not stable")
        size = int(head1.headers["content-length"])
        tail = http("GET", url, {"Range": "bytes=-4"})
        check(tail.status == 206 and tail.body == b"PAR1", f"{split}: suffix range {tail.status} {tail.body!r}")
        with fs.open(url, "rb") as f:
            pf = pq.ParquetFile(f)
            schema = pf.schema_arrow
            want_image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
            check(schema.names == ["image", "label"], f"{split}: columns {schema.names}")
            check(schema.field("image").type == want_image, f"{split}: image is {schema.field('image').type}")
            check(schema.field("label").type == pa.int64(), f"{split}: label is {schema.field('label').type}")
            check(schema.field("image").nullable and schema.field("label").nullable, f"{split}: columns not OPTIONAL")
            meta = pf.metadata.metadata or {}
            check(b"huggingface" in meta, f"{split}: no huggingface key in {list(meta)}")
            features = json.loads(meta[b"huggingface"])["info"]["features"]
            check(features["image"] == {"_type": "Image"}, f"{split}: image feature {features['image']}")
            check(
                features["label"].get("_type") == "ClassLabel" and features["label"].get("names") == src.classes,
                f"{split}: label feature {features['label']}",
            )
            per_group = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
            check(all(0 < n <= 10_000 for n in per_group), f"{split}: row groups {per_group}")
            table = pf.read()
        check(pf.metadata.num_rows == len(src.labels[split]), f"{split}: {pf.metadata.num_rows} rows")
        check(np.array_equal(table["label"].to_numpy(), src.labels[split]), f"{split}: labels differ")
        pngs = table["image"].combine_chunks().field("bytes")
        for i in sample_rows(table.num_rows):
            assert_images_equal(png_pixels(pngs[i].as_py(), src.channels), src.images[split][i], f"{split} image {i}")
        groups.append(f"{split} {size} bytes in {len(per_group)} row groups")
    return ", ".join(groups)


CROISSANT_1_1 = "http://mlcommons.org/croissant/1.1"


def as_list(v) -> list:
    return v if isinstance(v, list) else [] if v is None else [v]


def check_croissant(base: str, src: Source) -> str:
    """The Croissant 1.1 spec's required properties (docs/croissant-spec-1.1.md), and the files' sha256s."""
    url = f"{base}/datasets/{src.name}/croissant.json"
    res = http("GET", url)
    check(res.status == 200, f"HTTP {res.status}: {res.body[:300]!r}")
    check("json" in res.headers.get("content-type", ""), f"Content-Type {res.headers.get('content-type')}")
    doc = json.loads(res.body)
    ctx = doc.get("@context")
    check(isinstance(ctx, dict), "@context is not an object")
    check(str(ctx.get("cr", "")).rstrip("/") == "http://mlcommons.org/croissant", f"@context cr is {ctx.get('cr')}")
    check(ctx.get("@vocab") in ("https://schema.org/", "http://schema.org/") or "sc" in ctx, "@context: no schema.org vocab")
    check(doc.get("@type") in ("sc:Dataset", "Dataset", "https://schema.org/Dataset"), f"@type {doc.get('@type')}")
    conforms = as_list(doc.get("conformsTo", doc.get("dct:conformsTo")))
    check(CROISSANT_1_1 in conforms, f"conformsTo {conforms}")
    if "conformsTo" in doc:
        check(str(ctx.get("conformsTo", "")) in ("dct:conformsTo", "http://purl.org/dc/terms/conformsTo"), "conformsTo not mapped to dct")
    for key in ("name", "description", "license", "url", "creator", "datePublished"):
        check(doc.get(key) not in (None, "", []), f"required property {key} missing")
    check(urllib.parse.urlparse(str(doc["url"])).scheme in ("http", "https"), f"url {doc['url']}")
    for creator in as_list(doc["creator"]):
        check(isinstance(creator, dict) and creator.get("name"), f"creator {creator}")
    time.strptime(str(doc["datePublished"])[:10], "%Y-%m-%d")

    # Every @id once; references resolve.
    ids: dict[str, dict] = {}

    def collect(node) -> None:
        if isinstance(node, dict):
            if "@id" in node and len(node) > 1:
                check(node["@id"] not in ids, f"@id {node['@id']} defined twice")
                ids[node["@id"]] = node
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect({k: v for k, v in doc.items() if k != "@context"})

    dataset = http("GET", f"{base}/datasets/{src.name}")
    version = json.loads(dataset.body)["version"]
    files = as_list(doc.get("distribution"))
    check(len(files) > 0, "no distribution")
    digests = []
    for fo in files:
        check(fo.get("@type") in ("cr:FileObject", "cr:FileSet"), f"distribution entry of type {fo.get('@type')}")
        if fo["@type"] != "cr:FileObject":
            continue
        for key in ("@id", "name", "contentUrl", "encodingFormat", "sha256"):
            check(fo.get(key), f"FileObject {fo.get('@id')}: no {key}")
        content = urllib.parse.urljoin(url, fo["contentUrl"])
        check(version in content, f"FileObject {fo['@id']}: contentUrl {fo['contentUrl']} does not name version {version}")
        sha, size = digest_of(content, "sha256")
        check(sha == fo["sha256"], f"FileObject {fo['@id']}: sha256 {sha} of {size} served bytes, declared {fo['sha256']}")
        digests.append(fo["@id"])

    record_sets = as_list(doc.get("recordSet"))
    split_sets = 0
    classes_ok = False
    for rs in record_sets:
        check(rs.get("@type") == "cr:RecordSet", f"recordSet of type {rs.get('@type')}")
        rs_id = rs.get("@id")
        check(rs_id, "recordSet without @id")
        fields = as_list(rs.get("field"))
        check(len(fields) > 0, f"recordSet {rs_id} has no field")
        by_name = {}
        for field in fields:
            check(field.get("@type") == "cr:Field", f"{rs_id}: field of type {field.get('@type')}")
            check(str(field.get("@id", "")).startswith(f"{rs_id}/"), f"{rs_id}: field @id {field.get('@id')}")
            check(field.get("dataType"), f"{field['@id']}: no dataType")
            by_name[field["@id"].split("/", 1)[1]] = field
        if "data" in rs:
            names = [next(v for v in row.values() if isinstance(v, str)) for row in as_list(rs["data"])]
            classes_ok = classes_ok or names == src.classes
            continue
        for field in fields:
            source = field.get("source", {})
            ref = (source.get("fileObject") or source.get("fileSet") or {}).get("@id")
            check(ref in ids, f"{field['@id']}: source {source} names no distribution entry")
        image, label = by_name.get("image"), by_name.get("label")
        if image is not None and label is not None:
            check(image["dataType"] in ("sc:ImageObject", ["sc:ImageObject"]), f"{image['@id']}: {image['dataType']}")
            check(image["source"].get("extract", {}).get("column") == "image", f"{image['@id']}: extract {image['source']}")
            check(label["source"].get("extract", {}).get("column") == "label", f"{label['@id']}: extract {label['source']}")
            parquet = ids[image["source"]["fileObject"]["@id"]]
            check("parquet" in parquet.get("encodingFormat", ""), f"{rs_id}: reads {parquet.get('encodingFormat')}")
            split_sets += 1
    check(split_sets == len(SPLITS), f"{split_sets} record sets of image and label, want one per split")
    check(classes_ok, f"no record set holds the class names {src.classes}")
    return f"{len(digests)} files' sha256 match; {len(record_sets)} record sets"


def check_aliases(base: str, src: Source) -> str:
    """The default dataset's routes without /datasets/{name}: the same files."""
    pairs = [
        ("/export/train.npy?dtype=uint8", f"/datasets/{src.name}/export/train.npy?dtype=uint8"),
        (f"/export/{src.name}.npz", f"/datasets/{src.name}/export/{src.name}.npz"),
        ("/export/test.parquet", f"/datasets/{src.name}/export/test.parquet"),
        ("/raw/t10k-labels-idx1-ubyte.gz", f"/datasets/{src.name}/raw/t10k-labels-idx1-ubyte.gz"),
    ]
    for alias, own in pairs:
        a, b = http("HEAD", base + alias), http("HEAD", base + own)
        check(a.status == 200 and b.status == 200, f"HEAD {alias}: {a.status}, {own}: {b.status}")
        check(a.headers.get("content-length") == b.headers.get("content-length"), f"{alias}: another length than {own}")
    alias_doc = json.loads(get_ok(f"{base}/croissant.json"))
    check(alias_doc.get("name") == json.loads(get_ok(f"{base}/datasets/{src.name}/croissant.json")).get("name"), "croissant.json")
    return f"{len(pairs) + 1} aliases"


# ---------------------------------------------------------------- main


def run(name: str, fn: Callable[[], str]) -> None:
    start = time.monotonic()
    try:
        detail, ok = fn(), True
    except Exception as err:  # every failure is reported, and the other checks still run
        detail, ok = f"{type(err).__name__}: {err}", False
        traceback.print_exc(file=sys.stderr)
    seconds = round(time.monotonic() - start, 2)
    print(json.dumps({"check": name, "ok": ok, "detail": detail, "seconds": seconds}), flush=True)
    print(f"{'ok  ' if ok else 'FAIL'} {name} ({seconds} s): {detail}", file=sys.stderr, flush=True)


def main() -> None:
    with open(sys.argv[1]) as f:
        config = json.load(f)
    base = config["base"].rstrip("/")
    cache = tempfile.mkdtemp(prefix="idx-etl-hf-")
    for spec in config["datasets"]:
        src = load_source(spec)
        n = src.name
        if src.default:
            run(f"{n} cors", lambda: check_cors(base, src))
        run(f"{n} raw", lambda: check_raw(base, src))
        run(f"{n} npy uint8", lambda: check_npy_uint8(base, src))
        run(f"{n} npz", lambda: check_npz(base, src))
        run(f"{n} parquet datasets", lambda: check_parquet_datasets(base, src, cache))
        run(f"{n} parquet polars", lambda: check_parquet_polars(base, src))
        run(f"{n} parquet pyarrow", lambda: check_parquet_pyarrow(base, src))
        run(f"{n} croissant", lambda: check_croissant(base, src))
        if src.default:
            run(f"{n} aliases", lambda: check_aliases(base, src))


if __name__ == "__main__":
    main()
