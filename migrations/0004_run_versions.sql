-- Every row a run swaps in must come from the archive bytes whose MD5s the run
-- records, on every path: first load, forced, resumed, retried, redelivered.
-- (src/pipeline/job.ts and docs/reliability.md: "One version per run".)

-- A digest of each loaded chunk's labels and pixels, written in the same
-- transaction as its rows. The first delivery of a chunk sets it; a later
-- delivery or a re-extraction with other bytes for the same images is refused
-- and fails the run instead of overwriting (or keeping) rows of another version.
-- NULL only for chunks loaded before this migration: such a chunk matches nothing.
ALTER TABLE run_chunks ADD COLUMN digest TEXT;

-- Which attempt of the run is current: 1, then one more per resume. Messages
-- carry the attempt that sent them, so a dead letter or a redelivered job left
-- over from an earlier attempt cannot fail or re-extract the current one.
ALTER TABLE runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1);

-- 0 when a failed run must not be resumed: its source changed under it, so the
-- rows it already loaded belong to bytes that can no longer be downloaded.
ALTER TABLE runs ADD COLUMN resumable INTEGER NOT NULL DEFAULT 1 CHECK (resumable IN (0, 1));

-- The last error of a step that will be retried, while the run goes on; `error`
-- is only ever why a run failed.
ALTER TABLE runs ADD COLUMN retrying TEXT;

-- The guard that lets a run empty the shadow table by DROP + CREATE (DDL, billed
-- as a handful of rows) instead of DELETE (billed one row written per row
-- deleted): inserted first in the same batch, its CHECK aborts the whole batch,
-- DDL included, unless the run is extracting at that moment, so a redelivered
-- job can never drop rows that a run which has started loading already wrote.
CREATE TABLE shadow_claims (
  run_id     TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
  run_status TEXT NOT NULL,
  claimed_at TEXT NOT NULL,
  CHECK (run_status = 'extracting')
) WITHOUT ROWID;
