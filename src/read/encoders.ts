/**
 * Each export file as an encoder of row pages: told where each of its splits
 * begins and ends and handed the pages between, it returns the file's bytes
 * in order. The same encoders write the files to R2 after a load (all of them
 * from one read of each split) and serve them from D1 when R2 has not got
 * them, so both paths are the same bytes by construction.
 *
 * A whole file read from D1 can start mid-file: `resume` says where encoding
 * must begin to reach a byte, which for Parquet is the row group that holds
 * it (or the footer, which needs no row) and for the .npz its start (a
 * member's CRC-32 comes after its data).
 */
import { SPLITS, type Shape, type Split } from "../core/datasets";
import { npyHeader } from "../codec/npy";
import { dataDescriptor, localHeader, npzDirectory, npzLayout, RunningCrc, type NpzLayout } from "../codec/npz";
import { groupAt, parquetLayout, ParquetWriter, type ParquetLayout } from "../codec/parquet";
import { spanHeader, type ExportKind } from "./export";
import type { RowPage } from "./rows";

/** A dataset version as the exports describe it: enough to know every file's layout before reading a row. */
export interface VersionFacts {
  readonly dataset: string;
  readonly version: string;
  readonly shape: Shape;
  readonly counts: Readonly<Record<Split, number>>;
  /** Class names by label (the Parquet files' ClassLabel). */
  readonly classNames: readonly string[];
}

export interface RowEncoder {
  /** The splits whose rows it reads, in order. */
  readonly splits: readonly Split[];
  begin(split: Split): Uint8Array[];
  page(page: RowPage): Uint8Array[];
  finish(split: Split): Uint8Array[];
}

/** A split's .npy file: its header, then each page's floats, bytes or labels. */
export function npyEncoder(facts: VersionFacts, split: Split, kind: ExportKind): RowEncoder {
  return {
    splits: [split],
    begin: () => [spanHeader({ kind, count: facts.counts[split], shape: facts.shape })],
    page: (p) => [kind === "images" ? p.floats : kind === "uint8" ? p.pixels : p.labels],
    finish: () => [],
  };
}

export const parquetOf = (facts: VersionFacts, split: Split): ParquetLayout =>
  parquetLayout({ split, count: facts.counts[split], shape: facts.shape, classNames: facts.classNames });

/** A split's Parquet file from row group `firstGroup` on (0: the whole file). */
export function parquetEncoder(layout: ParquetLayout, split: Split, firstGroup = 0): RowEncoder {
  const writer = new ParquetWriter(layout, firstGroup);
  return {
    splits: [split],
    begin: () => writer.start(),
    page: (p) => writer.pushRows(p.from, p.labels, p.pixels),
    finish: () => writer.end(),
  };
}

/** Keras' member names: x_* the images, y_* the labels. */
const NPZ_MEMBERS = SPLITS.flatMap((s) => [`x_${s}.npy`, `y_${s}.npy`]);

/** Keras' layout: (n, rows, cols) for one channel, (n, rows, cols, channels) otherwise; uint8 throughout. */
function npzHeaders(facts: VersionFacts, split: Split): [Uint8Array, Uint8Array] {
  const { rows, cols, channels } = facts.shape;
  const n = facts.counts[split];
  return [npyHeader("|u1", channels === 1 ? [n, rows, cols] : [n, rows, cols, channels]), npyHeader("|u1", [n])];
}

export function npzOf(facts: VersionFacts): NpzLayout {
  const pixels = facts.shape.rows * facts.shape.cols * facts.shape.channels;
  return npzLayout(
    SPLITS.flatMap((s) => {
      const [x, y] = npzHeaders(facts, s);
      return [
        { name: `x_${s}.npy`, size: x.length + facts.counts[s] * pixels },
        { name: `y_${s}.npy`, size: y.length + facts.counts[s] },
      ];
    }),
  );
}

/**
 * The dataset's .npz: per split, x_<split> streamed as its pages come (the
 * CRC-32 running), its labels kept (a byte a row) and written as y_<split>
 * once the split ends, then the central directory.
 */
export function npzEncoder(facts: VersionFacts): RowEncoder {
  const layout = npzOf(facts);
  const crcs: number[] = [];
  let crc = new RunningCrc();
  let labels: Uint8Array[] = [];
  const member = (bytes: Uint8Array[]) => {
    crc = new RunningCrc();
    for (const b of bytes) crc.update(b);
    return bytes;
  };
  return {
    splits: SPLITS,
    begin(split) {
      labels = [];
      return [localHeader(`x_${split}.npy`), ...member([npzHeaders(facts, split)[0]])];
    },
    page(p) {
      crc.update(p.pixels);
      labels.push(p.labels);
      return [p.pixels];
    },
    finish(split) {
      const [x, y] = layout.members.filter((m) => m.name.endsWith(`_${split}.npy`));
      const out = [dataDescriptor(crc.value, x!.size)];
      crcs.push(crc.value);
      out.push(localHeader(y!.name), ...member([npzHeaders(facts, split)[1], ...labels]));
      out.push(dataDescriptor(crc.value, y!.size));
      crcs.push(crc.value);
      labels = [];
      if (crcs.length === NPZ_MEMBERS.length) out.push(npzDirectory(layout, crcs));
      return out;
    },
  };
}

/** Where encoding starts to serve bytes from `start`: that offset, the split and its first row, and the encoder. */
export interface Resume {
  readonly offset: number;
  readonly split: Split;
  readonly row: number;
  readonly encoder: RowEncoder;
}

export function resumeParquet(layout: ParquetLayout, split: Split, start: number): Resume {
  if (start >= layout.footerOffset) {
    const end = layout.groups.length;
    return { offset: layout.footerOffset, split, row: layout.spec.count, encoder: parquetEncoder(layout, split, end) };
  }
  // Group 0 is written with the magic before it.
  const g = layout.groups.length > 0 && start >= layout.groups[0]!.offset ? groupAt(layout, start) : 0;
  const group = layout.groups[g];
  return {
    offset: g === 0 ? 0 : group!.offset,
    split,
    row: group?.first ?? 0,
    encoder: parquetEncoder(layout, split, g),
  };
}

export const resumeNpz = (facts: VersionFacts): Resume => ({
  offset: 0,
  split: SPLITS[0],
  row: 0,
  encoder: npzEncoder(facts),
});
