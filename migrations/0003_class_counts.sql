-- Images per class per split of the dataset in `images`, written by the swap
-- that makes a dataset current (src/db/load.ts swapStatements). Reading
-- these 20 rows replaces a scan of all 70,000 images on every /stats request
-- (and so every dashboard load); the scan now happens once per load.
CREATE TABLE class_counts (
  split TEXT    NOT NULL CHECK (split IN ('train', 'test')),
  label INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
  n     INTEGER NOT NULL CHECK (n >= 0),
  PRIMARY KEY (split, label)
) WITHOUT ROWID;

-- A database that already holds a dataset gets its counts now.
INSERT INTO class_counts (split, label, n) SELECT split, label, COUNT(*) FROM images GROUP BY split, label;
