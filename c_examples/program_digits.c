/* The main job through the C API on the digits CNN shipped in the repository: load the
 * float ONNX model, quantize it with libxq's quantizer (static, per-channel, calibrated on
 * the training split), compile the QDQ model into a program, print the partition report,
 * classify the test split with the float model and with the program (accuracy, latency),
 * save the program, load it back and check the reloaded program's outputs are
 * bit-identical; then compile it again with int8 boundaries (`int8_io`) and check that,
 * fed the images quantized with the reported qparams, its int8 logits dequantize to exactly
 * the f32 program's logits.
 *
 * Usage: program_digits DIGITS_DIR OUT.xq   (DIGITS_DIR = tests/fixtures/digits)
 * Exits 0 when int8 accuracy is within 1 point of float and the reloaded program agrees
 * exactly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "npy_reader.h"
#include "xq.h"

#define SAMPLE 64 /* 1 x 8 x 8 pixels */
#define CLASSES 10
#define CALIBRATION_BATCH 128

static int fail(const char *what) {
  fprintf(stderr, "FAIL: %s (last error: %s)\n", what, xq_last_error_message());
  return 1;
}

/* Processor time in milliseconds (C99 has no portable wall clock; everything here runs on
 * one thread, so both agree). */
static double now_ms(void) { return (double)clock() * 1e3 / (double)CLOCKS_PER_SEC; }

/* One image and its logits as xq tensors. */
static void image_tensors(const float *x, float *logits, int64_t *in_dims, int64_t *out_dims,
                          xq_tensor *in, xq_tensor *out) {
  in_dims[0] = 1;
  in_dims[1] = 1;
  in_dims[2] = 8;
  in_dims[3] = 8;
  in->dtype = XQ_DTYPE_F32;
  in->rank = 4;
  in->dims = in_dims;
  in->data = (void *)x;
  in->byte_length = SAMPLE * sizeof(float);
  out->dtype = XQ_DTYPE_F32;
  out->rank = 2;
  out->dims = out_dims;
  out->data = logits;
  out->byte_length = CLASSES * sizeof(float);
}

/* Runs the float model (libxq's interpreter) on every image, one at a time. */
static int classify_float(xq_model *model, const float *x, size_t n, float *logits) {
  size_t i;
  for (i = 0; i < n; i++) {
    int64_t in_dims[4], out_dims[2];
    xq_tensor in, out;
    image_tensors(x + i * SAMPLE, logits + i * CLASSES, in_dims, out_dims, &in, &out);
    if (xq_model_run_float(model, &in, 1, &out, 1) != XQ_OK) return fail("xq_model_run_float");
  }
  return 0;
}

/* Runs the program on every image, one at a time. */
static int classify(const xq_program *program, const float *x, size_t n, float *logits) {
  size_t i;
  for (i = 0; i < n; i++) {
    int64_t in_dims[4], out_dims[2];
    xq_tensor in, out;
    image_tensors(x + i * SAMPLE, logits + i * CLASSES, in_dims, out_dims, &in, &out);
    if (xq_execute(program, &in, 1, &out, 1) != XQ_OK) return fail("xq_execute");
  }
  return 0;
}

/* round(v), ties to even, for |v| < 2^22: adding and subtracting 1.5 * 2^23 rounds in the
 * default rounding mode (no libm needed). */
static float round_half_even(float v) {
  const float magic = 12582912.0f;
  return (v + magic) - magic;
}

/* ONNX QuantizeLinear of one value into an int8 or uint8 code. */
static int quantize_value(float x, float scale, int32_t zero_point, int is_unsigned) {
  float v = x / scale;
  long q;
  if (v > 256.0f) v = 256.0f;
  if (v < -256.0f) v = -256.0f;
  q = (long)round_half_even(v) + zero_point;
  if (is_unsigned) return q < 0 ? 0 : q > 255 ? 255 : (int)q;
  return q < -128 ? -128 : q > 127 ? 127 : (int)q;
}

/* Compiles `qdq` with int8 boundaries and checks, image by image, that its int8 logits
 * dequantize to exactly `expected` (the f32 program's logits). */
static int check_int8_boundaries(xq_model *qdq, const float *x, size_t n, const float *expected) {
  xq_program_config config;
  xq_program *program = NULL;
  const char *name = NULL;
  xq_dtype in_dtype, out_dtype;
  int64_t dims[4];
  size_t rank, i, k;
  float in_scale, out_scale;
  int32_t in_zp, out_zp;
  if (xq_program_config_init(&config, sizeof config) != XQ_OK) return fail("xq_program_config_init");
  config.threads = 1;
  config.int8_io = 1;
  if (xq_program_compile_with_config(qdq, &config, &program) != XQ_OK) return fail("compile with int8_io");
  if (xq_program_io_info(program, XQ_IO_INPUT, 0, &name, &in_dtype, dims, 4, &rank) != XQ_OK ||
      xq_program_io_info(program, XQ_IO_OUTPUT, 0, &name, &out_dtype, dims, 4, &rank) != XQ_OK)
    return fail("xq_program_io_info");
  if ((in_dtype != XQ_DTYPE_I8 && in_dtype != XQ_DTYPE_U8) || (out_dtype != XQ_DTYPE_I8 && out_dtype != XQ_DTYPE_U8))
    return fail("int8_io left an f32 boundary");
  if (xq_program_io_qparams(program, XQ_IO_INPUT, 0, &in_scale, &in_zp) != XQ_OK ||
      xq_program_io_qparams(program, XQ_IO_OUTPUT, 0, &out_scale, &out_zp) != XQ_OK)
    return fail("xq_program_io_qparams");
  for (i = 0; i < n; i++) {
    uint8_t in_codes[SAMPLE], out_codes[CLASSES];
    int64_t in_dims[4] = {1, 1, 8, 8}, out_dims[2];
    xq_tensor in, out;
    for (k = 0; k < SAMPLE; k++)
      in_codes[k] = (uint8_t)quantize_value(x[i * SAMPLE + k], in_scale, in_zp, in_dtype == XQ_DTYPE_U8);
    in.dtype = in_dtype;
    in.rank = 4;
    in.dims = in_dims;
    in.data = in_codes;
    in.byte_length = SAMPLE;
    out.dtype = out_dtype;
    out.rank = 2;
    out.dims = out_dims;
    out.data = out_codes;
    out.byte_length = CLASSES;
    if (xq_execute(program, &in, 1, &out, 1) != XQ_OK) return fail("xq_execute with int8 boundaries");
    for (k = 0; k < CLASSES; k++) {
      int32_t q = out_dtype == XQ_DTYPE_U8 ? (int32_t)out_codes[k] : (int32_t)(int8_t)out_codes[k];
      if ((float)(q - out_zp) * out_scale != expected[i * CLASSES + k]) return fail("int8 boundaries differ");
    }
  }
  printf("int8 boundaries: input scale %g zero point %d, output scale %g zero point %d; logits identical\n",
         (double)in_scale, (int)in_zp, (double)out_scale, (int)out_zp);
  xq_program_free(program);
  return 0;
}

/* Top-1 accuracy of `logits` (n x 10) against `labels`. */
static double accuracy(const float *logits, const int64_t *labels, size_t n) {
  size_t i, correct = 0;
  for (i = 0; i < n; i++) {
    size_t k, best = 0;
    for (k = 1; k < CLASSES; k++)
      if (logits[i * CLASSES + k] > logits[i * CLASSES + best]) best = k;
    correct += (int64_t)best == labels[i];
  }
  return (double)correct / (double)n;
}

/* Prepares `quantizer` on `model`, calibrates it on every training image (batches of
 * CALIBRATION_BATCH) and converts; prints the quantizer report. */
static int quantize(xq_quantizer *quantizer, xq_model *model, const npy_array *train, xq_model **qdq) {
  size_t n = (size_t)train->dims[0], start, seen = 0;
  const char *report = NULL;
  if (xq_quantizer_prepare(quantizer, model) != XQ_OK) return fail("xq_quantizer_prepare");
  for (start = 0; start < n; start += CALIBRATION_BATCH) {
    size_t rows = n - start < CALIBRATION_BATCH ? n - start : CALIBRATION_BATCH;
    int64_t dims[4] = {0, 1, 8, 8};
    xq_tensor batch;
    dims[0] = (int64_t)rows;
    batch.dtype = XQ_DTYPE_F32;
    batch.rank = 4;
    batch.dims = dims;
    batch.data = train->data + start * SAMPLE * sizeof(float);
    batch.byte_length = rows * SAMPLE * sizeof(float);
    if (xq_calibrate(quantizer, &batch, 1) != XQ_OK) return fail("xq_calibrate");
  }
  if (xq_quantizer_samples_seen(quantizer, &seen) != XQ_OK || seen != n) return fail("sample count");
  if (xq_quantizer_report(quantizer, &report) != XQ_OK) return fail("xq_quantizer_report");
  printf("quantizer: %s", report);
  if (xq_convert(quantizer, qdq) != XQ_OK) return fail("xq_convert");
  return 0;
}

int main(int argc, char **argv) {
  char path[1024];
  npy_array train, test_x, test_y;
  xq_model *model = NULL, *qdq = NULL;
  xq_quantizer *quantizer = NULL;
  xq_quant_config config;
  xq_program *program = NULL, *reloaded = NULL;
  xq_program_config program_config;
  const char *report = NULL;
  const int64_t dims[4] = {1, 1, 8, 8};
  size_t n;
  float *x, *float_logits, *logits, *logits2;
  const int64_t *y;
  double t0, float_ms, int8_ms, float_acc, int8_acc;

  if (argc != 3) {
    fprintf(stderr, "usage: %s DIGITS_DIR OUT.xq\n", argv[0]);
    return 2;
  }
  snprintf(path, sizeof path, "%s/digits_train_x.npy", argv[1]);
  if (npy_read(path, &train) != 0 || strcmp(train.descr, "<f4") != 0 || train.rank != 4 ||
      train.count != (size_t)train.dims[0] * SAMPLE)
    return fail("cannot read the training split");
  snprintf(path, sizeof path, "%s/digits_test_x.npy", argv[1]);
  if (npy_read(path, &test_x) != 0 || strcmp(test_x.descr, "<f4") != 0) return fail("cannot read test inputs");
  snprintf(path, sizeof path, "%s/digits_test_y.npy", argv[1]);
  if (npy_read(path, &test_y) != 0 || strcmp(test_y.descr, "<i8") != 0) return fail("cannot read test labels");
  n = test_y.count;
  if (n == 0 || test_x.count != n * SAMPLE) return fail("test split sizes differ");
  x = (float *)(void *)test_x.data;
  y = (const int64_t *)(const void *)test_y.data;
  float_logits = malloc(n * CLASSES * sizeof(float));
  logits = malloc(n * CLASSES * sizeof(float));
  logits2 = malloc(n * CLASSES * sizeof(float));
  if (!float_logits || !logits || !logits2) return fail("out of memory");

  /* Float model: one image per run, as the program runs. */
  snprintf(path, sizeof path, "%s/digits_cnn.onnx", argv[1]);
  if (xq_model_load_file(path, &model) != XQ_OK) return fail("xq_model_load_file");
  if (xq_model_fix_input_shape(model, "input", dims, 4) != XQ_OK) return fail("fix input shape");
  t0 = now_ms();
  if (classify_float(model, x, n, float_logits)) return 1;
  float_ms = (now_ms() - t0) / (double)n;
  float_acc = accuracy(float_logits, y, n);

  /* Quantize (static, per-channel: the default config) → compile. */
  if (xq_quant_config_default(&config) != XQ_OK) return fail("xq_quant_config_default");
  if (xq_quantizer_new(&config, &quantizer) != XQ_OK) return fail("xq_quantizer_new");
  if (quantize(quantizer, model, &train, &qdq)) return 1;
  if (xq_program_config_init(&program_config, sizeof program_config) != XQ_OK)
    return fail("xq_program_config_init");
  program_config.threads = 1;
  if (xq_program_compile_with_config(qdq, &program_config, &program) != XQ_OK)
    return fail("xq_program_compile_with_config");
  if (xq_program_report(program, &report) != XQ_OK) return fail("xq_program_report");
  printf("%s", report);

  t0 = now_ms();
  if (classify(program, x, n, logits)) return 1;
  int8_ms = (now_ms() - t0) / (double)n;
  int8_acc = accuracy(logits, y, n);
  printf("test images: %zu\n", n);
  printf("float accuracy %.4f  latency %.4f ms/image (interpreter)\n", float_acc, float_ms);
  printf("int8  accuracy %.4f  latency %.4f ms/image (libxq program)\n", int8_acc, int8_ms);

  if (xq_program_save(program, argv[2]) != XQ_OK) return fail("xq_program_save");
  t0 = now_ms();
  if (xq_program_load_file_with_config(argv[2], &program_config, &reloaded) != XQ_OK)
    return fail("xq_program_load_file_with_config");
  printf("program saved to %s and loaded in %.3f ms\n", argv[2], now_ms() - t0);
  if (classify(reloaded, x, n, logits2)) return 1;
  if (memcmp(logits, logits2, n * CLASSES * sizeof(float)) != 0) return fail("reloaded program differs");
  printf("reloaded program: outputs bit-identical\n");
  if (check_int8_boundaries(qdq, x, n, logits)) return 1;

  xq_program_free(program);
  xq_program_free(reloaded);
  xq_model_free(qdq);
  xq_quantizer_free(quantizer);
  xq_model_free(model);
  npy_free(&train);
  npy_free(&test_x);
  npy_free(&test_y);
  free(float_logits);
  free(logits);
  free(logits2);
  if (int8_acc < float_acc - 0.01) {
    fprintf(stderr, "FAIL: int8 accuracy %.4f more than 1 point below float %.4f\n", int8_acc, float_acc);
    return 1;
  }
  return 0;
}
