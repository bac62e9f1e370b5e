/** Fixture builders shared by the workerd and the Node-side tests: pure, no runtime imports. */

/** An IDX file: magic 0x0000 0x08 ndim, big-endian dims, then the bytes. */
export function idxBytes(dims: readonly number[], body: Uint8Array, opts: { type?: number } = {}): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + body.length);
  const view = new DataView(out.buffer);
  out[2] = opts.type ?? 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(body, 4 + 4 * dims.length);
  return out;
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1), so every run of a test builds the same bytes. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
