"""Generate the big synthetic checkpoint of the end-to-end benchmark: Llama-3-8B tensor shapes.

    python -m benchmarks.make_llama3_shaped [--out DIR] [--layers 2] [--force]

LlamaForCausalLM with Llama-3-8B's shapes (hidden 4096, intermediate 14336, 32 heads, 8 KV
heads, head_dim 128, rope_theta 500000) cut to 2 layers, a 32000-row vocabulary, an untied
lm_head, bfloat16 safetensors (~1.4 GB): 698 M parameters.  The largest tensors are the
embedding and lm_head (32000 x 4096: 262 MB in bf16, 524 MB in float32); next come
gate/up/down (14336 x 4096: 117 MB / 235 MB).

Weights: N(0, 0.02) with 0.5% of the columns of every matrix scaled x20 (outlier columns,
as in benchmarks/engine.py), RMS norm scales 1 + N(0, 0.05); every tensor has its own
PCG64 stream seeded from its name, so the bytes are the same on every machine and run.

Tokenizer: the committed Llama-2-style SentencePiece model (fixtures/tokenizers/llama-spm,
1024 BPE pieces, byte fallback) with config vocab_size 32000.  llama.cpp's converter pads
the vocabulary to vocab_size with [PAD<i>] tokens (and so does quantcli), so the GGUF holds
32000 tokens, as for a real 32k vocabulary, and llama.cpp loads it.  (Training a real 32000
piece SentencePiece model needs far more text than we can ship, and tokenizer contents
cost nothing measurable next to 700 M weights.)

Written with the safetensors library (``safetensors.serialize_file``; dtype "bfloat16",
header dtype "BF16"); numpy has no bfloat16, so the data are uint16 bit patterns rounded
from float32 to nearest even, as torch's ``.to(torch.bfloat16)`` does.  A stamp file
(``.bench.json``) records the recipe: an unchanged recipe is not rebuilt.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / ".cache" / "bench" / "llama3-8b-shaped"
RECIPE_VERSION = 1
STAMP = ".bench.json"


def config(layers: int = 2) -> dict:
    """Llama-3-8B's config.json with 2 layers and vocab 32000."""
    return {
        "_name_or_path": "quantcli/llama3-8b-shaped-bench",
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 128,
        "hidden_act": "silu",
        "hidden_size": 4096,
        "initializer_range": 0.02,
        "intermediate_size": 14336,
        "max_position_embeddings": 8192,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 32,
        "num_hidden_layers": layers,
        "num_key_value_heads": 8,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.57.6",
        "use_cache": True,
        "vocab_size": 32000,
    }


def shapes(c: dict) -> dict[str, tuple[int, ...]]:
    """HF state_dict names and shapes, in state_dict order."""
    h, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = c["head_dim"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    s: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        s[p + "self_attn.q_proj.weight"] = (nh * hd, h)
        s[p + "self_attn.k_proj.weight"] = (nkv * hd, h)
        s[p + "self_attn.v_proj.weight"] = (nkv * hd, h)
        s[p + "self_attn.o_proj.weight"] = (h, nh * hd)
        s[p + "mlp.gate_proj.weight"] = (f, h)
        s[p + "mlp.up_proj.weight"] = (f, h)
        s[p + "mlp.down_proj.weight"] = (h, f)
        s[p + "input_layernorm.weight"] = (h,)
        s[p + "post_attention_layernorm.weight"] = (h,)
    s["model.norm.weight"] = (h,)
    s["lm_head.weight"] = (v, h)
    return s


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even (no NaNs here)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    u += np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))  # in place: x is ours
    return (u >> np.uint32(16)).astype(np.uint16)


def tensor(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor's bf16 bits, from a PCG64 stream seeded by its name."""
    rng = np.random.Generator(np.random.PCG64(zlib.crc32(name.encode())))
    if len(shape) == 1:  # RMS norm scale
        x = np.float32(1.0) + rng.standard_normal(shape, dtype=np.float32) * np.float32(0.05)
        return bf16_bits(x)
    rows, cols = shape
    x = rng.standard_normal(shape, dtype=np.float32)
    x *= np.float32(0.02)
    outliers = np.sort(rng.choice(cols, max(1, cols // 200), replace=False))
    x[:, outliers] *= np.float32(20.0)
    return bf16_bits(x)


def _write_tokenizer(dst: Path) -> None:
    from fixtures import _tokenizers as T

    T.write_llama_spm(dst, model_max_length=8192)


def recipe(layers: int) -> dict:
    import hashlib

    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update((ROOT / "fixtures" / "tokenizers" / "llama-spm" / "tokenizer.model").read_bytes())
    return {"version": RECIPE_VERSION, "layers": layers, "config": config(layers), "inputs": h.hexdigest()[:16]}


def build(out: Path = DEFAULT_OUT, layers: int = 2, force: bool = False, verbose: bool = True) -> Path:
    """Build the checkpoint into ``out`` unless an identical one is there; returns ``out``."""
    from safetensors import TensorSpec, serialize_file

    out = Path(out)
    want = recipe(layers)
    stamp = out / STAMP
    if not force and stamp.is_file():
        try:
            if json.loads(stamp.read_text()) == want:
                return out
        except ValueError:
            pass
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    t0 = time.perf_counter()
    c = config(layers)
    arrays: dict[str, np.ndarray] = {}
    for name, shape in shapes(c).items():
        arrays[name] = tensor(name, shape)
    specs = {
        name: TensorSpec(dtype="bfloat16", shape=list(a.shape), data_ptr=a.ctypes.data, data_len=a.nbytes)
        for name, a in arrays.items()
    }
    serialize_file(specs, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    del specs, arrays
    (tmp / "config.json").write_text(json.dumps(c, indent=2) + "\n")
    (tmp / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 1, "eos_token_id": 2, "transformers_version": "4.57.6"}, indent=2) + "\n"
    )
    _write_tokenizer(tmp)
    (tmp / STAMP).write_text(json.dumps(want, indent=1, sort_keys=True) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    if verbose:
        size = (out / "model.safetensors").stat().st_size
        print(f"wrote {out} ({size / 1e9:.2f} GB) in {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def largest_tensor(folder: Path) -> dict:
    """Name, shape and bytes (as stored, and as float32) of the checkpoint's largest tensor."""
    import struct

    best = None
    for f in sorted(Path(folder).glob("*.safetensors")):
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        header.pop("__metadata__", None)
        for name, info in header.items():
            b, e = info["data_offsets"]
            if best is None or e - b > best["stored_bytes"]:
                elems = int(np.prod(info["shape"]))
                best = {"name": name, "shape": info["shape"], "dtype": info["dtype"],
                        "stored_bytes": e - b, "f32_bytes": 4 * elems}
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args(argv)
    p = build(a.out, a.layers, a.force)
    print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
