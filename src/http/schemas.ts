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
import { DATASET_NAME, isDatasetName, MAX_DATASET_NAME, SPLITS, type Split } from "../core/datasets";
import { DEFAULT_DATASET } from "../core/registry";
import { RUN_STATUSES, TRIGGERS, type Trigger } from "../db/schema";
import { MAX_SCALE, MIN_SCALE } from "../codec/png";
import { MAX_SOURCE_LENGTH, parseSource } from "../codec/source";

// workerd forbids code generation; zod already detects that (and then does not
// try), and jitless makes it explicit: no `new Function` probe, anywhere.
z.config({ jitless: true });

// ---------------------------------------------------------------- request parts

/**
 * A query parameter holding a whole number in [min, max]: strict decimal digits
 * only (no sign, "0x10", "1e1", "1.5" or ""), as a safe integer. A parameter
 * given twice arrives as an array and is refused by the same message.
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

const NAME_RULE = `lower-case letters and digits in words joined by "-", at most ${MAX_DATASET_NAME} characters`;

/** A dataset's name (core/datasets.ts DATASET_NAME), wherever a request names one. */
function datasetName(field: string) {
  const message = (iss: { input?: unknown }) =>
    `${field} must be a dataset name (${NAME_RULE}), got ${JSON.stringify(iss.input)}`;
  return z
    .string({ error: message })
    .refine(isDatasetName, { error: message })
    .openapi({ type: "string", pattern: DATASET_NAME.source, maxLength: MAX_DATASET_NAME, example: "mnist" });
}

const splitEnum = () =>
  z.enum(SPLITS, {
    error: (iss) =>
      iss.input === undefined
        ? `split is required: ${SPLITS.join(" or ")}`
        : `split must be ${SPLITS.join(" or ")}, got ${JSON.stringify(iss.input)}`,
  });

const splitParam = splitEnum().openapi({ param: { name: "split", in: "path" }, example: "test" });

const datasetParam = datasetName("name").openapi({
  param: { name: "name", in: "path" },
  description: `A registry dataset (GET /datasets lists them) or a custom one a run has loaded. The routes without /datasets/{name} are those of ${DEFAULT_DATASET}.`,
});

export const DatasetParams = z.object({ name: datasetParam });

export const RunIdParams = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" }, example: "3f6c1f0e-8d1b-4c3a-9a57-0c1c5b2e9d41" }),
});

const runLimit = integerQuery("limit", 1, 100)
  .optional()
  .openapi({ param: { name: "limit", in: "query" }, default: 20, description: "How many runs, newest first." });

export const RunListQuery = z.object({
  limit: runLimit,
  dataset: datasetName("dataset")
    .optional()
    .openapi({ param: { name: "dataset", in: "query" }, description: "Only this dataset's runs." }),
});

/** GET /datasets/{name}/runs: the dataset is in the path. */
export const DatasetRunListQuery = z.object({ limit: runLimit });

/** The triggers a POST /runs may claim: cron is the scheduler's own. */
const HTTP_TRIGGERS = ["http", "cli"] as const satisfies readonly Trigger[];

/** The four files a custom dataset names, and what each holds. */
const CUSTOM_FILES = {
  trainImages: "the train split's images: gzipped IDX, [n, rows, cols] or [n, rows, cols, channels]",
  trainLabels: "the train split's labels: gzipped IDX, [n]",
  testImages: "the test split's images",
  testLabels: "the test split's labels",
} as const;
const FILE_KEYS = Object.keys(CUSTOM_FILES) as (keyof typeof CUSTOM_FILES)[];
const MAX_FILE_NAME = 255;
const FILE_RULE = `a plain file name (1 to ${MAX_FILE_NAME} characters, no "/", "\\", quote or control character, not "." or "..")`;

/**
 * A file name within the source: it is appended to the source's URL, so a
 * slash would reach outside it and "." or ".." would name the source itself
 * or its parent.
 */
const isFileName = (s: string): boolean =>
  s.length >= 1 && s.length <= MAX_FILE_NAME && s !== "." && s !== ".." && !/["/\\\u0000-\u001f\u007f]/.test(s);

function fileField(key: keyof typeof CUSTOM_FILES) {
  const message = (iss: { input?: unknown }) =>
    iss.input === undefined
      ? `files.${key} is missing: a custom dataset names all four files (${FILE_KEYS.join(", ")})`
      : `files.${key} must be ${FILE_RULE}, got ${JSON.stringify(iss.input)}`;
  return z
    .string({ error: message })
    .refine(isFileName, { error: message })
    .openapi({ type: "string", minLength: 1, maxLength: MAX_FILE_NAME, description: CUSTOM_FILES[key] });
}

const customFiles = z
  .strictObject(
    {
      trainImages: fileField("trainImages"),
      trainLabels: fileField("trainLabels"),
      testImages: fileField("testImages"),
      testLabels: fileField("testLabels"),
    },
    {
      error: (iss) =>
        iss.code === "unrecognized_keys"
          ? `files has unknown field${iss.keys.length > 1 ? "s" : ""} ${iss.keys.join(", ")}; it names ${FILE_KEYS.join(", ")}`
          : iss.code === "invalid_type"
            ? `files must be an object naming ${FILE_KEYS.join(", ")}`
            : undefined,
    },
  )
  .openapi({
    description:
      "A custom dataset's four files, each fetched from <source>/<file name>. With files, `dataset` names the custom dataset (not a registry one) and `source` is required.",
    example: {
      trainImages: "train-images-idx3-ubyte.gz",
      trainLabels: "train-labels-idx1-ubyte.gz",
      testImages: "t10k-images-idx3-ubyte.gz",
      testLabels: "t10k-labels-idx1-ubyte.gz",
    },
  });

/** Labels are bytes: at most 256 classes. */
export const MAX_CLASSES = 256;

/** Why a class name list is refused, or undefined: one sentence, naming the first offending entry. */
function classesProblem(v: unknown): string | undefined {
  const rule = `classes must be an array of 1 to ${MAX_CLASSES} distinct, non-empty names (label 0's first)`;
  if (!Array.isArray(v)) return `${rule}, got ${JSON.stringify(v)}`;
  if (v.length < 1 || v.length > MAX_CLASSES) return `${rule}, got ${v.length}`;
  const seen = new Map<string, number>();
  for (const [i, name] of v.entries()) {
    if (typeof name !== "string" || name.trim() === "") return `${rule}; classes[${i}] is ${JSON.stringify(name)}`;
    const first = seen.get(name);
    if (first !== undefined) return `${rule}; ${JSON.stringify(name)} is both classes[${first}] and classes[${i}]`;
    seen.set(name, i);
  }
  return undefined;
}

const classNamesField = z
  .unknown()
  .transform((v, ctx) => {
    const problem = classesProblem(v);
    if (problem === undefined) return v as string[];
    ctx.addIssue({ code: "custom", message: problem });
    return z.NEVER;
  })
  .openapi({
    type: "array",
    items: { type: "string", minLength: 1 },
    minItems: 1,
    maxItems: MAX_CLASSES,
    uniqueItems: true,
    description:
      "A custom dataset's class names, label 0's first. Without them a custom dataset's classes are its labels spelled as numbers; a registry dataset's are always the published ones.",
    example: ["cat", "dog"],
  });

/** The fields of a run request that do not name its dataset. */
const runFields = {
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
        "Base URL of the dataset's files (http or https, no #fragment); each is fetched from <source>/<file name>. Default, for a registry dataset: its official mirrors (for the default dataset, the Worker's DEFAULT_SOURCE if set). Required for a custom dataset.",
      example: "https://example.org/fashion-mnist",
    }),
  force: z
    .boolean({ error: "force must be true or false" })
    .default(false)
    .openapi({ description: "Reload even if the archives are unchanged since the dataset's last complete run." }),
  trigger: z
    .enum(HTTP_TRIGGERS, { error: `trigger must be one of ${HTTP_TRIGGERS.join(", ")}` })
    .default("http")
    .openapi({ description: "Who starts the run, as recorded in it (cron is the scheduler's own)." }),
  files: customFiles.optional(),
  classes: classNamesField.optional(),
};

const bodyError = (iss: { code?: string; keys?: string[] }) =>
  iss.code === "unrecognized_keys"
    ? `unknown field${iss.keys!.length > 1 ? "s" : ""}: ${iss.keys!.join(", ")}`
    : iss.code === "invalid_type"
      ? "body must be a JSON object"
      : undefined;

/** The body of POST /runs. Every field is optional; an empty body loads the default dataset from its official source. */
export const StartRunBody = z
  .strictObject(
    {
      dataset: datasetName("dataset")
        .optional()
        .openapi({
          description: `The dataset to load: a registry name (GET /datasets lists them), or a new name with \`files\` for a custom dataset. Default: ${DEFAULT_DATASET}.`,
        }),
      ...runFields,
    },
    { error: bodyError },
  )
  .openapi("StartRun");
export type StartRun = z.output<typeof StartRunBody>;

/** The body of POST /datasets/{name}/runs: POST /runs's, the dataset named by the path. */
export const StartDatasetRunBody = z.strictObject(runFields, { error: bodyError }).openapi("StartDatasetRun");
export type StartDatasetRun = z.output<typeof StartDatasetRunBody>;

const imageParam = z
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
  });

/** "123" or "123.png": an image's index, as JSON or as a PNG. */
export const ImageParams = z.object({ split: splitParam, image: imageParam });
export const DatasetImageParams = z.object({ name: datasetParam, split: splitParam, image: imageParam });

/** The longest side a scaled PNG may have: the picture is built in memory, width × height × channels bytes. */
export const MAX_PNG_SIDE = 1024;

export const ImageQuery = z.object({
  scale: integerQuery("scale", MIN_SCALE, MAX_SCALE)
    .optional()
    .openapi({
      param: { name: "scale", in: "query" },
      default: 1,
      description: `PNG only: each pixel becomes scale × scale pixels (nearest neighbour), as long as the picture stays within ${MAX_PNG_SIDE} pixels a side.`,
    }),
});

/** Most images on one page of GET /datasets/{name}/images. */
export const MAX_PAGE_IMAGES = 200;
export const DEFAULT_PAGE_IMAGES = 100;

export const ImagePageQuery = z.object({
  split: splitEnum().openapi({ param: { name: "split", in: "query" }, example: "train" }),
  label: integerQuery("label", 0, 255)
    .optional()
    .openapi({ param: { name: "label", in: "query" }, description: "Only images of this class." }),
  after: integerQuery("after", 0)
    .optional()
    .openapi({
      param: { name: "after", in: "query" },
      description: "Images after this idx: the previous page's `next`. Omitted: from the split's first image.",
    }),
  limit: integerQuery("limit", 1, MAX_PAGE_IMAGES)
    .optional()
    .openapi({ param: { name: "limit", in: "query" }, default: DEFAULT_PAGE_IMAGES, description: "Images per page." }),
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
    description:
      "<split>.npy: the images, float32 (n, rows, cols, channels); <split>-labels.npy: the labels, uint8 (n,).",
    example: "test.npy",
  });

export const ExportParams = z.object({ file: exportFile });
export const DatasetExportParams = z.object({ name: datasetParam, file: exportFile });

/** A dataset version: the id of the run whose swap made it (a UUID), as the export's ETag and Content-Location name it. */
export const DATASET_VERSION_PATTERN = /^[0-9A-Za-z_-]{1,100}$/;

const versionParam = z
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
  });

export const VersionedExportParams = z.object({ version: versionParam, file: exportFile });
export const DatasetVersionedExportParams = z.object({ name: datasetParam, version: versionParam, file: exportFile });

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

export const ShapeSchema = z
  .object({ rows: z.number().int(), cols: z.number().int(), channels: z.number().int() })
  .openapi("Shape", {
    description: "An image's height, width and channels (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA).",
    example: { rows: 28, cols: 28, channels: 1 },
  });
export type ShapeView = z.infer<typeof ShapeSchema>;

const splitProgress = z.object({
  expected: z.number().int().nullable().openapi({ description: "Images the archives hold; null until extracted." }),
  loaded: z.number().int(),
});

/** A run as GET /runs and GET /runs/{id} show it; URLs in it are redacted (it is public). */
export const RunSchema = z
  .object({
    id: z.string(),
    dataset: z.string().openapi({ description: "The dataset the run loads." }),
    trigger: z.enum(TRIGGERS),
    source: z.string().openapi({ description: "The source, credentials and query values replaced by ***." }),
    status: z.enum(RUN_STATUSES),
    unchanged: z.boolean().openapi({ description: "The archives matched the last complete run's: nothing rewritten." }),
    shape: ShapeSchema.nullable().openapi({
      description: "The images' shape, as their IDX header says; null until read.",
    }),
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

const splitCounts = z.object({ train: z.number().int(), test: z.number().int() });

/** One dataset as GET /datasets lists it. */
export const DatasetSummarySchema = z
  .object({
    name: z.string(),
    title: z.string(),
    registry: z.boolean().openapi({ description: "An official dataset of the registry; false for a custom one." }),
    status: z.enum(["empty", "loaded"]).openapi({ description: "loaded: a run's swap put its rows in D1." }),
    shape: ShapeSchema.nullable().openapi({
      description: "The loaded images' shape; not loaded, a registry dataset's published one.",
    }),
    counts: splitCounts.openapi({ description: "Images loaded per split (0 while empty)." }),
    classCount: z.number().int().openapi({ description: "Classes: as loaded, else as published." }),
    sizeBytes: z.number().int().nullable().openapi({
      description:
        "About how many bytes its images take in D1 (float32 pixels): of the loaded rows, or for a registry dataset not loaded, what loading the published files would take.",
    }),
    version: z
      .string()
      .nullable()
      .openapi({ description: "The run whose swap loaded the current rows: the exports' version." }),
    swappedAt: z.string().nullable().openapi({ format: "date-time" }),
    exportsStored: z.boolean().nullable().openapi({
      description:
        "Whether this version's .npy exports are materialised in R2: then downloads stream from R2 and read no image row from D1 (X-Export-Source: r2). False until the job that follows the load has written them; null when no R2 bucket is bound (exports always read D1).",
    }),
    lastRun: RunSchema.nullable().openapi({ description: "The dataset's newest run, whatever its status." }),
    activeRun: z.string().nullable().openapi({ description: "The id of the dataset's active run, if one is." }),
  })
  .openapi("DatasetSummary");
export type DatasetSummary = z.infer<typeof DatasetSummarySchema>;

const classEntry = z.object({ label: z.number().int(), name: z.string() });

/** One dataset as GET /datasets/{name} shows it: the summary and its class names. */
export const DatasetSchema = DatasetSummarySchema.extend({
  classes: z.array(classEntry).openapi({ description: "Class names by label." }),
}).openapi("Dataset");
export type DatasetView = z.infer<typeof DatasetSchema>;

export const DatasetListSchema = z
  .object({
    datasets: z.array(DatasetSummarySchema).openapi({
      description:
        "The registry's datasets in registry order, loaded or not, then every custom dataset loaded or started, by name.",
    }),
  })
  .openapi("DatasetList");
export type DatasetList = z.infer<typeof DatasetListSchema>;

export const ImageSchema = z
  .object({
    dataset: z.string(),
    split: z.enum(SPLITS),
    idx: z.number().int(),
    label: z.number().int(),
    class: z.string(),
    shape: z.array(z.number().int()).openapi({ description: "[rows, cols, channels]", example: [28, 28, 1] }),
  })
  .openapi("Image", {
    example: { dataset: "fashion-mnist", split: "train", idx: 17, label: 7, class: "Sneaker", shape: [28, 28, 1] },
  });
export type ImageView = z.infer<typeof ImageSchema>;

export const ImagePageSchema = z
  .object({
    dataset: z.string(),
    split: z.enum(SPLITS),
    label: z.number().int().nullable().openapi({ description: "The class filter; null: every class." }),
    // Read-only arrays, as src/read/images.ts produces them.
    images: z
      .array(z.object({ idx: z.number().int(), label: z.number().int() }))
      .readonly()
      .openapi({ description: "In idx order." }),
    next: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "Pass as `after` for the next page; null on the last page." }),
  })
  .openapi("ImagePage");
export type ImagePageView = z.infer<typeof ImagePageSchema>;

const classCount = z.object({ label: z.number().int(), name: z.string(), count: z.number().int() });
const splitStats = z.object({ total: z.number().int(), classes: z.array(classCount).readonly() }).openapi("SplitStats");

export const StatsSchema = z
  .object({
    dataset: z.string(),
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
