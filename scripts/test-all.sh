#!/usr/bin/env bash
# Runs every test of libxq on a fresh machine: installs what is missing (a Python virtualenv
# with cmake, onnx, onnxruntime, numpy), then formatting, clippy, all cargo tests (unit,
# integration, header freshness, doc tests), rustdoc without warnings, no argument parser in
# the library's dependencies, the CMake build → install → find_package and
# pkg-config consumers → ctest chain; then every Rust test once more on an emulated AVX2-only
# CPU (qemu-x86_64 -cpu Haswell: no AVX-512), Python and the xq processes the tests start
# included, so each ISA path runs on every machine (XQ_SKIP_EMULATED=1 skips that pass).
set -euo pipefail
source "$(dirname "$0")/lib/venv.sh"
cd "$xq_root"
export XQ_STRICT=1

step() { echo; echo "== $*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "no import cycle between src/'s top-level modules"
scripts/module-graph.sh
step "cargo clippy (warnings denied)"
cargo clippy --locked --all-targets -- -D warnings
step "cargo test (all targets)"
cargo test --locked --all-targets
step "cargo test (doc tests)"
cargo test --locked --doc
step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps

step "the C library without the cli feature depends on no argument parser"
lib_deps=$(cargo tree --locked -e normal --no-default-features --prefix none --format '{p}')
if grep -E '^clap' <<<"$lib_deps"; then
  echo "clap is a dependency of the library built with --no-default-features"; exit 1
fi

step "CMake build and install into build/prefix"
source scripts/lib/cmake-install.sh
step "C/C++ consumers through find_package(xq) and pkg-config, run by ctest"
rm -rf build/c_examples
cmake -S c_examples -B build/c_examples -DCMAKE_PREFIX_PATH="$xq_prefix" >/dev/null
cmake --build build/c_examples
(cd build/c_examples && ctest --output-on-failure)

if [ "${XQ_SKIP_EMULATED:-0}" = 1 ]; then
  echo; echo "== emulated AVX2-only pass skipped (XQ_SKIP_EMULATED=1)"
  exit 0
fi
if ! grep -qw avx512f /proc/cpuinfo; then
  echo; echo "== emulated AVX2-only pass not needed: this CPU has no AVX-512, the pass above ran the AVX2 paths"
  exit 0
fi
step "every Rust test again on an emulated AVX2-only CPU (qemu-x86_64 -cpu Haswell)"
source scripts/lib/qemu.sh
export XQ_EMULATOR="$xq_qemu -cpu Haswell"
export XQ_EXPECT_ISA=avx2
export XQ_PYTHON="$xq_root/scripts/lib/emulated-python"
# Every test target but the float-interpreter ones against ONNX Runtime's float kernels
# (graph_models, graph_onnx_node_suite, graph_transformer_ops, graph_transformer_fused_ops,
# graph_transformers: no int8 path, tolerance-based, 4.5 of the pass's
# minutes under emulation); the int8 kernels, the delegate, the quantizer, the C API and every
# other ONNX Runtime cross-check of quantized models run, but four: delegate_resize's ONNX
# Runtime layer-by-layer comparison (most of its 2.7 emulated minutes), delegate_unary's and
# delegate_binary_constants' comparisons with ONNX Runtime (37 s and 21 s natively, about 9
# minutes together under emulation), and delegate_clip_prelu_pad's (about 40 s natively: one
# ONNX Runtime process per form). Their programs' int8 steps are held to the interpreter bit
# for bit by the other tests of those targets, which run here on the AVX2 rows, and the native
# pass runs the four comparisons. The same holds for the ONNX Runtime comparisons of the
# Resize exit, of the requantizing views and of DepthToSpace / SpaceToDepth (3.5 s natively:
# one ONNX Runtime process per case; their steps are bit-equal to the interpreter in the other
# tests of their targets). delegate_models' two ResNet-18 comparisons with ONNX Runtime (the
# heaviest convolutions of the suite, minutes of the pass) run natively only; its MobileNetV2
# comparisons keep a whole model on the AVX2 rows here. A `--skip` filter reaches every target
# (by substring): no other test's name contains these.
emulated_targets=(--lib --bins)
for t in tests/*.rs; do
  t=$(basename "$t" .rs)
  case "$t" in graph_models|graph_onnx_node_suite|graph_transformer_ops|graph_transformer_fused_ops|graph_transformers) ;; *) emulated_targets+=(--test "$t") ;; esac
done
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$XQ_EMULATOR" cargo test --locked "${emulated_targets[@]}" \
  -- --skip resize_is_within_a_step_of_onnxruntime_layer_by_layer \
  --skip unary_ops_between_convs_are_within_a_step_of_onnxruntime \
  --skip each_form_is_within_a_step_of_onnxruntime \
  --skip each_op_form_is_within_a_step_of_onnxruntime \
  --skip a_resize_exit_agrees_with_onnxruntime \
  --skip views_with_other_output_qparams_agree_with_onnxruntime \
  --skip depth_space_agrees_with_onnxruntime \
  --skip built_resnet18_
