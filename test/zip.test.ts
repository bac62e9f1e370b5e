/**
 * Members of a remote zip (EMNIST's gzip.zip): the pure parser on hand-built
 * bytes, then readZipDirectory and openZipMember against the test archive
 * server (test/global-setup.ts), with and without Range support, and with the
 * ways a zip or its transfer can be wrong.
 */
import { buf as crc32 } from "crc-32";
import { deflateSync, gunzipSync, gzipSync, zipSync, type Zippable } from "fflate";
import { describe, expect, inject, it } from "vitest";
import {
  EOCD_BYTES,
  ZIP64_END_BYTES,
  ZIP64_LOCATOR_BYTES,
  checkReadable,
  findEnd,
  localHeaderLength,
  parseCentralDirectory,
  parseZip64End,
  parseZip64Locator,
} from "../src/codec/zip";
import { EtlError, SourceChangedError } from "../src/core/errors";
import { TAIL_BYTES, WHOLE_ZIP_KEEP_BYTES, openZipMember, readZipDirectory } from "../src/pipeline/zip-member";
import { idxBytes } from "./idx-fixtures";

const server = (): string => inject("archiveServer");
let uploads = 0;

/** Upload `bytes` as `<fresh dir>/<file>` (with a fault, if any); returns its URL. */
async function upload(bytes: Uint8Array, file = "gzip.zip", fault?: string): Promise<string> {
  const url = `${server()}/f/zip-${Date.now()}-${uploads++}/${file}`;
  const res = await fetch(fault ? `${url}?fault=${encodeURIComponent(fault)}` : url, { method: "PUT", body: bytes });
  if (res.status !== 201) throw new Error(`upload failed: ${res.status}`);
  return url;
}

const hits = async (url: string): Promise<number> => Number(await (await fetch(`${url}/hits`)).text());
const never = new AbortController().signal;

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Bytes that deflate cannot shrink: a stored member larger than a read block needs several. */
function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const gz = (count: number, seed: number): Uint8Array =>
  gzipSync(
    idxBytes(
      [count, 28, 28],
      Uint8Array.from({ length: count * 784 }, (_, i) => (i * 7 + seed) % 256),
    ),
  );

// Members as in EMNIST's gzip.zip: .gz files under a gzip/ folder, some stored and some deflated.
const TRAIN_IMAGES = "gzip/emnist-balanced-train-images-idx3-ubyte.gz";
const TRAIN_LABELS = "gzip/emnist-balanced-train-labels-idx1-ubyte.gz";
const TEST_IMAGES = "gzip/emnist-balanced-test-images-idx3-ubyte.gz";
const BIG = "gzip/big-stored.bin";
const MEMBERS: Record<string, Uint8Array> = {
  [TRAIN_IMAGES]: gz(200, 1),
  [TRAIN_LABELS]: gzipSync(
    idxBytes(
      [200],
      Uint8Array.from({ length: 200 }, (_, i) => i % 47),
    ),
  ),
  [TEST_IMAGES]: gz(50, 2),
  [BIG]: noise(700_000, 3),
  "readme.txt": new TextEncoder().encode("EMNIST, a test stand-in. ".repeat(200)),
};
const LEVELS: Record<string, 0 | 6> = { [TRAIN_IMAGES]: 0, [TRAIN_LABELS]: 6, [TEST_IMAGES]: 6, [BIG]: 0 };

function emnistLike(): Uint8Array {
  const files: Zippable = { gzip: {} };
  for (const [name, data] of Object.entries(MEMBERS)) files[name] = [data, { level: LEVELS[name] ?? 9 }];
  return zipSync(files);
}

/** A copy of `zip` with an archive comment appended (fflate writes none). */
function withComment(zip: Uint8Array, comment: Uint8Array): Uint8Array {
  const out = new Uint8Array(zip.length + comment.length);
  out.set(zip);
  out.set(comment, zip.length);
  new DataView(out.buffer).setUint16(zip.length - 2, comment.length, true);
  return out;
}

interface HandMember {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
  flags?: number;
  method?: number;
}

/**
 * A zip written byte by byte, for what fflate cannot be asked to write:
 * ZIP64 records (`zip64`: every size and offset in ZIP64 fields, the end
 * record saturated), odd flags and methods, and directories of any size.
 */
function handZip(members: readonly HandMember[], zip64 = false): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let at = 0;
  const push = (b: Uint8Array, list = parts) => {
    list.push(b);
    if (list === parts) at += b.length;
  };
  for (const m of members) {
    const name = enc.encode(m.name);
    const body = m.deflate ? deflateSync(m.data) : m.data;
    const method = m.method ?? (m.deflate ? 8 : 0);
    const crc = crc32(m.data) >>> 0;
    const offset = at;
    const localExtra = zip64 ? 20 : 0;
    const local = new Uint8Array(30 + name.length + localExtra);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, zip64 ? 45 : 20, true);
    lv.setUint16(6, m.flags ?? 0, true);
    lv.setUint16(8, method, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, zip64 ? 0xffffffff : body.length, true);
    lv.setUint32(22, zip64 ? 0xffffffff : m.data.length, true);
    lv.setUint16(26, name.length, true);
    lv.setUint16(28, localExtra, true);
    local.set(name, 30);
    if (zip64) {
      lv.setUint16(30 + name.length, 1, true);
      lv.setUint16(32 + name.length, 16, true);
      lv.setBigUint64(34 + name.length, BigInt(m.data.length), true);
      lv.setBigUint64(42 + name.length, BigInt(body.length), true);
    }
    push(local);
    push(body);
    const extra = zip64 ? 28 : 0;
    const c = new Uint8Array(46 + name.length + extra);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, zip64 ? 45 : 20, true);
    cv.setUint16(6, zip64 ? 45 : 20, true);
    cv.setUint16(8, m.flags ?? 0, true);
    cv.setUint16(10, method, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, zip64 ? 0xffffffff : body.length, true);
    cv.setUint32(24, zip64 ? 0xffffffff : m.data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint16(30, extra, true);
    cv.setUint32(42, zip64 ? 0xffffffff : offset, true);
    c.set(name, 46);
    if (zip64) {
      cv.setUint16(46 + name.length, 1, true);
      cv.setUint16(48 + name.length, 24, true);
      cv.setBigUint64(50 + name.length, BigInt(m.data.length), true);
      cv.setBigUint64(58 + name.length, BigInt(body.length), true);
      cv.setBigUint64(66 + name.length, BigInt(offset), true);
    }
    central.push(c);
  }
  const directoryOffset = at;
  const directorySize = central.reduce((n, c) => n + c.length, 0);
  for (const c of central) push(c);
  if (zip64) {
    const record = new DataView(new ArrayBuffer(ZIP64_END_BYTES));
    record.setUint32(0, 0x06064b50, true);
    record.setBigUint64(4, BigInt(ZIP64_END_BYTES - 12), true);
    record.setUint16(12, 45, true);
    record.setUint16(14, 45, true);
    record.setBigUint64(24, BigInt(members.length), true);
    record.setBigUint64(32, BigInt(members.length), true);
    record.setBigUint64(40, BigInt(directorySize), true);
    record.setBigUint64(48, BigInt(directoryOffset), true);
    const recordAt = at;
    push(new Uint8Array(record.buffer));
    const locator = new DataView(new ArrayBuffer(ZIP64_LOCATOR_BYTES));
    locator.setUint32(0, 0x07064b50, true);
    locator.setBigUint64(8, BigInt(recordAt), true);
    locator.setUint32(16, 1, true);
    push(new Uint8Array(locator.buffer));
  }
  const end = new DataView(new ArrayBuffer(EOCD_BYTES));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, zip64 ? 0xffff : members.length, true);
  end.setUint16(10, zip64 ? 0xffff : members.length, true);
  end.setUint32(12, zip64 ? 0xffffffff : directorySize, true);
  end.setUint32(16, zip64 ? 0xffffffff : directoryOffset, true);
  push(new Uint8Array(end.buffer));
  const out = new Uint8Array(at);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

async function expectEtlError(p: Promise<unknown>, message: RegExp | string, retryable: boolean): Promise<EtlError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EtlError);
  const e = err as EtlError;
  if (typeof message === "string") expect(e.message).toBe(message);
  else expect(e.message).toMatch(message);
  expect(e.retryable).toBe(retryable);
  return e;
}

async function md5(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("MD5", bytes));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

describe("the parser, on bytes", () => {
  it("finds the end record behind a comment that holds a false end record signature", () => {
    const zip = emnistLike();
    // A signature inside the comment, with a comment length that does not reach the end: not the record.
    const fake = new Uint8Array(200).fill(0x41);
    fake.set([0x50, 0x4b, 0x05, 0x06], 50);
    const commented = withComment(zip, fake);
    const plain = findEnd(zip, 0, "gzip.zip");
    const end = findEnd(commented, 0, "gzip.zip");
    expect(end).toEqual(plain);
    expect(end.offset).toBe(zip.length - EOCD_BYTES);
    // Only the tail, placed at its offset in the file: the same answer.
    const tailStart = commented.length - 300;
    expect(findEnd(commented.subarray(tailStart), tailStart, "gzip.zip")).toEqual(plain);
    const entries = parseCentralDirectory(
      zip.subarray(end.directoryOffset, end.directoryOffset + end.directorySize),
      end.entries,
      "gzip.zip",
    );
    expect(entries.map((e) => e.name)).toEqual(["gzip/", ...Object.keys(MEMBERS)]);
    const big = entries.find((e) => e.name === BIG)!;
    expect(big).toMatchObject({ method: 0, compressedSize: 700_000, uncompressedSize: 700_000 });
    expect(big.crc32).toBe(crc32(MEMBERS[BIG]!) >>> 0);
    expect(entries.find((e) => e.name === TRAIN_LABELS)!.method).toBe(8);
    const at = big.localHeaderOffset;
    expect(localHeaderLength(zip.subarray(at, at + 30), "gzip.zip", BIG)).toBe(30 + BIG.length);
  });

  it("says what is wrong with bytes that are not a zip", () => {
    expect(() => findEnd(noise(100_000, 1), 0, "x.zip")).toThrow(
      "x.zip: not a zip file, or truncated: no end of central directory record in its last 100000 bytes",
    );
    expect(() => findEnd(new Uint8Array(5), 0, "x.zip")).toThrow(
      "x.zip: not a zip file (5 bytes, fewer than an end of central directory record)",
    );
    const zip = emnistLike();
    // The first half only: the end record is gone.
    expect(() => findEnd(zip.subarray(0, zip.length >> 1), 0, "x.zip")).toThrow(/not a zip file, or truncated/);
    // Bytes missing from the middle: the directory is no longer where the end record says.
    const holed = new Uint8Array([...zip.subarray(0, 1000), ...zip.subarray(2000)]);
    expect(() => findEnd(holed, 0, "x.zip")).toThrow(
      /^x\.zip: the central directory \(\d+ bytes at \d+\) runs past its end record at \d+: the zip is truncated or corrupt$/,
    );
    const end = findEnd(zip, 0, "x.zip");
    const directory = zip.subarray(end.directoryOffset, end.directoryOffset + end.directorySize);
    expect(() => parseCentralDirectory(directory.subarray(0, 100), end.entries, "x.zip")).toThrow(
      /^x\.zip: central directory truncated: entry 2 of 6 runs past its 100 bytes$/,
    );
    expect(() => localHeaderLength(zip.subarray(10, 50), "x.zip", "m")).toThrow(
      "m in x.zip: no local file header where the central directory says the member starts: the zip is corrupt",
    );
  });

  it("reads a ZIP64 end record through its locator, and ZIP64 sizes and offsets from the extra fields", () => {
    const data = [noise(1000, 1), new TextEncoder().encode("hello ".repeat(100))];
    const zip = handZip(
      [
        { name: "gzip/a.bin", data: data[0]! },
        { name: "gzip/b.txt", data: data[1]!, deflate: true },
      ],
      true,
    );
    const end = findEnd(zip, 0, "z.zip");
    expect(end).toMatchObject({ zip64: true, entries: 0xffff, directoryOffset: 0xffffffff });
    const locatorAt = end.offset - ZIP64_LOCATOR_BYTES;
    const recordAt = parseZip64Locator(zip.subarray(locatorAt, end.offset), "z.zip");
    const end64 = parseZip64End(zip.subarray(recordAt, recordAt + ZIP64_END_BYTES), recordAt, locatorAt, "z.zip");
    expect(end64.entries).toBe(2);
    const entries = parseCentralDirectory(
      zip.subarray(end64.directoryOffset, end64.directoryOffset + end64.directorySize),
      end64.entries,
      "z.zip",
    );
    expect(entries[0]).toEqual({
      name: "gzip/a.bin",
      method: 0,
      flags: 0,
      crc32: crc32(data[0]!) >>> 0,
      compressedSize: 1000,
      uncompressedSize: 1000,
      localHeaderOffset: 0,
    });
    expect(entries[1]).toMatchObject({ method: 8, uncompressedSize: 600, localHeaderOffset: 30 + 10 + 20 + 1000 });
    // Saturated fields without the locator before them: an error, not a misread directory.
    expect(() => parseZip64Locator(zip.subarray(0, 20), "z.zip")).toThrow(/ZIP64 placeholders but no ZIP64 locator/);
  });

  it("refuses encrypted members and compression methods other than store and deflate", () => {
    const entry = {
      name: "m",
      method: 8,
      flags: 0,
      crc32: 0,
      compressedSize: 0,
      uncompressedSize: 0,
      localHeaderOffset: 0,
    };
    expect(() => checkReadable(entry, "z.zip")).not.toThrow();
    expect(() => checkReadable({ ...entry, flags: 1 }, "z.zip")).toThrow("m in z.zip: encrypted member, not supported");
    expect(() => checkReadable({ ...entry, method: 12 }, "z.zip")).toThrow(
      "m in z.zip: unsupported compression method 12 (only 0, stored, and 8, deflate)",
    );
  });
});

describe("the archive server's Range support", () => {
  it("answers one range with 206, an unsatisfiable one with 416, and none with 200 and Accept-Ranges", async () => {
    const bytes = Uint8Array.from({ length: 10 }, (_, i) => i);
    const url = await upload(bytes, "r.bin");
    const get = (range?: string) => fetch(url, range ? { headers: { Range: range } } : {});
    const whole = await get();
    expect([whole.status, whole.headers.get("Accept-Ranges")]).toEqual([200, "bytes"]);
    expect(new Uint8Array(await whole.arrayBuffer())).toEqual(bytes);
    for (const [range, want, from, to] of [
      ["bytes=2-5", "bytes 2-5/10", 2, 6],
      ["bytes=7-", "bytes 7-9/10", 7, 10],
      ["bytes=-3", "bytes 7-9/10", 7, 10],
      ["bytes=-30", "bytes 0-9/10", 0, 10],
      ["bytes=8-100", "bytes 8-9/10", 8, 10],
    ] as const) {
      const res = await get(range);
      expect([range, res.status, res.headers.get("Content-Range")]).toEqual([range, 206, want]);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes.subarray(from, to));
    }
    const unsatisfiable = await get("bytes=10-");
    expect([unsatisfiable.status, unsatisfiable.headers.get("Content-Range")]).toEqual([416, "bytes */10"]);
    await unsatisfiable.arrayBuffer();
    const real = await fetch(`${server()}/fashion-mnist/t10k-labels-idx1-ubyte.gz`, {
      headers: { Range: "bytes=0-1" },
    });
    expect([real.status, real.headers.get("Content-Range")]).toEqual([206, expect.stringMatching(/^bytes 0-1\/\d+$/)]);
    expect(new Uint8Array(await real.arrayBuffer())).toEqual(new Uint8Array([0x1f, 0x8b]));
    const ignoring = await fetch(await upload(bytes, "r.bin", "norange"), { headers: { Range: "bytes=2-5" } });
    expect([ignoring.status, ignoring.headers.get("Accept-Ranges")]).toEqual([200, null]);
    expect(new Uint8Array(await ignoring.arrayBuffer())).toEqual(bytes);
  });
});

describe("readZipDirectory and openZipMember", () => {
  it("reads the directory with one Range request, then two members out of order with one request each", async () => {
    const zip = emnistLike();
    expect(zip.length).toBeGreaterThan(TAIL_BYTES);
    const url = await upload(zip);
    const dir = await readZipDirectory(fetch, url, never);
    expect(dir).toMatchObject({ url, file: "gzip.zip", size: zip.length });
    expect(dir.wholeMd5).toBeUndefined();
    expect(dir.entries.map((e) => e.name)).toEqual(["gzip/", ...Object.keys(MEMBERS)]);
    expect(await hits(url)).toBe(1);

    const test = await readAll(await openZipMember(fetch, dir, TEST_IMAGES, never));
    const train = await readAll(await openZipMember(fetch, dir, TRAIN_IMAGES, never));
    expect(test).toEqual(MEMBERS[TEST_IMAGES]);
    expect(train).toEqual(MEMBERS[TRAIN_IMAGES]);
    expect(gunzipSync(train).length).toBe(16 + 200 * 784);
    expect(await hits(url)).toBe(3);
    // Stored, larger than a read block; and deflated text.
    expect(await readAll(await openZipMember(fetch, dir, BIG, never))).toEqual(MEMBERS[BIG]);
    expect(await readAll(await openZipMember(fetch, dir, "readme.txt", never))).toEqual(MEMBERS["readme.txt"]);
  });

  it("fetches a central directory that lies before the tail with a second Range request", async () => {
    const members = Array.from({ length: 1500 }, (_, i) => ({
      name: `gzip/member-${String(i).padStart(5, "0")}-${"x".repeat(40)}.gz`,
      data: gzipSync(new TextEncoder().encode(`member ${i}`)),
      deflate: i % 2 === 1,
    }));
    const zip = handZip(members);
    const url = await upload(zip);
    const dir = await readZipDirectory(fetch, url, never);
    expect(dir.entries).toHaveLength(1500);
    expect(await hits(url)).toBe(2);
    const m = members[1234]!;
    expect(await readAll(await openZipMember(fetch, dir, m.name, never))).toEqual(m.data);
  });

  it("a server that ignores Range: the whole zip is read once for the directory and its MD5, members are skipped to", async () => {
    const zip = emnistLike();
    const url = await upload(zip, "gzip.zip", "norange");
    const dir = await readZipDirectory(fetch, url, never);
    expect(dir.wholeMd5).toBe(await md5(zip));
    expect(dir.size).toBe(zip.length);
    expect(await readAll(await openZipMember(fetch, dir, TRAIN_LABELS, never))).toEqual(MEMBERS[TRAIN_LABELS]);
    expect(await readAll(await openZipMember(fetch, dir, BIG, never))).toEqual(MEMBERS[BIG]);
  });

  it("a server that ignores Range and a directory larger than what is kept: an error that says Range is needed", async () => {
    const name = (i: number) => `gzip/${String(i).padStart(6, "0")}-${"n".repeat(140)}`;
    const count = Math.ceil(WHOLE_ZIP_KEEP_BYTES / (46 + name(0).length)) + 10;
    const zip = handZip(Array.from({ length: count }, (_, i) => ({ name: name(i), data: new Uint8Array(0) })));
    const url = await upload(zip, "gzip.zip", "norange");
    await expectEtlError(
      readZipDirectory(fetch, url, never),
      new RegExp(
        `^gzip\\.zip: ${url.replace(/[.]/g, "\\.")} ignores Range requests, and the central directory \\(\\d+ bytes at \\d+\\) lies before the last ${WHOLE_ZIP_KEEP_BYTES} bytes kept while the whole zip streamed by; serve the zip from a server that supports Range requests$`,
      ),
      false,
    );
    // The same zip from a server that honours Range: fine.
    const ranged = await readZipDirectory(fetch, await upload(zip), never);
    expect(ranged.entries).toHaveLength(count);
    expect(await readAll(await openZipMember(fetch, ranged, name(count - 1), never))).toEqual(new Uint8Array(0));
  });

  it("a ZIP64 zip, hand-built: the directory and members are read through the ZIP64 records", async () => {
    const zip = handZip(
      [
        { name: TRAIN_IMAGES, data: MEMBERS[TRAIN_IMAGES]! },
        { name: TRAIN_LABELS, data: MEMBERS[TRAIN_LABELS]!, deflate: true },
      ],
      true,
    );
    const url = await upload(zip);
    const dir = await readZipDirectory(fetch, url, never);
    expect(dir.entries.map((e) => [e.name, e.uncompressedSize])).toEqual([
      [TRAIN_IMAGES, MEMBERS[TRAIN_IMAGES]!.length],
      [TRAIN_LABELS, MEMBERS[TRAIN_LABELS]!.length],
    ]);
    expect(await readAll(await openZipMember(fetch, dir, TRAIN_LABELS, never))).toEqual(MEMBERS[TRAIN_LABELS]);
    expect(await readAll(await openZipMember(fetch, dir, TRAIN_IMAGES, never))).toEqual(MEMBERS[TRAIN_IMAGES]);
  });

  it("a missing member: not retryable, and the error lists members, the likeliest first", async () => {
    const dir = await readZipDirectory(fetch, await upload(emnistLike()), never);
    await expectEtlError(
      openZipMember(fetch, dir, "emnist-balanced-test-images-idx3-ubyte.gz", never),
      `gzip.zip has no member emnist-balanced-test-images-idx3-ubyte.gz; it has ${TEST_IMAGES}, ${TRAIN_IMAGES}, ${TRAIN_LABELS}, ${BIG}, readme.txt`,
      false,
    );
  });

  it("a corrupted byte in a stored member: the stream errors with a retryable CRC-32 mismatch naming it", async () => {
    const zip = emnistLike();
    const clean = await readZipDirectory(fetch, await upload(zip), never);
    const entry = clean.entries.find((e) => e.name === TRAIN_IMAGES)!;
    const bad = zip.slice();
    const dataAt = entry.localHeaderOffset + localHeaderLength(zip.subarray(entry.localHeaderOffset), "", "");
    bad[dataAt + 100]! ^= 0xff;
    const dir = await readZipDirectory(fetch, await upload(bad), never);
    await expectEtlError(
      readAll(await openZipMember(fetch, dir, TRAIN_IMAGES, never)),
      new RegExp(
        `^${TRAIN_IMAGES.replace(/[.]/g, "\\.")} in gzip\\.zip: CRC-32 mismatch \\(central directory 0x${(entry.crc32 >>> 0).toString(16).padStart(8, "0")}, data 0x[0-9a-f]{8}\\)$`,
      ),
      true,
    );
  });

  it("corrupted deflate data: a retryable error naming the member", async () => {
    const text = new TextEncoder().encode(Array.from({ length: 3000 }, (_, i) => i * i).join(","));
    const zip = handZip([{ name: "gzip/t.txt", data: text, deflate: true }]);
    const bad = zip.slice();
    for (let i = 45; i < 60; i++) bad[i] = 0xff;
    const dir = await readZipDirectory(fetch, await upload(bad), never);
    await expectEtlError(
      readAll(await openZipMember(fetch, dir, "gzip/t.txt", never)),
      /^gzip\/t\.txt in gzip\.zip: (deflate data is corrupt|CRC-32 mismatch|\d+ bytes, the central directory says)/,
      true,
    );
  });

  it("a truncated zip, bytes that are not a zip, HTTP errors: clear errors, retryable only when a retry could help", async () => {
    const zip = emnistLike();
    const truncated = await upload(zip.subarray(0, zip.length - 10));
    await expectEtlError(
      readZipDirectory(fetch, truncated, never),
      `gzip.zip: not a zip file, or truncated: no end of central directory record in its last ${TAIL_BYTES} bytes`,
      false,
    );
    await expectEtlError(
      readZipDirectory(fetch, await upload(new TextEncoder().encode("<html>not found</html>")), never),
      "gzip.zip: not a zip file, or truncated: no end of central directory record in its last 22 bytes",
      false,
    );
    const missing = `${server()}/f/nothing-here/gzip.zip`;
    await expectEtlError(
      readZipDirectory(fetch, missing, never),
      `gzip.zip: HTTP 404 Not Found from ${missing}`,
      false,
    );
    const busy = await upload(zip, "gzip.zip", "status:503");
    await expectEtlError(
      readZipDirectory(fetch, busy, never),
      `gzip.zip: HTTP 503 Service Unavailable from ${busy}`,
      true,
    );
    const dir = await readZipDirectory(fetch, await upload(zip), never);
    const cut = await upload(zip, "gzip.zip", `cut:1000`);
    await expectEtlError(
      readAll(await openZipMember(fetch, { ...dir, url: cut }, BIG, never)),
      /^gzip\/big-stored\.bin in gzip\.zip: download interrupted after 1000 bytes/,
      true,
    );
  });

  it("a zip that changes size between the directory and a member: SourceChangedError", async () => {
    const zip = emnistLike();
    const url = await upload(zip);
    const dir = await readZipDirectory(fetch, url, never);
    const other = withComment(zip, new TextEncoder().encode("version 2"));
    expect((await fetch(`${url}?fault=next:1`, { method: "PUT", body: other })).status).toBe(201);
    const err = await expectEtlError(
      openZipMember(fetch, dir, TEST_IMAGES, never),
      `${TEST_IMAGES} in gzip.zip: the zip at ${url} is now ${other.length} bytes, ${zip.length} when its directory was read: it changed at the source`,
      false,
    );
    expect(err).toBeInstanceOf(SourceChangedError);
  });

  it("cancelling a member's stream, or aborting its signal, stops the download", async () => {
    const zip = emnistLike();
    const url = await upload(zip, "gzip.zip", "trickle:65536:20");
    const dir = await readZipDirectory(fetch, await upload(zip), never);
    const stream = await openZipMember(fetch, { ...dir, url }, BIG, never);
    const reader = stream.getReader();
    await reader.cancel("enough");
    expect(await reader.closed.then(() => "closed")).toBe("closed");

    const stop = new AbortController();
    const aborted = await openZipMember(fetch, { ...dir, url }, BIG, stop.signal);
    const r = aborted.getReader();
    setTimeout(() => stop.abort(new Error("stopped")), 50);
    await expectEtlError(r.read(), /^gzip\/big-stored\.bin in gzip\.zip: download (timed out|interrupted)/, true);
  });
});
