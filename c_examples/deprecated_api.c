/* The 0.1 program API, deprecated since 0.2 and removed in 0.3, keeps working until then:
 * xq_program_options_default, xq_program_compile, xq_program_load_file and
 * xq_program_load_buffer give the same report and bit-identical outputs as the 0.2 calls
 * (xq_program_config_init and the *_with_config functions). Built with
 * -Wno-deprecated-declarations, since calling them is the point.
 *
 * Usage: deprecated_api DIGITS_CNN_QDQ.onnx OUT.xq   (tests/fixtures/delegate)
 * Exits 0 when both paths agree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xq.h"

#define SAMPLE 64 /* 1 x 8 x 8 pixels */
#define CLASSES 10

static int fail(const char *what) {
  fprintf(stderr, "FAIL: %s (last error: %s)\n", what, xq_last_error_message());
  return 1;
}

/* Runs the program on a fixed synthetic image; its logits. */
static int run(const xq_program *program, float *logits) {
  float x[SAMPLE];
  int64_t in_dims[4] = {1, 1, 8, 8}, out_dims[2];
  xq_tensor in, out;
  size_t k;
  for (k = 0; k < SAMPLE; k++) x[k] = (float)(k % 17) / 16.0f;
  in.dtype = XQ_DTYPE_F32;
  in.rank = 4;
  in.dims = in_dims;
  in.data = x;
  in.byte_length = sizeof x;
  out.dtype = XQ_DTYPE_F32;
  out.rank = 2;
  out.dims = out_dims;
  out.data = logits;
  out.byte_length = CLASSES * sizeof(float);
  return xq_execute(program, &in, 1, &out, 1) == XQ_OK ? 0 : fail("xq_execute");
}

/* Reads a whole file; NULL on failure. */
static void *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  long n;
  void *bytes = NULL;
  if (f == NULL) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
    bytes = malloc((size_t)n);
    if (bytes != NULL && fread(bytes, 1, (size_t)n, f) != (size_t)n) {
      free(bytes);
      bytes = NULL;
    }
    *size = (size_t)n;
  }
  fclose(f);
  return bytes;
}

int main(int argc, char **argv) {
  xq_model *model = NULL;
  xq_program *old_program = NULL, *new_program = NULL, *from_file = NULL, *from_buffer = NULL;
  xq_program_options options = xq_program_options_default();
  xq_program_config config;
  const char *old_report = NULL, *new_report = NULL;
  const int64_t dims[4] = {1, 1, 8, 8};
  float expected[CLASSES], logits[CLASSES];
  const xq_program *others[3];
  size_t size = 0, i;
  void *bytes;

  if (argc != 3) {
    fprintf(stderr, "usage: %s DIGITS_CNN_QDQ.onnx OUT.xq\n", argv[0]);
    return 2;
  }
  if (xq_model_load_file(argv[1], &model) != XQ_OK) return fail("xq_model_load_file");
  if (xq_model_fix_input_shape(model, "input", dims, 4) != XQ_OK) return fail("fix input shape");

  options.threads = 1;
  if (xq_program_compile(model, &options, &old_program) != XQ_OK) return fail("xq_program_compile");
  if (xq_program_config_init(&config, sizeof config) != XQ_OK) return fail("xq_program_config_init");
  config.threads = 1;
  if (xq_program_compile_with_config(model, &config, &new_program) != XQ_OK)
    return fail("xq_program_compile_with_config");
  if (xq_program_report(old_program, &old_report) != XQ_OK ||
      xq_program_report(new_program, &new_report) != XQ_OK)
    return fail("xq_program_report");
  if (strcmp(old_report, new_report) != 0) return fail("the reports differ");

  if (xq_program_save(old_program, argv[2]) != XQ_OK) return fail("xq_program_save");
  if (xq_program_load_file(argv[2], &options, &from_file) != XQ_OK) return fail("xq_program_load_file");
  bytes = read_file(argv[2], &size);
  if (bytes == NULL) return fail("cannot read the saved program");
  if (xq_program_load_buffer(bytes, size, NULL, &from_buffer) != XQ_OK) return fail("xq_program_load_buffer");
  free(bytes);

  if (run(new_program, expected)) return 1;
  others[0] = old_program;
  others[1] = from_file;
  others[2] = from_buffer;
  for (i = 0; i < 3; i++) {
    if (run(others[i], logits)) return 1;
    if (memcmp(expected, logits, sizeof logits) != 0) return fail("outputs differ from the 0.2 API");
  }
  printf("deprecated 0.1 program API: same report, bit-identical outputs\n");

  xq_program_free(old_program);
  xq_program_free(new_program);
  xq_program_free(from_file);
  xq_program_free(from_buffer);
  xq_model_free(model);
  return 0;
}
