// Numbered schema migrations. Never edit a shipped one: append the next. A migration
// is SQL, or a function for what SQL alone cannot say; each runs in one transaction.
import type Database from 'better-sqlite3'

/** The directory part of a key: everything up to and including its last '/' ('' at the top). */
export function dirPathOf (key: string): string { return key.slice(0, key.lastIndexOf('/') + 1) }

/** The directory above a directory path ('a/b/' -> 'a/', 'a/' -> ''). */
export function parentPathOf (path: string): string { return dirPathOf(path.slice(0, -1)) }

/**
 * Migrations that rebuild tables a running bucketfs of an earlier version reads: not
 * run while another process holds the data directory's daemon lock.
 */
export const REBUILDS = new Set([5])

export const MIGRATIONS: Array<string | ((db: Database.Database) => void)> = [
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
  `,
  // 5: keys are stored as a directory and a name in it, so a directory is renamed by
  // changing its directories' rows, whatever it holds. A dirs row exists while a version
  // or a directory lies in it (the bucket's top, path '', always may).
  (db) => {
    db.exec(`
      CREATE TABLE dirs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        bucket_id INTEGER NOT NULL,
        parent INTEGER, -- NULL for a bucket's top
        path TEXT NOT NULL, -- '' for the top, else ending in '/'
        longest INTEGER NOT NULL DEFAULT 0 -- the UTF-8 bytes of the longest name it ever held
      );
      CREATE UNIQUE INDEX dirs_by_path ON dirs(bucket_id, path);
      CREATE INDEX dirs_by_parent ON dirs(parent, path);
      CREATE TEMP TABLE keymap (bucket_id INTEGER NOT NULL, key TEXT NOT NULL, dir INTEGER NOT NULL, name TEXT NOT NULL, PRIMARY KEY (bucket_id, key)) WITHOUT ROWID;
    `)
    const find = db.prepare('SELECT id FROM dirs WHERE bucket_id = ? AND path = ?').pluck()
    const add = db.prepare('INSERT INTO dirs (bucket_id, parent, path) VALUES (?, ?, ?)')
    const ensure = (bucketId: number, path: string): number => {
      const id = find.get(bucketId, path) as number | undefined
      if (id !== undefined) return id
      const parent = path === '' ? null : ensure(bucketId, parentPathOf(path))
      return Number(add.run(bucketId, parent, path).lastInsertRowid)
    }
    const map = db.prepare('INSERT INTO keymap (bucket_id, key, dir, name) VALUES (?, ?, ?, ?)')
    const keys = db.prepare('SELECT DISTINCT bucket_id, key FROM versions').raw(true).all() as Array<[number, string]>
    for (const [bucketId, key] of keys) {
      const path = dirPathOf(key)
      map.run(bucketId, key, ensure(bucketId, path), key.slice(path.length))
    }
    db.exec('UPDATE dirs SET longest = m.l FROM (SELECT dir, max(length(CAST(name AS BLOB))) AS l FROM keymap GROUP BY dir) AS m WHERE m.dir = dirs.id')
    const seq = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'versions'").pluck().get() as number | undefined
    db.exec(`
      CREATE TABLE versions_new (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        dir INTEGER NOT NULL,
        name TEXT NOT NULL, -- the key less its directory's path ('' for a directory's marker)
        version_id TEXT NOT NULL,
        delete_marker INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL DEFAULT 0,
        etag TEXT NOT NULL DEFAULT '',
        last_modified_ms INTEGER NOT NULL,
        content_type TEXT NOT NULL DEFAULT '',
        headers TEXT NOT NULL DEFAULT '{}',
        user_meta TEXT NOT NULL DEFAULT '{}',
        mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
        mtime_ms INTEGER NOT NULL, ctime_ms INTEGER NOT NULL,
        stored INTEGER
      );
      INSERT INTO versions_new SELECT v.seq, m.dir, m.name, v.version_id, v.delete_marker, v.size, v.etag, v.last_modified_ms,
        v.content_type, v.headers, v.user_meta, v.mode, v.uid, v.gid, v.mtime_ms, v.ctime_ms, v.stored
        FROM versions v JOIN keymap m ON m.bucket_id = v.bucket_id AND m.key = v.key;
      CREATE TABLE live_new (dir INTEGER NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (dir, name)) WITHOUT ROWID;
      INSERT INTO live_new SELECT v.dir, v.name, l.seq FROM live l JOIN versions_new v ON v.seq = l.seq;
      DROP TABLE live;
      DROP TABLE versions;
      ALTER TABLE versions_new RENAME TO versions;
      ALTER TABLE live_new RENAME TO live;
      CREATE UNIQUE INDEX versions_by_id ON versions(dir, name, version_id);
      CREATE INDEX versions_by_key ON versions(dir, name, seq DESC);
      CREATE TRIGGER versions_gone AFTER DELETE ON versions BEGIN
        DELETE FROM extents WHERE seq = OLD.seq;
        DELETE FROM version_parts WHERE seq = OLD.seq;
      END;
      DROP TABLE keymap;
    `)
    // Seqs of deleted versions are not handed out again.
    if (seq !== undefined) {
      db.prepare("DELETE FROM sqlite_sequence WHERE name = 'versions'").run()
      db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('versions', max(?, (SELECT coalesce(max(seq), 0) FROM versions)))").run(seq)
    }
  }
]
