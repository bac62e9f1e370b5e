-- Loads never write to `images` directly. A run loads into the shadow table
-- `images_next`, and only when D1 holds every expected row there does one D1
-- batch (one transaction) swap the two tables by renaming them. A run that
-- fails at any point therefore leaves the last complete dataset exactly as it
-- was: no partial overwrite, no mix of two sources, no row deleted.

-- Same columns and checks as `images`. The swap drops the old dataset and
-- recreates this table empty with the same statement (CREATE_SHADOW_SQL in
-- src/db/load.ts; test/config.test.ts keeps the two identical).
CREATE TABLE images_next (
  split  TEXT    NOT NULL CHECK (split IN ('train', 'test')),
  idx    INTEGER NOT NULL CHECK (idx >= 0),
  label  INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
  pixels BLOB    NOT NULL CHECK (length(pixels) = 3136),
  PRIMARY KEY (split, idx)
) WITHOUT ROWID;

-- One row per swap: which run's rows became `images`, with the counts D1 held.
-- The row is the swap's guard, inserted first in the swap batch: the primary
-- key makes a second swap for the same run (two consumers finishing at once)
-- abort its whole batch, and the CHECK aborts a swap whose run is no longer
-- loading or whose shadow rows do not match what the run expects.
CREATE TABLE dataset_swaps (
  run_id         TEXT    PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
  run_status     TEXT    NOT NULL,
  train_rows     INTEGER NOT NULL,
  test_rows      INTEGER NOT NULL,
  train_expected INTEGER NOT NULL,
  test_expected  INTEGER NOT NULL,
  swapped_at     TEXT    NOT NULL,
  CHECK (run_status = 'loading' AND train_rows = train_expected AND test_rows = test_expected)
) WITHOUT ROWID;
