/**
 * The exports' schemas: which .npy file, of which dataset version, and the
 * conditional and range headers and row window a download may carry.
 */
import { z } from "@hono/zod-openapi";
import { SPLITS, type Split } from "../../core/datasets";
import { datasetParam, integerQuery } from "./common";

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
