/**
 * What the EXPORTS bucket holds, by key: each dataset's exports under
 * `<dataset>/` (export-store.ts), the archives its runs read under
 * `_raw/<dataset>/` (raw-archives.ts), and the pixels of chunks too large for
 * a queue message, staged for loading under `_chunks/<dataset>/`
 * (pipeline/staging.ts): prefixes no dataset can take, since names begin with
 * a letter.
 */
import type { Split } from "../core/datasets";
import { datasetPrefix } from "./export-store";
import { rawDatasetPrefix } from "./raw-archives";

/** Where a dataset's staged chunks are, those of every run. */
export const stagingPrefix = (dataset: string): string => `_chunks/${dataset}/`;

/** The object that holds one chunk's raw pixels, for one run. */
export const stagedKey = (dataset: string, runId: string, split: Split, start: number): string =>
  `${stagingPrefix(dataset)}${runId}/${split}-${start}`;

/**
 * Every prefix under which the bucket holds objects of a dataset: what
 * DELETE /datasets/{name} removes. Whatever else stores a dataset's objects
 * in the bucket adds its prefix here. None is a prefix of another dataset's
 * (names hold no "/").
 */
export const datasetObjectPrefixes = (dataset: string): string[] => [
  datasetPrefix(dataset),
  stagingPrefix(dataset),
  rawDatasetPrefix(dataset),
];
