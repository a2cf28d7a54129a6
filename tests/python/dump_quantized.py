"""Writes every QuantizeLinear output of a QDQ model as ONNX Runtime computes it (the
reference session of ort_reference.py), for per-layer comparisons with libxq.

Usage: dump_quantized.py MODEL.onnx INPUTS.npy OUT_DIR [--samples N]

INPUTS.npy holds float32 samples with a leading sample axis; each is reshaped to the model's
(single) input shape and run alone. For sample s (the first N, default all), writes
OUT_DIR/<s>/<k>.npy: the k-th QuantizeLinear output in logical (NCHW) layout and int8 terms
(uint8 values minus 128, as libxq carries them), and OUT_DIR/<s>/index.json mapping tensor
names to those file names.
"""

import json
import pathlib
import sys

import numpy as np
import onnx

from ort_reference import session


def main():
    args = sys.argv[1:]
    model_path, inputs_path, out_dir = args[:3]
    count = int(args[args.index("--samples") + 1]) if "--samples" in args else None
    model = onnx.load(model_path)
    inits = {i.name: i for i in model.graph.initializer}
    inp = [i for i in model.graph.input if i.name not in inits][0]
    dims = [d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim]
    present = {o.name for o in model.graph.output}
    names = []
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        zp = inits.get(node.input[2]) if len(node.input) > 2 else None
        elem = zp.data_type if zp is not None else onnx.TensorProto.UINT8
        names.append(node.output[0])
        if node.output[0] not in present:
            model.graph.output.append(onnx.helper.make_tensor_value_info(node.output[0], elem, None))
    sess = session(model.SerializeToString(), threads=1)
    samples = np.load(inputs_path).astype(np.float32).reshape(-1, *dims)
    for s, x in enumerate(samples[:count]):
        out = pathlib.Path(out_dir) / str(s)
        out.mkdir(parents=True, exist_ok=True)
        index = {}
        for k, (name, v) in enumerate(zip(names, sess.run(names, {inp.name: x}))):
            if v.dtype == np.uint8:
                v = (v.astype(np.int16) - 128).astype(np.int8)
            np.save(out / f"{k}.npy", v)
            index[name] = f"{k}.npy"
        (out / "index.json").write_text(json.dumps(index))


if __name__ == "__main__":
    main()
