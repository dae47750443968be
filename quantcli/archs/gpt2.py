"""GPT2LMHeadModel -> ``gpt2`` (llama.cpp conversion/gpt2.py).  GPT-2 stores its linear
layers as Conv1D, transposed with respect to nn.Linear."""

from __future__ import annotations

import gguf

from ..errors import UnsupportedError
from .base import Adapter
from .registry import register


@register
class GPT2(Adapter):
    architectures = ("GPT2LMHeadModel",)
    arch = gguf.MODEL_ARCH.GPT2
    transposed = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")

    def rename(self, name):
        # The causal-mask buffers of checkpoints derived from the original pytorch_model.bin
        # (openai-community/gpt2's model.safetensors has h.N.attn.bias) are not weights, but
        # the vendored converter hands them to the tensor mapper (gpt2.py:28-31), which stops
        # with "Can not map tensor": refuse them the same way, before writing anything.
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            raise UnsupportedError(
                f"{self.folder}: tensor {name!r} is GPT-2's causal-mask buffer, not a weight; "
                "llama.cpp's convert_hf_to_gguf.py stops on it (\"Can not map tensor\"), so quantcli "
                "refuses it too. Re-save the model with transformers (save_pretrained drops these "
                "buffers) and convert the re-saved folder."
            )
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
