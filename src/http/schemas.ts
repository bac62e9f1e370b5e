/**
 * The HTTP API's contract: one zod schema per request part and per response
 * body. Routes (src/http/routes/) validate with them, GET /openapi.json is
 * generated from them, and the TypeScript types the scripts and tests use are
 * inferred from them — one declaration for all three.
 *
 * Request schemas carry their own error messages, each a sentence that names
 * the field ("limit must be an integer from 1 to 100, got \"0x10\""); see
 * src/http/validation.ts for how an invalid request becomes `400 { "error" }`.
 */
import { z } from "@hono/zod-openapi";
import { SPLITS, type Split } from "../core/datasets";
import { RUN_STATUSES, TRIGGERS, type Trigger } from "../db/schema";
import { MAX_SCALE, MIN_SCALE } from "../codec/png";
import { MAX_SOURCE_LENGTH, parseSource } from "../codec/source";

// workerd forbids code generation; zod already detects that (and then does not
// try), and jitless makes it explicit: no `new Function` probe, anywhere.
z.config({ jitless: true });

// ---------------------------------------------------------------- request parts

/**
 * A query parameter holding a whole number in [min, max]: strict decimal digits
 * only (no sign, "0x10", "1e1", "1.5" or ""), as a safe integer.
 */
function integerQuery(name: string, min: number, max?: number) {
  const range = max === undefined ? `of at least ${min}` : `from ${min} to ${max}`;
  const message = (iss: { input?: unknown }) => `${name} must be an integer ${range}, got ${JSON.stringify(iss.input)}`;
  return z
    .string({ error: message })
    .refine(
      (s) =>
        /^\d+$/.test(s) &&
        Number.isSafeInteger(Number(s)) &&
        Number(s) >= min &&
        (max === undefined || Number(s) <= max),
      { error: message },
    )
    .transform(Number)
    .openapi({ type: "integer", minimum: min, ...(max === undefined ? {} : { maximum: max }) });
}

const splitParam = z
  .enum(SPLITS, { error: (iss) => `split must be ${SPLITS.join(" or ")}, got ${JSON.stringify(iss.input)}` })
  .openapi({ param: { name: "split", in: "path" }, example: "test" });

export const RunIdParams = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" }, example: "3f6c1f0e-8d1b-4c3a-9a57-0c1c5b2e9d41" }),
});

export const RunListQuery = z.object({
  limit: integerQuery("limit", 1, 100)
    .optional()
    .openapi({ param: { name: "limit", in: "query" }, default: 20, description: "How many runs, newest first." }),
});

/** The triggers a POST /runs may claim: cron is the scheduler's own. */
const HTTP_TRIGGERS = ["http", "cli"] as const satisfies readonly Trigger[];

/** The body of POST /runs. Every field is optional; an empty body starts a run from the default source. */
export const StartRunBody = z
  .strictObject(
    {
      source: z
        .string({ error: "source must be a string URL" })
        .transform((raw, ctx) => {
          const parsed = parseSource(raw);
          if (parsed.ok) return parsed.source;
          ctx.addIssue({ code: "custom", message: parsed.error });
          return z.NEVER;
        })
        .optional()
        .openapi({
          type: "string",
          format: "uri",
          maxLength: MAX_SOURCE_LENGTH,
          description:
            "Base URL of the four .gz archives (http or https, no #fragment); each is fetched from <source>/<file name>. Default: the Worker's DEFAULT_SOURCE.",
          example: "https://example.org/fashion-mnist",
        }),
      force: z
        .boolean({ error: "force must be true or false" })
        .default(false)
        .openapi({ description: "Reload even if the archives are unchanged since the last complete run." }),
      trigger: z
        .enum(HTTP_TRIGGERS, { error: `trigger must be one of ${HTTP_TRIGGERS.join(", ")}` })
        .default("http")
        .openapi({ description: "Who starts the run, as recorded in it (cron is the scheduler's own)." }),
    },
    {
      error: (iss) =>
        iss.code === "unrecognized_keys"
          ? `unknown field${iss.keys.length > 1 ? "s" : ""}: ${iss.keys.join(", ")}`
          : iss.code === "invalid_type"
            ? "body must be a JSON object"
            : undefined,
    },
  )
  .openapi("StartRun");
export type StartRun = z.output<typeof StartRunBody>;

/** "123" or "123.png": an image's index, as JSON or as a PNG. */
export const ImageParams = z.object({
  split: splitParam,
  image: z
    .string()
    .regex(/^\d{1,9}(\.png)?$/, {
      error: (iss) => `image must be an index or index.png, got ${JSON.stringify(iss.input)}`,
    })
    .transform((s) => ({ idx: Number.parseInt(s, 10), png: s.endsWith(".png") }))
    .openapi({
      param: { name: "image", in: "path" },
      type: "string",
      pattern: "^\\d{1,9}(\\.png)?$",
      description: "The image's index in the split; with .png, the picture instead of its description.",
      example: "17.png",
    }),
});

export const ImageQuery = z.object({
  scale: integerQuery("scale", MIN_SCALE, MAX_SCALE)
    .optional()
    .openapi({
      param: { name: "scale", in: "query" },
      default: 1,
      description: "PNG only: each pixel becomes scale × scale pixels (nearest neighbour).",
    }),
});

/** The four files of GET /export/{file}. */
export const EXPORT_FILES = SPLITS.flatMap((s) => [`${s}.npy`, `${s}-labels.npy`]) as [string, ...string[]];

const exportFile = z
  .enum(EXPORT_FILES, {
    error: (iss) => `file must be one of ${EXPORT_FILES.join(", ")}, got ${JSON.stringify(iss.input)}`,
  })
  .transform(
    (f) => ({ split: f.split(/[-.]/)[0] as Split, kind: f.includes("-labels") ? "labels" : "images" }) as const,
  )
  .openapi({
    param: { name: "file", in: "path" },
    type: "string",
    enum: EXPORT_FILES,
    description: "<split>.npy: the images, float32 (n, 28, 28, 1); <split>-labels.npy: the labels, uint8 (n,).",
    example: "test.npy",
  });

export const ExportParams = z.object({ file: exportFile });

/** A dataset version: the id of the run whose swap made it (a UUID), as the export's ETag and Content-Location name it. */
export const DATASET_VERSION_PATTERN = /^[0-9A-Za-z_-]{1,100}$/;

export const VersionedExportParams = z.object({
  version: z
    .string()
    .regex(DATASET_VERSION_PATTERN, {
      error: (iss) => `version must be a run id (letters, digits, - and _), got ${JSON.stringify(iss.input)}`,
    })
    .openapi({
      param: { name: "version", in: "path" },
      type: "string",
      pattern: DATASET_VERSION_PATTERN.source,
      description:
        "The dataset version: the id of the run whose swap loaded it, as the unversioned export's Content-Location names it.",
      example: "3f6c1f0e-8d1b-4c3a-9a57-0c1c5b2e9d41",
    }),
  file: exportFile,
});

/** Conditional and range request headers of the exports (RFC 9110 §13, §14). Never rejected: one that does not parse is ignored. */
export const ExportHeaders = z.object({
  Range: z
    .string()
    .optional()
    .openapi({
      param: { name: "Range", in: "header" },
      description:
        "One byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n` → 206 with those bytes only (only the rows they cover are read). Several ranges, or one that does not parse, are ignored (200, the whole file); one that starts past the end → 416.",
      example: "bytes=1048576-",
    }),
  "If-Range": z
    .string()
    .optional()
    .openapi({
      param: { name: "If-Range", in: "header" },
      description:
        "The ETag the client holds part of: the Range is served only if it is still the current one (strong comparison), else the whole file (200). A date never matches.",
    }),
  "If-None-Match": z
    .string()
    .optional()
    .openapi({
      param: { name: "If-None-Match", in: "header" },
      description: "ETags (or `*`): if one is the current one (weak comparison) → 304 with no body; no image is read.",
    }),
  "If-Match": z
    .string()
    .optional()
    .openapi({
      param: { name: "If-Match", in: "header" },
      description: "ETags (or `*`): unless one is the current one (strong comparison) → 412; no image is read.",
    }),
});

export const ExportQuery = z.object({
  offset: integerQuery("offset", 0)
    .optional()
    .openapi({ param: { name: "offset", in: "query" }, default: 0, description: "First idx exported." }),
  limit: integerQuery("limit", 1)
    .optional()
    .openapi({
      param: { name: "limit", in: "query" },
      description: "At most this many rows (default: the rest of the split).",
    }),
});

// ---------------------------------------------------------------- responses

export const ErrorSchema = z
  .object({ error: z.string() })
  .openapi("Error", { example: { error: 'limit must be an integer from 1 to 100, got "0x10"' } });
export type ErrorBody = z.infer<typeof ErrorSchema>;

const splitProgress = z.object({
  expected: z.number().int().nullable().openapi({ description: "Images the archives hold; null until extracted." }),
  loaded: z.number().int(),
});

/** A run as GET /runs and GET /runs/{id} show it; URLs in it are redacted (it is public). */
export const RunSchema = z
  .object({
    id: z.string(),
    trigger: z.enum(TRIGGERS),
    source: z.string().openapi({ description: "The source, credentials and query values replaced by ***." }),
    status: z.enum(RUN_STATUSES),
    unchanged: z.boolean().openapi({ description: "The archives matched the last complete run's: nothing rewritten." }),
    splits: z.object({ train: splitProgress, test: splitProgress }),
    chunksTotal: z.number().int().nullable(),
    attempt: z.number().int().openapi({ description: "1, then one more per resume." }),
    resumable: z.boolean().openapi({
      description: "Whether POST /runs/{id}/resume may pick it up (refused still if a later run has started).",
    }),
    checksums: z
      .record(z.string(), z.string())
      .nullable()
      .openapi({ description: "MD5 of each archive, by file name." }),
    error: z.string().nullable(),
    retrying: z
      .string()
      .nullable()
      .openapi({ description: "While active: the last error of a step that will be retried." }),
    createdAt: z.string().openapi({ format: "date-time" }),
    updatedAt: z.string().openapi({ format: "date-time" }),
    finishedAt: z.string().nullable().openapi({ format: "date-time" }),
    durationMs: z.number().int(),
  })
  .openapi("Run");
export type RunView = z.infer<typeof RunSchema>;

export const RunResponseSchema = z.object({ run: RunSchema }).openapi("RunResponse");
export type RunResponse = z.infer<typeof RunResponseSchema>;

export const RunListSchema = z.object({ runs: z.array(RunSchema) }).openapi("RunList");
export type RunList = z.infer<typeof RunListSchema>;

/** 409 for a trigger that met an active run: which one, and how to get past it if it is stuck. */
export const ActiveRunConflictSchema = z
  .object({
    error: z.string(),
    activeRunId: z.string(),
    hint: z.string(),
    run: RunSchema,
  })
  .openapi("ActiveRunConflict");
export type ActiveRunConflict = z.infer<typeof ActiveRunConflictSchema>;

export const ImageSchema = z
  .object({
    split: z.enum(SPLITS),
    idx: z.number().int(),
    label: z.number().int(),
    class: z.string(),
    shape: z.array(z.number().int()).openapi({ description: "[rows, cols, channels]", example: [28, 28, 1] }),
  })
  .openapi("Image", { example: { split: "train", idx: 17, label: 7, class: "Sneaker", shape: [28, 28, 1] } });
export type ImageView = z.infer<typeof ImageSchema>;

const classCount = z.object({ label: z.number().int(), name: z.string(), count: z.number().int() });
// Read-only arrays, as src/read/images.ts produces them.
const splitStats = z.object({ total: z.number().int(), classes: z.array(classCount).readonly() }).openapi("SplitStats");

export const StatsSchema = z
  .object({
    splits: z.object({ train: splitStats, test: splitStats }),
    samples: z
      .object({
        split: z.enum(SPLITS),
        byLabel: z
          .array(z.object({ label: z.number().int(), name: z.string(), idx: z.array(z.number().int()).readonly() }))
          .readonly(),
      })
      .nullable()
      .openapi({ description: "The first few images of each class, from the test split if it has any." }),
  })
  .openapi("Stats");
export type Stats = z.infer<typeof StatsSchema>;
