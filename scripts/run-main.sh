#!/usr/bin/env bash
# The main job, end to end: builds and installs libxq with CMake, builds the C and C++
# consumers through find_package(xq), and runs them.
set -euo pipefail
source "$(dirname "$0")/lib/venv.sh"
cd "$xq_root"
source scripts/lib/cmake-install.sh
rm -rf build/c_examples
cmake -S c_examples -B build/c_examples -DCMAKE_PREFIX_PATH="$xq_prefix" >/dev/null
cmake --build build/c_examples
build/c_examples/version_check_c
build/c_examples/version_check_cpp
