-- Datasets a user can manage: where each one's rows came from, and the guard
-- rows of a deletion and of every rebuild of the `images` view.

-- Provenance of each dataset's current rows, written by the swap that put them
-- there (src/db/load.ts swapStatements): `official` is 1 only for a registry
-- dataset loaded from its official mirrors whose archives matched the published
-- MD5s, 0 for any other source and for custom datasets; `source` is the run's
-- source with credentials and query values redacted. NULL in both: no swap
-- since this migration (the rows' provenance was never recorded; a reload
-- records it).
ALTER TABLE datasets ADD COLUMN official INTEGER CHECK (official IN (0, 1));
ALTER TABLE datasets ADD COLUMN source TEXT;

-- Whether a run loads a registry dataset from its official mirrors (or
-- DEFAULT_SOURCE for the default dataset), and so is held to the published
-- MD5s: decided when the run starts (src/pipeline/dataset.ts isOfficial).
-- Runs started before this migration count as not official.
ALTER TABLE runs ADD COLUMN official INTEGER NOT NULL DEFAULT 0 CHECK (official IN (0, 1));

-- One row per DELETE /datasets/{name}: inserted first in the deletion's batch,
-- its CHECK aborts the whole batch, DDL included, if a run of the dataset is
-- active at that moment. Kept as the log of deletions.
CREATE TABLE dataset_deletions (
  id          TEXT    PRIMARY KEY,
  dataset     TEXT    NOT NULL,
  active_runs INTEGER NOT NULL,
  deleted_at  TEXT    NOT NULL,
  CHECK (active_runs = 0)
) WITHOUT ROWID;

-- The `images` view names tables, and SQLite creates a view over a table that
-- does not exist without complaint (a query of it fails later), so every batch
-- that recreates the view (a swap, a deletion) first inserts a row here: the
-- tables it planned the view over (`planned`), how many such tables exist now
-- (`found`) and how many of those it planned (`matched`). The CHECK aborts the
-- batch unless the two sets are equal: a table dropped by hand, or a dataset
-- swapped in or deleted, since the plan was read. The batch deletes its row at
-- its end, so the table stays empty.
CREATE TABLE view_guards (
  id      TEXT    PRIMARY KEY,
  planned INTEGER NOT NULL,
  found   INTEGER NOT NULL,
  matched INTEGER NOT NULL,
  CHECK (planned = found AND found = matched)
) WITHOUT ROWID;
