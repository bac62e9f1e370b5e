/**
 * The export job's sinks against local R2: a file streamed as one put, or
 * as a multipart upload of equal streamed parts, arrives byte for byte with
 * the SHA-256 of what was written, whatever the sizes of the writes; a
 * refused upload fails the write instead of leaving it waiting; sizes are
 * held to the file's.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { DigestSink, PIECE_BYTES, R2Sink } from "../src/pipeline/export-sinks";
import { noise } from "./dataset-fixtures";
import { bound } from "./bound";

const sha256 = async (bytes: Uint8Array) =>
  [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");

/** `bytes` written in writes of uneven sizes, some of several pieces. */
async function writeUnevenly(sink: { write(p: readonly Uint8Array[]): Promise<void> }, bytes: Uint8Array) {
  const sizes = [1, PIECE_BYTES + 3, 7, 3 * PIECE_BYTES - 1, 100_000];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    const piece = bytes.subarray(at, at + n);
    await sink.write(i % 2 ? [piece.subarray(0, piece.length >> 1), piece.subarray(piece.length >> 1)] : [piece]);
    at += n;
  }
}

const MiB = 2 ** 20;

describe("R2Sink", () => {
  it("streams a file as one put, with its content type, and returns its size and SHA-256", async () => {
    const bytes = noise(3 * MiB + 5, 11);
    const sink = new R2Sink(env.EXPORTS, "sinks/one.bin", bytes.length, {
      httpMetadata: { contentType: "application/octet-stream" },
    });
    await writeUnevenly(sink, bytes);
    expect(await sink.close()).toEqual({ bytes: bytes.length, sha256: await sha256(bytes) });
    const got = await env.EXPORTS.get("sinks/one.bin");
    expect(got?.httpMetadata?.contentType).toBe("application/octet-stream");
    expect(new Uint8Array(await got!.arrayBuffer())).toEqual(bytes);
  });

  it("streams a file larger than one upload as equal parts of a multipart upload", async () => {
    const bytes = noise(11 * MiB + 7, 12);
    const seen: number[] = [];
    const bucket = new Proxy(env.EXPORTS, {
      get(target, prop) {
        if (prop !== "createMultipartUpload") return bound(target, prop);
        return async (key: string, opts?: R2MultipartOptions) => {
          const upload = await target.createMultipartUpload(key, opts);
          return new Proxy(upload, {
            get: (u, p) =>
              p === "uploadPart"
                ? (n: number, body: ReadableStream) => (seen.push(n), u.uploadPart(n, body))
                : bound(u, p),
          });
        };
      },
    });
    const sink = new R2Sink(bucket, "sinks/parts.bin", bytes.length, {}, { uploadBytes: 6 * MiB, partBytes: 5 * MiB });
    await writeUnevenly(sink, bytes);
    expect(await sink.close()).toEqual({ bytes: bytes.length, sha256: await sha256(bytes) });
    expect(seen).toEqual([1, 2, 3]);
    const got = await env.EXPORTS.get("sinks/parts.bin");
    expect(new Uint8Array(await got!.arrayBuffer())).toEqual(bytes);
  });

  it("a put that R2 refuses mid-stream fails the write, and nothing is stored", async () => {
    const refusing = new Proxy(env.EXPORTS, {
      get(target, prop) {
        if (prop !== "put") return bound(target, prop);
        return async (_key: string, body: ReadableStream) => {
          const reader = body.getReader();
          await reader.read();
          await reader.cancel();
          throw new Error("We encountered an internal error. Please try again.");
        };
      },
    });
    const bytes = noise(2 * MiB, 13);
    const sink = new R2Sink(refusing, "sinks/refused.bin", bytes.length, {});
    await expect(sink.write([bytes])).rejects.toThrow();
    await sink.abort();
    expect(await env.EXPORTS.head("sinks/refused.bin")).toBeNull();
  });

  it("holds the writes to the file's size", async () => {
    const over = new R2Sink(env.EXPORTS, "sinks/over.bin", 10, {});
    await expect(over.write([new Uint8Array(11)])).rejects.toThrow(/more than the file's 10 bytes/);
    await over.abort();
    const short = new DigestSink(10);
    await short.write([new Uint8Array(9)]);
    await expect(short.close()).rejects.toThrow(/9 bytes were written of a file of 10/);
  });
});
