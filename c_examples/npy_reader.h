/* A small reader for version 1.x .npy files (little-endian f32 or i64, C order, rank <= 4),
 * shared by the C and C++ examples. Header-only: every function is static inline.
 *
 *   npy_array a;
 *   if (npy_read("x.npy", &a) != 0) ...   (a.descr is "<f4" or "<i8")
 *   ... a.dims[0..a.rank), a.count elements at a.data ...
 *   npy_free(&a);
 */
#ifndef XQ_EXAMPLES_NPY_READER_H
#define XQ_EXAMPLES_NPY_READER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A loaded .npy array: shape, element type ("<f4" or "<i8") and the raw little-endian
 * payload (`count` elements, owned; release with npy_free). */
typedef struct {
  int64_t dims[4];
  size_t rank;
  size_t count;
  char descr[4];
  unsigned char *data;
} npy_array;

/* Parses the shape tuple that follows "'shape': (" into `out`; returns 0 on success. */
static inline int npy_parse_shape(const char *p, size_t elem, npy_array *out) {
  out->count = 1;
  out->rank = 0;
  for (;;) {
    char *end;
    long long d;
    while (*p == ',' || *p == ' ') p++;
    if (*p == ')') return 0;
    if (out->rank == 4) return 1;
    d = strtoll(p, &end, 10);
    if (end == p || d < 0) return 1;
    if (d > 0 && out->count > SIZE_MAX / elem / (size_t)d) return 1;
    out->dims[out->rank++] = d;
    out->count *= (size_t)d;
    p = end;
  }
}

/* Reads `path` into `out`; returns 0 on success (then the caller owns out->data). */
static inline int npy_read(const char *path, npy_array *out) {
  unsigned char magic[10];
  char header[512];
  const char *p;
  size_t header_len, elem, got = 0;
  FILE *f = fopen(path, "rb");
  memset(out, 0, sizeof *out);
  if (f == NULL) return 1;
  if (fread(magic, 1, 10, f) != 10 || memcmp(magic, "\x93NUMPY", 6) != 0 || magic[6] != 1) goto fail;
  header_len = (size_t)magic[8] | ((size_t)magic[9] << 8);
  if (header_len >= sizeof header || fread(header, 1, header_len, f) != header_len) goto fail;
  header[header_len] = '\0';
  p = strstr(header, "'descr': '");
  if (p == NULL || strstr(header, "'fortran_order': False") == NULL) goto fail;
  memcpy(out->descr, p + 10, 3);
  out->descr[3] = '\0';
  elem = strcmp(out->descr, "<f4") == 0 ? 4 : strcmp(out->descr, "<i8") == 0 ? 8 : 0;
  p = strstr(header, "'shape': (");
  if (elem == 0 || p == NULL || npy_parse_shape(p + 10, elem, out) != 0) goto fail;
  out->data = (unsigned char *)malloc(out->count ? out->count * elem : 1);
  if (out->data != NULL) got = fread(out->data, elem, out->count, f);
  fclose(f);
  if (got == out->count) return 0;
  free(out->data);
  out->data = NULL;
  return 1;
fail:
  fclose(f);
  return 1;
}

/* Releases the payload of an array read by npy_read (safe on a zeroed array). */
static inline void npy_free(npy_array *a) {
  free(a->data);
  a->data = NULL;
}

#endif
