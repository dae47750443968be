"""GPT2LMHeadModel -> ``gpt2`` (llama.cpp conversion/gpt2.py).  GPT-2 stores its linear
layers as Conv1D, transposed with respect to nn.Linear."""

from __future__ import annotations

import gguf

from .base import Adapter
from .registry import register


@register
class GPT2(Adapter):
    architectures = ("GPT2LMHeadModel",)
    arch = gguf.MODEL_ARCH.GPT2
    transposed = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")

    def rename(self, name):
        # The causal-mask buffers old checkpoints carry are not weights. (llama.cpp's
        # converter stops with "Can not map tensor" on them; we leave them out.)
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            return None
        return super().rename(name)

    def set_gguf_parameters(self, kv, file_type):
        hp = self.hparams
        kv.add_block_count(self.block_count)
        kv.add_context_length(hp["n_ctx"] if "n_ctx" in hp else hp["n_positions"])
        kv.add_embedding_length(hp["n_embd"])
        kv.add_feed_forward_length(4 * hp["n_embd"])
        kv.add_head_count(hp["n_head"])
        kv.add_layer_norm_eps(hp["layer_norm_epsilon"])
        kv.add_file_type(file_type)
