/**
 * The exports' schemas: which .npy file, of which dataset version, and the
 * conditional and range headers and row window a download may carry.
 */
import { z } from "@hono/zod-openapi";
import { SPLITS, type Split } from "../../core/datasets";
import { exportStem, type ExportKind } from "../../read/export";
import { datasetParam, integerQuery } from "./common";

/** Each .npy of a split by its name: `<split>-uint8.npy`, the name its listing and downloads give, is `<split>.npy?dtype=uint8`. */
const NPY_KINDS: readonly ExportKind[] = ["images", "uint8", "labels"];

/** The fixed names of GET /export/{file}: each split's .npy and Parquet files; `<dataset>.npz` besides. */
export const EXPORT_FILES = SPLITS.flatMap((s) => [
  ...NPY_KINDS.map((k) => `${exportStem(s, k)}.npy`),
  `${s}.parquet`,
]) as [string, ...string[]];

/** A file as the URL names it; the .npz names its dataset, which the route checks. */
export type FileParam =
  | { readonly format: "npy"; readonly split: Split; readonly kind: ExportKind }
  | { readonly format: "parquet"; readonly split: Split }
  | { readonly format: "npz"; readonly dataset: string };

const NPZ = /^([a-z][a-z0-9]*(?:-[a-z0-9]+)*)\.npz$/;

function parseFile(f: string): FileParam | undefined {
  const npz = NPZ.exec(f);
  if (npz) return { format: "npz", dataset: npz[1]! };
  for (const split of SPLITS) {
    if (f === `${split}.parquet`) return { format: "parquet", split };
    const kind = NPY_KINDS.find((k) => f === `${exportStem(split, k)}.npy`);
    if (kind) return { format: "npy", split, kind };
  }
  return undefined;
}

const fileMessage = (input: unknown) =>
  `file must be one of ${EXPORT_FILES.join(", ")} or <dataset>.npz, got ${JSON.stringify(input)}`;

const exportFile = z
  .string()
  .transform((f, ctx) => {
    const parsed = parseFile(f);
    if (parsed === undefined) {
      ctx.issues.push({ code: "custom", message: fileMessage(f), input: f });
      return z.NEVER;
    }
    return parsed;
  })
  .openapi({
    param: { name: "file", in: "path" },
    type: "string",
    pattern: `^(${EXPORT_FILES.map((f) => f.replace(".", "\\.")).join("|")}|[a-z0-9-]+\\.npz)$`,
    description:
      "<split>.npy: the images, float32 (n, rows, cols, channels), or uint8 with ?dtype=uint8 (also named <split>-uint8.npy); <split>-labels.npy: the labels, uint8 (n,); <split>.parquet: Hugging Face's Image and ClassLabel columns; <dataset>.npz: Keras' x_train, y_train, x_test, y_test, uint8.",
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
        "One byte range (`bytes=a-b`, `bytes=a-` or `bytes=-n`) → 206; several, or a malformed one, are ignored (200), and one starting past the end → 416.",
      example: "bytes=1048576-",
    }),
  "If-Range": z
    .string()
    .optional()
    .openapi({
      param: { name: "If-Range", in: "header" },
      description:
        "The ETag the client holds part of: the Range is served only if it is still current (strong comparison), else 200 with the whole file.",
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

/** The element types of the images .npy. */
export const DTYPES = ["float32", "uint8"] as const;

export const ExportQuery = z.object({
  offset: integerQuery("offset", 0)
    .optional()
    .openapi({ param: { name: "offset", in: "query" }, default: 0, description: "First idx exported (.npy only)." }),
  limit: integerQuery("limit", 1)
    .optional()
    .openapi({
      param: { name: "limit", in: "query" },
      description: "At most this many rows (default: the rest of the split; .npy only).",
    }),
  dtype: z
    .enum(DTYPES, { error: (iss) => `dtype must be float32 or uint8, got ${JSON.stringify(iss.input)}` })
    .optional()
    .openapi({
      param: { name: "dtype", in: "query" },
      default: "float32",
      description: "<split>.npy only: float32 (the stored values, x / 255) or uint8 (the IDX bytes, exactly, upright).",
    }),
});
