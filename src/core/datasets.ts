/**
 * What a dataset is: its archives, their published checksums, the image shape
 * and the class names. Fashion-MNIST is the first; the pipeline reads every
 * shape-dependent figure from here.
 */

export const SPLITS = ["train", "test"] as const;
export type Split = (typeof SPLITS)[number];

export interface ArchiveSpec {
  /** File name, relative to the source's base URL. */
  readonly file: string;
  /** MD5 of the published .gz, enforced for runs from the default source. */
  readonly md5: string;
}

export interface SplitSpec {
  readonly split: Split;
  readonly images: ArchiveSpec;
  readonly labels: ArchiveSpec;
  /** Image count of the published files. */
  readonly count: number;
}

export interface DatasetSpec {
  readonly name: string;
  readonly rows: number;
  readonly cols: number;
  readonly channels: number;
  readonly classes: readonly string[];
  readonly splits: readonly SplitSpec[];
}

export const FASHION_MNIST: DatasetSpec = {
  name: "fashion-mnist",
  rows: 28,
  cols: 28,
  channels: 1,
  classes: ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
  splits: [
    {
      split: "train",
      images: { file: "train-images-idx3-ubyte.gz", md5: "8d4fb7e6c68d591d4c3dfef9ec88bf0d" },
      labels: { file: "train-labels-idx1-ubyte.gz", md5: "25c81989df183df01b3e8a0aad5dffbe" },
      count: 60_000,
    },
    {
      split: "test",
      images: { file: "t10k-images-idx3-ubyte.gz", md5: "bef4ecab320f06d8554ea6380940ec79" },
      labels: { file: "t10k-labels-idx1-ubyte.gz", md5: "bb300cfdad3c16e7a12a480ee83cd310" },
      count: 10_000,
    },
  ],
};

/** Bytes of one image as stored in the IDX file (one uint8 per pixel). */
export const pixelsPerImage = (d: DatasetSpec): number => d.rows * d.cols * d.channels;

export const isSplit = (s: unknown): s is Split => s === "train" || s === "test";
