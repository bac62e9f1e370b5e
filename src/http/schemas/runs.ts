/**
 * The runs' schemas: the bodies of POST /runs and POST /datasets/{name}/runs
 * (a registry dataset, or a custom one with its files and class names), the
 * list queries, and a run as the API shows it.
 */
import { z } from "@hono/zod-openapi";
import { DEFAULT_DATASET } from "../../core/registry";
import { RUN_STATUSES, TRIGGERS, type Trigger } from "../../db/schema";
import { MAX_SOURCE_LENGTH, parseSource } from "../../codec/source";
import { datasetName, integerQuery, ShapeSchema } from "./common";

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
export const MAX_FILE_NAME = 255;
export const FILE_RULE = `a plain file name (1 to ${MAX_FILE_NAME} characters, no "/", "\\", quote or control character, not "." or "..")`;

/**
 * A file name within the source: it is appended to the source's URL, so a
 * slash would reach outside it and "." or ".." would name the source itself
 * or its parent.
 */
export const isFileName = (s: string): boolean =>
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
      "A custom dataset's four files, each fetched from <source>/<file name>; `dataset` then names the custom dataset and `source` is required.",
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
      "A custom dataset's class names, label 0's first (default: the labels as numbers). A registry dataset's are always the published ones.",
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
        "Base URL (http or https, no #fragment) of the dataset's files, each fetched from <source>/<file name>. Default: a registry dataset's official mirrors (DEFAULT_SOURCE, if set, for the default dataset); required for a custom dataset.",
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
      description:
        "Whether POST /runs/{id}/resume may pick it up: it failed after loading began, its source did not change, and no later run of its dataset has started.",
    }),
    official: z.boolean().openapi({
      description:
        "A registry dataset from its official mirrors, held to the published MD5s; false for any other source and for custom datasets.",
    }),
    stale: z.boolean().openapi({
      description:
        "Active, but silent for longer than its lease (RUN_LEASE_SECONDS): presumed dead; `hint` says what to do.",
    }),
    hint: z.string().nullable().openapi({
      description:
        "When the status alone misleads (a stale run, or a failed one a later run superseded): why, and what to do.",
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
