/**
 * NumPy's .npz, pure: a zip of .npy members, written here uncompressed
 * ("stored") and as a stream. Each member's local header comes before its
 * data with general purpose flag 3 set, so its CRC-32 and sizes follow the
 * data in a data descriptor (APPNOTE.TXT 4.3.9) and in the central directory:
 * the whole file is written in one pass over the rows, and its length is known
 * before the first byte (every size is). numpy reads it through Python's
 * zipfile, which takes sizes and CRCs from the central directory.
 *
 * No ZIP64: a member or an offset past 4 GiB is refused (a D1 database of
 * 10 GB holds at most 2.5 G images' bytes as float32, a quarter of that as
 * uint8, so no dataset loaded here comes near it).
 */
import { buf as crc32 } from "crc-32";

const LOCAL_SIG = 0x04034b50;
const DESCRIPTOR_SIG = 0x08074b50;
const CENTRAL_SIG = 0x02014b50;
const END_SIG = 0x06054b50;

const LOCAL_BYTES = 30;
export const DESCRIPTOR_BYTES = 16;
const CENTRAL_BYTES = 46;
const END_BYTES = 22;
/** Version 2.0: stored members with data descriptors. */
const VERSION = 20;
/** Flag bit 3: CRC-32 and sizes are in the data descriptor after the data. */
const DESCRIPTOR_FLAG = 0x0008;
/** 1980-01-01 00:00, MS-DOS's first date: a fixed timestamp keeps every write of a version byte-identical. */
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
const LIMIT = 0xffffffff;

export interface NpzMember {
  /** The member's file name in the zip, e.g. `x_train.npy`. */
  readonly name: string;
  /** Its bytes: the .npy header and data. */
  readonly size: number;
}

/** Where each member's parts lie, and the file's total size. */
export interface NpzLayout {
  readonly members: readonly (NpzMember & { readonly offset: number; readonly dataOffset: number })[];
  readonly directoryOffset: number;
  readonly size: number;
}

const ascii = (name: string): Uint8Array => {
  if (!/^[\x20-\x7e]+$/.test(name)) throw new RangeError(`zip member name must be printable ASCII: ${name}`);
  return Uint8Array.from(name, (c) => c.charCodeAt(0));
};

export function npzLayout(members: readonly NpzMember[]): NpzLayout {
  let at = 0;
  const placed = members.map((m) => {
    const offset = at;
    const dataOffset = offset + LOCAL_BYTES + ascii(m.name).length;
    at = dataOffset + m.size + DESCRIPTOR_BYTES;
    return { ...m, offset, dataOffset };
  });
  const directoryOffset = at;
  const size = directoryOffset + members.reduce((n, m) => n + CENTRAL_BYTES + ascii(m.name).length, 0) + END_BYTES;
  if (members.some((m) => m.size > LIMIT) || directoryOffset > LIMIT || members.length > 0xffff)
    throw new RangeError(`an .npz of ${size} bytes needs ZIP64, which this writer does not support`);
  return { members: placed, directoryOffset, size };
}

/** The local file header of a member: zeros where the descriptor carries the CRC and sizes. */
export function localHeader(name: string): Uint8Array {
  const n = ascii(name);
  const out = new Uint8Array(LOCAL_BYTES + n.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, LOCAL_SIG, true);
  v.setUint16(4, VERSION, true);
  v.setUint16(6, DESCRIPTOR_FLAG, true);
  v.setUint16(8, 0, true); // stored
  v.setUint16(10, 0, true); // time 00:00
  v.setUint16(12, DOS_DATE, true);
  // CRC-32, compressed and uncompressed size (14…25): zero, in the descriptor instead.
  v.setUint16(26, n.length, true);
  v.setUint16(28, 0, true); // no extra field
  out.set(n, LOCAL_BYTES);
  return out;
}

export function dataDescriptor(crc: number, size: number): Uint8Array {
  const out = new Uint8Array(DESCRIPTOR_BYTES);
  const v = new DataView(out.buffer);
  v.setUint32(0, DESCRIPTOR_SIG, true);
  v.setUint32(4, crc >>> 0, true);
  v.setUint32(8, size, true);
  v.setUint32(12, size, true);
  return out;
}

/** The central directory and end record, once every member's CRC-32 is known. */
export function npzDirectory(layout: NpzLayout, crcs: readonly number[]): Uint8Array {
  const out = new Uint8Array(layout.size - layout.directoryOffset);
  const v = new DataView(out.buffer);
  let at = 0;
  layout.members.forEach((m, i) => {
    const n = ascii(m.name);
    v.setUint32(at, CENTRAL_SIG, true);
    v.setUint16(at + 4, VERSION, true); // made by: MS-DOS, 2.0
    v.setUint16(at + 6, VERSION, true);
    v.setUint16(at + 8, DESCRIPTOR_FLAG, true);
    v.setUint16(at + 10, 0, true);
    v.setUint16(at + 12, 0, true);
    v.setUint16(at + 14, DOS_DATE, true);
    v.setUint32(at + 16, (crcs[i] ?? 0) >>> 0, true);
    v.setUint32(at + 20, m.size, true);
    v.setUint32(at + 24, m.size, true);
    v.setUint16(at + 28, n.length, true);
    // extra, comment, disk, internal and external attributes (30…41): zero.
    v.setUint32(at + 42, m.offset, true);
    out.set(n, at + CENTRAL_BYTES);
    at += CENTRAL_BYTES + n.length;
  });
  v.setUint32(at, END_SIG, true);
  v.setUint16(at + 8, layout.members.length, true);
  v.setUint16(at + 10, layout.members.length, true);
  v.setUint32(at + 12, layout.size - END_BYTES - layout.directoryOffset, true);
  v.setUint32(at + 16, layout.directoryOffset, true);
  return out;
}

/** CRC-32 of a member's bytes, carried across the pieces it is written in. */
export class RunningCrc {
  #crc = 0;
  update(bytes: Uint8Array): void {
    this.#crc = crc32(bytes, this.#crc);
  }
  get value(): number {
    return this.#crc >>> 0;
  }
}
