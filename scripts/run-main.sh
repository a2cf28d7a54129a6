#!/usr/bin/env bash
# The main job, end to end: the digits flow with the `xq` CLI (float model vs int8 program:
# partition summary, accuracy, latency; the program is saved, reloaded and executed), then
# libxq built and installed with CMake and the C / C++ consumers (including the same digits
# flow through the C API) built through find_package(xq) and run by ctest.
set -euo pipefail
source "$(dirname "$0")/lib/venv.sh"
cd "$xq_root"
echo "== digits: float ONNX vs int8 program (xq digits-demo)"
cargo build --release --locked --bin xq
mkdir -p build
target/release/xq digits-demo --fixtures tests/fixtures --output build/digits_cnn.xq
echo "== C API consumers"
source scripts/lib/cmake-install.sh
rm -rf build/c_examples
cmake -S c_examples -B build/c_examples -DCMAKE_PREFIX_PATH="$xq_prefix" >/dev/null
cmake --build build/c_examples
(cd build/c_examples && ctest --output-on-failure)
