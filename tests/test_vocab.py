"""quantcli.vocab writes the same ``tokenizer.*`` GGUF keys as llama.cpp's converter.

Two oracles, both the llama.cpp tree vendored in llama-cpp-python 0.3.36 running in the
reference venv (torch + transformers 4.57.6, ``tests/reference.py``):

1. **the converter itself** (``convert_hf_to_gguf.py --vocab-only``) on every fixture of
   ``fixtures/registry.py`` (real SmolLM2 and all-MiniLM-L6-v2 tokenizers, SentencePiece,
   WordPiece, every architecture) and on edge-case folders built here (Llama-HF BPE path, SPM
   vocab padding / truncation, added_tokens.json, added_tokens_decoder, CodeLlama's 32016,
   chat_template.jinja + additional templates, Qwen2 class defaults, Phi-3 rules, ...);
2. **a probe** that imports the same tree's ``conversion`` package in the reference venv,
   builds the real model class for a folder and calls its ``set_vocab()`` -- with one change:
   an unrecognised pre-tokenizer hash yields ``"?<chkhsh>"`` instead of aborting. That lets us
   compare tokenizers llama.cpp does not know (tiny trained BPEs exercising transformers'
   AutoTokenizer behaviour, SpecialVocab post-processor parsing, normalizer flags, legacy
   special_tokens_map.json configs, ...) -- including the hash itself.

Keys are compared in order with their GGUF types and values. Everything is skipped (with
the reason) only when the reference venv is missing.

Known, deliberate differences (not tested for equality):
* ``tokenizer.chat_templates`` (several additional chat templates): the reference writes the
  names in Python ``set`` order, which changes from run to run; quantcli sorts them.
* folders on which the reference crashes: quantcli raises a clear QuantError instead (unknown
  pre-tokenizer hash, LlamaTokenizer + add_prefix_space without tokenizer.model, config
  vocab_size below the tokenizer's ids, Phi-3 ids past vocab_size, ...), except a
  tokenizer_config ``tokenizer_file`` entry naming another path (transformers then fails to
  open it): quantcli reads the folder's tokenizer.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import gguf
from fixtures import _tokenizers as T
from fixtures.registry import FIXTURE_NAMES, ensure_fixture
from quantcli import pretokenizers as P
from quantcli import vocab as V
from quantcli.errors import InputError, UnsupportedError
from quantcli.hparams import load_hparams
from tests.reference import (
    CACHE,
    REF_PYTHON,
    ReferenceUnavailable,
    gguf_dump,
    llama_cpp_source,
    reference_convert,
)

EDGE_ROOT = CACHE / "vocab-edge"

# --------------------------------------------------------------------------- helpers


def _tokenizer_kv(path: Path) -> list[tuple[str, str, Any]]:
    return [x for x in gguf_dump(path).kv if x[0].startswith("tokenizer.")]


def _writer_kv(kv: gguf.GGUFWriter) -> list[tuple[str, str, Any]]:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "kv.gguf"
        kv.write_header_to_file(path=p)
        kv.write_kv_data_to_file()
        kv.close()
        return _tokenizer_kv(p)


def ours(folder: Path, pre: str | None = None, lenient: bool = False,
         fn: Callable | None = None) -> list[tuple[str, str, Any]]:
    """Our tokenizer keys for ``folder`` (set_vocab chosen by config.json architectures)."""
    folder = Path(folder)
    hp = load_hparams(folder)
    arch = json.loads((folder / "config.json").read_text())["architectures"][0]
    fn = fn or V.SET_VOCAB[arch]
    kv = gguf.GGUFWriter(None, "llama")
    if lenient:  # unknown hash -> "?<chkhsh>", as the probe does on the reference side
        orig = V._resolve_pre

        def resolve(tok, override, model):
            h, name = V._hash_and_name(tok)
            return name if name is not None else "?" + h

        V._resolve_pre = resolve
        try:
            fn(kv, folder, hp)
        finally:
            V._resolve_pre = orig
    elif pre is not None:
        fn(kv, folder, hp, pre)
    else:
        fn(kv, folder, hp)
    return _writer_kv(kv)


def reference(folder: Path) -> list[tuple[str, str, Any]]:
    try:
        return _tokenizer_kv(reference_convert(Path(folder), "f16", ("--vocab-only",)))
    except ReferenceUnavailable as e:
        pytest.skip(f"reference converter unavailable: {e}")


def assert_same_kv(a: list, b: list) -> None:
    ak = [k for k, _, _ in a]
    bk = [k for k, _, _ in b]
    assert ak == bk, f"key order differs:\n ours      {ak}\n llama.cpp {bk}"
    for (k, ta, va), (_, tb, vb) in zip(a, b):
        assert ta == tb, f"{k}: type {ta} vs llama.cpp {tb}"
        if isinstance(va, float) or (isinstance(va, list) and va and isinstance(va[0], float)):
            assert np.array_equal(np.float32(va), np.float32(vb)), f"{k}: float values differ"
        elif isinstance(va, list):
            if va != vb:
                diffs = [(i, x, y) for i, (x, y) in enumerate(zip(va, vb)) if x != y][:5]
                pytest.fail(f"{k}: lists differ (len {len(va)} vs {len(vb)}); first differences "
                            f"(index, ours, llama.cpp): {diffs}")
        else:
            assert va == vb, f"{k}: {str(va)[:300]!r} vs llama.cpp {str(vb)[:300]!r}"


def kvdict(kv: list) -> dict[str, Any]:
    return {k: v for k, _, v in kv}


# ------------------------------------------------------------ building edge folders


def _materialize(name: str, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` under .cache/vocab-edge/<name>, touching only changed files (the
    reference cache is keyed by size + mtime) and deleting files no longer wanted."""
    root = EDGE_ROOT / name
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8") if isinstance(content, str) else content
        if not p.is_file() or p.read_bytes() != data:
            p.write_bytes(data)
    for p in sorted(root.rglob("*"), reverse=True):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in files:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()
    return root


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def _read_dir(d: Path) -> dict[str, str | bytes]:
    out: dict[str, str | bytes] = {}
    for p in d.iterdir():
        out[p.name] = p.read_bytes() if p.suffix == ".model" else p.read_text(encoding="utf-8")
    return out


def _from_writer(writer: Callable[[Path], Any], **kw) -> dict[str, str | bytes]:
    with tempfile.TemporaryDirectory() as d:
        writer(Path(d), **kw)
        return _read_dir(Path(d))


def _smollm2_files() -> dict[str, str | bytes]:
    src = T.TOKENIZERS_DIR / "smollm2"
    return {p.name: p.read_text(encoding="utf-8") for p in src.iterdir()}


MODEL_TYPES = {
    "LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "Qwen2MoeForCausalLM": "qwen2_moe",
    "MistralForCausalLM": "mistral", "Gemma3ForCausalLM": "gemma3_text", "Phi3ForCausalLM": "phi3",
    "GPT2LMHeadModel": "gpt2",
    "BertModel": "bert",
}


def _config(arch: str, vocab_size: int, **extra) -> str:
    c: dict[str, Any] = {"architectures": [arch], "model_type": MODEL_TYPES[arch], "vocab_size": vocab_size}
    if arch == "GPT2LMHeadModel":
        c.update(n_ctx=128, n_embd=64, n_head=4, n_layer=2, n_positions=128)
    else:
        c.update(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=2,
                 max_position_embeddings=256)
        if arch != "BertModel":
            c.update(num_key_value_heads=2)
    c.update(extra)
    return _dump(c)


CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Hello world! hello there, world of tokens; 12345 67890 3.14 ...",
    "def main(): return [x * 2 for x in range(10)]  # code",
    "Ünïcödé àccents ñ ß — “quotes” and 'apostrophes' I've you're",
    "\t tabs \n newlines   spaces 🚀 emoji 😁 日本語 中文 русский",
]


def _tiny_bpe(byte_fallback: bool = False, ignore_merges: bool = False, size: int = 340) -> dict:
    """A small byte-level BPE trained here (its pre-tokenizer hash is unknown to llama.cpp)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tok = Tokenizer(models.BPE(byte_fallback=byte_fallback, ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=["<s>", "</s>", "<unk>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    return json.loads(tok.to_str())


def _added(content: str, tid: int | None = None, special: bool = True, normalized: bool = False,
           **kw) -> dict:
    d = {"content": content, "lstrip": False, "normalized": normalized, "rstrip": False, "single_word": False,
         "special": special}
    d.update(kw)
    if tid is not None:
        d = {"id": tid, **d}
    return d


def _decoder_of(tj: dict) -> dict[str, dict]:
    return {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in tj["added_tokens"]}


# --- folders for the full converter (hash known to llama.cpp, or not a BPE path)

def edge_llama_hf() -> dict:
    """No tokenizer.model: Llama BPE tokenizer.json with byte fallback -> _set_vocab_llama_hf.
    Added tokens past the base vocab: plain, special+registered, special but not registered."""
    f = _from_writer(T.write_llama_spm)
    del f["tokenizer.model"]
    tc = json.loads(f["tokenizer_config.json"])
    tc["added_tokens_decoder"].update({"1024": _added("<custom>", special=False),
                                       "1025": _added("<|im_start|>"), "1026": _added("<tool>")})
    tc["additional_special_tokens"] = ["<|im_start|>"]
    f["tokenizer_config.json"] = _dump(tc)
    f["config.json"] = _config("LlamaForCausalLM", 1027, bos_token_id=1, eos_token_id=2)
    return f


def edge_llama_spm_pad() -> dict:
    """SPM with config vocab_size 1040 > 1024 pieces, added_tokens.json, added_tokens_decoder
    (non-special with U+2581, look-special, out of range), add_prefix_space, chat_template.jinja
    plus one additional template."""
    f = _from_writer(T.write_llama_spm)
    tc = json.loads(f["tokenizer_config.json"])
    del tc["chat_template"]
    tc["add_prefix_space"] = False
    tc["added_tokens_decoder"].update({
        "1031": _added("\u2581hello\u2581", special=False), "1032": _added("<|im_start|>", special=False),
        "1033": _added("<unused3>", special=False), "2000": _added("<far>")})
    f["tokenizer_config.json"] = _dump(tc)
    f["added_tokens.json"] = _dump({"<extra>": 1030, "<too_far>": 5000})
    f["chat_template.jinja"] = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}\r\n"
    f["additional_chat_templates/tool_use.jinja"] = "{% for t in tools %}{{ t }}{% endfor %}"
    f["config.json"] = _config("LlamaForCausalLM", 1040, bos_token_id=1, eos_token_id=2, pad_token_id=1035)
    return f


def edge_llama_spm_small() -> dict:
    """SPM with config vocab_size 1000 < 1024 pieces (pieces past it dropped); chat_template
    null in tokenizer_config beats chat_template.jinja; special ids >= n_vocab dropped."""
    f = _from_writer(T.write_llama_spm)
    tc = json.loads(f["tokenizer_config.json"])
    tc["chat_template"] = None
    f["tokenizer_config.json"] = _dump(tc)
    f["chat_template.jinja"] = "{{ 'ignored' }}"
    f["config.json"] = _config("LlamaForCausalLM", 1000, bos_token_id=1, eos_token_id=2, pad_token_id=1010)
    return f


def edge_codellama() -> dict:
    """vocab_size 32016 -> CodeLlama's extra SpecialVocab (prefix/suffix/middle/eot)."""
    f = _from_writer(T.write_llama_spm)
    f["config.json"] = _config("LlamaForCausalLM", 32016, bos_token_id=1, eos_token_id=2)
    return f


def edge_qwen2_smollm() -> dict:
    """SmolLM2's BPE (hash "smollm") as a Qwen2 model with Qwen2Tokenizer class defaults,
    re-flagged and new added tokens (normalized False with a byte-level decode, look-special,
    U+2581), extra/additional special tokens, clean_up_tokenization_spaces and vocab padding."""
    f = _smollm2_files()
    tc = json.loads(f["tokenizer_config.json"])
    for k in ("unk_token", "pad_token", "bos_token", "chat_template"):
        tc.pop(k, None)
    tc["tokenizer_class"] = "Qwen2Tokenizer"
    tc["clean_up_tokenization_spaces"] = True
    dec = tc["added_tokens_decoder"]
    dec["3"]["special"] = False                                      # <repo_name> no longer special
    dec.update({"49152": _added("<|tool|>", special=False),          # looks special -> CONTROL
                "49153": _added("\u0120zzqx", special=False),        # decode -> " zzqx"
                "49156": _added("\u0120world", special=False),       # already a vocab token
                "49154": _added("x \u2581y", special=False, normalized=True),
                "49155": _added("ab ,", special=False)})             # decode + clean-up -> "ab,"
    tc["additional_special_tokens"] = ["<|im_start|>", "<|im_end|>", "zebra_tok"]
    tc["extra_special_tokens"] = {"image_token": "<image>"}
    f["tokenizer_config.json"] = _dump(tc)
    f["chat_template.json"] = _dump({"chat_template": "{{ messages[0]['content'] }}"})
    f["config.json"] = _config("Qwen2ForCausalLM", 49168, bos_token_id=1, eos_token_id=2)
    return f


def edge_phi3_gpt2() -> dict:
    """Phi-3 with tokenizer_class GPT2Tokenizer (Phi-4 style) -> BPE path."""
    f = _smollm2_files()
    f["config.json"] = _config("Phi3ForCausalLM", 49152, bos_token_id=1, eos_token_id=2)
    return f


def edge_phi3_spm() -> dict:
    """Phi-3's own SentencePiece rules: decoder entries kept verbatim (U+2581, no look-special)."""
    f = _from_writer(T.write_phi3_spm)
    tc = json.loads(f["tokenizer_config.json"])
    tc["added_tokens_decoder"]["1040"] = _added("\u2581sp\u2581", special=False)
    tc["added_tokens_decoder"]["1041"] = _added("<|odd|>", special=False)
    f["tokenizer_config.json"] = _dump(tc)
    f["config.json"] = _config("Phi3ForCausalLM", 1088, bos_token_id=1, eos_token_id=1024)
    return f


EDGE_CASES: dict[str, Callable[[], dict]] = {
    "e-llama-hf": edge_llama_hf,
    "e-llama-spm-pad": edge_llama_spm_pad,
    "e-llama-spm-small": edge_llama_spm_small,
    "e-codellama": edge_codellama,
    "e-qwen2-smollm": edge_qwen2_smollm,
    "e-phi3-gpt2": edge_phi3_gpt2,
    "e-phi3-spm": edge_phi3_spm,
}


# --- folders for the probe (hash unknown to llama.cpp)

def probe_bytelevel_generic() -> dict:
    """PreTrainedTokenizerFast + ByteLevel post-processor (add_bos/eos False beat
    tokenizer_config's add_bos_token), re-added and new added tokens, chat_template.json."""
    tj = _tiny_bpe()
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
          "unk_token": "<unk>", "pad_token": "<pad>", "add_bos_token": True,
          "added_tokens_decoder": {**_decoder_of(tj),
                                   "340": _added("<|tool|>", special=False),
                                   "341": _added("\u0120hi", special=False),
                                   "342": _added("\u2581sp", special=False, normalized=True),
                                   "343": _added("<unused7>", special=False)},
          "additional_special_tokens": ["<extra_sp>"]}
    return {"tokenizer.json": _dump(tj), "tokenizer_config.json": _dump(tc),
            "chat_template.json": _dump({"chat_template": "{{ 'x' }}"}),
            "config.json": _config("Qwen2MoeForCausalLM", 360, bos_token_id=0, eos_token_id=1)}


def probe_template_eot() -> dict:
    """TemplateProcessing "<s> $A </s>" whose eos differs from tokenizer_config's (-> eot),
    pair template with a separator, Lowercase+StripAccents normalizer, chat_template.jinja
    with one additional template."""
    from tokenizers import normalizers

    tj = _tiny_bpe()
    tj["normalizer"] = json.loads(normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(),
                                                        normalizers.StripAccents()]).__getstate__())
    tj["post_processor"] = {"type": "TemplateProcessing",
                            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                       {"Sequence": {"id": "A", "type_id": 0}},
                                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                     {"Sequence": {"id": "A", "type_id": 0}},
                                     {"SpecialToken": {"id": "</s>", "type_id": 0}},
                                     {"SpecialToken": {"id": "</s>", "type_id": 1}},
                                     {"Sequence": {"id": "B", "type_id": 1}},
                                     {"SpecialToken": {"id": "</s>", "type_id": 1}}],
                            "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                                               "</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}}
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "<pad>",
          "added_tokens_decoder": _decoder_of(tj), "add_eos_token": False}
    return {"tokenizer.json": _dump(tj), "tokenizer_config.json": _dump(tc),
            "chat_template.jinja": "{{ 'default' }}",
            "additional_chat_templates/rag.jinja": "{{ 'rag' }}",
            "config.json": _config("GPT2LMHeadModel", 340)}


def probe_roberta() -> dict:
    """RobertaProcessing (cls/sep filled in from it), chat_template null beats the jinja file."""
    tj = _tiny_bpe()
    tj["post_processor"] = {"type": "RobertaProcessing", "sep": ["</s>", 1], "cls": ["<s>", 0],
                            "trim_offsets": True, "add_prefix_space": False}
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
          "added_tokens_decoder": _decoder_of(tj), "chat_template": None}
    return {"tokenizer.json": _dump(tj), "tokenizer_config.json": _dump(tc),
            "chat_template.jinja": "{{ 'ignored' }}", "config.json": _config("Qwen2MoeForCausalLM", 340)}


def probe_legacy() -> dict:
    """No added_tokens_decoder: special_tokens_map.json (dicts, additional list),
    added_tokens.json and tokenizer.json added tokens; GPT2Tokenizer's default special token
    "<|endoftext|>" is not in the vocab, so transformers appends it."""
    tj = _tiny_bpe()
    tj["added_tokens"].append(_added("<legacy>", 340, special=False))
    tc = {"tokenizer_class": "GPT2Tokenizer", "model_max_length": 1024}
    stm = {"bos_token": {"content": "<s>", "lstrip": False, "normalized": True, "rstrip": False,
                         "single_word": False},
           "eos_token": "</s>", "pad_token": "<pad>",
           "additional_special_tokens": [{"content": "<extra_a>", "lstrip": False, "normalized": False,
                                          "rstrip": False, "single_word": False}, "<extra_b>"]}
    return {"tokenizer.json": _dump(tj), "tokenizer_config.json": _dump(tc), "special_tokens_map.json": _dump(stm),
            "added_tokens.json": _dump({"<legacy>": 340, "<legacy2>": 341}),
            "config.json": _config("Qwen2MoeForCausalLM", 352, bos_token_id=0, eos_token_id=1)}


def probe_gpt2_prefix() -> dict:
    """Top-level ByteLevel pre-tokenizer with add_prefix_space true: GPT2TokenizerFast resets it
    to tokenizer_config's add_prefix_space (absent -> False); merges as [a, b] pairs."""
    tj = _tiny_bpe()
    tj["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    tj["model"]["merges"] = [m.split(" ") if isinstance(m, str) else m for m in tj["model"]["merges"]]
    tc = {"tokenizer_class": "GPT2Tokenizer", "added_tokens_decoder": _decoder_of(tj),
          "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    return {"tokenizer.json": _dump(tj), "tokenizer_config.json": _dump(tc),
            "config.json": _config("GPT2LMHeadModel", 340)}


def probe_qwen2_defaults() -> dict:
    """Qwen2Tokenizer without special tokens in tokenizer_config: class defaults
    ("<|endoftext|>", not in this vocab -> appended), split_special_tokens."""
    tj = _tiny_bpe()
    tj["added_tokens"].append(_added("\U0001f999", 340))
    tc = {"tokenizer_class": "Qwen2Tokenizer", "added_tokens_decoder": _decoder_of(tj),
          "split_special_tokens": True}
    return {"tokenizer.json": _dump(tj), "tokenizer_config.json": _dump(tc),
            "config.json": _config("Qwen2ForCausalLM", 344)}


def probe_merges_with_spaces() -> dict:
    """Hand-made BPE whose merges contain spaces inside a part (encoded as U+0120)."""
    vocab = {"<unk>": 0, "a": 1, " ": 2, "b": 3, " b": 4, "a b": 5, "c": 6}
    tj = {"version": "1.0", "truncation": None, "padding": None,
          "added_tokens": [_added("<unk>", 0)], "normalizer": None, "pre_tokenizer": None,
          "post_processor": None, "decoder": None,
          "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                    "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                    "vocab": vocab, "merges": [[" ", "b"], ["a", " b"]]}}
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<unk>",
          "added_tokens_decoder": _decoder_of(tj)}
    return {"tokenizer.json": _dump(tj), "tokenizer_config.json": _dump(tc),
            "config.json": _config("Qwen2MoeForCausalLM", 7)}


def probe_llama3_style() -> dict:
    """LlamaForCausalLM, BPE with ignore_merges and no byte fallback: "Llama 3" TypeError ->
    GPT-2 path; no tokenizer_config.json at all (special ids from config.json only)."""
    tj = _tiny_bpe(ignore_merges=True)
    return {"tokenizer.json": _dump(tj), "config.json": _config("LlamaForCausalLM", 340, bos_token_id=0,
                                                                 eos_token_id=1, pad_token_id=3)}


def probe_llama3_template() -> dict:
    """Llama 3.x's tokenizer files (Llama-3.2-1B-Instruct's tokenizer_config fields, no
    add_bos_token, PreTrainedTokenizerFast; tokenizer.json post-processor Sequence[ByteLevel,
    TemplateProcessing "bos $A"]) on SmolLM2's vocabulary: add_bos_token comes from the
    template. (With bos prepended the check string's hash is no known one, so this is a probe.)"""
    f = _from_writer(lambda d: T.write_bpe(
        d, {"bos_token": "<|im_start|>", "chat_template": T.LLAMA3_CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": True, "eos_token": "<|im_end|>",
            "model_input_names": ["input_ids", "attention_mask"], "model_max_length": 131072,
            "tokenizer_class": "PreTrainedTokenizerFast"},
        {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"},
        post_processor=T.llama3_post_processor("<|im_start|>", 1)))
    # vocab_size 49152 would trigger LlamaModel.set_vocab's Granite rule (add_bos_token False)
    f["config.json"] = _config("LlamaForCausalLM", 49280, bos_token_id=1, eos_token_id=[0, 3, 2],
                               tie_word_embeddings=True)
    return f


def probe_llama_hf_nodecoder() -> dict:
    """Llama BPE with byte_fallback but no decoder: TypeError in LlamaHfVocab -> GPT-2 path."""
    tj = _tiny_bpe(byte_fallback=True)
    tj["decoder"] = None
    tc = {"tokenizer_class": "LlamaTokenizer", "added_tokens_decoder": _decoder_of(tj),
          "add_bos_token": False, "add_eos_token": True, "legacy": False}
    return {"tokenizer.json": _dump(tj), "tokenizer_config.json": _dump(tc),
            "config.json": _config("LlamaForCausalLM", 340)}


def probe_gemma_bpe() -> dict:
    """Gemma 3 without tokenizer.model (BPE path): GemmaTokenizerFast rebuilds the
    post-processor from add_bos_token False / add_eos_token True; extra_special_tokens."""
    f = _from_writer(T.write_gemma_spm)
    del f["tokenizer.model"]
    tc = json.loads(f["tokenizer_config.json"])
    tc.update(add_bos_token=False, add_eos_token=True, extra_special_tokens={"image_token": "<image_soft>"})
    f["tokenizer_config.json"] = _dump(tc)
    f["config.json"] = _config("Gemma3ForCausalLM", 1040)
    return f


def probe_bert_rebuild() -> dict:
    """BertTokenizer whose tokenizer_config disagrees with tokenizer.json's normalizer
    (do_lower_case False, strip_accents True): transformers rebuilds the normalizer."""
    f = _from_writer(T.write_bert_uncased)
    tc = json.loads(f["tokenizer_config.json"])
    tc.update(do_lower_case=False, strip_accents=True)
    f["tokenizer_config.json"] = _dump(tc)
    f["config.json"] = _config("BertModel", 30522, pad_token_id=0, type_vocab_size=2)
    return f


def probe_bert_noclass() -> dict:
    """BERT without tokenizer_config.json (class from model_type, no add_* flags, ids from
    config.json) and vocab_size past the vocabulary ([PADn] get the phantom space too)."""
    f = _from_writer(T.write_bert_uncased)
    for k in ("tokenizer_config.json", "special_tokens_map.json"):
        del f[k]
    f["config.json"] = _config("BertModel", 30530, pad_token_id=0)
    return f


def probe_mistral_regex() -> dict:
    """Over 100000 tokens, a Mistral config and tokenizer_config ``fix_mistral_regex``:
    transformers replaces the first pre-tokenizer Split regex (which changes the hash)."""
    from tokenizers import Regex, pre_tokenizers

    tj = _tiny_bpe()
    vocab = tj["model"]["vocab"]
    for i in range(100100 - len(vocab)):
        vocab[f"tok{i}"] = len(vocab)
    tj["pre_tokenizer"] = json.loads(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{L}+|\p{N}|[^\p{L}\p{N}]+"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]).__getstate__())
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "added_tokens_decoder": _decoder_of(tj),
          "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "fix_mistral_regex": True}
    return {"tokenizer.json": json.dumps(tj, ensure_ascii=False), "tokenizer_config.json": _dump(tc),
            "config.json": _config("MistralForCausalLM", 100100, transformers_version="4.57.6")}


def probe_padding_default() -> dict:
    """tokenizer.json with padding (its pad_token is a new token) and truncation: transformers
    makes that pad_token special (LlamaTokenizerFast has no pad_token parameter), and encodes
    without truncating. LlamaTokenizerFast also rebuilds the post-processor (bos only)."""
    tj = _tiny_bpe()
    tj["truncation"] = {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0}
    tj["padding"] = {"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": None,
                     "pad_id": 0, "pad_type_id": 0, "pad_token": "<padx>"}
    tc = {"tokenizer_class": "LlamaTokenizer", "added_tokens_decoder": _decoder_of(tj),
          "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    return {"tokenizer.json": _dump(tj), "tokenizer_config.json": _dump(tc),
            "config.json": _config("Qwen2MoeForCausalLM", 344)}


PROBE_CASES: dict[str, Callable[[], dict]] = {
    "p-bytelevel-generic": probe_bytelevel_generic,
    "p-template-eot": probe_template_eot,
    "p-roberta": probe_roberta,
    "p-legacy": probe_legacy,
    "p-gpt2-prefix": probe_gpt2_prefix,
    "p-qwen2-defaults": probe_qwen2_defaults,
    "p-merges-spaces": probe_merges_with_spaces,
    "p-llama3-style": probe_llama3_style,
    "p-llama3-template": probe_llama3_template,
    "p-llama-hf-nodecoder": probe_llama_hf_nodecoder,
    "p-gemma-bpe": probe_gemma_bpe,
    "p-bert-rebuild": probe_bert_rebuild,
    "p-bert-noclass": probe_bert_noclass,
    "p-mistral-regex": probe_mistral_regex,
    "p-padding-default": probe_padding_default,
}


def edge_folder(name: str) -> Path:
    builder = EDGE_CASES.get(name) or PROBE_CASES[name]
    return _materialize(name, builder())


# ------------------------------------------------------------------------- the probe

PROBE = r'''
import json, logging, os, sys, traceback
from pathlib import Path
tree, out_dir = sys.argv[1], Path(sys.argv[2])
sys.path.insert(0, tree)
sys.path.insert(1, os.path.join(tree, "gguf-py"))
import gguf
from conversion import ModelBase, ModelType, get_model_architecture, get_model_class
from conversion.base import TextModel

state = {}
class Grab(logging.Handler):
    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("chkhsh: "):
            state["chkhsh"] = msg.split()[1]
log = logging.getLogger("hf-to-gguf")
log.setLevel(logging.DEBUG)
log.addHandler(Grab())
log.propagate = False

orig = TextModel.get_vocab_base_pre
def lenient(self, tokenizer):
    try:
        return orig(self, tokenizer)
    except NotImplementedError:
        return "?" + state["chkhsh"]
TextModel.get_vocab_base_pre = lenient

results = {}
for i, folder in enumerate(json.loads(sys.stdin.read())):
    folder = Path(folder)
    try:
        hparams = ModelBase.load_hparams(folder, False)
        arch = get_model_architecture(hparams, ModelType.TEXT)
        m = get_model_class(arch)(folder, gguf.LlamaFileType.MOSTLY_F16, out_dir / f"{i}.gguf")
        m.set_vocab()
        path = out_dir / f"{i}.gguf"
        m.gguf_writer.write_header_to_file(path=path)
        m.gguf_writer.write_kv_data_to_file()
        m.gguf_writer.close()
        results[str(folder)] = {"gguf": str(path)}
    except Exception as e:
        results[str(folder)] = {"error": f"{type(e).__name__}: {e}", "tb": traceback.format_exc()[-2000:]}
print(json.dumps(results))
'''


@pytest.fixture(scope="module")
def probe_results(tmp_path_factory) -> dict[str, dict]:
    if not REF_PYTHON.exists():
        pytest.skip(f"reference venv missing ({REF_PYTHON}); run `make test` to create it")
    try:
        tree = llama_cpp_source()
    except ReferenceUnavailable as e:
        pytest.skip(f"reference converter unavailable: {e}")
    folders = [str(edge_folder(n)) for n in PROBE_CASES]
    out = tmp_path_factory.mktemp("probe")
    env = dict(os.environ, PYTHONPATH="", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    env.pop("NO_LOCAL_GGUF", None)
    r = subprocess.run([str(REF_PYTHON), "-c", PROBE, str(tree), str(out)], input=json.dumps(folders),
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, f"probe failed:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


# ===================================================================== equality tests


# the real-* layouts' tokenizer keys are compared in the whole-file comparison
# (test_convert_reference.py::test_real_layout_same_file_as_llama_cpp)
@pytest.mark.parametrize("name", [n for n in FIXTURE_NAMES if n != "smollm2-bf16" and not n.startswith("real-")])
def test_fixture_tokenizer_keys_match_reference(name):
    folder = ensure_fixture(name)
    assert_same_kv(ours(folder), reference(folder))


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_edge_tokenizer_keys_match_reference(name):
    folder = edge_folder(name)
    assert_same_kv(ours(folder), reference(folder))


@pytest.mark.parametrize("name", list(PROBE_CASES))
def test_probe_tokenizer_keys_match_reference(name, probe_results):
    folder = edge_folder(name)
    res = probe_results[str(folder)]
    assert "error" not in res, f"reference set_vocab failed on {name}: {res.get('tb')}"
    assert_same_kv(ours(folder, lenient=True), _tokenizer_kv(Path(res["gguf"])))


# ============================================== specific properties (on top of equality)


def test_real_pretokenizer_hashes():
    h, name = V.pre_tokenizer(ensure_fixture("smollm2"))
    assert (h, name) == ("855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249", "smollm")
    h, name = V.pre_tokenizer(ensure_fixture("minilm"))
    # bert-bge and jina-v2-en share this hash; the converter's last match wins
    assert (h, name) == ("0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f", "jina-v2-en")


def test_edge_cases_exercise_what_they_claim():
    kv = kvdict(ours(edge_folder("e-llama-spm-pad")))
    toks, types, scores = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"], kv["tokenizer.ggml.scores"]
    assert len(toks) == 1040 and toks[1039] == "[PAD1039]" and types[1039] == 5 and scores[1039] == -10000.0
    assert (toks[1030], types[1030], scores[1030]) == ("<extra>", 4, -1000.0)      # added_tokens.json
    assert (toks[1031], types[1031]) == (" hello ", 4)                             # U+2581 -> space
    assert (toks[1032], types[1032]) == ("<|im_start|>", 3)                        # looks special
    assert (toks[1033], types[1033]) == ("<unused3>", 3)
    assert list(kv)[0] == "tokenizer.ggml.add_space_prefix"                        # before the model
    assert kv["tokenizer.chat_template.tool_use"].startswith("{% for t in tools")
    assert kv["tokenizer.chat_templates"] == ["tool_use"]
    assert kv["tokenizer.ggml.padding_token_id"] == 1035

    kv = kvdict(ours(edge_folder("e-qwen2-smollm")))
    toks, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    assert len(toks) == 49168 and toks[-1] == "[PAD49167]"
    assert (toks[3], types[3]) == ("<repo_name>", 4)            # special flag removed
    assert (toks[49152], types[49152]) == ("<|tool|>", 3)
    assert (toks[49153], types[49153]) == (" zzqx", 4)          # normalized False: decode(encode())
    assert (toks[49154], types[49154]) == ("x  y", 4)           # U+2581 -> space
    assert (toks[49155], types[49155]) == ("ab,", 4)            # clean_up_tokenization_spaces
    assert " world" in toks and "\u0120world" not in toks        # a base token re-added unnormalized
    assert "<image>" in toks and types[toks.index("<image>")] == 3   # extra_special_tokens appended
    assert types[toks.index("zebra_tok")] == 3
    assert kv["tokenizer.ggml.pre"] == "smollm"

    kv = kvdict(ours(edge_folder("e-llama-hf")))
    toks, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    assert toks[-3:] == ["<custom>", "<|im_start|>", "<tool>"] and types[-3:] == [4, 3, 4]
    assert "tokenizer.ggml.scores" in kv and set(kv["tokenizer.ggml.scores"]) == {-1000.0}

    kv = kvdict(ours(edge_folder("e-codellama")))
    assert kv["tokenizer.ggml.eot_token_id"] == 32010


def test_probe_cases_exercise_what_they_claim():
    kv = kvdict(ours(edge_folder("p-bytelevel-generic"), lenient=True))
    assert kv["tokenizer.ggml.add_bos_token"] is False           # ByteLevel beats add_bos_token true
    assert kv["tokenizer.ggml.pre"].startswith("?")
    kv = kvdict(ours(edge_folder("p-template-eot"), lenient=True))
    assert kv["tokenizer.ggml.eot_token_id"] == 3 and kv["tokenizer.ggml.eos_token_id"] == 1
    assert kv["tokenizer.ggml.normalizer.lowercase"] is True
    assert kv["tokenizer.ggml.normalizer.strip_accents"] is True
    assert kv["tokenizer.chat_template.rag"] == "{{ 'rag' }}"
    kv = kvdict(ours(edge_folder("p-llama3-template"), lenient=True))
    assert kv["tokenizer.ggml.add_bos_token"] is True and kv["tokenizer.ggml.bos_token_id"] == 1
    kv = kvdict(ours(edge_folder("p-merges-spaces"), lenient=True))
    assert kv["tokenizer.ggml.merges"] == ["\u0120 b", "a \u0120b"]
    kv = kvdict(ours(edge_folder("p-legacy"), lenient=True))
    assert "<|endoftext|>" in kv["tokenizer.ggml.tokens"]
    kv = kvdict(ours(edge_folder("p-bert-noclass"), lenient=True))
    assert kv["tokenizer.ggml.tokens"][-1] == "\u2581[PAD30529]"


def test_unknown_hash_is_refused_like_the_reference():
    """Gemma 3 without tokenizer.model goes to the BPE path; its hash is unknown: the
    reference converter aborts, we raise UnsupportedError naming the same hash."""
    f = _from_writer(T.write_gemma_spm)
    del f["tokenizer.model"]
    f["config.json"] = _config("Gemma3ForCausalLM", 1024)
    folder = _materialize("e-gemma3-unknown", f)
    with pytest.raises(UnsupportedError) as ei:
        ours(folder)
    msg = str(ei.value)
    h, name = V.pre_tokenizer(folder)
    assert name is None and h in msg and "--vocab-pre" in msg and "refuses it too" in msg
    try:
        reference(folder)
    except AssertionError as e:  # reference_convert raises with the converter's stderr
        assert "BPE pre-tokenizer was not recognized" in str(e)
        assert f"chkhsh:  {h}" in str(e)
    else:
        pytest.fail("the reference converter accepted an unknown pre-tokenizer hash")

    # the override: a valid runtime name is written as tokenizer.ggml.pre
    kv = kvdict(ours(folder, pre="default"))
    assert kv["tokenizer.ggml.pre"] == "default" and kv["tokenizer.ggml.model"] == "gpt2"
    with pytest.raises(UnsupportedError, match="not a pre-tokenizer llama.cpp knows"):
        ours(folder, pre="no-such-pre")


def test_pre_override_names_follow_llama_cpp_runtime():
    assert V.validate_pre_name("smollm") == "smollm"
    assert V.validate_pre_name("jina-v2-en", "bert") == "jina-v2-en"
    with pytest.raises(UnsupportedError):
        V.validate_pre_name("jina-v2-en", "gpt2")  # llama.cpp rejects it for a BPE vocab
    assert {"llama-bpe", "qwen2", "gpt-2", "smollm", "default", "tekken"} <= P.RUNTIME_PRE_NAMES


def test_pretokenizer_table_is_generated_from_the_vendored_source(tmp_path):
    """quantcli/pretokenizers.py holds exactly what its generator extracts from the sdist's
    conversion/base.py and src/llama-vocab.cpp."""
    import tarfile

    try:
        llama_cpp_source()  # downloads the sdist once
    except ReferenceUnavailable as e:
        pytest.skip(f"llama.cpp source unavailable: {e}")
    tarball = next((CACHE / "sdist").glob("llama_cpp_python-0.3.36.tar.gz"), None)
    if tarball is None:
        pytest.skip("llama-cpp-python sdist not in the test cache")
    wanted = ("vendor/llama.cpp/conversion/base.py", "vendor/llama.cpp/src/llama-vocab.cpp")
    with tarfile.open(tarball) as tf:
        for m in tf.getmembers():
            for w in wanted:
                if m.name.endswith("/" + w):
                    data = tf.extractfile(m).read()
                    dest = tmp_path / w.split("vendor/llama.cpp/")[1]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(data)
    chktxt, table, names = P._extract(str(tmp_path))
    assert chktxt == P.CHKTXT
    assert tuple(table) == P.PRE_TOKENIZER_HASHES
    assert frozenset(names) == P.RUNTIME_PRE_NAMES


def test_chktxt_and_table_facts():
    import hashlib

    assert len(P.CHKTXT) == 350
    assert hashlib.sha256(P.CHKTXT.encode()).hexdigest() == \
        "a36179c1e2b1cfcfbfad1dc779addad2ffc778201e4cf0d538bddeafa2c526da"
    assert len(P.PRE_TOKENIZER_HASHES) == 97
    assert P.name_for_hash("b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166") == "olmo"
    assert P.name_for_hash("0" * 64) is None


def test_does_token_look_special():
    for t in ("<pad>", "<mask>", "<2mass>", "[@BOS@]", "<|im_start|>", "<\uff5cbegin\u2581of\u2581sentence\uff5c>",
              "<unused12>", b"<|x|>"):
        assert V.does_token_look_special(t), t
    for t in ("<s>", "hello", "<|x", "unused>", "[PAD]"):
        assert not V.does_token_look_special(t), t


# ================================================================ errors and fallbacks


def _kv():
    return gguf.GGUFWriter(None, "llama")


def test_missing_and_corrupt_tokenizer_files(tmp_path):
    (tmp_path / "config.json").write_text(_config("Qwen2MoeForCausalLM", 100))
    hp = load_hparams(tmp_path)
    with pytest.raises(InputError) as ei:
        V.set_vocab_gpt2(_kv(), tmp_path, hp)
    assert str(tmp_path) in str(ei.value) and "tokenizer.json" in str(ei.value)
    with pytest.raises(FileNotFoundError):
        V.set_vocab_sentencepiece(_kv(), tmp_path, hp)
    with pytest.raises(FileNotFoundError):
        V.set_vocab_llama_hf(_kv(), tmp_path, hp)
    with pytest.raises(InputError, match="tokenizer.model"):
        V.set_vocab_gemma2(_kv(), tmp_path, hp)
    with pytest.raises(InputError, match="tokenizer.model"):
        V.set_vocab_phi3(_kv(), tmp_path, hp)
    with pytest.raises(InputError):  # Llama chain ends in the BPE path, which needs tokenizer.json
        V.set_vocab_llama(_kv(), tmp_path, hp)

    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        V.set_vocab_gpt2(_kv(), tmp_path, hp)
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "Unigram"}}')
    with pytest.raises(InputError, match="cannot be loaded"):
        V.set_vocab_gpt2(_kv(), tmp_path, hp)
    (tmp_path / "tokenizer.model").write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(InputError, match="SentencePiece"):
        V.set_vocab_sentencepiece(_kv(), tmp_path, hp)


def test_llama_hf_raises_what_the_fallback_chain_expects(tmp_path):
    tj = _tiny_bpe(ignore_merges=True)
    (tmp_path / "tokenizer.json").write_text(_dump(tj))
    (tmp_path / "config.json").write_text(_config("LlamaForCausalLM", 340))
    hp = load_hparams(tmp_path)
    with pytest.raises(TypeError):               # "Llama 3" style
        V.set_vocab_llama_hf(_kv(), tmp_path, hp)
    tj = _tiny_bpe()
    (tmp_path / "tokenizer.json").write_text(_dump(tj))
    with pytest.raises(FileNotFoundError):       # not a byte-fallback BPE
        V.set_vocab_llama_hf(_kv(), tmp_path, hp)


def test_vocab_size_smaller_than_tokenizer(tmp_path):
    for name, content in _smollm2_files().items():
        (tmp_path / name).write_text(content)
    (tmp_path / "config.json").write_text(_config("Qwen2MoeForCausalLM", 1000))
    with pytest.raises(InputError, match="vocab_size"):
        V.set_vocab_gpt2(_kv(), tmp_path, load_hparams(tmp_path))


def test_special_vocab_differs_from_pypi_where_the_vendored_one_does():
    """Our SpecialVocab is the vendored behaviour; PyPI gguf's misses the ByteLevel flags."""
    folder = ensure_fixture("qwen3")
    ours_sv = V.SpecialVocab(folder, load_merges=True)
    pypi_sv = gguf.SpecialVocab(folder, load_merges=True)
    assert ours_sv.add_special_token == {"bos": False, "eos": False}
    assert "eos" not in pypi_sv.add_special_token   # PyPI: only tokenizer_config's add_bos_token
    assert ours_sv.merges == pypi_sv.merges
