// MD5 of several streams side by side (native/md5lanes.c).
#ifndef BUCKETFS_MD5LANES_H
#define BUCKETFS_MD5LANES_H
#include <stddef.h>
#include <stdint.h>

/** An MD5 stream: its state, the bytes fed so far and the unhashed end of a block. */
typedef struct {
  uint32_t h[4];
  uint64_t len;
  uint8_t buf[64];
  uint32_t nbuf;
} md5s_t;

/** A piece of a stream's input. */
typedef struct { const uint8_t *p; size_t n; } md5_piece_t;

/** One stream and what to feed it, in order. */
typedef struct { md5s_t *s; const md5_piece_t *pieces; size_t npieces; } md5_lane_t;

enum { MD5_SCALAR = 0, MD5_AVX2 = 1, MD5_AVX512 = 2 };

void md5s_init (md5s_t *s);
void md5s_update (md5s_t *s, const uint8_t *p, size_t n);
/** The MD5 of what s was fed; s goes on. */
void md5s_digest (const md5s_t *s, uint8_t out[16]);
/** Feeds every lane its pieces; up to eight lanes are hashed side by side. */
void md5_lanes (md5_lane_t *lanes, size_t nlanes);
/** The best kernel this CPU runs. */
int md5_best_kernel (void);
/**
 * The kernel md5_lanes uses: want if this CPU runs it (else unchanged, the best at first);
 * answers the one in use. Called from one thread (the addon's main thread) only.
 */
int md5_use_kernel (int want);

#endif
