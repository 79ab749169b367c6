// MD5 of several streams side by side. A sequential writer's parts each need their
// own MD5 (S3's ETag), and one MD5 stream is a chain of 64 dependent steps per 64-byte
// block: OpenSSL's ran at about 650 MB/s on one core here and took a third of the
// daemon's CPU during a 1 GiB `dd`. The steps of eight streams are independent, so
// AVX2 runs them in the eight 32-bit lanes of a vector for about the cost of one
// (with AVX-512VL's three-input logic and rotate, in fewer instructions). Streams
// whose input ends are replaced by waiting ones; one stream left runs the scalar code.
// The kernels are chosen at run time: built for any x86-64 (and any other CPU: the
// scalar code only), run with AVX2 or AVX-512VL where the CPU has them.
#include "md5lanes.h"
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MD5_X86 1
#endif

// The 64 steps: X(function, a, b, c, d, message word, rotation, constant), RFC 1321.
#define MD5_STEPS(X) \
  X(F, a, b, c, d,  0,  7, 0xd76aa478u) \
  X(F, d, a, b, c,  1, 12, 0xe8c7b756u) \
  X(F, c, d, a, b,  2, 17, 0x242070dbu) \
  X(F, b, c, d, a,  3, 22, 0xc1bdceeeu) \
  X(F, a, b, c, d,  4,  7, 0xf57c0fafu) \
  X(F, d, a, b, c,  5, 12, 0x4787c62au) \
  X(F, c, d, a, b,  6, 17, 0xa8304613u) \
  X(F, b, c, d, a,  7, 22, 0xfd469501u) \
  X(F, a, b, c, d,  8,  7, 0x698098d8u) \
  X(F, d, a, b, c,  9, 12, 0x8b44f7afu) \
  X(F, c, d, a, b, 10, 17, 0xffff5bb1u) \
  X(F, b, c, d, a, 11, 22, 0x895cd7beu) \
  X(F, a, b, c, d, 12,  7, 0x6b901122u) \
  X(F, d, a, b, c, 13, 12, 0xfd987193u) \
  X(F, c, d, a, b, 14, 17, 0xa679438eu) \
  X(F, b, c, d, a, 15, 22, 0x49b40821u) \
  X(G, a, b, c, d,  1,  5, 0xf61e2562u) \
  X(G, d, a, b, c,  6,  9, 0xc040b340u) \
  X(G, c, d, a, b, 11, 14, 0x265e5a51u) \
  X(G, b, c, d, a,  0, 20, 0xe9b6c7aau) \
  X(G, a, b, c, d,  5,  5, 0xd62f105du) \
  X(G, d, a, b, c, 10,  9, 0x02441453u) \
  X(G, c, d, a, b, 15, 14, 0xd8a1e681u) \
  X(G, b, c, d, a,  4, 20, 0xe7d3fbc8u) \
  X(G, a, b, c, d,  9,  5, 0x21e1cde6u) \
  X(G, d, a, b, c, 14,  9, 0xc33707d6u) \
  X(G, c, d, a, b,  3, 14, 0xf4d50d87u) \
  X(G, b, c, d, a,  8, 20, 0x455a14edu) \
  X(G, a, b, c, d, 13,  5, 0xa9e3e905u) \
  X(G, d, a, b, c,  2,  9, 0xfcefa3f8u) \
  X(G, c, d, a, b,  7, 14, 0x676f02d9u) \
  X(G, b, c, d, a, 12, 20, 0x8d2a4c8au) \
  X(H, a, b, c, d,  5,  4, 0xfffa3942u) \
  X(H, d, a, b, c,  8, 11, 0x8771f681u) \
  X(H, c, d, a, b, 11, 16, 0x6d9d6122u) \
  X(H, b, c, d, a, 14, 23, 0xfde5380cu) \
  X(H, a, b, c, d,  1,  4, 0xa4beea44u) \
  X(H, d, a, b, c,  4, 11, 0x4bdecfa9u) \
  X(H, c, d, a, b,  7, 16, 0xf6bb4b60u) \
  X(H, b, c, d, a, 10, 23, 0xbebfbc70u) \
  X(H, a, b, c, d, 13,  4, 0x289b7ec6u) \
  X(H, d, a, b, c,  0, 11, 0xeaa127fau) \
  X(H, c, d, a, b,  3, 16, 0xd4ef3085u) \
  X(H, b, c, d, a,  6, 23, 0x04881d05u) \
  X(H, a, b, c, d,  9,  4, 0xd9d4d039u) \
  X(H, d, a, b, c, 12, 11, 0xe6db99e5u) \
  X(H, c, d, a, b, 15, 16, 0x1fa27cf8u) \
  X(H, b, c, d, a,  2, 23, 0xc4ac5665u) \
  X(I, a, b, c, d,  0,  6, 0xf4292244u) \
  X(I, d, a, b, c,  7, 10, 0x432aff97u) \
  X(I, c, d, a, b, 14, 15, 0xab9423a7u) \
  X(I, b, c, d, a,  5, 21, 0xfc93a039u) \
  X(I, a, b, c, d, 12,  6, 0x655b59c3u) \
  X(I, d, a, b, c,  3, 10, 0x8f0ccc92u) \
  X(I, c, d, a, b, 10, 15, 0xffeff47du) \
  X(I, b, c, d, a,  1, 21, 0x85845dd1u) \
  X(I, a, b, c, d,  8,  6, 0x6fa87e4fu) \
  X(I, d, a, b, c, 15, 10, 0xfe2ce6e0u) \
  X(I, c, d, a, b,  6, 15, 0xa3014314u) \
  X(I, b, c, d, a, 13, 21, 0x4e0811a1u) \
  X(I, a, b, c, d,  4,  6, 0xf7537e82u) \
  X(I, d, a, b, c, 11, 10, 0xbd3af235u) \
  X(I, c, d, a, b,  2, 15, 0x2ad7d2bbu) \
  X(I, b, c, d, a,  9, 21, 0xeb86d391u)

#define F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define H(x, y, z) ((x) ^ (y) ^ (z))
#define I(x, y, z) ((y) ^ ((x) | ~(z)))
#define SSTEP(f, a, b, c, d, k, s, t) \
  a += f(b, c, d) + w[k] + t; a = (a << s) | (a >> (32 - s)); a += b;

static inline uint32_t le32 (const uint8_t *p) {
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static void blocks_scalar (uint32_t h[4], const uint8_t *p, size_t nblocks) {
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
  for (; nblocks > 0; nblocks--, p += 64) {
    uint32_t w[16];
    for (int i = 0; i < 16; i++) w[i] = le32(p + 4 * i);
    uint32_t aa = a, bb = b, cc = c, dd = d;
    MD5_STEPS(SSTEP)
    a += aa; b += bb; c += cc; d += dd;
  }
  h[0] = a; h[1] = b; h[2] = c; h[3] = d;
}

#ifdef MD5_X86
// Eight lanes: s[i] is lane i's state, fed nblocks blocks from p[i] on, p[i] moving by
// adv[i] bytes a block (0 for an idle lane, which hashes a block of zeros into a dummy).
typedef void kernel_fn (md5s_t *const s[8], const uint8_t *const p[8], const size_t adv[8], size_t nblocks);

// Words 0-7 (at byte off) of the eight lanes' blocks, transposed: w[j] holds word j of every lane.
#define TRANSPOSE8(w, q, off) do { \
  __m256i r0 = _mm256_loadu_si256((const __m256i *) (q[0] + off)), r1 = _mm256_loadu_si256((const __m256i *) (q[1] + off)); \
  __m256i r2 = _mm256_loadu_si256((const __m256i *) (q[2] + off)), r3 = _mm256_loadu_si256((const __m256i *) (q[3] + off)); \
  __m256i r4 = _mm256_loadu_si256((const __m256i *) (q[4] + off)), r5 = _mm256_loadu_si256((const __m256i *) (q[5] + off)); \
  __m256i r6 = _mm256_loadu_si256((const __m256i *) (q[6] + off)), r7 = _mm256_loadu_si256((const __m256i *) (q[7] + off)); \
  __m256i t0 = _mm256_unpacklo_epi32(r0, r1), t1 = _mm256_unpackhi_epi32(r0, r1); \
  __m256i t2 = _mm256_unpacklo_epi32(r2, r3), t3 = _mm256_unpackhi_epi32(r2, r3); \
  __m256i t4 = _mm256_unpacklo_epi32(r4, r5), t5 = _mm256_unpackhi_epi32(r4, r5); \
  __m256i t6 = _mm256_unpacklo_epi32(r6, r7), t7 = _mm256_unpackhi_epi32(r6, r7); \
  __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2); \
  __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3); \
  __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6); \
  __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7); \
  w[0] = _mm256_permute2x128_si256(u0, u4, 0x20); w[4] = _mm256_permute2x128_si256(u0, u4, 0x31); \
  w[1] = _mm256_permute2x128_si256(u1, u5, 0x20); w[5] = _mm256_permute2x128_si256(u1, u5, 0x31); \
  w[2] = _mm256_permute2x128_si256(u2, u6, 0x20); w[6] = _mm256_permute2x128_si256(u2, u6, 0x31); \
  w[3] = _mm256_permute2x128_si256(u3, u7, 0x20); w[7] = _mm256_permute2x128_si256(u3, u7, 0x31); \
} while (0)

// One step of eight lanes, with the logic functions and rotate of kernel P (P##F …, P##ROL).
#define VSTEP(P, f, a, b, c, d, k, s, t) \
  a = _mm256_add_epi32(a, _mm256_add_epi32(P##f(b, c, d), _mm256_add_epi32(w[k], _mm256_set1_epi32((int) t)))); \
  a = P##ROL(a, s); a = _mm256_add_epi32(a, b);

#define KERNEL_BODY(STEP) { \
  const uint8_t *q[8]; \
  for (int i = 0; i < 8; i++) q[i] = p[i]; \
  __m256i a = _mm256_setr_epi32((int) s[0]->h[0], (int) s[1]->h[0], (int) s[2]->h[0], (int) s[3]->h[0], (int) s[4]->h[0], (int) s[5]->h[0], (int) s[6]->h[0], (int) s[7]->h[0]); \
  __m256i b = _mm256_setr_epi32((int) s[0]->h[1], (int) s[1]->h[1], (int) s[2]->h[1], (int) s[3]->h[1], (int) s[4]->h[1], (int) s[5]->h[1], (int) s[6]->h[1], (int) s[7]->h[1]); \
  __m256i c = _mm256_setr_epi32((int) s[0]->h[2], (int) s[1]->h[2], (int) s[2]->h[2], (int) s[3]->h[2], (int) s[4]->h[2], (int) s[5]->h[2], (int) s[6]->h[2], (int) s[7]->h[2]); \
  __m256i d = _mm256_setr_epi32((int) s[0]->h[3], (int) s[1]->h[3], (int) s[2]->h[3], (int) s[3]->h[3], (int) s[4]->h[3], (int) s[5]->h[3], (int) s[6]->h[3], (int) s[7]->h[3]); \
  for (; nblocks > 0; nblocks--) { \
    __m256i w[16]; \
    TRANSPOSE8(w, q, 0); \
    TRANSPOSE8((w + 8), q, 32); \
    __m256i aa = a, bb = b, cc = c, dd = d; \
    MD5_STEPS(STEP) \
    a = _mm256_add_epi32(a, aa); b = _mm256_add_epi32(b, bb); c = _mm256_add_epi32(c, cc); d = _mm256_add_epi32(d, dd); \
    for (int i = 0; i < 8; i++) q[i] += adv[i]; \
  } \
  uint32_t out[4][8]; \
  _mm256_storeu_si256((__m256i *) out[0], a); _mm256_storeu_si256((__m256i *) out[1], b); \
  _mm256_storeu_si256((__m256i *) out[2], c); _mm256_storeu_si256((__m256i *) out[3], d); \
  for (int i = 0; i < 8; i++) for (int j = 0; j < 4; j++) s[i]->h[j] = out[j][i]; \
}

// AVX2: the logic functions in two or three instructions, rotates as two shifts and an or.
#define AVX2_F(x, y, z) _mm256_xor_si256(z, _mm256_and_si256(x, _mm256_xor_si256(y, z)))
#define AVX2_G(x, y, z) _mm256_xor_si256(y, _mm256_and_si256(z, _mm256_xor_si256(x, y)))
#define AVX2_H(x, y, z) _mm256_xor_si256(_mm256_xor_si256(x, y), z)
#define AVX2_I(x, y, z) _mm256_xor_si256(y, _mm256_or_si256(x, _mm256_xor_si256(z, _mm256_set1_epi32(-1))))
#define AVX2_ROL(x, s) _mm256_or_si256(_mm256_slli_epi32(x, s), _mm256_srli_epi32(x, 32 - s))
#define AVX2_STEP(...) VSTEP(AVX2_, __VA_ARGS__)
__attribute__((target("avx2")))
static void kernel_avx2 (md5s_t *const s[8], const uint8_t *const p[8], const size_t adv[8], size_t nblocks) KERNEL_BODY(AVX2_STEP)

// AVX-512VL: each logic function is one three-input instruction, each rotate one.
#define AVX512_F(x, y, z) _mm256_ternarylogic_epi32(x, y, z, 0xca)
#define AVX512_G(x, y, z) _mm256_ternarylogic_epi32(x, y, z, 0xe4)
#define AVX512_H(x, y, z) _mm256_ternarylogic_epi32(x, y, z, 0x96)
#define AVX512_I(x, y, z) _mm256_ternarylogic_epi32(x, y, z, 0x39)
#define AVX512_ROL(x, s) _mm256_rol_epi32(x, s)
#define AVX512_STEP(...) VSTEP(AVX512_, __VA_ARGS__)
__attribute__((target("avx2,avx512f,avx512vl")))
static void kernel_avx512 (md5s_t *const s[8], const uint8_t *const p[8], const size_t adv[8], size_t nblocks) KERNEL_BODY(AVX512_STEP)
#endif

static int kernel = -1;

int md5_best_kernel (void) {
#ifdef MD5_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2")) return MD5_AVX512;
  if (__builtin_cpu_supports("avx2")) return MD5_AVX2;
#endif
  return MD5_SCALAR;
}

int md5_use_kernel (int want) {
  if (want >= MD5_SCALAR && want <= md5_best_kernel()) kernel = want;
  else if (kernel < 0) kernel = md5_best_kernel();
  return kernel;
}

void md5s_init (md5s_t *s) {
  memset(s, 0, sizeof *s);
  s->h[0] = 0x67452301u; s->h[1] = 0xefcdab89u; s->h[2] = 0x98badcfeu; s->h[3] = 0x10325476u;
}

/** Where a lane is in its pieces. */
typedef struct { md5_lane_t *lane; size_t i; size_t off; } cursor_t;

/**
 * Brings c to a run of whole blocks inside its current piece, taking what does not make
 * a whole block into the stream's block buffer (hashed once full). Answers how many
 * blocks start at *at; 0 once the lane's input is all taken.
 */
static size_t ready (cursor_t *c, const uint8_t **at) {
  md5s_t *s = c->lane->s;
  while (c->i < c->lane->npieces) {
    const md5_piece_t *pc = &c->lane->pieces[c->i];
    size_t left = pc->n - c->off;
    if (left == 0) { c->i++; c->off = 0; continue; }
    const uint8_t *p = pc->p + c->off;
    if (s->nbuf > 0 || left < 64) {
      size_t take = 64 - s->nbuf;
      if (take > left) take = left;
      memcpy(s->buf + s->nbuf, p, take);
      s->nbuf += (uint32_t) take;
      s->len += take;
      c->off += take;
      if (s->nbuf == 64) { blocks_scalar(s->h, s->buf, 1); s->nbuf = 0; }
      continue;
    }
    *at = p;
    return left / 64;
  }
  return 0;
}

static void took (cursor_t *c, size_t nblocks) {
  c->off += nblocks * 64;
  c->lane->s->len += nblocks * 64;
}

void md5s_update (md5s_t *s, const uint8_t *p, size_t n) {
  md5_piece_t piece = { p, n };
  md5_lane_t lane = { s, &piece, 1 };
  cursor_t c = { &lane, 0, 0 };
  const uint8_t *at = NULL;
  for (size_t k; (k = ready(&c, &at)) > 0;) { blocks_scalar(s->h, at, k); took(&c, k); }
}

void md5s_digest (const md5s_t *s, uint8_t out[16]) {
  md5s_t t = *s;
  uint64_t bits = t.len * 8;
  uint8_t pad[72] = { 0x80 };
  size_t npad = (t.nbuf < 56 ? 56 : 120) - t.nbuf;
  for (int i = 0; i < 8; i++) pad[npad + (size_t) i] = (uint8_t) (bits >> (8 * i));
  md5s_update(&t, pad, npad + 8);
  for (int j = 0; j < 4; j++) for (int i = 0; i < 4; i++) out[4 * j + i] = (uint8_t) (t.h[j] >> (8 * i));
}

void md5_lanes (md5_lane_t *lanes, size_t nlanes) {
  int k = kernel >= 0 ? kernel : md5_best_kernel();
#ifdef MD5_X86
  kernel_fn *run = k == MD5_AVX512 ? kernel_avx512 : k == MD5_AVX2 ? kernel_avx2 : NULL;
#else
  void *run = NULL;
  (void) k;
#endif
  if (run == NULL || nlanes == 1) {
    for (size_t l = 0; l < nlanes; l++) for (size_t i = 0; i < lanes[l].npieces; i++) md5s_update(lanes[l].s, lanes[l].pieces[i].p, lanes[l].pieces[i].n);
    return;
  }
#ifdef MD5_X86
  static const uint8_t idle_block[64];
  md5s_t idle_state[8];
  memset(idle_state, 0, sizeof idle_state);
  cursor_t slot[8];
  int used[8] = { 0 };
  size_t next = 0;
  for (;;) {
    md5s_t *s[8];
    const uint8_t *p[8];
    size_t adv[8], n[8], m = SIZE_MAX;
    int active = 0, last = -1;
    for (int i = 0; i < 8; i++) {
      n[i] = 0;
      for (;;) {
        if (!used[i]) {
          if (next == nlanes) break;
          slot[i] = (cursor_t) { &lanes[next++], 0, 0 };
          used[i] = 1;
        }
        if ((n[i] = ready(&slot[i], &p[i])) > 0) break;
        used[i] = 0;
      }
      if (n[i] > 0) {
        s[i] = slot[i].lane->s;
        adv[i] = 64;
        if (n[i] < m) m = n[i];
        active++;
        last = i;
      } else {
        s[i] = &idle_state[i];
        p[i] = idle_block;
        adv[i] = 0;
      }
    }
    if (active == 0) return;
    if (active == 1) {
      blocks_scalar(s[last]->h, p[last], n[last]);
      took(&slot[last], n[last]);
      continue;
    }
    run(s, p, adv, m);
    for (int i = 0; i < 8; i++) if (n[i] > 0) took(&slot[i], m);
  }
#endif
}
