// bucketfs: attributes answered on the FUSE thread. JavaScript puts the exact
// attributes of the files a readdir listed (put); a getattr (the kernel's lookup)
// of such a path is then answered here without a round trip to JavaScript, until
// the entry's time is up or an op changes it. After every op that may change
// anything, the op's paths and their ancestors are forgotten (rename and rmdir
// forget everything) before the op is answered. Each forget moves the epoch on; a
// put whose listing began before it is refused, so nothing computed before a
// change can be put after it. Entries belong to one mount (its fuse_thread_t, which
// JavaScript holds as a Buffer); a forget reaches every mount's entries.
#define BUCKETFS_ATTR_SLOTS 16384
#define BUCKETFS_ATTR_MAX 65536
typedef struct bucketfs_attr_s {
  struct bucketfs_attr_s *next;
  const void *owner;
  uint64_t hash;
  uint64_t expires_ms;
  uint32_t ints[18];
  size_t len;
  char path[];
} bucketfs_attr_t;
static bucketfs_attr_t *bucketfs_attrs[BUCKETFS_ATTR_SLOTS];
static uint32_t bucketfs_attrs_count = 0;
static uint64_t bucketfs_attrs_epoch = 0;
static uint64_t bucketfs_attrs_hits = 0;
static pthread_mutex_t bucketfs_attr_lock = PTHREAD_MUTEX_INITIALIZER;

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

static void bucketfs_attr_empty_locked (void) {
  for (size_t i = 0; i < BUCKETFS_ATTR_SLOTS; i++) {
    bucketfs_attr_t *e = bucketfs_attrs[i];
    while (e != NULL) { bucketfs_attr_t *next = e->next; free(e); e = next; }
    bucketfs_attrs[i] = NULL;
  }
  bucketfs_attrs_count = 0;
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

/** Forgets everything (path NULL), or path and each of its ancestors. */
static void bucketfs_attr_forget (const char *path) {
  pthread_mutex_lock(&bucketfs_attr_lock);
  if (path == NULL) {
    bucketfs_attr_empty_locked();
  } else if (bucketfs_attrs_count > 0) {
    size_t n = strlen(path);
    while (n > 0) {
      bucketfs_attr_remove_locked(path, n);
      do n--; while (n > 0 && path[n] != '/');
    }
  }
  bucketfs_attrs_epoch++;
  pthread_mutex_unlock(&bucketfs_attr_lock);
}

static int bucketfs_attr_reads (uint32_t op) {
  return op == op_getattr || op == op_fgetattr || op == op_access || op == op_statfs || op == op_readdir ||
    op == op_opendir || op == op_releasedir || op == op_readlink || op == op_getxattr || op == op_listxattr ||
    op == op_read || op == op_fsyncdir || op == op_init;
}

/** A getattr answered from the entries: 1 with *stat filled, or 0. */
static int bucketfs_attr_answer (uint32_t op, const void *owner, const char *path, struct stat *stat) {
  if (op != op_getattr || path == NULL) return 0;
  int hit = 0;
  pthread_mutex_lock(&bucketfs_attr_lock);
  if (bucketfs_attrs_count > 0) {
    size_t n = strlen(path);
    bucketfs_attr_t *e = bucketfs_attr_find_locked(owner, path, n, 0);
    if (e != NULL) {
      if (bucketfs_now_ms() < e->expires_ms) {
        populate_stat(e->ints, stat);
        bucketfs_attrs_hits++;
        hit = 1;
      } else {
        free(bucketfs_attr_find_locked(owner, path, n, 1));
      }
    }
  }
  pthread_mutex_unlock(&bucketfs_attr_lock);
  return hit;
}

/**
 * An op answered here, without JavaScript: 1 with *res set, or 0. A getattr of a path a
 * readdir listed; a getxattr of a name outside user.* (the kernel asks for
 * security.capability before every write), which the vfs refuses with ENOTSUP
 * whatever the path (src/vfs/xattr.ts classify).
 */
static int bucketfs_answer (fuse_thread_locals_t *l, int *res) {
  if (l->op == op_getxattr && l->name != NULL && strncmp(l->name, "user.", 5) != 0) {
    *res = -ENOTSUP;
    return 1;
  }
  if (bucketfs_attr_answer(l->op, l->fuse, l->path, l->stat)) {
    *res = 0;
    return 1;
  }
  return 0;
}

/** After JavaScript answered an op: forget what it may have changed. */
static void bucketfs_attr_after (uint32_t op, const char *path, const char *dest, struct fuse_file_info *info) {
  if (bucketfs_attr_reads(op)) return;
  if (op == op_open && info != NULL && (info->flags & O_ACCMODE) == O_RDONLY && (info->flags & O_TRUNC) == 0) return;
  if (op == op_rename || op == op_rmdir || path == NULL) { bucketfs_attr_forget(NULL); return; }
  bucketfs_attr_forget(path);
  if (dest != NULL) bucketfs_attr_forget(dest);
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
 * fuse_thread_t is the Buffer `thread`, unless something was forgotten since epoch.
 * Answers how many were put.
 */
NAPI_METHOD(bucketfs_attr_put) {
  size_t argc = 6;
  napi_value argv[6];
  void *owner = NULL;
  size_t owner_len = 0;
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
      napi_get_buffer_info(env, argv[0], &owner, &owner_len) != napi_ok ||
      napi_get_value_double(env, argv[1], &epoch) != napi_ok ||
      napi_get_value_string_utf8(env, argv[2], dir, sizeof(dir), &dirlen) != napi_ok ||
      napi_get_array_length(env, argv[3], &count) != napi_ok ||
      napi_get_typedarray_info(env, argv[4], &type, &ints_len, &ints_data, NULL, NULL) != napi_ok ||
      napi_get_value_uint32(env, argv[5], &ttl) != napi_ok ||
      owner_len != sizeof(fuse_thread_t) ||
      type != napi_uint32_array || ints_len < (size_t) count * 18 || dirlen + 2 >= sizeof(dir)) {
    napi_throw_type_error(env, NULL, "bucketfs_attr_put(thread, epoch, dir, names, ints, ttlMs)");
    return NULL;
  }
  if (dirlen == 1) dirlen = 0; // "/" + name
  bucketfs_attr_t **made = calloc(count > 0 ? count : 1, sizeof(bucketfs_attr_t *));
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
  if ((double) bucketfs_attrs_epoch == epoch) {
    if (bucketfs_attrs_count + n > BUCKETFS_ATTR_MAX) bucketfs_attr_empty_locked();
    for (uint32_t i = 0; i < n; i++) {
      bucketfs_attr_t *e = made[i];
      free(bucketfs_attr_find_locked(owner, e->path, e->len, 1));
      bucketfs_attr_t **slot = &bucketfs_attrs[e->hash % BUCKETFS_ATTR_SLOTS];
      e->next = *slot;
      *slot = e;
      bucketfs_attrs_count++;
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

/** bucketfs_attr_forget(): forgets every entry (a change JavaScript made on its own). */
NAPI_METHOD(bucketfs_attr_forget_all) {
  bucketfs_attr_forget(NULL);
  return NULL;
}

/** bucketfs_attr_stats(): [entries, getattrs answered here]. */
NAPI_METHOD(bucketfs_attr_stats) {
  pthread_mutex_lock(&bucketfs_attr_lock);
  double entries = bucketfs_attrs_count, hits = (double) bucketfs_attrs_hits;
  pthread_mutex_unlock(&bucketfs_attr_lock);
  napi_value out, v;
  napi_create_array_with_length(env, 2, &out);
  napi_create_double(env, entries, &v); napi_set_element(env, out, 0, v);
  napi_create_double(env, hits, &v); napi_set_element(env, out, 1, v);
  return out;
}

