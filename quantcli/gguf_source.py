"""A GGUF file (single or split) as a conversion source: requantizing.

Its key/value pairs and tensors are the input of the recipe rules, exactly as
llama-quantize sees its input file.  Tensor rows are read back as float32 (dequantized by
the engine, or by ``gguf.quants`` for types the engine does not write); a tensor whose
type does not change is copied byte for byte, as llama-quantize does.
"""

from __future__ import annotations

import re
from pathlib import Path

import gguf
import numpy as np

import formats

from .archs.base import OutTensor, Piece
from .errors import InputError
from .recipe import KV

_SPLIT = re.compile(r"^(?P<stem>.*)-(?P<i>\d{5})-of-(?P<n>\d{5})\.gguf$")


def split_paths(path: Path) -> list[Path]:
    m = _SPLIT.match(path.name)
    if not m:
        return [path]
    n = int(m.group("n"))
    paths = [path.with_name(f"{m.group('stem')}-{i:05d}-of-{n:05d}.gguf") for i in range(1, n + 1)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"{path}: split part(s) {', '.join(missing)} are missing")
    return paths


class GGUFTensor:
    def __init__(self, rt: gguf.ReaderTensor):
        self.rt = rt
        self.name = rt.name
        self.qtype = gguf.GGMLQuantizationType(rt.tensor_type)
        self.ggml_shape = tuple(int(d) for d in rt.shape)  # ne0 first
        self.shape = tuple(reversed(self.ggml_shape))  # numpy order
        self.dtype = "F32"  # what read_raw hands back (dequantized)
        self.row_elems = self.ggml_shape[0]
        self.rows = int(np.prod(self.ggml_shape[1:], dtype=np.int64)) if len(self.ggml_shape) > 1 else 1
        self.row_bytes = self.row_elems // gguf.GGML_QUANT_SIZES[self.qtype][0] * gguf.GGML_QUANT_SIZES[self.qtype][1]

    def raw_bytes(self, start: int, stop: int) -> np.ndarray:
        flat = np.asarray(self.rt.data).view(np.uint8).reshape(-1)
        return flat[start * self.row_bytes : stop * self.row_bytes]


class GGUFModel:
    """Reader for a GGUF model with the interface `tensors.row_chunks` reads through."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.paths = split_paths(self.path)
        try:
            self.readers = [gguf.GGUFReader(p) for p in self.paths]
        except (ValueError, OSError) as e:
            raise InputError(f"{self.path}: not a readable GGUF file ({e})") from None
        self.kv: list[KV] = []
        for field in self.readers[0].fields.values():
            if field.name.startswith("GGUF."):
                continue
            self.kv.append(_kv(field))
        self.tensors: dict[str, GGUFTensor] = {}
        for r in self.readers:
            for rt in r.tensors:
                self.tensors[rt.name] = GGUFTensor(rt)
        if self.kv_value("general.type", "model") != "model":
            raise InputError(f"{self.path}: a GGUF of type {self.kv_value('general.type')!r}, not a model")
        if self.kv_value("general.architecture") is None:
            raise InputError(f"{self.path}: no general.architecture key; not a llama.cpp model file")

    def kv_value(self, key: str, default=None):
        for kv in self.kv:
            if kv.key == key:
                return kv.value
        return default

    @property
    def arch_name(self) -> str:
        return self.kv_value("general.architecture")

    def out_tensors(self) -> list[OutTensor]:
        return [OutTensor(t.name, t.shape, (Piece(t.name),), source_dtype=t.qtype.name) for t in self.tensors.values()]

    def read_raw(self, name: str, row_start: int = 0, row_stop: int | None = None) -> np.ndarray:
        """Rows of a tensor as float32 (dequantized)."""
        t = self.tensors[name]
        row_stop = t.rows if row_stop is None else min(row_stop, t.rows)
        raw = t.raw_bytes(row_start, row_stop)
        if t.qtype == gguf.GGMLQuantizationType.F32:
            return raw.view(np.float32).reshape(-1, t.row_elems)
        if formats.supports(t.qtype):
            return formats.dequantize(raw, t.qtype, t.row_elems)
        return gguf.quants.dequantize(raw.reshape(row_stop - row_start, -1), t.qtype).astype(np.float32)

    def close(self) -> None:
        self.readers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _kv(field: gguf.ReaderField) -> KV:
    types = [gguf.GGUFValueType(t) for t in field.types]
    main = types[0]
    if main == gguf.GGUFValueType.ARRAY:
        sub = types[-1]
        if sub == gguf.GGUFValueType.STRING:
            value = [bytes(field.parts[i]).decode("utf-8", "surrogateescape") for i in field.data]
        else:
            value = [field.parts[i].tolist()[0] for i in field.data]
        return KV(field.name, main, value, sub)
    if main == gguf.GGUFValueType.STRING:
        return KV(field.name, main, bytes(field.parts[field.data[0]]).decode("utf-8", "surrogateescape"))
    return KV(field.name, main, field.parts[field.data[0]].tolist()[0])
