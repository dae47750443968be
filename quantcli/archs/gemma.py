"""Gemma: Gemma2ForCausalLM -> ``gemma2``; Gemma3ForCausalLM and the text part of
Gemma3ForConditionalGeneration -> ``gemma3`` (llama.cpp conversion/gemma.py).
RMSNorm weights are stored as (w - 1) by Hugging Face: every "*norm.weight" gets +1."""

from __future__ import annotations

import json

import gguf

from .base import Adapter, rows_upto
from .registry import register


@register
class Gemma2(Adapter):
    architectures = ("Gemma2ForCausalLM",)
    arch = gguf.MODEL_ARCH.GEMMA2
    norm_plus_one = True
    vocab = "set_vocab_gemma2"

    def rename(self, name):
        if name == "lm_head.weight":  # unused by llama.cpp (tied embeddings)
            return None
        return super().rename(name)

    def set_gguf_parameters(self, kv, file_type):
        hp = self.hparams
        kv.add_context_length(hp["max_position_embeddings"])
        kv.add_embedding_length(hp["hidden_size"])
        kv.add_block_count(self.block_count)
        kv.add_feed_forward_length(hp["intermediate_size"])
        kv.add_head_count(hp["num_attention_heads"])
        kv.add_head_count_kv(hp["num_key_value_heads"] if "num_key_value_heads" in hp else hp["num_attention_heads"])
        kv.add_layer_norm_rms_eps(hp["rms_norm_eps"])
        kv.add_key_length(hp["head_dim"])
        kv.add_value_length(hp["head_dim"])
        kv.add_file_type(file_type)
        kv.add_attn_logit_softcapping(hp["attn_logit_softcapping"])
        kv.add_final_logit_softcapping(hp["final_logit_softcapping"])
        kv.add_sliding_window(hp["sliding_window"])


@register
class Gemma3(Adapter):
    architectures = ("Gemma3ForCausalLM", "Gemma3ForConditionalGeneration")
    arch = gguf.MODEL_ARCH.GEMMA3
    norm_plus_one = True
    vocab = "set_vocab_gemma3"

    # TextModel.filter_tensors: the vision tower and projector of the multimodal checkpoint
    _DROP_PREFIX = ("mlp", "vit.", "vpm.", "siglip2.", "conformer.", "merger.", "resampler.",
                    "sound_encoder.", "sound_projection.", "speech_embeddings.")
    _DROP_PART = ("visual.", "vision.", "audio.", "talker.", "vision_", "audio_", "token2wav.",
                  "code2wav.", "projector.", "pre_mm_projector_norm", "image_newline",
                  "view_seperator", "patch_embed", "patch_embedding", "patch_merger.",
                  "patch_merge_mlp.", "model.connector.")

    def rename(self, name):
        if name.startswith(self._DROP_PREFIX) or any(p in name for p in self._DROP_PART):
            return None
        return super().rename(name)

    def set_gguf_parameters(self, kv, file_type):
        super().set_gguf_parameters(kv, file_type)
        hp = self.hparams
        kv.add_context_length(hp.get("max_position_embeddings", 131072))
        kv.add_head_count(hp.get("num_attention_heads", 8))
        kv.add_layer_norm_rms_eps(hp.get("rms_norm_eps", 1e-6))
        kv.add_key_length(hp.get("head_dim", 256))
        kv.add_value_length(hp.get("head_dim", 256))
        kv.add_rope_freq_base(self.rope.get("full_attention", self.rope).get("rope_theta", 1_000_000.0))
        if final := hp.get("final_logit_softcapping"):
            kv.add_final_logit_softcapping(final)
        if hp.get("sliding_window_pattern") != 1:
            kv.add_sliding_window(hp["sliding_window"])
        kv.add_head_count_kv(hp.get("num_key_value_heads", 4))

    def transforms(self, name):
        out = super().transforms(name)
        if "embed_tokens.weight" in name:
            out.insert(0, rows_upto(self.real_vocab_size()))
        return out

    def real_vocab_size(self) -> int:
        """Rows of token_embd kept: the tokenizer's real size (OOV rows removed)."""
        if (self.folder / "tokenizer.model").is_file():
            # len(_create_vocab_sentencepiece()[0]): the config's vocab size, else the model's
            n = self.find(["vocab_size_per_layer_input", "vocab_size"], optional=True)
            if n:
                return n
            import sentencepiece

            return sentencepiece.SentencePieceProcessor(model_file=str(self.folder / "tokenizer.model")).vocab_size()
        tj = json.loads((self.folder / "tokenizer.json").read_text(encoding="utf-8"))
        return len(tj["model"]["vocab"]) + len(tj["added_tokens"])
