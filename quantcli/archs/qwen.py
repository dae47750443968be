"""Qwen family: Qwen2ForCausalLM -> ``qwen2``, Qwen3ForCausalLM -> ``qwen3``,
Qwen2MoeForCausalLM -> ``qwen2moe``, Qwen3MoeForCausalLM -> ``qwen3moe``
(llama.cpp conversion/qwen.py).  No q/k permutation."""

from __future__ import annotations

import gguf

from .base import Adapter, Experts, slice_second_last
from .registry import register


@register
class Qwen2(Adapter):
    architectures = ("Qwen2ForCausalLM",)
    arch = gguf.MODEL_ARCH.QWEN2
    vocab = "set_vocab_qwen2"

    def set_gguf_parameters(self, kv, file_type):
        super().set_gguf_parameters(kv, file_type)
        self.set_pooling_type(kv)


@register
class Qwen3(Qwen2):
    architectures = ("Qwen3ForCausalLM",)
    arch = gguf.MODEL_ARCH.QWEN3


@register
class Qwen2Moe(Adapter):
    architectures = ("Qwen2MoeForCausalLM",)
    arch = gguf.MODEL_ARCH.QWEN2MOE
    experts = Experts(
        marker="experts",
        expert_name="model.layers.{bid}.mlp.experts.{xid}.{proj}.weight",
        merged="model.layers.{bid}.mlp.experts.{proj}.weight",
        projs=("down_proj", "gate_proj", "up_proj"),
        count_keys=("num_local_experts", "num_experts"),
    )

    def set_gguf_parameters(self, kv, file_type):
        super().set_gguf_parameters(kv, file_type)
        if (v := self.hparams.get("moe_intermediate_size")) is not None:
            kv.add_expert_feed_forward_length(v)
        if (v := self.hparams.get("shared_expert_intermediate_size")) is not None:
            kv.add_expert_shared_feed_forward_length(v)

    def split(self, name, shape):
        # transformers v5 stores the experts fused: gate_up_proj [E, 2*ff, embd] is cut in
        # two along its second-to-last axis; down_proj passes through (qwen.py:98-117)
        base = name.removesuffix(".weight")
        if base.endswith("mlp.experts.down_proj"):
            return [(base + ".weight", shape, None)]
        if base.endswith("mlp.experts.gate_up_proj"):
            ff = shape[-2] // 2
            half = (*shape[:-2], ff, shape[-1])
            stem = base.removesuffix(".gate_up_proj")
            return [
                (stem + ".gate_proj.weight", half, slice_second_last(0, ff)),
                (stem + ".up_proj.weight", half, slice_second_last(ff, 2 * ff)),
            ]
        return None


@register
class Qwen3Moe(Qwen2Moe):
    architectures = ("Qwen3MoeForCausalLM",)
    arch = gguf.MODEL_ARCH.QWEN3MOE
