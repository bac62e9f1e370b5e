/**
 * A dataset's export files, with the HTTP caching and range machinery that
 * makes repeating or resuming a download cheap: GET /datasets/{name}/export/{file}
 * and /datasets/{name}/export/v/{version}/{file}, and /export/… for the
 * default dataset. The files: per split `<split>.npy` (float32, or uint8 with
 * `?dtype=uint8`), `<split>-labels.npy` and `<split>.parquet`, and the
 * dataset's Keras `<name>.npz` (read/export-files.ts).
 *
 *  - The dataset version is the run whose swap put the dataset's rows in D1
 *    (its catalog entry). The ETag is `"<version>-<file name>"`: strong, since
 *    one version and one file are always the same bytes, and a run id names
 *    one dataset's version only.
 *  - If-None-Match → 304 and If-Match → 412 are decided before a single image
 *    row is read (http/download.ts); one `Range` → 206 with only the rows that
 *    range covers (all rows before it, for the .npz); If-Range gates it.
 *  - …/export/v/{version}/… is immutable while that version is current and 410
 *    once a later swap of the same dataset has replaced it: never another
 *    version's bytes, nor another dataset's (404). The unversioned URL is
 *    `no-cache` and names its versioned twin in Content-Location.
 */
import type { Context } from "hono";
import { DEFAULT_DATASET, registryEntry } from "../../core/registry";
import { readDataset } from "../../read/datasets";
import { exportStem, npyByteLength, npyExport, type ExportKind } from "../../read/export";
import {
  encodedFile,
  fileName,
  fileSize,
  mediaType,
  readFacts,
  storedFile,
  type ExportFile,
} from "../../read/export-files";
import { storedExport } from "../../read/export-store";
import { readExtent } from "../../read/images";
import { requestExports } from "../../pipeline/materialise";
import { download, type IfHeaders } from "../download";
import { isLoaded } from "../present";
import { exportRoute, IMMUTABLE, REVALIDATE, type Flavour } from "../schemas/export-routes";
import {
  DatasetExportParams,
  DatasetVersionedExportParams,
  ExportParams,
  VersionedExportParams,
  type FileParam,
} from "../schemas/exports";
import { bad, notFound, openApiRoutes, type AppEnv } from "../validation";
import { requireLoaded } from "./datasets";

export { IMMUTABLE, REVALIDATE };

export const exportRoutes = openApiRoutes();

exportRoutes.openapi(exportRoute("/datasets/{name}/export/{file}", DatasetExportParams), (c) =>
  serveExport(c, exportRequest(c.req.valid("param"), c.req.valid("query"), c.req.valid("header"))),
);
exportRoutes.openapi(exportRoute("/datasets/{name}/export/v/{version}/{file}", DatasetVersionedExportParams), (c) =>
  serveExport(c, exportRequest(c.req.valid("param"), c.req.valid("query"), c.req.valid("header"))),
);
exportRoutes.openapi(exportRoute("/export/{file}", ExportParams), (c) =>
  serveExport(c, exportRequest(c.req.valid("param"), c.req.valid("query"), c.req.valid("header"))),
);
exportRoutes.openapi(exportRoute("/export/v/{version}/{file}", VersionedExportParams), (c) =>
  serveExport(c, exportRequest(c.req.valid("param"), c.req.valid("query"), c.req.valid("header"))),
);

interface Query {
  readonly offset?: number;
  readonly limit?: number;
  readonly dtype?: "float32" | "uint8";
}

interface ExportRequest extends Query {
  readonly dataset: string;
  /** Which URLs the answer names (Content-Location, Link) and how the file is called. */
  readonly flavour: Flavour;
  readonly file: FileParam;
  /** The versioned URL's version; undefined for …/export/{file}. */
  readonly version?: string;
  readonly headers: IfHeaders;
}

/** A route's validated parts as one request: a URL without a dataset name is the default dataset's alias. */
const exportRequest = (
  params: { readonly name?: string; readonly version?: string; readonly file: FileParam },
  query: Query,
  headers: IfHeaders,
): ExportRequest => ({
  dataset: params.name ?? DEFAULT_DATASET,
  flavour: params.name === undefined ? "alias" : "dataset",
  file: params.file,
  ...(params.version === undefined ? {} : { version: params.version }),
  ...query,
  headers,
});

/** The file the request names, once its parameters are checked against its format. */
function exportFile(req: ExportRequest): ExportFile {
  const { file } = req;
  const npyImages = file.format === "npy" && file.kind === "images";
  if (req.dtype !== undefined && !npyImages)
    bad(`dtype applies to the images .npy (<split>.npy) only, not to ${urlName(req)}`);
  if (file.format !== "npy" && (req.offset !== undefined || req.limit !== undefined))
    bad(`offset and limit apply to the .npy files only, not to ${urlName(req)}`);
  if (file.format === "npz") {
    if (file.dataset !== req.dataset) notFound(`no file ${urlName(req)}: ${req.dataset}'s is ${req.dataset}.npz`);
    return { format: "npz" };
  }
  if (file.format === "parquet") return file;
  const kind: ExportKind = file.kind === "images" && req.dtype === "uint8" ? "uint8" : file.kind;
  return { format: "npy", split: file.split, kind };
}

/** The file name as the URL has it. */
const urlName = (req: ExportRequest): string =>
  req.file.format === "npz"
    ? `${req.file.dataset}.npz`
    : req.file.format === "parquet"
      ? `${req.file.split}.parquet`
      : `${exportStem(req.file.split, req.file.kind)}.npy`;

const exportBase = (req: ExportRequest) => (req.flavour === "alias" ? "/export" : `/datasets/${req.dataset}/export`);

/** The query a file's URLs carry on: the slice and the dtype, as asked. */
function queryOf(req: ExportRequest): string {
  const q = new URLSearchParams();
  if (req.offset !== undefined) q.set("offset", String(req.offset));
  if (req.limit !== undefined) q.set("limit", String(req.limit));
  if (req.dtype !== undefined) q.set("dtype", req.dtype);
  return q.size > 0 ? `?${q}` : "";
}

const versionedPath = (req: ExportRequest, version: string) =>
  `${exportBase(req)}/v/${version}/${urlName(req)}${queryOf(req)}`;

/**
 * One export: everything up to the preconditions comes from the catalog
 * (which holds the version, the rows per split and the shape), and for a
 * Parquet file the class names; the swap log is read again only for a
 * versioned URL that is not current. `again`: the catalog is read a second
 * time, once, if a swap made the asked version current between the two reads.
 */
async function serveExport(c: Context<AppEnv>, req: ExportRequest, again = false): Promise<Response> {
  const { dataset: name, version: asked } = req;
  const file = exportFile(req);
  const dataset = await requireLoaded(c.env.DB, name);
  const { version, shape } = dataset;
  if (asked !== undefined && asked !== version) {
    const extent = await readExtent(c.env.DB, name, file.format === "npz" ? "train" : file.split, asked);
    if (!extent.askedWasSwapped)
      return notFound(`no ${name} version ${asked}: no run of ${name} with that id was swapped in`);
    if (extent.version === asked && !again) return serveExport(c, req, true);
    // A replaced version is gone for good (the swap dropped its rows), so 410 rather than 409: there is no
    // conflict the client could resolve and retry; it can only fetch the current version, named here.
    const current = extent.version === null ? undefined : versionedPath(req, extent.version);
    return c.json(
      {
        error: `${name} version ${asked} has been replaced by ${extent.version}${current ? `; the current file is ${current}` : ""}`,
      },
      410,
      { "Cache-Control": REVALIDATE, ...(current ? { Link: `<${current}>; rel="latest-version"` } : {}) },
    );
  }
  if (file.format !== "npz" && dataset.counts[file.split] === 0)
    return notFound(`split ${file.split} of ${name} holds no images`);
  // Class names only where the layout needs them (the Parquet footer): other files cost no statement more.
  const facts =
    file.format === "parquet"
      ? (await readFacts(c.env.DB, dataset))!
      : { dataset: name, version, shape, counts: dataset.counts, classNames: [] };
  const bucket = dataset.exported ? c.env.EXPORTS : undefined;

  let fileLabel: string;
  let size: number;
  let body: Parameters<typeof download>[1]["body"];
  if (file.format === "npy") {
    const rows = dataset.counts[file.split];
    const { offset = 0, limit } = req;
    if (offset > rows) bad(`offset must be at most ${rows} (the size of ${name}'s ${file.split}), got ${offset}`);
    const count = Math.min(limit ?? rows, rows - offset);
    fileLabel = `${exportStem(file.split, file.kind)}${offset || limit ? `-${offset}-${offset + count}` : ""}.npy`;
    size = npyByteLength({ kind: file.kind, count, shape });
    const span = { dataset: name, shape, split: file.split, kind: file.kind, offset, count, version };
    body = async (range) => {
      // Materialised to R2 after the load: a byte range of a stored file, and no image row read from D1.
      const stored = bucket ? await storedExport(bucket, { ...span, rows }, range) : undefined;
      return stored ? { ...stored, source: "r2" } : { ...npyExport(c.env.DB, span, undefined, range), source: "d1" };
    };
  } else {
    fileLabel = fileName(name, file);
    size = fileSize(facts, file);
    body = async (range) => {
      const stored = bucket ? await storedFile(bucket, facts, file, range) : undefined;
      return stored ? { ...stored, source: "r2" } : { ...encodedFile(c.env.DB, facts, file, range), source: "d1" };
    };
  }
  // Files not written (the job failed, or the bucket was bound after the load): have them written now.
  const served = body;
  body = async (range) => {
    if (!dataset.exported && c.env.EXPORTS) c.executionCtx.waitUntil(requestExports(c.env, name));
    return served(range);
  };

  return download(
    c,
    {
      etag: `"${version}-${fileLabel}"`,
      validators: {
        ETag: `"${version}-${fileLabel}"`,
        "Cache-Control": asked === undefined ? REVALIDATE : IMMUTABLE,
        ...(asked === undefined ? { "Content-Location": versionedPath(req, version) } : {}),
      },
      size,
      swappedAt: dataset.swappedAt,
      // Downloads of several datasets land side by side: a dataset's own URL names the file after it.
      filename: req.flavour === "alias" || file.format === "npz" ? fileLabel : `${name}-${fileLabel}`,
      contentType: mediaType(file),
      body,
    },
    req.headers,
  );
}
