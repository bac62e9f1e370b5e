-- Exports materialised to R2 (the EXPORTS bucket): after a dataset's swap, a
-- job writes its four .npy files to R2 under the version's key, then records
-- here which version they are. A row whose version is no longer the dataset's
-- (datasets.run_id) says nothing: its files are an older load's, and the export
-- routes read D1 until the new version's are written.
CREATE TABLE dataset_exports (
  dataset     TEXT PRIMARY KEY,
  version     TEXT NOT NULL,
  bytes       INTEGER NOT NULL,
  exported_at TEXT NOT NULL
) WITHOUT ROWID;
