// Numbered schema migrations. Never edit a shipped one: append the next.
export const MIGRATIONS: string[] = [
  // 1: buckets, object versions, chunks and extents, multipart uploads.
  `
  CREATE TABLE buckets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    region TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    versioning TEXT NOT NULL DEFAULT 'Unversioned',
    mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL, mtime_ms INTEGER NOT NULL
  );

  -- Every version of every key, delete markers included. seq orders them in time.
  CREATE TABLE versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket_id INTEGER NOT NULL REFERENCES buckets(id),
    key TEXT NOT NULL,
    version_id TEXT NOT NULL,
    delete_marker INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    etag TEXT NOT NULL DEFAULT '',
    last_modified_ms INTEGER NOT NULL,
    content_type TEXT NOT NULL DEFAULT '',
    headers TEXT NOT NULL DEFAULT '{}',
    user_meta TEXT NOT NULL DEFAULT '{}',
    mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
    mtime_ms INTEGER NOT NULL, ctime_ms INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX versions_by_id ON versions(bucket_id, key, version_id);
  CREATE INDEX versions_by_key ON versions(bucket_id, key, seq DESC);

  -- Keys whose latest version is an object (not a delete marker): what listings show.
  CREATE TABLE live (
    bucket_id INTEGER NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (bucket_id, key)
  ) WITHOUT ROWID;

  -- Content-addressed chunks. data is set for chunks stored inline; others are files.
  CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    refs INTEGER NOT NULL DEFAULT 0,
    data BLOB
  );
  CREATE INDEX chunks_unreferenced ON chunks(refs) WHERE refs <= 0;
  -- A writer pins a chunk from before its file is written until its metadata commits.
  CREATE TABLE pins (chunk INTEGER NOT NULL, owner INTEGER NOT NULL, pid INTEGER NOT NULL, PRIMARY KEY (chunk, owner)) WITHOUT ROWID;
  CREATE INDEX pins_by_owner ON pins(owner);

  -- The byte ranges of a version: [off, off+len) comes from chunk at coff (NULL chunk: zeros).
  CREATE TABLE extents (
    seq INTEGER NOT NULL, off INTEGER NOT NULL, len INTEGER NOT NULL,
    chunk INTEGER, coff INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (seq, off)
  ) WITHOUT ROWID;
  -- The parts a version was assembled from, for its ETag.
  CREATE TABLE version_parts (
    seq INTEGER NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL, size INTEGER NOT NULL, md5 TEXT NOT NULL,
    PRIMARY KEY (seq, part)
  ) WITHOUT ROWID;

  CREATE TABLE uploads (
    id INTEGER PRIMARY KEY,
    upload_id TEXT NOT NULL UNIQUE,
    bucket_id INTEGER NOT NULL REFERENCES buckets(id),
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    initiated_ms INTEGER NOT NULL,
    attrs TEXT NOT NULL DEFAULT '{}',
    base_seq INTEGER, base_limit INTEGER NOT NULL DEFAULT 0, size INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX uploads_by_key ON uploads(bucket_id, key);
  CREATE TABLE upload_parts (
    upload INTEGER NOT NULL, part INTEGER NOT NULL, size INTEGER NOT NULL, md5 TEXT NOT NULL,
    modified_ms INTEGER NOT NULL,
    PRIMARY KEY (upload, part)
  ) WITHOUT ROWID;
  CREATE TABLE part_extents (
    upload INTEGER NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL, len INTEGER NOT NULL,
    chunk INTEGER, coff INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (upload, part, off)
  ) WITHOUT ROWID;

  -- Reference counts follow the rows that name a chunk, in the same transaction.
  CREATE TRIGGER extents_ref AFTER INSERT ON extents WHEN NEW.chunk IS NOT NULL
    BEGIN UPDATE chunks SET refs = refs + 1 WHERE id = NEW.chunk; END;
  CREATE TRIGGER extents_unref AFTER DELETE ON extents WHEN OLD.chunk IS NOT NULL
    BEGIN UPDATE chunks SET refs = refs - 1 WHERE id = OLD.chunk; END;
  CREATE TRIGGER part_extents_ref AFTER INSERT ON part_extents WHEN NEW.chunk IS NOT NULL
    BEGIN UPDATE chunks SET refs = refs + 1 WHERE id = NEW.chunk; END;
  CREATE TRIGGER part_extents_unref AFTER DELETE ON part_extents WHEN OLD.chunk IS NOT NULL
    BEGIN UPDATE chunks SET refs = refs - 1 WHERE id = OLD.chunk; END;
  CREATE TRIGGER versions_gone AFTER DELETE ON versions BEGIN
    DELETE FROM extents WHERE seq = OLD.seq;
    DELETE FROM version_parts WHERE seq = OLD.seq;
  END;
  CREATE TRIGGER upload_parts_gone AFTER DELETE ON upload_parts BEGIN
    DELETE FROM part_extents WHERE upload = OLD.upload AND part = OLD.part;
  END;
  CREATE TRIGGER uploads_gone AFTER DELETE ON uploads BEGIN
    DELETE FROM upload_parts WHERE upload = OLD.id;
  END;
  `,
  // 2: a session upload is 'sealed' once a close or an fsync has made its data final:
  // recovery completes sealed uploads and drops the others (half-written, never closed).
  `
  ALTER TABLE uploads ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
  `,
  // 3: the bytes a version stores (its size less its holes), for st_blocks; NULL in
  // versions made before it: those report their size.
  `
  ALTER TABLE versions ADD COLUMN stored INTEGER;
  `,
  // 4: the CRC-32 of a chunk's bytes, which reads check (a third of SHA-256's cost);
  // NULL in chunks written before it: those are checked against their SHA-256.
  `
  ALTER TABLE chunks ADD COLUMN crc INTEGER;
  `
]
