"""Checkpoint reader: safetensors headers parsed and checked, tensors read one at a time.

Nothing is read until asked for; a tensor (or a range of its rows) is read with ``pread``
into a fresh buffer, so memory stays bounded by what is being worked on and the page cache
never shows up as our resident memory.  PyTorch pickles are refused, never unpickled.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

# safetensors dtype name -> (numpy dtype used to hold the raw bytes, itemsize)
DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits; widened exactly by to_float32
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
FLOAT_DTYPES = ("F32", "F16", "BF16")
MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor's bytes are: file, absolute byte offset, dtype and shape."""

    name: str
    path: Path
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int

    @property
    def row_elems(self) -> int:
        """Values per row: the last dimension (GGML's ne0)."""
        return self.shape[-1] if self.shape else 1

    @property
    def rows(self) -> int:
        """Rows when every dimension but the last is flattened."""
        n = 1
        for d in self.shape[:-1]:
            n *= d
        return n


def to_float32(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Exact widening of F32/F16/BF16 raw data to float32."""
    if dtype == "F32":
        return raw.astype(np.float32, copy=False)
    if dtype == "F16":
        return raw.astype(np.float32)
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if dtype == "F64":
        return raw.astype(np.float32)
    raise InputError(f"tensor of dtype {dtype} cannot be used as weights")


def parse_header(path: Path) -> tuple[dict[str, TensorRef], dict[str, str]]:
    """Read and validate one .safetensors header. Returns (tensors, __metadata__)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise InputError(
                    f"{path}: truncated safetensors file ({size} bytes, no header); "
                    "re-download it"
                )
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                raise InputError(
                    f"{path}: safetensors header claims {n} bytes but the file has {size}; "
                    "the file is truncated or not a safetensors file: re-download it"
                )
            raw = f.read(n)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from e
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: safetensors header is not valid JSON ({e}); re-download it") from e
    meta = header.pop("__metadata__", None) or {}
    data_start = 8 + n
    data_size = size - data_start
    tensors: dict[str, TensorRef] = {}
    spans = []
    for name, info in header.items():
        try:
            dtype = info["dtype"]
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: malformed header entry for tensor {name!r}") from e
        if dtype not in DTYPES:
            raise InputError(f"{path}: tensor {name!r} has unsupported dtype {dtype}")
        if any(d < 0 for d in shape):
            raise InputError(f"{path}: tensor {name!r} has a negative dimension {shape}")
        expected = int(np.prod(shape, dtype=np.int64)) * DTYPES[dtype].itemsize
        if not (0 <= begin <= end):
            raise InputError(f"{path}: tensor {name!r} has data offsets [{begin}, {end})")
        if end > data_size:
            raise InputError(
                f"{path}: tensor {name!r} ends at byte {end} of the data section but the file "
                f"holds only {data_size}; the file is truncated: re-download it"
            )
        if end - begin != expected:
            raise InputError(
                f"{path}: tensor {name!r} ({dtype} {list(shape)}) needs {expected} bytes but "
                f"its offsets span {end - begin}; the header is corrupt"
            )
        spans.append((begin, end, name))
        tensors[name] = TensorRef(name, path, dtype, shape, data_start + begin, expected)
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise InputError(f"{path}: tensors {n0!r} and {n1!r} overlap; the header is corrupt")
    return tensors, {str(k): str(v) for k, v in meta.items()}


class Checkpoint:
    """All tensors of a Hugging Face model folder (single file or sharded), by HF name, in
    the order llama.cpp's converter visits them: part files sorted by name, tensors sorted
    by name within each file (convert_hf_to_gguf's index_tensors / SafetensorsLocal)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.files = self._find_files()
        self.tensors: dict[str, TensorRef] = {}
        self.metadata: dict[str, str] = {}
        for path in self.files:
            tensors, meta = parse_header(path)
            self.metadata.update(meta)
            for name, ref in sorted(tensors.items()):
                if name in self.tensors:
                    raise InputError(f"tensor {name!r} appears in both {self.tensors[name].path.name} and {path.name}")
                self.tensors[name] = ref
        index_names = getattr(self, "_index_names", None)
        if index_names is not None and index_names != set(self.tensors):
            extra = sorted(index_names ^ set(self.tensors))[:3]
            raise InputError(
                f"{self.folder}: model.safetensors.index.json does not match the shards' "
                f"contents (e.g. {extra}); re-download the checkpoint"
            )
        self._fds: dict[Path, int] = {}

    def _find_files(self) -> list[Path]:
        index = self.folder / "model.safetensors.index.json"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError) as e:
                raise InputError(f"{index}: not a valid safetensors index ({e})") from e
            names = sorted(set(weight_map.values()))
            missing = [n for n in names if not (self.folder / n).is_file()]
            if missing:
                raise InputError(
                    f"{self.folder}: shard(s) {', '.join(missing)} listed in "
                    f"model.safetensors.index.json are missing; download them too"
                )
            self._index_names = set(weight_map)
            return [self.folder / n for n in names]
        files = sorted(
            p for p in self.folder.iterdir() if p.name.startswith("model") and p.name.endswith(".safetensors")
        ) or sorted(self.folder.glob("*.safetensors"))
        if files:
            return files
        pickles = sorted(p.name for p in self.folder.glob("*.bin")) + sorted(
            p.name for p in self.folder.glob("*.pt*")
        )
        if pickles:
            raise InputError(
                f"{self.folder}: only PyTorch pickle weights ({', '.join(pickles[:3])}) found. "
                "quantcli never unpickles files (they can run arbitrary code); use the "
                "model's safetensors weights, or convert them once with transformers "
                "(model.save_pretrained(dir, safe_serialization=True))"
            )
        raise InputError(f"{self.folder}: no *.safetensors weights found")

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def __iter__(self):
        return iter(self.tensors.values())

    def _fd(self, path: Path) -> int:
        fd = self._fds.get(path)
        if fd is None:
            fd = os.open(path, os.O_RDONLY)
            self._fds[path] = fd
        return fd

    def read_raw(self, name: str, row_start: int = 0, row_stop: int | None = None) -> np.ndarray:
        """Rows [row_start, row_stop) of a tensor in its own dtype (BF16 as uint16 bits).

        Rows are counted with every dimension but the last flattened; reading all rows
        returns the tensor in its own shape."""
        ref = self.tensors[name]
        dt = DTYPES[ref.dtype]
        rows = ref.rows
        row_stop = rows if row_stop is None else min(row_stop, rows)
        row_bytes = ref.row_elems * dt.itemsize
        nbytes = (row_stop - row_start) * row_bytes
        buf = np.empty(nbytes, np.uint8)
        fd = self._fd(ref.path)
        got = 0
        mv = memoryview(buf)
        while got < nbytes:
            n = os.preadv(fd, [mv[got:]], ref.offset + row_start * row_bytes + got)
            if n <= 0:
                raise InputError(f"{ref.path}: unexpected end of file reading tensor {name!r}; re-download it")
            got += n
        if row_start == 0 and row_stop == rows:
            return buf.view(dt).reshape(ref.shape)
        return buf.view(dt).reshape(row_stop - row_start, ref.row_elems)

    def read(self, name: str, row_start: int = 0, row_stop: int | None = None) -> np.ndarray:
        """Rows of a float tensor, widened exactly to float32."""
        ref = self.tensors[name]
        return to_float32(self.read_raw(name, row_start, row_stop), ref.dtype)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
