/**
 * GET /datasets/{name}/croissant.json (and GET /croissant.json for the
 * default dataset): the loaded version as Croissant 1.1 JSON-LD
 * (http/croissant.ts), which names each export file's SHA-256. Those are
 * computed by the export job after a load; until it has recorded them the
 * answer is 503 with Retry-After, and the job is queued (without an R2
 * bucket, it only hashes), rather than a document that a validator would
 * refuse for its missing checksums.
 */
import { createRoute } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { DatasetAbout } from "../../core/datasets";
import { DEFAULT_DATASET, registryEntry } from "../../core/registry";
import { redactUrl } from "../../codec/source";
import { database } from "../../db/database";
import { readFileRecords } from "../../db/exports";
import { getRun } from "../../db/run-reads";
import { readDataset } from "../../read/datasets";
import { readFacts } from "../../read/export-files";
import { requestExports } from "../../pipeline/materialise";
import { croissant, customAbout } from "../croissant";
import { noneMatch } from "../preconditions";
import { isLoaded, presentExports } from "../present";
import { DatasetParams, ErrorSchema } from "../schemas/common";
import { CroissantSchema } from "../schemas/croissant";
import { errorResponses, jsonResponse, openApiRoutes, type AppEnv } from "../validation";
import { requireLoaded } from "./datasets";

export const croissantRoutes = openApiRoutes();

/** Seconds a client waits before asking again while the digests are computed. */
const RETRY_AFTER = 30;

const DESCRIPTION =
  'The loaded version as Croissant 1.1 JSON-LD: name, description, license, creator and citation; a FileObject per export file (versioned URL, media type, size, SHA-256); a record set per split reading its Parquet file, and the classes. ETag `"<version>-croissant.json"`.';

const responses = {
  200: { description: "The document.", content: { "application/ld+json": { schema: CroissantSchema } } },
  304: { description: "If-None-Match named the current ETag." },
  503: {
    ...jsonResponse("The files' SHA-256s are not computed yet; Retry-After says when to ask again.", ErrorSchema),
    headers: { "Retry-After": { description: "Seconds.", schema: { type: "string" as const } } },
  },
};

croissantRoutes.openapi(
  createRoute({
    method: "get",
    path: "/datasets/{name}/croissant.json",
    tags: ["datasets"],
    summary: "A dataset as Croissant metadata",
    description: DESCRIPTION,
    request: { params: DatasetParams },
    responses: {
      ...responses,
      ...errorResponses({ 400: "An invalid dataset name.", 404: "An unknown dataset, or one not loaded." }),
    },
  }),
  (c) => serveCroissant(c, c.req.valid("param").name),
);

croissantRoutes.openapi(
  createRoute({
    method: "get",
    path: "/croissant.json",
    tags: ["datasets"],
    summary: `${DEFAULT_DATASET} as Croissant metadata`,
    description: `GET /datasets/${DEFAULT_DATASET}/croissant.json. ${DESCRIPTION}`,
    responses: { ...responses, ...errorResponses({ 404: "The dataset is not loaded." }) },
  }),
  (c) => serveCroissant(c, DEFAULT_DATASET),
);

async function serveCroissant(c: Context<AppEnv>, name: string): Promise<Response> {
  const dataset = await requireLoaded(c.env.DB, name);
  const etag = `"${dataset.version}-croissant.json"`;
  const validators = { ETag: etag, "Cache-Control": "no-cache" };
  const inm = c.req.header("If-None-Match");
  if (inm !== undefined && noneMatch(inm, etag)) return c.body(null, 304, validators);

  const facts = (await readFacts(c.env.DB, dataset))!;
  const entries = presentExports(facts, await readFileRecords(database(c.env.DB), name, facts.version));
  const files = entries.flatMap((e) => (e.sha256 === null ? [] : [{ ...e, sha256: e.sha256 }]));
  if (files.length < entries.length) {
    c.executionCtx.waitUntil(requestExports(c.env, name, true));
    return c.json(
      {
        error: `${name} version ${facts.version}: the SHA-256s of ${entries.length - files.length} of its ${entries.length} export files are not computed yet (the export job after a load does it); retry in ${RETRY_AFTER} s`,
      },
      503,
      { "Retry-After": String(RETRY_AFTER) },
    );
  }
  const published = registryEntry(name)?.about;
  const about = published
    ? provenance(published, dataset.official, dataset.source)
    : customAbout(
        name,
        redactUrl((await getRun(database(c.env.DB), facts.version))?.source ?? name),
        dataset.swappedAt,
        `${new URL(c.req.url).origin}/datasets/${name}`,
      );
  const doc = croissant({ facts, about, files, origin: new URL(c.req.url).origin, modified: dataset.swappedAt });
  return c.body(JSON.stringify(doc), 200, { ...validators, "Content-Type": "application/ld+json; charset=utf-8" });
}

/**
 * A registry dataset's published description, told when these rows are not
 * the published files (archives that did not match the published MD5s, or
 * loaded before provenance was recorded): the metadata must not vouch for bytes nobody checked.
 */
function provenance(about: DatasetAbout, official: boolean | null, source: string | null): DatasetAbout {
  if (official === true) return about;
  const from =
    official === null
      ? "loaded before idx-etl recorded provenance: whether they are the published files is unknown"
      : `loaded from ${source ?? "another source"}, and their archives did not match the published MD5s: they may differ from the published files`;
  return { ...about, description: `${about.description} These rows were ${from}.` };
}
