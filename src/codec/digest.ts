/**
 * A chunk's fingerprint: what ties rows in the shadow table to the bytes they
 * came from. The producer computes it for every chunk it extracts, the consumer
 * for every chunk it writes, and the ledger keeps the first one written, so two
 * versions of the same images can never both reach a run's rows unnoticed.
 * And an archive's MD5, the digest its published checksum is given in.
 */

/** Hex characters kept of the SHA-256: 128 bits tell versions apart; the MD5s guard against tampering. */
const DIGEST_HEX = 32;

export const isChunkDigest = (s: unknown): s is string =>
  typeof s === "string" && s.length === DIGEST_HEX && /^[0-9a-f]+$/.test(s);

/**
 * SHA-256 over the chunk's labels (one byte each) and the SHA-256 of its raw
 * pixels, as hex. Hashing the pixels where they lie, rather than a copy with
 * the labels in front, spares a chunk-sized allocation per chunk on both sides
 * of the queue, where the isolate's memory is tightest.
 */
export async function chunkDigest(labels: Uint8Array, pixels: Uint8Array): Promise<string> {
  const inner = new Uint8Array(await crypto.subtle.digest("SHA-256", pixels));
  const outer = new Uint8Array(labels.length + inner.length);
  outer.set(labels);
  outer.set(inner, labels.length);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", outer));
  let hex = "";
  for (const b of hash.subarray(0, DIGEST_HEX / 2)) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** An incremental MD5 (an archive's): Workers have crypto.DigestStream, Node has createHash. */
export interface Digest {
  update(chunk: Uint8Array): void | Promise<void>;
  hex(): Promise<string>;
}

/** MD5 with the Workers runtime's DigestStream, fed chunk by chunk. */
export const workersMd5 = (): Digest => {
  const stream = new crypto.DigestStream("MD5");
  const writer = stream.getWriter();
  // An archive left midway (a header read) never closes its digest: that must not reject unhandled.
  stream.digest.catch(() => {});
  return {
    update: (chunk) => writer.write(chunk),
    hex: async () => {
      await writer.close();
      return [...new Uint8Array(await stream.digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    },
  };
};
