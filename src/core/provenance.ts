/**
 * Where each registry dataset comes from: its publishers' description, home
 * page, license, creators and citation, as their own pages give them, for the
 * datasets' croissant.json. Sources are cited above each entry.
 */
import type { DatasetAbout } from "./datasets";

const CC_BY_SA_3 = { name: "CC-BY-SA-3.0", url: "https://creativecommons.org/licenses/by-sa/3.0/" };
const CC_BY_SA_4 = { name: "CC-BY-SA-4.0", url: "https://creativecommons.org/licenses/by-sa/4.0/" };

// zalandoresearch/fashion-mnist, README.md: "Citing Fashion-MNIST" (the BibTeX entry) and "License" (MIT,
// Copyright © 2017 Zalando SE).
export const FASHION_MNIST_ABOUT: DatasetAbout = {
  description:
    "Zalando's article images: 70,000 28×28 grayscale images of fashion products in 10 classes, 60,000 for training and 10,000 for testing, in MNIST's format.",
  url: "https://github.com/zalandoresearch/fashion-mnist",
  license: { name: "MIT", url: "https://opensource.org/license/mit" },
  creators: [{ kind: "Organization", name: "Zalando Research", url: "https://research.zalando.com/" }],
  citation: `@online{xiao2017/online,
  author       = {Han Xiao and Kashif Rasul and Roland Vollgraf},
  title        = {Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms},
  date         = {2017-08-28},
  year         = {2017},
  eprintclass  = {cs.LG},
  eprinttype   = {arXiv},
  eprint       = {cs.LG/1708.07747},
}`,
  published: "2017-08-28",
};

// yann.lecun.com/exdb/mnist: the database's page names its three authors; its copyright note (Yann LeCun and
// Corinna Cortes) makes it available under CC BY-SA 3.0. The citation is the paper the page points to.
export const MNIST_ABOUT: DatasetAbout = {
  description:
    "Handwritten digits from NIST's Special Databases 1 and 3, size-normalised and centred: 70,000 28×28 grayscale images, 60,000 for training and 10,000 for testing.",
  url: "http://yann.lecun.com/exdb/mnist/",
  license: CC_BY_SA_3,
  creators: [
    { kind: "Person", name: "Yann LeCun" },
    { kind: "Person", name: "Corinna Cortes" },
    { kind: "Person", name: "Christopher J. C. Burges" },
  ],
  citation: `@article{lecun1998gradient,
  title   = {Gradient-based learning applied to document recognition},
  author  = {LeCun, Yann and Bottou, L{\\'e}on and Bengio, Yoshua and Haffner, Patrick},
  journal = {Proceedings of the IEEE},
  volume  = {86},
  number  = {11},
  pages   = {2278--2324},
  year    = {1998}
}`,
  published: "1998",
};

// rois-codh/kmnist, README.md: "Citing Kuzushiji-MNIST" and "License" (CC BY-SA 4.0; "KMNIST Dataset" created by
// CODH, adapted from "Kuzushiji Dataset" created by NIJL and others).
export const KMNIST_ABOUT: DatasetAbout = {
  description:
    "Kuzushiji-MNIST: cursive Japanese (Kuzushiji) characters, one per Hiragana class, as a drop-in replacement for MNIST: 70,000 28×28 grayscale images in 10 classes.",
  url: "https://github.com/rois-codh/kmnist",
  license: CC_BY_SA_4,
  creators: [
    {
      kind: "Organization",
      name: "ROIS-DS Center for Open Data in the Humanities (CODH)",
      url: "http://codh.rois.ac.jp/",
    },
  ],
  citation: `@online{clanuwat2018deep,
  author       = {Tarin Clanuwat and Mikel Bober-Irizar and Asanobu Kitamoto and Alex Lamb and Kazuaki Yamamoto and David Ha},
  title        = {Deep Learning for Classical Japanese Literature},
  date         = {2018-12-03},
  year         = {2018},
  eprintclass  = {cs.CV},
  eprinttype   = {arXiv},
  eprint       = {cs.CV/1812.01718},
}`,
  published: "2018-12-03",
};

// nist.gov/itl/products-and-services/emnist-dataset: the description, the authors (The MARCS Institute, Western
// Sydney University) and the citation it asks for. The page states no license; NIST's page is named instead.
export const emnistAbout = (variant: string): DatasetAbout => ({
  description: `EMNIST ${variant}: handwritten characters from NIST Special Database 19, converted to MNIST's 28×28 format (the IDX files hold them transposed; idx-etl exports them upright).`,
  url: "https://www.nist.gov/itl/products-and-services/emnist-dataset",
  license: {
    name: "No license stated by the publisher; see NIST's EMNIST page",
    url: "https://www.nist.gov/itl/products-and-services/emnist-dataset",
  },
  creators: [
    { kind: "Person", name: "Gregory Cohen" },
    { kind: "Person", name: "Saeed Afshar" },
    { kind: "Person", name: "Jonathan Tapson" },
    { kind: "Person", name: "André van Schaik" },
  ],
  citation: `@inproceedings{cohen2017emnist,
  title        = {EMNIST: Extending MNIST to handwritten letters},
  author       = {Cohen, Gregory and Afshar, Saeed and Tapson, Jonathan and Van Schaik, Andre},
  booktitle    = {2017 International Joint Conference on Neural Networks (IJCNN)},
  pages        = {2921--2926},
  year         = {2017},
  organization = {IEEE}
}`,
  published: "2017",
});
