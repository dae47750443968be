"""Synthetic GGUF models for the recipe oracle tests.

``llama_model_quantize`` only reads a model's hyper-parameters (``load_hparams``: no vocab,
no tensor shape checks), so a model here is: the architecture's mandatory keys, a tiny
tokenizer for realism, and tensors with realistic *names* and realistic row lengths (ne0,
which decides fallbacks) but only one or two rows each, so writing and quantizing take
milliseconds.  3-D expert tensors are (ne0, 1, n_expert).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

# ---------------------------------------------------------------------------------------


@dataclass
class Synth:
    """A model to write: metadata (key, value, GGUFValueType, array sub-type) and tensors
    (name, ggml shape ne0 first, source type)."""

    name: str
    arch: str
    kv: list[tuple[str, object, gguf.GGUFValueType, gguf.GGUFValueType | None]] = field(default_factory=list)
    tensors: list[tuple[str, tuple[int, ...], Q]] = field(default_factory=list)

    def u32(self, key: str, value: int) -> None:
        self.kv.append((key, value, gguf.GGUFValueType.UINT32, None))

    def f32(self, key: str, value: float) -> None:
        self.kv.append((key, value, gguf.GGUFValueType.FLOAT32, None))

    def s(self, key: str, value: str) -> None:
        self.kv.append((key, value, gguf.GGUFValueType.STRING, None))

    def arr(self, key: str, value: list, sub: gguf.GGUFValueType) -> None:
        self.kv.append((key, value, gguf.GGUFValueType.ARRAY, sub))

    def t(self, name: str, *shape: int, dtype: Q = Q.F32) -> None:
        self.tensors.append((name, tuple(shape), dtype))


def ggml_quantize(x: np.ndarray, qtype: Q, imatrix: np.ndarray | None = None) -> np.ndarray:
    """ggml_quantize_chunk of llama-cpp-python's own libggml-base (in the worker process)."""
    from tests import recipe_oracle_worker

    return recipe_oracle_worker.call("ggml_quantize", x, int(qtype), imatrix)


def _tensor_data(rng: np.random.Generator, shape: tuple[int, ...], dtype: Q) -> tuple[np.ndarray, Q | None]:
    np_shape = tuple(reversed(shape))
    x = (rng.standard_normal(np_shape) * 0.05).astype(np.float32)
    if dtype == Q.F32:
        return x, None
    if dtype == Q.F16:
        return x.astype(np.float16), None
    if dtype == Q.I32:
        return rng.integers(0, 7, np_shape, dtype=np.int32), None
    if dtype == Q.BF16:
        return gguf.quants.quantize(x, dtype), dtype
    return ggml_quantize(x, dtype), dtype


def write_model(model: Synth, path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), model.arch)
    for key, value, vtype, sub in model.kv:
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, value, vtype, sub_type=sub)
        else:
            w.add_key_value(key, value, vtype)
    for name, shape, dtype in model.tensors:
        data, raw = _tensor_data(rng, shape, dtype)
        if raw is None:
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# ---------------------------------------------------------------------------------------
# The models
# ---------------------------------------------------------------------------------------


def _tokenizer(m: Synth, n: int = 4) -> None:
    m.s("tokenizer.ggml.model", "llama")
    m.arr("tokenizer.ggml.tokens", [f"<t{i}>" for i in range(n)], gguf.GGUFValueType.STRING)
    m.arr("tokenizer.ggml.scores", [0.0] * n, gguf.GGUFValueType.FLOAT32)
    m.arr("tokenizer.ggml.token_type", [1] * n, gguf.GGUFValueType.INT32)


def _hparams(m: Synth, n_layer: int, d: int, ff: int, nh: int, nkv: int | None, *, rms: bool = True) -> None:
    a = m.arch
    m.u32(f"{a}.context_length", 128)
    m.u32(f"{a}.embedding_length", d)
    m.u32(f"{a}.block_count", n_layer)
    m.u32(f"{a}.feed_forward_length", ff)
    m.u32(f"{a}.attention.head_count", nh)
    if nkv is not None:
        m.u32(f"{a}.attention.head_count_kv", nkv)
    if rms:
        m.f32(f"{a}.attention.layer_norm_rms_epsilon", 1e-5)
    else:
        m.f32(f"{a}.attention.layer_norm_epsilon", 1e-5)


def llama(
    name: str,
    n_layer: int,
    d: int = 256,
    ff: int = 512,
    nh: int = 8,
    nkv: int = 8,
    *,
    tied: bool = False,
    arch: str = "llama",
    rows: int = 2,
) -> Synth:
    m = Synth(name, arch)
    _hparams(m, n_layer, d, ff, nh, nkv)
    m.u32(f"{arch}.rope.dimension_count", d // nh)
    _tokenizer(m)
    m.t("token_embd.weight", d, rows)
    if not tied:
        m.t("output.weight", d, rows)
    m.t("output_norm.weight", d)
    for i in range(n_layer):
        m.t(f"blk.{i}.attn_norm.weight", d)
        m.t(f"blk.{i}.attn_q.weight", d, rows)
        m.t(f"blk.{i}.attn_k.weight", d, rows)
        m.t(f"blk.{i}.attn_v.weight", d, rows)
        m.t(f"blk.{i}.attn_output.weight", d, rows)
        m.t(f"blk.{i}.ffn_norm.weight", d)
        m.t(f"blk.{i}.ffn_gate.weight", d, rows)
        m.t(f"blk.{i}.ffn_up.weight", d, rows)
        m.t(f"blk.{i}.ffn_down.weight", ff, rows)
    return m


def llama_moe(name: str, n_layer: int, n_expert: int, *, split_experts: bool = False, nh: int = 8, nkv: int = 2) -> Synth:
    """Mixtral-style MoE llama: 3-D ffn_*_exps, or (old format) one 2-D tensor per expert."""
    d, ff = 256, 512
    m = Synth(name, "llama")
    _hparams(m, n_layer, d, ff, nh, nkv)
    m.u32("llama.rope.dimension_count", d // nh)
    m.u32("llama.expert_count", n_expert)
    m.u32("llama.expert_used_count", 2)
    _tokenizer(m)
    m.t("token_embd.weight", d, 2)
    m.t("output.weight", d, 2)
    m.t("output_norm.weight", d)
    for i in range(n_layer):
        m.t(f"blk.{i}.attn_norm.weight", d)
        m.t(f"blk.{i}.attn_q.weight", d, 2)
        m.t(f"blk.{i}.attn_k.weight", d, 2)
        m.t(f"blk.{i}.attn_v.weight", d, 2)
        m.t(f"blk.{i}.attn_output.weight", d, 2)
        m.t(f"blk.{i}.ffn_norm.weight", d)
        m.t(f"blk.{i}.ffn_gate_inp.weight", d, n_expert)
        if split_experts:
            for e in range(n_expert):
                m.t(f"blk.{i}.ffn_gate.{e}.weight", d, 2)
                m.t(f"blk.{i}.ffn_up.{e}.weight", d, 2)
                m.t(f"blk.{i}.ffn_down.{e}.weight", ff, 2)
        else:
            m.t(f"blk.{i}.ffn_gate_exps.weight", d, 1, n_expert)
            m.t(f"blk.{i}.ffn_up_exps.weight", d, 1, n_expert)
            m.t(f"blk.{i}.ffn_down_exps.weight", ff, 1, n_expert)
    return m


def qwen2moe(name: str = "qwen2moe", n_layer: int = 8, n_expert: int = 60) -> Synth:
    """Qwen1.5-MoE-like: 60 experts, expert ffn 1408 (not a multiple of 256), shared expert."""
    d, ff_exp, ff_sh = 256, 1408, 5632
    m = Synth(name, "qwen2moe")
    _hparams(m, n_layer, d, ff_sh, 16, 16)
    m.u32("qwen2moe.expert_count", n_expert)
    m.u32("qwen2moe.expert_used_count", 4)
    m.u32("qwen2moe.expert_feed_forward_length", ff_exp)
    m.u32("qwen2moe.expert_shared_feed_forward_length", ff_sh)
    _tokenizer(m)
    m.t("token_embd.weight", d, 2)
    m.t("output.weight", d, 2)
    m.t("output_norm.weight", d)
    for i in range(n_layer):
        m.t(f"blk.{i}.attn_norm.weight", d)
        for p in ("q", "k", "v"):
            m.t(f"blk.{i}.attn_{p}.weight", d, 2)
            m.t(f"blk.{i}.attn_{p}.bias", d)
        m.t(f"blk.{i}.attn_output.weight", d, 2)
        m.t(f"blk.{i}.ffn_norm.weight", d)
        m.t(f"blk.{i}.ffn_gate_inp.weight", d, n_expert)
        m.t(f"blk.{i}.ffn_gate_exps.weight", d, 1, n_expert)
        m.t(f"blk.{i}.ffn_up_exps.weight", d, 1, n_expert)
        m.t(f"blk.{i}.ffn_down_exps.weight", ff_exp, 1, n_expert)
        m.t(f"blk.{i}.ffn_gate_inp_shexp.weight", d)
        m.t(f"blk.{i}.ffn_gate_shexp.weight", d, 2)
        m.t(f"blk.{i}.ffn_up_shexp.weight", d, 2)
        m.t(f"blk.{i}.ffn_down_shexp.weight", ff_sh, 2)
    return m


def bert(name: str = "bert_minilm", n_layer: int = 6, d: int = 384, ff: int = 1536) -> Synth:
    """all-MiniLM-L6-v2-like: hidden 384, no output.weight (so token_embd is 'tied')."""
    m = Synth(name, "bert")
    _hparams(m, n_layer, d, ff, 12, None, rms=False)
    m.u32("bert.pooling_type", 1)
    m.kv.append(("bert.attention.causal", False, gguf.GGUFValueType.BOOL, None))
    _tokenizer(m)
    m.t("token_embd.weight", d, 2)
    m.t("token_types.weight", d, 2)
    m.t("position_embd.weight", d, 4)
    m.t("token_embd_norm.weight", d)
    m.t("token_embd_norm.bias", d)
    for i in range(n_layer):
        for p in ("q", "k", "v"):
            m.t(f"blk.{i}.attn_{p}.weight", d, 2)
            m.t(f"blk.{i}.attn_{p}.bias", d)
        m.t(f"blk.{i}.attn_output.weight", d, 2)
        m.t(f"blk.{i}.attn_output.bias", d)
        m.t(f"blk.{i}.attn_output_norm.weight", d)
        m.t(f"blk.{i}.attn_output_norm.bias", d)
        m.t(f"blk.{i}.ffn_up.weight", d, 2)
        m.t(f"blk.{i}.ffn_up.bias", ff)
        m.t(f"blk.{i}.ffn_down.weight", ff, 2)
        m.t(f"blk.{i}.ffn_down.bias", d)
        m.t(f"blk.{i}.layer_output_norm.weight", d)
        m.t(f"blk.{i}.layer_output_norm.bias", d)
    return m


def gemma3(name: str = "gemma3_270m", n_layer: int = 18, d: int = 640, ff: int = 2048) -> Synth:
    """Gemma-3-270M-like: hidden 640, 4 heads / 1 kv head of 256, tied embeddings."""
    m = Synth(name, "gemma3")
    _hparams(m, n_layer, d, ff, 4, 1)
    m.u32("gemma3.attention.key_length", 256)
    m.u32("gemma3.attention.value_length", 256)
    m.u32("gemma3.attention.sliding_window", 512)
    _tokenizer(m)
    m.t("token_embd.weight", d, 2)
    m.t("output_norm.weight", d)
    for i in range(n_layer):
        m.t(f"blk.{i}.attn_norm.weight", d)
        m.t(f"blk.{i}.attn_q.weight", d, 2)
        m.t(f"blk.{i}.attn_k.weight", d, 2)
        m.t(f"blk.{i}.attn_v.weight", d, 2)
        m.t(f"blk.{i}.attn_q_norm.weight", 256)
        m.t(f"blk.{i}.attn_k_norm.weight", 256)
        m.t(f"blk.{i}.attn_output.weight", 1024, 2)
        m.t(f"blk.{i}.post_attention_norm.weight", d)
        m.t(f"blk.{i}.ffn_norm.weight", d)
        m.t(f"blk.{i}.ffn_gate.weight", d, 2)
        m.t(f"blk.{i}.ffn_up.weight", d, 2)
        m.t(f"blk.{i}.ffn_down.weight", ff, 2)
        m.t(f"blk.{i}.post_ffw_norm.weight", d)
    return m


def falcon(name: str = "falcon", n_layer: int = 32, d: int = 256, ff: int = 1024) -> Synth:
    """Falcon-7B-like: fused attn_qkv, its own rules for output / ffn_down / attn_output."""
    m = Synth(name, "falcon")
    _hparams(m, n_layer, d, ff, 8, 1, rms=False)
    _tokenizer(m)
    m.t("token_embd.weight", d, 2)
    m.t("output.weight", d, 2)
    m.t("output_norm.weight", d)
    m.t("output_norm.bias", d)
    for i in range(n_layer):
        m.t(f"blk.{i}.attn_norm.weight", d)
        m.t(f"blk.{i}.attn_norm.bias", d)
        m.t(f"blk.{i}.attn_qkv.weight", d, 2)
        m.t(f"blk.{i}.attn_output.weight", d, 2)
        m.t(f"blk.{i}.ffn_up.weight", d, 2)
        m.t(f"blk.{i}.ffn_down.weight", ff, 2)
    return m


def kitchen_sink(name: str = "kitchen_sink") -> Synth:
    """A llama with every odd tensor the quantize bool and the sort order care about."""
    m = llama(name, 4, d=256, ff=512)
    for nm, shape in [
        ("rope_freqs.weight", (64,)),
        ("blk.0.attn_q.bias", (256,)),
        ("blk.0.ffn_gate_inp.weight", (256, 4)),
        ("position_embd.weight", (256, 2)),
        ("token_types.weight", (256, 2)),
        ("blk.0.ssm_conv1d.weight", (256, 2)),
        ("blk.0.time_mix_w1.weight", (256, 2)),
        ("blk.0.time_mix_lerp_fused.weight", (256, 2)),
        ("blk.0.attn_rel_b.weight", (256, 2)),
        ("v.patch_embd.weight", (256, 2)),
        ("v.blk.0.attn_q.weight", (256, 2)),
        ("blk.1.altup_proj.weight", (256, 2)),
        ("blk.1.laurel_l.weight", (256, 2)),
        ("per_layer_model_proj.weight", (256, 2)),
        ("blk.1.shortconv.conv.weight", (256, 2)),
        ("blk.0.custom_norm.weight", (256, 2)),
        ("blk.0.flat.weight", (256, 1)),
        ("blk.0.odd48.weight", (48, 2)),
        ("blk.0.odd96.weight", (96, 2)),
        ("blk.0.odd576.weight", (576, 2)),
        ("abcde", (256, 2)),
        ("abcd", (256, 2)),
        ("blk.0.proj.bias2d", (256, 2)),
        ("per_layer_token_embd.weight", (256, 2)),
        ("blk.2.attn_kv_b.weight", (256, 2)),
        ("blk.3.attn_qkv.weight", (256, 2)),
        ("blk.1.attn_v.weight.extra_weight", (256, 2)),
        ("blk.10x.ffn_up.weight", (256, 2)),
        ("blk. 3.space.weight", (256, 2)),
        ("blk.-1.neg.weight", (256, 2)),
        ("blk.+2.plus.weight", (256, 2)),
        ("blkx.2.other.weight", (256, 2)),
        ("zz_last.weight", (256, 2)),
        ("a.rvq.codebook.weight", (256, 2)),
        ("mm.a.code_embd.weight", (256, 2)),
        ("blk.1.indexer.k_proj.weight", (256, 2)),
        ("blk.2.ffn_gate_tid2eid.weight", (256, 2)),
    ]:
        m.t(nm, *shape)
    # source types other than F32 (converted, or copied when the target is the same)
    m.t("blk.0.f16src.weight", 256, 2, dtype=Q.F16)
    m.t("blk.1.bf16src.weight", 256, 2, dtype=Q.BF16)
    m.t("blk.2.f16_1d.weight", 256, dtype=Q.F16)
    return m


def models() -> list[Synth]:
    """The sweep: every recipe is checked against llama.cpp on each of these."""
    return [
        llama("llama16", 16),  # use_more_bits / i < n/8 branches all differ
        llama("llama_gqa4", 12, nh=32, nkv=8),  # n_gqa 4
        llama("llama_gqa2_tied", 22, nh=8, nkv=4, tied=True),  # n_gqa 2, no output.weight
        llama("smollm2_576", 30, d=576, ff=1536, nh=9, nkv=3, tied=True),  # fallbacks
        llama_moe("mixtral8", 8, 8),
        llama_moe("mixtral8_split", 8, 8, split_experts=True),  # layer parsed from names
        llama_moe("moe4", 6, 4, nh=8, nkv=8),
        qwen2moe(),
        bert(),
        gemma3(),
        llama("llama70b", 80, nh=64, nkv=8),  # LLM_TYPE_70B
        llama("llama65b", 80, nh=64, nkv=64),  # 80 layers but no GQA: not 70B
        llama("qwen2_80", 80, arch="qwen2"),  # qwen2 with 80 layers is 70B
        falcon(),
        kitchen_sink(),
    ]


def model_by_name(name: str) -> Synth:
    for m in models():
        if m.name == name:
            return m
    raise KeyError(name)


def layer_count_quirks() -> list[Synth]:
    """Architectures whose n_layer_all is not block_count, and a llama with an MTP layer."""
    nb = llama("nanbeige_loops", 8, arch="nanbeige")  # 8 physical layers run twice: 16
    nb.u32("nanbeige.num_loops", 2)
    gs = llama("graniteswitch", 10, arch="graniteswitch")  # + 1 router layer: 11
    gs.f32("graniteswitch.logit_scale", 1.0)
    gs.u32("graniteswitch.adapters.count", 1)
    gs.u32("graniteswitch.adapters.lora_rank", 8)
    gs.arr("graniteswitch.adapters.token_ids_activate", [1], gguf.GGUFValueType.INT32)
    gs.arr("graniteswitch.adapters.token_ids_substitute", [2], gguf.GGUFValueType.INT32)
    mtp = llama("llama70b_nextn", 81, nh=64, nkv=8)  # n_layer() = 80: a 70B; n_layer_all 81
    mtp.u32("llama.nextn_predict_layers", 1)
    return [nb, gs, mtp]
