"""What a GGUF file holds: metadata, tensors, a type histogram, size and bits per weight.

`summarize(path)` is the JSON form (`quant inspect --json`, the `--json` report of
`convert`, the batch summary); `render(summary, console)` prints it as Rich tables.
Split files are read as one model from any of their parts.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from .errors import InputError
from .gguf_source import GGUFModel


def summarize(path: Path, with_metadata: bool = True, with_tensors: bool = True, full: bool = False) -> dict:
    """A JSON-ready description of a GGUF model (split files read as one).

    Metadata arrays longer than 16 items (token lists) are shortened to a description
    unless ``full``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    model = GGUFModel(path)
    try:
        return summarize_model(model, path, with_metadata, with_tensors, full)
    finally:
        model.close()


def summarize_model(model: GGUFModel, path: Path, with_metadata: bool = True, with_tensors: bool = True,
                    full: bool = False) -> dict:
    """`summarize` of an open GGUFModel (reading a large vocabulary takes seconds: read once)."""
    tensors = []
    hist: dict[str, dict[str, int]] = {}
    n_weights = 0
    n_bytes = 0
    for t in model.tensors.values():
        ne = int(np.prod(t.ggml_shape, dtype=np.int64))
        nb = int(t.rt.n_bytes)
        n_weights += ne
        n_bytes += nb
        h = hist.setdefault(t.qtype.name, {"tensors": 0, "weights": 0, "bytes": 0})
        h["tensors"] += 1
        h["weights"] += ne
        h["bytes"] += nb
        if with_tensors:
            tensors.append({"name": t.name, "shape": list(t.ggml_shape), "type": t.qtype.name, "bytes": nb})
    files = [str(p) for p in model.paths]
    out = {
        "file": str(path),
        "files": files,
        "file_bytes": sum(p.stat().st_size for p in model.paths),
        "architecture": model.arch_name,
        "name": model.kv_value("general.name"),
        "file_type": _file_type_name(model.kv_value("general.file_type")),
        "tensor_count": len(model.tensors),
        "weights": n_weights,
        "tensor_bytes": n_bytes,
        "bits_per_weight": 8 * n_bytes / n_weights if n_weights else 0.0,
        "types": dict(sorted(hist.items())),
    }
    for h in hist.values():
        h["bits_per_weight"] = 8 * h["bytes"] / h["weights"] if h["weights"] else 0.0
    if with_metadata:
        out["metadata"] = {kv.key: _jsonable(kv.value, full) for kv in model.kv}
        out["metadata_types"] = {kv.key: _kv_type(kv) for kv in model.kv}
    if with_tensors:
        out["tensors"] = tensors
    return out


def _file_type_name(v) -> str | None:
    if v is None:
        return None
    try:
        return gguf.LlamaFileType(int(v)).name
    except ValueError:
        return str(v)


def _kv_type(kv) -> str:
    t = gguf.GGUFValueType(kv.type).name
    if kv.sub_type is not None and t == "ARRAY":
        return f"ARRAY[{gguf.GGUFValueType(kv.sub_type).name}]"
    return t


def _jsonable(v, full: bool = False):
    if isinstance(v, list) and len(v) > 16 and not full:
        return f"[{len(v)} items: {', '.join(map(repr, v[:3]))}, ...]"
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def check_complete(path: Path) -> None:
    """Raise InputError unless the file (and its splits) read back completely."""
    model = GGUFModel(Path(path))
    try:
        check_model_complete(model, path)
    finally:
        model.close()


def check_model_complete(model: GGUFModel, path: Path) -> None:
    for t in model.tensors.values():
        if np.asarray(t.rt.data).nbytes != t.rt.n_bytes:
            raise InputError(f"{path}: tensor {t.name} is truncated")


# -- the `quant inspect` tables ------------------------------------------------------------

def _short(v, width: int = 100) -> str:
    text = v if isinstance(v, str) else repr(v)
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 3] + "..."


def _mb(n: int) -> str:
    return f"{n / 1e6:,.2f} MB"


def render(summary: dict, console, value_width: int = 100) -> None:
    """Print a `summarize` result: overview, metadata, type histogram and tensor table."""
    from rich.table import Table

    s = summary
    files = s["files"]
    console.print(f"[bold]{s['file']}[/]" + (f"  ({len(files)} split files)" if len(files) > 1 else ""), highlight=False)
    over = Table.grid(padding=(0, 2))
    over.add_column(style="dim")
    over.add_column()
    over.add_row("architecture", str(s["architecture"]))
    over.add_row("name", str(s["name"]))
    over.add_row("file type", str(s["file_type"]))
    over.add_row("file size", f"{s['file_bytes']:,} bytes ({_mb(s['file_bytes'])})")
    over.add_row("tensors", f"{s['tensor_count']:,} ({s['tensor_bytes']:,} bytes of tensor data)")
    over.add_row("weights", f"{s['weights']:,}")
    over.add_row("bits per weight", f"{s['bits_per_weight']:.4f}")
    console.print(over)
    if "metadata" in s:
        table = Table(title=f"metadata ({len(s['metadata'])} keys)", title_justify="left")
        table.add_column("key", no_wrap=True)
        table.add_column("type", style="dim", no_wrap=True)
        table.add_column("value", overflow="fold")
        types = s.get("metadata_types", {})
        for k, v in s["metadata"].items():
            if types.get(k) == "FLOAT32" and isinstance(v, float):
                v = str(np.float32(v))  # the shortest text that reads back as the stored float32
            table.add_row(k, types.get(k, ""), _short(v, value_width))
        console.print(table)
    table = Table(title="types", title_justify="left")
    for col in ("type", "tensors", "weights", "bytes", "share of bytes", "bits/weight"):
        table.add_column(col, justify="left" if col == "type" else "right")
    total = s["tensor_bytes"] or 1
    for name, h in s["types"].items():
        table.add_row(name, f"{h['tensors']:,}", f"{h['weights']:,}", f"{h['bytes']:,}",
                      f"{100 * h['bytes'] / total:.1f}%", f"{h['bits_per_weight']:.4g}")
    console.print(table)
    if "tensors" in s:
        table = Table(title=f"tensors ({s['tensor_count']})", title_justify="left")
        for col in ("#", "name", "shape", "type", "bytes", "bits/weight"):
            table.add_column(col, justify="right" if col in ("#", "bytes", "bits/weight") else "left",
                             no_wrap=col == "name")
        for i, t in enumerate(s["tensors"]):
            n = int(np.prod(t["shape"], dtype=np.int64)) or 1
            table.add_row(str(i), t["name"], " x ".join(map(str, t["shape"])), t["type"], f"{t['bytes']:,}",
                          f"{8 * t['bytes'] / n:.4g}")
        console.print(table)
