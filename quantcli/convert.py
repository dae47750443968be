"""The conversion pipeline, top to bottom.

    source folder -> hyperparameters -> architecture adapter -> checkpoint reader
      -> tensor plan -> per output: type per tensor + key/value pairs (metadata, model
      keys, tokenizer) -> GGUF writers -> each tensor read once, in row chunks, quantized
      for every output and written in place -> fsync + rename

Two kinds of output:

* F32, F16, BF16, Q8_0, auto: what llama.cpp's convert_hf_to_gguf.py --outtype writes;
* recipes (Q4_K_M, Q3_K_S, ... and any type with --pure or overrides): what
  llama-quantize writes from the converter's F32 file, without that file ever existing.

Each step lives in its own module; this file only strings them together.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import gguf
import numpy as np

import formats

from . import recipe as R
from .archs import Adapter, OutTensor, adapter_for
from .checkpoint import Checkpoint
from .errors import InputError, OutputError, UnsupportedError
from .gguf_source import GGUFModel
from .hparams import load_hparams
from .imatrix import ImatrixData, ImatrixError, load_imatrix
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
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # numpy order, if not the tensor's
    imatrix: set[str] = field(default_factory=set)  # tensors quantized with importance
    choices: list = field(default_factory=list)  # recipe decisions (for plans and reports)
    suffix: str = ""  # "-imat", "-pure", "-custom": the file does not hold the plain recipe
    copy: set[str] = field(default_factory=set)  # tensors copied byte for byte from a GGUF source
    reasons: dict[str, str] = field(default_factory=dict)  # why each tensor has its type


@dataclass
class Options:
    out: Path | str | None = None  # a file (one output) or a directory (a str ending in / is one)
    threads: int | None = None
    force: bool = False
    split_max_tensors: int = 0
    split_max_size: int = 0
    model_name: str | None = None
    vocab_pre: str | None = None  # --vocab-pre: pre-tokenizer for a BPE vocabulary llama.cpp does not know
    # llama-quantize's options (recipe outputs)
    quant: R.Options = field(default_factory=R.Options)
    imatrix: Path | None = None
    include_weights: tuple[str, ...] = ()
    exclude_weights: tuple[str, ...] = ()
    override_kv: tuple[tuple[str, object], ...] = ()

    def customised(self) -> bool:
        """Options that change llama-quantize's choice of types."""
        q = self.quant
        return bool(q.pure or q.leave_output_tensor or q.output_tensor_type is not None
                    or q.token_embedding_type is not None or q.tensor_types)


class Progress(Protocol):
    def start(self, sizes: dict[str, int], outputs: list[Path]) -> None: ...  # bytes per tensor
    def tensor(self, name: str) -> None: ...  # a tensor begins
    def advance(self, nbytes: int) -> None: ...  # bytes of it done


def convert(source: Path, outtypes: list[str], options: Options, progress: Progress | None = None) -> list[Path]:
    """Convert a Hugging Face model folder (or requantize a GGUF); returns the files written."""
    imatrix = read_imatrix(options)
    with open_model(source, options) as model:
        targets = plan_targets(model, outtypes, options, imatrix)
        return write_targets(model, targets, options, imatrix, progress)


def plan_outputs(source: Path, outtypes: list[str], options: Options) -> tuple[list[OutTensor], list[Target]]:
    """Everything `convert` decides, without writing: for `quant plan` / --dry-run."""
    imatrix = read_imatrix(options)
    with open_model(source, options) as model:
        return model.tensors, plan_targets(model, outtypes, options, imatrix)


class HFModel:
    """A Hugging Face folder: hyperparameters, adapter, checkpoint, tensor plan, metadata."""

    def __init__(self, folder: Path, vocab_pre: str | None = None):
        self.folder = Path(folder)
        self.hparams = load_hparams(self.folder)
        self.adapter = adapter_for(self.folder, self.hparams, vocab_pre)
        self.arch_name = self.adapter.arch_name
        self.reader = Checkpoint(self.folder)
        self.tensors = plan_tensors(self.adapter, self.reader)

    def metadata(self, options: Options) -> gguf.Metadata:
        return model_metadata(self.folder, self.tensors, options.model_name)

    def target(self, name: str, meta: gguf.Metadata, options: Options, imatrix: ImatrixData | None) -> Target:
        if name.upper() in (*OUTTYPES, "AUTO") and not options.customised() and imatrix is None:
            target = converter_target(self.adapter, self.reader, self.tensors, name)
            target.kv = header_kv(self.adapter, meta, target.file_type)
            return target
        # llama-quantize applied to the converter's F32 file
        f32_kv = header_kv(self.adapter, meta, int(FT.ALL_F32))
        kv_in = [R.KV(k, v.type, v.value, v.sub_type) for k, v in f32_kv.items()]
        infos = [R.TensorInfo(t.name, tuple(reversed(t.shape)), Q.F32) for t in self.tensors]
        return recipe_target(name, kv_in, infos, options, imatrix, int(FT.ALL_F32))

    def close(self) -> None:
        self.reader.close()


class GGUFInput:
    """A GGUF file to requantize (F32/F16/BF16, or quantized with --allow-requantize)."""

    def __init__(self, path: Path):
        self.reader = GGUFModel(path)
        self.arch_name = self.reader.arch_name
        self.tensors = self.reader.out_tensors()

    def metadata(self, options: Options) -> gguf.Metadata:
        meta = gguf.Metadata()
        for attr in ("name", "basename", "finetune", "version", "size_label"):
            setattr(meta, attr, self.reader.kv_value(f"general.{attr}"))
        if options.model_name:
            meta.name = options.model_name
        if meta.name is None and meta.basename is None:
            meta.name = self.reader.path.stem.split("-00001-of-")[0]
        return meta

    def target(self, name: str, meta: gguf.Metadata, options: Options, imatrix: ImatrixData | None) -> Target:
        r = self.reader
        infos = [R.TensorInfo(t.name, t.ggml_shape, t.qtype) for t in r.tensors.values()]
        target = recipe_target(name, r.kv, infos, options, imatrix, r.kv_value("general.file_type"))
        target.copy = {c.name for c in target.choices if not c.convert}
        return target

    def close(self) -> None:
        self.reader.close()


@contextlib.contextmanager
def open_model(source: Path, options: Options):
    source = Path(source)
    model = GGUFInput(source) if source.is_file() else HFModel(source, options.vocab_pre)
    try:
        yield model
    finally:
        model.close()


def plan_targets(model, outtypes: list[str], options: Options, imatrix: ImatrixData | None) -> list[Target]:
    """Type per tensor, tensor order and key/value pairs of every output, and its path."""
    meta = model.metadata(options)
    targets = [model.target(name, meta, options, imatrix) for name in outtypes]
    for target in targets:
        name = default_filename(meta, target.label, target.suffix)
        target.path = output_path(options.out, name, len(targets))
    paths = [t.path for t in targets]
    if len(set(paths)) != len(paths):
        raise InputError(f"two outputs would be written to the same file ({paths}); list each recipe once")
    return targets


def read_imatrix(options: Options) -> ImatrixData | None:
    if options.imatrix is None:
        return None
    try:
        return load_imatrix(options.imatrix, options.include_weights, options.exclude_weights)
    except (ImatrixError, OSError) as e:
        raise InputError(f"--imatrix {options.imatrix}: {e}") from None


def recipe_target(name: str, kv_in: list[R.KV], infos: list[R.TensorInfo], options: Options,
                       imatrix: ImatrixData | None, input_file_type: int | None) -> Target:
    """llama-quantize on an input described by its key/value pairs and tensor infos."""
    try:
        recipe = R.resolve_recipe(name)
    except R.RecipeError as e:
        raise UnsupportedError(str(e)) from None
    if not recipe.supported:
        raise UnsupportedError(
            f"recipe {recipe.name} is not supported yet (its types are not in the engine); "
            f"supported: {', '.join(R.SUPPORTED_RECIPES)}"
        )
    try:
        model = R.ModelInfo.from_kv({k.key: k.value for k in kv_in})
    except R.PlanError as e:
        raise InputError(str(e)) from None
    q = options.quant
    entries = imatrix.as_params() if imatrix is not None else None
    qopts = R.Options(q.pure, q.leave_output_tensor, q.output_tensor_type, q.token_embedding_type,
                      q.tensor_types, q.allow_requantize, entries, q.no_fallback)
    try:
        choices = R.plan(infos, model, recipe, qopts)
    except R.PlanError as e:
        hint = ""
        if "imatrix" in str(e).lower() or "importance" in str(e).lower():
            hint = f"; recipe {recipe.name} needs an importance matrix: pass --imatrix FILE"
        raise InputError(f"{recipe.name}: {e}{hint}") from None
    overrides = list(options.override_kv)
    if imatrix is not None:
        overrides += imatrix.kv_overrides(str(options.imatrix))
    kv_out = R.quantized_kv(kv_in, recipe, overrides, input_file_type=input_file_type)
    kv = {k.key: gguf.GGUFValue(k.value, k.type, k.sub_type) for k in kv_out}
    suffix = "-pure" if q.pure else "-custom" if options.customised() else ""
    if imatrix is not None and imatrix.entries:
        suffix += "-imat"
    return Target(
        recipe.name,
        int(recipe.ftype),
        {c.name: c.qtype for c in choices},
        [c.name for c in choices],
        kv,
        shapes={c.name: tuple(reversed(c.shape)) for c in choices},
        imatrix={c.name for c in choices if c.use_imatrix},
        choices=choices,
        suffix=suffix,
        reasons={c.name: c.reason for c in choices},
    )


def converter_target(adapter: Adapter, ckpt: Checkpoint, tensors: list[OutTensor], outtype: str) -> Target:
    """convert_hf_to_gguf.py --outtype: F32/F16/BF16/Q8_0/auto on every tensor it converts."""
    name = outtype.upper()
    if name == "AUTO":
        name = auto_outtype(adapter, ckpt)
    if name not in OUTTYPES:
        raise UnsupportedError(f"output type {outtype!r} is not one of {', '.join(OUTTYPES)}, auto")
    file_type, qtype = OUTTYPES[name]
    types, reasons = {}, {}
    for t in tensors:
        if adapter.force_f32(t.name, len(t.shape)):
            types[t.name], reasons[t.name] = Q.F32, "converter: always F32 (1-D, norm, bias, router, positions)"
        elif qtype == Q.Q8_0 and t.n_per_row % 32 != 0:
            # the converter's fallback when rows are not whole blocks
            types[t.name], reasons[t.name] = Q.F16, f"converter: F16, rows of {t.n_per_row} are not whole Q8_0 blocks"
        else:
            types[t.name], reasons[t.name] = qtype, f"converter: --outtype {name.lower()}"
    return Target(name, int(file_type), types, [t.name for t in tensors], reasons=reasons)


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
    """-o: a file (one output), or a folder (created if needed) for the default names."""
    if out is None:
        return Path.cwd() / default_name
    folder = str(out).endswith("/")  # a str keeps the trailing slash that Path drops
    out = Path(out)
    if out.is_dir() or folder or (n_outputs > 1 and out.suffix != ".gguf"):
        out.mkdir(parents=True, exist_ok=True)
        return out / default_name
    if n_outputs > 1:
        raise InputError(f"-o {out}: several outputs need a folder, not a file name")
    if not out.parent.is_dir():
        raise OutputError(f"-o {out}: folder {out.parent} does not exist")
    return out


def write_targets(
    model,
    targets: list[Target],
    options: Options,
    imatrix: ImatrixData | None = None,
    progress: Progress | None = None,
) -> list[Path]:
    """Open every output, stream each tensor once through the engine into all of them."""
    ckpt, tensors = model.reader, model.tensors
    by_name = {t.name: t for t in tensors}
    outputs: list[GGUFOutput] = []
    try:
        for target in targets:
            infos = []
            for name in target.order:
                t = by_name[name]
                qt = target.types[name]
                shape = target.shapes.get(name, t.shape)
                infos.append((name, shape, qt, t.rows * formats.row_size(qt, t.n_per_row)))
            outputs.append(
                GGUFOutput(
                    target.path,
                    model.arch_name,
                    target.kv,
                    infos,
                    split_max_tensors=options.split_max_tensors,
                    split_max_size=options.split_max_size,
                    force=options.force,
                )
            )
        if progress:
            progress.start({t.name: 4 * t.rows * t.n_per_row for t in tensors}, [t.path for t in targets])
        for t in tensors:
            if progress:
                progress.tensor(t.name)
            importance = _importance(t, imatrix) if any(t.name in tg.imatrix for tg in targets) else None
            per_matrix = t.shape[-2] if len(t.shape) == 3 else t.rows
            for row0, x in row_chunks(ckpt, t):
                done: dict[tuple[Q, bool], np.ndarray] = {}  # one quantization per distinct type
                for target, output in zip(targets, outputs):
                    qt = target.types[t.name]
                    use = importance is not None and t.name in target.imatrix
                    q = done.get((qt, use))
                    if q is None and t.name in target.copy:
                        q = ckpt.tensors[t.name].raw_bytes(row0, row0 + x.shape[0])
                    if q is None:
                        imp = importance[row0 // per_matrix] if use else None
                        try:
                            q = formats.quantize(x, qt, importance=imp, threads=options.threads)
                        except formats.QuantizationError as e:
                            hint = ""
                            if "non-finite" in str(e):
                                hint = ("; re-download the checkpoint, or repair the weights in the model "
                                        "that produced it (NaN/Inf weights make every output NaN)")
                            raise InputError(f"tensor {t.name} (from {_sources(t)}): {e}{hint}") from None
                        done[(qt, use)] = q
                    output.write(t.name, q, row0 * formats.row_size(qt, t.n_per_row))
                if progress:
                    progress.advance(x.nbytes)
        written: list[Path] = []
        for output in outputs:
            written += output.commit()
        return written
    except BaseException:
        for output in outputs:
            output.abort()
        raise


def _importance(t: OutTensor, imatrix: ImatrixData | None) -> np.ndarray | None:
    """(n_matrices, n_per_row) importance for tensor t, checked like llama.cpp."""
    if imatrix is None:
        return None
    try:
        return imatrix.for_tensor(t.name, tuple(reversed(t.shape)))
    except ImatrixError as e:
        raise InputError(f"--imatrix: {e}") from None


def _sources(t: OutTensor) -> str:
    if not t.pieces:
        return "generated"
    if len(t.pieces) == 1:
        return t.pieces[0].source
    return f"{t.pieces[0].source} ... ({len(t.pieces)} tensors)"
