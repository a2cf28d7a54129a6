/* Checks that the linked libxq matches the header it was compiled with, and that an error
 * path behaves as the C API promises: a NULL argument gives a specific status and a message
 * naming the argument. Exits 0 on success. */
#include <stdio.h>
#include <string.h>

#include "xq.h"

static int fail(const char *what) {
  fprintf(stderr, "FAIL: %s (last error: %s)\n", what, xq_last_error_message());
  return 1;
}

int main(void) {
  if (xq_version() != XQ_VERSION) return fail("xq_version() differs from XQ_VERSION");
  if (strcmp(xq_version_string(), XQ_VERSION_STRING) != 0) return fail("version string differs");

  xq_status st = xq_get_cpu_info(NULL);
  if (st != XQ_ERROR_NULL_POINTER) return fail("NULL info did not give XQ_ERROR_NULL_POINTER");
  if (strstr(xq_last_error_message(), "info") == NULL) return fail("message does not name `info`");
  printf("error path: %s: %s\n", xq_status_name((int)st), xq_last_error_message());

  xq_cpu_info info;
  st = xq_get_cpu_info(&info);
  if (st != XQ_OK) return fail("xq_get_cpu_info failed");
  if (xq_last_error_message()[0] != '\0') return fail("message not cleared after success");
  printf("libxq %s: avx2=%d avx512vnni=%d selected_isa=%d cpus=%u\n", xq_version_string(),
         (int)info.supports_avx2, (int)info.supports_avx512vnni, (int)info.selected_isa,
         (unsigned)info.available_cpus);
  return 0;
}
