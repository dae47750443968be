"""The conversion pipeline, top to bottom.

    source folder -> hyperparameters -> architecture adapter -> checkpoint reader
      -> tensor plan -> per output: type per tensor + key/value pairs (metadata, model
      keys, tokenizer) -> GGUF writers -> each tensor read once, in row chunks, quantized
      for every output and written in place -> fsync + rename

Each step lives in its own module; this file only strings them together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import gguf
import numpy as np

import formats

from .archs import Adapter, OutTensor, adapter_for
from .checkpoint import Checkpoint
from .errors import InputError, UnsupportedError
from .hparams import load_hparams
from .metadata import default_filename, model_metadata
from .tensors import plan_tensors, row_chunks
from .writer import GGUFOutput

Q = gguf.GGMLQuantizationType
FT = gguf.LlamaFileType

# convert_hf_to_gguf --outtype: name -> (general.file_type, type of the converted tensors)
OUTTYPES: dict[str, tuple[FT, Q]] = {
    "F32": (FT.ALL_F32, Q.F32),
    "F16": (FT.MOSTLY_F16, Q.F16),
    "BF16": (FT.MOSTLY_BF16, Q.BF16),
    "Q8_0": (FT.MOSTLY_Q8_0, Q.Q8_0),
}


@dataclass
class Target:
    """One output file: what type each tensor gets, in which order, with which keys."""

    label: str  # e.g. "F16", "Q4_K_M": the encoding part of the file name
    file_type: int
    types: dict[str, Q]
    order: list[str]
    kv: dict = field(default_factory=dict)
    path: Path | None = None


@dataclass
class Options:
    out: Path | None = None  # a file (one output) or a directory
    threads: int | None = None
    force: bool = False
    split_max_tensors: int = 0
    split_max_size: int = 0
    model_name: str | None = None


class Progress(Protocol):
    def start(self, n_tensors: int, total_bytes: int, outputs: list[Path]) -> None: ...
    def tensor(self, name: str, nbytes: int, finished: bool) -> None: ...


def convert(folder: Path, outtypes: list[str], options: Options, progress: Progress | None = None) -> list[Path]:
    """Convert a Hugging Face model folder; returns the files written."""
    folder = Path(folder)
    hparams = load_hparams(folder)
    adapter = adapter_for(folder, hparams)
    with Checkpoint(folder) as ckpt:
        tensors = plan_tensors(adapter, ckpt)
        meta = model_metadata(folder, tensors, options.model_name)
        targets = [converter_target(adapter, ckpt, tensors, t) for t in outtypes]
        for target in targets:
            target.kv = header_kv(adapter, meta, target.file_type)
            target.path = output_path(options.out, default_filename(meta, target.label), len(targets))
        return write_targets(ckpt, adapter, tensors, targets, options, progress)


def converter_target(adapter: Adapter, ckpt: Checkpoint, tensors: list[OutTensor], outtype: str) -> Target:
    """convert_hf_to_gguf.py --outtype: F32/F16/BF16/Q8_0/auto on every tensor it converts."""
    name = outtype.upper()
    if name == "AUTO":
        name = auto_outtype(adapter, ckpt)
    if name not in OUTTYPES:
        raise UnsupportedError(f"output type {outtype!r} is not one of {', '.join(OUTTYPES)}, auto")
    file_type, qtype = OUTTYPES[name]
    types = {}
    for t in tensors:
        if adapter.force_f32(t.name, len(t.shape)):
            types[t.name] = Q.F32
        elif qtype == Q.Q8_0 and t.n_per_row % 32 != 0:
            types[t.name] = Q.F16  # the converter's fallback when rows are not whole blocks
        else:
            types[t.name] = qtype
    return Target(name, int(file_type), types, [t.name for t in tensors])


def auto_outtype(adapter: Adapter, ckpt: Checkpoint) -> str:
    """--outtype auto: BF16 or F16 after the first 2-D+ bf16/f16 tensor, else F16."""
    for ref in ckpt:
        if adapter.rename(ref.name) is None or len(ref.shape) < 2:
            continue
        if ref.dtype == "BF16":
            return "BF16"
        if ref.dtype == "F16":
            return "F16"
    return "F16"


def header_kv(adapter: Adapter, meta: gguf.Metadata, file_type: int) -> dict:
    """The key/value pairs, in the order llama.cpp's converter writes them."""
    kv = gguf.GGUFWriter(None, adapter.arch_name)  # general.architecture
    adapter.keys_before_metadata(kv)
    kv.add_type(gguf.GGUFType.MODEL)
    meta.set_gguf_meta_model(kv)
    adapter.set_gguf_parameters(kv, file_type)  # ends with general.file_type (+ a few)
    kv.add_quantization_version(gguf.GGML_QUANT_VERSION)
    adapter.set_vocab(kv)
    return kv.kv_data[0]


def output_path(out: Path | None, default_name: str, n_outputs: int) -> Path:
    if out is None:
        return Path.cwd() / default_name
    out = Path(out)
    if out.is_dir() or (n_outputs > 1 and not out.suffix):
        return out / default_name
    if n_outputs > 1:
        raise InputError(f"-o {out}: several outputs need a directory, not a file name")
    return out


def write_targets(
    ckpt: Checkpoint,
    adapter: Adapter,
    tensors: list[OutTensor],
    targets: list[Target],
    options: Options,
    progress: Progress | None = None,
) -> list[Path]:
    """Open every output, stream each tensor once through the engine into all of them."""
    by_name = {t.name: t for t in tensors}
    outputs: list[GGUFOutput] = []
    try:
        for target in targets:
            infos = []
            for name in target.order:
                t = by_name[name]
                qt = target.types[name]
                infos.append((name, t.shape, qt, t.rows * formats.row_size(qt, t.n_per_row)))
            outputs.append(
                GGUFOutput(
                    target.path,
                    adapter.arch_name,
                    target.kv,
                    infos,
                    split_max_tensors=options.split_max_tensors,
                    split_max_size=options.split_max_size,
                    force=options.force,
                )
            )
        if progress:
            progress.start(len(tensors), sum(4 * t.rows * t.n_per_row for t in tensors), [t.path for t in targets])
        for t in tensors:
            for row0, x in row_chunks(ckpt, t):
                for target, output in zip(targets, outputs):
                    qt = target.types[t.name]
                    try:
                        q = formats.quantize(x, qt, threads=options.threads)
                    except formats.QuantizationError as e:
                        raise InputError(f"tensor {t.name} (from {_sources(t)}): {e}") from None
                    output.write(t.name, q, row0 * formats.row_size(qt, t.n_per_row))
                if progress:
                    progress.tensor(t.name, x.nbytes, row0 + x.shape[0] == t.rows)
        written: list[Path] = []
        for output in outputs:
            written += output.commit()
        return written
    except BaseException:
        for output in outputs:
            output.abort()
        raise


def _sources(t: OutTensor) -> str:
    if not t.pieces:
        return "generated"
    if len(t.pieces) == 1:
        return t.pieces[0].source
    return f"{t.pieces[0].source} ... ({len(t.pieces)} tensors)"
