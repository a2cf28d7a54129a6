#!/usr/bin/env bash
# Runs every test of libxq on a fresh machine: installs what is missing (a Python virtualenv
# with cmake, onnx, onnxruntime, numpy), then formatting, clippy, all cargo tests (unit,
# integration, header freshness, doc tests), rustdoc without warnings, the CMake build → install → find_package and
# pkg-config consumers → ctest chain.
set -euo pipefail
source "$(dirname "$0")/lib/venv.sh"
cd "$xq_root"
export XQ_STRICT=1

step() { echo; echo "== $*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (warnings denied)"
cargo clippy --locked --all-targets -- -D warnings
step "cargo test (all targets)"
cargo test --locked --all-targets
step "cargo test (doc tests)"
cargo test --locked --doc
step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps

step "CMake build and install into build/prefix"
source scripts/lib/cmake-install.sh
step "C/C++ consumers through find_package(xq) and pkg-config, run by ctest"
rm -rf build/c_examples
cmake -S c_examples -B build/c_examples -DCMAKE_PREFIX_PATH="$xq_prefix" >/dev/null
cmake --build build/c_examples
(cd build/c_examples && ctest --output-on-failure)
