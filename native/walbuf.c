// bucketfs: one write per commit to SQLite's WAL. SQLite writes each WAL frame with
// two pwrite calls (its 24-byte header, then the page), so a commit of 9 pages made 18
// system calls, each touching the page cache at an offset that is not page-aligned: in
// a `perf record` of 20,000 one-delete commits, walWriteOneFrame took 28 % of the
// process's time. This SQLite extension registers a VFS, the process's default, that
// is the default one but for WAL files: frames appended to the WAL are gathered in
// memory while they follow each other and written in one call when the commit frame
// (a frame header with a non-zero database size) has its page.
//
// Safe because the frames of a commit become visible to anyone (another connection,
// recovery after a crash) only through the WAL index header, which SQLite publishes
// after the commit frame's write returned; that write now reports the failure of the
// whole gathered write (a full disk, say), so a failed commit is never published. A
// crash before the write leaves the commit unwritten, as a crash inside SQLite's own
// writes would. What is gathered is also written before anything else touches the WAL
// (a read, a sync, a truncate, its size, a file control, its close), before a write
// that does not follow on, and before the connection's database file publishes the
// WAL index (xShmBarrier) or gives up the write lock (xShmLock): frames of a
// transaction that spilled and then rolled back are never written later, over frames
// another process committed meanwhile. A write below the furthest byte written since
// the WAL began (a page rewritten in the same transaction; the frame headers SQLite
// rewrites with new checksums at such a commit) goes straight to the file.
//
// Built by node-gyp on npm install (binding.gyp); loaded by src/meta/db.ts through
// better-sqlite3's loadExtension before the first database is opened.
#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT1
#include <string.h>

#define WB_VFS_NAME "bucketfs-walbuf"
/** Gathered bytes at most: a commit of up to 31 pages (4 KiB) goes in one write. The
    default VFS writes at most 0x1ffff bytes a call (seekAndWriteFd masks the length
    with it: a longer write would come back short, which it reports as SQLITE_FULL). */
#define WB_CAP (126 * 1024)
#define WB_FRAME_HEADER 24

/* A WAL file, or a main database file (which only flushes its WAL). One connection's,
   so used by one thread at a time. */
typedef struct WbFile WbFile;
struct WbFile {
  sqlite3_file base;
  sqlite3_file *real;      /* the default VFS's file, right after this struct */
  int isWal;
  WbFile *wal;             /* a database file's WAL, while open */
  WbFile *db;              /* a WAL's database file */
  unsigned char *buf;      /* gathered writes (allocated at the first) */
  int len;
  sqlite3_int64 start;     /* file offset of buf[0] */
  sqlite3_int64 hwm;       /* the furthest byte written since the last write at offset 0 */
  int commitFrame;         /* the last write was the header of a commit frame */
};

static sqlite3_vfs *wb_real = 0;
static sqlite3_vfs wb_vfs;
static sqlite3_uint64 wb_writes = 0, wb_flushes = 0, wb_wal_opens = 0, wb_through = 0;

#define WB_COUNT(x) __atomic_add_fetch(&(x), 1, __ATOMIC_RELAXED)

static int wb_flush (WbFile *p) {
  if (p->len == 0) return SQLITE_OK;
  int n = p->len;
  p->len = 0; /* a failed write fails the commit, which is then not published */
  WB_COUNT(wb_flushes);
  return p->real->pMethods->xWrite(p->real, p->buf, n, p->start);
}

static int wb_close (sqlite3_file *f) {
  WbFile *p = (WbFile *) f;
  int rc = wb_flush(p);
  if (p->db != 0 && p->db->wal == p) p->db->wal = 0;
  if (p->wal != 0 && p->wal->db == p) p->wal->db = 0;
  int rc2 = p->real->pMethods->xClose(p->real);
  sqlite3_free(p->buf);
  p->buf = 0;
  return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read (sqlite3_file *f, void *z, int n, sqlite3_int64 off) {
  WbFile *p = (WbFile *) f;
  int rc = wb_flush(p);
  if (rc != SQLITE_OK) return rc;
  return p->real->pMethods->xRead(p->real, z, n, off);
}

static int wb_write (sqlite3_file *f, const void *z, int n, sqlite3_int64 off) {
  WbFile *p = (WbFile *) f;
  int rc;
  if (!p->isWal) return p->real->pMethods->xWrite(p->real, z, n, off);
  WB_COUNT(wb_writes);
  if (p->len > 0 && (off != p->start + p->len || n > WB_CAP - p->len)) {
    rc = wb_flush(p);
    if (rc != SQLITE_OK) return rc;
  }
  if (off == 0) p->hwm = 0; /* a new WAL header: the WAL starts over */
  if (off < p->hwm || n > WB_CAP) {
    /* A rewrite of what is already written (in the file, or flushed just above), or too long. */
    WB_COUNT(wb_through);
    if (off + n > p->hwm) p->hwm = off + n;
    return p->real->pMethods->xWrite(p->real, z, n, off);
  }
  p->hwm = off + n;
  if (p->buf == 0) {
    p->buf = sqlite3_malloc(WB_CAP);
    if (p->buf == 0) return p->real->pMethods->xWrite(p->real, z, n, off);
  }
  if (p->len == 0) p->start = off;
  memcpy(p->buf + p->len, z, n);
  p->len += n;
  if (n == WB_FRAME_HEADER) {
    /* A frame header: bytes 4..7 are the database size in pages for a commit frame, 0 otherwise. */
    const unsigned char *h = (const unsigned char *) z;
    p->commitFrame = (h[4] | h[5] | h[6] | h[7]) != 0;
    return SQLITE_OK;
  }
  if (p->commitFrame) {
    p->commitFrame = 0;
    return wb_flush(p);
  }
  return SQLITE_OK;
}

static int wb_truncate (sqlite3_file *f, sqlite3_int64 size) {
  WbFile *p = (WbFile *) f;
  int rc = wb_flush(p);
  if (rc != SQLITE_OK) return rc;
  return p->real->pMethods->xTruncate(p->real, size);
}

static int wb_sync (sqlite3_file *f, int flags) {
  WbFile *p = (WbFile *) f;
  int rc = wb_flush(p);
  if (rc != SQLITE_OK) return rc;
  return p->real->pMethods->xSync(p->real, flags);
}

static int wb_file_size (sqlite3_file *f, sqlite3_int64 *size) {
  WbFile *p = (WbFile *) f;
  int rc = wb_flush(p);
  if (rc != SQLITE_OK) return rc;
  return p->real->pMethods->xFileSize(p->real, size);
}

static int wb_lock (sqlite3_file *f, int lock) { WbFile *p = (WbFile *) f; return p->real->pMethods->xLock(p->real, lock); }
static int wb_unlock (sqlite3_file *f, int lock) { WbFile *p = (WbFile *) f; return p->real->pMethods->xUnlock(p->real, lock); }
static int wb_check_reserved (sqlite3_file *f, int *out) { WbFile *p = (WbFile *) f; return p->real->pMethods->xCheckReservedLock(p->real, out); }

static int wb_file_control (sqlite3_file *f, int op, void *arg) {
  WbFile *p = (WbFile *) f;
  int rc = wb_flush(p);
  if (rc != SQLITE_OK) return rc;
  return p->real->pMethods->xFileControl(p->real, op, arg);
}

static int wb_sector_size (sqlite3_file *f) { WbFile *p = (WbFile *) f; return p->real->pMethods->xSectorSize(p->real); }
static int wb_device (sqlite3_file *f) { WbFile *p = (WbFile *) f; return p->real->pMethods->xDeviceCharacteristics(p->real); }

/* Shared memory and memory maps belong to database files (SQLite maps no WAL). */
static int wb_shm_map (sqlite3_file *f, int pg, int sz, int extend, void volatile **pp) {
  WbFile *p = (WbFile *) f;
  if (p->real->pMethods->iVersion < 2) return SQLITE_IOERR_SHMMAP;
  return p->real->pMethods->xShmMap(p->real, pg, sz, extend, pp);
}
/* WAL_WRITE_LOCK is shm lock 0 (sqlite3.c). Released: whatever the WAL still gathers
   belongs to a transaction that did not commit (a commit writes its frames first); it is
   written while the lock is held, never later over another writer's frames. */
static int wb_shm_lock (sqlite3_file *f, int offset, int n, int flags) {
  WbFile *p = (WbFile *) f;
  if (p->real->pMethods->iVersion < 2) return SQLITE_IOERR_SHMLOCK;
  if (p->wal != 0 && (flags & SQLITE_SHM_UNLOCK) != 0 && (flags & SQLITE_SHM_EXCLUSIVE) != 0 && offset <= 0 && offset + n > 0) {
    (void) wb_flush(p->wal);
  }
  return p->real->pMethods->xShmLock(p->real, offset, n, flags);
}
/* Called as the WAL index header is published: the WAL's frames are in the file first. */
static void wb_shm_barrier (sqlite3_file *f) {
  WbFile *p = (WbFile *) f;
  if (p->wal != 0) (void) wb_flush(p->wal);
  if (p->real->pMethods->iVersion >= 2) p->real->pMethods->xShmBarrier(p->real);
}
static int wb_shm_unmap (sqlite3_file *f, int del) {
  WbFile *p = (WbFile *) f;
  if (p->real->pMethods->iVersion < 2) return SQLITE_OK;
  return p->real->pMethods->xShmUnmap(p->real, del);
}
static int wb_fetch (sqlite3_file *f, sqlite3_int64 off, int n, void **pp) {
  WbFile *p = (WbFile *) f;
  *pp = 0;
  if (p->real->pMethods->iVersion < 3) return SQLITE_OK;
  int rc = wb_flush(p);
  if (rc != SQLITE_OK) return rc;
  return p->real->pMethods->xFetch(p->real, off, n, pp);
}
static int wb_unfetch (sqlite3_file *f, sqlite3_int64 off, void *ptr) {
  WbFile *p = (WbFile *) f;
  if (p->real->pMethods->iVersion < 3) return SQLITE_OK;
  return p->real->pMethods->xUnfetch(p->real, off, ptr);
}

static const sqlite3_io_methods wb_methods = {
  3, wb_close, wb_read, wb_write, wb_truncate, wb_sync, wb_file_size, wb_lock, wb_unlock,
  wb_check_reserved, wb_file_control, wb_sector_size, wb_device,
  wb_shm_map, wb_shm_lock, wb_shm_barrier, wb_shm_unmap, wb_fetch, wb_unfetch
};

/* A WAL and its database file are wrapped; every other file is the default VFS's own,
   opened into the same memory. */
static int wb_open (sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *out) {
  (void) vfs;
  int wal = (flags & SQLITE_OPEN_WAL) != 0;
  if (!wal && (flags & SQLITE_OPEN_MAIN_DB) == 0) return wb_real->xOpen(wb_real, name, f, flags, out);
  WbFile *p = (WbFile *) f;
  memset(p, 0, sizeof(WbFile));
  p->real = (sqlite3_file *) &p[1];
  int rc = wb_real->xOpen(wb_real, name, p->real, flags, out);
  if (rc != SQLITE_OK) {
    p->base.pMethods = 0;
    return rc;
  }
  p->base.pMethods = &wb_methods;
  if (wal) {
    p->isWal = 1;
    WB_COUNT(wb_wal_opens);
    sqlite3_file *db = sqlite3_database_file_object(name);
    if (db != 0 && db->pMethods == &wb_methods) {
      p->db = (WbFile *) db;
      p->db->wal = p;
    }
  }
  return SQLITE_OK;
}

static int wb_delete (sqlite3_vfs *v, const char *name, int sync) { (void) v; return wb_real->xDelete(wb_real, name, sync); }
static int wb_access (sqlite3_vfs *v, const char *name, int flags, int *out) { (void) v; return wb_real->xAccess(wb_real, name, flags, out); }
static int wb_full_pathname (sqlite3_vfs *v, const char *name, int n, char *out) { (void) v; return wb_real->xFullPathname(wb_real, name, n, out); }
static void *wb_dl_open (sqlite3_vfs *v, const char *name) { (void) v; return wb_real->xDlOpen(wb_real, name); }
static void wb_dl_error (sqlite3_vfs *v, int n, char *msg) { (void) v; wb_real->xDlError(wb_real, n, msg); }
static void (*wb_dl_sym (sqlite3_vfs *v, void *h, const char *sym))(void) { (void) v; return wb_real->xDlSym(wb_real, h, sym); }
static void wb_dl_close (sqlite3_vfs *v, void *h) { (void) v; wb_real->xDlClose(wb_real, h); }
static int wb_randomness (sqlite3_vfs *v, int n, char *out) { (void) v; return wb_real->xRandomness(wb_real, n, out); }
static int wb_sleep (sqlite3_vfs *v, int us) { (void) v; return wb_real->xSleep(wb_real, us); }
static int wb_current_time (sqlite3_vfs *v, double *t) { (void) v; return wb_real->xCurrentTime(wb_real, t); }
static int wb_last_error (sqlite3_vfs *v, int n, char *msg) { (void) v; return wb_real->xGetLastError(wb_real, n, msg); }
static int wb_current_time64 (sqlite3_vfs *v, sqlite3_int64 *t) { (void) v; return wb_real->xCurrentTimeInt64(wb_real, t); }
static int wb_set_syscall (sqlite3_vfs *v, const char *name, sqlite3_syscall_ptr fn) { (void) v; return wb_real->xSetSystemCall(wb_real, name, fn); }
static sqlite3_syscall_ptr wb_get_syscall (sqlite3_vfs *v, const char *name) { (void) v; return wb_real->xGetSystemCall(wb_real, name); }
static const char *wb_next_syscall (sqlite3_vfs *v, const char *name) { (void) v; return wb_real->xNextSystemCall(wb_real, name); }

/** SELECT bucketfs_walbuf(): 'writes flushes wal-opens through' of this process (tests, the bench). */
static void wb_stats (sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void) argc; (void) argv;
  char *s = sqlite3_mprintf("%llu %llu %llu %llu",
    (unsigned long long) __atomic_load_n(&wb_writes, __ATOMIC_RELAXED),
    (unsigned long long) __atomic_load_n(&wb_flushes, __ATOMIC_RELAXED),
    (unsigned long long) __atomic_load_n(&wb_wal_opens, __ATOMIC_RELAXED),
    (unsigned long long) __atomic_load_n(&wb_through, __ATOMIC_RELAXED));
  sqlite3_result_text(ctx, s, -1, sqlite3_free);
}

static int wb_connection (sqlite3 *db, char **err, const sqlite3_api_routines *api) {
  (void) err; (void) api;
  return sqlite3_create_function(db, "bucketfs_walbuf", 0, SQLITE_UTF8, 0, wb_stats, 0, 0);
}

#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_walbuf_init (sqlite3 *db, char **err, const sqlite3_api_routines *api) {
  SQLITE_EXTENSION_INIT2(api);
  (void) err;
  static int registered = 0; /* loaded by one thread (src/meta/db.ts), once; the flag guards a second load */
  if (__atomic_exchange_n(&registered, 1, __ATOMIC_ACQ_REL) == 0 && sqlite3_vfs_find(WB_VFS_NAME) == 0) {
    sqlite3_vfs *real = sqlite3_vfs_find(0);
    if (real == 0) return SQLITE_ERROR;
    if (real->iVersion < 3) return SQLITE_ERROR;
    wb_real = real;
    memset(&wb_vfs, 0, sizeof wb_vfs);
    wb_vfs.iVersion = 3;
    wb_vfs.szOsFile = (int) ((sizeof(WbFile) + (size_t) real->szOsFile + 7) & ~(size_t) 7);
    wb_vfs.mxPathname = real->mxPathname;
    wb_vfs.zName = WB_VFS_NAME;
    wb_vfs.xOpen = wb_open;
    wb_vfs.xDelete = wb_delete;
    wb_vfs.xAccess = wb_access;
    wb_vfs.xFullPathname = wb_full_pathname;
    wb_vfs.xDlOpen = wb_dl_open;
    wb_vfs.xDlError = wb_dl_error;
    wb_vfs.xDlSym = wb_dl_sym;
    wb_vfs.xDlClose = wb_dl_close;
    wb_vfs.xRandomness = wb_randomness;
    wb_vfs.xSleep = wb_sleep;
    wb_vfs.xCurrentTime = wb_current_time;
    wb_vfs.xGetLastError = wb_last_error;
    wb_vfs.xCurrentTimeInt64 = wb_current_time64;
    wb_vfs.xSetSystemCall = wb_set_syscall;
    wb_vfs.xGetSystemCall = wb_get_syscall;
    wb_vfs.xNextSystemCall = wb_next_syscall;
    int rc = sqlite3_vfs_register(&wb_vfs, 1);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_auto_extension((void (*)(void)) wb_connection);
    if (rc != SQLITE_OK) return rc;
  }
  int rc = wb_connection(db, 0, api);
  return rc == SQLITE_OK ? SQLITE_OK_LOAD_PERMANENTLY : rc;
}
