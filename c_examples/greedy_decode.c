/* Greedy decoding with a KV cache through the C API: a Llama-style decoder exported the
 * default way with its cache as inputs and outputs (`past_key_values.<layer>.key/.value` in,
 * `present.<layer>.key/.value` out; tests/fixtures/transformers/llama_tiny_kv_dynamo.onnx,
 * seeded random weights), quantized with dynamic int8 linears, compiled ONCE with every
 * length symbolic, then run: one prefill call on the prompt, then one call per new token
 * that hands the previous call's `present.*` back as `past_key_values.*`.
 *
 * Two cache buffers per key / value, each sized for the longest sequence, are swapped from
 * one call to the next (the outputs of one call are the inputs of the next), so the host
 * allocates nothing while decoding.
 *
 * The last decode call runs through `xq_execute_profiled`; its slowest steps are printed (the
 * per-step profile of the C API: label and wall time of every program step).
 *
 * Usage: greedy_decode TRANSFORMERS_FIXTURES_DIR [NEW_TOKENS]
 * Prints the prompt, the generated token ids and the profile of the last step. Exits 0 when
 * every token chosen with the cache is also the greedy choice of one call on the whole
 * sequence without a cache. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy_reader.h"
#include "xq.h"

#define PROMPT 8
#define MAX_PARTS 64 /* cache tensors: 2 per layer */
#define SHOWN_STEPS 5 /* slowest profile steps printed */

static int fail(const char *what) {
  fprintf(stderr, "FAIL: %s (last error: %s)\n", what, xq_last_error_message());
  return 1;
}

static xq_tensor tensor(xq_dtype dtype, int64_t *dims, size_t rank, void *data, size_t bytes) {
  xq_tensor t;
  t.dtype = dtype;
  t.rank = rank;
  t.dims = dims;
  t.data = data;
  t.byte_length = bytes;
  return t;
}

static size_t argmax(const float *row, size_t n) {
  size_t i, best = 0;
  for (i = 1; i < n; i++)
    if (row[i] > row[best]) best = i;
  return best;
}

/* The decoder's geometry, read from the compiled program: cache parts and their
 * [batch, kv_heads, past, head] shape (kv_heads and head fixed), and the vocabulary. */
typedef struct {
  size_t parts, kv_heads, head, vocab;
} geometry;

static int read_geometry(const xq_program *program, geometry *g) {
  size_t n_in, n_out, rank, i;
  int64_t dims[4];
  const char *name;
  xq_dtype dtype;
  if (xq_program_io_count(program, XQ_IO_INPUT, &n_in) != XQ_OK ||
      xq_program_io_count(program, XQ_IO_OUTPUT, &n_out) != XQ_OK)
    return fail("xq_program_io_count");
  if (n_in < 4 || n_in - 3 > MAX_PARTS || n_out != n_in - 2) return fail("not a decoder with a KV cache");
  g->parts = n_in - 3;
  for (i = 0; i < g->parts; i++) {
    if (xq_program_io_info(program, XQ_IO_INPUT, 3 + i, &name, &dtype, dims, 4, &rank) != XQ_OK)
      return fail("xq_program_io_info");
    if (strncmp(name, "past_key_values.", 16) != 0 || rank != 4 || dims[1] <= 0 || dims[3] <= 0)
      return fail("cache inputs are not past_key_values.* [batch, heads, past, head]");
    g->kv_heads = (size_t)dims[1];
    g->head = (size_t)dims[3];
  }
  if (xq_program_io_info(program, XQ_IO_OUTPUT, 0, &name, &dtype, dims, 4, &rank) != XQ_OK || rank != 3 ||
      dims[2] <= 0)
    return fail("logits are not [batch, seq, vocab]");
  g->vocab = (size_t)dims[2];
  return 0;
}

/* One decoder call: `s` tokens `ids` at positions past..past+s-1 after a cache of `past`
 * positions in `in_cache` (one buffer per part); writes the logits of the `s` positions and
 * the cache of past + s positions into `out_cache`. With `profile` non-NULL the call is
 * profiled and `*profile` receives the profile (the caller frees it). */
static int decode_call(const xq_program *program, const geometry *g, const int64_t *ids, size_t s, size_t past,
                       float **in_cache, float **out_cache, size_t capacity, float *logits, xq_profile **profile) {
  int64_t id_dims[2], mask_dims[2], pos_dims[2], logit_dims[3];
  int64_t in_dims[MAX_PARTS][4], out_dims[MAX_PARTS][4];
  xq_tensor inputs[3 + MAX_PARTS], outputs[1 + MAX_PARTS];
  int64_t *mask = malloc((past + s) * sizeof(int64_t)), *positions = malloc(s * sizeof(int64_t));
  size_t i, part_bytes = g->kv_heads * capacity * g->head * sizeof(float);
  xq_status status;
  if (!mask || !positions) return fail("out of memory");
  for (i = 0; i < past + s; i++) mask[i] = 1;
  for (i = 0; i < s; i++) positions[i] = (int64_t)(past + i);
  id_dims[0] = mask_dims[0] = pos_dims[0] = 1;
  id_dims[1] = pos_dims[1] = (int64_t)s;
  mask_dims[1] = (int64_t)(past + s);
  inputs[0] = tensor(XQ_DTYPE_I64, id_dims, 2, (void *)ids, s * sizeof(int64_t));
  inputs[1] = tensor(XQ_DTYPE_I64, mask_dims, 2, mask, (past + s) * sizeof(int64_t));
  inputs[2] = tensor(XQ_DTYPE_I64, pos_dims, 2, positions, s * sizeof(int64_t));
  outputs[0] = tensor(XQ_DTYPE_F32, logit_dims, 3, logits, s * g->vocab * sizeof(float));
  for (i = 0; i < g->parts; i++) {
    in_dims[i][0] = 1;
    in_dims[i][1] = (int64_t)g->kv_heads;
    in_dims[i][2] = (int64_t)past;
    in_dims[i][3] = (int64_t)g->head;
    inputs[3 + i] = tensor(XQ_DTYPE_F32, in_dims[i], 4, in_cache[i], g->kv_heads * past * g->head * sizeof(float));
    outputs[1 + i] = tensor(XQ_DTYPE_F32, out_dims[i], 4, out_cache[i], part_bytes);
  }
  status = profile ? xq_execute_profiled(program, inputs, 3 + g->parts, outputs, 1 + g->parts, profile)
                   : xq_execute(program, inputs, 3 + g->parts, outputs, 1 + g->parts);
  free(mask);
  free(positions);
  if (status != XQ_OK) return fail(profile ? "xq_execute_profiled" : "xq_execute");
  if (logit_dims[1] != (int64_t)s || out_dims[0][2] != (int64_t)(past + s)) return fail("unexpected output shapes");
  return 0;
}

/* Prints the total and the SHOWN_STEPS slowest steps of `profile`. */
static int print_profile(const xq_profile *profile) {
  size_t count, i, j, shown[SHOWN_STEPS], n_shown = 0;
  uint64_t total = 0, ns;
  const char *label;
  if (xq_profile_step_count(profile, &count) != XQ_OK || count == 0) return fail("xq_profile_step_count");
  for (i = 0; i < count; i++) {
    if (xq_profile_step(profile, i, &label, &ns) != XQ_OK) return fail("xq_profile_step");
    total += ns;
  }
  /* Selection of the slowest: SHOWN_STEPS passes over the steps. */
  for (j = 0; j < SHOWN_STEPS && j < count; j++) {
    size_t best = count;
    uint64_t best_ns = 0;
    for (i = 0; i < count; i++) {
      size_t k, taken = 0;
      for (k = 0; k < n_shown; k++) taken |= shown[k] == i;
      if (taken || xq_profile_step(profile, i, &label, &ns) != XQ_OK) continue;
      if (best == count || ns > best_ns) best = i, best_ns = ns;
    }
    shown[n_shown++] = best;
  }
  printf("last decode step: %zu program steps, %.1f us; slowest:\n", count, (double)total / 1e3);
  for (j = 0; j < n_shown; j++) {
    if (xq_profile_step(profile, shown[j], &label, &ns) != XQ_OK) return fail("xq_profile_step");
    printf("  %9.1f us  %s\n", (double)ns / 1e3, label);
  }
  return 0;
}

int main(int argc, char **argv) {
  char path[1024];
  npy_array tokens;
  xq_model *model = NULL, *dynamic = NULL;
  xq_quantizer *quantizer = NULL;
  xq_quant_config qconfig;
  xq_program *program = NULL;
  xq_program_config config;
  xq_profile *profile = NULL;
  geometry g;
  size_t new_tokens = argc > 2 ? (size_t)atoi(argv[2]) : 16, capacity, i, t, past = 0, mismatches = 0;
  float *caches[2][MAX_PARTS], *logits, *whole;
  int64_t *sequence;
  int cur = 0;

  if (argc < 2 || new_tokens == 0 || new_tokens > 1000) {
    fprintf(stderr, "usage: %s TRANSFORMERS_FIXTURES_DIR [NEW_TOKENS (1..1000)]\n", argv[0]);
    return 2;
  }
  snprintf(path, sizeof path, "%s/tokens.npy", argv[1]);
  if (npy_read(path, &tokens) != 0 || strcmp(tokens.descr, "<i8") != 0 || tokens.count < PROMPT)
    return fail("cannot read the token ids");

  /* Load, quantize (dynamic int8 linears: no calibration), compile once. */
  snprintf(path, sizeof path, "%s/llama_tiny_kv_dynamo.onnx", argv[1]);
  if (xq_model_load_file(path, &model) != XQ_OK) return fail("xq_model_load_file");
  if (xq_quant_config_default(&qconfig) != XQ_OK) return fail("xq_quant_config_default");
  qconfig.activation_mode = XQ_ACTIVATIONS_DYNAMIC;
  if (xq_quantizer_new(&qconfig, &quantizer) != XQ_OK) return fail("xq_quantizer_new");
  if (xq_quantizer_prepare(quantizer, model) != XQ_OK) return fail("xq_quantizer_prepare");
  if (xq_convert(quantizer, &dynamic) != XQ_OK) return fail("xq_convert");
  if (xq_program_config_init(&config, sizeof config) != XQ_OK) return fail("xq_program_config_init");
  if (xq_program_compile_with_config(dynamic, &config, &program) != XQ_OK)
    return fail("xq_program_compile_with_config (symbolic lengths)");
  if (read_geometry(program, &g)) return 1;

  capacity = PROMPT + new_tokens;
  sequence = malloc(capacity * sizeof(int64_t));
  logits = malloc(capacity * g.vocab * sizeof(float));
  whole = malloc(capacity * g.vocab * sizeof(float));
  if (!sequence || !logits || !whole) return fail("out of memory");
  for (i = 0; i < g.parts; i++) {
    caches[0][i] = malloc(g.kv_heads * capacity * g.head * sizeof(float));
    caches[1][i] = malloc(g.kv_heads * capacity * g.head * sizeof(float));
    if (!caches[0][i] || !caches[1][i]) return fail("out of memory");
  }
  memcpy(sequence, tokens.data, PROMPT * sizeof(int64_t));

  /* Prefill on the prompt, then one call per token. */
  printf("prompt:");
  for (i = 0; i < PROMPT; i++) printf(" %lld", (long long)sequence[i]);
  printf("\ngenerated:");
  for (t = PROMPT; t < capacity; t++) {
    size_t s = t - past;
    int last = t + 1 == capacity;
    if (decode_call(program, &g, sequence + past, s, past, caches[cur], caches[1 - cur], capacity, logits,
                    last ? &profile : NULL))
      return 1;
    sequence[t] = (int64_t)argmax(logits + (s - 1) * g.vocab, g.vocab);
    printf(" %lld", (long long)sequence[t]);
    past = t;
    cur = 1 - cur;
  }
  printf("\n");
  if (print_profile(profile)) return 1;
  xq_profile_free(profile);

  /* Check: one call on the whole sequence, no cache, makes the same greedy choices. */
  if (decode_call(program, &g, sequence, capacity - 1, 0, caches[1 - cur], caches[cur], capacity, whole, NULL))
    return 1;
  for (t = PROMPT; t < capacity; t++)
    mismatches += (int64_t)argmax(whole + (t - 1) * g.vocab, g.vocab) != sequence[t];
  printf("%zu tokens decoded with the cache; %zu differ from decoding without it\n", new_tokens, mismatches);

  for (i = 0; i < g.parts; i++) {
    free(caches[0][i]);
    free(caches[1][i]);
  }
  free(sequence);
  free(logits);
  free(whole);
  npy_free(&tokens);
  xq_program_free(program);
  xq_quantizer_free(quantizer);
  xq_model_free(dynamic);
  xq_model_free(model);
  return mismatches == 0 ? 0 : 1;
}
