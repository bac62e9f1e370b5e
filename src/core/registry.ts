/**
 * The official datasets a run can name: where each is published, the
 * published MD5 of every archive, the image counts and the class names.
 * Every entry fills every field of DatasetSpec; a name not listed here is a
 * custom dataset (datasets.ts's customSpec).
 *
 * Sources are cited above each entry by repository and file, so they can be
 * re-checked when a mirror moves.
 */
import type { DatasetSpec, Mirror, Shape, SplitSpec } from "./datasets";
import { emnistAbout, FASHION_MNIST_ABOUT, KMNIST_ABOUT, MNIST_ABOUT } from "./provenance";

export const DEFAULT_DATASET = "fashion-mnist" satisfies RegistryName;

/** The official names, in registry order. */
export const REGISTRY_NAMES = [
  "fashion-mnist",
  "mnist",
  "kmnist",
  "emnist-balanced",
  "emnist-byclass",
  "emnist-bymerge",
  "emnist-digits",
  "emnist-letters",
  "emnist-mnist",
] as const;
export type RegistryName = (typeof REGISTRY_NAMES)[number];

const SHAPE_28X28: Shape = { rows: 28, cols: 28, channels: 1 };

/** The four-file layout MNIST introduced: train-* and t10k-*, each with its MD5. */
function mnistLayout(
  md5: { trainImages: string; trainLabels: string; testImages: string; testLabels: string },
  count: { train: number; test: number },
): readonly SplitSpec[] {
  return [
    {
      split: "train",
      images: { file: "train-images-idx3-ubyte.gz", md5: md5.trainImages },
      labels: { file: "train-labels-idx1-ubyte.gz", md5: md5.trainLabels },
      count: count.train,
    },
    {
      split: "test",
      images: { file: "t10k-images-idx3-ubyte.gz", md5: md5.testImages },
      labels: { file: "t10k-labels-idx1-ubyte.gz", md5: md5.testLabels },
      count: count.test,
    },
  ];
}

const files = (url: string): Mirror => ({ url, packaging: "files" });
const zipAt = (url: string): Mirror => ({ url, packaging: "zip" });

const DIGITS = Array.from("0123456789");
const UPPER = Array.from("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
const LOWER = Array.from("abcdefghijklmnopqrstuvwxyz");
/** Lower-case letters EMNIST's ByMerge and Balanced keep apart from their capitals. */
const UNMERGED_LOWER = Array.from("abdefghnqrt");

/*
 * EMNIST: every variant is a member of one zip, gzip.zip, whose members lie
 * in a `gzip/` folder (torchvision's EMNIST.download reads <raw>/gzip/ after
 * extracting it; TFDS's EMNIST._split_generators joins "gzip" likewise). The
 * zip's MD5 is torchvision's EMNIST.md5 (pytorch/vision,
 * torchvision/datasets/mnist.py); no MD5 is published for the members.
 * Mirrors: biometrics.nist.gov is the URL torchvision and TFDS moved to in 2024
 * (pytorch/vision#8350, tensorflow/datasets#5401); www.itl.nist.gov is the one
 * they used before. Classes are torchvision's EMNIST.classes_split_dict.
 * Counts: tensorflow/datasets, tensorflow_datasets/image_classification/mnist.py
 * (EMNIST.BUILDER_CONFIGS), except Letters, where TFDS says 88,800 / 14,800;
 * 124,800 / 20,800 add up to the 145,600 NIST's EMNIST page gives.
 */
const EMNIST_ZIP = { file: "gzip.zip", md5: "58c8d27c78d21e728a6bc7b3cc06412e" } as const;
const EMNIST_MIRRORS: readonly Mirror[] = [
  zipAt("https://biometrics.nist.gov/cs_links/EMNIST"),
  zipAt("https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST"),
];

function emnist<V extends string>(
  variant: V,
  label: string,
  classes: readonly string[],
  count: { train: number; test: number },
): DatasetSpec & { readonly name: `emnist-${V}` } {
  const member = (split: "train" | "test", kind: "images-idx3" | "labels-idx1") => ({
    file: `gzip/emnist-${variant}-${split}-${kind}-ubyte.gz`,
  });
  return {
    name: `emnist-${variant}` as const,
    title: `EMNIST ${label} (NIST; images are transposed in the files and loaded upright)`,
    shape: SHAPE_28X28,
    classes,
    splits: [
      {
        split: "train",
        images: member("train", "images-idx3"),
        labels: member("train", "labels-idx1"),
        count: count.train,
      },
      {
        split: "test",
        images: member("test", "images-idx3"),
        labels: member("test", "labels-idx1"),
        count: count.test,
      },
    ],
    mirrors: EMNIST_MIRRORS,
    zip: EMNIST_ZIP,
    transposed: true,
    about: emnistAbout(label),
  };
}

const ENTRIES: { readonly [N in RegistryName]: DatasetSpec & { readonly name: N } } = {
  // MD5s, counts and classes: zalandoresearch/fashion-mnist, README.md ("Get the
  // Data", "Labels"). Mirrors: that repository's data/fashion on master, then
  // the S3 website torchvision's FashionMNIST.mirrors names (pytorch/vision,
  // torchvision/datasets/mnist.py).
  "fashion-mnist": {
    name: "fashion-mnist",
    title: "Fashion-MNIST (Zalando Research)",
    shape: SHAPE_28X28,
    classes: ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    splits: mnistLayout(
      {
        trainImages: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        trainLabels: "25c81989df183df01b3e8a0aad5dffbe",
        testImages: "bef4ecab320f06d8554ea6380940ec79",
        testLabels: "bb300cfdad3c16e7a12a480ee83cd310",
      },
      { train: 60_000, test: 10_000 },
    ),
    mirrors: [
      files("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion"),
      files("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"),
    ],
    transposed: false,
    about: FASHION_MNIST_ABOUT,
  },

  // MD5s, mirrors and classes: torchvision's MNIST.resources, .mirrors and
  // .classes (pytorch/vision, torchvision/datasets/mnist.py). Counts:
  // tensorflow/datasets, tensorflow_datasets/image_classification/mnist.py.
  mnist: {
    name: "mnist",
    title: "MNIST (LeCun, Cortes & Burges)",
    shape: SHAPE_28X28,
    classes: [
      "0 - zero",
      "1 - one",
      "2 - two",
      "3 - three",
      "4 - four",
      "5 - five",
      "6 - six",
      "7 - seven",
      "8 - eight",
      "9 - nine",
    ],
    splits: mnistLayout(
      {
        trainImages: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        trainLabels: "d53e105ee54ea40749a09fcbcd1e9432",
        testImages: "9fb629c4189551a2d022fa330f9573f3",
        testLabels: "ec29112dd5afa0611ce80d1b7f02629c",
      },
      { train: 60_000, test: 10_000 },
    ),
    mirrors: [files("https://ossci-datasets.s3.amazonaws.com/mnist"), files("http://yann.lecun.com/exdb/mnist")],
    transposed: false,
    about: MNIST_ABOUT,
  },

  // MD5s and classes: torchvision's KMNIST.resources and .classes (pytorch/vision,
  // torchvision/datasets/mnist.py). Counts and the http URL: rois-codh/kmnist,
  // README.md and download_data.py. The https URL of the same host is the one
  // ankane/torchvision-ruby (lib/torchvision/datasets/kmnist.rb) uses.
  kmnist: {
    name: "kmnist",
    title: "Kuzushiji-MNIST (ROIS-DS Center for Open Data in the Humanities)",
    shape: SHAPE_28X28,
    classes: ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
    splits: mnistLayout(
      {
        trainImages: "bdb82020997e1d708af4cf47b453dcf7",
        trainLabels: "e144d726b3acfaa3e44228e80efcd344",
        testImages: "5c965bf0a639b31b8f53240b1b52f4d7",
        testLabels: "7320c461ea6c1c855c0b718fb2a4b134",
      },
      { train: 60_000, test: 10_000 },
    ),
    mirrors: [
      files("https://codh.rois.ac.jp/kmnist/dataset/kmnist"),
      files("http://codh.rois.ac.jp/kmnist/dataset/kmnist"),
    ],
    transposed: false,
    about: KMNIST_ABOUT,
  },

  // The EMNIST entries' sources: the comment above EMNIST_ZIP.
  "emnist-balanced": emnist("balanced", "Balanced", [...DIGITS, ...UPPER, ...UNMERGED_LOWER], {
    train: 112_800,
    test: 18_800,
  }),
  "emnist-byclass": emnist("byclass", "ByClass", [...DIGITS, ...UPPER, ...LOWER], {
    train: 697_932,
    test: 116_323,
  }),
  "emnist-bymerge": emnist("bymerge", "ByMerge", [...DIGITS, ...UPPER, ...UNMERGED_LOWER], {
    train: 697_932,
    test: 116_323,
  }),
  "emnist-digits": emnist("digits", "Digits", DIGITS, { train: 240_000, test: 40_000 }),
  // Labels 1–26 are a–z (capitals merged in); label 0 is unused.
  "emnist-letters": emnist("letters", "Letters", ["N/A", ...LOWER], { train: 124_800, test: 20_800 }),
  "emnist-mnist": emnist("mnist", "MNIST", DIGITS, { train: 60_000, test: 10_000 }),
};

/** Every official dataset, in REGISTRY_NAMES order. */
export const REGISTRY: readonly DatasetSpec[] = REGISTRY_NAMES.map((name) => ENTRIES[name]);

const BY_NAME: ReadonlyMap<string, DatasetSpec> = new Map(REGISTRY.map((d) => [d.name, d]));

/** The official dataset of that name; undefined for any other name (a custom dataset's). */
export function registryEntry(name: string): DatasetSpec | undefined {
  return BY_NAME.get(name);
}

/** The default dataset's entry, which the single-dataset routes, the CLI's default and many tests use. */
export const FASHION_MNIST: DatasetSpec = ENTRIES[DEFAULT_DATASET];
