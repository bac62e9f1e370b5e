/**
 * The export formats' pure encoders against independent readers: stored PNGs
 * (fast-png), the .npz's zip (fflate's unzip, which checks every CRC-32), and
 * the Parquet layout (hyparquet): the lengths computed before writing are the
 * lengths written, and the bytes read back are the rows pushed in.
 */
import { decode } from "fast-png";
import { unzipSync } from "fflate";
import { parquetMetadata, parquetReadObjects, parquetSchema } from "hyparquet";
import { describe, expect, it } from "vitest";
import { concatBytes } from "../src/codec/bytes";
import { dataDescriptor, localHeader, npzDirectory, npzLayout, RunningCrc } from "../src/codec/npz";
import { groupAt, huggingfaceFeatures, parquetLayout, ParquetWriter } from "../src/codec/parquet";
import { encodePngStored, storedPngLength, type PngChannels } from "../src/codec/png";
import { mulberry32 } from "./idx-fixtures";

const noise = (n: number, seed: number) => {
  const rnd = mulberry32(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
};

describe("stored PNG", () => {
  it("decodes to the pixels, at the length computed from the shape alone", () => {
    for (const [w, h, ch] of [
      [28, 28, 1],
      [1, 1, 1],
      [32, 32, 3],
      [7, 5, 2],
      [9, 4, 4],
      [200, 200, 3], // 120,200 bytes of scanlines: two stored blocks
    ] as const) {
      const pixels = noise(w * h * ch, w + h + ch);
      const png = encodePngStored({ width: w, height: h, channels: ch as PngChannels, pixels });
      expect(png.length, `${w}×${h}×${ch}`).toBe(storedPngLength(w, h, ch));
      const img = decode(png, { checkCrc: true });
      expect([img.width, img.height, img.channels, img.depth]).toEqual([w, h, ch, 8]);
      expect(Uint8Array.from(img.data)).toEqual(pixels);
    }
  });
});

describe(".npz", () => {
  it("is a zip of stored members whose CRC-32s and sizes check, at the precomputed length", () => {
    const members = { "x_train.npy": noise(1000, 1), "y_train.npy": noise(10, 2), "x_test.npy": new Uint8Array(0) };
    const layout = npzLayout(Object.entries(members).map(([name, b]) => ({ name, size: b.length })));
    const parts: Uint8Array[] = [];
    const crcs: number[] = [];
    for (const [name, bytes] of Object.entries(members)) {
      parts.push(localHeader(name));
      const crc = new RunningCrc();
      // In pieces, as a stream writes it.
      for (let i = 0; i < bytes.length; i += 333) crc.update(bytes.subarray(i, i + 333));
      parts.push(bytes, dataDescriptor(crc.value, bytes.length));
      crcs.push(crc.value);
    }
    parts.push(npzDirectory(layout, crcs));
    const file = concatBytes(...parts);
    expect(file.length).toBe(layout.size);
    expect(layout.members.map((m) => file.subarray(m.dataOffset, m.dataOffset + Math.min(3, m.size)))).toEqual(
      Object.values(members).map((b) => b.subarray(0, 3)),
    );
    const unzipped = unzipSync(file);
    expect(Object.keys(unzipped)).toEqual(Object.keys(members));
    for (const [name, bytes] of Object.entries(members)) expect(unzipped[name], name).toEqual(bytes);
  });

  it("refuses what would need ZIP64", () => {
    expect(() => npzLayout([{ name: "x.npy", size: 2 ** 32 }])).toThrow(/ZIP64/);
  });
});

describe("Parquet", () => {
  const spec = { split: "train", count: 23, shape: { rows: 5, cols: 4, channels: 3 }, classNames: ["a", "b", "c"] };
  const pixels = (i: number) => noise(60, 100 + i);
  const write = (layout: ReturnType<typeof parquetLayout>, firstGroup = 0) => {
    const w = new ParquetWriter(layout, firstGroup);
    const parts = [...w.start()];
    for (let i = layout.groups[firstGroup]?.first ?? spec.count; i < spec.count; i++)
      parts.push(...w.push(i, i % 3, pixels(i)));
    parts.push(...w.end());
    return concatBytes(...parts);
  };

  it("has the precomputed length and layout, and reads back as the rows with Hugging Face's features", async () => {
    const layout = parquetLayout(spec, 7);
    const file = write(layout);
    expect(file.length).toBe(layout.size);
    expect(layout.groups.map((g) => g.rows)).toEqual([7, 7, 7, 2]);
    const buffer = file.slice().buffer;
    const meta = parquetMetadata(buffer);
    expect(meta.num_rows).toBe(23n);
    expect(meta.row_groups.map((g) => Number(g.columns[0]!.meta_data!.data_page_offset))).toEqual(
      layout.groups.map((g) => g.offset),
    );
    expect(meta.key_value_metadata).toEqual([{ key: "huggingface", value: huggingfaceFeatures(["a", "b", "c"]) }]);
    expect(JSON.parse(meta.key_value_metadata![0]!.value!)).toEqual({
      info: { features: { image: { _type: "Image" }, label: { _type: "ClassLabel", names: ["a", "b", "c"] } } },
    });
    const schema = parquetSchema(meta);
    expect(schema.children.map((c) => [c.element.name, c.element.repetition_type, c.element.type])).toEqual([
      ["image", "OPTIONAL", undefined],
      ["label", "OPTIONAL", "INT64"],
    ]);
    expect(
      schema.children[0]!.children.map((c) => [c.element.name, c.element.repetition_type, c.element.type]),
    ).toEqual([
      ["bytes", "OPTIONAL", "BYTE_ARRAY"],
      ["path", "OPTIONAL", "BYTE_ARRAY"],
    ]);
    // utf8: false, else hyparquet decodes every byte array as text, the PNGs too; `path` is UTF8, so text.
    const rows = (await parquetReadObjects({ file: buffer, utf8: false })) as {
      image: { bytes: Uint8Array; path: string };
      label: bigint;
    }[];
    expect(rows.length).toBe(23);
    rows.forEach((r, i) => {
      expect(r.label, `row ${i}`).toBe(BigInt(i % 3));
      expect(r.image.path).toBe(`train/${i}.png`);
      const png = decode(Uint8Array.from(r.image.bytes), { checkCrc: true });
      expect(Uint8Array.from(png.data), `row ${i}`).toEqual(pixels(i));
    });
  });

  it("writes from any row group the same bytes the whole file has there", () => {
    const layout = parquetLayout(spec, 7);
    const whole = write(layout);
    for (const g of [1, 3]) expect(write(layout, g)).toEqual(whole.subarray(layout.groups[g]!.offset));
    expect(write(layout, layout.groups.length)).toEqual(whole.subarray(layout.footerOffset));
    expect(groupAt(layout, layout.groups[2]!.offset)).toBe(2);
    expect(groupAt(layout, layout.groups[2]!.offset - 1)).toBe(1);
    expect(groupAt(layout, layout.footerOffset - 1)).toBe(3);
  });

  it("paths of many digits are counted right, and a gray 28×28 image makes groups of 4,000", () => {
    const big = { ...spec, count: 12_345, shape: { rows: 28, cols: 28, channels: 1 } };
    const layout = parquetLayout(big);
    expect(layout.groups[0]!.rows).toBe(4000);
    const w = new ParquetWriter(layout, 3);
    const parts = [...w.start()];
    for (let i = 12_000; i < 12_345; i++) parts.push(...w.push(i, 0, new Uint8Array(784)));
    parts.push(...w.end());
    expect(concatBytes(...parts).length).toBe(layout.size - layout.groups[3]!.offset);
  });
});
