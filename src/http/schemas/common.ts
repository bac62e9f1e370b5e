/**
 * The HTTP API's contract: one zod schema per request part and per response
 * body, one module per resource (this one holds what they share). Routes
 * (src/http/routes/) validate with them, GET /openapi.json is generated from
 * them, and the TypeScript types the scripts and tests use are inferred from
 * them — one declaration for all three.
 *
 * Request schemas carry their own error messages, each a sentence that names
 * the field ("limit must be an integer from 1 to 100, got \"0x10\""); see
 * src/http/validation.ts for how an invalid request becomes `400 { "error" }`.
 */
import { z } from "@hono/zod-openapi";
import { DATASET_NAME, isDatasetName, MAX_DATASET_NAME, SPLITS } from "../../core/datasets";
import { DEFAULT_DATASET } from "../../core/registry";

// workerd forbids code generation; zod already detects that (and then does not
// try), and jitless makes it explicit: no `new Function` probe, anywhere.
z.config({ jitless: true });

/**
 * A query parameter holding a whole number in [min, max]: strict decimal digits
 * only (no sign, "0x10", "1e1", "1.5" or ""), as a safe integer. A parameter
 * given twice arrives as an array and is refused by the same message.
 */
export function integerQuery(name: string, min: number, max?: number) {
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
export function datasetName(field: string) {
  const message = (iss: { input?: unknown }) =>
    `${field} must be a dataset name (${NAME_RULE}), got ${JSON.stringify(iss.input)}`;
  return z
    .string({ error: message })
    .refine(isDatasetName, { error: message })
    .openapi({ type: "string", pattern: DATASET_NAME.source, maxLength: MAX_DATASET_NAME, example: "mnist" });
}

export const splitEnum = () =>
  z.enum(SPLITS, {
    error: (iss) =>
      iss.input === undefined
        ? `split is required: ${SPLITS.join(" or ")}`
        : `split must be ${SPLITS.join(" or ")}, got ${JSON.stringify(iss.input)}`,
  });

export const splitParam = splitEnum().openapi({ param: { name: "split", in: "path" }, example: "test" });

export const datasetParam = datasetName("name").openapi({
  param: { name: "name", in: "path" },
  description: `A registry dataset (GET /datasets lists them) or a custom one a run has loaded. The routes without /datasets/{name} are those of ${DEFAULT_DATASET}.`,
});

export const DatasetParams = z.object({ name: datasetParam });

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

/** The 409 of a route that reads a dataset's rows when a table of it is gone. */
export const BROKEN_409 =
  "The dataset is broken: a table of it was dropped by hand (the error says which, and the fix).";
