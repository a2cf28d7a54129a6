# Sourced by the scripts in scripts/: builds libxq with CMake (release, sharing cargo's
# target/ directory) and installs it into build/prefix. Sets $xq_prefix.
xq_prefix="$xq_root/build/prefix"
cmake -S "$xq_root" -B "$xq_root/build/cmake" -DCMAKE_BUILD_TYPE=Release \
  -DXQ_CARGO_TARGET_DIR="$xq_root/target" >/dev/null
cmake --build "$xq_root/build/cmake"
cmake --install "$xq_root/build/cmake" --prefix "$xq_prefix" >/dev/null
