"""Importance matrices ("imatrix"): load them exactly as llama-quantize does, and write them
exactly as llama-imatrix does.

Reference: llama.cpp commit 0c1e57098: ``common/imatrix-loader.cpp`` (``common_imatrix_load``:
GGUF, else the legacy ``.dat`` format), ``tools/quantize/quantize.cpp`` (``load_imatrix``:
normalisation; ``prepare_imatrix``: --include-weights / --exclude-weights; the
``quantize.imatrix.*`` KV overrides) and ``tools/imatrix/imatrix.cpp`` (``save_imatrix``,
``save_imatrix_legacy``).  ``tests/test_imatrix.py`` checks all of it against that C++ code,
compiled from the vendored sources.

File formats
------------
GGUF (llama-imatrix's default): KV ``general.type = "imatrix"``, ``imatrix.datasets``
(array of strings), ``imatrix.chunk_count`` (u32), ``imatrix.chunk_size`` (u32); per
weight ``<name>.in_sum2`` (F32, ne = [ne0, n_mat]; 1-D when n_mat == 1) holding raw sums
of squared activations, and ``<name>.counts`` (F32, ne = [1, n_mat]) holding how many rows
were summed per matrix (n_mat = number of experts of a 3-D tensor, else 1).

Legacy ``.dat``: int32 n_entries; per entry int32 name length, name bytes, int32 ncall,
int32 nval, float32[nval] (already divided by the counts and multiplied by ncall);
optionally int32 last_chunk, int32 dataset length, dataset bytes.

Normalisation (what llama-quantize hands to the quantizer)
---------------------------------------------------------
GGUF: per matrix j, ``e = in_sum2 / float(lround(count_j))`` in float32, or all 1.0 when
that count is <= 0 (experts the calibration never routed to).  Legacy: ``e = value /
float(ncall)`` when ncall > 0, else the stored values.

Public API
----------
``load_imatrix(path, include=(), exclude=()) -> ImatrixData``     (load_imatrix + prepare_imatrix)
``read_imatrix_file(path) -> ImatrixFile``                         (common_imatrix_load, raw)
``ImatrixData.entries``      name -> float32 vector (length ne0 * n_mat)
``ImatrixData.for_tensor(name, shape)``   the per-expert vectors for a tensor, with
                              llama.cpp's length check
``ImatrixData.as_params()``  what goes into `quantcli.recipe.Options.imatrix`
``ImatrixData.kv_overrides()``  the quantize.imatrix.* keys, for `quantcli.recipe.quantized_kv`
``write_imatrix_gguf(...)``, ``write_imatrix_dat(...)``  llama-imatrix's writers
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "ImatrixError",
    "ImatrixFile",
    "RawEntry",
    "ImatrixData",
    "read_imatrix_file",
    "normalise",
    "load_imatrix",
    "write_imatrix_gguf",
    "write_imatrix_dat",
    "KV_IMATRIX_FILE",
    "KV_IMATRIX_DATASET",
    "KV_IMATRIX_N_ENTRIES",
    "KV_IMATRIX_N_CHUNKS",
]

# tools/quantize/quantize.cpp
KV_IMATRIX_FILE = "quantize.imatrix.file"
KV_IMATRIX_DATASET = "quantize.imatrix.dataset"
KV_IMATRIX_N_ENTRIES = "quantize.imatrix.entries_count"
KV_IMATRIX_N_CHUNKS = "quantize.imatrix.chunks_count"

# common/imatrix-loader.h
_KV_DATASETS = "imatrix.datasets"
_KV_CHUNK_COUNT = "imatrix.chunk_count"
_KV_CHUNK_SIZE = "imatrix.chunk_size"


class ImatrixError(ValueError):
    """An imatrix file that cannot be used (unreadable, malformed, wrong length, NaN/Inf)."""


@dataclass
class RawEntry:
    """``common_imatrix_entry``: sums as stored (float32) and counts (int64; GGUF: one per
    matrix, ``lround`` of the stored float; legacy: ``[ncall]``)."""

    sums: np.ndarray
    counts: np.ndarray


@dataclass
class ImatrixFile:
    """``common_imatrix``: a file as read, before normalisation."""

    entries: dict[str, RawEntry]  # sorted by name (std::map)
    datasets: list[str]
    chunk_count: int = 0
    chunk_size: int = 0
    is_legacy: bool = False
    has_metadata: bool = False


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


def _lround(x: np.ndarray) -> np.ndarray:
    """C ``lround``: half away from zero (exact: float32 + 0.5 is exact in float64)."""
    x64 = x.astype(np.float64)
    return (np.sign(x64) * np.floor(np.abs(x64) + 0.5)).astype(np.int64)


def _read_legacy(path: Path) -> ImatrixFile:
    """``common_imatrix_load_legacy``"""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImatrixError(f"failed to open {path}: {e.strerror or e}") from None
    pos = 0

    def take(n: int, what: str) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise ImatrixError(f"{path}: truncated legacy imatrix file while reading {what}")
        out = data[pos : pos + n]
        pos += n
        return out

    if len(data) < 4 or (n_entries := struct.unpack_from("<i", data, 0)[0]) < 1:
        raise ImatrixError(f"no data in file {path} (not a GGUF imatrix, and no legacy entries)")
    pos = 4
    entries: dict[str, RawEntry] = {}
    for i in range(n_entries):
        (length,) = struct.unpack("<i", take(4, f"name length of entry {i + 1}"))
        if length < 0:
            raise ImatrixError(f"{path}: negative name length for entry {i + 1}")
        raw_name = take(length, f"name of entry {i + 1}")
        name = raw_name.split(b"\0", 1)[0].decode("utf-8", errors="surrogateescape")
        ncall, nval = struct.unpack("<ii", take(8, f"number of values of entry {i + 1}"))
        if nval < 1:
            raise ImatrixError(f"{path}: failed reading number of values for entry {i + 1}")
        sums = np.frombuffer(take(4 * nval, f"data of entry {i + 1}"), dtype="<f4").astype(np.float32)
        entries[name] = RawEntry(sums=sums, counts=np.array([ncall], dtype=np.int64))
    out = ImatrixFile(entries=dict(sorted(entries.items(), key=lambda kv: kv[0].encode("utf-8", "surrogateescape"))),
                      datasets=[], is_legacy=True)  # fmt: skip
    # the trailer (chunk count + dataset name) is optional
    if pos < len(data):
        if pos + 4 <= len(data):
            out.chunk_count = struct.unpack_from("<i", data, pos)[0]
            pos += 4
            if pos + 4 <= len(data):
                (length,) = struct.unpack_from("<i", data, pos)
                pos += 4
                if length > 0 and pos + length <= len(data):
                    ds = data[pos : pos + length].split(b"\0", 1)[0]
                    out.datasets.append(ds.decode("utf-8", errors="surrogateescape"))
    return out


def _read_gguf(path: Path) -> ImatrixFile:
    """``common_imatrix_load`` for a GGUF file."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - gguf raises a variety of errors on bad files
        raise ImatrixError(f"{path}: not a readable GGUF file: {e}") from None
    if len(reader.tensors) < 1:
        raise ImatrixError(f"no data in file {path}")

    fields = reader.fields
    out = ImatrixFile(entries={}, datasets=[])
    ds = fields.get(_KV_DATASETS)
    if ds is not None and ds.types[:1] == [gguf.GGUFValueType.ARRAY] and ds.types[1:2] == [gguf.GGUFValueType.STRING]:
        out.datasets = [str(s) for s in ds.contents()]

    def u32(key: str) -> int:
        f = fields.get(key)
        if f is None:
            return 0
        if f.types != [gguf.GGUFValueType.UINT32]:
            raise ImatrixError(f"{path}: {key} must be a UINT32, got {[t.name for t in f.types]}")
        return int(f.contents())

    out.has_metadata = ds is not None and _KV_CHUNK_COUNT in fields and _KV_CHUNK_SIZE in fields
    out.chunk_count = u32(_KV_CHUNK_COUNT)
    out.chunk_size = u32(_KV_CHUNK_SIZE)

    pairs: dict[str, list] = {}
    for t in reader.tensors:
        name = t.name
        if not name:
            continue
        if name.endswith(".in_sum2"):
            pairs.setdefault(name[: -len(".in_sum2")], [None, None])[0] = t
        elif name.endswith(".counts"):
            pairs.setdefault(name[: -len(".counts")], [None, None])[1] = t
    for name in sorted(pairs, key=lambda n: n.encode("utf-8", "surrogateescape")):
        sums_t, counts_t = pairs[name]
        if sums_t is None or counts_t is None:
            raise ImatrixError(f"{path}: mismatched sums and counts for {name}")
        if sums_t.tensor_type != gguf.GGMLQuantizationType.F32 or counts_t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise ImatrixError(f"{path}: sums and counts for {name} must be F32")
        sums = np.asarray(sums_t.data, dtype=np.float32).reshape(-1).copy()
        raw_counts = np.asarray(counts_t.data, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(raw_counts)):
            raise ImatrixError(f"{path}: non-finite count for {name}")
        out.entries[name] = RawEntry(sums=sums, counts=_lround(raw_counts))
    return out


def read_imatrix_file(path: str | os.PathLike[str]) -> ImatrixFile:
    """``common_imatrix_load``: a GGUF imatrix, or else a legacy ``.dat`` one, raw."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ImatrixError(f"failed to open imatrix file {p}: {e.strerror or e}") from None
    if magic == b"GGUF":
        return _read_gguf(p)
    return _read_legacy(p)


def normalise(imatrix: ImatrixFile) -> dict[str, np.ndarray]:
    """``load_imatrix``: the values llama-quantize passes to the quantizers."""
    out: dict[str, np.ndarray] = {}
    for name, entry in imatrix.entries.items():
        sums = np.asarray(entry.sums, dtype=np.float32)
        if not imatrix.is_legacy:
            ncounts = len(entry.counts)
            if ncounts == 0:
                raise ImatrixError(f"imatrix entry {name} has no counts")
            if sums.size % ncounts != 0:
                # llama.cpp would leave the trailing values at 0
                raise ImatrixError(
                    f"imatrix entry {name}: {sums.size} sums do not split into {ncounts} matrices"
                )
            ne0 = sums.size // ncounts
            e = np.empty(sums.size, dtype=np.float32)
            for j, c in enumerate(entry.counts):
                count = np.float32(c)  # (float) int64
                if count > 0:
                    e[j * ne0 : (j + 1) * ne0] = sums[j * ne0 : (j + 1) * ne0] / count
                else:
                    e[j * ne0 : (j + 1) * ne0] = 1.0
        else:
            ncall = int(entry.counts[0]) if len(entry.counts) else 0
            e = (sums / np.float32(ncall)).astype(np.float32) if ncall > 0 else sums.copy()
        out[name] = e
    return out


# ---------------------------------------------------------------------------------------
# Loading for quantization
# ---------------------------------------------------------------------------------------


@dataclass
class ImatrixData:
    """An importance matrix ready for quantization (``prepare_imatrix``'s result).

    path:        the --imatrix argument as given (written to ``quantize.imatrix.file``)
    entries:     name -> normalised float32 vector, after --include/--exclude-weights
    datasets:    dataset names from the file
    chunk_count: chunks it was computed on (``m_last_call``)
    """

    path: str
    entries: dict[str, np.ndarray]
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0
    chunk_size: int = 0
    is_legacy: bool = False

    def as_params(self) -> dict[str, np.ndarray] | None:
        """``llama_model_quantize_params.imatrix`` as llama-quantize sets it: None when no
        entry is left (then the quantization runs as if there were no imatrix at all)."""
        return dict(self.entries) if self.entries else None

    def kv_overrides(self, file_arg: str | None = None) -> list[tuple[str, str | int]]:
        """The ``quantize.imatrix.*`` KV overrides llama-quantize adds (after the user's
        --override-kv ones), in order; empty when no entry is left.  Strings are given in
        full: `quantcli.recipe.quantized_kv` cuts them to 127 bytes as llama.cpp does."""
        if not self.entries:
            return []
        out: list[tuple[str, str | int]] = [(KV_IMATRIX_FILE, self.path if file_arg is None else file_arg)]
        if self.datasets:
            out.append((KV_IMATRIX_DATASET, self.datasets[0]))  # only the first one
        out.append((KV_IMATRIX_N_ENTRIES, len(self.entries)))
        if self.chunk_count > 0:
            out.append((KV_IMATRIX_N_CHUNKS, self.chunk_count))
        return out

    def for_tensor(self, name: str, shape: Sequence[int]) -> np.ndarray | None:
        """The importance vectors for a tensor, one row per matrix: shape (ne2, ne0).

        Rows ``e*ne1 .. (e+1)*ne1 - 1`` of a 3-D expert tensor use row ``e``.  None when
        the imatrix has no entry for the tensor (llama.cpp then quantizes without one), or
        when a token-embedding entry has the wrong length (ignored, like llama.cpp); any
        other length mismatch raises `ImatrixError`, as in ``llama_model_quantize_impl``.
        """
        vec = self.entries.get(name)
        if vec is None:
            return None
        ne0 = int(shape[0])
        ne2 = int(shape[2]) if len(shape) > 2 else 1
        if vec.size != ne0 * ne2:
            if name in ("token_embd.weight", "per_layer_token_embd.weight"):
                return None
            raise ImatrixError(f"imatrix size {vec.size} is different from tensor size {ne0 * ne2} for {name}")
        return vec.reshape(ne2, ne0)


def load_imatrix(
    path: str | os.PathLike[str],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> ImatrixData:
    """Read, normalise and filter an imatrix file as llama-quantize does.

    ``include`` / ``exclude``: --include-weights / --exclude-weights; an entry is dropped
    when its name contains any exclude string, or kept only if it contains an include
    string (plain substrings; llama-quantize refuses both at once, and so does this).
    Raises `ImatrixError` for unreadable or malformed files, for a GGUF file without the
    imatrix metadata keys, and for NaN/Inf in the entries that remain (llama.cpp's
    "imatrix contains non-finite value").
    """
    if include and exclude:
        raise ImatrixError("--include-weights and --exclude-weights cannot be used together")
    raw = read_imatrix_file(path)
    if not raw.is_legacy and not raw.has_metadata:
        raise ImatrixError(f"missing imatrix metadata in file {path}")
    entries = normalise(raw)
    if exclude:
        entries = {k: v for k, v in entries.items() if not any(s in k for s in exclude)}
    if include:
        entries = {k: v for k, v in entries.items() if any(s in k for s in include)}
    for name, vec in entries.items():
        bad = ~np.isfinite(vec)
        if bad.any():
            raise ImatrixError(
                f"imatrix contains non-finite value {float(vec[bad][0])} (entry {name}, index {int(np.argmax(bad))})"
            )
    return ImatrixData(
        path=os.fspath(path),
        entries=entries,
        datasets=list(raw.datasets),
        chunk_count=raw.chunk_count,
        chunk_size=raw.chunk_size,
        is_legacy=raw.is_legacy,
    )


# ---------------------------------------------------------------------------------------
# Writing (what llama-imatrix writes)
# ---------------------------------------------------------------------------------------


def write_imatrix_gguf(
    path: str | os.PathLike[str],
    sums: Mapping[str, np.ndarray],
    counts: Mapping[str, Sequence[float] | np.ndarray],
    *,
    datasets: Sequence[str] = (),
    chunk_count: int = 0,
    chunk_size: int = 512,
) -> None:
    """``IMatrixCollector::save_imatrix``: raw statistics to a GGUF imatrix.

    ``sums[name]``: sum of squared activations, shape (n_mat, ne0) or (ne0,) (float32);
    ``counts[name]``: rows summed per matrix (n_mat values).  Tensors are written in name
    order, ``<name>.in_sum2`` then ``<name>.counts``; entries with no values are skipped.
    """
    import gguf

    class _Writer(gguf.GGUFWriter):
        # gguf-py refuses empty arrays; llama-imatrix writes an empty dataset list when it
        # was given no prompt file
        def _pack_val(self, val, vtype, add_vtype, sub_type=None):  # type: ignore[override]
            if vtype == gguf.GGUFValueType.ARRAY and len(val) == 0:
                out = self._pack("I", vtype) if add_vtype else b""
                return out + self._pack("I", sub_type or gguf.GGUFValueType.STRING) + self._pack("Q", 0)
            return super()._pack_val(val, vtype, add_vtype, sub_type)

    w = _Writer(os.fspath(path), arch="")
    w.kv_data[0].pop("general.architecture", None)  # llama-imatrix writes none
    w.add_string("general.type", "imatrix")
    w.add_key_value(_KV_DATASETS, list(datasets), gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.STRING)
    w.add_uint32(_KV_CHUNK_COUNT, chunk_count)
    w.add_uint32(_KV_CHUNK_SIZE, chunk_size)
    for name in sorted(sums, key=lambda n: n.encode("utf-8")):
        c = np.asarray(counts[name], dtype=np.float32).reshape(-1)
        s = np.asarray(sums[name], dtype=np.float32).reshape(-1)
        nmat, nval = c.size, s.size
        if nval == 0 or nmat == 0:
            continue
        if nval % nmat:
            raise ValueError(f"{name}: {nval} sums do not split into {nmat} matrices")
        # ggml_new_tensor_2d(F32, nval/nmat, nmat) and (1, nmat); gguf drops trailing 1s
        w.add_tensor(f"{name}.in_sum2", s.reshape(nmat, nval // nmat) if nmat > 1 else s)
        w.add_tensor(f"{name}.counts", c.reshape(nmat, 1) if nmat > 1 else c)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_imatrix_dat(
    path: str | os.PathLike[str],
    sums: Mapping[str, np.ndarray],
    counts: Mapping[str, Sequence[int] | np.ndarray],
    *,
    chunk_size: int = 512,
    last_chunk: int = 0,
    dataset: str = "",
) -> None:
    """``IMatrixCollector::save_imatrix_legacy``: raw statistics to a legacy ``.dat`` file.

    Per entry ``ncall = ceil(max(counts) / chunk_size)`` and each value is stored as
    ``(sum / count) * ncall`` in float32 (1.0 for a matrix with count 0); entries whose
    counts are all 0 are skipped.  The trailer holds ``last_chunk`` and ``dataset``.
    """
    stored = []
    for name in sorted(sums, key=lambda n: n.encode("utf-8")):
        c = np.asarray(counts[name], dtype=np.int64).reshape(-1)
        s = np.asarray(sums[name], dtype=np.float32).reshape(-1)
        if c.size == 0 or np.all(c == 0):
            continue
        stored.append((name, s, c))
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(stored)))
        for name, s, c in stored:
            b = name.encode("utf-8")
            f.write(struct.pack("<i", len(b)))
            f.write(b)
            ncall = int((int(c.max()) + (chunk_size - 1)) // chunk_size)
            nval, nmat = s.size, c.size
            f.write(struct.pack("<ii", ncall, nval))
            if nval > 0 and nmat > 0:
                per = nval // nmat
                count = c[np.arange(nval) // per].astype(np.float32)
                value = s.copy()
                zero = count == 0
                value[zero] = 1.0
                count[zero] = 1.0
                f.write(((value / count) * np.float32(ncall)).astype("<f4").tobytes())
        f.write(struct.pack("<i", last_chunk))
        b = dataset.encode("utf-8")
        f.write(struct.pack("<i", len(b)))
        f.write(b)
