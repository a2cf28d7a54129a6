"""The peers' side of bench/vision_models.sh: one torchvision architecture (BatchNorm statistics
re-estimated on real crops, see ../shared/anchors/models.py), quantized and timed by ExecuTorch
+ XNNPACK and ONNX Runtime, with the QDQ ONNX files libxq compiles written beside.

Usage: python vision_models.py ARCH OUT_DIR PART [N_CALIB]
  PART = prepare     float ONNX (TorchScript exporter, opset 17), calibration / evaluation crops,
                     the float outputs of the evaluation crops (ARCH.onnx, calib.npy, eval.npy,
                     eval1.npy, eval_float_out.npy)
       = executorch  PT2E XNNPACKQuantizer (per-channel, static), timed int8 and float at 1 and 2
                     threads; its converted graph exported with torch.onnx.export(dynamo=True) as
                     ARCH_pt2e_qdq.onnx
       = onnxruntime quantize_static (QDQ, per-channel, int8), timed int8 and float
       = sqnr FILE   SQNR of raw f32 outputs in FILE (xq run --save-outputs) against float
       = heldout N SEED  N more crops (seed SEED, not 1 or 2) and their float outputs
                     (heldout.npy, heldout_float_out.npy)
       = paired A B [SET]  two engines' raw f32 outputs on the same crops (SET: eval, the
                     default, or heldout): the SQNR of each, and the mean over crops of the
                     per-crop SQNR difference A - B with its standard error. On these
                     random-weight models 16 crops are too few to rank two int8 forms whose
                     pooled SQNRs are within ~0.5 dB (docs/plans/issue13-mobile-vision.md)
Each timing line reads `ENGINE FORM threads T: median MS ms[, SQNR vs float D dB]`."""
import os, sys, time
import numpy as np

ANCHORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "anchors")
if not os.path.isdir(ANCHORS):
    ANCHORS = "/work/shared/anchors"
sys.path.insert(0, ANCHORS)


def timeit(fn, n=30):
    for _ in range(5):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return sorted(ts)[n // 2] * 1e3


def sqnr(ref, q):
    return 10 * np.log10((ref ** 2).sum() / max(((ref - q) ** 2).sum(), 1e-30))


def load(out):
    return np.load(f"{out}/calib.npy"), np.load(f"{out}/eval.npy"), np.load(f"{out}/eval_float_out.npy")


def prepare(arch, out, ncal):
    import torch
    from images import crops
    from models import bn_recalibrated
    import torchvision.models as tvm
    if not hasattr(tvm, arch) and hasattr(tvm.segmentation, arch):
        # Segmentation architectures live in a submodule; no pretrained backbone either.
        setattr(tvm, arch, lambda weights=None: getattr(tvm.segmentation, arch)(weights=None, weights_backbone=None))
    trained = bn_recalibrated(arch)
    model = one_output(trained)
    cal, ev = crops(ncal, seed=1), crops(16, seed=2)
    np.save(f"{out}/calib.npy", cal); np.save(f"{out}/eval.npy", ev); np.save(f"{out}/eval1.npy", ev[:1])
    torch.onnx.export(model, (torch.from_numpy(ev[:1]),), f"{out}/{arch}.onnx", input_names=["input"],
                      output_names=["output"], opset_version=17, dynamo=False)
    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(ev[i:i + 1])).numpy() for i in range(len(ev))])
    np.save(f"{out}/eval_float_out.npy", ref)
    torch.save(trained, f"{out}/{arch}.pt")


def first(y):
    """The first output (segmentation models return a dict of them)."""
    return y["out"] if isinstance(y, dict) else y


def one_output(model):
    """`model` with a forward that returns one tensor, so every exporter sees one output."""
    import torch

    class OneOutput(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return first(self.inner(x))
    return OneOutput().eval()


def executorch(arch, out):
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    import executorch.extension.pybindings.portable_lib as pl
    from executorch.runtime import Runtime
    model = one_output(torch.load(f"{out}/{arch}.pt", weights_only=False))
    cal, ev, ref = load(out)
    x0 = (torch.from_numpy(ev[:1]),)
    if not os.path.exists(f"{out}/{arch}_int8.pte"):
        q = XNNPACKQuantizer(); q.set_global(get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(torch.export.export(model, x0).module(), q)
        for i in range(len(cal)):
            prepared(torch.from_numpy(cal[i:i + 1]))
        converted = convert_pt2e(prepared)
        try:
            torch.onnx.export(converted, x0, f"{out}/{arch}_pt2e_qdq.onnx", input_names=["input"],
                              output_names=["output"], dynamo=True)
        except Exception as e:  # the table shows the form as missing; ExecuTorch still runs
            print(f"pt2e onnx export failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
        for name, m in (("int8", converted), ("f32", model)):
            prog = to_edge_transform_and_lower(torch.export.export(m, x0), partitioner=[XnnpackPartitioner()]).to_executorch()
            open(f"{out}/{arch}_{name}.pte", "wb").write(prog.buffer)
    for th in (1, 2):
        pl._unsafe_reset_threadpool(th)
        for name in ("int8", "f32"):
            meth = Runtime.get().load_program(f"{out}/{arch}_{name}.pte").load_method("forward")
            o = np.concatenate([meth.execute([torch.from_numpy(ev[i:i + 1])])[0].numpy().copy() for i in range(len(ev))])
            xi = torch.from_numpy(ev[:1])
            print(f"executorch {name} threads {th}: median {timeit(lambda: meth.execute([xi])):.3f} ms"
                  + (f", SQNR vs float {sqnr(ref, o):.2f} dB" if name == "int8" else ""), flush=True)


def onnxruntime(arch, out):
    import onnxruntime as ort
    from onnxruntime.quantization import quantize_static, CalibrationDataReader, QuantType, QuantFormat
    cal, ev, ref = load(out)

    class Reader(CalibrationDataReader):
        def __init__(self): self.it = iter([{"input": cal[i:i + 1]} for i in range(len(cal))])
        def get_next(self): return next(self.it, None)

    qdq = f"{out}/{arch}_ort_qdq.onnx"
    if not os.path.exists(qdq):
        quantize_static(f"{out}/{arch}.onnx", qdq, Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    for th in (1, 2):
        for name, f in (("int8", qdq), ("f32", f"{out}/{arch}.onnx")):
            so = ort.SessionOptions(); so.intra_op_num_threads = th
            s = ort.InferenceSession(f, so, providers=["CPUExecutionProvider"])
            o = np.concatenate([s.run(None, {"input": ev[i:i + 1]})[0] for i in range(len(ev))])
            print(f"onnxruntime {name} threads {th}: median {timeit(lambda: s.run(None, {'input': ev[:1]})):.3f} ms"
                  + (f", SQNR vs float {sqnr(ref, o):.2f} dB" if name == "int8" else ""), flush=True)


def sqnr_of_file(out, path):
    ref = np.load(f"{out}/eval_float_out.npy")
    got = np.fromfile(path, np.float32)
    if got.size != ref.size:
        print(f"sqnr: {path} has {got.size} values, float has {ref.size}")
        return
    print(f"{sqnr(ref, got.reshape(ref.shape)):.2f}")


def heldout(arch, out, n, seed):
    import torch
    from images import crops
    model = one_output(torch.load(f"{out}/{arch}.pt", weights_only=False))
    ev = crops(n, seed=seed)
    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(ev[i:i + 1])).numpy() for i in range(len(ev))])
    np.save(f"{out}/heldout.npy", ev)
    np.save(f"{out}/heldout_float_out.npy", ref)


def paired(out, path_a, path_b, which="eval"):
    ref = np.load(f"{out}/{which}_float_out.npy")
    a, b = (np.fromfile(p, np.float32) for p in (path_a, path_b))
    if a.size != ref.size or b.size != ref.size:
        print(f"paired: {a.size} and {b.size} values, float has {ref.size}")
        return
    a, b = a.reshape(ref.shape), b.reshape(ref.shape)
    axes = tuple(range(1, ref.ndim))
    d = sqnr_per_crop(ref, a, axes) - sqnr_per_crop(ref, b, axes)
    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    print(f"A {sqnr(ref, a):.2f} dB, B {sqnr(ref, b):.2f} dB; per crop A - B {d.mean():+.2f} ± {se:.2f} dB "
          f"over {len(d)} crops")


def sqnr_per_crop(ref, q, axes):
    return 10 * np.log10((ref ** 2).sum(axis=axes) / np.maximum(((ref - q) ** 2).sum(axis=axes), 1e-30))


if __name__ == "__main__":
    arch, out, part = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(out, exist_ok=True)
    if part == "prepare":
        prepare(arch, out, int(sys.argv[4]) if len(sys.argv) > 4 else 32)
    elif part == "sqnr":
        sqnr_of_file(out, sys.argv[4])
    elif part == "heldout":
        heldout(arch, out, int(sys.argv[4]), int(sys.argv[5]))
    elif part == "paired":
        paired(out, sys.argv[4], sys.argv[5], sys.argv[6] if len(sys.argv) > 6 else "eval")
    else:
        {"executorch": executorch, "onnxruntime": onnxruntime}[part](arch, out)
