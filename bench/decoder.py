"""The Llama-style decoder side by side, in one run: libxq (float, and dynamic int8 from
`xq quantize --dynamic`) against ONNX Runtime (float, and `quantize_dynamic` per-channel int8) on
the two calls a generation loop makes — the prefill of a 128-token prompt (empty cache) and one
decode step (1 new token after a 256-token cache) — at 1 and 2 threads. Also prints how often the
dynamic int8 decoders' next-token choice agrees with float on every position of the fixture text.

The model is the decoder of issue 14 (4 layers, hidden 512, 8 query / 2 key-value heads, RoPE,
RMSNorm, SiLU MLP, seeded random weights) with its KV cache as inputs and outputs
(`past_key_values.*` -> `present.*`), exported the default way by
scripts/fixtures/transformers_export.py (`llama_bench_kv_dynamo.onnx`). Engines alternate within
each round and the table takes medians over rounds.

Usage: python bench/decoder.py [OUT]   (OUT default /tmp/xq-transformers)
Env: RUNS (timed runs per measurement, default 20), ROUNDS (default 3), THREADS (default "1 2"),
PROMPT (default 128), CACHE (default 256), XQ (the xq binary, default target/release/xq). Needs
torch + transformers (the anchor venv) the first time, to export.
"""

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from transformer_encoder import prepare, time_ort, time_xq, xq_bin

ROOT = Path(__file__).resolve().parents[1]
MODEL = "llama_bench_kv_dynamo"


def cache_geometry(model):
    """(cache input names, kv heads, head size) read from the model's inputs."""
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    past = [i for i in sess.get_inputs() if i.name.startswith("past_key_values.")]
    return [i.name for i in past], past[0].shape[1], past[0].shape[3]


def call_feeds(tokens, start, past_names, kv_heads, head, past_len, seed=0):
    """The inputs of one call: `tokens` at positions past_len.., after a cache of `past_len`
    positions (random values: the time does not depend on them)."""
    rng = np.random.default_rng(seed)
    ids = np.ascontiguousarray(tokens[None, :]).astype(np.int64)
    feeds = {
        "input_ids": ids,
        "attention_mask": np.ones((1, past_len + ids.shape[1]), np.int64),
        "position_ids": np.arange(past_len, past_len + ids.shape[1], dtype=np.int64)[None],
    }
    for name in past_names:
        feeds[name] = rng.standard_normal((1, kv_heads, past_len, head)).astype(np.float32)
    return feeds


def save_feeds(feeds, directory):
    args = []
    for name, value in feeds.items():
        path = Path(directory) / f"{name}.npy"
        np.save(path, value)
        args.append(f"{name}={path}")
    return args


def next_tokens_xq(model, feeds):
    with tempfile.TemporaryDirectory() as tmp:
        args = save_feeds(feeds, tmp)
        subprocess.run([xq_bin(), "run", model, *sum((["--input", a] for a in args), []), "--runs", "1",
                        "--save-npy", tmp], check=True, capture_output=True)
        return np.load(Path(tmp) / "logits.npy").argmax(-1)


def next_tokens_ort(model, feeds):
    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(["logits"], feeds)[0].argmax(-1)


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/xq-transformers")
    out.mkdir(parents=True, exist_ok=True)
    runs, rounds = int(os.environ.get("RUNS", 20)), int(os.environ.get("ROUNDS", 3))
    threads = [int(t) for t in os.environ.get("THREADS", "1 2").split()]
    prompt, cache = int(os.environ.get("PROMPT", 128)), int(os.environ.get("CACHE", 256))
    models = prepare(out, MODEL)
    names, kv_heads, head = cache_geometry(models["float"])
    tokens = np.load(out / "tokens.npy")

    # Next-token agreement with float over every position of the fixture text (prefill calls).
    agree = {"ORT int8 dynamic": 0, "libxq int8 dynamic": 0}
    total = 0
    for row in tokens:
        feeds = call_feeds(row, 0, names, kv_heads, head, 0)
        want = next_tokens_ort(models["float"], feeds)
        agree["ORT int8 dynamic"] += int((next_tokens_ort(models["ort_int8"], feeds) == want).sum())
        agree["libxq int8 dynamic"] += int((next_tokens_xq(models["xq_dyn"], feeds) == want).sum())
        total += want.size
    print("next-token agreement with float over " + f"{total} positions: "
          + "  ".join(f"{k} {100 * v / total:.2f}%" for k, v in agree.items()))

    calls = {
        f"prefill {prompt}": call_feeds(tokens[0, :prompt], 0, names, kv_heads, head, 0),
        f"decode @{cache}": call_feeds(tokens[1, :1], cache, names, kv_heads, head, cache),
    }
    engines = {
        "ORT float": ("ort", models["float"]),
        "ORT int8 dynamic": ("ort", models["ort_int8"]),
        "libxq float": ("xq", models["float"]),
        "libxq int8 dynamic": ("xq", models["xq_dyn"]),
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        args = {}
        for call, feeds in calls.items():
            (Path(tmp) / call.replace(" ", "_")).mkdir()
            args[call] = save_feeds(feeds, Path(tmp) / call.replace(" ", "_"))
        for r in range(rounds):
            for call, feeds in calls.items():
                for t in threads:
                    for name, (kind, model) in engines.items():
                        ms = time_ort(model, feeds, t, runs) if kind == "ort" else time_xq(model, args[call], t, runs)
                        results.setdefault((call, t, name), []).append(ms)
            print(f"round {r + 1} of {rounds} done", file=sys.stderr)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = sorted({f for l in open("/proc/cpuinfo") if l.startswith("flags") for f in l.split()
                    if f in ("avx2", "avx512_vnni", "avx_vnni")})
    print(f"== median ms over {rounds} rounds of {runs}-run medians ({cpu}, {os.cpu_count()} cpus, {' '.join(flags)})")
    print(f"{'call':<14} {'threads':>7} " + " ".join(f"{n:>19}" for n in engines) + "  xq/ORT float  xq/ORT int8")
    for call in calls:
        for t in threads:
            ms = [statistics.median(results[(call, t, n)]) for n in engines]
            print(f"{call:<14} {t:>7} " + " ".join(f"{m:>19.2f}" for m in ms)
                  + f"  {ms[2] / ms[0]:>12.2f}  {ms[3] / ms[1]:>11.2f}")


if __name__ == "__main__":
    main()
