import { describe, expect, it } from "vitest";
import { expectImages, expectLabels, idxHeaderLength, parseIdxHeader } from "../src/codec/idx";
import { idxBytes } from "./helpers";

const header = (dims: number[], type = 0x08) => idxBytes(dims, new Uint8Array(0), { type });

describe("IDX headers", () => {
  it("parses an images header and a labels header", () => {
    const images = parseIdxHeader(header([60000, 28, 28]), "train-images");
    expect(images).toEqual({ dims: [60000, 28, 28], headerLength: 16, bodyLength: 60000 * 784 });
    expect(expectImages(images, "train-images", 28, 28)).toBe(60000);
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
    ["an element type other than ubyte", Uint8Array.of(0, 0, 0x0d, 1, 0, 0, 0, 1), "element type 0xd, expected 0x08"],
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

  it("rejects shapes that are not the dataset's", () => {
    const wrongSize = parseIdxHeader(header([10, 32, 32]), "i.gz");
    expect(() => expectImages(wrongSize, "i.gz", 28, 28)).toThrow(
      "i.gz: expected images of shape [n, 28, 28], header says [10, 32, 32]",
    );
    const flat = parseIdxHeader(header([10, 784]), "i.gz");
    expect(() => expectImages(flat, "i.gz", 28, 28)).toThrow("header says [10, 784]");
    const twoD = parseIdxHeader(header([10, 1]), "l.gz");
    expect(() => expectLabels(twoD, "l.gz")).toThrow("l.gz: expected a 1-dimensional labels file, header says [10, 1]");
  });

  it("rejects dimensions whose product is not a safe integer", () => {
    expect(() => parseIdxHeader(header([0xffffffff, 0xffffffff, 0xffffffff]), "x.gz")).toThrow("x.gz: dimensions");
  });
});
