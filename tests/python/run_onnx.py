"""Runs an ONNX model with onnxruntime on .npy inputs and writes its outputs as .npy.

Usage: run_onnx.py MODEL.onnx OUT_PREFIX INPUT.npy [INPUT.npy ...]
Inputs follow the model's input order; output k is written to OUT_PREFIX{k}.npy.
"""
import sys

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, out_prefix, *inputs = sys.argv[1:]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.load(path) for i, path in zip(session.get_inputs(), inputs)}
    for k, value in enumerate(session.run(None, feeds)):
        np.save(f"{out_prefix}{k}.npy", value)


if __name__ == "__main__":
    main()
