/**
 * What a dataset is: its archives, their published checksums, where they are
 * published, the image shape and the class names. Registry entries
 * (registry.ts) fill every field; a custom dataset names its files and perhaps
 * its classes, and its shape comes from the IDX headers.
 */

export const SPLITS = ["train", "test"] as const;
export type Split = (typeof SPLITS)[number];

export const isSplit = (s: unknown): s is Split => s === "train" || s === "test";

/**
 * A dataset's name: lower-case letters and digits in dash-separated words, at
 * most 40 characters. It names the dataset's physical tables too
 * (`images__<name with _ for ->__<split>`), so the mapping must be injective.
 */
export const DATASET_NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
export const MAX_DATASET_NAME = 40;
export const isDatasetName = (s: unknown): s is string =>
  typeof s === "string" && s.length <= MAX_DATASET_NAME && DATASET_NAME.test(s);

export interface Shape {
  readonly rows: number;
  readonly cols: number;
  readonly channels: number;
}

export interface ArchiveSpec {
  /** File name, relative to the source's base URL (or a member name inside the dataset's zip). */
  readonly file: string;
  /** MD5 of the published .gz, enforced for runs from the dataset's own mirrors; undefined: not published. */
  readonly md5?: string;
}

export interface SplitSpec {
  readonly split: Split;
  readonly images: ArchiveSpec;
  readonly labels: ArchiveSpec;
  /** Image count of the published files; undefined for a custom dataset (the headers say). */
  readonly count?: number;
}

/** The one archive that holds every file of the dataset as members (EMNIST's `gzip.zip`). */
export interface ZipSpec {
  readonly file: string;
  /** MD5 of the whole zip: checked only when the whole zip is read (a source that ignores Range requests). */
  readonly md5?: string;
}

/**
 * One place an official dataset is published: a base URL where the files
 * lie loose, or (`zip`) where the dataset's zip lies.
 */
export interface Mirror {
  readonly url: string;
  readonly packaging: "files" | "zip";
}

/** Who made a dataset, under which license, and how to cite it: what its croissant.json says. */
export interface DatasetAbout {
  readonly description: string;
  /** Its home page. */
  readonly url: string;
  /** The license as published: a name and the URL of its text (SPDX's, where SPDX lists it). */
  readonly license: { readonly name: string; readonly url: string };
  readonly creators: readonly {
    readonly kind: "Organization" | "Person";
    readonly name: string;
    readonly url?: string;
  }[];
  /** BibTeX, as the publishers ask. */
  readonly citation: string;
  /** ISO 8601, as precise as the publication says: a year, or a date. */
  readonly published: string;
}

export interface DatasetSpec {
  readonly name: string;
  /** Human-readable name, with where it comes from. */
  readonly title: string;
  /** Undefined for a custom dataset: the IDX headers decide. */
  readonly shape?: Shape;
  /**
   * Class names indexed by label. Undefined for a custom dataset that named
   * none: its classes are then its labels, spelled as numbers.
   */
  readonly classes?: readonly string[];
  readonly splits: readonly SplitSpec[];
  /** Official mirrors, tried in order; empty for a custom dataset. */
  readonly mirrors: readonly Mirror[];
  /** The files are members of this zip at a `zip` mirror. */
  readonly zip?: ZipSpec;
  /** Images are stored transposed (column-major, as EMNIST's): they are loaded upright. */
  readonly transposed: boolean;
  /** A registry dataset's provenance; undefined for a custom one. */
  readonly about?: DatasetAbout;
}

export const pixelsPerImage = (s: Shape): number => s.rows * s.cols * s.channels;

/** The spec of a split, which every dataset has. */
export function splitSpec(d: DatasetSpec, split: Split): SplitSpec {
  const s = d.splits.find((x) => x.split === split);
  if (!s) throw new Error(`dataset ${d.name} has no ${split} split`);
  return s;
}

/** A custom dataset, as a run names it: the four files at its source, and perhaps class names. */
export interface CustomFiles {
  readonly trainImages: string;
  readonly trainLabels: string;
  readonly testImages: string;
  readonly testLabels: string;
}

export function customSpec(name: string, files: CustomFiles, classes?: readonly string[]): DatasetSpec {
  return {
    name,
    title: `${name} (custom IDX dataset)`,
    ...(classes ? { classes } : {}),
    splits: [
      { split: "train", images: { file: files.trainImages }, labels: { file: files.trainLabels } },
      { split: "test", images: { file: files.testImages }, labels: { file: files.testLabels } },
    ],
    mirrors: [],
    transposed: false,
  };
}

/** Class names of labels 0 … count - 1: the spec's, else the labels themselves. */
export function classNames(d: DatasetSpec, count: number): string[] {
  return Array.from({ length: count }, (_, label) => d.classes?.[label] ?? String(label));
}

/**
 * Whether archives with these MD5s (file → MD5, as a run pins them) are the
 * dataset's published files: every archive whose MD5 is published was read
 * and matched it. EMNIST publishes no MD5 for the members of its zip, only
 * for the zip, which counts only if the run read the zip whole.
 */
export function matchesPublished(spec: DatasetSpec, checksums: Readonly<Record<string, string>> | null): boolean {
  if (!checksums) return false;
  const zip = spec.zip;
  if (zip?.md5 !== undefined && checksums[zip.file] !== undefined && checksums[zip.file] !== zip.md5) return false;
  return spec.splits
    .flatMap((s) => [s.images, s.labels])
    .every((a) => a.md5 === undefined || checksums[a.file] === a.md5);
}
