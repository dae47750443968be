"""Phi3ForCausalLM -> ``phi3`` (llama.cpp conversion/phi.py, Phi3MiniModel).
The fused qkv_proj and gate_up_proj stay fused (attn_qkv, ffn_up)."""

from __future__ import annotations

import math

import gguf
import numpy as np

from ..errors import InputError
from .base import Adapter
from .registry import register


@register
class Phi3(Adapter):
    architectures = ("Phi3ForCausalLM",)
    arch = gguf.MODEL_ARCH.PHI3
    vocab = "set_vocab_phi3"

    def _rope_dims(self) -> int:
        n_embd = self.find(["hidden_size", "n_embd"])
        n_head = self.find(["num_attention_heads", "n_head"])
        return int(self.rope.get("partial_rotary_factor", 1.0) * n_embd) // n_head

    def set_gguf_parameters(self, kv, file_type):
        kv.add_context_length(self.find(["n_positions", "max_position_embeddings"]))
        kv.add_rope_scaling_orig_ctx_len(self.rope["original_max_position_embeddings"])
        kv.add_embedding_length(self.find(["hidden_size", "n_embd"]))
        kv.add_feed_forward_length(self.find(["intermediate_size"]))
        kv.add_block_count(self.block_count)
        kv.add_head_count(self.find(["num_attention_heads", "n_head"]))
        kv.add_head_count_kv(self.find(["num_key_value_heads", "n_head_kv"]))
        kv.add_layer_norm_rms_eps(self.find(["rms_norm_eps"]))
        kv.add_rope_dimension_count(self._rope_dims())
        kv.add_rope_freq_base(self.rope.get("full_attention", self.rope)["rope_theta"])
        kv.add_file_type(file_type)
        sw = self.hparams.get("sliding_window")
        kv.add_sliding_window(0 if sw is None else sw)

    def _long_rope(self):
        long_f = self.rope.get("long_factor")
        short_f = self.rope.get("short_factor")
        if not long_f:
            return None
        max_pos = self.find(["n_positions", "max_position_embeddings"])
        orig = self.rope["original_max_position_embeddings"]
        scale = max_pos / orig
        kind = self.rope.get("rope_type", "").lower()
        if kind in ("su", "longrope"):
            attn = math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1.0 else 1.0
        elif kind == "yarn":
            attn = 0.1 * math.log(scale) + 1.0 if scale > 1.0 else 1.0
        else:
            raise InputError(f"config.json: rope_scaling type {kind!r} is not supported for Phi-3")
        if short_f is None or len(long_f) != len(short_f) or len(long_f) != self._rope_dims() / 2:
            raise InputError(
                f"config.json: rope_scaling long_factor/short_factor must both have "
                f"{self._rope_dims() // 2} values"
            )
        return attn, long_f, short_f

    def keys_before_metadata(self, kv):
        if (lr := self._long_rope()) is not None:
            kv.add_rope_scaling_attn_factors(lr[0])

    def extra_tensors(self):
        if (lr := self._long_rope()) is not None:
            _, long_f, short_f = lr
            yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_LONG] + ".weight", np.array(long_f, np.float32)
            yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT] + ".weight", np.array(short_f, np.float32)
