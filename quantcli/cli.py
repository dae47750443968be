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


@app.command("convert")
def convert_cmd(
    source: str = typer.Argument(..., help="model folder or Hugging Face repo id (ORG/NAME)"),
    types: list[str] = typer.Argument(..., help="output types: F32, F16, BF16, Q8_0 or auto"),
    out: Optional[Path] = typer.Option(None, "-o", "--outfile", help="output file, or a folder for several outputs (default: ./<name>-<TYPE>.gguf)"),
    threads: Optional[int] = typer.Option(None, "-t", "--threads", help="threads (default: all cores); the bytes never depend on it"),
    force: bool = typer.Option(False, "--force", help="overwrite existing output files"),
    split_max_tensors: int = typer.Option(0, "--split-max-tensors", help="at most N tensors per shard"),
    split_max_size: Optional[str] = typer.Option(None, "--split-max-size", help="at most N bytes per shard (e.g. 500M, 2G)"),
    revision: Optional[str] = typer.Option(None, "--revision", help="hub revision (branch, tag or commit)"),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="general.name (and output file name)"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="no progress output"),
) -> None:
    """Convert a Hugging Face checkpoint to GGUF."""
    from .progress import Reporter

    reporter = Reporter(quiet=quiet)
    with reporter.guard():
        from . import convert as C
        from . import source as S

        folder = S.resolve(source, revision)
        opts = C.Options(
            out=out,
            threads=threads,
            force=force,
            split_max_tensors=split_max_tensors,
            split_max_size=parse_size(split_max_size) if split_max_size else 0,
            model_name=model_name,
        )
        written = C.convert(folder, types, opts, progress=reporter)
        reporter.done(written)


@app.command("types")
def types_cmd() -> None:
    """List the GGML types the engine writes, with block sizes and bits per weight."""
    from rich.console import Console
    from rich.table import Table

    import formats
    from formats.registry import REGISTRY

    formats.supports("F32")  # load every family
    table = Table(title="engine types")
    for col in ("type", "values/block", "bytes/block", "bits/weight", "importance"):
        table.add_column(col, justify="right" if col != "type" else "left")
    for bt in REGISTRY.values():
        table.add_row(
            bt.name,
            str(bt.block_size),
            str(bt.type_size),
            f"{8 * bt.type_size / bt.block_size:.4g}",
            "yes" if bt.uses_importance else "-",
        )
    Console().print(table)


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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
