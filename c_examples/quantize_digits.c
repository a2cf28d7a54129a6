/* The quantizer flow from C on real data: load the digits CNN, quantize it static
 * per-channel (XNNPACKQuantizer's default recipe), calibrate on the training split with a
 * progress bar, convert, save the QDQ ONNX, then check held-out accuracy of the QDQ model
 * (run by libxq's float interpreter) is within 1 point of the float model's.
 *
 * Usage: quantize_digits DIGITS_DIR OUTPUT.onnx   (DIGITS_DIR = tests/fixtures/digits)
 * Exits 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy_reader.h"
#include "xq.h"

#define SAMPLE 64 /* 1 x 8 x 8 pixels */
#define CLASSES 10

static int fail(const char *what) {
  fprintf(stderr, "FAIL: %s (last error: %s)\n", what, xq_last_error_message());
  return 1;
}

static void progress(void *user, size_t done, size_t total) {
  int width = 40, filled = (int)(width * done / (total ? total : 1)), i;
  (void)user;
  fprintf(stderr, "\rcalibrating [");
  for (i = 0; i < width; i++) fputc(i < filled ? '#' : ' ', stderr);
  fprintf(stderr, "] %zu/%zu", done, total);
  if (done >= total) fputc('\n', stderr);
}

/* Top-1 accuracy of `model` on `x` (n x 1 x 8 x 8 f32) against labels `y` (i64). */
static int accuracy(xq_model *model, const npy_array *x, const npy_array *y, double *acc) {
  int64_t in_dims[4] = {0, 1, 8, 8}, out_dims[2] = {0, 0};
  float *logits;
  size_t n = (size_t)x->dims[0], i, correct = 0;
  xq_tensor in, out;
  logits = malloc(n * CLASSES * sizeof(float));
  if (logits == NULL) return 1;
  in_dims[0] = (int64_t)n;
  in.dtype = XQ_DTYPE_F32;
  in.rank = 4;
  in.dims = in_dims;
  in.data = x->data;
  in.byte_length = n * SAMPLE * sizeof(float);
  out.dtype = XQ_DTYPE_F32;
  out.rank = 2;
  out.dims = out_dims;
  out.data = logits;
  out.byte_length = n * CLASSES * sizeof(float);
  if (xq_model_run_float(model, &in, 1, &out, 1) != XQ_OK) {
    free(logits);
    return 1;
  }
  for (i = 0; i < n; i++) {
    size_t c, best = 0;
    for (c = 1; c < CLASSES; c++)
      if (logits[i * CLASSES + c] > logits[i * CLASSES + best]) best = c;
    if ((int64_t)best == ((const int64_t *)(const void *)y->data)[i]) correct++;
  }
  free(logits);
  *acc = (double)correct / (double)n;
  return 0;
}

int main(int argc, char **argv) {
  char path[1024];
  npy_array train, test_x, test_y;
  xq_model *model = NULL, *qdq = NULL;
  xq_quantizer *quantizer = NULL;
  xq_quant_config config;
  const char *report;
  size_t n, start, seen = 0;
  double float_acc, qdq_acc;
  if (argc != 3) {
    fprintf(stderr, "usage: %s DIGITS_DIR OUTPUT.onnx\n", argv[0]);
    return 2;
  }
  snprintf(path, sizeof path, "%s/digits_train_x.npy", argv[1]);
  if (npy_read(path, &train) != 0 || strcmp(train.descr, "<f4") != 0) return fail("read train split");
  snprintf(path, sizeof path, "%s/digits_test_x.npy", argv[1]);
  if (npy_read(path, &test_x) != 0) return fail("read test inputs");
  snprintf(path, sizeof path, "%s/digits_test_y.npy", argv[1]);
  if (npy_read(path, &test_y) != 0 || strcmp(test_y.descr, "<i8") != 0) return fail("read test labels");
  snprintf(path, sizeof path, "%s/digits_cnn.onnx", argv[1]);
  if (xq_model_load_file(path, &model) != XQ_OK) return fail("load model");

  if (xq_quant_config_default(&config) != XQ_OK) return fail("default config");
  if (xq_quantizer_new(&config, &quantizer) != XQ_OK) return fail("new quantizer");
  n = (size_t)train.dims[0];
  if (xq_quantizer_set_progress(quantizer, progress, NULL, n) != XQ_OK) return fail("set progress");
  if (xq_quantizer_prepare(quantizer, model) != XQ_OK) return fail("prepare");
  for (start = 0; start < n; start += 128) {
    size_t rows = n - start < 128 ? n - start : 128;
    int64_t dims[4] = {0, 1, 8, 8};
    xq_tensor batch;
    dims[0] = (int64_t)rows;
    batch.dtype = XQ_DTYPE_F32;
    batch.rank = 4;
    batch.dims = dims;
    batch.data = train.data + start * SAMPLE * sizeof(float);
    batch.byte_length = rows * SAMPLE * sizeof(float);
    if (xq_calibrate(quantizer, &batch, 1) != XQ_OK) return fail("calibrate");
  }
  if (xq_quantizer_samples_seen(quantizer, &seen) != XQ_OK || seen != n) return fail("sample count");
  if (xq_quantizer_report(quantizer, &report) != XQ_OK) return fail("report");
  printf("%s", report);
  if (xq_convert(quantizer, &qdq) != XQ_OK) return fail("convert");
  if (xq_model_save_onnx(qdq, argv[2]) != XQ_OK) return fail("save QDQ ONNX");

  if (accuracy(model, &test_x, &test_y, &float_acc) != 0) return fail("float accuracy");
  if (accuracy(qdq, &test_x, &test_y, &qdq_acc) != 0) return fail("QDQ accuracy");
  printf("held-out accuracy: float %.4f, int8 QDQ %.4f; saved %s\n", float_acc, qdq_acc, argv[2]);
  if (qdq_acc < float_acc - 0.01) return fail("QDQ accuracy more than 1 point below float");

  xq_model_free(qdq);
  xq_quantizer_free(quantizer);
  xq_model_free(model);
  npy_free(&train);
  npy_free(&test_x);
  npy_free(&test_y);
  return 0;
}
