/**
 * Typed view of the tables that migrations/ creates. The SQL
 * files are the source of truth for the database; this file mirrors them for
 * drizzle-orm's typed queries, and test/config.test.ts checks the two agree.
 */
import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { SPLITS, type CustomFiles } from "../core/datasets";

/** What a run of a custom dataset was given: its files at the source, and perhaps class names. */
export interface CustomRunSpec {
  readonly files: CustomFiles;
  readonly classes?: readonly string[];
}

export const RUN_STATUSES = ["queued", "extracting", "loading", "complete", "failed"] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const ACTIVE_STATUSES = ["queued", "extracting", "loading"] as const satisfies readonly RunStatus[];

export const TRIGGERS = ["cron", "http", "cli"] as const;
export type Trigger = (typeof TRIGGERS)[number];

/**
 * The datasets that have image tables (src/db/tables.ts), which the `images`
 * view lists, and the run whose swap put their rows there (null: none yet).
 */
export const datasets = sqliteTable("datasets", {
  name: text("name").primaryKey(),
  runId: text("run_id").references(() => runs.id),
  swappedAt: text("swapped_at"),
  /**
   * Whether the rows are a registry dataset's published files (every published
   * MD5 matched, from any source), and the redacted source they came from; null until
   * a swap records them (migrations/0007_datasets_managed.sql).
   */
  official: integer("official", { mode: "boolean" }),
  source: text("source"),
});

/**
 * A guard row's columns: the run it guards and that run's status as the batch
 * saw it, which the table's CHECK tests to abort the batch (dataset_swaps, shadow_claims).
 */
const guardOf = () => ({
  runId: text("run_id")
    .primaryKey()
    .references(() => runs.id, { onDelete: "cascade" }),
  runStatus: text("run_status").notNull(),
});

/** One row per swap: whose rows became a dataset's, and the counts D1 held then. */
export const datasetSwaps = sqliteTable("dataset_swaps", {
  ...guardOf(),
  dataset: text("dataset").notNull(),
  trainRows: integer("train_rows").notNull(),
  testRows: integer("test_rows").notNull(),
  trainExpected: integer("train_expected").notNull(),
  testExpected: integer("test_expected").notNull(),
  /** How many datasets the catalog held when the swap ran, and when its view was planned: they must agree. */
  catalogSize: integer("catalog_size").notNull(),
  catalogRead: integer("catalog_read").notNull(),
  swappedAt: text("swapped_at").notNull(),
});

/**
 * Which version of a dataset has its .npy files in R2 (pipeline/materialise.ts):
 * current only while `version` is still the dataset's run_id.
 */
export const datasetExports = sqliteTable("dataset_exports", {
  dataset: text("dataset").primaryKey(),
  version: text("version").notNull(),
  bytes: integer("bytes").notNull(),
  exportedAt: text("exported_at").notNull(),
});

/** The size and SHA-256 of each export file of a dataset version (migrations/0008_export_files.sql). */
export const exportFiles = sqliteTable(
  "export_files",
  {
    dataset: text("dataset").notNull(),
    file: text("file").notNull(),
    version: text("version").notNull(),
    bytes: integer("bytes").notNull(),
    sha256: text("sha256").notNull(),
  },
  (t) => [primaryKey({ columns: [t.dataset, t.file] })],
);

export const classes = sqliteTable(
  "classes",
  {
    dataset: text("dataset").notNull(),
    label: integer("label").notNull(),
    name: text("name").notNull(),
  },
  (t) => [primaryKey({ columns: [t.dataset, t.label] })],
);

export const runs = sqliteTable("runs", {
  id: text("id").primaryKey(),
  dataset: text("dataset").notNull().default("fashion-mnist"),
  /** A custom dataset's files and class names (JSON); null for a registry dataset. */
  spec: text("spec", { mode: "json" }).$type<CustomRunSpec>(),
  trigger: text("trigger", { enum: TRIGGERS }).notNull(),
  source: text("source").notNull(),
  status: text("status", { enum: RUN_STATUSES }).notNull(),
  checksums: text("checksums", { mode: "json" }).$type<Record<string, string>>(),
  trainExpected: integer("train_expected"),
  testExpected: integer("test_expected"),
  trainLoaded: integer("train_loaded").notNull().default(0),
  testLoaded: integer("test_loaded").notNull().default(0),
  chunksTotal: integer("chunks_total"),
  unchanged: integer("unchanged", { mode: "boolean" }).notNull().default(false),
  /** From a registry dataset's official mirrors, so held to the published MD5s (pipeline/dataset.ts isOfficial). */
  official: integer("official", { mode: "boolean" }).notNull().default(false),
  attempt: integer("attempt").notNull().default(1),
  resumable: integer("resumable", { mode: "boolean" }).notNull().default(true),
  error: text("error"),
  retrying: text("retrying"),
  /** The image shape the IDX headers declared, set when loading begins. */
  imageRows: integer("image_rows"),
  imageCols: integer("image_cols"),
  imageChannels: integer("image_channels"),
  /** Class names by label, set when loading begins; the swap records them in `classes`. */
  classNames: text("class_names", { mode: "json" }).$type<string[]>(),
  createdAt: text("created_at").notNull(),
  updatedAt: text("updated_at").notNull(),
  finishedAt: text("finished_at"),
});

export type Run = typeof runs.$inferSelect;

export const runChunks = sqliteTable(
  "run_chunks",
  {
    runId: text("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    split: text("split", { enum: SPLITS }).notNull(),
    start: integer("start").notNull(),
    count: integer("count").notNull(),
    /** chunkDigest of the labels and pixels loaded for it (migrations/0004_run_versions.sql). */
    digest: text("digest"),
  },
  (t) => [primaryKey({ columns: [t.runId, t.split, t.start] })],
);

/** The guard row of a shadow reset (migrations/0004_run_versions.sql). */
export const shadowClaims = sqliteTable("shadow_claims", {
  ...guardOf(),
  claimedAt: text("claimed_at").notNull(),
});

export const classCounts = sqliteTable(
  "class_counts",
  {
    dataset: text("dataset").notNull(),
    split: text("split", { enum: SPLITS }).notNull(),
    label: integer("label").notNull(),
    n: integer("n").notNull(),
  },
  (t) => [primaryKey({ columns: [t.dataset, t.split, t.label] })],
);

/** One row per deletion of a dataset, its guard: the CHECK aborts a deletion while a run of it is active. */
export const datasetDeletions = sqliteTable("dataset_deletions", {
  id: text("id").primaryKey(),
  dataset: text("dataset").notNull(),
  activeRuns: integer("active_runs").notNull(),
  deletedAt: text("deleted_at").notNull(),
});

/**
 * The guard of a batch that recreates the `images` view (db/view.ts): its
 * CHECK aborts the batch unless the tables the view was planned over are
 * exactly those that exist. Empty between batches.
 */
export const viewGuards = sqliteTable("view_guards", {
  id: text("id").primaryKey(),
  planned: integer("planned").notNull(),
  found: integer("found").notNull(),
  matched: integer("matched").notNull(),
});
