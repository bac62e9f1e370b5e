/**
 * The archives a dataset's current version was loaded from, byte for byte:
 * GET /datasets/{name}/raw/{file}, and /raw/{file} for the default dataset.
 * Their URLs end in the published file names, so the Worker is a mirror that
 * torchvision's downloader accepts (`MNIST.mirrors = [".../datasets/mnist/raw/"]`:
 * it fetches `<mirror><file>` and checks the published MD5). The ETag is the
 * MD5 the run pinned: If-None-Match and If-Match are decided without R2, and
 * one Range is a ranged R2 read.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { DEFAULT_DATASET, registryEntry } from "../../core/registry";
import { readDataset } from "../../read/datasets";
import type { ByteRange } from "../../read/export";
import { rawKey, readRawArchives } from "../../read/raw-archives";
import { anyMatch, ifRangeMatches, noneMatch, parseRange } from "../preconditions";
import { isLoaded } from "../present";
import { ErrorSchema } from "../schemas/common";
import { ExportHeaders } from "../schemas/exports";
import { DatasetRawParams, RawParams } from "../schemas/raw";
import { errorResponses, jsonResponse, notFound, openApiRoutes, type AppEnv } from "../validation";
import { requireLoaded } from "./datasets";

export const rawRoutes = openApiRoutes();

/** The URL names the current version's file, which a reload replaces: caches revalidate (If-None-Match → 304). */
const REVALIDATE = "no-cache";

const header = (description: string) => ({ description, schema: { type: "string" as const } });
const fileHeaders = {
  ETag: header('`"<MD5>"`: the archive\'s MD5, as the run verified it.'),
  "Cache-Control": header(`\`${REVALIDATE}\`: a reload of the dataset may bring other archives.`),
  "Accept-Ranges": header("`bytes`."),
  "Content-Length": header("The archive's size, or the range's."),
  "Last-Modified": header("When the run kept it."),
};
const gzip = { "application/gzip": { schema: z.string().openapi({ format: "binary" }) } };

const DESCRIPTION =
  "An archive the dataset's current version was loaded from, as its run read and verified it (an EMNIST run's are the members of gzip.zip it used), kept in R2. Point torchvision at `…/raw/` as a mirror. ETag is the MD5: If-None-Match → 304, If-Match → 412, one Range → 206.";

function rawRoute<P extends typeof RawParams.shape, Path extends string>(path: Path, params: z.ZodObject<P>) {
  const alias = !("name" in params.shape);
  return createRoute({
    method: "get",
    path,
    tags: ["images"],
    summary: `A raw archive of ${alias ? DEFAULT_DATASET : "a dataset"}`,
    description: `${alias ? `GET /datasets/${DEFAULT_DATASET}${path}. ` : ""}${DESCRIPTION}`,
    request: { params, headers: ExportHeaders },
    responses: {
      200: { description: "The archive.", headers: fileHeaders, content: gzip },
      206: {
        description: "The bytes the Range asked for.",
        headers: { ...fileHeaders, "Content-Range": header("`bytes <first>-<last>/<size>`") },
        content: gzip,
      },
      304: { description: "If-None-Match named the current ETag: no body.", headers: { ETag: fileHeaders.ETag } },
      ...errorResponses({
        400: `A malformed file name${alias ? "" : " or dataset name"}.`,
        404: "An unknown or unloaded dataset, a file it was not loaded from, or one not kept (no R2 bucket bound, or a run that did not keep it): the error says which.",
        412: "If-Match named no current ETag.",
      }),
      416: {
        ...jsonResponse("The Range starts past the end of the archive.", ErrorSchema),
        headers: { "Content-Range": header("`bytes */<size>`") },
      },
    },
  });
}

rawRoutes.openapi(rawRoute("/datasets/{name}/raw/{file}", DatasetRawParams), (c) => {
  const { name, file } = c.req.valid("param");
  return serveRaw(c, name, file, c.req.valid("header"));
});
rawRoutes.openapi(rawRoute("/raw/{file}", RawParams), (c) =>
  serveRaw(c, DEFAULT_DATASET, c.req.valid("param").file, c.req.valid("header")),
);

interface Conditions {
  readonly Range?: string;
  readonly "If-Range"?: string;
  readonly "If-None-Match"?: string;
  readonly "If-Match"?: string;
}

async function serveRaw(c: Context<AppEnv>, name: string, file: string, req: Conditions): Promise<Response> {
  const dataset = await requireLoaded(c.env.DB, name);
  const { version } = dataset;
  const archives = await readRawArchives(c.env.DB, version);
  const archive = archives.find((a) => a.file === file);
  if (archive === undefined)
    return notFound(
      `${name} was not loaded from ${file}: its version ${version} was loaded from ${archives.map((a) => a.file).join(", ") || "archives it did not record"}`,
    );
  const bucket = c.env.EXPORTS;
  if (!bucket)
    return notFound(
      `${name}'s ${file} is not kept: raw archives are kept in R2, and this Worker has no EXPORTS bucket`,
    );

  const etag = `"${archive.md5}"`;
  const validators = { ETag: etag, "Cache-Control": REVALIDATE };
  if (req["If-Match"] !== undefined && !anyMatch(req["If-Match"], etag))
    return c.json({ error: `If-Match names no current ETag; the current one is ${etag}` }, 412, validators);
  if (req["If-None-Match"] !== undefined && noneMatch(req["If-None-Match"], etag)) return c.body(null, 304, validators);

  const key = rawKey(name, version, file);
  const kept = await bucket.head(key);
  if (kept === null)
    return notFound(
      `${name}'s ${file} is not kept: the run that loaded version ${version} did not keep its archives (it predates raw archives, or R2 failed); a forced reload keeps them: POST /datasets/${name}/runs {"force": true}`,
    );
  const size = kept.size;
  let range: ByteRange | undefined;
  if (req.Range !== undefined && (req["If-Range"] === undefined || ifRangeMatches(req["If-Range"], etag))) {
    const parsed = parseRange(req.Range, size);
    if ("kind" in parsed) {
      if (parsed.kind === "unsatisfiable")
        return c.json({ error: `Range ${req.Range} is not satisfiable: ${file} is ${size} bytes` }, 416, {
          "Content-Range": `bytes */${size}`,
          "Accept-Ranges": "bytes",
        });
    } else range = parsed;
  }
  const status = range ? 206 : 200;
  const headers: Record<string, string> = {
    ...validators,
    "Last-Modified": kept.uploaded.toUTCString(),
    "Accept-Ranges": "bytes",
    "Content-Type": "application/gzip",
    "Content-Disposition": `attachment; filename="${file}"`,
    "Content-Length": String(range ? range.end - range.start : size),
    ...(range ? { "Content-Range": `bytes ${range.start}-${range.end - 1}/${size}` } : {}),
  };
  if (c.req.method === "HEAD") return c.body(null, status, headers);
  const object = await bucket.get(
    key,
    range ? { range: { offset: range.start, length: range.end - range.start } } : {},
  );
  // Deleted since the head: a later load's export job pruned it.
  if (object === null) return notFound(`${name}'s ${file} of version ${version} was replaced while it was asked for`);
  return c.body(object.body, status, headers);
}
