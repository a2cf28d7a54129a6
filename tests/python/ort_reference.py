"""The one place that configures ONNX Runtime as a reference executor of QDQ models.

Two kinds of session, for two kinds of check:

- `session` (the reference of every model-level and layer-level comparison): ONNX Runtime's
  CPU provider with graph optimizations disabled (`ORT_DISABLE_ALL`), so a QDQ model runs as
  written: DequantizeLinear → float op → QuantizeLinear. That is the QDQ graph's meaning, and
  it does not depend on the CPU. ONNX Runtime's fused integer kernels do: on x86-64 without
  VNNI its uint8 × int8 QLinearConv takes a saturating int16 path, so on a 6-node QDQ Conv
  (uint8 activations, int8 per-channel weights) ONNX Runtime 1.32 with all optimizations and
  with none agree exactly on an AVX-512 VNNI CPU but differ by up to 27 int8 steps on 71% of
  the elements under `qemu-x86_64 -cpu Haswell`. Tests therefore compare libxq with this
  session layer by layer (each layer fed ONNX Runtime's int8 input, ≤ 1 step apart: the float
  op's rounding against libxq's exact integer arithmetic) and whole models by accuracy (SQNR
  against the float model), never element-wise against the fused kernels.
- `fused_session`: default optimizations with `session.qdqisint8allowed = 1`, so QDQ groups
  run as ONNX Runtime's integer kernels (QLinearAdd, QLinearMul, QLinearConcat,
  QLinearGlobalAveragePool, QLinearConv, QGemm ...) for int8 and uint8 activations alike.
  Only the byte-exact formula tests of libxq's add / mul / concat / average-pool kernels use
  it (tests/python/qlinear_cases.py), on single operators whose integer kernels compute the
  same bytes on every ISA (checked by the test command's emulated AVX2-only pass).

Usage from a script in another directory:
    sys.path.insert(0, "<repo>/tests/python"); from ort_reference import session
"""

import onnxruntime as ort

#: Session config entries of the fused sessions.
FUSED_CONFIG = {"session.qdqisint8allowed": "1"}


def options(threads=None, optimized_model_path=None, fused=False):
    """SessionOptions of a reference session (quiet; `threads` intra-op threads if set;
    writes the optimized graph to `optimized_model_path` if set; graph optimizations off
    unless `fused`)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if fused:
        for key, value in FUSED_CONFIG.items():
            opts.add_session_config_entry(key, value)
    else:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if threads is not None:
        opts.intra_op_num_threads = threads
    if optimized_model_path is not None:
        opts.optimized_model_filepath = str(optimized_model_path)
    return opts


def session(model, threads=None, optimized_model_path=None):
    """An InferenceSession of `model` (a path or serialized bytes) on the CPU provider that runs
    the QDQ graph as written (no fusion)."""
    return ort.InferenceSession(
        model, options(threads, optimized_model_path), providers=["CPUExecutionProvider"]
    )


def fused_session(model, threads=None, optimized_model_path=None):
    """An InferenceSession of `model` with ONNX Runtime's QDQ fusions into integer kernels."""
    return ort.InferenceSession(
        model,
        options(threads, optimized_model_path, fused=True),
        providers=["CPUExecutionProvider"],
    )
