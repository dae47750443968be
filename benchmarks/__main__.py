"""All benchmarks in one run: the engine against ggml, then quantcli end to end against llama.cpp.

    python -m benchmarks [--threads N] [--repeat 2] [--sizes 4096x4096,14336x4096]
                         [--skip-engine] [--skip-e2e] [--render-only]

Prints every table, writes docs/benchmarks.md (the tables, the targets, the machine and
the date) and docs/benchmarks.json (every measurement) and prints the headline lines for
the README.  ``--render-only`` rewrites the markdown from the saved JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import e2e, engine  # noqa: E402

MB = e2e.MB
DOCS = ROOT / "docs"


# ------------------------------------------------------------------------------- targets


def _llama3(result: dict) -> dict | None:
    return next((m for m in result.get("e2e", {}).get("models", []) if m["model"] == "llama3-8b-shaped"), None)


def targets(result: dict) -> list[dict]:
    """The issue's targets, each with what was measured and whether it is met."""
    out = []
    eng = result.get("engine")
    if eng:
        worst = min(eng, key=lambda r: r["ratio"])
        below = [r for r in eng if r["ratio"] < 1.0]
        out.append({
            "target": f"Engine >= 1.0x ggml for every type at {result['threads']} threads",
            "measured": f"lowest {worst['ratio']:.2f}x ({worst['type']} {worst['mode']}, {worst['shape']}); "
                        f"{len(below)} of {len(eng)} rows below 1.0x",
            "met": not below,
        })
    e = result.get("e2e")
    if e:
        m = _llama3(result)
        if m:
            r = next((r for r in m["rows"] if r["type"] == "Q4_K_M" and r["via"] == "BF16"), None)
            if r:
                out.append({
                    "target": "End to end <= 0.5x of llama.cpp's two steps, Q4_K_M, Llama-3-shaped checkpoint",
                    "measured": f"{r['ratio']:.2f}x ({r['ours']['wall']:.1f} s vs {r['llama_total']:.1f} s = "
                                f"{r['convert_wall']:.1f} s convert + {r['quantize']['wall']:.1f} s quantize)",
                    "met": r["ratio"] <= 0.5,
                })
        parts, ok = [], True
        for mm in e["models"]:
            runs = [(r["type"], r["ours"]["rss"]) for r in mm["rows"]]
            if "multi" in mm:
                runs.append((" + ".join(mm["multi"]["types"]), mm["multi"]["one_run"]["rss"]))
            label, rss = max(runs, key=lambda lr: lr[1])
            lt, tgt = mm["info"]["largest"], mm["rss_target"]
            ok = ok and all(v <= tgt["stored"] for _, v in runs)
            parts.append(
                f"{mm['model']}: at most {rss / MB:,.0f} MB ({label}) vs {tgt['stored'] / MB:,.0f} MB "
                f"(largest tensor {'x'.join(map(str, lt['shape']))} {lt['dtype']}, {lt['stored_bytes'] / MB:,.0f} MB "
                f"as stored; {tgt['f32'] / MB:,.0f} MB on its float32 size)"
            )
        if parts:
            out.append({"target": "Peak RSS <= 3x the largest tensor + 400 MB", "measured": "; ".join(parts),
                        "met": ok})
        s = e.get("startup")
        if s:
            out.append({
                "target": "`quant --help` under 0.3 s",
                "measured": f"{s['help']['wall']:.3f} s (best of {len(s['help']['walls'])})",
                "met": s["help"]["wall"] < 0.3,
            })
            out.append({
                "target": "No compilation on a second run",
                "measured": f"{s['second_max_misses']} kernels compiled in {len(s['second_walls'])} second runs "
                            f"(first run: {s['first']['cache_misses']})",
                "met": s["second_max_misses"] == 0,
            })
    return out


def headline(result: dict) -> list[str]:
    """Lines for the README."""
    lines = []
    mach = result["machine"]
    where = f"{mach['cores']}-core {mach['cpu']}, {result['threads']} threads, {mach['date'][:10]}"
    m = _llama3(result)
    if m:
        r = next((r for r in m["rows"] if r["type"] == "Q4_K_M" and r["via"] == "BF16"), None)
        if r:
            lines.append(
                f"- Llama-3-8B-shaped checkpoint (2 layers, {m['info']['params'] / 1e6:.0f} M parameters, bf16) to "
                f"Q4_K_M: `quant convert` {r['ours']['wall']:.1f} s vs llama.cpp's convert_hf_to_gguf + "
                f"llama-quantize {r['llama_total']:.1f} s ({r['llama_total'] / r['ours']['wall']:.1f}x faster), "
                f"same bytes: {'yes' if r['identical'] else 'NO'}; peak RSS {r['ours']['rss'] / MB:.0f} MB vs "
                f"{r['llama_rss'] / MB:.0f} MB ({where})."
            )
        if "multi" in m:
            mu = m["multi"]
            lines.append(
                f"- {' + '.join(mu['types'])} in one run: {mu['one_run']['wall']:.1f} s vs "
                f"{mu['separate_total']:.1f} s for three runs ({mu['speedup']:.1f}x) and "
                f"{mu['llama_total']:.1f} s for llama.cpp's convert + three quantizes."
            )
    eng = result.get("engine")
    if eng:
        def span(rows):
            return f"{min(r['ratio'] for r in rows):.2f}x-{max(r['ratio'] for r in rows):.2f}x" if rows else "-"

        kq = [r for r in eng if r["type"].endswith("_K") and r["mode"] == "plain"]
        imp = [r for r in eng if r["mode"] != "plain"]
        simple = [r for r in eng if not r["type"].endswith("_K") and r["mode"] == "plain"]
        same = "every block byte-identical" if all(r["identical"] for r in eng) else "SOME BLOCKS DIFFER"
        lines.append(
            f"- Engine vs ggml's `ggml_quantize_chunk` (same input, {result['threads']} threads, {same}): "
            f"K-quants {span(kq)} ggml's speed, with an importance matrix {span(imp)}, "
            f"F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 {span(simple)}."
        )
    s = result.get("e2e", {}).get("startup")
    if s:
        lines.append(
            f"- `quant --help` {s['help']['wall']:.2f} s; first-ever run compiles the kernels once "
            f"({s['jit_seconds']:.0f} s), later runs load them from the cache ({s['second_max_misses']} compiled)."
        )
    return lines


# ------------------------------------------------------------------------------ markdown


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _mb(b: float) -> str:
    return f"{b / MB:,.0f}"


def render(result: dict) -> str:
    mach = result["machine"]
    out = ["# Benchmarks", ""]
    out.append(f"Measured by `python -m benchmarks` (`make bench`) on {mach['date']}; this file and "
               f"`docs/benchmarks.json` are written by that command.")
    out.append("")
    out.append(
        f"**Machine**: {mach['cpu']} ({mach['cpu_detail']}), {mach['cores']} cores "
        f"({mach['threads_per_core']} thread per core), {mach['memory_gb']} GB RAM, {mach['os']}, "
        f"Python {mach['python']}, Numba {mach['numba']}.  "
        f"**quantcli** {mach['quantcli']}.  **llama.cpp**: llama-cpp-python {mach['llama_cpp_python']} "
        f"(its vendored `convert_hf_to_gguf.py`, run with torch + transformers in `.venv-ref`, and its "
        f"`libllama` for `llama_model_quantize`).  **Threads**: {result['threads']} on both sides."
    )
    out.append("")

    tg = targets(result)
    if tg:
        out += ["## Targets", ""]
        out.append(_table(["target", "measured", "met"],
                          [[t["target"], t["measured"], "yes" if t["met"] else "**no**"] for t in tg], "llc"))
        out.append("")
    hl = headline(result)
    if hl:
        out += ["Headline (for the README):", ""] + hl + [""]

    eng = result.get("engine")
    if eng:
        out += ["## 1. Engine: our kernels vs ggml", ""]
        out.append(
            f"`benchmarks/engine.py`: one float32 tensor per shape (N(0, 0.02), 0.5% outlier columns x20), "
            f"quantized by `formats.quantize` and by ggml's `ggml_quantize_chunk` (libggml-base through ctypes, "
            f"on a pool of {result['threads']} threads over row chunks, as llama-quantize splits a tensor); "
            f"best of {result.get('engine_repeat', result['repeat'])}, the two sides run in turn; both allocate "
            f"their output on every call, and 3 GiB are touched once before the first type (on this VM the host "
            f"backs never-touched guest memory lazily, at about 0.4 GiB/s).  Speed in millions of weights per second; ratio = ours/ggml speed "
            f"(> 1: ours faster).  'importance' = with an importance vector (imatrix).  The engine "
            f"run waits for a quiet machine before each type; load average (1 min) then: "
            f"{min(r.get('load1', 9) for r in eng):.2f} to {max(r.get('load1', 0) for r in eng):.2f}"
            + (f"; measured {result['engine_from']}" if result.get("engine_from") else "") + "."
        )
        out.append("")
        rows = [[r["shape"], r["type"], r["mode"].replace("imatrix", "importance"), f"{r['ours_mw_s']:,.1f}",
                 f"{r['ggml_mw_s']:,.1f}", f"**{r['ratio']:.2f}**" if r["ratio"] < 1 else f"{r['ratio']:.2f}",
                 "yes" if r["identical"] else "**NO**"] for r in eng]
        out.append(_table(["shape", "type", "mode", "ours Mw/s", "ggml Mw/s", "ours/ggml", "same bytes"], rows,
                          "lllrrrc"))
        out.append("")
        ej = result.get("engine_jit")
        if ej:
            out.append(
                f"Engine JIT (every kernel of every type, plain and importance, `benchmarks/engine.py`): first "
                f"process {ej['first']['seconds']:.1f} s ({ej['first']['cache_misses']} kernels compiled), "
                f"second process {ej['second']['seconds']:.2f} s ({ej['second']['cache_misses']} compiled, "
                f"{ej['second']['cache_hits']} loaded from the cache)."
            )
            out.append("")

    e = result.get("e2e")
    if e:
        out += ["## 2. End to end: `quant convert` vs llama.cpp's two steps", ""]
        if result.get("e2e_from"):
            out += [f"(Sections 2-4 measured {result['e2e_from']}.)", ""]
        out.append(
            "Ours: `quant convert SRC TYPE -o OUT -t N --force -q`, from the checkpoint.  llama.cpp: "
            "(1) `convert_hf_to_gguf.py SRC --outtype bf16` (no thread option; torch's defaults), then "
            "(2) `llama_model_quantize` with `nthread = N` in a fresh process (llama-cpp-python's binding; "
            f"its interpreter + library start-up costs {e['llama_cpp_import']['wall']:.2f} s and "
            f"{_mb(e['llama_cpp_import']['rss'])} MB, included).  Step 1 is measured once per checkpoint and "
            "added to each type's step 2.  For the float32 SmolLM2 the F32 intermediate is shown too: "
            "a BF16 intermediate rounds the weights before quantizing, so only the F32 path can give "
            "the same bytes.  `Q8_0` in quantcli is the converter's `--outtype q8_0`, so the one-step "
            "converter run is shown as well.  Wall time: best of "
            f"{e['repeat']} runs (or more, when another process disturbed a run).  Peak RSS: the process's "
            "own `ru_maxrss` (from `wait4`), the largest of the repeats; llama.cpp's is the larger of its "
            "two steps (the converter's includes the memory-mapped checkpoint pages it touched).  "
            "'same bytes': sha256 of both outputs."
        )
        out.append("")
        for m in e["models"]:
            info = m["info"]
            lt = info["largest"]
            out.append(
                f"**{m['model']}**: {info['params'] / 1e6:,.0f} M parameters, {info['bytes'] / 1e9:.2f} GB "
                f"{'/'.join(info['dtypes'])} safetensors, hidden {info['hidden']}, {info['layers']} layers, "
                f"vocab {info['vocab']}; largest tensor `{lt['name']}` {'x'.join(map(str, lt['shape']))} = "
                f"{_mb(lt['stored_bytes'])} MB as stored ({_mb(lt['f32_bytes'])} MB as float32): RSS target "
                f"{_mb(m['rss_target']['stored'])} MB ({_mb(m['rss_target']['f32'])} MB on the float32 size).  "
                f"llama.cpp convert: " + ", ".join(
                    f"{k.upper()} {c['wall']:.2f} s / {_mb(c['rss'])} MB" for k, c in m["convert"].items())
                + "."
            )
            out.append("")
            rows = []
            for r in m["rows"]:
                q = r["quantize"]
                rows.append([
                    r["type"], r["via"], f"{r['ours']['wall']:.2f}",
                    f"{r['convert_wall']:.2f}", f"{q['wall']:.2f}" if q else "-", f"{r['llama_total']:.2f}",
                    f"**{r['ratio']:.2f}**", _mb(r["ours"]["rss"]),
                    f"{_mb(r['convert_rss'])} / {_mb(q['rss'])}" if q else _mb(r["convert_rss"]),
                    "yes" if r["identical"] else "no",
                ])
            out.append(_table(
                ["type", "llama.cpp path", "quant s", "convert s", "quantize s", "llama.cpp s", "time ours / llama.cpp",
                 "quant peak MB", "llama.cpp peak MB (convert / quantize)", "same bytes"], rows, "llrrrrrrrc"))
            out.append("")
        extra = [t for t in dict.fromkeys(r["type"] for m in e["models"] for r in m["rows"] if not r["in_main_table"])]
        notes = []
        if extra:
            notes.append(f"{', '.join(extra)}: measured for section 3.")
        if any(r["type"] == "Q8_0" for m in e["models"] for r in m["rows"]):
            notes.append(
                "Q8_0 'same bytes: no' against llama-quantize is expected: `quant convert ... Q8_0` writes what "
                "the converter's `--outtype q8_0` writes (identical, see the one-step row); llama-quantize's "
                "Q8_0 file holds the same tensors, types, data and key/value pairs, but moves "
                "`general.quantization_version` and `general.file_type` to the end of the header.")
        if any(r["via"] == "BF16" and not r["identical"] and "F32" in m["info"]["dtypes"]
               for m in e["models"] for r in m["rows"]):
            notes.append("A float32 checkpoint through a BF16 intermediate cannot give the same bytes (the weights "
                         "are rounded to bf16 first); through the F32 intermediate it does.")
        if notes:
            out += [" ".join(notes), ""]

        multi = [m for m in e["models"] if "multi" in m]
        if multi:
            out += ["## 3. Several recipes in one run", ""]
            for m in multi:
                mu = m["multi"]
                types = " ".join(mu["types"])
                out.append(
                    f"{m['model']}: `quant convert SRC {types} -o DIR` reads and widens each tensor once and "
                    f"quantizes it once per distinct type; against one `quant convert` per recipe (the runs of "
                    f"section 2) and llama.cpp's convert + one `llama_model_quantize` per recipe.  Outputs of the "
                    f"one run identical to the separate runs: "
                    + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in mu["identical_to_single_runs"].items())
                    + "."
                )
                out.append("")
                rows = [
                    [f"`quant convert {types}` (one run)", f"{mu['one_run']['wall']:.2f}", _mb(mu["one_run"]["rss"])],
                    [f"{len(mu['types'])} separate `quant convert` runs ("
                     + " + ".join(f"{v:.2f}" for v in mu["separate"].values()) + ")",
                     f"{mu['separate_total']:.2f}", "-"],
                    [f"llama.cpp: convert {mu['llama_convert']:.2f} + quantize "
                     + " + ".join(f"{v:.2f}" for v in mu["llama_quantize"].values()),
                     f"{mu['llama_total']:.2f}", "-"],
                ]
                out.append(_table(["", "wall s", "peak MB"], rows))
                out.append("")
                out.append(f"One run vs separate runs: {mu['speedup']:.2f}x faster; vs llama.cpp: "
                           f"{mu['ratio_vs_llama']:.2f}x the time.")
                out.append("")

        s = e.get("startup")
        if s:
            out += ["## 4. Start-up and JIT", ""]
            types = " ".join(s["types"])
            rows = [
                ["`quant --help` (installed command, best of " f"{len(s['help']['walls'])})",
                 f"{s['help']['wall']:.3f} s", "runs " + ", ".join(f"{w:.2f}" for w in s["help"]["walls"])],
                [f"first-ever run: `quant convert fixtures/demo {types}`, empty Numba cache "
                 "(fresh `QUANTCLI_CACHE_DIR`)", f"{s['first']['wall']:.2f} s",
                 f"{s['first']['cache_misses']} kernels compiled; runs "
                 + ", ".join(f"{w:.2f}" for w in s["first_walls"])],
                ["second run, same cache", f"{s['second']['wall']:.2f} s",
                 f"{s['second_max_misses']} compiled, {s['second']['cache_hits']} loaded from the cache; runs "
                 + ", ".join(f"{w:.2f}" for w in s["second_walls"])],
                ["JIT compile cost (first - second)", f"{s['jit_seconds']:.1f} s", "paid once per machine "
                 "and engine version"],
            ]
            out.append(_table(["measurement", "wall", "notes"], rows, "lrl"))
            out.append("")
            out.append("Kernel counts are Numba's own cache statistics, read in the process after the run "
                       "(the CLI run in process, `quantcli.cli.main`).")
            out.append("")

    out += ["## Method and caveats", ""]
    out += [
        "- Each timing is the best of at least two runs; peak RSS is the largest of the runs.",
        "- The machine is shared: before each run the benchmark waits until other processes use less than "
        f"{result.get('max_busy', 0.3)} cores (for at most {result.get('settle', 120):.0f} s, then measures "
        "anyway) and records the load average and the cores "
        "others used during the run (from /proc/stat minus the child's own CPU time); see "
        "`docs/benchmarks.json` (`load1`, `others_cores`, `walls`).",
        "- The Llama-3-8B-shaped checkpoint is generated by `python -m benchmarks.make_llama3_shaped` into "
        "`.cache/bench/` (deterministic, not committed): Llama-3-8B's layer shapes with 2 layers, vocab 32000 "
        "(SentencePiece tokenizer padded with `[PAD]` tokens, as llama.cpp's converter does), untied lm_head, "
        "bf16, weights N(0, 0.02) with 0.5% outlier columns x20.",
        "- llama.cpp's converter reads a memory-mapped checkpoint and writes a BF16 file of the checkpoint's "
        "size; the quantize step reads that file.  Every command runs at least twice in a row, so the "
        "repeats of both sides read from a warm page cache.",
        "- The Numba kernel cache is warmed before the end-to-end runs, so they time conversion only; "
        "section 4 shows the one-off compile.",
    ]
    out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------- main


def run_engine(threads: int, sizes: list[tuple[int, int]], repeat: int, max_busy: float) -> list[dict]:
    """benchmarks/engine.py's table, one type at a time, waiting for a quiet machine before each."""
    print(f"engine benchmark, {threads} threads, best of {repeat}", flush=True)
    engine.prefault()
    saved = engine.TYPES
    rows = []
    try:
        for name in saved:
            load = e2e.settle(max_busy)
            engine.TYPES = [name]
            for r in engine.engine_table(threads, sizes, repeat):
                r["load1"] = load["load1"]
                rows.append(r)
    finally:
        engine.TYPES = saved
    order = {f"{r}x{c}": i for i, (r, c) in enumerate(sizes)}
    rows.sort(key=lambda r: (order[r["shape"]], saved.index(r["type"])))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--sizes", default="4096x4096,14336x4096", help="engine tensor shapes")
    ap.add_argument("--engine-repeat", type=int, default=3,
                    help="engine timings: best of N (memory-bound types vary run to run)")
    ap.add_argument("--models", default=",".join(e2e.MODELS))
    ap.add_argument("--types", default=",".join(e2e.TYPES))
    ap.add_argument("--multi", default=",".join(e2e.MULTI))
    ap.add_argument("--max-busy", type=float, default=0.3, help="cores others may use while we measure")
    ap.add_argument("--settle", type=float, default=e2e.SETTLE_TIMEOUT,
                    help="seconds to wait for a quiet machine before each run (then measure anyway)")
    ap.add_argument("--skip-engine", action="store_true")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--keep-previous", action="store_true",
                    help="take skipped sections from the saved JSON instead of leaving them out")
    ap.add_argument("--render-only", action="store_true", help="rewrite the markdown from the saved JSON")
    ap.add_argument("--json", type=Path, default=DOCS / "benchmarks.json")
    ap.add_argument("--md", type=Path, default=DOCS / "benchmarks.md")
    a = ap.parse_args(argv)

    if a.render_only:
        result = json.loads(a.json.read_text())
    else:
        e2e.SETTLE_TIMEOUT = a.settle
        threads = a.threads
        previous = json.loads(a.json.read_text()) if a.keep_previous and a.json.is_file() else {}
        result = {"machine": e2e.machine(threads), "threads": threads, "repeat": max(2, a.repeat),
                  "max_busy": a.max_busy, "settle": a.settle}

        def save() -> None:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(result, indent=1))

        if not a.skip_engine:
            sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",")]
            result["engine_load"] = e2e.settle(a.max_busy)
            result["engine_repeat"] = max(2, a.engine_repeat)
            result["engine"] = run_engine(threads, sizes, result["engine_repeat"], a.max_busy)
            result["engine_jit"] = engine.jit_table()
            save()
        elif "engine" in previous:
            for k in ("engine", "engine_load", "engine_jit", "engine_repeat"):
                if k in previous:
                    result[k] = previous[k]
            result["engine_from"] = previous["machine"]["date"]
        if not a.skip_e2e:
            result["e2e"] = e2e.run_all(threads, a.repeat, a.models.split(","), a.types.split(","),
                                        a.multi.split(",") if a.multi else None, a.max_busy)
            e2e.print_tables(result["e2e"])
        elif "e2e" in previous:
            result["e2e"] = previous["e2e"]
            result["e2e_from"] = previous["machine"]["date"]
        result["machine"]["finished"] = time.strftime("%Y-%m-%d %H:%M %Z")
        save()
        print(f"saved {a.json}")

    a.md.parent.mkdir(parents=True, exist_ok=True)
    a.md.write_text(render(result))
    print(f"saved {a.md}\n")
    for t in targets(result):
        print(f"[{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['measured']}")
    print("\nREADME lines:")
    for line in headline(result):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
