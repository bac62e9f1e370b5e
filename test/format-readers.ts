/**
 * Independent readers of the export formats for the tests: the .npz through
 * fflate's unzip (which checks every member's CRC-32) and test/npy.ts, the
 * Parquet files through hyparquet with each PNG decoded by fast-png; and a
 * wait for the export job to record a version.
 */
import { env } from "cloudflare:test";
import { decode } from "fast-png";
import { unzipSync } from "fflate";
import { parquetMetadata, parquetReadObjects, type FileMetaData } from "hyparquet";
import { parseNpy, type Npy } from "./npy";

/** The members of an .npz in their order, each parsed as .npy. */
export function npzArrays(bytes: Uint8Array): [string, Npy][] {
  return Object.entries(unzipSync(bytes)).map(([name, member]) => [name, parseNpy(member)]);
}

export interface ParquetRow {
  /** The PNG's pixels, rows × cols × channels. */
  readonly pixels: Uint8Array;
  readonly channels: number;
  readonly path: string;
  readonly label: number;
}

export async function parquetRows(bytes: Uint8Array): Promise<{ meta: FileMetaData; rows: ParquetRow[] }> {
  const buffer = bytes.slice().buffer;
  const meta = parquetMetadata(buffer);
  // utf8: false, else hyparquet decodes every byte array as text, the PNGs too; `path` is UTF8, so text.
  const objects = (await parquetReadObjects({ file: buffer, utf8: false })) as {
    image: { bytes: Uint8Array; path: string };
    label: bigint;
  }[];
  const rows = objects.map((o) => {
    const png = decode(Uint8Array.from(o.image.bytes), { checkCrc: true });
    return { pixels: Uint8Array.from(png.data), channels: png.channels, path: o.image.path, label: Number(o.label) };
  });
  return { meta, rows };
}

/** The Hugging Face features a Parquet file declares. */
export const huggingface = (meta: FileMetaData) =>
  JSON.parse(meta.key_value_metadata!.find((kv) => kv.key === "huggingface")!.value!) as {
    info: { features: { image: { _type: string }; label: { _type: string; names: string[] } } };
  };

/** Wait until the export job has recorded `version` of `dataset` as exported. */
export async function exportedVersion(dataset: string, version: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await env.DB.prepare("SELECT version FROM dataset_exports WHERE dataset = ?1")
      .bind(dataset)
      .first<{ version: string }>();
    if (row?.version === version) return;
    if (Date.now() > deadline) throw new Error(`no export of ${dataset} ${version} recorded (found ${row?.version})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}
