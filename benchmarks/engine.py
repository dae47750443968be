"""Engine benchmark: our kernels against ggml's, same input, same thread count, one run.

    python -m benchmarks.engine [--threads N] [--sizes 4096x4096,14336x4096] [--out FILE]

ggml runs through ctypes `ggml_quantize_chunk` on a thread pool over row chunks (ctypes
releases the GIL), the way llama-quantize splits a tensor.  Prints millions of weights per
second per type x {plain, importance} and the ratio ours/ggml, then the first-run JIT
compile time and the proof that a second process compiles nothing (Numba cache misses).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TYPES = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]


def weights(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(0.02))
    x[:, rng.choice(cols, max(1, cols // 200), replace=False)] *= 20
    return x


def best_of_alternating(fns, repeat: int) -> list[float]:
    """Best time of each function, the functions run in turn (a, b, a, b, ...), so that a
    slow phase of the machine costs both sides alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def prefault(gib: float = 3.0) -> None:
    """Touch `gib` GiB of fresh memory once and give it back.

    On a virtual machine whose host backs guest memory lazily (these machines run under
    Firecracker), the first touch of a guest page costs far more than an ordinary page
    fault (measured: 3 GiB in 7 s, 0.4 GiB/s).  Both sides allocate their output afresh
    on every call, and the memory-bound types (F16, BF16, Q8_0) would otherwise time the
    host, whichever side happened to get never-touched pages."""
    buf = np.ones(int(gib * (1 << 30)), np.uint8)
    del buf


def engine_table(threads: int, sizes: list[tuple[int, int]], repeat: int) -> list[dict]:
    import formats
    from gguf import GGMLQuantizationType as Q

    from tests import ggml_oracle

    rows_out = []
    pool = ThreadPoolExecutor(threads)
    for rows, cols in sizes:
        x = weights(rows, cols)
        qw = (np.random.default_rng(1).random(cols, dtype=np.float32) ** 2).astype(np.float32)
        for name in TYPES:
            qt = Q[name]
            modes = [("plain", None)]
            if formats.block_type(qt).uses_importance:
                modes.append(("imatrix", qw))
            for mode, imp in modes:
                formats.quantize(x[:8], qt, imp, threads=threads)  # warm (cache load)
                ours_t, ggml_t = best_of_alternating(
                    [lambda: formats.quantize(x, qt, imp, threads=threads),
                     lambda: ggml_oracle.quantize_threaded(x, qt, imp, threads, pool)],
                    repeat,
                )
                same = np.array_equal(
                    formats.quantize(x[:64], qt, imp, threads=threads),
                    ggml_oracle.quantize_chunk(x[:64], qt, imp),
                )
                rec = {
                    "shape": f"{rows}x{cols}",
                    "type": name,
                    "mode": mode,
                    "ours_mw_s": x.size / ours_t / 1e6,
                    "ggml_mw_s": x.size / ggml_t / 1e6,
                    "ratio": ggml_t / ours_t,
                    "identical": bool(same),
                }
                rows_out.append(rec)
                print(
                    f"{rec['shape']:>10} {name:5} {mode:8} ours {rec['ours_mw_s']:8.1f}  "
                    f"ggml {rec['ggml_mw_s']:8.1f}  ratio {rec['ratio']:5.2f}"
                    f"{'' if same else '  BYTES DIFFER'}",
                    flush=True,
                )
    pool.shutdown()
    return rows_out


_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
sys.path.insert(0, {root!r})
import formats
from formats.registry import REGISTRY
from numba.core.registry import CPUDispatcher
x = np.random.default_rng(0).standard_normal((4, 256)).astype(np.float32)
qw = np.ones(256, np.float32)
formats.supports("F32")
for bt in REGISTRY.values():
    q = formats.quantize(x, bt.qtype)
    formats.quantize(x, bt.qtype, importance=qw)
    formats.dequantize(q, bt.qtype, 256)
dt = time.perf_counter() - t0
hits = misses = 0
for mod in list(sys.modules.values()):
    if getattr(mod, "__name__", "").startswith("formats"):
        for obj in vars(mod).values():
            if isinstance(obj, CPUDispatcher):
                hits += sum(obj.stats.cache_hits.values())
                misses += sum(obj.stats.cache_misses.values())
print(json.dumps({{"seconds": dt, "cache_hits": hits, "cache_misses": misses}}))
"""


def jit_table() -> dict:
    """First-ever run (empty Numba cache) vs a second process on the same cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        code = _CHILD.format(root=str(ROOT))
        runs = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first, second = runs
    print(
        f"JIT: first run {first['seconds']:.1f} s ({first['cache_misses']} kernels compiled); "
        f"second process {second['seconds']:.2f} s ({second['cache_misses']} compiled, "
        f"{second['cache_hits']} loaded from cache)"
    )
    return {"first": first, "second": second}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--sizes", default="4096x4096,14336x4096")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench-engine.json")
    args = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    print(f"engine benchmark, {args.threads} threads, best of {args.repeat}", flush=True)
    prefault()
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "threads": args.threads,
        "engine": engine_table(args.threads, sizes, args.repeat),
        "jit": jit_table(),
    }
    worst = min(r["ratio"] for r in result["engine"])
    print(f"lowest ratio ours/ggml: {worst:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
