#!/usr/bin/env bash
# int8 MobileNetV2 (1x3x224x224) side by side, in one run: libxq, ONNX Runtime (QDQ) and
# ExecuTorch + XNNPACK, at 1 and 2 threads, medians of RUNS runs (default 50), plus libxq's
# program load time and peak memory. All engines use the same float model and crops written
# by ../shared/anchors/mobilenet_v2.py; libxq compiles the very QDQ model ONNX Runtime runs
# (quantize_static, per-channel). Each engine runs in its own process.
#
# Usage: bench/mobilenet_v2.sh [OUT_DIR] ; env XQ_ANCHOR_PYTHON (default
# /tmp/xq-anchors/bin/python, a venv with torch, executorch, onnxruntime), RUNS.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/tmp/xq-anchor-mv2}
py=${XQ_ANCHOR_PYTHON:-/tmp/xq-anchors/bin/python}
runs=${RUNS:-50}
anchors="$root/../shared/anchors/mobilenet_v2.py"
[ -f "$anchors" ] || anchors=/work/shared/anchors/mobilenet_v2.py
log=$(mktemp)
trap 'rm -f "$log"' EXIT

mkdir -p "$out"
if [ ! -f "$out/mobilenet_v2.onnx" ]; then
  "$py" "$anchors" "$out" 32 prepare
fi
echo "== anchors (ONNX Runtime, ExecuTorch + XNNPACK)"
"$py" "$anchors" "$out" 32 onnxruntime 2>/dev/null | tee -a "$log"
"$py" "$anchors" "$out" 32 executorch 2>/dev/null | tee -a "$log"

echo "== libxq"
(cd "$root" && cargo build --release --quiet --bin xq)
xq="$root/target/release/xq"
"$py" -c "import numpy as np; np.save('$out/eval1.npy', np.load('$out/eval.npy')[:1])"
"$xq" compile "$out/mobilenet_v2_ort_qdq.onnx" -o "$out/mobilenet_v2_libxq.xq" | head -2
for t in 1 2; do
  "$xq" run "$out/mobilenet_v2_libxq.xq" --input "$out/eval1.npy" --threads "$t" --runs "$runs" | tee -a "$log"
done

echo
echo "== int8 MobileNetV2 1x3x224x224, median ms ($(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus)"
printf "%-22s %10s %10s\n" engine "1 thread" "2 threads"
et1=$(awk '/executorch-xnnpack int8 threads 1/ {sub(",","",$6); print $6}' "$log")
et2=$(awk '/executorch-xnnpack int8 threads 2/ {sub(",","",$6); print $6}' "$log")
ort1=$(awk '/onnxruntime +int8 threads 1/ {sub(",","",$6); print $6}' "$log")
ort2=$(awk '/onnxruntime +int8 threads 2/ {sub(",","",$6); print $6}' "$log")
xq1=$(awk '/^threads 1 / {print $6}' "$log")
xq2=$(awk '/^threads 2 / {print $6}' "$log")
printf "%-22s %10s %10s\n" "libxq" "$xq1" "$xq2"
printf "%-22s %10s %10s\n" "ExecuTorch + XNNPACK" "$et1" "$et2"
printf "%-22s %10s %10s\n" "ONNX Runtime (QDQ)" "$ort1" "$ort2"
awk -v a="$xq1" -v b="$et1" -v c="$xq2" -v d="$et2" 'BEGIN { if (b > 0 && d > 0) printf "libxq / ExecuTorch: %.2fx (1 thread), %.2fx (2 threads); target <= 0.9x\n", a / b, c / d }'
awk '/^threads 1 / {print "libxq program load " $4 " ms, peak RSS " $10 " MiB, arena " $12 " KiB"}' "$log"
