/**
 * The parts of the zip format needed to fetch single members of a large zip
 * (EMNIST's `gzip.zip`) with Range requests: the end of central directory
 * record (ZIP64 included), the central directory, and the length of a local
 * file header. Pure, no I/O: the caller fetches the bytes each function asks
 * for, and every failure is an EtlError naming the zip and what is wrong.
 */
import { EtlError } from "../core/errors";

/** A member, as the central directory describes it. */
export interface ZipEntry {
  readonly name: string;
  /** Compression method: 0 stored, 8 deflate (the only two openZipMember reads). */
  readonly method: number;
  /** General purpose flags; bit 0 is encryption. */
  readonly flags: number;
  /** Unsigned. */
  readonly crc32: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly localHeaderOffset: number;
}

/** Where the central directory lies, as the end record (or its ZIP64 counterpart) says. */
export interface ZipEnd {
  /** Offset of the end of central directory record in the zip. */
  readonly offset: number;
  readonly entries: number;
  readonly directoryOffset: number;
  readonly directorySize: number;
  /**
   * Some field is saturated (0xFFFF, 0xFFFFFFFF): the real values are in the
   * ZIP64 end record, found through the locator just before this record.
   */
  readonly zip64: boolean;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_END_SIG = 0x06064b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

export const EOCD_BYTES = 22;
/** The end record sits in the last 22 + 65,535 (its longest comment) bytes of a zip. */
export const EOCD_SEARCH_BYTES = EOCD_BYTES + 0xffff;
export const ZIP64_LOCATOR_BYTES = 20;
/** The fixed part of the ZIP64 end record; the extensible data after it is never needed. */
export const ZIP64_END_BYTES = 56;
export const LOCAL_HEADER_FIXED_BYTES = 30;
/** The most a local header can take: its fixed part, a name and an extra field of 65,535 bytes each. */
export const LOCAL_HEADER_MAX_BYTES = LOCAL_HEADER_FIXED_BYTES + 2 * 0xffff;
const CENTRAL_FIXED_BYTES = 46;

const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** A 64-bit field as a number; beyond 2^53 it cannot be a real offset or size. */
function u64(v: DataView, at: number, file: string, what: string): number {
  const n = v.getBigUint64(at, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER))
    throw new EtlError(`${file}: ZIP64 ${what} ${n} is out of range: not a valid zip`);
  return Number(n);
}

/**
 * Find the end of central directory record in `tail`, the last bytes of a
 * zip that starts `tailStart` bytes before them. The search runs backwards,
 * and a candidate must have a comment that reaches exactly the end of the
 * file, so a signature inside the comment is not taken for the record; failing
 * that, the last candidate whose record fits is taken (a zip with bytes
 * appended after it).
 */
export function findEnd(tail: Uint8Array, tailStart: number, file: string): ZipEnd {
  const v = view(tail);
  let loose: number | undefined;
  let at: number | undefined;
  for (let i = tail.length - EOCD_BYTES; i >= 0; i--) {
    if (v.getUint32(i, true) !== EOCD_SIG) continue;
    const end = i + EOCD_BYTES + v.getUint16(i + 20, true);
    if (end === tail.length) {
      at = i;
      break;
    }
    if (end < tail.length) loose ??= i;
  }
  at ??= loose;
  if (at === undefined) {
    const size = tailStart + tail.length;
    throw new EtlError(
      size < EOCD_BYTES
        ? `${file}: not a zip file (${size} bytes, fewer than an end of central directory record)`
        : `${file}: not a zip file, or truncated: no end of central directory record in its last ${tail.length} bytes`,
    );
  }
  const disk = v.getUint16(at + 4, true);
  const directoryDisk = v.getUint16(at + 6, true);
  const entriesOnDisk = v.getUint16(at + 8, true);
  const entries = v.getUint16(at + 10, true);
  const directorySize = v.getUint32(at + 12, true);
  const directoryOffset = v.getUint32(at + 16, true);
  const zip64 =
    disk === 0xffff ||
    directoryDisk === 0xffff ||
    entriesOnDisk === 0xffff ||
    entries === 0xffff ||
    directorySize === 0xffffffff ||
    directoryOffset === 0xffffffff;
  const offset = tailStart + at;
  if (!zip64) {
    if (disk !== 0 || directoryDisk !== 0 || entriesOnDisk !== entries) {
      throw new EtlError(`${file}: a zip split over several files (disk ${disk}) is not supported`);
    }
    checkDirectoryPlace(directoryOffset, directorySize, offset, file);
  }
  return { offset, entries, directoryOffset, directorySize, zip64 };
}

/** The offset of the ZIP64 end record, from the locator that lies just before the end record. */
export function parseZip64Locator(bytes: Uint8Array, file: string): number {
  if (bytes.length < ZIP64_LOCATOR_BYTES || view(bytes).getUint32(0, true) !== ZIP64_LOCATOR_SIG) {
    throw new EtlError(
      `${file}: the end of central directory record has ZIP64 placeholders but no ZIP64 locator before it: not a valid zip`,
    );
  }
  const v = view(bytes);
  const disks = v.getUint32(16, true);
  if (v.getUint32(4, true) !== 0 || disks > 1) {
    throw new EtlError(`${file}: a zip split over several files (${disks} disks) is not supported`);
  }
  return u64(v, 8, file, "end record offset");
}

/**
 * The ZIP64 end record at `offset`, which must lie before `locatorOffset`
 * (where its locator is).
 */
export function parseZip64End(bytes: Uint8Array, offset: number, locatorOffset: number, file: string): ZipEnd {
  const v = view(bytes);
  if (bytes.length < ZIP64_END_BYTES || v.getUint32(0, true) !== ZIP64_END_SIG) {
    throw new EtlError(`${file}: no ZIP64 end of central directory record at offset ${offset}: not a valid zip`);
  }
  if (offset + ZIP64_END_BYTES > locatorOffset) {
    throw new EtlError(`${file}: the ZIP64 end record at ${offset} overlaps its locator: not a valid zip`);
  }
  const disk = v.getUint32(16, true);
  const directoryDisk = v.getUint32(20, true);
  const entriesOnDisk = u64(v, 24, file, "entry count");
  const entries = u64(v, 32, file, "entry count");
  if (disk !== 0 || directoryDisk !== 0 || entriesOnDisk !== entries) {
    throw new EtlError(`${file}: a zip split over several files (disk ${disk}) is not supported`);
  }
  const directorySize = u64(v, 40, file, "directory size");
  const directoryOffset = u64(v, 48, file, "directory offset");
  checkDirectoryPlace(directoryOffset, directorySize, offset, file);
  return { offset, entries, directoryOffset, directorySize, zip64: true };
}

function checkDirectoryPlace(directoryOffset: number, directorySize: number, endOffset: number, file: string): void {
  if (directoryOffset + directorySize > endOffset) {
    throw new EtlError(
      `${file}: the central directory (${directorySize} bytes at ${directoryOffset}) runs past its end record at ${endOffset}: the zip is truncated or corrupt`,
    );
  }
}

const utf8 = new TextDecoder("utf-8");

/**
 * The `count` entries of the central directory `bytes`. Names are decoded as
 * UTF-8 whether or not flag bit 11 says so: for the ASCII names looked up
 * here, the legacy CP437 encoding reads the same.
 */
export function parseCentralDirectory(bytes: Uint8Array, count: number, file: string): ZipEntry[] {
  const v = view(bytes);
  const entries: ZipEntry[] = [];
  let at = 0;
  const truncated = (): EtlError =>
    new EtlError(
      `${file}: central directory truncated: entry ${entries.length + 1} of ${count} runs past its ${bytes.length} bytes`,
    );
  for (let n = 0; n < count; n++) {
    if (at + CENTRAL_FIXED_BYTES > bytes.length) throw truncated();
    if (v.getUint32(at, true) !== CENTRAL_SIG) {
      throw new EtlError(`${file}: central directory entry ${n + 1} of ${count} has a bad signature at offset ${at}`);
    }
    const nameLength = v.getUint16(at + 28, true);
    const extraLength = v.getUint16(at + 30, true);
    const commentLength = v.getUint16(at + 32, true);
    const next = at + CENTRAL_FIXED_BYTES + nameLength + extraLength + commentLength;
    if (next > bytes.length) throw truncated();
    const name = utf8.decode(bytes.subarray(at + CENTRAL_FIXED_BYTES, at + CENTRAL_FIXED_BYTES + nameLength));
    let compressedSize = v.getUint32(at + 20, true);
    let uncompressedSize = v.getUint32(at + 24, true);
    let localHeaderOffset = v.getUint32(at + 42, true);
    if (compressedSize === 0xffffffff || uncompressedSize === 0xffffffff || localHeaderOffset === 0xffffffff) {
      const extra = bytes.subarray(
        at + CENTRAL_FIXED_BYTES + nameLength,
        at + CENTRAL_FIXED_BYTES + nameLength + extraLength,
      );
      const z = zip64Extra(extra, name, file);
      // The ZIP64 field holds exactly the values whose 32-bit field is saturated, in this order.
      let i = 0;
      const take = (what: string): number => {
        if (i + 8 > z.byteLength) throw new EtlError(`${file}: ${name}: ZIP64 extra field lacks the ${what}`);
        const value = u64(z, i, file, what);
        i += 8;
        return value;
      };
      if (uncompressedSize === 0xffffffff) uncompressedSize = take("uncompressed size");
      if (compressedSize === 0xffffffff) compressedSize = take("compressed size");
      if (localHeaderOffset === 0xffffffff) localHeaderOffset = take("local header offset");
    }
    entries.push({
      name,
      method: v.getUint16(at + 10, true),
      flags: v.getUint16(at + 8, true),
      crc32: v.getUint32(at + 16, true),
      compressedSize,
      uncompressedSize,
      localHeaderOffset,
    });
    at = next;
  }
  return entries;
}

/** The data of the ZIP64 extended information field (id 0x0001) in an extra field. */
function zip64Extra(extra: Uint8Array, name: string, file: string): DataView {
  const v = view(extra);
  for (let at = 0; at + 4 <= extra.length;) {
    const id = v.getUint16(at, true);
    const size = v.getUint16(at + 2, true);
    if (id === 0x0001) {
      if (at + 4 + size > extra.length) break;
      return new DataView(extra.buffer, extra.byteOffset + at + 4, size);
    }
    at += 4 + size;
  }
  throw new EtlError(`${file}: ${name}: sizes need a ZIP64 extra field, and the central directory has none`);
}

/**
 * The length of the local file header at the start of `bytes` (30 + name +
 * extra: the member's data starts right after). `bytes` needs only the fixed
 * 30 bytes.
 */
export function localHeaderLength(bytes: Uint8Array, file: string, member: string): number {
  if (bytes.length < LOCAL_HEADER_FIXED_BYTES) {
    throw new EtlError(`${member} in ${file}: local header truncated (${bytes.length} bytes)`);
  }
  const v = view(bytes);
  if (v.getUint32(0, true) !== LOCAL_SIG) {
    throw new EtlError(
      `${member} in ${file}: no local file header where the central directory says the member starts: the zip is corrupt`,
    );
  }
  return LOCAL_HEADER_FIXED_BYTES + v.getUint16(26, true) + v.getUint16(28, true);
}

/** Refuse a member this reader cannot decode: encrypted, or compressed by anything but store or deflate. */
export function checkReadable(entry: ZipEntry, file: string): void {
  if ((entry.flags & 1) !== 0) throw new EtlError(`${entry.name} in ${file}: encrypted member, not supported`);
  if (entry.method !== 0 && entry.method !== 8) {
    throw new EtlError(
      `${entry.name} in ${file}: unsupported compression method ${entry.method} (only 0, stored, and 8, deflate)`,
    );
  }
}
