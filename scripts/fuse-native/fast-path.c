#include <sched.h>
#include <sys/mman.h>
// bucketfs: attributes answered on the FUSE thread. JavaScript puts the exact
// attributes of the files a readdir listed (put); a getattr (the kernel's lookup)
// of such a path is then answered here without a round trip to JavaScript, until
// the entry's time is up or an op changes it. After every op that may change
// anything, the op's paths and their ancestors are forgotten (rename and rmdir also
// forget everything under their paths, lazily: see the tree forgets below) before the op
// is answered. An entry with mode 0
// says the name is missing: its getattr is answered ENOENT (JavaScript puts one when it
// answered a lookup so, and any op that makes the name forgets it like any entry).
// Each forget moves the epoch on, and the forget log (below) keeps the last ones: a
// put whose listing began before a forget that touched what it puts is refused, so
// nothing computed before a change can be put after it. Entries belong to one mount (its fuse_thread_t, which
// JavaScript holds as a Buffer); a forget reaches every mount's entries.
#define BUCKETFS_ATTR_SLOTS 16384
// The handle JavaScript gave (an int32); bit 32 of info->fh marks one whose writes may be staged.
#define BUCKETFS_STAGE_BIT (1ULL << 32)
// Bit 33 marks a file opened read-only (without O_TRUNC): its close (FLUSH) has nothing
// to do, and is answered here (the vfs's flush of such a handle returns at once too).
// rsync opens each file it made read-only to set its mode: one round trip to JavaScript
// less per file.
#define BUCKETFS_QUIET_BIT (1ULL << 33)
static uint64_t bucketfs_quiet_flushes = 0;
/** Whether open flags read only: no write access and no O_TRUNC (which empties the file). */
static int bucketfs_reads_only (int flags) { return (flags & O_ACCMODE) == O_RDONLY && (flags & O_TRUNC) == 0; }
#define BUCKETFS_FH(info) ((info)->fh & 0xffffffffULL)
#define BUCKETFS_ATTR_MAX 65536
typedef struct bucketfs_attr_s {
  struct bucketfs_attr_s *next;
  const void *owner;
  uint64_t hash;
  uint64_t expires_ms;
  uint64_t epoch; // known good at this epoch (its put's, or a later check's)
  uint32_t ints[18];
  size_t len;
  char path[];
} bucketfs_attr_t;
static bucketfs_attr_t *bucketfs_attrs[BUCKETFS_ATTR_SLOTS];
static uint32_t bucketfs_attrs_count = 0;
static uint64_t bucketfs_attrs_epoch = 0;
static uint64_t bucketfs_attrs_hits = 0;
static pthread_mutex_t bucketfs_attr_lock = PTHREAD_MUTEX_INITIALIZER;

// The file-data windows (below) share the lock and the epoch.
static void bucketfs_windows_forget_locked (const char *path, int tree);
static void bucketfs_windows_release (const void *owner, uint64_t fh);
static int bucketfs_read_answer (const void *owner, struct fuse_file_info *info, char *buf, size_t len, off_t offset, int *res);
// The listings put ahead (below) share them too.
static void bucketfs_lists_forget_locked (const char *path, int tree);
// So do the writes staged on the FUSE thread (below).
static int bucketfs_stage_answer (fuse_thread_locals_t *l, int *res);

static uint64_t bucketfs_hash (const char *s, size_t n) {
  uint64_t h = 14695981039346656037ULL;
  for (size_t i = 0; i < n; i++) { h ^= (unsigned char) s[i]; h *= 1099511628211ULL; }
  return h;
}

static uint64_t bucketfs_now_ms (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

// bucketfs: a set of 64-bit hashes (open addressing, at most half full; 0 marks an
// empty slot, so a hash of 0 is kept as 1). The full directories' names and the marks
// below use it.
typedef struct { uint64_t *slots; uint32_t count, cap; } bucketfs_set_t;

static uint64_t bucketfs_set_hash (const char *s, size_t n) {
  uint64_t h = bucketfs_hash(s, n);
  return h == 0 ? 1 : h;
}

static int bucketfs_set_has (const bucketfs_set_t *set, uint64_t h) {
  if (set->cap == 0) return 0;
  for (uint32_t i = (uint32_t) (h % set->cap);; i = (i + 1) % set->cap) {
    if (set->slots[i] == 0) return 0;
    if (set->slots[i] == h) return 1;
  }
}

/** Adds h, growing the set up to max hashes; 0 when it would pass max or memory ran out. */
static int bucketfs_set_add (bucketfs_set_t *set, uint64_t h, uint32_t max) {
  if (bucketfs_set_has(set, h)) return 1;
  if ((set->count + 1) * 2 > set->cap) {
    uint32_t cap = set->cap == 0 ? 16 : set->cap * 2;
    uint64_t *slots = cap / 2 > max ? NULL : calloc(cap, sizeof(uint64_t));
    if (slots == NULL) return 0;
    for (uint32_t i = 0; i < set->cap; i++) {
      if (set->slots[i] == 0) continue;
      uint32_t j = (uint32_t) (set->slots[i] % cap);
      while (slots[j] != 0) j = (j + 1) % cap;
      slots[j] = set->slots[i];
    }
    free(set->slots);
    set->slots = slots;
    set->cap = cap;
  }
  uint32_t i = (uint32_t) (h % set->cap);
  while (set->slots[i] != 0) i = (i + 1) % set->cap;
  set->slots[i] = h;
  set->count++;
  return 1;
}

static void bucketfs_set_clear (bucketfs_set_t *set) {
  free(set->slots);
  set->slots = NULL;
  set->count = set->cap = 0;
}

// bucketfs: the directories entries may lie under. Each entry put marks every directory
// above it (by a hash of its path); the marks go only when the table is emptied. A
// rename or rmdir is a tree forget (below) only where one of its paths is marked: a
// file's rename (rsync's last step for every file) finds nothing marked and removes just
// its own entries. Two paths of one hash only cost a tree forget.
#define BUCKETFS_ABOVE_MAX 65536
static bucketfs_set_t bucketfs_above = { NULL, 0, 0 };
static int bucketfs_above_unknown = 0; // out of room or memory: every path may have entries under it

/** An entry of p[0..n) is about to be put: every directory above it is marked. */
static void bucketfs_above_put_locked (const char *p, size_t n) {
  for (size_t i = n; i > 1 && !bucketfs_above_unknown;) {
    do i--; while (i > 0 && p[i] != '/');
    if (i == 0) break;
    if (!bucketfs_set_add(&bucketfs_above, bucketfs_set_hash(p, i), BUCKETFS_ABOVE_MAX)) bucketfs_above_unknown = 1;
  }
}

/** Whether entries may lie under p[0..n) (strictly). */
static int bucketfs_above_may_locked (const char *p, size_t n) {
  return bucketfs_above_unknown || n <= 1 || bucketfs_set_has(&bucketfs_above, bucketfs_set_hash(p, n));
}

static void bucketfs_attr_empty_locked (void) {
  for (size_t i = 0; i < BUCKETFS_ATTR_SLOTS; i++) {
    bucketfs_attr_t *e = bucketfs_attrs[i];
    while (e != NULL) { bucketfs_attr_t *next = e->next; free(e); e = next; }
    bucketfs_attrs[i] = NULL;
  }
  bucketfs_attrs_count = 0;
  bucketfs_set_clear(&bucketfs_above);
  bucketfs_above_unknown = 0;
}

/** The owner's entry of path[0..n), unlinked from its chain when `take`. */
static bucketfs_attr_t *bucketfs_attr_find_locked (const void *owner, const char *path, size_t n, int take) {
  uint64_t h = bucketfs_hash(path, n);
  bucketfs_attr_t **at = &bucketfs_attrs[h % BUCKETFS_ATTR_SLOTS];
  for (bucketfs_attr_t *e = *at; e != NULL; at = &e->next, e = e->next) {
    if (e->owner == owner && e->hash == h && e->len == n && memcmp(e->path, path, n) == 0) {
      if (take) { *at = e->next; bucketfs_attrs_count--; }
      return e;
    }
  }
  return NULL;
}

/** Removes every mount's entry of path[0..n). */
static void bucketfs_attr_remove_locked (const char *path, size_t n) {
  uint64_t h = bucketfs_hash(path, n);
  bucketfs_attr_t **at = &bucketfs_attrs[h % BUCKETFS_ATTR_SLOTS];
  while (*at != NULL) {
    bucketfs_attr_t *e = *at;
    if (e->hash == h && e->len == n && memcmp(e->path, path, n) == 0) {
      *at = e->next;
      bucketfs_attrs_count--;
      free(e);
    } else {
      at = &e->next;
    }
  }
}

/** Whether p[0..len) is dir[0..n) or lies under it. */
static int bucketfs_within (const char *p, size_t len, const char *dir, size_t n) {
  return len >= n && memcmp(p, dir, n) == 0 && (len == n || p[n] == '/');
}

/** Removes path[0..n) (or, with `tree`, its parent) and every ancestor above it. */
static void bucketfs_attr_remove_up_locked (const char *path, size_t n, int tree) {
  if (tree) do n--; while (n > 0 && path[n] != '/'); // the path itself went with its tree
  while (n > 0) {
    bucketfs_attr_remove_locked(path, n);
    do n--; while (n > 0 && path[n] != '/');
  }
}

/** Puts e (path, len, hash, owner set) in the table, good from now, in place of the owner's entry of its path. */
static void bucketfs_attr_insert_locked (bucketfs_attr_t *e) {
  free(bucketfs_attr_find_locked(e->owner, e->path, e->len, 1));
  bucketfs_above_put_locked(e->path, e->len);
  e->epoch = bucketfs_attrs_epoch;
  bucketfs_attr_t **slot = &bucketfs_attrs[e->hash % BUCKETFS_ATTR_SLOTS];
  e->next = *slot;
  *slot = e;
  bucketfs_attrs_count++;
}

// bucketfs: the forget log. The last BUCKETFS_LOG forgets, each with the epoch it moved
// to, its paths and the thread whose op made it. A put computed at an older epoch is
// refused only when a forget since then touched what it puts (or the log no longer
// reaches back to it): with two programs at work (rsync's generator looking names up
// while its receiver writes others) a put is not lost to a change of another name.
#define BUCKETFS_LOG 256
typedef struct {
  uint64_t epoch; // the epoch this forget moved to (0: never used)
  char *path;     // NULL: everything was forgotten
  char *dest;
  int tree;
  const void *by; // the FUSE thread whose op forgot, or NULL
} bucketfs_forgot_t;
static bucketfs_forgot_t bucketfs_log[BUCKETFS_LOG];

// Writes answered on the FUSE thread and not yet applied by JavaScript (see "writes
// staged on the FUSE thread" below): while there are any, nothing is put (every put
// counts as touched), since what JavaScript computed may not hold them yet.
static uint64_t bucketfs_staged_pending = 0;
static uint64_t bucketfs_staged_writes = 0; // staged ever
static size_t bucketfs_staged_bytes = 0; // staged and not yet applied

/** Whether a forget of x (with `tree`) forgot the entry of p[0..n): p is x or above it, or lies under x in a tree forget. */
static int bucketfs_forgot_entry (const char *x, int tree, const char *p, size_t n) {
  size_t xn = strlen(x);
  return bucketfs_within(x, xn, p, n) || (tree && bucketfs_within(p, n, x, xn));
}

/**
 * Whether a forget after `epoch` (other than those of thread `except`) may have touched
 * p[0..n): its entry (`children` 0), or, with `children`, the names in directory p
 * (something under it changed, or p itself moved or went). Also yes when the log does
 * not reach back to epoch.
 */
static int bucketfs_touched_since_locked (uint64_t epoch, const char *p, size_t n, int children, const void *except) {
  if (bucketfs_staged_pending > 0) return 1;
  if (epoch >= bucketfs_attrs_epoch) return 0;
  if (bucketfs_attrs_epoch - epoch > BUCKETFS_LOG) return 1;
  for (uint64_t e = epoch + 1; e <= bucketfs_attrs_epoch; e++) {
    bucketfs_forgot_t *f = &bucketfs_log[e % BUCKETFS_LOG];
    if (f->epoch != e) return 1;
    if (except != NULL && f->by == except) continue;
    if (f->path == NULL) return 1;
    const char *xs[2] = { f->path, f->dest };
    for (int i = 0; i < 2; i++) {
      const char *x = xs[i];
      if (x == NULL) continue;
      if (!children) {
        if (bucketfs_forgot_entry(x, f->tree, p, n)) return 1;
      } else {
        size_t xn = strlen(x);
        if ((xn > n && bucketfs_within(x, xn, p, n)) || (f->tree && bucketfs_within(p, n, x, xn))) return 1;
      }
    }
  }
  return 0;
}

// bucketfs: tree forgets. A rename or rmdir of a directory entries may lie under does not
// walk the table for them: with 5,000 entries held (a walk of the bench's tree) that walk
// took 130-560 µs of every directory rename, on the FUSE thread before the kernel had its
// answer. The forget removes the entries of its own paths and their ancestors, and notes
// its epoch here (its paths are in the forget log). An entry put before it is checked
// when it would answer: if a tree forget since its epoch covered its path, or the notes
// or the log no longer reach back to its epoch, it goes; else it is good at the current
// epoch, so it is checked once per tree forget.
#define BUCKETFS_TREES 64
static uint64_t bucketfs_trees[BUCKETFS_TREES]; // the epochs of the last tree forgets, by bucketfs_trees_n % BUCKETFS_TREES
static uint64_t bucketfs_trees_n = 0; // tree forgets ever noted

/** Whether no tree forget since e's epoch covered its path (then e is good at the current epoch). */
static int bucketfs_attr_current_locked (bucketfs_attr_t *e) {
  uint64_t held = bucketfs_trees_n < BUCKETFS_TREES ? bucketfs_trees_n : BUCKETFS_TREES;
  for (uint64_t k = 1; k <= held; k++) {
    uint64_t t = bucketfs_trees[(bucketfs_trees_n - k) % BUCKETFS_TREES];
    if (t <= e->epoch) break;
    bucketfs_forgot_t *f = &bucketfs_log[t % BUCKETFS_LOG];
    if (f->epoch != t || f->path == NULL) return 0;
    if (bucketfs_within(e->path, e->len, f->path, strlen(f->path))) return 0;
    if (f->dest != NULL && bucketfs_within(e->path, e->len, f->dest, strlen(f->dest))) return 0;
    if (k == held && bucketfs_trees_n > BUCKETFS_TREES) return 0; // older ones are no longer noted
  }
  e->epoch = bucketfs_attrs_epoch;
  return 1;
}

// bucketfs: directories whose every name is known. JavaScript puts one when its mkdir
// made it (empty) in a key directory, or with all its names when a lookup in a small one
// found nothing (src/mount/adapter.ts); each op of the mount that names something in it
// (create, mkdir, symlink, rename onto, and, to stay simple, any other) adds that name
// before it is answered, and nothing takes a name out. Until its time is up, a lookup of
// a name it does not hold is answered ENOENT here: tar and rsync look every name up
// before they make it. Names are held as hashes: two names of one hash only send a
// lookup to JavaScript. A rename or rmdir of it or above it, or a forget of everything,
// drops it.
#define BUCKETFS_FULL_MAX 256
typedef struct bucketfs_full_s {
  struct bucketfs_full_s *next;
  const void *owner;
  uint64_t expires_ms;
  bucketfs_set_t names; // hashes of its names
  size_t max_name; // longer names are the vfs's to refuse (ENAMETOOLONG)
  size_t len;
  char path[];
} bucketfs_full_t;
static bucketfs_full_t *bucketfs_fulls = NULL; // newest first
static uint32_t bucketfs_fulls_count = 0;
static uint64_t bucketfs_full_hits = 0;

/** Unlinks and frees every full directory `cond` says yes to (lock held). */
#define BUCKETFS_DROP_FULLS(cond) do {\
  bucketfs_full_t **at = &bucketfs_fulls;\
  while (*at != NULL) {\
    bucketfs_full_t *fd = *at;\
    if (cond) { *at = fd->next; bucketfs_fulls_count--; bucketfs_set_clear(&fd->names); free(fd); }\
    else at = &fd->next;\
  }\
} while (0)

/** x's name goes into its directory, wherever that is full (every mount's); those whose time is up go. */
static void bucketfs_fulls_name_locked (const char *x) {
  const char *slash = strrchr(x, '/');
  if (slash == NULL || slash == x) return;
  size_t dn = (size_t) (slash - x);
  uint64_t h = bucketfs_set_hash(slash + 1, strlen(slash + 1));
  uint64_t now = bucketfs_now_ms();
  BUCKETFS_DROP_FULLS(now >= fd->expires_ms || (fd->len == dn && memcmp(fd->path, x, dn) == 0 && !bucketfs_set_add(&fd->names, h, UINT32_MAX / 4)));
}

/**
 * Forgets everything (path NULL), or path, dest (a rename's, else NULL) and each of
 * their ancestors, and with `tree` everything under them too (a directory renamed or
 * removed); the file-data windows of the same paths go with them, and their names go
 * into the full directories that hold them. One forget: the epoch moves on by one, and
 * the log keeps it, with `by`, the FUSE thread whose op made it (or NULL).
 */
static void bucketfs_attr_forget (const char *path, const char *dest, int tree, const void *by) {
  char *pcopy = path != NULL ? strdup(path) : NULL;
  char *dcopy = path != NULL && dest != NULL ? strdup(dest) : NULL;
  int noted = 0; // a tree forget with entries perhaps under its paths, checked lazily
  pthread_mutex_lock(&bucketfs_attr_lock);
  bucketfs_windows_forget_locked(path, tree);
  if (dest != NULL) bucketfs_windows_forget_locked(dest, tree);
  bucketfs_lists_forget_locked(path, tree);
  if (dest != NULL) bucketfs_lists_forget_locked(dest, tree);
  if (path == NULL) {
    bucketfs_attr_empty_locked();
    BUCKETFS_DROP_FULLS(1);
  } else {
    if (bucketfs_attrs_count > 0) {
      size_t n = strlen(path), dn = dest != NULL ? strlen(dest) : 0;
      if (tree) {
        bucketfs_attr_remove_locked(path, n);
        if (dest != NULL) bucketfs_attr_remove_locked(dest, dn);
        noted = bucketfs_above_may_locked(path, n) || (dest != NULL && bucketfs_above_may_locked(dest, dn));
      }
      bucketfs_attr_remove_up_locked(path, n, tree);
      if (dest != NULL) bucketfs_attr_remove_up_locked(dest, dn, tree);
    }
    if (bucketfs_fulls != NULL) {
      if (tree) {
        size_t n = strlen(path), dn = dest != NULL ? strlen(dest) : 0;
        BUCKETFS_DROP_FULLS(bucketfs_within(fd->path, fd->len, path, n) || (dest != NULL && bucketfs_within(fd->path, fd->len, dest, dn)));
      }
      bucketfs_fulls_name_locked(path);
      if (dest != NULL) bucketfs_fulls_name_locked(dest);
    }
  }
  bucketfs_attrs_epoch++;
  bucketfs_forgot_t *f = &bucketfs_log[bucketfs_attrs_epoch % BUCKETFS_LOG];
  free(f->path);
  free(f->dest);
  f->epoch = bucketfs_attrs_epoch;
  f->tree = tree;
  f->by = by;
  // Out of memory: logged as a forget of everything, which refuses every put across it.
  f->path = path != NULL && pcopy != NULL && (dest == NULL || dcopy != NULL) ? pcopy : NULL;
  f->dest = f->path != NULL ? dcopy : NULL;
  if (f->path == NULL) { free(pcopy); free(dcopy); }
  if (noted) bucketfs_trees[bucketfs_trees_n++ % BUCKETFS_TREES] = bucketfs_attrs_epoch;
  pthread_mutex_unlock(&bucketfs_attr_lock);
}

static int bucketfs_attr_reads (uint32_t op) {
  return op == op_getattr || op == op_fgetattr || op == op_access || op == op_statfs || op == op_readdir ||
    op == op_opendir || op == op_releasedir || op == op_readlink || op == op_getxattr || op == op_listxattr ||
    op == op_read || op == op_fsyncdir || op == op_init;
}

/**
 * A getattr answered from the entries: 1 with *res 0 and *stat filled (or *res -ENOENT: a
 * missing name), or 0. An opendir too, as the vfs answers it from getattr: 0 (the handle
 * stays 0, as JavaScript's is), -ENOTDIR or -ENOENT.
 */
/** A lookup of a name its full directory does not hold: 1 with *res -ENOENT, else 0 (lock held). */
static int bucketfs_full_answer_locked (const void *owner, const char *path, int *res) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL || slash == path || slash[1] == 0) return 0;
  size_t dn = (size_t) (slash - path), nn = strlen(slash + 1);
  uint64_t now = bucketfs_now_ms();
  for (bucketfs_full_t *d = bucketfs_fulls; d != NULL; d = d->next) {
    if (d->owner != owner || d->len != dn || memcmp(d->path, path, dn) != 0) continue;
    if (now >= d->expires_ms || nn > d->max_name) return 0;
    if (bucketfs_set_has(&d->names, bucketfs_set_hash(slash + 1, nn))) return 0;
    *res = -ENOENT;
    bucketfs_full_hits++;
    return 1;
  }
  return 0;
}

static int bucketfs_attr_answer (uint32_t op, const void *owner, const char *path, struct stat *stat, int *res) {
  if ((op != op_getattr && op != op_opendir) || path == NULL) return 0;
  int hit = 0;
  pthread_mutex_lock(&bucketfs_attr_lock);
  if (bucketfs_attrs_count > 0 || bucketfs_fulls != NULL) {
    size_t n = strlen(path);
    bucketfs_attr_t *e = bucketfs_attrs_count > 0 ? bucketfs_attr_find_locked(owner, path, n, 0) : NULL;
    if (e != NULL) {
      if (bucketfs_now_ms() < e->expires_ms && bucketfs_attr_current_locked(e)) {
        if (e->ints[0] == 0) {
          *res = -ENOENT;
        } else if (op == op_opendir) {
          *res = S_ISDIR(e->ints[0]) ? 0 : -ENOTDIR;
        } else {
          populate_stat(e->ints, stat);
          *res = 0;
        }
        bucketfs_attrs_hits++;
        hit = 1;
      } else {
        free(bucketfs_attr_find_locked(owner, path, n, 1));
      }
    }
  }
  if (!hit && bucketfs_fulls != NULL) hit = bucketfs_full_answer_locked(owner, path, res);
  pthread_mutex_unlock(&bucketfs_attr_lock);
  return hit;
}

// bucketfs: answers that carry attributes. libfuse's high-level API asks getattr of a
// path right after it created or changed it (setattr, create, mkdir, symlink), on the
// same thread, to fill its reply. JavaScript answers those ops with the attributes it
// computed after the change (bucketfs_then_attrs, given the op's token, which notes the
// epoch at the op's start). They hold only if no forget since, but the op's own, touched
// the path (the forget log); then that next getattr of the
// same path on the same thread is answered from them, and they are put in the attribute
// cache like a listing's (the kernel often asks again before the next change: chown's getattr).
// The close (flush) and release of a file answer its attributes too, once it holds nothing
// unsaved: a program often looks a file up right after closing it (rsync, to set its times).
// Any other op on the thread drops them from the thread. Attributes of mode 0 say the
// path is missing after the op (a rename's source): that getattr is answered ENOENT.
static uint64_t bucketfs_then_hits = 0;

/** At every op's start (FUSE thread): its sequence number; a getattr the last op put attributes for is answered (*res). */
static int bucketfs_then_answer (fuse_thread_locals_t *l, int *res) {
  int hit = 0;
  pthread_mutex_lock(&bucketfs_attr_lock);
  uint64_t seq = ++l->bucketfs_seq;
  if (l->bucketfs_then_path != NULL) {
    if ((l->op == op_getattr || l->op == op_fgetattr) && l->path != NULL && l->stat != NULL &&
        l->bucketfs_then_seq + 1 == seq && bucketfs_now_ms() < l->bucketfs_then_expires_ms &&
        strcmp(l->path, l->bucketfs_then_path) == 0 &&
        !bucketfs_touched_since_locked(l->bucketfs_then_epoch, l->path, strlen(l->path), 0, NULL)) {
      if (l->bucketfs_then_ints[0] == 0) {
        *res = -ENOENT;
      } else {
        populate_stat(l->bucketfs_then_ints, l->stat);
        *res = 0;
      }
      bucketfs_then_hits++;
      hit = 1;
    }
    free(l->bucketfs_then_path);
    l->bucketfs_then_path = NULL;
  }
  pthread_mutex_unlock(&bucketfs_attr_lock);
  return hit;
}

/** After the op's forgets (FUSE thread): its attributes hold from this epoch if no other op's forget touched their path since they were given. */
static void bucketfs_then_after (fuse_thread_locals_t *l) {
  pthread_mutex_lock(&bucketfs_attr_lock);
  l->bucketfs_done_seq = l->bucketfs_seq; // answered: attributes given later are refused
  if (l->bucketfs_then_path != NULL && l->bucketfs_then_seq == l->bucketfs_seq) {
    size_t tn = strlen(l->bucketfs_then_path);
    if (!bucketfs_touched_since_locked(l->bucketfs_then_epoch, l->bucketfs_then_path, tn, 0, l)) {
      l->bucketfs_then_epoch = bucketfs_attrs_epoch;
      // The thread's next op may come much later (a close or release is not followed by
      // libfuse's getattr), and changes made outside the mount are in no forget log: the
      // attributes answer for as long as the cache's entry, no longer.
      l->bucketfs_then_expires_ms = bucketfs_now_ms() + 1000;
      size_t n = tn;
      bucketfs_attr_t *e = malloc(sizeof(bucketfs_attr_t) + n + 1);
      if (e != NULL) {
        if (bucketfs_attrs_count >= BUCKETFS_ATTR_MAX) bucketfs_attr_empty_locked();
        e->owner = l->fuse;
        memcpy(e->path, l->bucketfs_then_path, n + 1);
        e->len = n;
        e->hash = bucketfs_hash(e->path, n);
        e->expires_ms = l->bucketfs_then_expires_ms;
        memcpy(e->ints, l->bucketfs_then_ints, sizeof(e->ints));
        bucketfs_attr_insert_locked(e);
      }
    } else {
      free(l->bucketfs_then_path); // something else changed meanwhile
      l->bucketfs_then_path = NULL;
    }
  }
  pthread_mutex_unlock(&bucketfs_attr_lock);
}

/**
 * bucketfs_op_token(): [thread locals, sequence number, epoch] of the op JavaScript is
 * being called for (read synchronously, at the op's start: attributes computed after
 * it hold only if nothing but the op's own after-hook forgets anything from then on).
 */
NAPI_METHOD(bucketfs_op_token) {
  napi_value out, v;
  fuse_thread_locals_t *l = bucketfs_caller_locals;
  if (l == NULL) {
    napi_get_undefined(env, &out);
    return out;
  }
  napi_create_array_with_length(env, 3, &out);
  napi_get_reference_value(env, l->self, &v);
  napi_set_element(env, out, 0, v);
  pthread_mutex_lock(&bucketfs_attr_lock);
  double seq = (double) l->bucketfs_seq;
  double epoch = (double) bucketfs_attrs_epoch;
  pthread_mutex_unlock(&bucketfs_attr_lock);
  napi_create_double(env, seq, &v);
  napi_set_element(env, out, 1, v);
  napi_create_double(env, epoch, &v);
  napi_set_element(env, out, 2, v);
  return out;
}

/**
 * bucketfs_then_attrs(locals, seq, epoch, path, ints): the attributes of path after the
 * op the token [locals, seq, epoch] names (18 uint32s), given before that op is answered.
 * Ignored once the op was answered (by fuse-native's timeout) or the thread moved on.
 */
NAPI_METHOD(bucketfs_then_attrs) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  fuse_thread_locals_t *l = NULL;
  size_t llen = 0;
  double seq = 0;
  double epoch = 0;
  char path[4096];
  size_t plen = 0;
  napi_typedarray_type type;
  size_t ints_len = 0;
  void *ints_data = NULL;
  if (argc < 5 ||
      napi_get_buffer_info(env, argv[0], (void **) &l, &llen) != napi_ok || llen != sizeof(fuse_thread_locals_t) ||
      napi_get_value_double(env, argv[1], &seq) != napi_ok ||
      napi_get_value_double(env, argv[2], &epoch) != napi_ok ||
      napi_get_value_string_utf8(env, argv[3], path, sizeof(path), &plen) != napi_ok ||
      napi_get_typedarray_info(env, argv[4], &type, &ints_len, &ints_data, NULL, NULL) != napi_ok ||
      type != napi_uint32_array || ints_len < 18 || plen + 1 >= sizeof(path)) {
    napi_throw_type_error(env, NULL, "bucketfs_then_attrs(locals, seq, epoch, path, ints)");
    return NULL;
  }
  char *copy = strdup(path);
  if (copy == NULL) return NULL;
  pthread_mutex_lock(&bucketfs_attr_lock);
  if ((double) l->bucketfs_seq == seq && l->bucketfs_done_seq != l->bucketfs_seq) {
    free(l->bucketfs_then_path);
    l->bucketfs_then_path = copy;
    copy = NULL;
    l->bucketfs_then_seq = l->bucketfs_seq;
    l->bucketfs_then_epoch = (uint64_t) epoch; // checked and moved on by the op's after-hook
    memcpy(l->bucketfs_then_ints, ints_data, sizeof(l->bucketfs_then_ints));
  }
  pthread_mutex_unlock(&bucketfs_attr_lock);
  free(copy);
  return NULL;
}

static int bucketfs_list_answer (fuse_thread_locals_t *l, int *res);

/**
 * An op answered here, without JavaScript: 1 with *res set, or 0. A getattr (or opendir) of a path a
 * readdir listed; a releasedir; the close (flush) of a file opened read-only; a read inside the windows put for its handle; a getxattr of a name outside user.* (the kernel asks for
 * security.capability before every write), which the vfs refuses with ENOTSUP
 * whatever the path (src/vfs/xattr.ts classify).
 */
static int bucketfs_answer (fuse_thread_locals_t *l, int *res) {
  if (bucketfs_then_answer(l, res)) return 1;
  if (l->op == op_getxattr && l->name != NULL && strncmp(l->name, "user.", 5) != 0) {
    *res = -ENOTSUP;
    return 1;
  }
  // The vfs keeps nothing per open directory (opendir's handle is 0): nothing to release.
  if (l->op == op_releasedir) {
    *res = 0;
    return 1;
  }
  if (l->op == op_flush && l->info != NULL && (l->info->fh & BUCKETFS_QUIET_BIT) != 0) {
    __atomic_add_fetch(&bucketfs_quiet_flushes, 1, __ATOMIC_RELAXED);
    *res = 0;
    return 1;
  }
  if (l->op == op_readdir) return bucketfs_list_answer(l, res);
  if (l->op == op_write) return bucketfs_stage_answer(l, res);
  if (bucketfs_attr_answer(l->op, l->fuse, l->path, l->stat, res)) return 1;
  if (l->op == op_read) return bucketfs_read_answer(l->fuse, l->info, (char *) l->buf, l->len, l->offset, res);
  return 0;
}

/** Whether path is a bucket: /name, one component. */
static int bucketfs_is_bucket (const char *path) {
  return path != NULL && path[0] == '/' && path[1] != 0 && strchr(path + 1, '/') == NULL;
}

/** After JavaScript answered an op: forget what it may have changed (and a released handle's windows). */
static void bucketfs_attr_after (uint32_t op, const void *owner, const char *path, const char *dest, struct fuse_file_info *info, const void *by) {
  if (bucketfs_attr_reads(op)) return;
  // (Its path may not be the one its windows were put under: libfuse renames an open
  // file that is unlinked or replaced to .fuse_hiddenNNN.)
  if (op == op_release && info != NULL) bucketfs_windows_release(owner, BUCKETFS_FH(info));
  if (op == op_open && info != NULL && bucketfs_reads_only(info->flags)) return;
  // A rename or rmdir may move or remove a whole directory: what lay under it goes too.
  // So does a chmod, chown or utimens of a bucket: the directories implied in it (with no
  // marker) have its owner, mode and time.
  int tree = op == op_rename || op == op_rmdir ||
    ((op == op_chmod || op == op_chown || op == op_utimens) && bucketfs_is_bucket(path));
  bucketfs_attr_forget(path, path == NULL ? NULL : dest, tree, by);
}

/** The mount a Buffer names: fuse-native's fuse_thread_t, which JavaScript holds as a Buffer. */
static int bucketfs_owner_of (napi_env env, napi_value value, void **owner) {
  size_t len = 0;
  return napi_get_buffer_info(env, value, owner, &len) == napi_ok && len == sizeof(fuse_thread_t);
}

/** bucketfs_attr_epoch(): the epoch a listing begins at. */
NAPI_METHOD(bucketfs_attr_epoch) {
  pthread_mutex_lock(&bucketfs_attr_lock);
  double epoch = (double) bucketfs_attrs_epoch;
  pthread_mutex_unlock(&bucketfs_attr_lock);
  napi_value out;
  napi_create_double(env, epoch, &out);
  return out;
}

/**
 * bucketfs_attr_put(thread, epoch, dir, names, ints, ttlMs): the attributes of dir/name
 * for each name (18 uint32s each in ints, fuse-native's stat format) in the mount whose
 * fuse_thread_t is the Buffer `thread`, unless a forget since epoch touched it.
 * Answers how many were put.
 */
NAPI_METHOD(bucketfs_attr_put) {
  size_t argc = 6;
  napi_value argv[6];
  void *owner = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_value out;
  double epoch = 0;
  uint32_t ttl = 0, count = 0;
  char dir[4096];
  size_t dirlen = 0;
  napi_typedarray_type type;
  size_t ints_len = 0;
  void *ints_data = NULL;
  if (argc < 6 ||
      !bucketfs_owner_of(env, argv[0], &owner) ||
      napi_get_value_double(env, argv[1], &epoch) != napi_ok ||
      napi_get_value_string_utf8(env, argv[2], dir, sizeof(dir), &dirlen) != napi_ok ||
      napi_get_array_length(env, argv[3], &count) != napi_ok ||
      napi_get_typedarray_info(env, argv[4], &type, &ints_len, &ints_data, NULL, NULL) != napi_ok ||
      napi_get_value_uint32(env, argv[5], &ttl) != napi_ok ||
      type != napi_uint32_array || ints_len < (size_t) count * 18 || dirlen + 2 >= sizeof(dir)) {
    napi_throw_type_error(env, NULL, "bucketfs_attr_put(thread, epoch, dir, names, ints, ttlMs)");
    return NULL;
  }
  if (dirlen == 1) dirlen = 0; // "/" + name
  bucketfs_attr_t **made = calloc(count > 0 ? count : 1, sizeof(bucketfs_attr_t *));
  if (made == NULL) {
    napi_create_uint32(env, 0, &out);
    return out;
  }
  uint32_t n = 0;
  uint64_t expires = bucketfs_now_ms() + ttl;
  for (uint32_t i = 0; i < count; i++) {
    napi_value name;
    char buf[4096];
    size_t len = 0;
    if (napi_get_element(env, argv[3], i, &name) != napi_ok ||
        napi_get_value_string_utf8(env, name, buf, sizeof(buf), &len) != napi_ok ||
        len == 0 || dirlen + 1 + len + 1 >= sizeof(buf)) continue;
    bucketfs_attr_t *e = malloc(sizeof(bucketfs_attr_t) + dirlen + 1 + len + 1);
    if (e == NULL) break;
    e->owner = owner;
    memcpy(e->path, dir, dirlen);
    e->path[dirlen] = '/';
    memcpy(e->path + dirlen + 1, buf, len);
    e->len = dirlen + 1 + len;
    e->path[e->len] = 0;
    e->hash = bucketfs_hash(e->path, e->len);
    e->expires_ms = expires;
    memcpy(e->ints, (uint32_t *) ints_data + (size_t) i * 18, sizeof(e->ints));
    made[n++] = e;
  }
  uint32_t put = 0;
  pthread_mutex_lock(&bucketfs_attr_lock);
  // Refused where a forget since epoch touched it: for a few names each is asked, for
  // a listing the directory's names as a whole.
  uint64_t since = epoch < 0 ? 0 : (uint64_t) epoch;
  int whole = since > bucketfs_attrs_epoch ||
    (n > 8 && bucketfs_touched_since_locked(since, dir, dirlen, 1, NULL));
  if (!whole) {
    if (bucketfs_attrs_count + n > BUCKETFS_ATTR_MAX) bucketfs_attr_empty_locked();
    for (uint32_t i = 0; i < n; i++) {
      bucketfs_attr_t *e = made[i];
      if (n <= 8 && bucketfs_touched_since_locked(since, e->path, e->len, 0, NULL)) continue;
      bucketfs_attr_insert_locked(e);
      made[i] = NULL;
      put++;
    }
  }
  pthread_mutex_unlock(&bucketfs_attr_lock);
  for (uint32_t i = 0; i < n; i++) free(made[i]);
  free(made);
  napi_create_uint32(env, put, &out);
  return out;
}

/**
 * bucketfs_full_put(thread, epoch, dir, names, ttlMs, maxName): directory dir of the mount
 * whose fuse_thread_t is the Buffer `thread` holds these names and no other (an mkdir made
 * it empty), for ttlMs, as far as names of up to maxName bytes go; refused (false) when a forget since epoch touched a name in it or
 * moved it. Keeps at most BUCKETFS_FULL_MAX directories, dropping the oldest.
 */
NAPI_METHOD(bucketfs_full_put) {
  size_t argc = 6;
  napi_value argv[6];
  void *owner = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double epoch = 0;
  uint32_t ttl = 0, count = 0, max_name = 0;
  char dir[4096];
  size_t dirlen = 0;
  bool is_array = false;
  if (argc < 6 ||
      !bucketfs_owner_of(env, argv[0], &owner) ||
      napi_get_value_double(env, argv[1], &epoch) != napi_ok ||
      napi_get_value_string_utf8(env, argv[2], dir, sizeof(dir), &dirlen) != napi_ok ||
      napi_get_value_uint32(env, argv[5], &max_name) != napi_ok ||
      napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[3], &count) != napi_ok ||
      napi_get_value_uint32(env, argv[4], &ttl) != napi_ok ||
      dirlen + 2 >= sizeof(dir) || dirlen < 2 || dir[0] != '/' || dir[dirlen - 1] == '/' || count > (1u << 24)) {
    napi_throw_type_error(env, NULL, "bucketfs_full_put(thread, epoch, dir, names, ttlMs, maxName)");
    return NULL;
  }
  napi_value out;
  bucketfs_full_t *d = malloc(sizeof(bucketfs_full_t) + dirlen + 1);
  if (d == NULL) {
    napi_get_boolean(env, false, &out);
    return out;
  }
  d->owner = owner;
  d->expires_ms = bucketfs_now_ms() + ttl;
  d->names = (bucketfs_set_t) { NULL, 0, 0 };
  d->max_name = max_name;
  d->len = dirlen;
  memcpy(d->path, dir, dirlen + 1);
  for (uint32_t i = 0; i < count; i++) {
    napi_value name;
    char buf[4096];
    size_t len = 0;
    if (napi_get_element(env, argv[3], i, &name) != napi_ok ||
        napi_get_value_string_utf8(env, name, buf, sizeof(buf), &len) != napi_ok) {
      bucketfs_set_clear(&d->names); free(d);
      napi_throw_type_error(env, NULL, "bucketfs_full_put: names must be strings");
      return NULL;
    }
    if (!bucketfs_set_add(&d->names, bucketfs_set_hash(buf, len), UINT32_MAX / 4)) {
      bucketfs_set_clear(&d->names); free(d);
      napi_get_boolean(env, false, &out);
      return out;
    }
  }
  int put = 0;
  pthread_mutex_lock(&bucketfs_attr_lock);
  uint64_t since = epoch < 0 ? 0 : (uint64_t) epoch;
  if (since <= bucketfs_attrs_epoch && !bucketfs_touched_since_locked(since, dir, dirlen, 1, NULL)) {
    BUCKETFS_DROP_FULLS(fd->owner == owner && fd->len == dirlen && memcmp(fd->path, dir, dirlen) == 0);
    if (bucketfs_fulls_count >= BUCKETFS_FULL_MAX) {
      bucketfs_full_t **at = &bucketfs_fulls;
      while ((*at)->next != NULL) at = &(*at)->next;
      bucketfs_full_t *old = *at;
      *at = NULL;
      bucketfs_fulls_count--;
      bucketfs_set_clear(&old->names); free(old);
    }
    d->next = bucketfs_fulls;
    bucketfs_fulls = d;
    bucketfs_fulls_count++;
    put = 1;
  }
  pthread_mutex_unlock(&bucketfs_attr_lock);
  if (!put) { bucketfs_set_clear(&d->names); free(d); }
  napi_get_boolean(env, put, &out);
  return out;
}

/** bucketfs_attr_forget(): forgets every entry (a change JavaScript made on its own). */
NAPI_METHOD(bucketfs_attr_forget_all) {
  bucketfs_attr_forget(NULL, NULL, 0, NULL);
  return NULL;
}

// bucketfs: windows of file data answered on the FUSE thread. JavaScript puts verified
// bytes [off, off+len) of what an open handle reads (read-only, no write session) a
// few MiB ahead of a sequential reader; the kernel's reads inside them are copied
// here without a round trip to JavaScript. When a reader comes within BUCKETFS_LOW of
// the end of what is put, JavaScript is told (a thread-safe call) to put more. The
// windows of a path go when an op forgets it (a write, truncate, open for writing,
// close, ...), everything when a rename or rmdir does, a handle's at its release;
// a put is refused when anything was forgotten since its epoch.
#define BUCKETFS_WINDOWS_MAX_BYTES (64u * 1024 * 1024)
// (A cold 1 GiB dd: with 4 MiB, 21–68 of its 1,024 reads ran past what was put,
// each 4 ms in JavaScript; with 8, 2–6.) What is behind a reader goes past BUCKETFS_BEHIND,
// more than the kernel's read-ahead: requests of one read-ahead, answered by several
// threads, come out of order, and a window dropped under a later one sends it to JavaScript.
#define BUCKETFS_LOW (8u * 1024 * 1024)
#define BUCKETFS_BEHIND (4u * 1024 * 1024)
#define BUCKETFS_MOUNTS 16
typedef struct bucketfs_window_s {
  struct bucketfs_window_s *next;
  const void *owner;
  uint64_t fh;
  uint64_t off;
  size_t len;
  int eof;
  int asked;
  char *path;
  char *data;  // inside mem, or just after the struct (mem NULL)
  void *mem;   // a chunk read whole (bucketfs_read_load), or NULL
  size_t charge; // the memory it holds, counted against BUCKETFS_WINDOWS_MAX_BYTES (a load holds its whole chunk, however short the window)
  int loading; // its bytes are being read (bucketfs_read_load): a read of it waits
  int orphan;  // dropped while loading: its load frees it
} bucketfs_window_t;
static bucketfs_window_t *bucketfs_windows = NULL; // newest first
static size_t bucketfs_window_bytes = 0;
static uint64_t bucketfs_window_hits = 0;
// The max_pages the last INIT answer (of any mount) gave the kernel (0: none; see "requests of up to 1 MiB").
static uint32_t bucketfs_big_answered = 0;
static uint32_t bucketfs_big_offered = 0; // whether the last INIT offered FUSE_MAX_PAGES
// INIT answers the kernel has taken (it takes one as it is written): what the mount's
// own settings wait for, as the INIT would undo them (src/mount/mount.ts readAhead).
static uint32_t bucketfs_inits_answered = 0;
// A thread-safe function of each mount (the read feeder below, the list reader, the write
// stager): set once mounted, taken out under bucketfs_attr_lock and released at unmount;
// called only under that lock. `queued`: what the mount's function is to take and has not
// (the stager's staged writes), kept under the lock. `closed`: the stager takes no more
// writes (bucketfs_stage_stop), though what it has is still taken.
typedef struct { const void *owner; napi_threadsafe_function fn; uint32_t queued; uint32_t closed; } bucketfs_mount_fn_t;
static bucketfs_mount_fn_t bucketfs_feeders[BUCKETFS_MOUNTS];

/** The mount's slot in slots, or NULL (bucketfs_attr_lock held). */
static bucketfs_mount_fn_t *bucketfs_mount_slot_locked (bucketfs_mount_fn_t *slots, const void *owner) {
  for (int i = 0; i < BUCKETFS_MOUNTS; i++) {
    if (slots[i].owner == owner) return &slots[i];
  }
  return NULL;
}

/** The mount's function in slots, or NULL (bucketfs_attr_lock held). */
static napi_threadsafe_function bucketfs_mount_fn_locked (bucketfs_mount_fn_t *slots, const void *owner) {
  bucketfs_mount_fn_t *slot = bucketfs_mount_slot_locked(slots, owner);
  return slot == NULL ? NULL : slot->fn;
}

/** what(thread, fn): fn, called through `call`, becomes the mount's function in slots; answers false when there is no room. */
static napi_value bucketfs_mount_fn_set (napi_env env, napi_callback_info info, bucketfs_mount_fn_t *slots, const char *what, napi_threadsafe_function_call_js call) {
  size_t argc = 2;
  napi_value argv[2], name;
  void *owner = NULL;
  char text[128];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !bucketfs_owner_of(env, argv[0], &owner)) {
    snprintf(text, sizeof(text), "%s(thread, fn)", what);
    napi_throw_type_error(env, NULL, text);
    return NULL;
  }
  napi_threadsafe_function tsfn;
  napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, call, &tsfn) != napi_ok) {
    snprintf(text, sizeof(text), "%s: no thread-safe function", what);
    napi_throw_error(env, NULL, text);
    return NULL;
  }
  napi_unref_threadsafe_function(env, tsfn); // never keeps the process alive
  int placed = 0;
  pthread_mutex_lock(&bucketfs_attr_lock);
  for (int i = 0; i < BUCKETFS_MOUNTS && !placed; i++) {
    if (slots[i].owner == NULL) { slots[i].owner = owner; slots[i].fn = tsfn; slots[i].queued = 0; slots[i].closed = 0; placed = 1; }
  }
  pthread_mutex_unlock(&bucketfs_attr_lock);
  if (!placed) napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
  napi_value out;
  napi_get_boolean(env, placed, &out);
  return out;
}

/** what(thread), at unmount: drop(owner) runs under the lock, and the mount's function in slots goes. */
static napi_value bucketfs_mount_fn_end (napi_env env, napi_callback_info info, bucketfs_mount_fn_t *slots, const char *what, void (*drop)(const void *owner)) {
  size_t argc = 1;
  napi_value argv[1];
  void *owner = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !bucketfs_owner_of(env, argv[0], &owner)) {
    char text[128];
    snprintf(text, sizeof(text), "%s(thread)", what);
    napi_throw_type_error(env, NULL, text);
    return NULL;
  }
  napi_threadsafe_function tsfn = NULL;
  pthread_mutex_lock(&bucketfs_attr_lock);
  drop(owner);
  for (int i = 0; i < BUCKETFS_MOUNTS; i++) {
    if (slots[i].owner == owner) { tsfn = slots[i].fn; slots[i].owner = NULL; slots[i].fn = NULL; slots[i].queued = 0; slots[i].closed = 0; }
  }
  pthread_mutex_unlock(&bucketfs_attr_lock);
  if (tsfn != NULL) napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
  return NULL;
}

typedef struct { uint64_t fh; uint64_t from; } bucketfs_low_t;

// Free halves of the arena kept resident for the next loads: a fresh page costs faults and zeroing.
#define BUCKETFS_SPARES 16
static pthread_mutex_t bucketfs_spares_lock = PTHREAD_MUTEX_INITIALIZER;

// Chunk loads of more than 256 KiB read into transparent huge pages. A 1 MiB O_DIRECT read
// into 4 KiB pages is 256 memory segments: past the disk's max_segments (254 on the
// 2-vCPU Firecracker guest's virtio disk) the kernel cuts it in two requests, and the
// disk took about one such read at a time (block tracepoints over a cold 1 GiB dd: 0 or
// 1 reads in flight for 75-80 % of it, 1.0-1.3 GB/s). In a huge page a load is one
// segment, and the disk takes 16 at once: 1.5-1.7 GB/s. A 2 MiB page holds two loads
// of up to 1 MiB. The arena is reserved once and faulted in as used (in 4 KiB pages
// where huge pages are off); it holds what the 64 MiB of windows need, with room over.
// Free halves of resident pages are kept for reuse, the last freed first; past
// BUCKETFS_SPARES of them, a page whose two halves are both free goes back to the kernel.
// A smaller load, or one finding the arena full (or not made), takes ordinary memory,
// freed after it.
#define BUCKETFS_HALF ((size_t) 1 << 20)
#define BUCKETFS_HUGE_PAGE ((size_t) 2 << 20)
#define BUCKETFS_ARENA_HALVES 160
#define BUCKETFS_ARENA_MIN ((size_t) 256 << 10)
static char *bucketfs_arena = NULL;
static int bucketfs_arena_state = 0; // 0 not made yet, 1 made, -1 could not be
static uint16_t bucketfs_arena_stack[BUCKETFS_ARENA_HALVES]; // the free halves
static int bucketfs_arena_free_n = 0;
static uint8_t bucketfs_arena_free[BUCKETFS_ARENA_HALVES];
static uint8_t bucketfs_arena_resident[BUCKETFS_ARENA_HALVES / 2];
static int bucketfs_arena_free_resident = 0; // free halves in resident pages

/** A free half of the arena (made at the first call), or NULL (bucketfs_spares_lock held). */
static void *bucketfs_arena_take_locked (void) {
  if (bucketfs_arena_state == 0) {
    size_t bytes = BUCKETFS_ARENA_HALVES * BUCKETFS_HALF;
    char *raw = mmap(NULL, bytes + BUCKETFS_HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) {
      bucketfs_arena_state = -1;
      return NULL;
    }
    char *arena = (char *) (((uintptr_t) raw + BUCKETFS_HUGE_PAGE - 1) & ~(uintptr_t) (BUCKETFS_HUGE_PAGE - 1));
    madvise(arena, bytes, MADV_HUGEPAGE); // (refused where THP is off: 4 KiB pages then)
    __atomic_store_n(&bucketfs_arena, arena, __ATOMIC_RELEASE);
    for (int i = BUCKETFS_ARENA_HALVES - 1; i >= 0; i--) {
      bucketfs_arena_stack[bucketfs_arena_free_n++] = (uint16_t) i;
      bucketfs_arena_free[i] = 1;
    }
    bucketfs_arena_state = 1;
  }
  if (bucketfs_arena_state != 1 || bucketfs_arena_free_n == 0) return NULL;
  int i = bucketfs_arena_stack[--bucketfs_arena_free_n];
  bucketfs_arena_free[i] = 0;
  if (bucketfs_arena_resident[i / 2]) {
    bucketfs_arena_free_resident--;
  } else { // faulted in as it is used: its other half, if free, is then a resident one
    bucketfs_arena_resident[i / 2] = 1;
    bucketfs_arena_free_resident += bucketfs_arena_free[i ^ 1];
  }
  return bucketfs_arena + (size_t) i * BUCKETFS_HALF;
}

/** Whether mem is a half of the arena. */
static int bucketfs_in_arena (const void *mem) {
  const char *arena = __atomic_load_n(&bucketfs_arena, __ATOMIC_ACQUIRE);
  return arena != NULL && (const char *) mem >= arena && (const char *) mem < arena + BUCKETFS_ARENA_HALVES * BUCKETFS_HALF;
}

/** A half goes back; its page too, when both halves are free and enough pages stay resident (bucketfs_spares_lock held). */
static void bucketfs_arena_give_locked (void *mem) {
  int i = (int) (((char *) mem - bucketfs_arena) / BUCKETFS_HALF);
  if (bucketfs_arena_free[i]) return; // (never given twice; were it, the stack would overflow)
  bucketfs_arena_stack[bucketfs_arena_free_n++] = (uint16_t) i;
  bucketfs_arena_free[i] = 1;
  bucketfs_arena_free_resident++;
  int page = i / 2;
  if (bucketfs_arena_free_resident > BUCKETFS_SPARES && bucketfs_arena_free[i ^ 1]) {
    // (Under the lock: no load can take a half of the page while it is given back.)
    madvise(bucketfs_arena + (size_t) page * BUCKETFS_HUGE_PAGE, BUCKETFS_HUGE_PAGE, MADV_DONTNEED);
    bucketfs_arena_resident[page] = 0;
    bucketfs_arena_free_resident -= 2;
  }
}

/** Whether a load of cap bytes reads into a half of the arena. */
static int bucketfs_arena_fits (size_t cap) { return cap > BUCKETFS_ARENA_MIN && cap <= BUCKETFS_HALF; }

/** What a load of cap bytes holds while its window is kept: a half of the arena, or cap. */
static size_t bucketfs_load_charge (size_t cap) { return bucketfs_arena_fits(cap) ? BUCKETFS_HALF : cap; }

/** Aligned memory for a chunk read whole: cap bytes, a half of the arena when it fits there. */
static void *bucketfs_spare_take (size_t cap) {
  void *mem = NULL;
  if (bucketfs_arena_fits(cap)) {
    pthread_mutex_lock(&bucketfs_spares_lock);
    mem = bucketfs_arena_take_locked();
    pthread_mutex_unlock(&bucketfs_spares_lock);
    if (mem != NULL) return mem;
  }
  return posix_memalign(&mem, 4096, cap) == 0 ? mem : NULL;
}

/** Memory from bucketfs_spare_take goes back: a half to the arena, else freed. */
static void bucketfs_spare_give (void *mem) {
  if (mem == NULL) return;
  if (!bucketfs_in_arena(mem)) { free(mem); return; }
  pthread_mutex_lock(&bucketfs_spares_lock);
  bucketfs_arena_give_locked(mem);
  pthread_mutex_unlock(&bucketfs_spares_lock);
}

// Signalled when a load ends (its window put, refused or failed) or its window is dropped.
static pthread_cond_t bucketfs_loaded = PTHREAD_COND_INITIALIZER;

/** Frees a window taken out of the list; one still loading is left to its load (bucketfs_attr_lock held, or never listed). */
static void bucketfs_window_free (bucketfs_window_t *w) {
  if (w->loading) { w->orphan = 1; pthread_cond_broadcast(&bucketfs_loaded); return; }
  free(w->path); bucketfs_spare_give(w->mem); free(w);
}

/** Unlinks and frees every window `drop` says yes to (window lock held). */
#define BUCKETFS_DROP_WINDOWS(cond) do {\
  bucketfs_window_t **at = &bucketfs_windows;\
  while (*at != NULL) {\
    bucketfs_window_t *w = *at;\
    if (cond) { *at = w->next; bucketfs_window_bytes -= w->charge; bucketfs_window_free(w); }\
    else at = &w->next;\
  }\
} while (0)

/** A path's windows go (with `tree`, also those under it; path NULL: every window). Called with bucketfs_attr_lock held. */
static void bucketfs_windows_forget_locked (const char *path, int tree) {
  if (bucketfs_windows == NULL) return;
  if (path == NULL) BUCKETFS_DROP_WINDOWS(1);
  else if (tree) { size_t n = strlen(path); BUCKETFS_DROP_WINDOWS(bucketfs_within(w->path, strlen(w->path), path, n)); }
  else BUCKETFS_DROP_WINDOWS(strcmp(w->path, path) == 0);
}

/** A released handle's windows go. */
static void bucketfs_windows_release (const void *owner, uint64_t fh) {
  pthread_mutex_lock(&bucketfs_attr_lock);
  BUCKETFS_DROP_WINDOWS(w->owner == owner && w->fh == fh);
  pthread_mutex_unlock(&bucketfs_attr_lock);
}

/** The handle's window holding pos, loaded ones first (a loading one only with `loading`). */
static bucketfs_window_t *bucketfs_window_at_locked (const void *owner, uint64_t fh, uint64_t pos, int loading) {
  bucketfs_window_t *found = NULL;
  for (bucketfs_window_t *w = bucketfs_windows; w != NULL; w = w->next) {
    if (w->owner == owner && w->fh == fh && w->off <= pos && pos < w->off + w->len) {
      if (!w->loading) return w;
      if (loading && found == NULL) found = w;
    }
  }
  return found;
}

#define BUCKETFS_LOAD_WAIT_S 5

/**
 * Waits (bucketfs_attr_lock held) while a window the read [pos, end) would be answered
 * from is still loading: its load always ends, put or not. 0 when none is left loading;
 * -1 when one still is after BUCKETFS_LOAD_WAIT_S (JavaScript answers the read).
 */
static int bucketfs_read_wait_locked (const void *owner, uint64_t fh, uint64_t pos, uint64_t end) {
  struct timespec deadline = { 0, 0 };
  for (;;) {
    bucketfs_window_t *busy = NULL;
    for (uint64_t p = pos; p < end && busy == NULL;) {
      bucketfs_window_t *w = bucketfs_window_at_locked(owner, fh, p, 1);
      if (w == NULL) break;
      if (w->loading) busy = w;
      p = w->off + w->len;
    }
    if (busy == NULL) return 0;
    if (deadline.tv_sec == 0) { clock_gettime(CLOCK_REALTIME, &deadline); deadline.tv_sec += BUCKETFS_LOAD_WAIT_S; }
    if (pthread_cond_timedwait(&bucketfs_loaded, &bucketfs_attr_lock, &deadline) == ETIMEDOUT) return -1;
  }
}

/** Where the handle's file ends, when a window holding its end is put; else UINT64_MAX. */
static uint64_t bucketfs_window_eof_locked (const void *owner, uint64_t fh) {
  for (bucketfs_window_t *w = bucketfs_windows; w != NULL; w = w->next) {
    if (w->owner == owner && w->fh == fh && w->eof) return w->off + w->len;
  }
  return UINT64_MAX;
}

/** A read answered from the windows: 1 with *res the byte count, or 0 (JavaScript answers). */
static int bucketfs_read_answer (const void *owner, struct fuse_file_info *info, char *buf, size_t len, off_t offset, int *res) {
  if (info == NULL || offset < 0 || buf == NULL) return 0;
  int answered = 0;
  bucketfs_low_t *low = NULL;
  napi_threadsafe_function feeder = NULL;
  pthread_mutex_lock(&bucketfs_attr_lock);
  if (bucketfs_windows != NULL && bucketfs_read_wait_locked(owner, BUCKETFS_FH(info), (uint64_t) offset, (uint64_t) offset + len) == 0) {
    uint64_t fh = BUCKETFS_FH(info), pos = (uint64_t) offset;
    size_t done = 0;
    bucketfs_window_t *last = NULL;
    while (done < len) {
      bucketfs_window_t *w = bucketfs_window_at_locked(owner, fh, pos, 0);
      if (w == NULL) break;
      size_t n = w->off + w->len - pos;
      if (n > len - done) n = len - done;
      memcpy(buf + done, w->data + (pos - w->off), n);
      done += n;
      pos += n;
      last = w;
    }
    // Whole, or cut at the end of the file (a short answer means end of file to the kernel).
    if (done == len || pos >= bucketfs_window_eof_locked(owner, fh)) {
      answered = 1;
      *res = (int) done;
      bucketfs_window_hits++;
      // What is behind the reader goes; the end of what is put, if near, asks for more.
      uint64_t behind = (uint64_t) offset > BUCKETFS_BEHIND ? (uint64_t) offset - BUCKETFS_BEHIND : 0;
      BUCKETFS_DROP_WINDOWS(w->owner == owner && w->fh == fh && w->off + w->len <= behind);
      bucketfs_window_t *end = NULL;
      for (bucketfs_window_t *w = bucketfs_windows; w != NULL; w = w->next) {
        if (w->owner == owner && w->fh == fh && (end == NULL || w->off > end->off)) end = w;
      }
      if (end != NULL && !end->eof && !end->asked && end->off + end->len - pos < BUCKETFS_LOW) {
        feeder = bucketfs_mount_fn_locked(bucketfs_feeders, owner);
        if (feeder != NULL && (low = malloc(sizeof(bucketfs_low_t))) != NULL) {
          end->asked = 1;
          low->fh = fh;
          low->from = end->off + end->len;
          if (napi_call_threadsafe_function(feeder, low, napi_tsfn_nonblocking) != napi_ok) { free(low); end->asked = 0; }
        }
      }
    }
    (void) last;
  }
  pthread_mutex_unlock(&bucketfs_attr_lock);
  return answered;
}

static void bucketfs_low_call (napi_env env, napi_value fn, void *context, void *data) {
  bucketfs_low_t *low = (bucketfs_low_t *) data;
  if (env != NULL && fn != NULL) {
    napi_value argv[2], undefined;
    napi_create_double(env, (double) low->fh, &argv[0]);
    napi_create_double(env, (double) low->from, &argv[1]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, fn, 2, argv, NULL);
  }
  free(low);
}

/** bucketfs_read_feeder(thread, fn): fn(fh, from) is called when a reader nears the end of what is put. */
NAPI_METHOD(bucketfs_read_feeder) {
  return bucketfs_mount_fn_set(env, info, bucketfs_feeders, "bucketfs_read_feeder", bucketfs_low_call);
}

static void bucketfs_windows_drop_locked (const void *owner) {
  BUCKETFS_DROP_WINDOWS(w->owner == owner);
}

/** bucketfs_read_end(thread): the mount's windows and feeder go (at unmount). */
NAPI_METHOD(bucketfs_read_end) {
  return bucketfs_mount_fn_end(env, info, bucketfs_feeders, "bucketfs_read_end", bucketfs_windows_drop_locked);
}

/**
 * Puts window nw unless anything was forgotten since epoch, or a staged write is not yet
 * applied: 1 when put (the window is the list's), else 0 (the caller frees it). It
 * replaces the handle's window at its offset, unless `keep` and that window is the same
 * (put or loading): then 2, and nw is not put. Past BUCKETFS_WINDOWS_MAX_BYTES the oldest go.
 */
static int bucketfs_window_put (bucketfs_window_t *nw, uint64_t epoch, int keep) {
  int put = 0;
  pthread_mutex_lock(&bucketfs_attr_lock);
  for (bucketfs_window_t *o = bucketfs_windows; keep && o != NULL && put == 0; o = o->next) {
    if (o->owner == nw->owner && o->fh == nw->fh && o->off == nw->off && o->len == nw->len && strcmp(o->path, nw->path) == 0) put = 2;
  }
  if (put == 0 && bucketfs_attrs_epoch == epoch && bucketfs_staged_pending == 0) {
    BUCKETFS_DROP_WINDOWS(w->owner == nw->owner && w->fh == nw->fh && w->off == nw->off);
    // The oldest windows go first (the list is newest first: drop from its end).
    while (bucketfs_window_bytes + nw->charge > BUCKETFS_WINDOWS_MAX_BYTES && bucketfs_windows != NULL) {
      bucketfs_window_t **at = &bucketfs_windows;
      while ((*at)->next != NULL) at = &(*at)->next;
      bucketfs_window_t *old = *at;
      *at = NULL;
      bucketfs_window_bytes -= old->charge;
      bucketfs_window_free(old);
    }
    nw->next = bucketfs_windows;
    bucketfs_windows = nw;
    bucketfs_window_bytes += nw->charge;
    put = 1;
  }
  pthread_mutex_unlock(&bucketfs_attr_lock);
  return put;
}

/**
 * bucketfs_read_put(thread, epoch, fh, path, off, data, eof): bytes [off, off+data.length)
 * of the file `path` that handle fh reads; eof: they end the file. Refused (false) when
 * anything was forgotten since epoch. Older windows go past BUCKETFS_WINDOWS_MAX_BYTES.
 */
NAPI_METHOD(bucketfs_read_put) {
  size_t argc = 7;
  napi_value argv[7];
  void *owner = NULL, *data = NULL;
  size_t len = 0, pathlen = 0;
  double epoch = 0, fh = 0, off = 0;
  bool eof = false;
  char path[4096];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 7 ||
      !bucketfs_owner_of(env, argv[0], &owner) ||
      napi_get_value_double(env, argv[1], &epoch) != napi_ok ||
      napi_get_value_double(env, argv[2], &fh) != napi_ok ||
      napi_get_value_string_utf8(env, argv[3], path, sizeof(path), &pathlen) != napi_ok || pathlen + 1 >= sizeof(path) ||
      napi_get_value_double(env, argv[4], &off) != napi_ok || off < 0 ||
      napi_get_buffer_info(env, argv[5], &data, &len) != napi_ok ||
      napi_get_value_bool(env, argv[6], &eof) != napi_ok) {
    napi_throw_type_error(env, NULL, "bucketfs_read_put(thread, epoch, fh, path, off, data, eof)");
    return NULL;
  }
  napi_value out;
  bucketfs_window_t *w = malloc(sizeof(bucketfs_window_t) + len);
  char *wpath = strdup(path);
  if (w == NULL || wpath == NULL || len > BUCKETFS_WINDOWS_MAX_BYTES) {
    free(w); free(wpath);
    napi_get_boolean(env, false, &out);
    return out;
  }
  w->owner = owner; w->fh = (uint64_t) fh; w->off = (uint64_t) off; w->len = len; w->charge = len; w->eof = eof; w->asked = 0; w->path = wpath;
  w->data = (char *) (w + 1); w->mem = NULL; w->loading = 0; w->orphan = 0;
  memcpy(w->data, data, len);
  int put = bucketfs_window_put(w, (uint64_t) epoch, 0);
  if (!put) bucketfs_window_free(w);
  napi_get_boolean(env, put, &out);
  return out;
}

// bucketfs: a window loaded on libuv's threadpool. Put from JavaScript, a sequential
// reader's every MiB was read, checked against its CRC-32 and copied into a window on
// the main thread (about 0.5 s per GiB: the main thread was what a cold `dd` waited on).
// Here a pool thread reads the chunk file whole (O_DIRECT when the filesystem takes it:
// no page-cache copy), checks its CRC-32 (native/crc32.h) and puts the window straight
// from that memory.
#define BUCKETFS_ALIGN 4096
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  bucketfs_window_t *w; // listed, loading, from bucketfs_read_load until the load ends
  char *file;
  size_t csize;
  uint64_t coff;
  uint32_t crc;
  int res; // 1 put, 0 refused (a forget since epoch), -1 damaged (size or CRC-32), else -errno
} bucketfs_load_t;
static int bucketfs_load_direct = 1; // cleared when the filesystem refuses O_DIRECT
static uint64_t bucketfs_window_loads = 0;

/** The memory a load of a chunk file of csize bytes reads it into: its size in whole aligned blocks (a 1 MiB chunk fits a half of the arena). */
static size_t bucketfs_load_cap (size_t csize) { return csize == 0 ? BUCKETFS_ALIGN : (csize + BUCKETFS_ALIGN - 1) / BUCKETFS_ALIGN * BUCKETFS_ALIGN; }

/**
 * Reads the whole file into mem (cap bytes, aligned); answers the byte count, or -errno. A
 * file that fills mem answers its size when that is larger, so a longer file reads long
 * (damaged), not cut.
 */
static ssize_t bucketfs_load_read (const char *file, void *mem, size_t cap, int direct) {
  int fd = open(file, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
  if (fd < 0) return -errno;
  size_t done = 0;
  for (;;) {
    ssize_t n = pread(fd, (char *) mem + done, cap - done, (off_t) done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { int e = errno; close(fd); return -e; }
    // A short read is the file's end (reading on would be unaligned under O_DIRECT).
    if (n == 0 || (done += (size_t) n) >= cap || done % BUCKETFS_ALIGN != 0) break;
  }
  struct stat st;
  if (done >= cap && fstat(fd, &st) == 0 && st.st_size > 0 && (size_t) st.st_size > done) done = (size_t) st.st_size;
  close(fd);
  return (ssize_t) done;
}

/** The load of window lw ends (bucketfs_attr_lock held): its bytes (mem) when res is 1, else it goes; readers waiting are woken. */
static int bucketfs_load_end_locked (bucketfs_window_t *lw, void *mem, size_t coff, int res) {
  lw->loading = 0;
  if (lw->orphan) {
    res = 0;
    bucketfs_window_free(lw);
  } else if (res != 1) {
    BUCKETFS_DROP_WINDOWS(w == lw);
  } else {
    lw->mem = mem; lw->data = (char *) mem + coff;
    mem = NULL;
    bucketfs_window_loads++;
  }
  if (mem != NULL) bucketfs_spare_give(mem);
  pthread_cond_broadcast(&bucketfs_loaded);
  return res;
}

static void bucketfs_load_run (napi_env env, void *data) {
  (void) env;
  bucketfs_load_t *j = (bucketfs_load_t *) data;
  bucketfs_window_t *lw = j->w;
  pthread_mutex_lock(&bucketfs_attr_lock);
  int orphan = lw->orphan;
  pthread_mutex_unlock(&bucketfs_attr_lock);
  size_t cap = bucketfs_load_cap(j->csize);
  void *mem = NULL;
  int res = 0;
  if (!orphan) {
    mem = bucketfs_spare_take(cap);
    if (mem == NULL) {
      res = -ENOMEM;
    } else {
      int direct = __atomic_load_n(&bucketfs_load_direct, __ATOMIC_RELAXED);
      ssize_t n = bucketfs_load_read(j->file, mem, cap, direct);
      if (n == -EINVAL && direct) {
        __atomic_store_n(&bucketfs_load_direct, 0, __ATOMIC_RELAXED);
        n = bucketfs_load_read(j->file, mem, cap, 0);
      }
      if (n < 0) res = (int) n;
      // (The size first: n may be a longer file's size, past mem.)
      else if ((size_t) n != j->csize || bucketfs_crc32(0, (const unsigned char *) mem, (size_t) n) != j->crc) res = -1;
      else res = 1;
    }
  }
  pthread_mutex_lock(&bucketfs_attr_lock);
  j->res = bucketfs_load_end_locked(lw, mem, (size_t) j->coff, res);
  pthread_mutex_unlock(&bucketfs_attr_lock);
  j->w = NULL;
}

static void bucketfs_load_done (napi_env env, napi_status status, void *data) {
  bucketfs_load_t *j = (bucketfs_load_t *) data;
  napi_value res;
  napi_create_int32(env, status == napi_ok ? j->res : -ECANCELED, &res);
  napi_resolve_deferred(env, j->deferred, res);
  napi_delete_async_work(env, j->work);
  if (j->w != NULL) { // never run (cancelled)
    pthread_mutex_lock(&bucketfs_attr_lock);
    bucketfs_load_end_locked(j->w, NULL, 0, 0);
    pthread_mutex_unlock(&bucketfs_attr_lock);
  }
  free(j->file);
  free(j);
}

/**
 * bucketfs_read_load(thread, epoch, fh, path, off, len, eof, file, csize, coff, crc): as
 * bucketfs_read_put, with the window's bytes [coff, coff+len) of the chunk file `file`
 * (csize bytes, CRC-32 crc), read and checked on the threadpool. Answers a promise of 1
 * (put, or the same window is put or loading already), 0 (refused: a forget since epoch), -1 (the file's size or CRC-32 is not the
 * chunk's) or -errno (it could not be read).
 */
NAPI_METHOD(bucketfs_read_load) {
  size_t argc = 11;
  napi_value argv[11];
  void *owner = NULL;
  size_t pathlen = 0, filelen = 0;
  double epoch = 0, fh = 0, off = 0, len = 0, csize = 0, coff = 0;
  uint32_t crc = 0;
  bool eof = false;
  char path[4096], file[4096];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 11 ||
      !bucketfs_owner_of(env, argv[0], &owner) ||
      napi_get_value_double(env, argv[1], &epoch) != napi_ok ||
      napi_get_value_double(env, argv[2], &fh) != napi_ok ||
      napi_get_value_string_utf8(env, argv[3], path, sizeof(path), &pathlen) != napi_ok || pathlen + 1 >= sizeof(path) ||
      napi_get_value_double(env, argv[4], &off) != napi_ok || off < 0 ||
      napi_get_value_double(env, argv[5], &len) != napi_ok || len <= 0 || len > BUCKETFS_WINDOWS_MAX_BYTES ||
      napi_get_value_bool(env, argv[6], &eof) != napi_ok ||
      napi_get_value_string_utf8(env, argv[7], file, sizeof(file), &filelen) != napi_ok || filelen + 1 >= sizeof(file) ||
      napi_get_value_double(env, argv[8], &csize) != napi_ok || csize < len || csize > BUCKETFS_WINDOWS_MAX_BYTES ||
      napi_get_value_double(env, argv[9], &coff) != napi_ok || coff < 0 || coff + len > csize ||
      napi_get_value_uint32(env, argv[10], &crc) != napi_ok) {
    napi_throw_type_error(env, NULL, "bucketfs_read_load(thread, epoch, fh, path, off, len, eof, file, csize, coff, crc)");
    return NULL;
  }
  bucketfs_load_t *j = calloc(1, sizeof(bucketfs_load_t));
  bucketfs_window_t *w = calloc(1, sizeof(bucketfs_window_t));
  char *wpath = strdup(path), *wfile = strdup(file);
  napi_value promise, name, zero;
  if (j == NULL || w == NULL || wpath == NULL || wfile == NULL) {
    free(j); free(w); free(wpath); free(wfile);
    napi_throw_error(env, "ENOMEM", "bucketfs_read_load: out of memory");
    return NULL;
  }
  w->owner = owner; w->fh = (uint64_t) fh; w->off = (uint64_t) off; w->len = (size_t) len; w->eof = eof; w->path = wpath;
  w->charge = bucketfs_load_charge(bucketfs_load_cap((size_t) csize));
  j->w = w; j->file = wfile; j->csize = (size_t) csize; j->coff = (uint64_t) coff; j->crc = crc;
  napi_create_string_utf8(env, "bucketfs_read_load", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    bucketfs_window_free(w); free(wfile); free(j);
    napi_throw_error(env, NULL, "bucketfs_read_load: no promise");
    return NULL;
  }
  // Listed now, as loading: a read of it waits for its bytes rather than going to JavaScript.
  // The same window put or loading already (a feed started again behind an earlier one) is kept.
  w->loading = 1;
  int put = bucketfs_window_put(w, (uint64_t) epoch, 1);
  if (put != 1) {
    w->loading = 0;
    napi_create_int32(env, put == 2, &zero);
    napi_resolve_deferred(env, j->deferred, zero);
    bucketfs_window_free(w); free(wfile); free(j);
    return promise;
  }
  if (napi_create_async_work(env, NULL, name, bucketfs_load_run, bucketfs_load_done, j, &j->work) != napi_ok) j->work = NULL;
  if (j->work == NULL || napi_queue_async_work(env, j->work) != napi_ok) {
    if (j->work != NULL) napi_delete_async_work(env, j->work);
    pthread_mutex_lock(&bucketfs_attr_lock);
    bucketfs_load_end_locked(w, NULL, 0, 0);
    pthread_mutex_unlock(&bucketfs_attr_lock);
    napi_create_int32(env, 0, &zero);
    napi_resolve_deferred(env, j->deferred, zero);
    free(wfile); free(j);
  }
  return promise;
}

// bucketfs: listings answered on the FUSE thread (listing ahead). When a program lists a
// key directory, JavaScript lists the directories in it ahead of the program
// (src/mount/listing.ts) and puts each listing here: the names and packed stats its
// readdir would answer, '.' and '..' first. The next readdir of such a directory is
// answered from it once, without a round trip, and JavaScript is told (a thread-safe
// call) so that it lists the level below ahead in turn. A listing goes when it has
// answered, when its time is up, and at any forget of its directory, of anything under
// it, or of a tree holding it: any op that may change a name in it (the rule that keeps
// the directory's own entry from going stale). A put is refused when a forget since its
// epoch touched a name in it. At most BUCKETFS_LISTS_MAX listings and
// BUCKETFS_LIST_NAMES names in all are held; the oldest go first.
#define BUCKETFS_LISTS_MAX 256
#define BUCKETFS_LIST_NAMES 16384
#define BUCKETFS_LIST_NAME_MAX 1024 // fuse-native's readdir cuts longer names: those are left to it
typedef struct bucketfs_list_s {
  struct bucketfs_list_s *next;
  const void *owner;
  uint64_t expires_ms;
  uint32_t count;
  uint32_t *ints;  // 18 per name: fuse-native's stat layout
  uint32_t *offs;  // where each name starts in names
  char *names;     // each name ends with a NUL
  size_t len;
  char path[];
} bucketfs_list_t;
static bucketfs_list_t *bucketfs_lists = NULL; // newest first
static uint32_t bucketfs_lists_count = 0;
static uint32_t bucketfs_lists_names = 0;
static uint64_t bucketfs_list_hits = 0;
static bucketfs_mount_fn_t bucketfs_list_readers[BUCKETFS_MOUNTS];

static void bucketfs_list_free (bucketfs_list_t *d) {
  if (d == NULL) return;
  free(d->ints); free(d->offs); free(d->names); free(d);
}

/** Unlinks and frees every listing `cond` says yes to (bucketfs_attr_lock held). */
#define BUCKETFS_DROP_LISTS(cond) do {\
  bucketfs_list_t **at = &bucketfs_lists;\
  while (*at != NULL) {\
    bucketfs_list_t *d = *at;\
    if (cond) { *at = d->next; bucketfs_lists_count--; bucketfs_lists_names -= d->count; bucketfs_list_free(d); }\
    else at = &d->next;\
  }\
} while (0)

/** A forget of path (with `tree`; NULL: of everything): the listings of it, of a directory above it, and (tree) under it go. */
static void bucketfs_lists_forget_locked (const char *path, int tree) {
  if (bucketfs_lists == NULL) return;
  if (path == NULL) { BUCKETFS_DROP_LISTS(1); return; }
  size_t n = strlen(path);
  BUCKETFS_DROP_LISTS(bucketfs_within(path, n, d->path, d->len) || (tree && bucketfs_within(d->path, d->len, path, n)));
}

static void bucketfs_list_read_call (napi_env env, napi_value fn, void *context, void *data) {
  bucketfs_list_t *d = (bucketfs_list_t *) data;
  if (env != NULL && fn != NULL) {
    napi_value argv[1], undefined;
    napi_create_string_utf8(env, d->path, d->len, &argv[0]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, fn, 1, argv, NULL);
  }
  bucketfs_list_free(d);
}

/** A readdir answered from a listing put ahead: 1 with *res 0, or 0 (JavaScript answers). */
static int bucketfs_list_answer (fuse_thread_locals_t *l, int *res) {
  if (l->path == NULL || l->readdir_filler == NULL || l->buf == NULL) return 0;
  bucketfs_list_t *d = NULL;
  size_t n = strlen(l->path);
  pthread_mutex_lock(&bucketfs_attr_lock);
  for (bucketfs_list_t **at = &bucketfs_lists; *at != NULL; at = &(*at)->next) {
    bucketfs_list_t *e = *at;
    if (e->owner != l->fuse || e->len != n || memcmp(e->path, l->path, n) != 0) continue;
    // It answers once (or, past its time, not at all): it leaves the list either way.
    *at = e->next;
    bucketfs_lists_count--;
    bucketfs_lists_names -= e->count;
    if (bucketfs_now_ms() < e->expires_ms) {
      d = e;
      bucketfs_list_hits++;
    } else {
      bucketfs_list_free(e);
    }
    break;
  }
  pthread_mutex_unlock(&bucketfs_attr_lock);
  if (d == NULL) return 0;
  // As fuse-native fills a listing JavaScript answered with packed stats.
  for (uint32_t i = 0; i < d->count; i++) {
    struct stat st;
    populate_stat(d->ints + (size_t) i * 18, &st);
    if (l->readdir_filler((char *) l->buf, d->names + d->offs[i], &st, 0) == 1) break;
  }
  *res = 0;
  // Called under the lock, where bucketfs_list_end takes the reader away before it
  // releases it: a reader released meanwhile is not found, never called.
  pthread_mutex_lock(&bucketfs_attr_lock);
  napi_threadsafe_function reader = bucketfs_mount_fn_locked(bucketfs_list_readers, l->fuse);
  int told = reader != NULL && napi_call_threadsafe_function(reader, d, napi_tsfn_nonblocking) == napi_ok;
  pthread_mutex_unlock(&bucketfs_attr_lock);
  if (!told) bucketfs_list_free(d);
  return 1;
}

/** bucketfs_list_reader(thread, fn): fn(dir) is called when a readdir was answered from the listing put for dir. */
NAPI_METHOD(bucketfs_list_reader) {
  return bucketfs_mount_fn_set(env, info, bucketfs_list_readers, "bucketfs_list_reader", bucketfs_list_read_call);
}

static void bucketfs_lists_drop_locked (const void *owner) {
  BUCKETFS_DROP_LISTS(d->owner == owner);
}

/** bucketfs_list_end(thread): the mount's listings and reader go (at unmount). */
NAPI_METHOD(bucketfs_list_end) {
  return bucketfs_mount_fn_end(env, info, bucketfs_list_readers, "bucketfs_list_end", bucketfs_lists_drop_locked);
}

/**
 * bucketfs_list_put(thread, epoch, dir, names, ints, ttlMs): what a readdir of dir answers
 * in the mount whose fuse_thread_t is the Buffer `thread`: names (with '.' and '..') and
 * their stats (18 uint32s each in ints), for one readdir within ttlMs. Refused (false)
 * when a forget since epoch touched a name in dir or moved it, or a name is too long.
 */
NAPI_METHOD(bucketfs_list_put) {
  size_t argc = 6;
  napi_value argv[6];
  void *owner = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double epoch = 0;
  uint32_t ttl = 0, count = 0;
  char dir[4096];
  size_t dirlen = 0, ints_len = 0;
  void *ints_data = NULL;
  napi_typedarray_type type;
  bool is_array = false;
  if (argc < 6 ||
      !bucketfs_owner_of(env, argv[0], &owner) ||
      napi_get_value_double(env, argv[1], &epoch) != napi_ok ||
      napi_get_value_string_utf8(env, argv[2], dir, sizeof(dir), &dirlen) != napi_ok ||
      napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[3], &count) != napi_ok ||
      napi_get_typedarray_info(env, argv[4], &type, &ints_len, &ints_data, NULL, NULL) != napi_ok ||
      napi_get_value_uint32(env, argv[5], &ttl) != napi_ok ||
      type != napi_uint32_array || ints_len != (size_t) count * 18 ||
      dirlen + 2 >= sizeof(dir) || dirlen < 2 || dir[0] != '/' || dir[dirlen - 1] == '/') {
    napi_throw_type_error(env, NULL, "bucketfs_list_put(thread, epoch, dir, names, ints, ttlMs)");
    return NULL;
  }
  napi_value out;
  bucketfs_list_t *d = count > BUCKETFS_LIST_NAMES ? NULL : calloc(1, sizeof(bucketfs_list_t) + dirlen + 1);
  size_t bytes = 0;
  int fits = d != NULL && (d->ints = malloc(sizeof(uint32_t) * 18 * (count > 0 ? count : 1))) != NULL &&
    (d->offs = malloc(sizeof(uint32_t) * (count > 0 ? count : 1))) != NULL;
  // The names' sizes first, then one block for them all.
  for (uint32_t i = 0; fits && i < count; i++) {
    napi_value name;
    size_t len = 0;
    if (napi_get_element(env, argv[3], i, &name) != napi_ok || napi_get_value_string_utf8(env, name, NULL, 0, &len) != napi_ok) {
      bucketfs_list_free(d);
      napi_throw_type_error(env, NULL, "bucketfs_list_put: names must be strings");
      return NULL;
    }
    if (len >= BUCKETFS_LIST_NAME_MAX) fits = 0;
    bytes += len + 1;
  }
  if (fits && (d->names = malloc(bytes > 0 ? bytes : 1)) == NULL) fits = 0;
  for (uint32_t i = 0, at = 0; fits && i < count; i++) {
    napi_value name;
    size_t len = 0;
    napi_get_element(env, argv[3], i, &name);
    napi_get_value_string_utf8(env, name, d->names + at, bytes - at, &len);
    d->offs[i] = at;
    at += (uint32_t) len + 1;
  }
  if (!fits) {
    bucketfs_list_free(d);
    napi_get_boolean(env, false, &out);
    return out;
  }
  memcpy(d->ints, ints_data, sizeof(uint32_t) * 18 * count);
  d->owner = owner;
  d->count = count;
  d->expires_ms = bucketfs_now_ms() + ttl;
  d->len = dirlen;
  memcpy(d->path, dir, dirlen + 1);
  int put = 0;
  pthread_mutex_lock(&bucketfs_attr_lock);
  uint64_t since = epoch < 0 ? 0 : (uint64_t) epoch;
  if (since <= bucketfs_attrs_epoch && !bucketfs_touched_since_locked(since, dir, dirlen, 1, NULL)) {
    BUCKETFS_DROP_LISTS(d->owner == owner && d->len == dirlen && memcmp(d->path, dir, dirlen) == 0);
    // The oldest go first (the list is newest first: drop from its end).
    while (bucketfs_lists != NULL && (bucketfs_lists_count >= BUCKETFS_LISTS_MAX || bucketfs_lists_names + count > BUCKETFS_LIST_NAMES)) {
      bucketfs_list_t **at = &bucketfs_lists;
      while ((*at)->next != NULL) at = &(*at)->next;
      bucketfs_list_t *old = *at;
      *at = NULL;
      bucketfs_lists_count--;
      bucketfs_lists_names -= old->count;
      bucketfs_list_free(old);
    }
    d->next = bucketfs_lists;
    bucketfs_lists = d;
    bucketfs_lists_count++;
    bucketfs_lists_names += count;
    put = 1;
  }
  pthread_mutex_unlock(&bucketfs_attr_lock);
  if (!put) bucketfs_list_free(d);
  napi_get_boolean(env, put, &out);
  return out;
}

// bucketfs: memory aligned for O_DIRECT. Whole chunks written from such buffers go to
// their chunk files without a copy into the page cache (src/blob/chunks.ts), which on
// this VM cost more CPU than anything else in a sequential write (every new page-cache
// page is a fault in the hypervisor). Not about FUSE: it lives here because this is the
// addon our install already builds.
#define BUCKETFS_ALIGN 4096

static void bucketfs_aligned_free (napi_env env, void *data, void *hint) {
  int64_t adjusted;
  napi_adjust_external_memory(env, -(int64_t) (uintptr_t) hint, &adjusted);
  free(data);
}

/** bucketfs_aligned_buffer(size): an ArrayBuffer of size bytes (zeroed) whose memory starts on a 4096-byte boundary. */
NAPI_METHOD(bucketfs_aligned_buffer) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double size = 0;
  if (argc < 1 || napi_get_value_double(env, argv[0], &size) != napi_ok || !(size >= 1 && size <= (double) (1 << 30))) {
    napi_throw_type_error(env, NULL, "bucketfs_aligned_buffer(size)");
    return NULL;
  }
  size_t n = (size_t) size;
  void *data = NULL;
  if (posix_memalign(&data, BUCKETFS_ALIGN, n) != 0) {
    napi_throw_error(env, "ENOMEM", "bucketfs_aligned_buffer: out of memory");
    return NULL;
  }
  memset(data, 0, n);
  napi_value out;
  if (napi_create_external_arraybuffer(env, data, n, bucketfs_aligned_free, (void *) (uintptr_t) n, &out) != napi_ok) {
    free(data);
    napi_throw_error(env, NULL, "bucketfs_aligned_buffer: cannot make the ArrayBuffer");
    return NULL;
  }
  int64_t adjusted;
  napi_adjust_external_memory(env, (int64_t) n, &adjusted);
  return out;
}

/**
 * bucketfs_fast_stats(): [attribute entries held, getattrs answered here, window bytes
 * held, reads answered here, getattrs answered from an op's answer, full directories
 * held, lookups answered missing from them, listings held, readdirs answered from them,
 * writes staged here, staged writes not yet applied and their bytes, windows loaded on the threadpool,
 * the max_pages the last INIT answer gave the kernel (0: libfuse's 128 KiB requests), whether
 * the last INIT offered FUSE_MAX_PAGES (read by our channel: 0 when libfuse's is used), INIT
 * answers the kernel took through our channel, closes of read-only files answered here].
 */
NAPI_METHOD(bucketfs_fast_stats) {
  pthread_mutex_lock(&bucketfs_attr_lock);
  double counts[17] = { bucketfs_attrs_count, (double) bucketfs_attrs_hits, (double) bucketfs_window_bytes, (double) bucketfs_window_hits, (double) bucketfs_then_hits,
    (double) bucketfs_fulls_count, (double) bucketfs_full_hits, (double) bucketfs_lists_count, (double) bucketfs_list_hits, (double) bucketfs_staged_writes,
    (double) bucketfs_staged_pending, (double) bucketfs_staged_bytes, (double) bucketfs_window_loads,
    (double) __atomic_load_n(&bucketfs_big_answered, __ATOMIC_RELAXED), (double) __atomic_load_n(&bucketfs_big_offered, __ATOMIC_RELAXED),
    (double) __atomic_load_n(&bucketfs_inits_answered, __ATOMIC_RELAXED), (double) __atomic_load_n(&bucketfs_quiet_flushes, __ATOMIC_RELAXED) };
  pthread_mutex_unlock(&bucketfs_attr_lock);
  napi_value out, v;
  napi_create_array_with_length(env, 17, &out);
  for (uint32_t i = 0; i < 17; i++) { napi_create_double(env, counts[i], &v); napi_set_element(env, out, i, v); }
  return out;
}


// bucketfs: writes staged on the FUSE thread (write-behind). A write through a handle
// JavaScript marked (bit 29 of the handle its open or create answered: a regular file
// opened for writing, without O_APPEND) is copied here and answered at once, as a disk
// filesystem answers a write once it is in the page cache; JavaScript applies the staged
// writes in order soon after. Before JavaScript runs any op of the mount, it applies
// what is staged (bucketfs_staged_take, src/mount/fuse.ts), so every op it answers sees
// every write the kernel was told was done; a staged write's own path is forgotten
// (attributes, windows, listings) before its answer, and while any staged write is
// not applied nothing is put (bucketfs_staged_pending). A staged write that fails is
// reported at the handle's next fsync or close, as a failed store behind a write is.
// Bounded: past BUCKETFS_STAGE_MAX bytes not yet applied, or past the largest object,
// a write goes to JavaScript as before (which applies the staged ones first).
#define BUCKETFS_STAGE_MAX ((size_t) 8 << 20)
typedef struct bucketfs_staged_s {
  struct bucketfs_staged_s *next;
  const void *owner;
  uint32_t fh;
  uint64_t offset;
  size_t len;
  char *path;
  char *data; // 4096-aligned (a whole chunk of it is stored with O_DIRECT as it is)
} bucketfs_staged_t;
static bucketfs_staged_t *bucketfs_staged = NULL; // staged, not yet taken, oldest first
static bucketfs_staged_t **bucketfs_staged_end = &bucketfs_staged;
static uint64_t bucketfs_stage_max_end = 0; // a write past this goes to JavaScript (its EFBIG)
static bucketfs_mount_fn_t bucketfs_stagers[BUCKETFS_MOUNTS];

/** The mount's stager while it takes writes (not stopped: bucketfs_stage_stop), else NULL (bucketfs_attr_lock held). */
static bucketfs_mount_fn_t *bucketfs_stager_open_locked (const void *owner) {
  bucketfs_mount_fn_t *slot = bucketfs_mount_slot_locked(bucketfs_stagers, owner);
  return slot == NULL || slot->fn == NULL || slot->closed ? NULL : slot;
}

/** Unlinks the mount's staged writes from the queue, in order; their slot's count goes to 0 (lock held). */
static bucketfs_staged_t *bucketfs_staged_unlink_locked (const void *owner) {
  bucketfs_staged_t *taken = NULL, **tend = &taken;
  for (bucketfs_staged_t **at = &bucketfs_staged; *at != NULL;) {
    bucketfs_staged_t *w = *at;
    if (w->owner != owner) { at = &w->next; continue; }
    *at = w->next;
    if (bucketfs_staged_end == &w->next) bucketfs_staged_end = at;
    w->next = NULL;
    *tend = w;
    tend = &w->next;
  }
  bucketfs_mount_fn_t *slot = bucketfs_mount_slot_locked(bucketfs_stagers, owner);
  if (slot != NULL) slot->queued = 0;
  return taken;
}

static void bucketfs_stage_call (napi_env env, napi_value fn, void *context, void *data) {
  if (env != NULL && fn != NULL) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, fn, 0, NULL, NULL);
  }
}

/** A write staged and answered here (1, *res its length), or 0: JavaScript answers it. */
static int bucketfs_stage_answer (fuse_thread_locals_t *l, int *res) {
  struct fuse_file_info *info = l->info;
  if (info == NULL || (info->fh & BUCKETFS_STAGE_BIT) == 0 || l->path == NULL || l->buf == NULL || l->offset < 0 || l->len > BUCKETFS_STAGE_MAX) return 0;
  // Not copied for nothing: the mount stages writes and there is room (checked again below).
  pthread_mutex_lock(&bucketfs_attr_lock);
  int room = bucketfs_stager_open_locked(l->fuse) != NULL && bucketfs_staged_bytes + l->len <= BUCKETFS_STAGE_MAX &&
    (uint64_t) l->offset + l->len <= bucketfs_stage_max_end;
  pthread_mutex_unlock(&bucketfs_attr_lock);
  if (!room) return 0;
  size_t pn = strlen(l->path);
  bucketfs_staged_t *w = malloc(sizeof(bucketfs_staged_t));
  char *path = malloc(pn + 1);
  void *data = NULL;
  if (w == NULL || path == NULL || posix_memalign(&data, 4096, l->len > 0 ? l->len : 1) != 0) { free(w); free(path); return 0; }
  w->data = data;
  memcpy(path, l->path, pn + 1);
  memcpy(w->data, l->buf, l->len);
  w->next = NULL; w->owner = l->fuse; w->fh = (uint32_t) BUCKETFS_FH(info); w->offset = (uint64_t) l->offset; w->len = l->len; w->path = path;
  int staged = 0;
  pthread_mutex_lock(&bucketfs_attr_lock);
  bucketfs_mount_fn_t *slot = bucketfs_stager_open_locked(l->fuse);
  napi_threadsafe_function stager = slot == NULL ? NULL : slot->fn;
  if (stager != NULL && bucketfs_staged_bytes + l->len <= BUCKETFS_STAGE_MAX && w->offset + l->len <= bucketfs_stage_max_end) {
    int first = slot->queued++ == 0;
    *bucketfs_staged_end = w;
    bucketfs_staged_end = &w->next;
    bucketfs_staged_bytes += l->len;
    bucketfs_staged_pending++;
    bucketfs_staged_writes++;
    staged = 1;
    // (Under the lock, where bucketfs_stage_end takes the function away before releasing it.)
    if (first) napi_call_threadsafe_function(stager, NULL, napi_tsfn_nonblocking);
  }
  pthread_mutex_unlock(&bucketfs_attr_lock);
  if (!staged) { free(path); free(w->data); free(w); return 0; }
  // What was put of the path no longer holds: forgotten before the kernel has the answer.
  bucketfs_attr_forget(l->path, NULL, 0, l);
  *res = (int) l->len;
  return 1;
}

static void bucketfs_staged_free_data (napi_env env, void *data, void *hint) {
  free(data);
}

/**
 * bucketfs_staged_take(thread): the mount's staged writes not taken yet, oldest first,
 * as [fh, offset, data, path, aligned, ...] (data: the staged bytes, freed when collected,
 * its own memory, 4096-aligned when `aligned`). Each counts as pending until
 * bucketfs_staged_done. null when there are none.
 */
NAPI_METHOD(bucketfs_staged_take) {
  size_t argc = 1;
  napi_value argv[1], out;
  void *owner = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !bucketfs_owner_of(env, argv[0], &owner)) {
    napi_throw_type_error(env, NULL, "bucketfs_staged_take(thread)");
    return NULL;
  }
  napi_get_null(env, &out);
  if (__atomic_load_n(&bucketfs_staged, __ATOMIC_RELAXED) == NULL) return out;
  pthread_mutex_lock(&bucketfs_attr_lock);
  bucketfs_staged_t *taken = bucketfs_staged_unlink_locked(owner);
  pthread_mutex_unlock(&bucketfs_attr_lock);
  uint32_t count = 0;
  for (bucketfs_staged_t *w = taken; w != NULL; w = w->next) count++;
  if (count == 0) return out;
  napi_create_array_with_length(env, (size_t) count * 5, &out);
  uint32_t i = 0;
  for (bucketfs_staged_t *w = taken, *next; w != NULL; w = next) {
    next = w->next;
    napi_value v, data, aligned;
    napi_create_uint32(env, w->fh, &v); napi_set_element(env, out, i++, v);
    napi_create_double(env, (double) w->offset, &v); napi_set_element(env, out, i++, v);
    napi_create_string_utf8(env, w->path, NAPI_AUTO_LENGTH, &v);
    int external = napi_create_external_buffer(env, w->len, w->data, bucketfs_staged_free_data, NULL, &data) == napi_ok;
    if (!external) { napi_create_buffer_copy(env, w->len, w->data, NULL, &data); free(w->data); }
    napi_get_boolean(env, external, &aligned);
    napi_set_element(env, out, i++, data);
    napi_set_element(env, out, i++, v);
    napi_set_element(env, out, i++, aligned);
    free(w->path);
    free(w);
  }
  return out;
}

/**
 * bucketfs_staged_done(thread, paths, bytes): JavaScript applied staged writes of these
 * paths (one entry per write), `bytes` in all: their paths are forgotten again (what was
 * put meanwhile may predate them) and they are pending no more.
 */
NAPI_METHOD(bucketfs_staged_done) {
  size_t argc = 3;
  napi_value argv[3];
  void *owner = NULL;
  uint32_t count = 0;
  double bytes = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !bucketfs_owner_of(env, argv[0], &owner) || napi_get_array_length(env, argv[1], &count) != napi_ok ||
      napi_get_value_double(env, argv[2], &bytes) != napi_ok) {
    napi_throw_type_error(env, NULL, "bucketfs_staged_done(thread, paths, bytes)");
    return NULL;
  }
  char last[4096] = "";
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    char path[4096];
    size_t len = 0;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok || napi_get_value_string_utf8(env, v, path, sizeof(path), &len) != napi_ok) continue;
    if (strcmp(path, last) == 0) continue;
    bucketfs_attr_forget(path, NULL, 0, NULL);
    memcpy(last, path, len + 1);
  }
  pthread_mutex_lock(&bucketfs_attr_lock);
  bucketfs_staged_pending = bucketfs_staged_pending > count ? bucketfs_staged_pending - count : 0;
  size_t b = bytes > 0 ? (size_t) bytes : 0;
  bucketfs_staged_bytes = bucketfs_staged_bytes > b ? bucketfs_staged_bytes - b : 0;
  pthread_mutex_unlock(&bucketfs_attr_lock);
  return NULL;
}

/** bucketfs_stage_writes(thread, fn, maxEnd): marked handles' writes are staged; fn() is called when the first of some is. */
NAPI_METHOD(bucketfs_stage_writes) {
  size_t argc = 3;
  napi_value argv[3];
  double max_end = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || napi_get_value_double(env, argv[2], &max_end) != napi_ok || !(max_end > 0)) {
    napi_throw_type_error(env, NULL, "bucketfs_stage_writes(thread, fn, maxEnd)");
    return NULL;
  }
  pthread_mutex_lock(&bucketfs_attr_lock);
  bucketfs_stage_max_end = (uint64_t) max_end;
  pthread_mutex_unlock(&bucketfs_attr_lock);
  return bucketfs_mount_fn_set(env, info, bucketfs_stagers, "bucketfs_stage_writes", bucketfs_stage_call);
}

/** What is staged of a mount and not taken is dropped (its function is ending). */
static void bucketfs_staged_drop_locked (const void *owner) {
  for (bucketfs_staged_t *w = bucketfs_staged_unlink_locked(owner), *next; w != NULL; w = next) {
    next = w->next;
    bucketfs_staged_bytes -= w->len;
    bucketfs_staged_pending--;
    free(w->path);
    free(w->data);
    free(w);
  }
}

/**
 * bucketfs_stage_stop(thread): the mount stages no more writes (they go to JavaScript, to be
 * applied or refused there); what is staged stays to be taken. At unmount, before the last
 * take: a write staged after it would be answered done and then dropped.
 */
NAPI_METHOD(bucketfs_stage_stop) {
  size_t argc = 1;
  napi_value argv[1];
  void *owner = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !bucketfs_owner_of(env, argv[0], &owner)) {
    napi_throw_type_error(env, NULL, "bucketfs_stage_stop(thread)");
    return NULL;
  }
  pthread_mutex_lock(&bucketfs_attr_lock);
  bucketfs_mount_fn_t *slot = bucketfs_mount_slot_locked(bucketfs_stagers, owner);
  if (slot != NULL) slot->closed = 1;
  pthread_mutex_unlock(&bucketfs_attr_lock);
  return NULL;
}

/** bucketfs_stage_end(thread): at unmount, after JavaScript took what was staged. */
NAPI_METHOD(bucketfs_stage_end) {
  return bucketfs_mount_fn_end(env, info, bucketfs_stagers, "bucketfs_stage_end", bucketfs_staged_drop_locked);
}


// bucketfs: polling the event loop for a while after an op. An op reaches JavaScript
// through a wake-up of the main thread (uv_async_send) and is answered through one of
// the FUSE thread: on this 2-core VM the sleeps and wake-ups cost about 50 µs per op,
// more than most ops' own work. For BUCKETFS_POLL_NS after an op JavaScript was called
// for, an idle handle keeps the loop polling (epoll with no timeout) instead of
// sleeping, so the next op of a busy program (tar, rsync, rm -rf) is picked up without
// a wake-up. Reads and writes do not start it (sequential I/O keeps the loop busy on
// its own, and the hash workers need the other core). Runs on the main thread only.
// After a readdir the loop polls longer (BUCKETFS_POLL_LIST_NS): a program walking a tree
// (find, du, ls -R, a backup's scan) looks up the entries it listed, which the FUSE
// thread answers from what the readdir put, and lists the next directory a millisecond
// or two later. Sleeping in that gap, the main thread took about 0.8 ms to wake for the
// next readdir (a cold walk of the bench's tree: readdir at the kernel 1.04 ms median,
// of which 0.23 in JavaScript). Polling 5 ms after a readdir, readdir took 155 µs median
// and the walk 444-447 ms instead of 485-597. Not after every op: polling 5 ms after each
// made rsync 10-20 % slower (its own processes need the core between its ops).
// $BUCKETFS_POLL_US and $BUCKETFS_POLL_LIST_US (read at the first op) set the times, for
// measuring; 0 turns polling off.
static uint64_t BUCKETFS_POLL_NS = 1000000ULL;
static uint64_t BUCKETFS_POLL_LIST_NS = 5000000ULL;
/** $name in µs as ns, or dflt. */
static uint64_t bucketfs_env_ns (const char *name, uint64_t dflt) {
  const char *v = getenv(name);
  return v == NULL ? dflt : strtoull(v, NULL, 10) * 1000ULL;
}
static uv_idle_t bucketfs_poll_idle;
static int bucketfs_poll_state = 0; // 0 not made, 1 stopped, 2 polling
/** The loop polls until then (CLOCK_MONOTONIC ns). */
static uint64_t bucketfs_poll_until_ns = 0;

static uint64_t bucketfs_mono_ns (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static void bucketfs_poll_check (uv_idle_t *idle) {
  if (bucketfs_mono_ns() > bucketfs_poll_until_ns) {
    uv_idle_stop(idle);
    bucketfs_poll_state = 1;
  }
}

/** An op is being dispatched to JavaScript, and again once JavaScript returned (main thread): poll for the next one a while. */
static void bucketfs_poll_after (uint32_t op) {
  if (op == op_read || op == op_write) return;
  static int env_read = 0;
  if (!env_read) {
    BUCKETFS_POLL_NS = bucketfs_env_ns("BUCKETFS_POLL_US", BUCKETFS_POLL_NS);
    BUCKETFS_POLL_LIST_NS = bucketfs_env_ns("BUCKETFS_POLL_LIST_US", BUCKETFS_POLL_LIST_NS);
    env_read = 1;
  }
  uint64_t span = op == op_readdir ? BUCKETFS_POLL_LIST_NS : BUCKETFS_POLL_NS;
  if (span == 0) return;
  uint64_t until = bucketfs_mono_ns() + span;
  if (until > bucketfs_poll_until_ns) bucketfs_poll_until_ns = until;
  if (bucketfs_poll_state == 2) return;
  if (bucketfs_poll_state == 0) {
    uv_idle_init(uv_default_loop(), &bucketfs_poll_idle);
    uv_unref((uv_handle_t *) &bucketfs_poll_idle); // never keeps the process alive
  }
  uv_idle_start(&bucketfs_poll_idle, bucketfs_poll_check);
  bucketfs_poll_state = 2;
}

// bucketfs: the FUSE thread may wait for JavaScript's answer spinning a while before it
// sleeps: an answer found while spinning costs no futex wake on the main thread (sem_post
// only wakes registered sleepers) and no wake-up of this thread. One thread spins at a
// time, and only with more than one core (the main thread must have one to answer on).
// Reads and writes sleep at once (the hash workers need the core while a write is hashed).
// The spin yields the core between its polls (sched_yield): spinning without yielding
// made untar and rsync slower on the 2-vCPU Firecracker guest of issue 5's later
// sessions, the spinning core being the one rsync's other processes, SQLite's
// checkpointer and the kernel's writeback need. Yielding, they run and this thread still
// sees the answer within a poll of it: four alternating bucketfs-only bench runs of
// untar, rsync and rm -rf each gave rsync 826-959 files/s against 717-775 with no spin
// (545-672 spinning without yielding), rm -rf 5,492-7,369 against 4,694-6,096, untar
// 1,080-1,356 against 996-1,265. $BUCKETFS_SPIN_US (read at the first wait) sets the
// time in µs; 0 turns it off.
static uint64_t BUCKETFS_SPIN_NS = 300000ULL;
static int bucketfs_spinning = 0;
static long bucketfs_cores = 0;
static void bucketfs_wait_answer (fuse_thread_locals_t *l) {
  if (bucketfs_cores == 0) {
    BUCKETFS_SPIN_NS = bucketfs_env_ns("BUCKETFS_SPIN_US", BUCKETFS_SPIN_NS);
    bucketfs_cores = BUCKETFS_SPIN_NS == 0 ? 1 : sysconf(_SC_NPROCESSORS_ONLN); // (one core: never spins)
  }
  if (l->op != op_read && l->op != op_write && bucketfs_cores > 1 &&
      __atomic_exchange_n(&bucketfs_spinning, 1, __ATOMIC_ACQUIRE) == 0) {
    uint64_t until = bucketfs_mono_ns() + BUCKETFS_SPIN_NS;
    int answered = 0;
    do {
      for (int i = 0; i < 32 && !answered; i++) {
        answered = uv_sem_trywait(&(l->sem)) == 0;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (!answered) sched_yield();
    } while (!answered && bucketfs_mono_ns() < until);
    __atomic_store_n(&bucketfs_spinning, 0, __ATOMIC_RELEASE);
    if (answered) return;
  }
  uv_sem_wait(&(l->sem));
}

// bucketfs: requests of up to 1 MiB. libfuse 2 reads /dev/fuse into 132 KiB buffers and
// answers the kernel's INIT without max_pages, so the kernel cut every write and read into
// 128 KiB requests: a sequential writer paid a round trip to the FUSE thread per 128 KiB.
// The mount's channel is replaced by one of our own on the same device (dup'd) that reads
// into 1 MiB + 4 KiB buffers (libfuse then answers max_write 1 MiB) and, when the kernel
// offers FUSE_MAX_PAGES, adds it to the INIT answer with max_pages 256 (1 MiB: the kernel's
// default limit). The INIT answer keeps libfuse's protocol version (7.19); the kernel reads
// max_pages by the flag, not the version. $BUCKETFS_BIG_REQUESTS=0 keeps libfuse's channel.
#define BUCKETFS_BIG_PAGES 256
#define BUCKETFS_BIG_BUFSIZE ((size_t) BUCKETFS_BIG_PAGES * 4096 + 4096)
#define BUCKETFS_FUSE_INIT 26
#define BUCKETFS_FUSE_MAX_PAGES (1u << 22)
typedef struct { uint32_t len, opcode; uint64_t unique, nodeid; uint32_t uid, gid, pid, padding; } bucketfs_in_header_t;
typedef struct { uint32_t len; int32_t error; uint64_t unique; } bucketfs_out_header_t;
typedef struct { uint32_t major, minor, max_readahead, flags; } bucketfs_init_in_t;
// A channel's INIT request being answered (its unique) and whether the kernel offered
// FUSE_MAX_PAGES: each mount's own (every connection's INIT has the same unique).
typedef struct { uint64_t init_unique; int init_big; } bucketfs_chan_t;

/** As libfuse's kernel channel: one request read from the device. */
static int bucketfs_chan_receive (struct fuse_chan **chp, char *buf, size_t size) {
  struct fuse_chan *ch = *chp;
  struct fuse_session *se = fuse_chan_session(ch);
  ssize_t res;
  int err;
  do {
    res = read(fuse_chan_fd(ch), buf, size);
    err = errno;
    if (fuse_session_exited(se)) return 0;
  } while (res == -1 && err == ENOENT); // the request was interrupted
  if (res == -1) {
    if (err == ENODEV) { fuse_session_exit(se); return 0; } // unmounted
    if (err != EINTR && err != EAGAIN) perror("fuse: reading device");
    return -err;
  }
  if ((size_t) res < sizeof(bucketfs_in_header_t)) { fprintf(stderr, "short read on fuse device\n"); return -EIO; }
  const bucketfs_in_header_t *in = (const bucketfs_in_header_t *) buf;
  if (in->opcode == BUCKETFS_FUSE_INIT && (size_t) res >= sizeof(bucketfs_in_header_t) + sizeof(bucketfs_init_in_t)) {
    const bucketfs_init_in_t *init = (const bucketfs_init_in_t *) (buf + sizeof(bucketfs_in_header_t));
    bucketfs_chan_t *state = (bucketfs_chan_t *) fuse_chan_data(ch);
    __atomic_store_n(&state->init_big, (init->flags & BUCKETFS_FUSE_MAX_PAGES) != 0, __ATOMIC_RELAXED);
    __atomic_store_n(&state->init_unique, in->unique, __ATOMIC_RELAXED);
    __atomic_store_n(&bucketfs_big_offered, (init->flags & BUCKETFS_FUSE_MAX_PAGES) != 0, __ATOMIC_RELAXED);
  }
  return (int) res;
}

/** As libfuse's kernel channel: one answer written to the device (the INIT answer with max_pages). */
static int bucketfs_chan_send (struct fuse_chan *ch, const struct iovec iov[], size_t count) {
  if (iov == NULL) return 0;
  struct iovec patched[2];
  bucketfs_out_header_t head;
  uint8_t init[64];
  const bucketfs_out_header_t *out = (const bucketfs_out_header_t *) iov[0].iov_base;
  bucketfs_chan_t *state = (bucketfs_chan_t *) fuse_chan_data(ch);
  uint64_t unique = __atomic_load_n(&state->init_unique, __ATOMIC_RELAXED);
  int answers_init = unique != 0 && iov[0].iov_len == sizeof(head) && out->unique == unique;
  // libfuse's INIT answer: major, minor, max_readahead, flags, max_background,
  // congestion_threshold, max_write (24 bytes); max_pages is the u16 at byte 28.
  if (answers_init && __atomic_load_n(&state->init_big, __ATOMIC_RELAXED) && count == 2 && out->error == 0 &&
      iov[1].iov_len >= 24 && iov[1].iov_len <= sizeof(init)) {
    memset(init, 0, sizeof(init));
    memcpy(init, iov[1].iov_base, iov[1].iov_len);
    uint32_t flags;
    memcpy(&flags, init + 12, 4);
    flags |= BUCKETFS_FUSE_MAX_PAGES;
    memcpy(init + 12, &flags, 4);
    uint16_t pages = BUCKETFS_BIG_PAGES;
    memcpy(init + 28, &pages, 2);
    head = *out;
    head.len = sizeof(head) + sizeof(init);
    patched[0].iov_base = &head; patched[0].iov_len = sizeof(head);
    patched[1].iov_base = init; patched[1].iov_len = sizeof(init);
    iov = patched;
    __atomic_store_n(&bucketfs_big_answered, BUCKETFS_BIG_PAGES, __ATOMIC_RELAXED);
  }
  ssize_t res = writev(fuse_chan_fd(ch), iov, (int) count);
  int err = errno;
  if (res == -1) {
    struct fuse_session *se = fuse_chan_session(ch);
    if (!fuse_session_exited(se) && err != ENOENT) perror("fuse: writing device");
    return -err;
  }
  if (answers_init) {
    __atomic_store_n(&state->init_unique, 0, __ATOMIC_RELAXED);
    __atomic_add_fetch(&bucketfs_inits_answered, 1, __ATOMIC_RELAXED);
  }
  return 0;
}

static void bucketfs_chan_destroy (struct fuse_chan *ch) {
  int fd = fuse_chan_fd(ch);
  if (fd != -1) close(fd);
  free(fuse_chan_data(ch));
}

static struct fuse_chan_ops bucketfs_chan_ops = { bucketfs_chan_receive, bucketfs_chan_send, bucketfs_chan_destroy };

/** The mount's channel: ours on a dup of its device, or ch itself (turned off, or no memory). */
static struct fuse_chan *bucketfs_big_chan (struct fuse_chan *ch) {
  const char *off = getenv("BUCKETFS_BIG_REQUESTS");
  if (ch == NULL || (off != NULL && strcmp(off, "0") == 0)) return ch;
  bucketfs_chan_t *state = calloc(1, sizeof(bucketfs_chan_t));
  int fd = state == NULL ? -1 : fcntl(fuse_chan_fd(ch), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) { free(state); return ch; }
  struct fuse_chan *big = fuse_chan_new(&bucketfs_chan_ops, fd, BUCKETFS_BIG_BUFSIZE, state);
  if (big == NULL) { close(fd); free(state); return ch; }
  fuse_chan_destroy(ch); // closes its own descriptor; the device stays open through ours
  return big;
}
