"""Runs an ONNX model with onnxruntime on .npy inputs and writes its outputs as .npy.

Usage: run_onnx.py [--per-sample] MODEL.onnx OUT_PREFIX INPUT.npy [INPUT.npy ...]
Inputs follow the model's input order; output k is written to OUT_PREFIX{k}.npy.
With --per-sample, every input is split along axis 0 and the model runs once per sample
(for models with a fixed batch of 1); the outputs are concatenated along axis 0.
The session is ort_reference.py's reference session: the QDQ graph run as written (graph
optimizations off), the same on every CPU.
"""
import sys

import numpy as np

from ort_reference import session as reference_session


def main() -> None:
    args = sys.argv[1:]
    per_sample = args[0] == "--per-sample"
    if per_sample:
        args = args[1:]
    model, out_prefix, *inputs = args
    session = reference_session(model)
    arrays = [np.load(path) for path in inputs]
    names = [i.name for i in session.get_inputs()]
    if per_sample:
        runs = [session.run(None, {n: a[i:i + 1] for n, a in zip(names, arrays)}) for i in range(len(arrays[0]))]
        outputs = [np.concatenate(parts) for parts in zip(*runs)]
    else:
        outputs = session.run(None, dict(zip(names, arrays)))
    for k, value in enumerate(outputs):
        np.save(f"{out_prefix}{k}.npy", value)


if __name__ == "__main__":
    main()
