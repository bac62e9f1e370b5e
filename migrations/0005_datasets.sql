-- Many datasets side by side (MNIST, KMNIST, EMNIST, custom ones) in one
-- database, each loaded and swapped in on its own. A database that holds
-- Fashion-MNIST keeps it: its rows are copied into the new layout here, with
-- no download and no reload.

-- Physical layout: one rowid table per dataset and split
-- (images__<dataset with _ for ->__<split>, src/db/tables.ts), and `images`
-- becomes a view over all of them with a `dataset` column. Queries that read
-- `SELECT split, idx, label, pixels FROM images` keep working; add
-- `WHERE dataset = 'fashion-mnist'` once another dataset is loaded.
CREATE TABLE images__fashion_mnist__train (
  idx    INTEGER PRIMARY KEY CHECK (idx >= 0),
  label  INTEGER NOT NULL CHECK (label BETWEEN 0 AND 255),
  pixels BLOB    NOT NULL CHECK (length(pixels) = 3136)
);
CREATE TABLE images__fashion_mnist__test (
  idx    INTEGER PRIMARY KEY CHECK (idx >= 0),
  label  INTEGER NOT NULL CHECK (label BETWEEN 0 AND 255),
  pixels BLOB    NOT NULL CHECK (length(pixels) = 3136)
);
INSERT INTO images__fashion_mnist__train (idx, label, pixels) SELECT idx, label, pixels FROM images WHERE split = 'train' ORDER BY idx;
INSERT INTO images__fashion_mnist__test (idx, label, pixels) SELECT idx, label, pixels FROM images WHERE split = 'test' ORDER BY idx;
DROP TABLE images;
DROP TABLE images_next;

-- Which datasets have tables, and which run's swap put their rows there (NULL:
-- none yet). The `images` view lists exactly these; rows are only ever added.
CREATE TABLE datasets (
  name       TEXT PRIMARY KEY,
  run_id     TEXT REFERENCES runs (id),
  swapped_at TEXT
) WITHOUT ROWID;
INSERT INTO datasets (name, run_id, swapped_at)
  SELECT 'fashion-mnist', (SELECT run_id FROM dataset_swaps ORDER BY swapped_at DESC LIMIT 1),
    (SELECT MAX(swapped_at) FROM dataset_swaps);

CREATE VIEW images AS
SELECT 'fashion-mnist' AS dataset, 'train' AS split, idx, label, pixels FROM images__fashion_mnist__train
UNION ALL
SELECT 'fashion-mnist' AS dataset, 'test' AS split, idx, label, pixels FROM images__fashion_mnist__test;

-- A run loads one dataset: its name, and for a custom one the files and class
-- names it was given (JSON); then what its IDX headers said (shape) and the
-- class names the swap records.
ALTER TABLE runs ADD COLUMN dataset TEXT NOT NULL DEFAULT 'fashion-mnist';
ALTER TABLE runs ADD COLUMN spec TEXT;
ALTER TABLE runs ADD COLUMN image_rows INTEGER;
ALTER TABLE runs ADD COLUMN image_cols INTEGER;
ALTER TABLE runs ADD COLUMN image_channels INTEGER;
ALTER TABLE runs ADD COLUMN class_names TEXT;
UPDATE runs SET image_rows = 28, image_cols = 28, image_channels = 1,
  class_names = '["T-shirt/top","Trouser","Pullover","Dress","Coat","Sandal","Shirt","Sneaker","Bag","Ankle boot"]'
  WHERE train_expected IS NOT NULL;

-- A failed run cannot be resumed across this migration: its shadow rows were in
-- images_next, dropped above, and chunk digests now hash labels as bytes.
UPDATE runs SET resumable = 0 WHERE status = 'failed';

-- At most one active run per dataset (was: at most one at all).
DROP INDEX runs_single_active;
CREATE UNIQUE INDEX runs_single_active ON runs (dataset) WHERE status IN ('queued', 'extracting', 'loading');
CREATE INDEX runs_by_dataset ON runs (dataset, created_at DESC);

-- The swap log, per dataset. `catalog_size` is how many datasets the swap's
-- view lists besides its own, as read before the swap; the CHECK aborts a
-- swap whose view would leave out a dataset that joined in the meantime.
CREATE TABLE dataset_swaps_v2 (
  run_id         TEXT    PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
  dataset        TEXT    NOT NULL,
  run_status     TEXT    NOT NULL,
  train_rows     INTEGER NOT NULL,
  test_rows      INTEGER NOT NULL,
  train_expected INTEGER NOT NULL,
  test_expected  INTEGER NOT NULL,
  catalog_size   INTEGER NOT NULL,
  catalog_read   INTEGER NOT NULL,
  swapped_at     TEXT    NOT NULL,
  CHECK (run_status = 'loading' AND train_rows = train_expected AND test_rows = test_expected
    AND catalog_size = catalog_read)
) WITHOUT ROWID;
INSERT INTO dataset_swaps_v2
  SELECT run_id, 'fashion-mnist', run_status, train_rows, test_rows, train_expected, test_expected, 1, 1, swapped_at
  FROM dataset_swaps;
DROP TABLE dataset_swaps;
ALTER TABLE dataset_swaps_v2 RENAME TO dataset_swaps;
CREATE INDEX dataset_swaps_by_dataset ON dataset_swaps (dataset, swapped_at DESC);

-- Class names and per-class counts, per dataset.
CREATE TABLE classes_v2 (
  dataset TEXT    NOT NULL,
  label   INTEGER NOT NULL CHECK (label BETWEEN 0 AND 255),
  name    TEXT    NOT NULL,
  PRIMARY KEY (dataset, label)
) WITHOUT ROWID;
INSERT INTO classes_v2 (dataset, label, name) SELECT 'fashion-mnist', label, name FROM classes;
DROP TABLE classes;
ALTER TABLE classes_v2 RENAME TO classes;

CREATE TABLE class_counts_v2 (
  dataset TEXT    NOT NULL,
  split   TEXT    NOT NULL CHECK (split IN ('train', 'test')),
  label   INTEGER NOT NULL CHECK (label BETWEEN 0 AND 255),
  n       INTEGER NOT NULL CHECK (n >= 0),
  PRIMARY KEY (dataset, split, label)
) WITHOUT ROWID;
INSERT INTO class_counts_v2 (dataset, split, label, n) SELECT 'fashion-mnist', split, label, n FROM class_counts;
DROP TABLE class_counts;
ALTER TABLE class_counts_v2 RENAME TO class_counts;
