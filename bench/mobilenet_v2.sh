#!/usr/bin/env bash
# int8 MobileNetV2 (1x3x224x224) side by side, in one run: libxq, ONNX Runtime (QDQ) and
# ExecuTorch + XNNPACK, at 1 and 2 threads, medians of RUNS runs (default 50), plus libxq's
# program load time and peak memory. All engines use the same float model and crops written
# by ../shared/anchors/mobilenet_v2.py; libxq compiles the very QDQ model ONNX Runtime runs
# (quantize_static, per-channel). Each engine runs in its own process; ROUNDS (default 3)
# rounds alternate the engines and the table gives each engine's median over the rounds.
#
# Usage: bench/mobilenet_v2.sh [OUT_DIR] ; env XQ_ANCHOR_PYTHON (default
# /tmp/xq-anchors/bin/python, a venv with torch, executorch, onnxruntime), RUNS, ROUNDS, and
# XQ_ISAS: the kernel rows libxq runs under, side by side in each round (e.g.
# "avx2 avxvnni avx512vnni"; default: the one the CPU selects, or XQ_ISA if set). The
# libxq / ExecuTorch ratios use the first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/tmp/xq-anchor-mv2}
py=${XQ_ANCHOR_PYTHON:-/tmp/xq-anchors/bin/python}
runs=${RUNS:-50}
read -r -a isas <<< "${XQ_ISAS:-${XQ_ISA:-default}}"
anchors="$root/../shared/anchors/mobilenet_v2.py"
[ -f "$anchors" ] || anchors=/work/shared/anchors/mobilenet_v2.py
log=$(mktemp)
trap 'rm -f "$log" "$log".xq.*' EXIT

mkdir -p "$out"
if [ ! -f "$out/mobilenet_v2.onnx" ]; then
  "$py" "$anchors" "$out" 32 prepare
fi
rounds=${ROUNDS:-3}
(cd "$root" && cargo build --release --quiet --bin xq)
xq="$root/target/release/xq"
"$py" -c "import numpy as np; np.save('$out/eval1.npy', np.load('$out/eval.npy')[:1])"
# Engines alternate within each round, so slow phases of a shared machine hit all of them;
# the table takes each engine's median over the rounds.
for round in $(seq 1 "$rounds"); do
  echo "== round $round of $rounds: ONNX Runtime, ExecuTorch + XNNPACK, libxq"
  "$py" "$anchors" "$out" 32 onnxruntime 2>/dev/null | tee -a "$log"
  "$py" "$anchors" "$out" 32 executorch 2>/dev/null | tee -a "$log"
  "$xq" compile "$out/mobilenet_v2_ort_qdq.onnx" -o "$out/mobilenet_v2_libxq.xq" | head -2
  for isa in "${isas[@]}"; do
    for t in 1 2; do
      if [ "$isa" = default ]; then
        env -u XQ_ISA "$xq" run "$out/mobilenet_v2_libxq.xq" --input "$out/eval1.npy" --threads "$t" --runs "$runs"
      else
        XQ_ISA="$isa" "$xq" run "$out/mobilenet_v2_libxq.xq" --input "$out/eval1.npy" --threads "$t" --runs "$runs"
      fi | tee -a "$log.xq.$isa"
    done
  done
done
xqlog="$log.xq.${isas[0]}"

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo
echo "== int8 MobileNetV2 1x3x224x224, median ms over $rounds rounds of $runs-run medians ($(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus)"
printf "%-22s %10s %10s\n" engine "1 thread" "2 threads"
et1=$(awk '/executorch-xnnpack int8 threads 1/ {sub(",","",$6); print $6}' "$log" | median)
et2=$(awk '/executorch-xnnpack int8 threads 2/ {sub(",","",$6); print $6}' "$log" | median)
ort1=$(awk '/onnxruntime +int8 threads 1/ {sub(",","",$6); print $6}' "$log" | median)
ort2=$(awk '/onnxruntime +int8 threads 2/ {sub(",","",$6); print $6}' "$log" | median)
xq1=$(awk '/^threads 1 / {print $6}' "$xqlog" | median)
xq2=$(awk '/^threads 2 / {print $6}' "$xqlog" | median)
for isa in "${isas[@]}"; do
  label="libxq"
  [ "$isa" = default ] || label="libxq ($isa)"
  printf "%-22s %10s %10s\n" "$label" \
    "$(awk '/^threads 1 / {print $6}' "$log.xq.$isa" | median)" \
    "$(awk '/^threads 2 / {print $6}' "$log.xq.$isa" | median)"
done
printf "%-22s %10s %10s\n" "ExecuTorch + XNNPACK" "$et1" "$et2"
printf "%-22s %10s %10s\n" "ONNX Runtime (QDQ)" "$ort1" "$ort2"
awk -v a="$xq1" -v b="$et1" -v c="$xq2" -v d="$et2" 'BEGIN { if (b > 0 && d > 0) printf "libxq / ExecuTorch: %.2fx (1 thread), %.2fx (2 threads); target <= 0.9x\n", a / b, c / d }'
echo "per round (libxq / ExecuTorch, 1 thread, 2 threads):"
paste <(awk '/^threads 1 / {print $6}' "$xqlog") <(awk '/executorch-xnnpack int8 threads 1/ {sub(",","",$6); print $6}' "$log") \
  <(awk '/^threads 2 / {print $6}' "$xqlog") <(awk '/executorch-xnnpack int8 threads 2/ {sub(",","",$6); print $6}' "$log") |
  awk '{printf "  round %d: %.2fx, %.2fx\n", NR, $1 / $2, $3 / $4}'
load=$(awk '/^threads 1 / {print $4}' "$xqlog" | median)
awk '/^threads 1 / {rss = $10; arena = $12} END {printf "libxq program load (median) '"$load"' ms, peak RSS %s MiB, arena %s KiB\n", rss, arena}' "$xqlog"
