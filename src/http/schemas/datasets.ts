/**
 * The datasets' schemas: one dataset as GET /datasets lists it and as
 * GET /datasets/{name} shows it, and its statistics (GET /datasets/{name}/stats).
 */
import { z } from "@hono/zod-openapi";
import { SPLITS } from "../../core/datasets";
import { ShapeSchema } from "./common";
import { RunSchema } from "./runs";

const splitCounts = z.object({ train: z.number().int(), test: z.number().int() });

/** One dataset as GET /datasets lists it. */
export const DatasetSummarySchema = z
  .object({
    name: z.string(),
    title: z.string(),
    registry: z.boolean().openapi({ description: "An official dataset of the registry; false for a custom one." }),
    status: z.enum(["empty", "loaded", "broken"]).openapi({
      description:
        "loaded: a run's swap put its rows in D1. broken: it was loaded, but a table of it is gone (dropped by hand); `hint` says how to fix it, and its images, stats and exports answer 409 until then.",
    }),
    hint: z.string().nullable().openapi({ description: "For a broken dataset: what is missing, and the fix." }),
    official: z.boolean().nullable().openapi({
      description:
        "true: the rows are a registry dataset's published files: every archive matched its published MD5, from the official mirrors or any other source. false: other bytes, or a custom dataset. null: not loaded, or loaded before provenance was recorded (a reload records it).",
    }),
    source: z.string().nullable().openapi({
      description: "Where the loaded rows came from, credentials and query values replaced by ***; null with official.",
    }),
    shape: ShapeSchema.nullable().openapi({
      description: "The loaded images' shape; not loaded, a registry dataset's published one.",
    }),
    counts: splitCounts.openapi({ description: "Images loaded per split (0 while empty)." }),
    classCount: z.number().int().openapi({ description: "Classes: as loaded, else as published." }),
    sizeBytes: z.number().int().nullable().openapi({
      description: "About how many bytes its images take in D1, or for a registry dataset not loaded, would take.",
    }),
    version: z
      .string()
      .nullable()
      .openapi({ description: "The run whose swap loaded the current rows: the exports' version." }),
    swappedAt: z.string().nullable().openapi({ format: "date-time" }),
    exportsStored: z.boolean().nullable().openapi({
      description:
        "Whether this version's .npy exports are written to R2 (downloads then stream from R2); null when no R2 bucket is bound.",
    }),
    lastRun: RunSchema.nullable().openapi({ description: "The dataset's newest run, whatever its status." }),
    activeRun: z.string().nullable().openapi({ description: "The id of the dataset's active run, if one is." }),
  })
  .openapi("DatasetSummary");
export type DatasetSummary = z.infer<typeof DatasetSummarySchema>;

const classEntry = z.object({ label: z.number().int(), name: z.string() });

/** One export file of the loaded version. */
export const ExportEntrySchema = z
  .object({
    file: z.string().openapi({ description: "Its name as downloaded.", example: "train.parquet" }),
    format: z.enum(["npy", "parquet", "npz"]),
    split: z.enum(SPLITS).optional().openapi({ description: "The split it holds (all but the .npz)." }),
    content: z.enum(["images", "uint8", "labels"]).optional().openapi({
      description: ".npy only: images as float32, images as uint8 (the IDX bytes), or labels.",
    }),
    url: z.string().openapi({ description: "Its path on this Worker: the current version, revalidated." }),
    versionedUrl: z.string().openapi({ description: "The same file's immutable URL, of this version." }),
    encodingFormat: z.string().openapi({ description: "Its media type, as croissant.json names it." }),
    bytes: z.number().int().openapi({ description: "Its exact size." }),
    sha256: z.string().nullable().openapi({
      description: "SHA-256 of its bytes, once the export job after the load has computed it; null until then.",
    }),
  })
  .openapi("ExportFile");
export type ExportEntry = z.infer<typeof ExportEntrySchema>;

/** One dataset as GET /datasets/{name} shows it: the summary, its class names and its export files. */
export const DatasetSchema = DatasetSummarySchema.extend({
  classes: z.array(classEntry).openapi({ description: "Class names by label." }),
  exports: z.array(ExportEntrySchema).openapi({
    description: "Every export file of the loaded version (empty while not loaded); croissant.json describes them.",
  }),
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

/** What DELETE /datasets/{name} removed, and the dataset as it is now. */
export const DatasetDeletedSchema = z
  .object({
    deleted: z.string().openapi({ description: "The dataset's name." }),
    tables: z.array(z.string()).openapi({ description: "Its tables that existed and were dropped, live and shadow." }),
    runs: z.number().int().openapi({ description: "Its runs deleted, with their ledgers." }),
    objects: z.number().int().nullable().openapi({
      description: "Its objects deleted from R2 (exports and kept files); null when no R2 bucket is bound.",
    }),
    dataset: DatasetSummarySchema.nullable().openapi({
      description: "A registry dataset as GET /datasets now lists it (empty); null for a custom one, which is gone.",
    }),
  })
  .openapi("DatasetDeleted");
export type DatasetDeleted = z.infer<typeof DatasetDeletedSchema>;

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
