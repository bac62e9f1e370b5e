-- Every export file of a dataset version that the export job has written or
-- hashed (pipeline/materialise.ts): its exact size and the SHA-256 of its
-- bytes, which croissant.json and GET /datasets/{name} name. One row per file
-- of a dataset, replaced by the next version's; a row whose version is not the
-- dataset's current one (datasets.run_id) says nothing.
CREATE TABLE export_files (
  dataset TEXT NOT NULL,
  file    TEXT NOT NULL,
  version TEXT NOT NULL,
  bytes   INTEGER NOT NULL,
  sha256  TEXT NOT NULL,
  PRIMARY KEY (dataset, file)
) WITHOUT ROWID;
