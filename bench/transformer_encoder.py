"""The transformer encoder side by side, in one run: libxq (float, and dynamic int8 from
`xq quantize --dynamic`) against ONNX Runtime (float, and `quantize_dynamic` per-channel int8),
at batch 1 and 16, sequence 32 and 128, 1 and 2 threads.

The model is the BERT-style encoder of issue 14 (6 layers, hidden 384, 12 heads, seeded random
weights) exported the default way (SDPA attention, `torch.onnx.export(dynamo=True)`) by
scripts/fixtures/transformers_export.py, fed token ids of English text. Engines alternate within
each round and the table takes medians over rounds, so slow phases of a shared machine hit all
of them. Also prints the dynamic int8 models' cosine against float on the pooled output.

Usage: python bench/transformer_encoder.py [OUT]   (OUT default /tmp/xq-transformers)
Env: RUNS (timed runs per measurement, default 20), ROUNDS (default 3), SHAPES (default
"1x32 16x32 1x128 16x128"), THREADS (default "1 2"), XQ (the xq binary, default
target/release/xq). Needs torch + transformers (the anchor venv) the first time, to export.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bert_bench_sdpa_dynamo"


def prepare(out, model=MODEL):
    """Exports the bench-size models and makes the two dynamic int8 models of `model` once."""
    float_model = out / f"{model}.onnx"
    if not float_model.exists():
        subprocess.run([sys.executable, ROOT / "scripts/fixtures/transformers_export.py", out, "bench"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ort_int8 = out / f"{model}_ort_int8.onnx"
    if not ort_int8.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(float_model), str(ort_int8), per_channel=True, weight_type=QuantType.QInt8)
    xq_dyn = out / f"{model}_xq_dyn.onnx"
    if not xq_dyn.exists():
        subprocess.run([xq_bin(), "quantize", float_model, "--dynamic", "-o", xq_dyn], check=True,
                       stdout=subprocess.DEVNULL)
    return {"float": float_model, "ort_int8": ort_int8, "xq_dyn": xq_dyn}


def xq_bin():
    return os.environ.get("XQ", str(ROOT / "target/release/xq"))


def inputs(out, batch, seq):
    """Token ids (windows of the fixture text, cycled) and an all-ones mask, also as .npy files."""
    tokens = np.load(out / "tokens.npy")
    rows = [tokens[i % len(tokens), :seq] for i in range(batch)]
    ids = np.ascontiguousarray(np.stack(rows)).astype(np.int64)
    mask = np.ones_like(ids)
    ids_path, mask_path = out / f"ids_{batch}x{seq}.npy", out / f"mask_{batch}x{seq}.npy"
    np.save(ids_path, ids)
    np.save(mask_path, mask)
    return {"input_ids": ids, "attention_mask": mask}, [f"input_ids={ids_path}", f"attention_mask={mask_path}"]


def time_ort(model, feeds, threads, runs):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    for _ in range(3):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def time_xq(model, args, threads, runs):
    out = subprocess.run([xq_bin(), "run", model, *sum((["--input", a] for a in args), []), "--threads", str(threads),
                          "--runs", str(runs)], check=True, capture_output=True, text=True).stdout
    fields = out.split()
    return float(fields[fields.index("median_ms") + 1])


def pooled(model, feeds, engine, out):
    """The pooled output (second output) of one run."""
    if engine == "ort":
        return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feeds)[1]
    with tempfile.TemporaryDirectory() as tmp:
        args = []
        for name, value in feeds.items():
            np.save(Path(tmp) / f"{name}.npy", value)
            args += ["--input", f"{name}={Path(tmp) / f'{name}.npy'}"]
        subprocess.run([xq_bin(), "run", model, *args, "--runs", "1", "--save-npy", tmp], check=True,
                       capture_output=True)
        return np.load(Path(tmp) / "pooler_output.npy")


def cosine(a, b):
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/xq-transformers")
    out.mkdir(parents=True, exist_ok=True)
    runs, rounds = int(os.environ.get("RUNS", 20)), int(os.environ.get("ROUNDS", 3))
    shapes = [tuple(map(int, s.split("x"))) for s in os.environ.get("SHAPES", "1x32 16x32 1x128 16x128").split()]
    threads = [int(t) for t in os.environ.get("THREADS", "1 2").split()]
    models = prepare(out)

    feeds16, _ = inputs(out, 16, 32)
    reference = pooled(models["float"], feeds16, "ort", out)
    print(f"pooled-output cosine vs float (16 x 32): ORT int8 {cosine(reference, pooled(models['ort_int8'], feeds16, 'ort', out)):.5f}"
          f"  libxq dynamic int8 {cosine(reference, pooled(models['xq_dyn'], feeds16, 'xq', out)):.5f}"
          f"  libxq float {cosine(reference, pooled(models['float'], feeds16, 'xq', out)):.7f}")

    engines = {
        "ORT float": lambda f, a, t: time_ort(models["float"], f, t, runs),
        "ORT int8 dynamic": lambda f, a, t: time_ort(models["ort_int8"], f, t, runs),
        "libxq float": lambda f, a, t: time_xq(models["float"], a, t, runs),
        "libxq int8 dynamic": lambda f, a, t: time_xq(models["xq_dyn"], a, t, runs),
    }
    results = {}
    for r in range(rounds):
        for batch, seq in shapes:
            feeds, args = inputs(out, batch, seq)
            for t in threads:
                for name, fn in engines.items():
                    results.setdefault((batch, seq, t, name), []).append(fn(feeds, args, t))
        print(f"round {r + 1} of {rounds} done", file=sys.stderr)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = sorted({f for l in open("/proc/cpuinfo") if l.startswith("flags") for f in l.split()
                    if f in ("avx2", "avx512_vnni", "avx_vnni")})
    print(f"== median ms over {rounds} rounds of {runs}-run medians ({cpu}, {os.cpu_count()} cpus, {' '.join(flags)})")
    print(f"{'batch x seq':<12} {'threads':>7} " + " ".join(f"{n:>19}" for n in engines) + "  xq/ORT float  xq/ORT int8")
    for batch, seq in shapes:
        for t in threads:
            ms = [statistics.median(results[(batch, seq, t, n)]) for n in engines]
            print(f"{f'{batch} x {seq}':<12} {t:>7} " + " ".join(f"{m:>19.2f}" for m in ms)
                  + f"  {ms[2] / ms[0]:>12.2f}  {ms[3] / ms[1]:>11.2f}")


if __name__ == "__main__":
    main()
