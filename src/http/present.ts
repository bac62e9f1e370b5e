/**
 * The JSON shapes of a run (GET /runs, GET /runs/:id: URLs in it redacted,
 * as it is public) and of a dataset (GET /datasets), from what D1 holds.
 */
import { customSpec, splitSpec, type DatasetSpec, type Shape } from "../core/datasets";
import { registryEntry } from "../core/registry";
import { ACTIVE_STATUSES, type Run } from "../db/schema";
import { redactText, redactUrl } from "../codec/source";
import { datasetBytes } from "../pipeline/capacity";
import { readConfig } from "../pipeline/config";
import { brokenHint, isBroken, type LoadedDataset } from "../read/datasets";
import type { FileRecord } from "../db/exports";
import type { VersionFacts } from "../read/encoders";
import { fileName, fileSize, versionFiles, type ExportFile } from "../read/export-files";
import type { DatasetSummary, ExportEntry } from "./schemas/datasets";
import type { RunView } from "./schemas/runs";

/** What presenting a run needs beyond its row: the time, the lease, and whether a later run of its dataset exists. */
export interface RunContext {
  /** Now, in ms since the epoch. */
  readonly now: number;
  readonly leaseMs: number;
  /** A later run of the dataset has started: this one can no longer be resumed. */
  readonly superseded?: boolean;
}

/** The context of a request's runs: now, and the Worker's lease. */
export const runContext = (env: Env): RunContext => ({ now: Date.now(), leaseMs: readConfig(env).leaseMs });

const isActive = (run: Run): boolean => (ACTIVE_STATUSES as readonly string[]).includes(run.status);

/** Why a run is not what its status alone says, and what to do; null when its status says it all. */
function runHint(run: Run, ctx: RunContext, stale: boolean): string | null {
  if (stale) {
    const expired = new Date(Date.parse(run.updatedAt) + ctx.leaseMs).toISOString();
    return `its lease expired at ${expired} with no sign of life since ${run.updatedAt}: it is presumed dead. POST /runs/${run.id}/abandon fails it now (then POST /runs/${run.id}/resume continues it if it had begun loading), and the next POST /runs of ${run.dataset} fails it and starts a new run`;
  }
  if (ctx.superseded && run.status === "failed" && run.resumable && run.chunksTotal !== null)
    return `a later ${run.dataset} run has started since, so this one cannot be resumed; start a new run`;
  return null;
}

export function presentRun(run: Run, ctx: RunContext): RunView {
  const end = run.finishedAt ?? run.updatedAt;
  const stale = isActive(run) && Date.parse(run.updatedAt) + ctx.leaseMs < ctx.now;
  return {
    id: run.id,
    dataset: run.dataset,
    trigger: run.trigger,
    source: redactUrl(run.source),
    status: run.status,
    unchanged: run.unchanged,
    shape:
      run.imageRows === null || run.imageCols === null || run.imageChannels === null
        ? null
        : { rows: run.imageRows, cols: run.imageCols, channels: run.imageChannels },
    splits: {
      train: { expected: run.trainExpected, loaded: run.trainLoaded },
      test: { expected: run.testExpected, loaded: run.testLoaded },
    },
    chunksTotal: run.chunksTotal,
    /** 1, then one more per resume. */
    attempt: run.attempt,
    /** Whether POST /runs/:id/resume may pick it up. */
    resumable: run.status === "failed" && run.resumable && run.chunksTotal !== null && !ctx.superseded,
    official: run.official,
    stale,
    hint: runHint(run, ctx, stale),
    checksums: run.checksums,
    error: run.error === null ? null : redactText(run.error),
    /** While active: the last error of a step that will be retried. */
    retrying: run.retrying === null ? null : redactText(run.retrying),
    createdAt: run.createdAt,
    updatedAt: run.updatedAt,
    finishedAt: run.finishedAt,
    durationMs: Date.parse(end) - Date.parse(run.createdAt),
  };
}

/** A dataset whose rows a swap has put in D1: what every read of it needs. */
export type Loaded = LoadedDataset & { readonly shape: Shape; readonly version: string };

export const isLoaded = (d: LoadedDataset | undefined): d is Loaded =>
  d !== undefined && d.version !== null && d.shape !== null;

/** A custom dataset's title does not depend on its files. */
const customTitle = (name: string): string =>
  customSpec(name, { trainImages: "", trainLabels: "", testImages: "", testLabels: "" }).title;

/** What loading a registry dataset's published files would take in D1; null if its shape or counts are not published. */
function publishedBytes(entry: DatasetSpec): number | null {
  const train = splitSpec(entry, "train").count;
  const test = splitSpec(entry, "test").count;
  return entry.shape && train !== undefined && test !== undefined ? datasetBytes({ train, test }, entry.shape) : null;
}

/**
 * A dataset as GET /datasets lists it: `catalog` is its catalog entry (none
 * for a registry dataset never loaded), `lastRun` its newest run,
 * `classCount` the classes its last swap recorded (0: none recorded), and
 * `exportsBucket` whether an R2 bucket for exports is bound.
 */
export function presentDataset(
  name: string,
  catalog: LoadedDataset | undefined,
  lastRun: Run | undefined,
  classCount: number,
  exportsBucket: boolean,
  ctx: RunContext,
): DatasetSummary {
  const entry = registryEntry(name);
  const loaded = isLoaded(catalog) ? catalog : undefined;
  const active = lastRun !== undefined && isActive(lastRun);
  const broken = loaded !== undefined && isBroken(loaded);
  return {
    name,
    title: entry?.title ?? customTitle(name),
    registry: entry !== undefined,
    status: broken ? "broken" : loaded ? "loaded" : "empty",
    hint: broken ? brokenHint(loaded) : null,
    official: loaded ? loaded.official : null,
    source: loaded ? loaded.source : null,
    shape: loaded?.shape ?? entry?.shape ?? null,
    counts: loaded?.counts ?? { train: 0, test: 0 },
    classCount: classCount > 0 ? classCount : (entry?.classes?.length ?? 0),
    sizeBytes: loaded ? datasetBytes(loaded.counts, loaded.shape) : entry ? publishedBytes(entry) : null,
    version: catalog?.version ?? null,
    swappedAt: catalog?.swappedAt ?? null,
    exportsStored: exportsBucket ? (loaded?.exported ?? false) : null,
    // The newest run: none later supersedes it.
    lastRun: lastRun ? presentRun(lastRun, ctx) : null,
    // A dataset's active run is always its newest: a run starts only when none is active, and only the newest resumes.
    activeRun: active ? lastRun.id : null,
  };
}

/** The file as a URL names it: the uint8 images are `<split>.npy?dtype=uint8`. */
const urlName = (dataset: string, f: ExportFile): string =>
  f.format === "npy" && f.kind === "uint8" ? `${f.split}.npy?dtype=uint8` : fileName(dataset, f);

/** Croissant's encodingFormat: a media type (Parquet's as mlcroissant reads it). */
const ENCODING: Readonly<Record<ExportFile["format"], string>> = {
  npy: "application/x-npy",
  parquet: "application/x-parquet",
  npz: "application/x-npz",
};

/**
 * Every export file of a loaded version, with its URLs (paths on this
 * Worker), exact size and, once the export job has recorded it, SHA-256.
 */
export function presentExports(facts: VersionFacts, records: readonly FileRecord[]): ExportEntry[] {
  const base = `/datasets/${facts.dataset}/export`;
  const digests = new Map(records.map((r) => [r.file, r]));
  return versionFiles(facts).map((f) => {
    const file = fileName(facts.dataset, f);
    const bytes = fileSize(facts, f);
    const record = digests.get(file);
    return {
      file,
      format: f.format,
      ...(f.format === "npz" ? {} : { split: f.split }),
      ...(f.format === "npy" ? { content: f.kind } : {}),
      url: `${base}/${urlName(facts.dataset, f)}`,
      versionedUrl: `${base}/v/${facts.version}/${urlName(facts.dataset, f)}`,
      encodingFormat: ENCODING[f.format],
      bytes,
      sha256: record?.bytes === bytes ? record.sha256 : null,
    };
  });
}
