"""The GGUF tensor list of a checkpoint, and reading it back one row range at a time.

``plan_tensors`` walks the checkpoint exactly as llama.cpp's converter does (generated
tensors first, then sorted files and names, MoE experts stacked when a layer's last expert
arrives) and returns what each GGUF tensor is made of, without reading any weights.
``row_chunks`` then yields each tensor's rows as float32, a bounded slice at a time.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .archs.base import Adapter, OutTensor, Piece, chain
from .checkpoint import Checkpoint, to_float32
from .errors import InputError

SKIPPED_SUFFIXES = (".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq")
CHUNK_BYTES = 64 * 1024 * 1024  # float32 bytes processed at a time


def _bid(name: str) -> int | None:
    return next((int(p) for p in name.split(".") if p.isdecimal()), None)


def plan_tensors(adapter: Adapter, ckpt: Checkpoint) -> list[OutTensor]:
    out: list[OutTensor] = []
    for name, data in adapter.extra_tensors():
        data = np.asarray(data, dtype=np.float32)
        out.append(OutTensor(name, data.shape, data=data))

    index: dict[str, object] = {}
    for ref in ckpt:
        new = adapter.rename(ref.name)
        if new is not None:
            index[new] = ref

    exp = adapter.experts
    pending: dict[int, dict[str, tuple]] = {}
    for name, ref in index.items():
        if name.endswith(SKIPPED_SUFFIXES):
            continue
        split = adapter.split(name, ref.shape)
        if split is not None:
            for pname, pshape, ptrans in split:
                trans = chain(([ptrans] if ptrans else []) + adapter.transforms(pname))
                out.append(_single(adapter, pname, ref, trans))
            continue
        trans = chain(adapter.transforms(name))
        if exp is not None and exp.marker in name:
            n_experts = adapter.find(list(exp.count_keys))
            bid = _bid(name)
            layer = pending.setdefault(bid, {})
            layer[name] = (ref, trans)
            if len(layer) >= n_experts * len(exp.projs):
                for proj in exp.projs:
                    pieces = []
                    shape = None
                    for xid in range(n_experts):
                        ename = exp.expert_name.format(bid=bid, xid=xid, proj=proj)
                        if ename not in layer:
                            raise InputError(f"expert tensor {ename!r} is missing from the checkpoint")
                        eref, etrans = layer.pop(ename)
                        eshape = etrans.shape(eref.shape) if etrans else eref.shape
                        if shape is not None and eshape != shape:
                            raise InputError(f"expert tensor {ename!r} has shape {eshape}, expected {shape}")
                        shape = eshape
                        pieces.append(Piece(eref.name, etrans))
                    merged = adapter.map_name(exp.merged.format(bid=bid, proj=proj))
                    out.append(OutTensor(merged, (n_experts, *shape), tuple(pieces), source_dtype=eref.dtype))
            continue
        out.append(_single(adapter, name, ref, trans))
    leftover = [n for layer in pending.values() for n in layer]
    if leftover:
        raise InputError(f"incomplete experts in the checkpoint (e.g. {leftover[0]!r})")
    return out


def _single(adapter: Adapter, name: str, ref, trans) -> OutTensor:
    shape = trans.shape(ref.shape) if trans else ref.shape
    return OutTensor(adapter.map_name(name), tuple(shape), (Piece(ref.name, trans),), source_dtype=ref.dtype)


def _processed(ckpt: Checkpoint, piece: Piece) -> np.ndarray:
    """The whole source tensor after its transform, as float32.

    As in the converter, float16 data is transformed in float16 (Gemma's +1) and any other
    dtype is first widened to float32."""
    ref = ckpt.tensors[piece.source]
    raw = ckpt.read_raw(piece.source)
    if ref.dtype not in ("F16", "F32"):
        raw = _widen(raw, ref.dtype)
    a = piece.transform(raw)
    return np.ascontiguousarray(a, dtype=np.float32)


def _widen(raw: np.ndarray, dtype: str) -> np.ndarray:
    try:
        return to_float32(raw, dtype)
    except InputError:
        return raw.astype(np.float32)


def row_chunks(
    ckpt: Checkpoint, t: OutTensor, max_bytes: int = CHUNK_BYTES
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float32 rows) of tensor t, rows flattened over all leading dimensions.

    A chunk never spans two matrices of a 3-D tensor (two experts), so one per-expert
    importance vector applies to a whole chunk."""
    ne0 = t.n_per_row
    per_matrix = t.shape[-2] if len(t.shape) == 3 else t.rows
    max_rows = max(1, max_bytes // (4 * ne0))

    def spans(first: int, count: int) -> Iterator[tuple[int, int]]:
        """[start, stop) row ranges of at most max_rows, cut at matrix boundaries."""
        s = first
        end = first + count
        while s < end:
            stop = min(end, s + max_rows, (s // per_matrix + 1) * per_matrix)
            yield s, stop
            s = stop

    if t.data is not None:
        flat = t.data.reshape(-1, ne0)
        for a, b in spans(0, flat.shape[0]):
            yield a, flat[a:b]
        return
    row0 = 0
    for piece in t.pieces:
        ref = ckpt.tensors[piece.source]
        if piece.transform is not None:
            whole = _processed(ckpt, piece).reshape(-1, ne0)
            for a, b in spans(row0, whole.shape[0]):
                yield a, whole[a - row0 : b - row0]
            row0 += whole.shape[0]
            continue
        for a, b in spans(row0, ref.rows):
            raw = ckpt.read_raw(piece.source, a - row0, b - row0)
            x = _widen(raw, ref.dtype).reshape(-1, ne0)
            yield a, np.ascontiguousarray(x, dtype=np.float32)
        row0 += ref.rows
