/**
 * The OpenAPI declarations of the four export routes (routes/exports.ts): the
 * default dataset's aliases and every dataset's own URL, each unversioned and
 * versioned, with the headers and statuses every export file answers with.
 */
import { createRoute, z, type RouteConfig } from "@hono/zod-openapi";
import { DEFAULT_DATASET } from "../../core/registry";
import { errorResponses, jsonResponse } from "../validation";
import { BROKEN_409, ErrorSchema } from "./common";
import { ExportHeaders, ExportParams, ExportQuery } from "./exports";

/** A versioned URL's Cache-Control: its bytes never change (a new dataset is a new URL). */
export const IMMUTABLE = "public, max-age=31536000, immutable";
/** The unversioned URL's: caches may keep it but must revalidate (If-None-Match → 304). */
export const REVALIDATE = "no-cache";

const bytes = { schema: z.string().openapi({ format: "binary" }) };
const binary = { "application/octet-stream": bytes, "application/vnd.apache.parquet": bytes };
const header = (description: string) => ({ description, schema: { type: "string" as const } });
const ETAG = header('`"<version>-<file name>"`: strong; a new load of the dataset (a new swap) is a new ETag.');

/** The routes' URLs: the default dataset's aliases, and every dataset's own. */
export type Flavour = "alias" | "dataset";
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
          `The same file's versioned URL, ${versionedUrl(flavour)}?<offset, limit, dtype>: cacheable as immutable.`,
        ),
      }),
  "Accept-Ranges": header("`bytes`."),
  "X-Export-Source": header(
    "`r2` (the file written to R2 after the load) or `d1` (read page by page): the same bytes either way.",
  ),
  "Content-Length": header("Exact: the whole file's size, or the range's."),
  "Content-Disposition": header(
    flavour === "alias"
      ? 'attachment; filename="<file name>"'
      : 'attachment; filename="<name>-<file name>"` (the .npz: `<name>.npz`)',
  ),
});

function exportResponses(flavour: Flavour, versioned: boolean) {
  const headers = fileHeaders(flavour, versioned);
  return {
    200: {
      description: "The file; a new load of the dataset mid-download cuts it off.",
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
      400: `An unknown file, a bad offset, limit or dtype, or one on a file it does not apply to${flavour === "dataset" ? ", an invalid dataset name" : ""}${versioned ? ", or a malformed version" : ""}.`,
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
  'A split as .npy (idx `offset` … `offset + n - 1`, default all): images float32 (n, rows, cols, channels), or uint8 with `dtype=uint8`, labels uint8 (n,); a split as Parquet (Hugging Face Image and ClassLabel); the dataset as Keras\' `<dataset>.npz`. Strong ETag `"<version>-<file name>"`: If-None-Match → 304, If-Match → 412, one Range → 206.';
const UNVERSIONED = "`no-cache`; Content-Location names the same file's immutable versioned URL.";
const VERSIONED = `\`${IMMUTABLE}\` while {version} is current; 410 once a later load has replaced it.`;

/**
 * One export route's declaration. The four differ only by their parameters:
 * whether the URL names the dataset (else it is the default's alias) and a version.
 */
export function exportRoute<P extends typeof ExportParams.shape, Path extends string>(
  path: Path,
  params: z.ZodObject<P>,
) {
  const flavour: Flavour = "name" in params.shape ? "dataset" : "alias";
  const versioned = "version" in params.shape;
  const of = flavour === "alias" ? DEFAULT_DATASET : "a dataset";
  return createRoute({
    method: "get",
    path,
    tags: ["images"],
    summary: `Export ${of} as .npy, Parquet or .npz${versioned ? ", of one version" : ""}`,
    description: `${flavour === "alias" ? `GET /datasets/${DEFAULT_DATASET}${path}. ` : ""}${DESCRIPTION} ${versioned ? VERSIONED : UNVERSIONED}`,
    request: { params, query: ExportQuery, headers: ExportHeaders },
    responses: exportResponses(flavour, versioned),
  });
}
