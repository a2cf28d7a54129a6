// C++17 consumer: the same checks as version_check.c through C++ idioms.
#include <cstdio>
#include <stdexcept>
#include <string>

#include "xq.h"

namespace {

// Throws with the library's message when a call fails.
void check(xq_status status, const char *what) {
  if (status != XQ_OK) {
    throw std::runtime_error(std::string(what) + ": " + xq_status_name(status) + ": " + xq_last_error_message());
  }
}

}  // namespace

int main() {
  try {
    if (xq_version() != XQ_VERSION) throw std::runtime_error("xq_version() differs from XQ_VERSION");
    if (std::string(xq_version_string()) != XQ_VERSION_STRING) throw std::runtime_error("version string differs");

    const xq_status null_status = xq_get_cpu_info(nullptr);
    const std::string message = xq_last_error_message();
    if (null_status != XQ_ERROR_NULL_POINTER || message.find("info") == std::string::npos) {
      throw std::runtime_error("NULL argument not reported as XQ_ERROR_NULL_POINTER naming `info`: " + message);
    }

    xq_cpu_info info{};
    check(xq_get_cpu_info(&info), "xq_get_cpu_info");
    std::printf("libxq %s (C++17): selected_isa=%d\n", xq_version_string(), static_cast<int>(info.selected_isa));
    return 0;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "FAIL: %s\n", e.what());
    return 1;
  }
}
