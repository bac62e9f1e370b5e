/** The registry of official datasets: invariants every entry keeps, and a few facts checked by hand. */
import { describe, expect, it } from "vitest";
import { SPLITS, isDatasetName, type DatasetSpec } from "../src/core/datasets";
import { DEFAULT_DATASET, REGISTRY, REGISTRY_NAMES, registryEntry } from "../src/core/registry";

const MD5 = /^[0-9a-f]{32}$/;
const isEmnist = (d: DatasetSpec) => d.name.startsWith("emnist-");
const archives = (d: DatasetSpec) => d.splits.flatMap((s) => [s.images, s.labels]);

describe("registry", () => {
  it("lists the official datasets in order, the default first", () => {
    expect(REGISTRY.map((d) => d.name)).toEqual([...REGISTRY_NAMES]);
    expect(REGISTRY_NAMES).toEqual([
      "fashion-mnist",
      "mnist",
      "kmnist",
      "emnist-balanced",
      "emnist-byclass",
      "emnist-bymerge",
      "emnist-digits",
      "emnist-letters",
      "emnist-mnist",
    ]);
    expect(DEFAULT_DATASET).toBe("fashion-mnist");
    expect(REGISTRY[0]?.name).toBe(DEFAULT_DATASET);
  });

  it("names are valid dataset names and unique", () => {
    for (const d of REGISTRY) expect(isDatasetName(d.name), d.name).toBe(true);
    expect(new Set(REGISTRY.map((d) => d.name)).size).toBe(REGISTRY.length);
  });

  describe.each(REGISTRY.map((d) => [d.name, d] as const))("%s", (_, d) => {
    it("has a title, a 28×28×1 shape and train then test splits with positive counts", () => {
      expect(d.title.length).toBeGreaterThan(0);
      expect(d.shape).toEqual({ rows: 28, cols: 28, channels: 1 });
      expect(d.splits.map((s) => s.split)).toEqual([...SPLITS]);
      for (const s of d.splits) {
        expect(Number.isInteger(s.count), `${s.split} count`).toBe(true);
        expect(s.count).toBeGreaterThan(0);
      }
    });

    it("has non-empty, unique class names", () => {
      expect(d.classes?.length).toBeGreaterThan(0);
      for (const c of d.classes ?? []) expect(c.length).toBeGreaterThan(0);
      expect(new Set(d.classes).size).toBe(d.classes?.length);
    });

    it("names each file once, and any MD5 is 32 lower-case hex digits", () => {
      const names = archives(d).map((a) => a.file);
      expect(new Set(names).size).toBe(names.length);
      for (const a of archives(d)) if (a.md5 !== undefined) expect(a.md5, a.file).toMatch(MD5);
      if (d.zip?.md5 !== undefined) expect(d.zip.md5).toMatch(MD5);
    });

    it("has mirrors, https ones first, each a URL without a trailing slash", () => {
      expect(d.mirrors.length).toBeGreaterThan(0);
      const https = d.mirrors.map((m) => new URL(m.url).protocol === "https:");
      expect(https[0]).toBe(true);
      expect(https.indexOf(false) === -1 || https.lastIndexOf(true) < https.indexOf(false)).toBe(true);
      for (const m of d.mirrors) {
        expect(["http:", "https:"]).toContain(new URL(m.url).protocol);
        expect(m.url.endsWith("/"), m.url).toBe(false);
      }
      expect(new Set(d.mirrors.map((m) => m.url)).size).toBe(d.mirrors.length);
    });

    if (isEmnist(d)) {
      it("is transposed, inside gzip.zip, with zip mirrors and no per-member MD5", () => {
        expect(d.transposed).toBe(true);
        expect(d.zip).toEqual({ file: "gzip.zip", md5: "58c8d27c78d21e728a6bc7b3cc06412e" });
        for (const m of d.mirrors) expect(m.packaging).toBe("zip");
        const variant = d.name.slice("emnist-".length);
        for (const s of d.splits) {
          expect(s.images.file).toBe(`gzip/emnist-${variant}-${s.split}-images-idx3-ubyte.gz`);
          expect(s.labels.file).toBe(`gzip/emnist-${variant}-${s.split}-labels-idx1-ubyte.gz`);
        }
        for (const a of archives(d)) expect(a.md5).toBeUndefined();
      });
    } else {
      it("is upright, loose files with every MD5 published", () => {
        expect(d.transposed).toBe(false);
        expect(d.zip).toBeUndefined();
        for (const m of d.mirrors) expect(m.packaging).toBe("files");
        for (const a of archives(d)) expect(a.md5, a.file).toMatch(MD5);
        expect(archives(d).map((a) => a.file)).toEqual([
          "train-images-idx3-ubyte.gz",
          "train-labels-idx1-ubyte.gz",
          "t10k-images-idx3-ubyte.gz",
          "t10k-labels-idx1-ubyte.gz",
        ]);
      });
    }
  });

  it("registryEntry finds each entry and nothing else", () => {
    for (const d of REGISTRY) expect(registryEntry(d.name)).toBe(d);
    for (const name of ["", "emnist", "Fashion-MNIST", "qmnist", "fashion_mnist", "constructor", "__proto__"])
      expect(registryEntry(name), name).toBeUndefined();
  });
});

describe("registry facts", () => {
  const entry = (name: string): DatasetSpec => {
    const d = registryEntry(name);
    if (!d) throw new Error(`no registry entry ${name}`);
    return d;
  };
  const counts = (name: string) => entry(name).splits.map((s) => s.count);

  it("Fashion-MNIST: Zalando's MD5s, classes and mirrors", () => {
    const d = entry("fashion-mnist");
    expect(archives(d).map((a) => a.md5)).toEqual([
      "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
      "25c81989df183df01b3e8a0aad5dffbe",
      "bef4ecab320f06d8554ea6380940ec79",
      "bb300cfdad3c16e7a12a480ee83cd310",
    ]);
    expect(d.classes).toEqual([
      "T-shirt/top",
      "Trouser",
      "Pullover",
      "Dress",
      "Coat",
      "Sandal",
      "Shirt",
      "Sneaker",
      "Bag",
      "Ankle boot",
    ]);
    expect(d.mirrors.map((m) => m.url)).toEqual([
      "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion",
      "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
    ]);
    expect(counts("fashion-mnist")).toEqual([60_000, 10_000]);
  });

  it("MNIST and KMNIST: torchvision's MD5s and class names", () => {
    expect(archives(entry("mnist")).map((a) => a.md5)).toEqual([
      "f68b3c2dcbeaaa9fbdd348bbdeb94873",
      "d53e105ee54ea40749a09fcbcd1e9432",
      "9fb629c4189551a2d022fa330f9573f3",
      "ec29112dd5afa0611ce80d1b7f02629c",
    ]);
    expect(entry("mnist").classes?.[0]).toBe("0 - zero");
    expect(entry("mnist").classes?.[9]).toBe("9 - nine");
    expect(archives(entry("kmnist")).map((a) => a.md5)).toEqual([
      "bdb82020997e1d708af4cf47b453dcf7",
      "e144d726b3acfaa3e44228e80efcd344",
      "5c965bf0a639b31b8f53240b1b52f4d7",
      "7320c461ea6c1c855c0b718fb2a4b134",
    ]);
    expect(entry("kmnist").classes).toEqual(["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]);
  });

  it("EMNIST: torchvision's classes per variant", () => {
    const letters = entry("emnist-letters").classes ?? [];
    expect(letters[0]).toBe("N/A");
    expect(letters).toHaveLength(27);
    expect(letters[1]).toBe("a");
    expect(letters[26]).toBe("z");

    const balanced = entry("emnist-balanced").classes ?? [];
    expect(balanced).toHaveLength(47);
    expect(balanced.slice(36)).toEqual(["a", "b", "d", "e", "f", "g", "h", "n", "q", "r", "t"]);
    expect(entry("emnist-bymerge").classes).toEqual(balanced);

    const byclass = entry("emnist-byclass").classes ?? [];
    expect(byclass).toHaveLength(62);
    expect([byclass[0], byclass[9], byclass[10], byclass[35], byclass[36], byclass[61]]).toEqual([
      "0",
      "9",
      "A",
      "Z",
      "a",
      "z",
    ]);

    const digits = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    expect(entry("emnist-digits").classes).toEqual(digits);
    expect(entry("emnist-mnist").classes).toEqual(digits);
  });

  it("EMNIST: image counts per variant", () => {
    expect(counts("emnist-byclass")).toEqual([697_932, 116_323]);
    expect(counts("emnist-bymerge")).toEqual([697_932, 116_323]);
    expect(counts("emnist-balanced")).toEqual([112_800, 18_800]);
    expect(counts("emnist-letters")).toEqual([124_800, 20_800]);
    expect(counts("emnist-digits")).toEqual([240_000, 40_000]);
    expect(counts("emnist-mnist")).toEqual([60_000, 10_000]);
  });

  it("EMNIST: NIST's current URL first, then the older one", () => {
    expect(entry("emnist-digits").mirrors.map((m) => m.url)).toEqual([
      "https://biometrics.nist.gov/cs_links/EMNIST",
      "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST",
    ]);
  });
});
