import { describe, expect, it } from "vitest";
import {
  describeShape,
  expectImages,
  expectLabels,
  idxHeaderLength,
  parseIdxHeader,
  sameShape,
} from "../src/codec/idx";
import { EtlError } from "../src/core/errors";
import { idxBytes } from "./helpers";

const header = (dims: number[], type = 0x08) => idxBytes(dims, new Uint8Array(0), { type });

describe("IDX headers", () => {
  it("parses an images header and a labels header", () => {
    const images = parseIdxHeader(header([60000, 28, 28]), "train-images");
    expect(images).toEqual({ dims: [60000, 28, 28], headerLength: 16, bodyLength: 60000 * 784 });
    expect(expectImages(images, "train-images")).toEqual({ count: 60000, shape: { rows: 28, cols: 28, channels: 1 } });
    const labels = parseIdxHeader(header([10000]), "t10k-labels");
    expect(labels).toEqual({ dims: [10000], headerLength: 8, bodyLength: 10000 });
    expect(expectLabels(labels, "t10k-labels")).toBe(10000);
  });

  it("knows the header length from its first four bytes", () => {
    expect(idxHeaderLength(Uint8Array.of(0, 0, 8))).toBeUndefined();
    expect(idxHeaderLength(Uint8Array.of(0, 0, 8, 3))).toBe(16);
    expect(idxHeaderLength(Uint8Array.of(0, 0, 8, 1))).toBe(8);
  });

  it.each([
    ["an empty file", new Uint8Array(0), "f.gz: file is empty"],
    ["a truncated magic number", Uint8Array.of(0, 0, 8), "f.gz: truncated IDX header (3 bytes)"],
    ["a wrong magic number", Uint8Array.of(0x1f, 0x8b, 8, 3), "f.gz: wrong magic number 0x1f8b0803, not an IDX file"],
    ["zero dimensions", Uint8Array.of(0, 0, 8, 0), "declares 0 dimensions, expected 1 to 4"],
    ["too many dimensions", Uint8Array.of(0, 0, 8, 9), "declares 9 dimensions"],
    [
      "truncated dimensions",
      Uint8Array.of(0, 0, 8, 3, 0, 0, 0, 1, 0, 0),
      "f.gz: truncated IDX header (10 of 16 bytes)",
    ],
  ])("rejects %s", (_, bytes, message) => {
    expect(() => parseIdxHeader(bytes, "f.gz")).toThrow(message);
  });

  it.each([
    [0x09, "signed byte"],
    [0x0b, "short"],
    [0x0c, "int"],
    [0x0d, "float"],
    [0x0e, "double"],
    [0x07, "not an IDX element type"],
  ])("rejects element type %i, naming it", (type, name) => {
    const hex = `0x${type.toString(16).padStart(2, "0")}`;
    expect(() => parseIdxHeader(header([10, 28, 28], type), "f.gz")).toThrow(
      `f.gz: magic number 0x0000${hex.slice(2)}03 has element type ${hex} (${name}), expected 0x08 (unsigned byte): ` +
        "only unsigned-byte images and labels are accepted",
    );
  });

  it("reads an images file's shape: 3 dimensions are one channel, a 4th is channels", () => {
    const images = (dims: number[]) => expectImages(parseIdxHeader(header(dims), "i.gz"), "i.gz");
    expect(images([10, 32, 24])).toEqual({ count: 10, shape: { rows: 32, cols: 24, channels: 1 } });
    for (const channels of [1, 2, 3, 4])
      expect(images([7, 32, 32, channels])).toEqual({ count: 7, shape: { rows: 32, cols: 32, channels } });
    expect(images([0, 28, 28])).toEqual({ count: 0, shape: { rows: 28, cols: 28, channels: 1 } });
  });

  const accepted =
    "images must be [n, rows, cols] or [n, rows, cols, channels], rows and cols at least 1, channels 1 to 4";
  it.each([
    ["a flat file", [10, 784], "i.gz: header says [10, 784] (2 dimensions); "],
    ["a labels file", [10], "i.gz: header says [10] (1 dimension); "],
    ["zero rows", [10, 0, 28], "i.gz: header says [10, 0, 28] (0 rows); "],
    ["zero columns", [10, 28, 0, 3], "i.gz: header says [10, 28, 0, 3] (0 columns); "],
    ["zero rows and columns", [10, 0, 0], "i.gz: header says [10, 0, 0] (0 rows and 0 columns); "],
    ["zero channels", [10, 28, 28, 0], "i.gz: header says [10, 28, 28, 0] (0 channels); "],
    ["five channels", [10, 32, 32, 5], "i.gz: header says [10, 32, 32, 5] (5 channels); "],
  ])("rejects images as %s, saying what it found and what is accepted", (_, dims, found) => {
    const h = parseIdxHeader(header(dims), "i.gz");
    expect(() => expectImages(h, "i.gz")).toThrow(new EtlError(found + accepted));
  });

  it("rejects labels with more than one dimension", () => {
    const twoD = parseIdxHeader(header([10, 1]), "l.gz");
    expect(() => expectLabels(twoD, "l.gz")).toThrow("l.gz: expected a 1-dimensional labels file, header says [10, 1]");
  });

  it("compares and spells shapes", () => {
    const s = { rows: 28, cols: 28, channels: 1 };
    expect(sameShape(s, { rows: 28, cols: 28, channels: 1 })).toBe(true);
    expect(sameShape(s, { rows: 28, cols: 28, channels: 3 })).toBe(false);
    expect(sameShape({ rows: 28, cols: 32, channels: 1 }, { rows: 32, cols: 28, channels: 1 })).toBe(false);
    expect(describeShape(s)).toBe("28×28×1");
    expect(describeShape({ rows: 32, cols: 24, channels: 3 })).toBe("32×24×3");
  });

  it("rejects dimensions whose product is not a safe integer", () => {
    expect(() => parseIdxHeader(header([0xffffffff, 0xffffffff, 0xffffffff]), "x.gz")).toThrow("x.gz: dimensions");
  });
});
