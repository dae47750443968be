"""What a GGUF file holds: metadata, tensors, a type histogram, size and bits per weight."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from .errors import InputError
from .gguf_source import GGUFModel


def summarize(path: Path, with_metadata: bool = True, with_tensors: bool = True) -> dict:
    """A JSON-ready description of a GGUF model (split files read as one)."""
    model = GGUFModel(Path(path))
    try:
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
        if with_metadata:
            out["metadata"] = {kv.key: _jsonable(kv.value) for kv in model.kv}
        if with_tensors:
            out["tensors"] = tensors
        return out
    finally:
        model.close()


def _file_type_name(v) -> str | None:
    if v is None:
        return None
    try:
        return gguf.LlamaFileType(int(v)).name
    except ValueError:
        return str(v)


def _jsonable(v):
    if isinstance(v, list) and len(v) > 16:
        return f"[{len(v)} items: {', '.join(map(repr, v[:3]))}, ...]"
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def check_complete(path: Path) -> None:
    """Raise InputError unless the file (and its splits) read back completely."""
    model = GGUFModel(Path(path))
    try:
        for t in model.tensors.values():
            if np.asarray(t.rt.data).nbytes != t.rt.n_bytes:
                raise InputError(f"{path}: tensor {t.name} is truncated")
    finally:
        model.close()
