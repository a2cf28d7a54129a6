/* The delegate flow through the C API on the digits CNN: load a QDQ model (ONNX Runtime
 * quantize_static output shipped in tests/fixtures/delegate), compile it into a program,
 * print the partition report, classify the test split, save the program, load it back and
 * check the reloaded program's outputs are bit-identical.
 *
 * Usage: program_digits QDQ.onnx TEST_X.npy TEST_Y.npy OUT.xq [MIN_ACCURACY]
 * Exits 0 when accuracy >= MIN_ACCURACY (default 0.9833: float 0.9933 minus one point) and
 * the reloaded program agrees exactly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xq.h"

static int fail(const char *what) {
  fprintf(stderr, "FAIL: %s (last error: %s)\n", what, xq_last_error_message());
  return 1;
}

/* Reads a little-endian .npy file's payload (after the header) into a new buffer. */
static void *read_npy(const char *path, size_t *payload_bytes) {
  FILE *f = fopen(path, "rb");
  unsigned char head[10];
  void *data = NULL;
  long size;
  size_t header;
  if (!f) return NULL;
  if (fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY", 6) != 0 || head[6] != 1) goto done;
  header = (size_t)head[8] | ((size_t)head[9] << 8);
  if (fseek(f, 0, SEEK_END) != 0) goto done;
  size = ftell(f);
  if (size < 0 || (size_t)size < 10 + header) goto done;
  *payload_bytes = (size_t)size - 10 - header;
  if (fseek(f, (long)(10 + header), SEEK_SET) != 0) goto done;
  data = malloc(*payload_bytes ? *payload_bytes : 1);
  if (data && fread(data, 1, *payload_bytes, f) != *payload_bytes) {
    free(data);
    data = NULL;
  }
done:
  fclose(f);
  return data;
}

/* Processor time in milliseconds (C99 has no portable wall clock; the program is
 * single-threaded here, so both agree). */
static double now_ms(void) { return (double)clock() * 1e3 / (double)CLOCKS_PER_SEC; }

/* Runs every sample; writes the 10 logits of each into `logits`. */
static int classify(const xq_program *program, const float *x, size_t n, float *logits) {
  int64_t in_dims[4] = {1, 1, 8, 8};
  size_t i;
  for (i = 0; i < n; i++) {
    int64_t out_dims[2];
    xq_tensor in, out;
    in.dtype = XQ_DTYPE_F32;
    in.rank = 4;
    in.dims = in_dims;
    in.data = (void *)(x + i * 64);
    in.byte_length = 64 * sizeof(float);
    out.dtype = XQ_DTYPE_F32;
    out.rank = 2;
    out.dims = out_dims;
    out.data = logits + i * 10;
    out.byte_length = 10 * sizeof(float);
    if (xq_execute(program, &in, 1, &out, 1) != XQ_OK) return fail("xq_execute");
  }
  return 0;
}

int main(int argc, char **argv) {
  xq_model *model = NULL;
  xq_program *program = NULL, *reloaded = NULL;
  xq_program_options options = xq_program_options_default();
  const char *report = NULL;
  const int64_t dims[4] = {1, 1, 8, 8};
  size_t x_bytes = 0, y_bytes = 0, n, i, correct = 0;
  float *x, *logits, *logits2;
  int64_t *y;
  double min_accuracy = argc > 5 ? atof(argv[5]) : 0.9833, t0, ms, accuracy;

  if (argc < 5) {
    fprintf(stderr, "usage: %s QDQ.onnx TEST_X.npy TEST_Y.npy OUT.xq [MIN_ACCURACY]\n", argv[0]);
    return 2;
  }
  x = read_npy(argv[2], &x_bytes);
  y = read_npy(argv[3], &y_bytes);
  if (!x || !y) return fail("cannot read the test split");
  n = y_bytes / sizeof(int64_t);
  if (x_bytes != n * 64 * sizeof(float)) return fail("test split sizes differ");
  logits = malloc(n * 10 * sizeof(float));
  logits2 = malloc(n * 10 * sizeof(float));
  if (!logits || !logits2) return fail("out of memory");

  if (xq_model_load_file(argv[1], &model) != XQ_OK) return fail("xq_model_load_file");
  if (xq_model_fix_input_shape(model, "input", dims, 4) != XQ_OK) return fail("fix input shape");
  options.threads = 1;
  if (xq_program_compile(model, &options, &program) != XQ_OK) return fail("xq_program_compile");
  xq_model_free(model);
  if (xq_program_report(program, &report) != XQ_OK) return fail("xq_program_report");
  printf("%s", report);

  t0 = now_ms();
  if (classify(program, x, n, logits)) return 1;
  ms = now_ms() - t0;
  for (i = 0; i < n; i++) {
    size_t k, best = 0;
    for (k = 1; k < 10; k++)
      if (logits[i * 10 + k] > logits[i * 10 + best]) best = k;
    correct += (int64_t)best == y[i];
  }
  accuracy = (double)correct / (double)n;
  printf("int8 accuracy %.4f on %zu test images, %.4f ms per image\n", accuracy, n, ms / (double)n);

  if (xq_program_save(program, argv[4]) != XQ_OK) return fail("xq_program_save");
  t0 = now_ms();
  if (xq_program_load_file(argv[4], &options, &reloaded) != XQ_OK) return fail("xq_program_load_file");
  printf("program saved to %s and loaded in %.3f ms\n", argv[4], now_ms() - t0);
  if (classify(reloaded, x, n, logits2)) return 1;
  if (memcmp(logits, logits2, n * 10 * sizeof(float)) != 0) return fail("reloaded program differs");
  printf("reloaded program: outputs bit-identical\n");

  xq_program_free(program);
  xq_program_free(reloaded);
  free(x);
  free(y);
  free(logits);
  free(logits2);
  if (accuracy < min_accuracy) {
    fprintf(stderr, "FAIL: accuracy %.4f below %.4f\n", accuracy, min_accuracy);
    return 1;
  }
  return 0;
}
