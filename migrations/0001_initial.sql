-- The database `images`: one row per image, the class names, and the run log.
-- Applied with `wrangler d1 migrations apply images [--local|--remote]`.
-- src/db/schema.ts mirrors this file for typed queries; keep them in step.

-- One row per image. `pixels` is 784 little-endian float32 values (3,136 bytes),
-- row-major 28x28x1, each equal to numpy's `x.astype(np.float32) / 255`.
CREATE TABLE images (
  split  TEXT    NOT NULL CHECK (split IN ('train', 'test')),
  idx    INTEGER NOT NULL CHECK (idx >= 0),
  label  INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
  pixels BLOB    NOT NULL CHECK (length(pixels) = 3136),
  PRIMARY KEY (split, idx)
) WITHOUT ROWID;

-- No secondary index on label, on purpose: D1 bills an index update as one more
-- row written, so it would double a full load to ~140k rows written — over the
-- free plan's 100k per day. GROUP BY label over 70k rows reads the table once.

CREATE TABLE classes (
  label INTEGER PRIMARY KEY CHECK (label BETWEEN 0 AND 9),
  name  TEXT    NOT NULL UNIQUE
);

INSERT INTO classes (label, name) VALUES
  (0, 'T-shirt/top'),
  (1, 'Trouser'),
  (2, 'Pullover'),
  (3, 'Dress'),
  (4, 'Coat'),
  (5, 'Sandal'),
  (6, 'Shirt'),
  (7, 'Sneaker'),
  (8, 'Bag'),
  (9, 'Ankle boot');

-- One row per ETL run: the single source of truth for its progress and errors.
CREATE TABLE runs (
  id             TEXT    PRIMARY KEY,
  trigger        TEXT    NOT NULL CHECK (trigger IN ('cron', 'http', 'cli')),
  source         TEXT    NOT NULL,
  status         TEXT    NOT NULL CHECK (status IN ('queued', 'extracting', 'loading', 'complete', 'failed')),
  -- JSON object: archive file name -> MD5 hex of the .gz as downloaded.
  checksums      TEXT,
  train_expected INTEGER,
  test_expected  INTEGER,
  train_loaded   INTEGER NOT NULL DEFAULT 0,
  test_loaded    INTEGER NOT NULL DEFAULT 0,
  chunks_total   INTEGER,
  -- Set when the archives matched the last complete run's: nothing was rewritten.
  unchanged      INTEGER NOT NULL DEFAULT 0 CHECK (unchanged IN (0, 1)),
  error          TEXT,
  created_at     TEXT    NOT NULL,
  updated_at     TEXT    NOT NULL,
  finished_at    TEXT
);

CREATE INDEX runs_by_created ON runs (created_at DESC);

-- At most one active run, enforced by the database rather than by a
-- read-then-write check that two triggers could both pass.
CREATE UNIQUE INDEX runs_single_active ON runs ((status IN ('queued', 'extracting', 'loading')))
  WHERE status IN ('queued', 'extracting', 'loading');

-- Chunks a run has committed. A chunk's rows and its ledger entry are written in
-- one D1 batch (one transaction), so a redelivered message is recognised and
-- progress is never counted twice.
CREATE TABLE run_chunks (
  run_id TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  split  TEXT    NOT NULL CHECK (split IN ('train', 'test')),
  start  INTEGER NOT NULL,
  count  INTEGER NOT NULL,
  PRIMARY KEY (run_id, split, start)
) WITHOUT ROWID;
