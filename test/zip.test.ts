/**
 * Members of a remote zip (EMNIST's gzip.zip): readZipDirectory (zip.js over
 * our Range reads) and zipMember against the test archive server
 * (test/global-setup.ts), with and without Range support, on zips built by
 * fflate and by hand (ZIP64, odd flags and methods), and with the ways a zip or
 * its transfer can be wrong.
 */
import { buf as crc32 } from "crc-32";
import { deflateSync, gunzipSync, gzipSync, zipSync, type Zippable } from "fflate";
import { afterEach, describe, expect, inject, it } from "vitest";
import { workersMd5 } from "../src/codec/digest";
import { EtlError, SourceChangedError } from "../src/core/errors";
import { Attempt, DEFAULT_RETRY } from "../src/pipeline/fetch";
import { TAIL_BYTES, WHOLE_ZIP_KEEP_BYTES, readZipDirectory, zipMember, type ZipDirectory } from "../src/pipeline/zip";
import { idxBytes } from "./idx-fixtures";

const EOCD_BYTES = 22;
const ZIP64_END_BYTES = 56;
const ZIP64_LOCATOR_BYTES = 20;

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

/** Attempts with limits far off, ended after each test. */
const started: Attempt[] = [];
afterEach(() => started.splice(0).forEach((a) => a.end()));
const attempt = (policy = { ...DEFAULT_RETRY, timeoutMs: 600_000, rateWindowMs: 600_000 }, stop?: AbortSignal) => {
  const a = new Attempt(policy, stop);
  started.push(a);
  return a;
};

const directory = (url: string): Promise<ZipDirectory> => readZipDirectory(fetch, url, attempt(), workersMd5);
const member = (dir: ZipDirectory, name: string) => zipMember(fetch, dir, name, attempt());

async function readAll(pieces: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of pieces) parts.push(p);
  return new Uint8Array(await new Blob(parts).arrayBuffer());
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

describe("the directory and what is wrong with it, on built bytes", () => {
  it("finds the end record behind a comment that holds a false end record signature", async () => {
    const zip = emnistLike();
    // A signature inside the comment, with a comment length that does not reach the end: not the record.
    const fake = new Uint8Array(200).fill(0x41);
    fake.set([0x50, 0x4b, 0x05, 0x06], 50);
    const commented = withComment(zip, fake);
    const plain = await directory(await upload(zip));
    const dir = await directory(await upload(commented));
    expect(dir.entries).toEqual(plain.entries);
    expect(dir.directoryOffset).toBe(plain.directoryOffset);
    expect(dir.entries.map((e) => e.name)).toEqual(["gzip/", ...Object.keys(MEMBERS)]);
    const big = dir.entries.find((e) => e.name === BIG)!;
    expect(big).toMatchObject({ method: 0, compressedSize: 700_000, uncompressedSize: 700_000 });
    expect(big.crc32).toBe(crc32(MEMBERS[BIG]!) >>> 0);
    expect(dir.entries.find((e) => e.name === TRAIN_LABELS)!.method).toBe(8);
    // The local header is skipped to the member's data.
    expect(await readAll(member(dir, BIG))).toEqual(MEMBERS[BIG]);
  });

  it("says what is wrong with bytes that are not a zip", async () => {
    const refused = async (bytes: Uint8Array) =>
      directory(await upload(bytes, "x.zip")).then(
        () => "read",
        (e: unknown) => (e as Error).message,
      );
    expect(await refused(noise(100_000, 1))).toBe(
      `x.zip: not a zip file, or truncated: no end of central directory record in its last ${TAIL_BYTES} bytes`,
    );
    expect(await refused(new Uint8Array(5))).toBe(
      "x.zip: not a zip file (5 bytes, fewer than an end of central directory record)",
    );
    const zip = emnistLike();
    // The first half only: the end record is gone.
    expect(await refused(zip.subarray(0, zip.length >> 1))).toMatch(/not a zip file, or truncated/);
    // Bytes missing from the middle: the directory is no longer where the end record says.
    const holed = new Uint8Array([...zip.subarray(0, 1000), ...zip.subarray(2000)]);
    expect(await refused(holed)).toBe(
      "x.zip: the central directory is not where the end record says (zip.js: mismatched central directory offset): the zip is truncated or corrupt",
    );
    // A member whose local header is not where the directory says.
    const dir = await directory(await upload(zip));
    const at = dir.entries.find((e) => e.name === BIG)!.offset;
    const moved = zip.slice();
    moved[at] = 0;
    await expectEtlError(
      readAll(member(await directory(await upload(moved, "x.zip")), BIG)),
      `${BIG} in x.zip: no local file header where the central directory says the member starts: the zip is corrupt`,
      false,
    );
  });

  it("reads a ZIP64 end record through its locator, and ZIP64 sizes and offsets from the extra fields", async () => {
    const data = [noise(1000, 1), new TextEncoder().encode("hello ".repeat(100))];
    const zip = handZip(
      [
        { name: "gzip/a.bin", data: data[0]! },
        { name: "gzip/b.txt", data: data[1]!, deflate: true },
      ],
      true,
    );
    const dir = await directory(await upload(zip, "z.zip"));
    expect(dir.entries).toHaveLength(2);
    expect(dir.entries[0]).toEqual({
      name: "gzip/a.bin",
      method: 0,
      encrypted: false,
      crc32: crc32(data[0]!) >>> 0,
      compressedSize: 1000,
      uncompressedSize: 1000,
      offset: 0,
    });
    expect(dir.entries[1]).toMatchObject({ method: 8, uncompressedSize: 600, offset: 30 + 10 + 20 + 1000 });
    expect(await readAll(member(dir, "gzip/b.txt"))).toEqual(data[1]);
    // Saturated fields without the locator before them: an error, not a misread directory.
    const end = zip.length - EOCD_BYTES;
    const noLocator = new Uint8Array([...zip.subarray(0, end - ZIP64_LOCATOR_BYTES), ...zip.subarray(end)]);
    await expectEtlError(
      directory(await upload(noLocator, "z.zip")),
      "z.zip: not a valid zip (zip.js: End of Zip64 central directory locator not found)",
      false,
    );
  });

  it("refuses encrypted members and compression methods other than store and deflate", async () => {
    const data = new TextEncoder().encode("m");
    const zip = handZip([
      { name: "m", data },
      { name: "e", data, flags: 1 },
      { name: "b", data, method: 12 },
    ]);
    const dir = await directory(await upload(zip, "z.zip"));
    expect(await readAll(member(dir, "m"))).toEqual(data);
    await expectEtlError(readAll(member(dir, "e")), "e in z.zip: encrypted member, not supported", false);
    await expectEtlError(
      readAll(member(dir, "b")),
      "b in z.zip: unsupported compression method 12 (only 0, stored, and 8, deflate)",
      false,
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

describe("readZipDirectory and zipMember", () => {
  it("reads the directory with one Range request, then two members out of order with one request each", async () => {
    const zip = emnistLike();
    expect(zip.length).toBeGreaterThan(TAIL_BYTES);
    const url = await upload(zip);
    const dir = await directory(url);
    expect(dir).toMatchObject({ url, file: "gzip.zip", size: zip.length });
    expect(dir.wholeMd5).toBeUndefined();
    expect(dir.entries.map((e) => e.name)).toEqual(["gzip/", ...Object.keys(MEMBERS)]);
    expect(await hits(url)).toBe(1);

    const test = await readAll(member(dir, TEST_IMAGES));
    const train = await readAll(member(dir, TRAIN_IMAGES));
    expect(test).toEqual(MEMBERS[TEST_IMAGES]);
    expect(train).toEqual(MEMBERS[TRAIN_IMAGES]);
    expect(gunzipSync(train).length).toBe(16 + 200 * 784);
    expect(await hits(url)).toBe(3);
    // Stored, larger than a read block; and deflated text.
    expect(await readAll(member(dir, BIG))).toEqual(MEMBERS[BIG]);
    expect(await readAll(member(dir, "readme.txt"))).toEqual(MEMBERS["readme.txt"]);
  });

  it("fetches a central directory that lies before the tail with a second Range request", async () => {
    const members = Array.from({ length: 1500 }, (_, i) => ({
      name: `gzip/member-${String(i).padStart(5, "0")}-${"x".repeat(40)}.gz`,
      data: gzipSync(new TextEncoder().encode(`member ${i}`)),
      deflate: i % 2 === 1,
    }));
    const zip = handZip(members);
    const url = await upload(zip);
    const dir = await directory(url);
    expect(dir.entries).toHaveLength(1500);
    expect(await hits(url)).toBe(2);
    const m = members[1234]!;
    expect(await readAll(member(dir, m.name))).toEqual(m.data);
  });

  it("a server that ignores Range: the whole zip is read once for the directory and its MD5, members are skipped to", async () => {
    const zip = emnistLike();
    const url = await upload(zip, "gzip.zip", "norange");
    const dir = await directory(url);
    expect(dir.wholeMd5).toBe(await md5(zip));
    expect(dir.size).toBe(zip.length);
    expect(await readAll(member(dir, TRAIN_LABELS))).toEqual(MEMBERS[TRAIN_LABELS]);
    expect(await readAll(member(dir, BIG))).toEqual(MEMBERS[BIG]);
  });

  it("a server that ignores Range and a directory larger than what is kept: an error that says Range is needed", async () => {
    const name = (i: number) => `gzip/${String(i).padStart(6, "0")}-${"n".repeat(140)}`;
    const count = Math.ceil(WHOLE_ZIP_KEEP_BYTES / (46 + name(0).length)) + 10;
    const zip = handZip(Array.from({ length: count }, (_, i) => ({ name: name(i), data: new Uint8Array(0) })));
    const url = await upload(zip, "gzip.zip", "norange");
    await expectEtlError(
      directory(url),
      new RegExp(
        `^gzip\\.zip: ${url.replace(/[.]/g, "\\.")} ignores Range requests, and the central directory \\(\\d+ bytes at \\d+\\) lies before the last ${WHOLE_ZIP_KEEP_BYTES} bytes kept while the whole zip streamed by; serve the zip from a server that supports Range requests$`,
      ),
      false,
    );
    // The same zip from a server that honours Range: fine.
    const ranged = await directory(await upload(zip));
    expect(ranged.entries).toHaveLength(count);
    expect(await readAll(member(ranged, name(count - 1)))).toEqual(new Uint8Array(0));
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
    const dir = await directory(url);
    expect(dir.entries.map((e) => [e.name, e.uncompressedSize])).toEqual([
      [TRAIN_IMAGES, MEMBERS[TRAIN_IMAGES]!.length],
      [TRAIN_LABELS, MEMBERS[TRAIN_LABELS]!.length],
    ]);
    expect(await readAll(member(dir, TRAIN_LABELS))).toEqual(MEMBERS[TRAIN_LABELS]);
    expect(await readAll(member(dir, TRAIN_IMAGES))).toEqual(MEMBERS[TRAIN_IMAGES]);
  });

  it("a missing member: not retryable, and the error lists members, the likeliest first", async () => {
    const dir = await directory(await upload(emnistLike()));
    await expectEtlError(
      readAll(member(dir, "emnist-balanced-test-images-idx3-ubyte.gz")),
      `gzip.zip has no member emnist-balanced-test-images-idx3-ubyte.gz; it has ${TEST_IMAGES}, ${TRAIN_IMAGES}, ${TRAIN_LABELS}, ${BIG}, readme.txt`,
      false,
    );
  });

  it("a corrupted byte in a stored member: the stream errors with a retryable CRC-32 mismatch naming it", async () => {
    const zip = emnistLike();
    const clean = await directory(await upload(zip));
    const entry = clean.entries.find((e) => e.name === TRAIN_IMAGES)!;
    const bad = zip.slice();
    const local = new DataView(zip.buffer, zip.byteOffset + entry.offset);
    const dataAt = entry.offset + 30 + local.getUint16(26, true) + local.getUint16(28, true);
    bad[dataAt + 100]! ^= 0xff;
    const dir = await directory(await upload(bad));
    await expectEtlError(
      readAll(member(dir, TRAIN_IMAGES)),
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
    const dir = await directory(await upload(bad));
    await expectEtlError(
      readAll(member(dir, "gzip/t.txt")),
      /^gzip\/t\.txt in gzip\.zip: (deflate data is corrupt|CRC-32 mismatch|\d+ bytes, the central directory says)/,
      true,
    );
  });

  it("a truncated zip, bytes that are not a zip, HTTP errors: clear errors, retryable only when a retry could help", async () => {
    const zip = emnistLike();
    const truncated = await upload(zip.subarray(0, zip.length - 10));
    await expectEtlError(
      directory(truncated),
      `gzip.zip: not a zip file, or truncated: no end of central directory record in its last ${TAIL_BYTES} bytes`,
      false,
    );
    await expectEtlError(
      directory(await upload(new TextEncoder().encode("<html>not found</html>"))),
      "gzip.zip: not a zip file, or truncated: no end of central directory record in its last 22 bytes",
      false,
    );
    const missing = `${server()}/f/nothing-here/gzip.zip`;
    await expectEtlError(directory(missing), `gzip.zip: HTTP 404 Not Found from ${missing}`, false);
    const busy = await upload(zip, "gzip.zip", "status:503");
    await expectEtlError(directory(busy), `gzip.zip: HTTP 503 Service Unavailable from ${busy}`, true);
    const dir = await directory(await upload(zip));
    const cut = await upload(zip, "gzip.zip", `cut:1000`);
    await expectEtlError(
      readAll(member({ ...dir, url: cut }, BIG)),
      /^gzip\/big-stored\.bin in gzip\.zip: download interrupted after 1000 bytes/,
      true,
    );
  });

  it("a zip that changes size between the directory and a member: SourceChangedError", async () => {
    const zip = emnistLike();
    const url = await upload(zip);
    const dir = await directory(url);
    const other = withComment(zip, new TextEncoder().encode("version 2"));
    expect((await fetch(`${url}?fault=next:1`, { method: "PUT", body: other })).status).toBe(201);
    const err = await expectEtlError(
      readAll(member(dir, TEST_IMAGES)),
      `${TEST_IMAGES} in gzip.zip: the zip at ${url} is now ${other.length} bytes, ${zip.length} when its directory was read: it changed at the source`,
      false,
    );
    expect(err).toBeInstanceOf(SourceChangedError);
  });

  it("stopping early, the idle limit, or the stop signal ends a member's download", async () => {
    const zip = emnistLike();
    const url = await upload(zip, "gzip.zip", "trickle:65536:20");
    const dir = await directory(await upload(zip));
    const pieces = member({ ...dir, url }, BIG);
    expect((await pieces.next()).done).toBe(false);
    expect(await pieces.return(undefined)).toEqual({ done: true, value: undefined });

    const hung = await upload(zip, "gzip.zip", "hang");
    const idle = zipMember(fetch, { ...dir, url: hung }, BIG, attempt({ ...DEFAULT_RETRY, timeoutMs: 1000 }));
    await expectEtlError(readAll(idle), /^gzip\/big-stored\.bin in gzip\.zip: download (timed out|interrupted)/, true);

    const stop = new AbortController();
    const stopped = zipMember(fetch, { ...dir, url }, BIG, attempt(undefined, stop.signal));
    const reason = new Error("stopped");
    setTimeout(() => stop.abort(reason), 50);
    await expect(readAll(stopped)).rejects.toBe(reason);
  });
});
