/** Byte arrays joined end to end, pure: for the few places that gather pieces before parsing them. */

/** The parts as one array; a single part is returned as it is, not copied. */
export function concatBytes<B extends ArrayBufferLike>(
  ...parts: readonly Uint8Array<B>[]
): Uint8Array<B | ArrayBuffer> {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
