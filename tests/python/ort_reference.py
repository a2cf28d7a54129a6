"""The one place that configures ONNX Runtime as the reference executor of QDQ models.

Every QDQ comparison (tests/python/run_onnx.py, tests/fixtures/delegate/make_qdq.py and any
script that imports this module) runs ONNX Runtime's CPU provider with:

- its default graph optimizations, so DequantizeLinear → op → QuantizeLinear groups run as
  ONNX Runtime's integer kernels (QLinearConv, QGemm, QLinearAdd, QLinearMul,
  QLinearGlobalAveragePool, ...);
- `session.qdqisint8allowed = 1`: without it the x86 CPU provider fuses only uint8-activation
  QDQ groups and runs int8-activation ones as float ops between DQ and Q; with it int8
  activations run the same integer kernels (verified on MobileNetV2: every Conv / Add /
  GlobalAveragePool / Gemm becomes QLinearConv / QLinearAdd / QLinearGlobalAveragePool / QGemm).

Usage from a script in another directory:
    sys.path.insert(0, "<repo>/tests/python"); from ort_reference import session
"""

import onnxruntime as ort

#: Session config entries applied to every reference session.
CONFIG = {"session.qdqisint8allowed": "1"}


def options(threads=None, optimized_model_path=None):
    """SessionOptions of the reference executor (quiet; `threads` intra-op threads if set;
    writes the optimized graph to `optimized_model_path` if set)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    for key, value in CONFIG.items():
        opts.add_session_config_entry(key, value)
    if threads is not None:
        opts.intra_op_num_threads = threads
    if optimized_model_path is not None:
        opts.optimized_model_filepath = str(optimized_model_path)
    return opts


def session(model, threads=None, optimized_model_path=None):
    """An InferenceSession of `model` (a path or serialized bytes) on the CPU provider."""
    return ort.InferenceSession(
        model, options(threads, optimized_model_path), providers=["CPUExecutionProvider"]
    )
