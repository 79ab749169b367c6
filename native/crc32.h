// bucketfs: CRC-32 (zlib's: reflected 0xEDB88320) of whole chunks, with carry-less
// multiplication (PCLMULQDQ) where the CPU has it. The zlib that Node exports to addons
// has no SIMD CRC (measured 2.3-2.6 GB/s here, about a third of a read's pool time);
// folding four 128-bit lanes at once does several times that. The folding constants are
// the ones from Intel's "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ"
// for this polynomial (as in Linux's and Chromium's CRC-32). Included by native/chunkio.c
// and, through scripts/patch-fuse-native.js, by the patched fuse-native addon.
#ifndef BUCKETFS_CRC32_H
#define BUCKETFS_CRC32_H
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <zlib.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BUCKETFS_CRC32_FOLD 1

/** ~CRC of len bytes (a multiple of 16, at least 64) folded into crc (not inverted). */
__attribute__((target("pclmul,sse4.1")))
static uint32_t bucketfs_crc32_fold (const unsigned char *buf, size_t len, uint32_t crc) {
  const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596LL, 0x0154442bd4LL);
  const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009eLL, 0x01751997d0LL);
  const __m128i k5 = _mm_set_epi64x(0, 0x0163cd6124LL);
  const __m128i poly = _mm_set_epi64x(0x01f7011641LL, 0x01db710641LL);
  const __m128i mask32 = _mm_setr_epi32(~0, 0, ~0, 0);
  __m128i x1, x2, x3, x4, x5, x6, x7, x8;
  x1 = _mm_loadu_si128((const __m128i *) (buf + 0x00));
  x2 = _mm_loadu_si128((const __m128i *) (buf + 0x10));
  x3 = _mm_loadu_si128((const __m128i *) (buf + 0x20));
  x4 = _mm_loadu_si128((const __m128i *) (buf + 0x30));
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int) crc));
  buf += 64;
  len -= 64;
  // Four lanes folded 64 bytes at a time.
  while (len >= 64) {
    x5 = _mm_clmulepi64_si128(x1, k1k2, 0x00);
    x6 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
    x7 = _mm_clmulepi64_si128(x3, k1k2, 0x00);
    x8 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
    x2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
    x3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
    x4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), _mm_loadu_si128((const __m128i *) (buf + 0x00)));
    x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), _mm_loadu_si128((const __m128i *) (buf + 0x10)));
    x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), _mm_loadu_si128((const __m128i *) (buf + 0x20)));
    x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), _mm_loadu_si128((const __m128i *) (buf + 0x30)));
    buf += 64;
    len -= 64;
  }
  // The four lanes into one.
  x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
  x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
  x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
  x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x3), x5);
  x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
  x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x4), x5);
  // What is left, 16 bytes at a time.
  while (len >= 16) {
    x2 = _mm_loadu_si128((const __m128i *) buf);
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
    buf += 16;
    len -= 16;
  }
  // 128 bits to 64, then Barrett's reduction to 32.
  x2 = _mm_clmulepi64_si128(x1, k3k4, 0x10);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_and_si128(x1, mask32);
  x1 = _mm_clmulepi64_si128(x1, k5, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  x2 = _mm_and_si128(x1, mask32);
  x2 = _mm_clmulepi64_si128(x2, poly, 0x10);
  x2 = _mm_and_si128(x2, mask32);
  x2 = _mm_clmulepi64_si128(x2, poly, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  return (uint32_t) _mm_extract_epi32(x1, 1);
}
#endif

/** zlib's crc32(crc, buf, len), for any length. */
static uint32_t bucketfs_crc32 (uint32_t crc, const unsigned char *buf, size_t len) {
#ifdef BUCKETFS_CRC32_FOLD
  static int fold = -1;
  // ($BUCKETFS_CRC_FOLD=0: zlib's only, for comparison.)
  if (fold < 0) {
    const char *off = getenv("BUCKETFS_CRC_FOLD");
    fold = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1") && !(off != NULL && off[0] == '0');
  }
  if (fold && len >= 64) {
    size_t n = len & ~(size_t) 15;
    crc = ~bucketfs_crc32_fold(buf, n, ~crc);
    buf += n;
    len -= n;
  }
#endif
  // zlib's takes a uInt length: fed in pieces below 4 GiB.
  while (len > 0) {
    size_t n = len > (1u << 30) ? (1u << 30) : len;
    crc = (uint32_t) crc32(crc, buf, (uInt) n);
    buf += n;
    len -= n;
  }
  return crc;
}
#endif
