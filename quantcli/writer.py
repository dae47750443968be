"""Streaming GGUF writer: header first, tensor data at known offsets, then an atomic rename.

`gguf.GGUFWriter` writes the header, key/value pairs and tensor infos (and decides the
shards for --split-max-size / --split-max-tensors exactly as llama.cpp's converter does).
Every tensor's offset follows from the sizes alone, so tensor data is written with
``pwrite`` in whatever order it is produced, a row range at a time: nothing is held in
memory, and several outputs can be filled from one read of the source.

Files are written under a temporary name next to the destination, fsynced, then renamed;
on any error, Ctrl-C or SIGTERM the temporary files are removed, so a file under the final
name is always complete.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import gguf
import numpy as np

from .errors import OutputError

DISK_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


@dataclass
class TensorSlot:
    name: str
    qtype: gguf.GGMLQuantizationType
    nbytes: int
    fd: int = -1
    offset: int = 0  # absolute offset of the tensor's data in its shard
    written: int = 0


class _Writer(gguf.GGUFWriter):
    """GGUFWriter that can also write an empty array of a known element type (llama.cpp
    files can hold them; gguf 0.19.0 refuses to pack one)."""

    def _pack_val(self, val, vtype, add_vtype, sub_type=None):
        if vtype == gguf.GGUFValueType.ARRAY and len(val) == 0 and sub_type is not None:
            out = self._pack("I", vtype) if add_vtype else b""
            return bytes(out + self._pack("I", sub_type) + self._pack("Q", 0))
        return super()._pack_val(val, vtype, add_vtype, sub_type)


def shard_paths(path: Path, n: int) -> list[Path]:
    if n == 1:
        return [path]
    return [
        path.with_name(gguf.gguf_writer.SHARD_NAME_FORMAT.format(path.stem, i + 1, n))
        for i in range(n)
    ]


class GGUFOutput:
    """One GGUF output (possibly split into shards), opened for positional tensor writes.

    ``kv`` is a GGUFWriter's ``kv_data[0]`` (key -> GGUFValue, in order); ``tensors`` are
    (name, numpy shape, type, nbytes) in file order."""

    def __init__(
        self,
        path: Path,
        arch: str,
        kv: dict,
        tensors: Sequence[tuple[str, tuple[int, ...], gguf.GGMLQuantizationType, int]],
        *,
        split_max_tensors: int = 0,
        split_max_size: int = 0,
        force: bool = False,
    ):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.stem}.quantcli-{os.getpid()}.gguf")
        w = _Writer(None, arch, split_max_tensors=split_max_tensors, split_max_size=split_max_size)
        w.kv_data[0] = dict(kv)
        for name, shape, qtype, nbytes in tensors:
            # raw_dtype + uint8 byte shape: GGUFWriter derives the element shape itself
            w.add_tensor_info(name, _byte_shape(shape, qtype), np.dtype(np.uint8), nbytes, raw_dtype=qtype)
        n_shards = len(w.tensors)
        self.final_paths = shard_paths(self.path, n_shards)
        self.tmp_paths = shard_paths(self.tmp, n_shards)
        if not force:
            existing = [p for p in self.final_paths if p.exists()]
            if existing:
                raise OutputError(f"{existing[0]} already exists; pass --force to overwrite it")
        self.slots: dict[str, TensorSlot] = {}
        self._fds: list[int] = []
        self._done = False
        shard_tensors = [list(t.items()) for t in w.tensors]
        try:
            w.write_header_to_file(self.tmp)
            w.write_kv_data_to_file()
            w.write_ti_data_to_file()
            align = w.data_alignment
            for fout, items in zip(w.fout, shard_tensors):
                fout.flush()
                fd = os.dup(fout.fileno())
                self._fds.append(fd)
                offset = gguf.GGUFWriter.ggml_pad(fout.tell(), align)
                for name, ti in items:
                    self.slots[name] = TensorSlot(name, ti.dtype, ti.nbytes, fd, offset)
                    offset += gguf.GGUFWriter.ggml_pad(ti.nbytes, align)
                # the padding after the last tensor is part of the file, as GGUFWriter writes it
                self._reserve(fd, offset)
            w.close()
        except BaseException as e:
            try:
                w.close()  # flushing buffered header bytes can fail again on a full disk
            except OSError:
                pass
            self.abort()
            if isinstance(e, OSError):
                if e.errno in DISK_ERRNOS:
                    raise OutputError(
                        f"not enough space to write {self.path}: {os.strerror(e.errno)}; "
                        "free some space or choose another -o"
                    ) from e
                raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from e
            raise
        self.nbytes = sum(os.fstat(fd).st_size for fd in self._fds)

    def _reserve(self, fd: int, size: int) -> None:
        """Give the file its final size up front: a full disk fails now, not at the end."""
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as e:
            if e.errno in DISK_ERRNOS:
                raise OutputError(
                    f"not enough space to write {self.path} ({size:,} bytes needed): "
                    f"{os.strerror(e.errno)}; free some space or choose another -o"
                ) from e
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            os.ftruncate(fd, size)

    def write(self, name: str, data: np.ndarray, byte_offset: int = 0) -> None:
        """Write bytes of tensor `name` starting `byte_offset` bytes into its data."""
        slot = self.slots[name]
        buf = memoryview(np.ascontiguousarray(data)).cast("B")
        if byte_offset + buf.nbytes > slot.nbytes:
            raise ValueError(f"{name}: write past the end of the tensor")
        pos = slot.offset + byte_offset
        try:
            while buf.nbytes:
                n = os.pwrite(slot.fd, buf, pos)
                buf = buf[n:]
                pos += n
        except OSError as e:
            if e.errno in DISK_ERRNOS:
                raise OutputError(
                    f"disk full while writing {self.path}: {os.strerror(e.errno)}; "
                    "free some space or choose another -o"
                ) from e
            raise OutputError(f"cannot write {self.path}: {e.strerror}") from e
        slot.written += data.nbytes

    def commit(self) -> list[Path]:
        """Check every tensor is complete, fsync, and move the files to their final names."""
        missing = [s.name for s in self.slots.values() if s.written != s.nbytes]
        if missing:
            raise OutputError(f"{self.path}: tensor data incomplete for {missing[:3]}")
        try:
            for fd in self._fds:
                os.fsync(fd)
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror}") from e
        self._close_fds()
        for tmp, final in zip(self.tmp_paths, self.final_paths):
            os.replace(tmp, final)
        try:
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        self._done = True
        return self.final_paths

    def _close_fds(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    def abort(self) -> None:
        """Remove the temporary files (idempotent)."""
        self._close_fds()
        if not self._done:
            for tmp in self.tmp_paths:
                try:
                    tmp.unlink()
                except FileNotFoundError:
                    pass


def _byte_shape(shape: tuple[int, ...], qtype: gguf.GGMLQuantizationType) -> tuple[int, ...]:
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    return (*shape[:-1], shape[-1] // block_size * type_size)
