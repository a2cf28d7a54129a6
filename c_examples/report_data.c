/* The partitioning report as data, as a host application would show it: compile the QDQ
 * digits CNN twice (every pattern delegated; delegation disabled, so every compute node is
 * refused with a reason), print each program's node table (name, op, partition or the
 * reason) and its JSON size, then save the first program, load it back and check the
 * reloaded report is the same.
 *
 * Usage: report_data DIGITS_CNN_QDQ.onnx OUT.xq   (tests/fixtures/delegate)
 * Exits 0 when the records agree with the summary and survive the reload. */
#include <stdio.h>
#include <string.h>

#include "xq.h"

static int fail(const char *what) {
  fprintf(stderr, "FAIL: %s (last error: %s)\n", what, xq_last_error_message());
  return 1;
}

/* Prints the node table of `program` and checks it against the summary; the number of
 * records in `*count`. */
static int print_table(const xq_program *program, size_t *count) {
  xq_report_summary summary;
  xq_report_node node;
  const char *json = NULL;
  size_t i, delegated = 0, refused = 0;
  summary.struct_size = sizeof summary; /* the size this program was compiled with */
  node.struct_size = sizeof node;
  if (xq_program_report_summary(program, &summary) != XQ_OK) return fail("xq_program_report_summary");
  if (xq_program_report_node_count(program, count) != XQ_OK) return fail("xq_program_report_node_count");
  printf("%zu partition(s), %zu delegated, %zu not delegated, %zu interpreted (of %zu nodes)\n",
         summary.partitions, summary.delegated_nodes, summary.refused_nodes, summary.interpreted_nodes,
         summary.graph_nodes);
  printf("  %-24s %-18s %s\n", "node", "op", "partition / reason");
  for (i = 0; i < *count; i++) {
    if (xq_program_report_node(program, i, &node) != XQ_OK) return fail("xq_program_report_node");
    if (node.partition >= 0) {
      if (node.reason != XQ_REASON_NONE) return fail("a delegated node has a reason");
      printf("  %-24s %-18s partition %d\n", node.name, node.op_type, (int)node.partition);
      delegated++;
    } else {
      /* New reason codes are appended in later versions: xq_reason_name names them all. */
      if (node.reason == XQ_REASON_NONE) return fail("a refused node has no reason");
      printf("  %-24s %-18s %s: %s\n", node.name, node.op_type, xq_reason_name(node.reason), node.detail);
      refused++;
    }
  }
  if (delegated != summary.delegated_nodes || refused != summary.refused_nodes)
    return fail("the records disagree with the summary");
  if (xq_program_report_json(program, &json) != XQ_OK) return fail("xq_program_report_json");
  if (json[0] != '{' || strstr(json, "\"version\": 1") == NULL) return fail("the JSON report");
  printf("  (JSON: %zu bytes)\n", strlen(json));
  return 0;
}

/* Compiles `model` in `partition_mode`. */
static int compile(const xq_model *model, int32_t partition_mode, xq_program **program) {
  xq_program_config config;
  if (xq_program_config_init(&config, sizeof config) != XQ_OK) return fail("xq_program_config_init");
  config.threads = 1;
  config.partition_mode = partition_mode;
  if (xq_program_compile_with_config(model, &config, program) != XQ_OK) return fail("compile");
  return 0;
}

int main(int argc, char **argv) {
  xq_model *model = NULL;
  xq_program *all = NULL, *none = NULL, *loaded = NULL;
  const char *json_all = NULL, *json_loaded = NULL;
  size_t n_all = 0, n_none = 0, n_loaded = 0;
  int64_t dims[4] = {1, 1, 8, 8};
  int status = 1;
  if (argc != 3) {
    fprintf(stderr, "usage: %s DIGITS_CNN_QDQ.onnx OUT.xq\n", argv[0]);
    return 2;
  }
  if (xq_model_load_file(argv[1], &model) != XQ_OK) return fail("xq_model_load_file");
  if (xq_model_fix_input_shape(model, "input", dims, 4) != XQ_OK) {
    fail("xq_model_fix_input_shape");
    goto done;
  }
  if (compile(model, XQ_PARTITION_ALL, &all) || compile(model, XQ_PARTITION_NONE, &none)) goto done;
  printf("== delegated\n");
  if (print_table(all, &n_all)) goto done;
  printf("== delegation disabled\n");
  if (print_table(none, &n_none)) goto done;
  if (n_all == 0 || n_none != n_all) {
    fail("both programs list the same compute nodes");
    goto done;
  }
  if (xq_program_save(all, argv[2]) != XQ_OK || xq_program_load_file_with_config(argv[2], NULL, &loaded) != XQ_OK) {
    fail("save and reload");
    goto done;
  }
  printf("== reloaded from %s\n", argv[2]);
  if (print_table(loaded, &n_loaded)) goto done;
  if (xq_program_report_json(all, &json_all) != XQ_OK || xq_program_report_json(loaded, &json_loaded) != XQ_OK ||
      n_loaded != n_all || strcmp(json_all, json_loaded) != 0) {
    fail("the reloaded report differs");
    goto done;
  }
  printf("OK\n");
  status = 0;
done:
  xq_program_free(loaded);
  xq_program_free(none);
  xq_program_free(all);
  xq_model_free(model);
  return status;
}
