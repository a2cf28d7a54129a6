// Four threads execute one compiled program at once (a program is immutable); every thread
// must get exactly the outputs of a single-threaded run.
//
// Usage: program_threads PROGRAM.xq TEST_X.npy
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "npy_reader.h"
#include "xq.h"

namespace {

/// The f32 payload of an .npy file (empty when it cannot be read or is not f32).
std::vector<float> read_npy_f32(const char *path) {
  npy_array a;
  if (npy_read(path, &a) != 0) return {};
  std::vector<float> out;
  if (std::strcmp(a.descr, "<f4") == 0) {
    out.resize(a.count);
    std::memcpy(out.data(), a.data, a.count * sizeof(float));
  }
  npy_free(&a);
  return out;
}

bool classify(const xq_program *program, const std::vector<float> &x, std::vector<float> &logits) {
  size_t n = x.size() / 64;
  logits.assign(n * 10, 0.0f);
  for (size_t i = 0; i < n; i++) {
    int64_t in_dims[4] = {1, 1, 8, 8};
    int64_t out_dims[2] = {0, 0};
    xq_tensor in{XQ_DTYPE_F32, 4, in_dims, const_cast<float *>(x.data() + i * 64), 64 * sizeof(float)};
    xq_tensor out{XQ_DTYPE_F32, 2, out_dims, logits.data() + i * 10, 10 * sizeof(float)};
    if (xq_execute(program, &in, 1, &out, 1) != XQ_OK) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s PROGRAM.xq TEST_X.npy\n", argv[0]);
    return 2;
  }
  std::vector<float> x = read_npy_f32(argv[2]);
  if (x.empty()) return std::fprintf(stderr, "FAIL: cannot read %s\n", argv[2]), 1;
  xq_program_config config;
  if (xq_program_config_init(&config, sizeof config) != XQ_OK) {
    std::fprintf(stderr, "FAIL: config: %s\n", xq_last_error_message());
    return 1;
  }
  config.threads = 2;
  xq_program *program = nullptr;
  if (xq_program_load_file_with_config(argv[1], &config, &program) != XQ_OK) {
    std::fprintf(stderr, "FAIL: load: %s\n", xq_last_error_message());
    return 1;
  }
  std::vector<float> reference;
  if (!classify(program, x, reference)) return std::fprintf(stderr, "FAIL: %s\n", xq_last_error_message()), 1;

  std::vector<std::vector<float>> results(4);
  std::vector<char> ok(4, 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 4; t++)
    threads.emplace_back([&, t] { ok[t] = classify(program, x, results[t]); });
  for (auto &t : threads) t.join();
  for (size_t t = 0; t < 4; t++) {
    if (!ok[t] || results[t] != reference) {
      std::fprintf(stderr, "FAIL: thread %zu differs from the single-threaded run\n", t);
      return 1;
    }
  }
  std::printf("4 threads x %zu images on one program: outputs identical\n", x.size() / 64);
  xq_program_free(program);
  return 0;
}
