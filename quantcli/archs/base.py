"""What every architecture adapter shares: llama.cpp's TextModel, minus torch.

An adapter says, declaratively where it can, how one Hugging Face architecture becomes a
GGUF file: the GGUF architecture, which checkpoint tensors are renamed or dropped, the
transforms (q/k permutation, Gemma's norm +1, GPT-2's Conv1D transpose), how experts are
stacked, which hyperparameter keys are written and which tokenizer path is taken.  The
pipeline (`quantcli.convert`) asks; it never looks at architecture names itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Iterable

import gguf
import numpy as np

from ..errors import InputError, UnsupportedError
from ..hparams import find_hparam, rope_parameters

@dataclass(frozen=True)
class Transform:
    """A numeric transform of a whole source tensor, with the shape it produces."""

    apply: Callable[[np.ndarray], np.ndarray]
    shape: Callable[[tuple[int, ...]], tuple[int, ...]] = lambda s: s

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return self.apply(a)


def chain(transforms: list[Transform]) -> Transform | None:
    if not transforms:
        return None
    if len(transforms) == 1:
        return transforms[0]

    def apply(a):
        for t in transforms:
            a = t(a)
        return a

    def shape(s):
        for t in transforms:
            s = t.shape(s)
        return s

    return Transform(apply, shape)


@dataclass(frozen=True)
class Piece:
    """Consecutive rows of an output tensor taken from one checkpoint tensor.

    ``transform`` (if any) is applied to the whole source tensor, in the converter's
    processing dtype (float16 stays float16, everything else is widened to float32)."""

    source: str
    transform: Transform | None = None


@dataclass(frozen=True)
class OutTensor:
    """One tensor of the GGUF file: its name, numpy shape and where its values come from.

    Either ``pieces`` (stacked along the first axis: one per expert for MoE tensors) or
    ``data`` (tensors the converter generates, such as rope_freqs)."""

    name: str
    shape: tuple[int, ...]
    pieces: tuple[Piece, ...] = ()
    data: np.ndarray | None = None
    source_dtype: str = "F32"

    @property
    def n_per_row(self) -> int:
        return self.shape[-1]

    @property
    def rows(self) -> int:
        return int(np.prod(self.shape[:-1], dtype=np.int64)) if len(self.shape) > 1 else 1


@dataclass(frozen=True)
class Experts:
    """MoE experts stored one tensor per expert and projection, stacked into 3-D tensors.

    A checkpoint name containing ``marker`` is buffered; when all ``n_experts * len(projs)``
    tensors of a layer have been seen, one stacked tensor per projection is emitted, in
    ``projs`` order, named by ``merged.format(bid=..., proj=...)`` before GGUF mapping."""

    marker: str
    expert_name: str  # e.g. "model.layers.{bid}.block_sparse_moe.experts.{xid}.{proj}.weight"
    merged: str  # e.g. "layers.{bid}.feed_forward.experts.{proj}.weight"
    projs: tuple[str, ...]
    count_keys: tuple[str, ...]  # hparams holding the expert count


def permute(n_head: int, n_head_kv: int | None) -> Transform:
    """LlamaModel.permute: undo HF's rotary row order for q/k weights (and biases)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv

    def apply(w: np.ndarray) -> np.ndarray:
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    return Transform(apply)


# Gemma stores RMSNorm weights as (w - 1); llama.cpp wants w (added in the source dtype)
plus_one = Transform(lambda w: w + w.dtype.type(1))
# GPT-2's Conv1D weights are stored transposed with respect to nn.Linear
transpose = Transform(lambda w: np.ascontiguousarray(w.T), lambda s: tuple(reversed(s)))


def rows_upto(n: int) -> Transform:
    """Keep the first n rows (Gemma 3 drops out-of-vocabulary embedding rows)."""
    return Transform(lambda a: a[:n], lambda s: (min(n, s[0]), *s[1:]))


def slice_second_last(lo: int, hi: int) -> Transform:
    """a[..., lo:hi, :] (one half of a fused gate_up projection)."""
    return Transform(lambda a: a[..., lo:hi, :], lambda s: (*s[:-2], hi - lo, s[-1]))


# Tensors the converter always keeps in F32 (besides 1-D tensors, *_norm.weight, biases).
ALWAYS_F32 = (
    gguf.MODEL_TENSOR.FFN_GATE_INP,
    gguf.MODEL_TENSOR.FFN_GATE_INP_SHEXP,
    gguf.MODEL_TENSOR.POS_EMBD,
    gguf.MODEL_TENSOR.TOKEN_TYPES,
)


class Adapter:
    """Base adapter: llama.cpp's TextModel behaviour for a plain decoder."""

    architectures: ClassVar[tuple[str, ...]] = ()  # HF class names this adapter converts
    arch: ClassVar[gguf.MODEL_ARCH]
    undo_permute: ClassVar[bool] = False  # q/k permutation (Llama family)
    norm_plus_one: ClassVar[bool] = False  # names ending "norm.weight" get +1 (Gemma)
    transposed: ClassVar[tuple[str, ...]] = ()  # name suffixes stored transposed (GPT-2 Conv1D)
    experts: ClassVar[Experts | None] = None
    vocab: ClassVar[str] = "set_vocab_gpt2"  # the quantcli.vocab function of this model class

    def __init__(self, folder: Path, hparams: dict, vocab_pre: str | None = None):
        self.folder = Path(folder)
        self.hparams = hparams
        self.vocab_pre = vocab_pre  # --vocab-pre: the pre-tokenizer name, when llama.cpp does not know the hash
        self.block_count = find_hparam(hparams, ["n_layers", "num_hidden_layers", "n_layer", "num_layers"])
        self.tensor_map = gguf.get_tensor_name_map(self.arch, self.block_count)
        self.rope = rope_parameters(hparams)

    @property
    def arch_name(self) -> str:
        return gguf.MODEL_ARCH_NAMES[self.arch]

    def find(self, keys: list[str], optional: bool = False):
        return find_hparam(self.hparams, keys, optional)

    # -- tensors -------------------------------------------------------------------------
    def rename(self, name: str) -> str | None:
        """filter_tensors: the checkpoint name the converter works with, or None to drop it."""
        if name.endswith("e_score_correction_bias"):
            name = name.replace("e_score_correction_bias", "e_score_correction.bias")
        if "language_model." in name:
            name = name.replace("language_model.", "")
        return name

    def transforms(self, name: str) -> list[Transform]:
        """modify_tensors' numeric transforms for one (renamed) checkpoint tensor."""
        out: list[Transform] = []
        if self.undo_permute:
            n_head = self.find(["n_heads", "num_attention_heads"])
            n_kv = self.find(["n_kv_heads", "num_key_value_heads"])
            if name.endswith(("q_proj.weight", "q_proj.bias")):
                out.append(permute(n_head, n_head))
            if name.endswith(("k_proj.weight", "k_proj.bias")):
                out.append(permute(n_head, n_kv))
        if self.norm_plus_one and name.endswith("norm.weight"):
            out.append(plus_one)
        if self.transposed and name.endswith(self.transposed):
            out.append(transpose)
        return out

    def map_name(self, name: str) -> str:
        new = self.tensor_map.get_name(key=name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise InputError(
                f"tensor {name!r} of this {self.arch_name} checkpoint has no GGUF name; "
                "llama.cpp's converter refuses it too (is the checkpoint from a different architecture?)"
            )
        return new

    def split(self, name: str, shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...], Transform | None]] | None:
        """A checkpoint tensor that becomes several (fused experts); None when it does not."""
        return None

    def extra_tensors(self) -> Iterable[tuple[str, np.ndarray]]:
        """generate_extra_tensors: tensors computed from hparams, written first."""
        return ()

    def force_f32(self, gguf_name: str, n_dims: int) -> bool:
        """The converter's rule for tensors kept in F32 whatever the output type."""
        if n_dims <= 1 or gguf_name.endswith("_norm.weight"):
            return True
        if not gguf_name.endswith(".weight"):
            return True
        bid = next((int(p) for p in gguf_name.split(".") if p.isdecimal()), None)
        for key in ALWAYS_F32:
            if key not in gguf.MODEL_TENSORS[self.arch]:
                continue
            tmpl = gguf.TENSOR_NAMES[key]
            if "{bid}" in tmpl:
                if bid is not None and gguf_name == tmpl.format(bid=bid) + ".weight":
                    return True
            elif bid is None and gguf_name == tmpl + ".weight":
                return True
        return False

    # -- key/value pairs -------------------------------------------------------------------
    def keys_before_metadata(self, kv: gguf.GGUFWriter) -> None:
        """Keys the converter adds while preparing tensors (before general.type)."""

    def set_gguf_parameters(self, kv: gguf.GGUFWriter, file_type: int) -> None:
        """TextModel.set_gguf_parameters (base.py), ending with general.file_type."""
        hp = self.hparams
        kv.add_block_count(self.block_count)
        if (v := self.find(["max_position_embeddings", "n_ctx", "n_positions", "max_length",
                            "max_sequence_length", "model_max_length"], True)) is not None:
            kv.add_context_length(v)
        if (v := self.find(["hidden_size", "n_embd", "dim"], True)) is not None:
            kv.add_embedding_length(v)
        if (v := self.find(["prefix_dense_intermediate_size", "dense_intermediate_size",
                            "intermediate_size", "n_inner", "hidden_dim"], True)) is not None:
            kv.add_feed_forward_length(v)
        if (v := self.find(["num_attention_heads", "n_head", "n_heads"], True)) is not None:
            kv.add_head_count(v)
        if (v := self.find(["num_key_value_heads", "n_kv_heads"], True)) is not None:
            kv.add_head_count_kv(v)
        if hp.get("is_causal") is False:
            kv.add_causal_attention(False)
        rp = self.rope.get("full_attention", self.rope)
        if (rope_type := rp.get("rope_type")) is not None:
            factor = rp.get("factor")
            if rope_type == "linear" and factor is not None:
                kv.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
                kv.add_rope_scaling_factor(factor)
            elif rope_type == "yarn" and factor is not None:
                kv.add_rope_scaling_type(gguf.RopeScalingType.YARN)
                kv.add_rope_scaling_factor(factor)
                kv.add_rope_scaling_orig_ctx_len(rp["original_max_position_embeddings"])
                if (v := rp.get("extrapolation_factor")) is not None:
                    kv.add_rope_scaling_yarn_ext_factor(v)
                if (v := rp.get("attention_factor", rp.get("attn_factor"))) is not None:
                    kv.add_rope_scaling_yarn_attn_factor(v)
                if (v := rp.get("beta_fast")) is not None:
                    kv.add_rope_scaling_yarn_beta_fast(v)
                if (v := rp.get("beta_slow")) is not None:
                    kv.add_rope_scaling_yarn_beta_slow(v)
            elif rope_type in ("su", "longrope"):
                kv.add_rope_scaling_type(gguf.RopeScalingType.LONGROPE)
        if (v := rp.get("rope_theta")) is not None:
            kv.add_rope_freq_base(v)
        if (v := self.rope.get("sliding_attention", {}).get("rope_theta")) is not None:
            kv.add_rope_freq_base_swa(v)
        if (v := self.find(["rms_norm_eps", "norm_eps"], True)) is not None:
            kv.add_layer_norm_rms_eps(v)
        if (v := self.find(["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"], True)) is not None:
            kv.add_layer_norm_eps(v)
        if (v := self.find(["num_local_experts", "num_experts", "n_routed_experts"], True)) is not None:
            kv.add_expert_count(v)
        if (v := self.find(["num_experts_per_tok", "num_experts_per_token", "top_k_experts"], True)) is not None:
            kv.add_expert_used_count(v)
        if (v := hp.get("head_dim")) is not None:
            kv.add_key_length(v)
            kv.add_value_length(v)
        kv.add_file_type(file_type)

    def set_pooling_type(self, kv: gguf.GGUFWriter) -> None:
        """_try_set_pooling_type: sentence-transformers pooling from modules.json."""
        import json

        modes = {"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS, "lasttoken": gguf.PoolingType.LAST}
        modules = self.folder / "modules.json"
        pooling_path = None
        if modules.is_file():
            for mod in json.loads(modules.read_text(encoding="utf-8")):
                if mod["type"].endswith("Pooling"):
                    pooling_path = mod["path"]
                    break
        if pooling_path is not None:
            cfg = self.folder / pooling_path / "config.json"
            try:
                pooling = json.loads(cfg.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise InputError(f"{cfg} (named by modules.json) is missing") from None
            if pooling.get("pooling_mode_mean_tokens"):
                kind = gguf.PoolingType.MEAN
            elif pooling.get("pooling_mode_cls_token"):
                kind = gguf.PoolingType.CLS
            elif pooling.get("pooling_mode_lasttoken"):
                kind = gguf.PoolingType.LAST
            elif pooling.get("pooling_mode") in modes:
                kind = modes[pooling["pooling_mode"]]
            else:
                raise UnsupportedError(f"{cfg}: only MEAN, CLS and LAST pooling are supported (as in llama.cpp)")
            kv.add_pooling_type(kind)
        if (cp := self.hparams.get("classifier_pooling")) is not None:
            if cp not in ("cls", "mean"):
                raise UnsupportedError(f"config.json: classifier_pooling {cp!r} is not supported")
            kv.add_uint32(f"{self.arch_name}.classifier.pooling_type", modes[cp].value)

    def set_vocab(self, kv: gguf.GGUFWriter) -> None:
        from .. import vocab

        getattr(vocab, self.vocab)(kv, self.folder, self.hparams, pre_override=self.vocab_pre)
