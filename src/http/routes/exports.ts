/**
 * A dataset's split as a NumPy .npy file, its images or its labels, streamed
 * page by page, with the HTTP caching and range machinery that makes
 * repeating or resuming one cheap: GET /datasets/{name}/export/{file} and
 * /datasets/{name}/export/v/{version}/{file}, and /export/… for the default
 * dataset.
 *
 *  - The dataset version is the run whose swap put the dataset's rows in D1
 *    (its catalog entry). The ETag is `"<version>-<file name>"`: strong, since
 *    one version and one span are always the same bytes, and a run id names
 *    one dataset's version only.
 *  - If-None-Match → 304 and If-Match → 412 are decided on one statement that
 *    reads the catalog and the swap log: not a single image row.
 *  - One `Range` → 206 with only the rows that range covers; If-Range gates it.
 *  - …/export/v/{version}/… is immutable while that version is current and 410
 *    once a later swap of the same dataset has replaced it: never another
 *    version's bytes, nor another dataset's (404). The unversioned URL is
 *    `no-cache` and names its versioned twin in Content-Location.
 */
import { createRoute, z, type RouteConfig } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Split } from "../../core/datasets";
import { DEFAULT_DATASET } from "../../core/registry";
import { readDataset } from "../../read/datasets";
import { exportStem, npyByteLength, npyExport, type ByteRange, type ExportKind } from "../../read/export";
import { requestExports } from "../../pipeline/materialise";
import { storedExport } from "../../read/export-store";
import { readExtent } from "../../read/images";
import { anyMatch, ifRangeMatches, noneMatch, parseRange } from "../preconditions";
import { ErrorSchema } from "../schemas/common";
import {
  DatasetExportParams,
  DatasetVersionedExportParams,
  ExportHeaders,
  ExportParams,
  ExportQuery,
  VersionedExportParams,
} from "../schemas/exports";
import { bad, errorResponses, jsonResponse, notFound, openApiRoutes, type AppEnv } from "../validation";
import { BROKEN_409, usable } from "./datasets";

export const exportRoutes = openApiRoutes();

/** A versioned URL's Cache-Control: its bytes never change (a new dataset is a new URL). */
export const IMMUTABLE = "public, max-age=31536000, immutable";
/** The unversioned URL's: caches may keep it but must revalidate (If-None-Match → 304). */
export const REVALIDATE = "no-cache";

const binary = { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } };
const header = (description: string) => ({ description, schema: { type: "string" as const } });
const ETAG = header('`"<version>-<file name>"`: strong; a new load of the dataset (a new swap) is a new ETag.');

/** The routes' URLs: the default dataset's aliases, and every dataset's own. */
type Flavour = "alias" | "dataset";
const versionedUrl = (flavour: Flavour) =>
  flavour === "alias" ? "/export/v/<version>/<file>" : "/datasets/<name>/export/v/<version>/<file>";

const fileHeaders = (flavour: Flavour, versioned: boolean) => ({
  ETag: ETAG,
  "Last-Modified": header("When the dataset was swapped in."),
  "Cache-Control": header(versioned ? `\`${IMMUTABLE}\`` : `\`${REVALIDATE}\`: revalidate with If-None-Match.`),
  ...(versioned
    ? {}
    : {
        "Content-Location": header(
          `The same file's versioned URL, ${versionedUrl(flavour)}?<offset, limit>: cacheable as immutable.`,
        ),
      }),
  "Accept-Ranges": header("`bytes`."),
  "X-Export-Source": header(
    "`r2` (the file written to R2 after the load) or `d1` (read page by page): the same bytes either way.",
  ),
  "Content-Length": header("Exact: the whole file's size, or the range's."),
  "Content-Disposition": header(
    flavour === "alias" ? 'attachment; filename="<file name>"' : 'attachment; filename="<name>-<file name>"',
  ),
});

function exportResponses(flavour: Flavour, versioned: boolean) {
  const headers = fileHeaders(flavour, versioned);
  return {
    200: {
      description: "The .npy file; a new load of the dataset mid-download cuts it off.",
      headers,
      content: binary,
    },
    206: {
      description: "The bytes the Range asked for.",
      headers: { ...headers, "Content-Range": header("`bytes <first>-<last>/<size>`") },
      content: binary,
    },
    304: {
      description: "If-None-Match named the current ETag: no body.",
      headers: {
        ETag: ETAG,
        "Cache-Control": headers["Cache-Control"],
        ...(versioned ? {} : { "Content-Location": fileHeaders(flavour, false)["Content-Location"] }),
      },
    },
    ...errorResponses({
      400: `An unknown file, a bad offset or limit${flavour === "dataset" ? ", an invalid dataset name" : ""}${versioned ? ", or a malformed version" : ""}.`,
      404: `${flavour === "dataset" ? "An unknown dataset, or one" : "The dataset is"} not loaded yet, or the split holds no images${versioned ? ", or no run of the dataset with that id was ever swapped in" : ""}.`,
      409: BROKEN_409,
      412: "If-Match named no current ETag.",
    }),
    416: {
      ...jsonResponse("The Range starts past the end of the file.", ErrorSchema),
      headers: { "Content-Range": header("`bytes */<size>`") },
    },
    ...(versioned
      ? {
          410: {
            ...jsonResponse(
              "A later load of the dataset has replaced this version for good; the Link header names the current one.",
              ErrorSchema,
            ),
            headers: {
              Link: header(
                `\`<${versionedUrl(flavour).replace("<version>", "<current version>")}>; rel="latest-version"\``,
              ),
              "Cache-Control": header("`no-cache`"),
            },
          },
        }
      : {}),
  } satisfies RouteConfig["responses"];
}

const DESCRIPTION =
  'idx `offset` … `offset + n - 1` of a split (default: all) as .npy: images float32 (n, rows, cols, channels), labels uint8 (n,). Strong ETag `"<version>-<file name>"`: If-None-Match → 304, If-Match → 412, one Range → 206.';
const UNVERSIONED = "`no-cache`; Content-Location names the same file's immutable versioned URL.";
const VERSIONED = `\`${IMMUTABLE}\` while {version} is current; 410 once a later load has replaced it.`;

/**
 * One export route's declaration. The four differ only by their parameters:
 * whether the URL names the dataset (else it is the default's alias) and a version.
 */
function exportRoute<P extends typeof ExportParams.shape, Path extends string>(path: Path, params: z.ZodObject<P>) {
  const flavour: Flavour = "name" in params.shape ? "dataset" : "alias";
  const versioned = "version" in params.shape;
  const of = flavour === "alias" ? DEFAULT_DATASET : "a dataset";
  return createRoute({
    method: "get",
    path,
    tags: ["images"],
    summary: `Export a split of ${of} as .npy${versioned ? ", of one version" : ""}`,
    description: `${flavour === "alias" ? `GET /datasets/${DEFAULT_DATASET}${path}. ` : ""}${DESCRIPTION} ${versioned ? VERSIONED : UNVERSIONED}`,
    request: { params, query: ExportQuery, headers: ExportHeaders },
    responses: exportResponses(flavour, versioned),
  });
}

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

interface ExportRequest {
  readonly dataset: string;
  /** Which URLs the answer names (Content-Location, Link) and how the file is called. */
  readonly flavour: Flavour;
  readonly split: Split;
  readonly kind: ExportKind;
  readonly offset?: number;
  readonly limit?: number;
  /** The versioned URL's version; undefined for …/export/{file}. */
  readonly version?: string;
  readonly Range?: string;
  readonly "If-Range"?: string;
  readonly "If-None-Match"?: string;
  readonly "If-Match"?: string;
}

/** A route's validated parts as one request: a URL without a dataset name is the default dataset's alias. */
const exportRequest = (
  params: { readonly name?: string; readonly version?: string; readonly file: Pick<ExportRequest, "split" | "kind"> },
  query: Pick<ExportRequest, "offset" | "limit">,
  headers: Pick<ExportRequest, "Range" | "If-Range" | "If-None-Match" | "If-Match">,
): ExportRequest => ({
  dataset: params.name ?? DEFAULT_DATASET,
  flavour: params.name === undefined ? "alias" : "dataset",
  ...params.file,
  ...(params.version === undefined ? {} : { version: params.version }),
  ...query,
  ...headers,
});

const exportBase = (req: ExportRequest) => (req.flavour === "alias" ? "/export" : `/datasets/${req.dataset}/export`);
const versionedPath = (req: ExportRequest, version: string, query: string) =>
  `${exportBase(req)}/v/${version}/${exportStem(req.split, req.kind)}.npy${query}`;

/**
 * One export: everything up to the preconditions comes from one statement
 * (the catalog, which holds the version, the rows per split and the shape);
 * the swap log is read again only for a versioned URL that is not current.
 * `again`: the catalog is read a second time, once, if a swap made the asked
 * version current between the two reads.
 */
async function serveExport(c: Context<AppEnv>, req: ExportRequest, again = false): Promise<Response> {
  const { dataset: name, split, kind, offset = 0, limit, version: asked } = req;
  const paging = new URLSearchParams();
  if (req.offset !== undefined) paging.set("offset", String(req.offset));
  if (limit !== undefined) paging.set("limit", String(limit));
  const query = paging.size > 0 ? `?${paging}` : "";

  const dataset = usable(name, await readDataset(c.env.DB, name));
  const { version, shape } = dataset;
  if (asked !== undefined && asked !== version) {
    const extent = await readExtent(c.env.DB, name, split, asked);
    if (!extent.askedWasSwapped)
      return notFound(`no ${name} version ${asked}: no run of ${name} with that id was swapped in`);
    if (extent.version === asked && !again) return serveExport(c, req, true);
    // A replaced version is gone for good (the swap dropped its rows), so 410 rather than 409: there is no
    // conflict the client could resolve and retry; it can only fetch the current version, named here.
    const current = extent.version === null ? undefined : versionedPath(req, extent.version, query);
    return c.json(
      {
        error: `${name} version ${asked} has been replaced by ${extent.version}${current ? `; the current file is ${current}` : ""}`,
      },
      410,
      { "Cache-Control": REVALIDATE, ...(current ? { Link: `<${current}>; rel="latest-version"` } : {}) },
    );
  }
  const rows = dataset.counts[split];
  if (rows === 0) return notFound(`split ${split} of ${name} holds no images`);
  if (offset > rows) bad(`offset must be at most ${rows} (the size of ${name}'s ${split}), got ${offset}`);
  const count = Math.min(limit ?? rows, rows - offset);
  const file = `${exportStem(split, kind)}${offset || limit ? `-${offset}-${offset + count}` : ""}.npy`;
  const size = npyByteLength({ kind, count, shape });

  const etag = `"${version}-${file}"`;
  const validators: Record<string, string> = {
    ETag: etag,
    "Cache-Control": asked === undefined ? REVALIDATE : IMMUTABLE,
    ...(asked === undefined ? { "Content-Location": versionedPath(req, version, query) } : {}),
  };
  const modified = dataset.swappedAt === null ? NaN : Date.parse(dataset.swappedAt);

  // Preconditions in RFC 9110 §13.2.2's order, all before any image row is read.
  if (req["If-Match"] !== undefined && !anyMatch(req["If-Match"], etag))
    return c.json({ error: `If-Match names no current ETag; the current one is ${etag}` }, 412, validators);
  if (req["If-None-Match"] !== undefined && noneMatch(req["If-None-Match"], etag)) return c.body(null, 304, validators);

  let range: ByteRange | undefined;
  if (req.Range !== undefined && (req["If-Range"] === undefined || ifRangeMatches(req["If-Range"], etag))) {
    const parsed = parseRange(req.Range, size);
    if ("kind" in parsed) {
      if (parsed.kind === "unsatisfiable")
        return c.json({ error: `Range ${req.Range} is not satisfiable: the file is ${size} bytes` }, 416, {
          "Content-Range": `bytes */${size}`,
          "Accept-Ranges": "bytes",
        });
    } else range = parsed;
  }

  // Downloads of several datasets land side by side: a dataset's own URL names the file after it.
  const filename = req.flavour === "alias" ? file : `${name}-${file}`;
  const headers: Record<string, string> = {
    ...validators,
    ...(Number.isNaN(modified) ? {} : { "Last-Modified": new Date(modified).toUTCString() }),
    "Accept-Ranges": "bytes",
    "Content-Type": "application/octet-stream",
    "Content-Disposition": `attachment; filename="${filename}"`,
    ...(range ? { "Content-Range": `bytes ${range.start}-${range.end - 1}/${size}` } : {}),
  };
  const status = range ? 206 : 200;
  const length = range ? range.end - range.start : size;
  // HEAD: the same status and headers, and no stream (nothing would read it).
  if (c.req.method === "HEAD") return c.body(null, status, { ...headers, "Content-Length": String(length) });

  // Materialised to R2 after the load: a byte range of a stored file, and no image row read from D1.
  const span = { dataset: name, shape, split, kind, offset, count, version };
  const stored =
    dataset.exported && c.env.EXPORTS ? await storedExport(c.env.EXPORTS, { ...span, rows }, range) : undefined;
  const body = stored ?? npyExport(c.env.DB, span, undefined, range);
  headers["X-Export-Source"] = stored ? "r2" : "d1";
  // Files not written (the job failed, or the bucket was bound after the load): have them written now.
  if (!dataset.exported && c.env.EXPORTS) c.executionCtx.waitUntil(requestExports(c.env, name));
  // A fixed length lets clients show progress and detect a cut-off download; it is the length computed above
  // from the header and the row count, and FixedLengthStream errors a body that yields more or fewer bytes.
  const { readable, writable } = new FixedLengthStream(length);
  c.executionCtx.waitUntil(
    body.body.pipeTo(writable).catch((err: unknown) => console.error(`export ${c.req.url}: ${err}`)),
  );
  return c.body(readable, status, { ...headers, "Content-Length": String(length) });
}
