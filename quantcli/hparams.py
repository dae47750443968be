"""Model hyperparameters as llama.cpp's converter sees them, without transformers.

convert_hf_to_gguf.py reads ``AutoConfig.from_pretrained(dir).to_dict()``, not config.json:
class defaults and derived fields (Llama's head_dim, Mistral's 8 KV heads, Gemma 3's
rope_local_base_freq, ...) become GGUF keys even when config.json lacks them.  The tables
below are the transformers 4.57.6 defaults of exactly the fields the converter reads (a
test compares our result with AutoConfig on every fixture).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import InputError

_LABELS = {"0": "LABEL_0", "1": "LABEL_1"}

TRANSFORMERS_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": dict(vocab_size=32000, max_position_embeddings=2048, hidden_size=4096,
                  intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=None, head_dim=None, rms_norm_eps=1e-6,
                  rope_theta=10000.0, rope_scaling=None),
    "mistral": dict(vocab_size=32000, max_position_embeddings=131072, hidden_size=4096,
                    intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                    num_key_value_heads=8, head_dim=None, rms_norm_eps=1e-6,
                    rope_theta=10000.0, sliding_window=4096),
    "mixtral": dict(vocab_size=32000, max_position_embeddings=131072, hidden_size=4096,
                    intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                    num_key_value_heads=8, head_dim=None, rms_norm_eps=1e-5,
                    rope_theta=1e6, sliding_window=None, num_experts_per_tok=2,
                    num_local_experts=8),
    "qwen2": dict(vocab_size=151936, max_position_embeddings=32768, hidden_size=4096,
                  intermediate_size=22016, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=32, rms_norm_eps=1e-6, rope_theta=10000.0,
                  rope_scaling=None, sliding_window=None, use_sliding_window=False),
    "qwen3": dict(vocab_size=151936, max_position_embeddings=32768, hidden_size=4096,
                  intermediate_size=22016, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=32, head_dim=128, rms_norm_eps=1e-6,
                  rope_theta=10000.0, rope_scaling=None, sliding_window=None,
                  use_sliding_window=False),
    "qwen2_moe": dict(vocab_size=151936, max_position_embeddings=32768, hidden_size=2048,
                      intermediate_size=5632, num_hidden_layers=24, num_attention_heads=16,
                      num_key_value_heads=16, rms_norm_eps=1e-6, rope_theta=10000.0,
                      rope_scaling=None, moe_intermediate_size=1408,
                      shared_expert_intermediate_size=5632, num_experts_per_tok=4,
                      num_experts=60, sliding_window=None, use_sliding_window=False),
    "qwen3_moe": dict(vocab_size=151936, max_position_embeddings=32768, hidden_size=2048,
                      intermediate_size=6144, num_hidden_layers=24, num_attention_heads=32,
                      num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=10000.0,
                      rope_scaling=None, moe_intermediate_size=768, num_experts_per_tok=8,
                      num_experts=128, sliding_window=None, use_sliding_window=False),
    "gemma2": dict(vocab_size=256000, max_position_embeddings=8192, hidden_size=2304,
                   intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8,
                   head_dim=256, num_key_value_heads=4, rms_norm_eps=1e-6,
                   rope_theta=10000.0, query_pre_attn_scalar=256, sliding_window=4096,
                   final_logit_softcapping=30.0, attn_logit_softcapping=50.0),
    "gemma3_text": dict(vocab_size=262208, max_position_embeddings=131072, hidden_size=2304,
                        intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8,
                        head_dim=256, num_key_value_heads=4, rms_norm_eps=1e-6,
                        rope_theta=1e6, query_pre_attn_scalar=256, sliding_window=4096,
                        final_logit_softcapping=None, attn_logit_softcapping=None,
                        rope_local_base_freq=10000.0, rope_scaling=None),
    "phi3": dict(vocab_size=32064, hidden_size=3072, intermediate_size=8192,
                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=None,
                 max_position_embeddings=4096, original_max_position_embeddings=4096,
                 rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=None,
                 partial_rotary_factor=1.0, sliding_window=None),
    "gpt2": dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                 n_inner=None, layer_norm_epsilon=1e-5),
    "bert": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512,
                 type_vocab_size=2, layer_norm_eps=1e-12),
}
TRANSFORMERS_DEFAULTS["gemma3"] = {}  # the composite config: everything is in text_config

# model types whose None num_key_value_heads becomes num_attention_heads in __init__
_KV_FROM_HEADS = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "phi3"}
# model types that add "rope_type" to a legacy {"type": ...} rope_scaling dict
_ROPE_TYPE_COPY = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe",
                   "gemma2", "gemma3_text"}


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def config_like_transformers(config: dict) -> dict:
    """config.json -> what ``AutoConfig.from_pretrained(dir).to_dict()`` holds."""
    model_type = config.get("model_type")
    d = dict(TRANSFORMERS_DEFAULTS.get(model_type, {}))
    d.update(config)
    d.setdefault("id2label", dict(_LABELS))
    if model_type in _KV_FROM_HEADS and d.get("num_key_value_heads") is None:
        d["num_key_value_heads"] = d.get("num_attention_heads")
    if model_type in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe") and not d.get("use_sliding_window"):
        d["sliding_window"] = None  # Qwen2Config: sliding_window only when use_sliding_window
    if model_type == "llama" and d.get("head_dim") is None:
        d["head_dim"] = d["hidden_size"] // d["num_attention_heads"]
    rs = d.get("rope_scaling")
    if model_type in _ROPE_TYPE_COPY and isinstance(rs, dict) and "type" in rs and "rope_type" not in rs:
        d["rope_scaling"] = {**rs, "rope_type": rs["type"]}
    tc = d.get("text_config")
    if isinstance(tc, dict):
        tmt = tc.get("model_type") or {"gemma3": "gemma3_text"}.get(model_type, model_type)
        d["text_config"] = config_like_transformers({**tc, "model_type": tmt})
    return d


def load_hparams(folder: Path) -> dict:
    """The converter's ``self.hparams`` for a model folder (text_config merged over the root)."""
    path = Path(folder) / "config.json"
    try:
        config = read_json(path)
    except FileNotFoundError:
        raise InputError(
            f"{folder}: no config.json; a Hugging Face model folder needs config.json next to "
            "its *.safetensors weights (download the whole repository, not only the weights)"
        ) from None
    hp = config_like_transformers(config)
    if isinstance(hp.get("text_config"), dict):
        hp = {**hp, **hp["text_config"]}
    return hp


def find_hparam(hp: dict, keys: list[str], optional: bool = False) -> Any:
    """First key present (even if its value is None), as ModelBase.find_hparam."""
    for k in keys:
        if k in hp:
            return hp[k]
    if optional:
        return None
    raise InputError(f"config.json has none of the keys {keys}")


def rope_parameters(hp: dict) -> dict:
    """TextModel.__init__'s normalised rope parameters (base.py:1359-1377)."""
    rp = dict(hp.get("rope_parameters", hp.get("rope_scaling")) or {})
    theta = find_hparam(hp, ["global_rope_theta", "rope_global_theta", "rope_theta_global",
                             "rope_theta", "rotary_emb_base"], optional=True)
    local_theta = find_hparam(hp, ["local_rope_theta", "rope_local_theta", "rope_theta_local",
                                   "swa_rope_theta", "rope_local_base_freq"], optional=True)
    partial = find_hparam(hp, ["partial_rotary_factor", "rope_pct", "rope_percent"], optional=True)
    orig = find_hparam(hp, ["original_max_position_embeddings"], optional=True)
    if "full_attention" not in rp and "sliding_attention" not in rp:
        if local_theta is not None:
            rp["sliding_attention"] = {"rope_theta": local_theta}
        if "rope_theta" not in rp and theta is not None:
            rp["rope_theta"] = theta
        if "rope_type" not in rp and rp.get("type") is not None:
            rp["rope_type"] = rp["type"]
        if "partial_rotary_factor" not in rp and partial is not None:
            rp["partial_rotary_factor"] = partial
        if "original_max_position_embeddings" not in rp and orig is not None:
            rp["original_max_position_embeddings"] = orig
    return rp
