/** A small .npy reader for the tests, independent of src/codec/npy.ts: parses the header as numpy does. */
export interface Npy {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  /** Byte offset of the data. */
  dataOffset: number;
  data: Uint8Array;
}

export function parseNpy(bytes: Uint8Array): Npy {
  const magic = String.fromCharCode(...bytes.subarray(1, 6));
  if (bytes[0] !== 0x93 || magic !== "NUMPY") throw new Error("not an .npy file");
  if (bytes[6] !== 1 || bytes[7] !== 0) throw new Error(`npy version ${bytes[6]}.${bytes[7]}, expected 1.0`);
  const headerLen = bytes[8]! | (bytes[9]! << 8);
  const dataOffset = 10 + headerLen;
  const header = new TextDecoder("latin1").decode(bytes.subarray(10, dataOffset));
  const m = /^\{'descr': '([^']+)', 'fortran_order': (True|False), 'shape': \(([\d, ]*)\), \} *\n$/.exec(header);
  if (!m) throw new Error(`unexpected npy header ${JSON.stringify(header)}`);
  return {
    descr: m[1]!,
    fortranOrder: m[2] === "True",
    shape: m[3]!
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "")
      .map(Number),
    dataOffset,
    data: bytes.subarray(dataOffset),
  };
}

/**
 * The header numpy writes for an array (numpy.lib.format, version 1.0): the
 * dict as numpy spells it, padded with spaces and a newline so that the data
 * starts on a multiple of 64 bytes (numpy adds 64 spaces rather than none).
 */
export function numpyHeader(descr: string, shape: readonly number[]): Uint8Array {
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${tuple}, }`;
  const pad = 64 - ((6 + 2 + 2 + dict.length + 1) % 64);
  const text = `${dict}${" ".repeat(pad)}\n`;
  const out = new Uint8Array(10 + text.length);
  out.set([0x93, ...Array.from("NUMPY", (c) => c.charCodeAt(0)), 1, 0]);
  new DataView(out.buffer).setUint16(8, text.length, true);
  for (let i = 0; i < text.length; i++) out[10 + i] = text.charCodeAt(i);
  return out;
}
