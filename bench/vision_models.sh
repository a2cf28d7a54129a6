#!/usr/bin/env bash
# Mobile vision models side by side, in one run: libxq, ExecuTorch + XNNPACK (PT2E int8) and
# ONNX Runtime (float and QDQ int8), at 1 and 2 threads, on torchvision architectures whose
# BatchNorm statistics are re-estimated on real crops (../shared/anchors/models.py).
#
# libxq compiles each model in the three QDQ forms a user brings: its own quantizer's
# (`xq quantize`), ONNX Runtime's quantize_static and PT2E XNNPACKQuantizer exported with
# torch.onnx.export(dynamo=True). Per form the table gives the nodes left to the float
# interpreter (from `xq compile`'s report), the SQNR of the outputs against float on 16 held-out
# crops, and the latency. Engines alternate within each round (ROUNDS, default 3) and the table
# takes medians over rounds, so slow phases of a shared machine hit all of them.
#
# Usage: bench/vision_models.sh [ARCH...]   (default: the five models of the mobile vision issue)
# Env: OUT (default /tmp/xq-vision), XQ_ANCHOR_PYTHON (default /tmp/xq-anchors/bin/python, a
# venv made by ../shared/anchors/setup.sh), RUNS (default 30), ROUNDS (default 3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${XQ_ANCHOR_PYTHON:-/tmp/xq-anchors/bin/python}
out_root=${OUT:-/tmp/xq-vision}
runs=${RUNS:-30}
rounds=${ROUNDS:-3}
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(mobilenet_v3_small mobilenet_v3_large efficientnet_b0 shufflenet_v2_x1_0 lraspp_mobilenet_v3_large)
peers="$root/bench/vision_models.py"
(cd "$root" && cargo build --release --quiet --bin xq)
xq="$root/target/release/xq"
forms=(xq ort pt2e)

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

for arch in "${archs[@]}"; do
  out="$out_root/$arch"
  log="$out/bench.log"
  mkdir -p "$out"
  : > "$log"
  [ -f "$out/$arch.onnx" ] || "$py" "$peers" "$arch" "$out" prepare 32
  [ -f "$out/${arch}_xq_qdq.onnx" ] || "$xq" quantize "$out/$arch.onnx" --calib "$out/calib.npy" -o "$out/${arch}_xq_qdq.onnx" > /dev/null
  for round in $(seq 1 "$rounds"); do
    echo "== $arch: round $round of $rounds"
    "$py" "$peers" "$arch" "$out" onnxruntime 2>/dev/null | tee -a "$log"
    "$py" "$peers" "$arch" "$out" executorch 2>/dev/null | tee -a "$log"
    for form in "${forms[@]}"; do
      model="$out/${arch}_${form}_qdq.onnx"
      [ -f "$model" ] || continue
      if [ "$round" = 1 ]; then
        "$xq" compile "$model" -o "$out/${arch}_$form.xq" > "$out/${arch}_$form.report" 2>&1 || true
        if "$xq" run "$out/${arch}_$form.xq" --input "$out/eval.npy" --threads 1 --runs 1 \
          --save-outputs "$out/${arch}_$form.out" > /dev/null 2>&1; then
          echo "libxq $form sqnr $("$py" "$peers" "$arch" "$out" sqnr "$out/${arch}_$form.out" 2>/dev/null)" | tee -a "$log"
        fi
      fi
      [ -f "$out/${arch}_$form.xq" ] || continue
      for t in 1 2; do
        "$xq" run "$out/${arch}_$form.xq" --input "$out/eval1.npy" --threads "$t" --runs "$runs" |
          sed "s/^/libxq $form /" | tee -a "$log"
      done
    done
  done
done

echo
echo "== median ms over $rounds rounds of $runs-run medians ($(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus, $(grep -o -w 'avx2\|avx512_vnni\|avx_vnni' /proc/cpuinfo | sort -u | tr '\n' ' '))"
printf "%-26s %-22s %9s %9s %9s %8s %8s\n" model engine "1 thread" "2 threads" "SQNR dB" "float" "vs ET"
for arch in "${archs[@]}"; do
  out="$out_root/$arch"
  log="$out/bench.log"
  peer() { awk -v e="$1" -v f="$2" -v t="$3" '$1 == e && $2 == f && $4 == t":" {print $6}' "$log" | median; }
  peer_sqnr() { awk -v e="$1" '$1 == e && $2 == "int8" && /SQNR/ {print $(NF - 1)}' "$log" | head -1; }
  et1=$(peer executorch int8 1); et2=$(peer executorch int8 2)
  printf "%-26s %-22s %9s %9s %9s %8s %8s\n" "$arch" "ExecuTorch+XNNPACK int8" "$et1" "$et2" "$(peer_sqnr executorch)" - 1.00
  printf "%-26s %-22s %9s %9s %9s %8s %8s\n" "" "ORT int8 (QDQ)" "$(peer onnxruntime int8 1)" "$(peer onnxruntime int8 2)" "$(peer_sqnr onnxruntime)" - -
  printf "%-26s %-22s %9s %9s %9s %8s %8s\n" "" "ORT float" "$(peer onnxruntime f32 1)" "$(peer onnxruntime f32 2)" - - -
  for form in "${forms[@]}"; do
    report="$out/${arch}_$form.report"
    [ -f "$report" ] || continue
    x1=$(awk -v f="$form" '$1 == "libxq" && $2 == f && $6 == 1 {print $10}' "$log" | median)
    x2=$(awk -v f="$form" '$1 == "libxq" && $2 == f && $6 == 2 {print $10}' "$log" | median)
    q=$(awk -v f="$form" '$1 == "libxq" && $2 == f && $3 == "sqnr" {print $4}' "$log" | head -1)
    interp=$(sed -n 's/.*, \([0-9]*\) compute node(s) not delegated.*/\1/p' "$report" | head -1)
    ratio=$(awk -v a="$x1" -v b="$et1" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }')
    printf "%-26s %-22s %9s %9s %9s %8s %8s\n" "" "libxq ($form QDQ)" "$x1" "$x2" "${q:--}" "${interp:-fail}" "$ratio"
  done
done
