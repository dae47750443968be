"""Llama family: LlamaForCausalLM (Llama 2/3, SmolLM, TinyLlama), MistralForCausalLM,
MixtralForCausalLM -> GGUF arch ``llama`` (llama.cpp conversion/llama.py, LlamaModel)."""

from __future__ import annotations

import math

import gguf
import numpy as np

from .base import Adapter, Experts
from .registry import register


@register
class Llama(Adapter):
    architectures = ("LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM")
    arch = gguf.MODEL_ARCH.LLAMA
    undo_permute = True
    vocab = "set_vocab_llama"
    experts = Experts(
        marker="block_sparse_moe.experts",
        expert_name="model.layers.{bid}.block_sparse_moe.experts.{xid}.{proj}.weight",
        merged="layers.{bid}.feed_forward.experts.{proj}.weight",
        projs=("w1", "w2", "w3"),
        count_keys=("num_local_experts",),
    )

    def rename(self, name):
        if "text_model." in name:  # SmolVLM
            name = name.replace("text_model.", "")
        return super().rename(name)

    def set_gguf_parameters(self, kv, file_type):
        super().set_gguf_parameters(kv, file_type)
        kv.add_vocab_size(self.hparams["vocab_size"])
        rope_dim = self.hparams.get("head_dim")
        if rope_dim is None:
            rope_dim = self.hparams["hidden_size"] // self.hparams["num_attention_heads"]
        kv.add_rope_dimension_count(rope_dim)

    def extra_tensors(self):
        rp = self.rope.get("full_attention", self.rope)
        if rp and rp.get("rope_type", "").lower() == "llama3":
            yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", llama3_rope_freqs(self.hparams, rp)


def llama3_rope_freqs(hp: dict, rp: dict) -> np.ndarray:
    """LlamaModel.generate_extra_tensors, in torch's float32 semantics.

    torch computes ``1.0 / (base ** (arange(0, dim, 2) / dim))`` in float32 and evaluates a
    Python scalar divided by a tensor as ``tensor.reciprocal() * scalar``; the pow is
    computed in double and rounded, which matches torch's float32 pow on every Llama 3.x
    configuration (see docs/converter-spec.md 5.6)."""
    f32 = np.float32
    base = rp.get("rope_theta", 10000.0)
    dim = hp.get("head_dim") or hp["hidden_size"] // hp["num_attention_heads"]
    ar = np.arange(0, dim, 2, dtype=np.float32) / f32(dim)
    p = (np.float64(f32(base)) ** ar.astype(np.float64)).astype(np.float32)
    freqs = (f32(1.0) / p) * f32(1.0)
    factor = rp.get("factor", 8.0)
    low = rp.get("low_freq_factor", 1.0)
    high = rp.get("high_freq_factor", 4.0)
    old = rp.get("original_max_position_embeddings", 8192)
    low_wavelen = old / low
    high_wavelen = old / high
    out = []
    for freq in freqs:
        wavelen = (f32(1.0) / freq) * f32(2 * math.pi)
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (f32(1.0) / wavelen * f32(old) - f32(low)) / f32(high - low)
            out.append(f32(1.0) / ((f32(1.0) - smooth) / f32(factor) + smooth))
    return np.array(out, dtype=np.float32)
