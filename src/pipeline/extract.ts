/**
 * Extract: the phases of reading a dataset's four archives (archive.ts reads
 * each one), with what each phase checks. Labels first (small, and they say
 * how many images each split has), then the images files' headers (to plan
 * and size the run before anything is loaded), then the images themselves, cut
 * into chunks of raw pixels for the queue, upright.
 */
import type { Shape, Split } from "../core/datasets";
import { EtlError, SourceChangedError } from "../core/errors";
import { describeShape, expectImages, expectLabels, type IdxHeader } from "../codec/idx";
import { transposedShape, transposeImages } from "../codec/transform";
import type { Archives } from "./archive";

export interface SplitLabels {
  readonly split: Split;
  readonly count: number;
  /** labels[i] is image i's class, each checked to be in range. */
  readonly labels: Uint8Array;
}

/** What the images files' headers say: the images as stored, and as loaded (upright). */
export interface ImagesLayout {
  readonly stored: Shape;
  readonly shape: Shape;
}

/** Consecutive images of one split, with their raw pixels (count × pixels per image). */
export interface ImageChunk {
  readonly split: Split;
  readonly start: number;
  readonly count: number;
  readonly pixels: Uint8Array;
}

/** Largest labels file held in memory: 16M images, far beyond any IDX dataset. */
const MAX_LABELS = 16 * 1024 * 1024;

/** The labels files, each label checked to be a class; each archive's MD5 is pinned as it is read. */
export async function extractLabels(archives: Archives): Promise<SplitLabels[]> {
  const { dataset, official } = archives.opts;
  const out: SplitLabels[] = [];
  for (const spec of dataset.splits) {
    const file = spec.labels.file;
    let labels: Uint8Array = new Uint8Array(0);
    // One chunk of every label, yielded once the archive is verified.
    for await (const item of archives.read(file, { md5: spec.labels.md5, recordsPerChunk: MAX_LABELS })) {
      if (item.kind === "records") labels = item.bytes;
      else if (expectLabels(item.header, file) > MAX_LABELS) {
        throw new EtlError(`${file}: ${item.header.dims[0]} labels is more than the ${MAX_LABELS} supported`);
      }
    }
    // An empty split would complete as a dataset of no rows, replacing a real one.
    if (labels.length === 0) throw new EtlError(`${file}: header says 0 labels: the ${spec.split} split is empty`);
    if (official && labels.length !== spec.count) {
      throw new EtlError(`${file}: expected ${spec.count} labels, header says ${labels.length}`);
    }
    const classes = dataset.classes;
    const bad = classes ? labels.findIndex((l) => l >= classes.length) : -1;
    if (classes && bad >= 0) {
      throw new EtlError(
        `${file}: label ${labels[bad]} at index ${bad} is outside 0–${classes.length - 1} (${classes.length} classes)`,
      );
    }
    out.push({ split: spec.split, count: labels.length, labels });
  }
  return out;
}

/**
 * The images files' headers only (each download stops there): how many
 * images, and of what shape. Every split must agree with its labels file, with
 * the other split, and with the dataset's published shape if it has one.
 */
export async function peekImages(archives: Archives, labels: readonly SplitLabels[]): Promise<ImagesLayout> {
  const { dataset } = archives.opts;
  let stored: Shape | undefined;
  let from = "";
  for (const spec of dataset.splits) {
    const file = spec.images.file;
    let header: IdxHeader | undefined;
    for await (const item of archives.read(file, { recordsPerChunk: 1 })) {
      if (item.kind === "header") header = item.header;
      break;
    }
    const { count, shape } = expectImages(header!, file);
    const expected = labels.find((l) => l.split === spec.split)?.count;
    if (count !== expected) {
      throw new EtlError(`${spec.labels.file}: header says ${expected} labels but ${file} says ${count} images`);
    }
    const want = dataset.shape;
    const upright = dataset.transposed ? transposedShape(shape) : shape;
    if (want && describeShape(upright) !== describeShape(want)) {
      throw new EtlError(
        `${file}: ${dataset.name} images are ${describeShape(want)}, header says ${describeShape(upright)}`,
      );
    }
    if (stored && describeShape(shape) !== describeShape(stored)) {
      throw new EtlError(`${file}: images are ${describeShape(shape)}, but ${from} has ${describeShape(stored)}`);
    }
    stored = shape;
    from = file;
  }
  if (!stored) throw new EtlError(`${dataset.name}: no splits`);
  return { stored, shape: dataset.transposed ? transposedShape(stored) : stored };
}

/**
 * Only the images archives' MD5s (downloaded, not inflated), pinned: enough to
 * tell that a source still serves the archives of the last complete run.
 */
export async function hashImages(archives: Archives): Promise<void> {
  for (const spec of archives.opts.dataset.splits) {
    for await (const _ of archives.read(spec.images.file, { md5: spec.images.md5, hashOnly: true }));
  }
}

/**
 * The images, in chunks of `chunkImages` as they inflate, upright. Each file's
 * last chunk comes only after its archive passed every check, so loading can
 * begin while the rest downloads but cannot complete before all is verified.
 * `needed` skips the splits a later job segment has no chunks left in.
 */
export async function* extractImages(
  archives: Archives,
  labels: readonly SplitLabels[],
  layout: ImagesLayout,
  chunkImages: number,
  needed: (split: Split) => boolean = () => true,
): AsyncGenerator<ImageChunk> {
  const { dataset } = archives.opts;
  for (const spec of dataset.splits) {
    if (!needed(spec.split)) continue;
    const file = spec.images.file;
    for await (const item of archives.read(file, { md5: spec.images.md5, recordsPerChunk: chunkImages })) {
      if (item.kind === "header") {
        const { count, shape } = expectImages(item.header, file);
        const labelCount = labels.find((l) => l.split === spec.split)?.count ?? 0;
        if (count !== labelCount) {
          throw new EtlError(`${spec.labels.file}: header says ${labelCount} labels but ${file} says ${count} images`);
        }
        // The headers were read before planning (peekImages): other ones now mean other files.
        if (describeShape(shape) !== describeShape(layout.stored)) {
          throw new SourceChangedError(
            `${file}: images are now ${describeShape(shape)}, were ${describeShape(layout.stored)}; start a new run`,
          );
        }
        continue;
      }
      const { start, count, bytes } = item;
      const pixels = dataset.transposed ? transposeImages(bytes, count, layout.stored) : bytes;
      yield { split: spec.split, start, count, pixels };
    }
  }
}
