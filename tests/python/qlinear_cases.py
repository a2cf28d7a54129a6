"""Runs single-op QDQ models through ONNX Runtime's integer kernels (the fused session of
ort_reference.py) for the byte-exact kernel formula tests.

Usage: qlinear_cases.py CASES.json OUT_DIR

CASES.json is a list of cases; case k writes OUT_DIR/k_y.bin (and OUT_DIR/k_x.bin for
pools), raw bytes in NCHW order. Every case fails unless ONNX Runtime fused the QDQ group
into the expected QLinear* kernel, so a float fallback can never pass as the reference.

- {"op": "Add" | "Mul", "dtype": "int8" | "uint8", "a": [scale, zp], "b": [...],
   "y": [...], "layout": "dense" | "b_per_channel" | "a_per_channel"}: all 256 × 256 input
  pairs. Channel c of the [1, 256, 16, 16] operand(s) holds at pixel p the p-th value of the
  type, the other operand the c-th (dense: a[c, p] = value p, b[c, p] = value c; per
  channel: that operand is [1, 256, 1, 1] holding value c).
- {"op": "GlobalAveragePool", "dtype": ..., "x": [scale, zp], "y": [...],
   "shape": [n, c, h, w], "seed": s}: seeded uniform input over the type's range.
- {"op": "Concat", "dtype": ..., "inputs": [[scale, zp], ...], "y": [...]}: input i is
  [1, 256] holding every value of the type, concatenated along axis 1.
"""

import json
import pathlib
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper

from ort_reference import fused_session as session

FUSED = {
    "Add": "QLinearAdd",
    "Mul": "QLinearMul",
    "GlobalAveragePool": "QLinearGlobalAveragePool",
    "Concat": "QLinearConcat",
}


def elem(dtype):
    return TensorProto.UINT8 if dtype == "uint8" else TensorProto.INT8


def qparams(name, q, dtype):
    return [
        helper.make_tensor(f"{name}_s", TensorProto.FLOAT, [], [q[0]]),
        helper.make_tensor(f"{name}_z", elem(dtype), [], [q[1]]),
    ]


def run(case, inputs, shapes, tmp):
    op, dtype = case["op"], case["dtype"]
    names = list(inputs)
    inits, nodes = [], []
    for n in names:
        inits += qparams(n, case[n], dtype)
        nodes.append(helper.make_node("DequantizeLinear", [n, f"{n}_s", f"{n}_z"], [f"{n}_f"]))
    inits += qparams("y", case["y"], dtype)
    attrs = {"axis": 1} if op == "Concat" else {}
    nodes.append(helper.make_node(op, [f"{n}_f" for n in names], ["y_f"], **attrs))
    nodes.append(helper.make_node("QuantizeLinear", ["y_f", "y_s", "y_z"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "case",
        [helper.make_tensor_value_info(n, elem(dtype), shapes[n]) for n in names],
        [helper.make_tensor_value_info("y", elem(dtype), None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    optimized = pathlib.Path(tmp) / "optimized.onnx"
    sess = session(model.SerializeToString(), threads=1, optimized_model_path=optimized)
    ops = [n.op_type for n in onnx.load(optimized).graph.node]
    if FUSED[op] not in ops:
        sys.exit(f"ONNX Runtime did not fuse {op} ({dtype}) into {FUSED[op]}: {ops}")
    return sess.run(None, inputs)[0]


def main():
    cases_path, out_dir = sys.argv[1:3]
    out = pathlib.Path(out_dir)
    tmp = tempfile.mkdtemp()
    for k, case in enumerate(json.loads(pathlib.Path(cases_path).read_text())):
        dtype = np.dtype(case["dtype"])
        values = np.arange(256, dtype=np.uint8).view(dtype)
        if case["op"] in ("Add", "Mul"):
            pixel = np.tile(values.reshape(1, 16, 16), (256, 1, 1)).reshape(1, 256, 16, 16)
            channel = np.broadcast_to(values.reshape(1, 256, 1, 1), (1, 256, 16, 16)).copy()
            a, b = {
                "dense": (pixel, channel),
                "b_per_channel": (pixel, values.reshape(1, 256, 1, 1)),
                "a_per_channel": (values.reshape(1, 256, 1, 1), pixel),
            }[case["layout"]]
            y = run(case, {"a": a, "b": b}, {"a": list(a.shape), "b": list(b.shape)}, tmp)
        elif case["op"] == "Concat":
            names = [f"x{i}" for i in range(len(case["inputs"]))]
            case = dict(case, **dict(zip(names, case["inputs"])))
            inputs = {n: values.reshape(1, 256) for n in names}
            y = run(case, inputs, {n: [1, 256] for n in names}, tmp)
        else:
            info = np.iinfo(dtype)
            rng = np.random.default_rng(case["seed"])
            x = rng.integers(info.min, info.max + 1, case["shape"]).astype(dtype)
            x.tofile(out / f"{k}_x.bin")
            y = run(case, {"x": x}, {"x": case["shape"]}, tmp)
        np.ascontiguousarray(y).tofile(out / f"{k}_y.bin")


if __name__ == "__main__":
    main()
