"""The `quant` command: a thin Typer + Rich face over the pipeline.

Heavy imports (numpy, Numba, the engine, the converter) happen inside the commands, so
`quant --help` stays fast.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Hugging Face checkpoint to GGUF in one step, byte-identical to llama.cpp.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
)


def parse_size(text: str) -> int:
    """llama.cpp's --split-max-size: a number with an optional K/M/G suffix (1000-based)."""
    t = text.strip().upper()
    mult = {"K": 1000, "M": 1000**2, "G": 1000**3}.get(t[-1:], 1)
    num = t[:-1] if t[-1:] in "KMG" else t
    try:
        value = int(float(num) * mult)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected a size such as 500M or 2G") from None
    if value <= 0:
        raise typer.BadParameter(f"{text!r}: the size must be positive")
    return value


def _type_arg(value: Optional[str], flag: str):
    if value is None:
        return None
    from .recipe import RecipeError, parse_ggml_type

    try:
        return parse_ggml_type(value)
    except (RecipeError, ValueError) as e:
        raise typer.BadParameter(f"{flag} {value}: {e}") from None


def _tensor_types(items: list[str], files: list[Path]) -> tuple:
    from .recipe import RecipeError, parse_tensor_type

    specs = list(items)
    for f in files:
        try:
            specs += f.read_text(encoding="utf-8").split()
        except OSError as e:
            raise typer.BadParameter(f"--tensor-type-file {f}: {e.strerror}") from None
    out = []
    for spec in specs:
        try:
            out.append(parse_tensor_type(spec))
        except (RecipeError, ValueError) as e:
            raise typer.BadParameter(f"--tensor-type {spec}: {e}") from None
    return tuple(out)


def _kv_overrides(items: list[str]) -> tuple:
    from .recipe import RecipeError, parse_kv_override

    out = []
    for item in items:
        try:
            out.append(parse_kv_override(item))
        except (RecipeError, ValueError) as e:
            raise typer.BadParameter(f"--override-kv {item}: {e}") from None
    return tuple(out)


@app.command("plan", help="Show what `convert` would write, tensor by tensor (type, why, bytes); writes nothing.")
@app.command("convert", help="Convert a Hugging Face checkpoint (or requantize a GGUF) to GGUF, one file per TYPE or recipe.")
def convert_cmd(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="model folder, .gguf file, or Hugging Face repo id (ORG/NAME)"),
    types: list[str] = typer.Argument(..., help="recipes (Q4_K_M, Q5_K_S, Q8_0, ...) or converter types (F32, F16, BF16, Q8_0, auto); see `quant types`"),
    out: Optional[str] = typer.Option(None, "-o", "--outfile", help="output file, or a folder (existing, or ending in /) (default: ./<name>-<TYPE>.gguf)"),
    threads: Optional[int] = typer.Option(None, "-t", "--threads", help="threads (default: all cores); the bytes never depend on it"),
    force: bool = typer.Option(False, "--force", help="overwrite existing output files"),
    imatrix: Optional[Path] = typer.Option(None, "--imatrix", help="importance matrix (llama-imatrix GGUF or legacy .dat)"),
    include_weights: list[str] = typer.Option([], "--include-weights", help="use the imatrix only for tensors whose name contains this (repeatable)"),
    exclude_weights: list[str] = typer.Option([], "--exclude-weights", help="do not use the imatrix for tensors whose name contains this (repeatable)"),
    output_tensor_type: Optional[str] = typer.Option(None, "--output-tensor-type", help="type of output.weight"),
    token_embedding_type: Optional[str] = typer.Option(None, "--token-embedding-type", help="type of token_embd.weight"),
    tensor_type: list[str] = typer.Option([], "--tensor-type", help="REGEX=TYPE for matching tensors (repeatable; first match wins)"),
    tensor_type_file: list[Path] = typer.Option([], "--tensor-type-file", help="file of REGEX=TYPE entries, separated by spaces or newlines"),
    pure: bool = typer.Option(False, "--pure", help="every quantized tensor gets the recipe's base type (no mix)"),
    leave_output_tensor: bool = typer.Option(False, "--leave-output-tensor", help="keep output.weight unquantized"),
    override_kv: list[str] = typer.Option([], "--override-kv", help="KEY=TYPE:VALUE metadata override (int, float, bool, str; repeatable)"),
    allow_requantize: bool = typer.Option(False, "--allow-requantize", help="allow quantized input tensors (quality loss)"),
    no_fallback: bool = typer.Option(False, "--no-fallback", help="fail, naming the tensor, instead of falling back to another type when rows are not whole blocks"),
    vocab_pre: Optional[str] = typer.Option(None, "--vocab-pre", help="pre-tokenizer name for a BPE tokenizer llama.cpp does not recognise"),
    split_max_tensors: int = typer.Option(0, "--split-max-tensors", help="at most N tensors per shard"),
    split_max_size: Optional[str] = typer.Option(None, "--split-max-size", help="at most N bytes per shard (e.g. 500M, 2G)"),
    revision: Optional[str] = typer.Option(None, "--revision", help="hub revision (branch, tag or commit)"),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="general.name (and output file name)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show the plan only (as `quant plan`)"),
    as_json: bool = typer.Option(False, "--json", help="print the plan / the report as JSON on stdout"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="no progress output"),
) -> None:
    from . import recipe as R
    from .progress import Reporter

    plan_only = dry_run or ctx.info_name == "plan"
    reporter = Reporter(quiet=quiet or as_json)
    if quiet:  # errors only: also silence gguf's converter warnings (duplicated keys)
        import logging

        logging.getLogger("gguf").setLevel(logging.ERROR)
    with reporter.guard():
        from . import convert as C
        from . import source as S

        quant = R.Options(
            pure=pure,
            leave_output_tensor=leave_output_tensor,
            output_tensor_type=_type_arg(output_tensor_type, "--output-tensor-type"),
            token_embedding_type=_type_arg(token_embedding_type, "--token-embedding-type"),
            tensor_types=_tensor_types(tensor_type, tensor_type_file),
            allow_requantize=allow_requantize,
            no_fallback=no_fallback,
        )
        opts = C.Options(
            out=out,
            threads=threads,
            force=force,
            split_max_tensors=split_max_tensors,
            split_max_size=parse_size(split_max_size) if split_max_size else 0,
            model_name=model_name,
            vocab_pre=vocab_pre,
            quant=quant,
            imatrix=imatrix,
            include_weights=tuple(include_weights),
            exclude_weights=tuple(exclude_weights),
            override_kv=_kv_overrides(override_kv),
        )
        folder = S.resolve(source, revision)
        if plan_only:
            from . import report

            tensors, targets = C.plan_outputs(folder, types, opts)
            if as_json:
                import json

                print(json.dumps(report.plan_json(tensors, targets), indent=1))
            else:
                from rich.console import Console

                report.print_plan(Console(), tensors, targets)
            return
        written = C.convert(folder, types, opts, progress=reporter)
        reporter.done(written)
        if as_json:
            import json

            print(json.dumps(reporter.report(), indent=1))


RECIPE_USE = {
    "Q2_K": "smallest K mix; large quality loss",
    "Q2_K_S": "smallest; needs an importance matrix",
    "Q3_K_S": "very small, noticeable loss",
    "Q3_K_M": "small, moderate loss",
    "Q3_K_L": "small, less loss than Q3_K_M",
    "Q4_0": "legacy 4-bit; prefer Q4_K_M",
    "Q4_1": "legacy 4-bit with offsets",
    "Q4_K_S": "4-bit, slightly smaller than Q4_K_M",
    "Q4_K_M": "the usual default: good size/quality balance",
    "Q5_0": "legacy 5-bit",
    "Q5_1": "legacy 5-bit with offsets",
    "Q5_K_S": "5-bit, very low loss",
    "Q5_K_M": "5-bit, very low loss (recommended when it fits)",
    "Q6_K": "near-lossless",
    "Q8_0": "practically lossless; also a converter type",
    "F16": "unquantized half precision (converter type)",
    "BF16": "unquantized bfloat16 (converter type)",
    "F32": "unquantized (converter type)",
}


@app.command("types")
def types_cmd(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """List the recipes (llama-quantize's mixes) and the GGML types, with bits per weight."""
    from rich.console import Console
    from rich.table import Table

    import formats
    from formats.registry import REGISTRY

    from .recipe import RECIPES, SUPPORTED_RECIPES

    formats.supports("F32")  # load every family
    recipes = []
    for name in SUPPORTED_RECIPES:
        r = RECIPES[name]
        recipes.append({
            "recipe": name,
            "aliases": list(r.aliases),
            "base_type": r.default_type.name,
            "base_bits_per_weight": r.nominal_bpw,
            "llama_cpp_reference": r.description.strip(),
            "needs_imatrix": r.requires_imatrix,
            "use": RECIPE_USE.get(name, ""),
        })
    types = [{"type": bt.name, "block": bt.block_size, "bytes_per_block": bt.type_size,
              "bits_per_weight": 8 * bt.type_size / bt.block_size, "uses_imatrix": bt.uses_importance}
             for bt in REGISTRY.values()]
    if as_json:
        import json

        print(json.dumps({"recipes": recipes, "types": types}, indent=1))
        return
    console = Console()
    table = Table(title="recipes (quant convert MODEL RECIPE)", title_justify="left")
    for col in ("recipe", "base type", "bpw", "size, quality (llama.cpp's table)", "what for"):
        table.add_column(col)
    for r in recipes:
        name = r["recipe"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        table.add_row(name, r["base_type"], f"{r['base_bits_per_weight']:.3g}", r["llama_cpp_reference"], r["use"])
    console.print(table)
    table = Table(title="GGML types written by the engine", title_justify="left")
    for col in ("type", "values/block", "bytes/block", "bits/weight", "importance"):
        table.add_column(col, justify="right" if col != "type" else "left")
    for t in types:
        table.add_row(t["type"], str(t["block"]), str(t["bytes_per_block"]), f"{t['bits_per_weight']:.4g}",
                      "yes" if t["uses_imatrix"] else "-")
    console.print(table)


@app.command("demo")
def demo_cmd(
    rows: int = typer.Option(256, help="rows of the generated tensor"),
    cols: int = typer.Option(4096, help="values per row"),
    threads: Optional[int] = typer.Option(None, "-t", "--threads", help="threads (default: all cores)"),
) -> None:
    """Quantize a generated weight-like tensor with every type and print what came out."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    import formats
    from formats.registry import REGISTRY

    console = Console()
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
    x[:, rng.choice(cols, max(1, cols // 200), replace=False)] *= 20  # outlier columns
    importance = (rng.random(cols) ** 2).astype(np.float32)
    formats.supports("F32")
    table = Table(title=f"{rows}x{cols} float32 tensor (std 0.02, 0.5% outlier columns)")
    for col in ("type", "bytes", "bits/weight", "rmse", "rmse (imatrix)", "Mweights/s"):
        table.add_column(col, justify="right" if col != "type" else "left")
    for bt in REGISTRY.values():
        t0 = time.perf_counter()
        q = formats.quantize(x, bt.qtype, threads=threads)
        dt = time.perf_counter() - t0
        err = np.sqrt(np.mean((formats.dequantize(q, bt.qtype, cols) - x) ** 2))
        qi = formats.quantize(x, bt.qtype, importance=importance, threads=threads)
        erri = np.sqrt(np.mean((formats.dequantize(qi, bt.qtype, cols) - x) ** 2))
        table.add_row(
            bt.name,
            f"{q.nbytes:,}",
            f"{8 * q.nbytes / x.size:.3f}",
            f"{err:.3e}",
            f"{erri:.3e}" if bt.uses_importance else "-",
            f"{x.size / dt / 1e6:,.1f}",
        )
    console.print(table)


@app.command("inspect")
def inspect_cmd(
    file: Path = typer.Argument(..., help="a .gguf file (any part of a split model reads all parts)"),
    as_json: bool = typer.Option(False, "--json", help="print everything as JSON on stdout"),
    no_tensors: bool = typer.Option(False, "--no-tensors", help="leave out the tensor table"),
    no_metadata: bool = typer.Option(False, "--no-metadata", help="leave out the key/value metadata"),
    full: bool = typer.Option(False, "--full", help="print long arrays (token lists) and long strings in full"),
) -> None:
    """Show what a GGUF file holds: metadata, tensors, type histogram, size and bits per weight."""
    from .progress import Reporter

    with Reporter(quiet=True).guard():
        from .inspect import render, summarize

        s = summarize(file, with_metadata=not no_metadata, with_tensors=not no_tensors, full=full)
        if as_json:
            import json

            print(json.dumps(s, indent=1, ensure_ascii=False, default=str))
            return
        from rich.console import Console

        render(s, Console(), value_width=10**9 if full else 100)


@app.command("batch")
def batch_cmd(
    manifest: Path = typer.Argument(..., help="batch manifest (TOML): output folder, models, recipes, options"),
    jobs: Optional[int] = typer.Option(None, "-j", "--jobs", help="models converted in parallel (default: the manifest's jobs, else 1); threads are divided among them"),
    threads: Optional[int] = typer.Option(None, "-t", "--threads", help="total threads (default: the manifest's threads, else all cores)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="output folder (overrides the manifest's output)"),
    summary: Optional[Path] = typer.Option(None, "--summary", help="JSON summary file (default: OUTPUT/quant-batch.json)"),
    only: list[str] = typer.Option([], "--only", help="run only the model with this name (repeatable)"),
    force: bool = typer.Option(False, "--force", help="rebuild outputs even if they are already complete"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print what would run (one `quant convert` per model); convert nothing"),
    as_json: bool = typer.Option(False, "--json", help="print the summary (or the --dry-run plan) as JSON on stdout"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="no progress output; errors only"),
) -> None:
    """Convert many models x recipes from a TOML manifest into one output folder (for CI).

    Outputs that are already complete are skipped, a failed model does not stop the others, a JSON summary is written, and the exit code is 6 if any model failed. See docs/cli-reference.md for the manifest."""
    from .batch import run_batch

    raise SystemExit(run_batch(manifest, jobs=jobs, threads=threads, output=output, summary=summary,
                               only=only, force=force, dry_run=dry_run, as_json=as_json, quiet=quiet))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
