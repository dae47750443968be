"""The `quant` command: a thin Typer + Rich face over the pipeline.

Heavy imports (numpy, Numba, the engine, the converter) happen inside the commands, so
`quant --help` stays fast.
"""

from __future__ import annotations

import sys
import time
from typing import Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Hugging Face checkpoint to GGUF in one step, byte-identical to llama.cpp.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
