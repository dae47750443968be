"""Tokenizer -> ``tokenizer.*`` GGUF keys, exactly as llama.cpp's ``convert_hf_to_gguf.py``.

Reference: the llama.cpp tree vendored in llama-cpp-python 0.3.36 (``conversion/base.py``:
``get_vocab_base``, ``get_vocab_base_pre``, ``_set_vocab_gpt2``, ``_set_vocab_sentencepiece``,
``_create_vocab_sentencepiece``, ``_set_vocab_llama_hf``; the ``set_vocab`` methods of
``LlamaModel``, ``Qwen2Model``, ``Gemma2Model``, ``Gemma3Model``, ``Phi3MiniModel``, ``BertModel``;
``gguf-py/gguf/vocab.py``: ``SpecialVocab`` and ``LlamaHfVocab``), run with transformers 4.57.6.

Every function takes ``kv``, a ``gguf.GGUFWriter`` used as an ordered key/value recorder, and
calls its ``add_*`` methods in the converter's order. Where the converter uses
``transformers.AutoTokenizer`` we use :class:`HfTokenizer`, which rebuilds what transformers'
fast tokenizer classes do to the ``tokenizers`` backend on load (see its docstring).

Deliberate differences from the reference -- only where it crashes or is not deterministic
-- are listed in the docstring of ``tests/test_vocab.py``, which proves the rest equal.

Entry points for the model adapters (all ``fn(kv, folder, hparams, pre_override=None)``):
:data:`SET_VOCAB` maps each supported HF architecture to its ``set_vocab`` equivalent.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from string import ascii_letters, digits
from typing import Any, Callable

import gguf
from gguf.vocab import SpecialVocab as _PyPISpecialVocab

from . import pretokenizers
from .errors import InputError, UnsupportedError

logger = logging.getLogger(__name__)

__all__ = [
    "SpecialVocab", "HfTokenizer", "does_token_look_special", "pre_tokenizer", "get_vocab_base",
    "set_vocab_gpt2", "set_vocab_sentencepiece", "create_vocab_sentencepiece", "set_vocab_llama_hf",
    "set_vocab_bert", "set_vocab_phi3", "set_vocab_llama", "set_vocab_qwen2", "set_vocab_gemma2",
    "set_vocab_gemma3", "SET_VOCAB", "validate_pre_name",
]

NORMAL = int(gguf.TokenType.NORMAL)
UNKNOWN = int(gguf.TokenType.UNKNOWN)
CONTROL = int(gguf.TokenType.CONTROL)
USER_DEFINED = int(gguf.TokenType.USER_DEFINED)
UNUSED = int(gguf.TokenType.UNUSED)
BYTE = int(gguf.TokenType.BYTE)

# keys the vendored gguf-py knows but PyPI gguf 0.19.0 does not
KEY_NORMALIZER_LOWERCASE = "tokenizer.ggml.normalizer.lowercase"
KEY_NORMALIZER_STRIP_ACCENTS = "tokenizer.ggml.normalizer.strip_accents"

SPIECE_UNDERLINE = "\u2581"


# --------------------------------------------------------------------------- helpers


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON ({e}); re-download the tokenizer files") from e
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text ({e}); re-download the tokenizer files") from e


def _read_json_if_file(path: Path) -> Any:
    return _read_json(path) if path.is_file() else None


def does_token_look_special(token: str | bytes) -> bool:
    """The converter's heuristic for added tokens that ought to be CONTROL (base.py)."""
    if isinstance(token, (bytes, bytearray)):
        text = bytes(token).decode("utf-8")
    elif isinstance(token, memoryview):
        text = token.tobytes().decode("utf-8")
    else:
        text = token
    if text in ("<pad>", "<mask>", "<2mass>", "[@BOS@]"):
        return True
    if text.startswith("<|") and text.endswith("|>"):
        return True
    if text.startswith("<\uff5c") and text.endswith("\uff5c>"):  # fullwidth bars (deepseek-coder)
        return True
    return text.startswith("<unused") and text.endswith(">")


def validate_pre_name(name: str, tokenizer_model: str = "gpt2") -> str:
    """Check a ``--vocab-pre`` override against the names llama.cpp's runtime accepts."""
    allowed = set(pretokenizers.RUNTIME_PRE_NAMES)
    if tokenizer_model == "bert":  # llama.cpp ignores tokenizer.ggml.pre for WordPiece vocabs
        allowed |= {n for _, n, _ in pretokenizers.PRE_TOKENIZER_HASHES}
    if name not in allowed:
        raise UnsupportedError(
            f"--vocab-pre {name!r} is not a pre-tokenizer llama.cpp knows; choose one of: "
            + ", ".join(sorted(allowed)))
    return name


# ----------------------------------------------------------------------- SpecialVocab


class SpecialVocab(_PyPISpecialVocab):
    """``gguf.SpecialVocab`` with the behaviour of the gguf-py vendored in llama.cpp.

    Differences from PyPI gguf 0.19.0 (vendored gguf-py/gguf/vocab.py is the reference):

    * a ``ByteLevel`` post-processor (or Sequence member) sets add_bos/add_eos to False
      unless already set;
    * ``add_<type>_token`` from tokenizer_config only fills types the post-processor left unset;
    * a ``TemplateProcessing`` leading special token that is neither bos nor cls fills in a
      missing tokenizer_config bos_token/cls_token;
    * the tokenizer.json normalizer gives ``tokenizer.ggml.normalizer.lowercase`` /
      ``.strip_accents`` (written last);
    * a list of chat templates writes ``tokenizer.chat_templates`` in sorted order (the
      reference iterates a Python ``set``, whose order changes from run to run).
    """

    normalizer_lowercase: bool | None
    normalizer_strip_accents: bool | None

    def __init__(self, path, load_merges: bool = False, special_token_types=None, n_vocab: int | None = None):
        self.normalizer_lowercase = None
        self.normalizer_strip_accents = None
        super().__init__(path, load_merges=load_merges, special_token_types=special_token_types, n_vocab=n_vocab)

    # -- output

    def add_to_gguf(self, gw: gguf.GGUFWriter, quiet: bool = True) -> None:
        if self.merges:
            gw.add_token_merges(self.merges)
        elif self.load_merges:
            logger.warning("merges requested but none found: the output may not tokenize correctly")
        for typ, tokid in self.special_token_ids.items():
            handler: Callable[[int], None] | None = getattr(gw, f"add_{typ}_token_id", None)
            if handler is None:
                logger.debug("no GGUF key for special token type %s (id %s): skipped", typ, tokid)
                continue
            handler(tokid)
        for typ, value in self.add_special_token.items():
            add_handler: Callable[[bool], None] | None = getattr(gw, f"add_add_{typ}_token", None)
            if add_handler is None:
                logger.debug("no GGUF key for add_%s_token: skipped", typ)
                continue
            add_handler(value)
        if self.chat_template is not None:
            _add_chat_template(gw, self.chat_template)
        if self.normalizer_lowercase is not None:
            gw.add_bool(KEY_NORMALIZER_LOWERCASE, self.normalizer_lowercase)
        if self.normalizer_strip_accents is not None:
            gw.add_bool(KEY_NORMALIZER_STRIP_ACCENTS, self.normalizer_strip_accents)

    # -- input

    def _parse_normalizer(self, normalizer: dict) -> None:
        kind = normalizer.get("type")
        if kind == "Lowercase":
            self.normalizer_lowercase = True
        elif kind == "StripAccents":
            self.normalizer_strip_accents = True
        elif kind == "BertNormalizer":
            if "lowercase" in normalizer:
                self.normalizer_lowercase = normalizer["lowercase"]
            if "strip_accents" in normalizer:
                self.normalizer_strip_accents = normalizer["strip_accents"]
        elif kind == "Sequence":
            for sub in normalizer.get("normalizers", []):
                self._parse_normalizer(sub)

    @staticmethod
    def _merges_from_json(merges: Any) -> list[str] | None:
        if not (isinstance(merges, list) and merges):
            return None
        first = merges[0]
        if isinstance(first, str):
            return merges
        if isinstance(first, list) and len(first) == 2 and isinstance(first[0], str):
            # [a, b] pairs (tokenizers >= 0.20): a space inside a part is written as U+0120
            return [" ".join("".join(chr(ord(c) + 256) if c == " " else c for c in part) for part in pair)
                    for pair in merges]
        raise InputError("tokenizer.json: unknown format of model.merges")

    def _try_load_from_tokenizer_json(self, path: Path) -> bool:
        tokenizer = _read_json_if_file(path / "tokenizer.json")
        added_tokens: Any = {}
        if tokenizer is not None:
            if self.load_merges:
                m = self._merges_from_json(tokenizer.get("model", {}).get("merges"))
                if m is not None:
                    self.merges = m
            if normalizer := tokenizer.get("normalizer"):
                self._parse_normalizer(normalizer)
            added_tokens = tokenizer.get("added_tokens", {})
        tc = _read_json_if_file(path / "tokenizer_config.json")

        if tokenizer:
            bos = (tc or {}).get("bos_token")
            cls = (tc or {}).get("cls_token")
            eos = (tc or {}).get("eos_token")
            sep = (tc or {}).get("sep_token")
            if not bos and cls and tc:
                tc["bos_token"] = bos = cls
            if not eos and sep and tc:
                tc["eos_token"] = eos = sep
            post = tokenizer.get("post_processor")
            if post:
                for proc in post.get("processors", [post]):
                    kind = proc.get("type")
                    if kind == "ByteLevel":
                        self.add_special_token.setdefault("bos", False)
                        self.add_special_token.setdefault("eos", False)
                    elif kind == "RobertaProcessing":
                        self.add_special_token["bos"] = True
                        self.add_special_token["eos"] = True
                        self.add_special_token["sep"] = True
                        if not cls and tc:
                            cls = proc.get("cls", [bos])[0]
                            tc["cls_token"] = cls
                        if not sep and tc:
                            sep = proc.get("sep", [eos])[0]
                            tc["sep_token"] = sep
                    elif kind == "TemplateProcessing":
                        bos, cls, eos, sep = self._template_processing(proc, tc, bos, cls, eos, sep)

        if not tc:
            return True

        alt: Any = None
        jinja = path / "chat_template.jinja"
        if jinja.is_file():
            alt = jinja.read_text(encoding="utf-8")
            extra = list((path / "additional_chat_templates").glob("*.jinja"))
            if extra:
                alt = [{"name": "default", "template": alt}]
                for p in extra:
                    alt.append({"name": p.stem, "template": p.read_text(encoding="utf-8")})
        elif (path / "chat_template.json").is_file():
            alt = (_read_json(path / "chat_template.json") or {}).get("chat_template")
        template = tc.get("chat_template", alt)
        if template is None or isinstance(template, (str, list)):
            self.chat_template = template
        else:
            logger.warning("tokenizer_config.json: chat_template has an unexpected type: ignored")

        for typ in self.special_token_types:
            add_entry = tc.get(f"add_{typ}_token")
            if isinstance(add_entry, bool) and typ not in self.add_special_token:
                self.add_special_token[typ] = add_entry
            entry = tc.get(f"{typ}_token")
            if isinstance(entry, str):
                content = entry
            elif isinstance(entry, dict) and isinstance(entry.get("content"), str):
                content = entry["content"]
            else:
                continue
            tid = next((t.get("id") for t in added_tokens if t.get("content") == content), None)
            self._set_special_token(typ, tid)
        return True

    def _template_processing(self, proc: dict, tc: dict | None, bos, cls, eos, sep):
        """Crude reading of a TemplateProcessing (as the converter does): which of bos/eos/sep
        the tokenizer adds. Returns the possibly updated (bos, cls, eos, sep)."""
        single = proc.get("single", [])
        pair = proc.get("pair", [])
        first = last = None
        if len(single) > 1:
            first = single[0].get("SpecialToken", {}).get("id")
            if first:
                if not tc:
                    bos = first
                elif first not in (bos, cls):
                    if not bos:
                        tc["bos_token"] = bos = first
                    if not cls:
                        tc["cls_token"] = cls = first
                self.add_special_token["bos"] = first in (bos, cls)
            last = single[-1].get("SpecialToken", {}).get("id")
            if last:
                if not tc:
                    eos = last
                elif last != eos:
                    if "eot" not in self.special_token_types:
                        self.special_token_types = tuple(self.special_token_types) + ("eot",)
                        tc["eot_token"] = eos
                    elif "eom" not in self.special_token_types:
                        self.special_token_types = tuple(self.special_token_types) + ("eom",)
                        tc["eom_token"] = eos
                    tc["eos_token"] = eos = last
                self.add_special_token["eos"] = last == eos
        if pair:
            start = 1 if first and pair[0].get("SpecialToken", {}).get("id") == first else 0
            stop = -1 if last and pair[-1].get("SpecialToken", {}).get("id") == last else None
            pair = pair[slice(start, stop)]
            if pair:
                a = pair[0].get("Sequence", {}).get("id")
                b = pair[-1].get("Sequence", {}).get("id")
                middle = pair[1:-1]
                if a == "A" and b == "B" and middle:
                    add_sep = False
                    entry = middle[0].get("SpecialToken", {}).get("id")
                    if entry and entry in (sep, eos) and not last:
                        add_sep = True
                    if len(middle) == 2:
                        entry = middle[1].get("SpecialToken", {}).get("id")
                        if entry and entry in (sep, eos):
                            add_sep = True
                    self.add_special_token["sep"] = add_sep
                    if add_sep and not sep and tc:
                        tc["sep_token"] = eos
        return bos, cls, eos, sep


def _add_chat_template(gw: gguf.GGUFWriter, value: Any) -> None:
    if isinstance(value, str):
        gw.add_string(gguf.Keys.Tokenizer.CHAT_TEMPLATE, value)
        return
    default = None
    names: list[str] = []
    for choice in value:
        name = "".join(c if c in ascii_letters + digits else "_" for c in choice.get("name", ""))
        template = choice.get("template")
        if name and template is not None:
            if name == "default":
                default = template
            else:
                if name not in names:
                    names.append(name)
                gw.add_string(gguf.Keys.Tokenizer.CHAT_TEMPLATE_N.format(name=name), template)
    if names:
        gw.add_array(gguf.Keys.Tokenizer.CHAT_TEMPLATES, sorted(names))
    if default is not None:
        gw.add_string(gguf.Keys.Tokenizer.CHAT_TEMPLATE, default)


# ---------------------------------------------------------- AutoTokenizer emulation

_SPECIAL_ATTRS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
                  "additional_special_tokens")


class _ClassSpec:
    """What a transformers fast tokenizer class does on top of PreTrainedTokenizerFast."""

    def __init__(self, defaults: dict[str, Any] | None = None, *, added_token_defaults: bool = False,
                 template: bool = False, add_bos: bool = False, add_eos: bool = False,
                 add_prefix_space: Any = False, bert_normalizer: bool = False, from_slow_if_prefix: bool = False,
                 reject_add_bos: bool = False):
        self.defaults = defaults or {}
        self.added_token_defaults = added_token_defaults  # Qwen2: str special tokens become AddedToken(...)
        self.template = template            # rebuilds a TemplateProcessing from add_bos/add_eos_token
        self.add_bos = add_bos
        self.add_eos = add_eos
        self.add_prefix_space = add_prefix_space
        self.bert_normalizer = bert_normalizer
        self.from_slow_if_prefix = from_slow_if_prefix
        self.reject_add_bos = reject_add_bos


_EOT = "<|endoftext|>"
# transformers 4.57.6 fast tokenizer classes (key: class name without "Fast")
_CLASSES: dict[str, _ClassSpec] = {
    "PreTrainedTokenizer": _ClassSpec(),
    "GPT2Tokenizer": _ClassSpec({"unk_token": _EOT, "bos_token": _EOT, "eos_token": _EOT}),
    "CodeGenTokenizer": _ClassSpec({"unk_token": _EOT, "bos_token": _EOT, "eos_token": _EOT}, reject_add_bos=True),
    "Qwen2Tokenizer": _ClassSpec({"unk_token": _EOT, "bos_token": None, "eos_token": _EOT, "pad_token": _EOT},
                                 added_token_defaults=True),
    "GPTNeoXTokenizer": _ClassSpec({"unk_token": _EOT, "bos_token": _EOT, "eos_token": _EOT, "pad_token": None},
                                   template=True),
    "LlamaTokenizer": _ClassSpec({"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}, template=True,
                                 add_bos=True, add_prefix_space=None, from_slow_if_prefix=True),
    "GemmaTokenizer": _ClassSpec({"unk_token": "<unk>", "bos_token": "<bos>", "eos_token": "<eos>",
                                  "pad_token": "<pad>"}, template=True, add_bos=True),
    "BertTokenizer": _ClassSpec({"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                                 "cls_token": "[CLS]", "mask_token": "[MASK]"}, bert_normalizer=True),
}
# model_type -> tokenizer class when tokenizer_config.json names none (TOKENIZER_MAPPING_NAMES)
_MODEL_TYPE_CLASSES = {
    "llama": "LlamaTokenizer", "mistral": "LlamaTokenizer", "mixtral": "LlamaTokenizer", "phi3": "LlamaTokenizer",
    "qwen2": "Qwen2Tokenizer", "qwen3": "Qwen2Tokenizer", "qwen2_moe": "Qwen2Tokenizer",
    "qwen3_moe": "Qwen2Tokenizer", "gemma": "GemmaTokenizer", "gemma2": "GemmaTokenizer",
    "gemma3": "GemmaTokenizer", "gemma3_text": "GemmaTokenizer", "gpt2": "GPT2Tokenizer",
    "bert": "BertTokenizer", "starcoder2": "GPT2Tokenizer", "olmo": "GPTNeoXTokenizer",
    "gpt_neox": "GPTNeoXTokenizer", "phi": "CodeGenTokenizer", "codegen": "CodeGenTokenizer",
}


_MISTRAL_FIXED_REGEX = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?"
    r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+")


def _parse_version(v: str):
    try:
        from packaging.version import Version

        return Version(v)
    except Exception:  # noqa: BLE001 - packaging missing or an odd version string
        return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def _version_le(a: str, b: str) -> bool:
    return _parse_version(a) <= _parse_version(b)


def _clean_up_tokenization(s: str) -> str:
    return (s.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
            .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s")
            .replace(" 've", "'ve").replace(" 're", "'re"))


class HfTokenizer:
    """What ``transformers.AutoTokenizer.from_pretrained(folder)`` (4.57.6, fast classes) gives
    the converter, rebuilt on the ``tokenizers`` library alone.

    Emulated (tokenization_utils_base._from_pretrained, PreTrainedTokenizerFast.__init__ and the
    class constructors): tokenizer class from tokenizer_config ``tokenizer_class`` (else
    config.json ``tokenizer_class``, else its ``model_type``); tokenizer_config
    ``added_tokens_decoder`` (or, without it, special_tokens_map.json / added_tokens.json /
    tokenizer.json added tokens) re-added to the backend with their flags; every special token
    (class defaults, tokenizer_config, ``additional_special_tokens``, ``extra_special_tokens``)
    that is not yet an added token is added as special; the pre-tokenizer's ``add_prefix_space``
    reset; Llama/Gemma/GPT-NeoX post-processor rebuilt from ``add_bos_token``/``add_eos_token``;
    BERT normalizer rebuilt from ``do_lower_case``/``strip_accents``/``tokenize_chinese_chars``;
    ``split_special_tokens``; decode's ``clean_up_tokenization_spaces``.
    """

    def __init__(self, folder: Path):
        from tokenizers import AddedToken, Tokenizer

        folder = Path(folder)
        self.folder = folder
        tj_path = folder / "tokenizer.json"
        if not tj_path.is_file():
            present = sorted(p.name for p in folder.glob("*") if p.name in (
                "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model", "tokenizer_config.json"))
            raise InputError(
                f"{folder}: no tokenizer.json. quantcli reads Hugging Face fast tokenizers from tokenizer.json "
                f"(found: {', '.join(present) or 'no tokenizer files'}); save the tokenizer with a recent "
                f"transformers (AutoTokenizer.from_pretrained(...).save_pretrained(...)) to create it")
        tc = _read_json_if_file(folder / "tokenizer_config.json")
        if tc is not None and not isinstance(tc, dict):
            raise InputError(f"{folder / 'tokenizer_config.json'}: expected a JSON object")
        init: dict[str, Any] = dict(tc or {})
        config = _read_json_if_file(folder / "config.json")
        config = config if isinstance(config, dict) else {}

        # ---- tokenizer class
        cls_name = init.pop("tokenizer_class", None)
        if cls_name is None:
            cls_name = config.get("tokenizer_class") or _MODEL_TYPE_CLASSES.get(config.get("model_type", ""))
        if cls_name is None:
            logger.warning("%s: no tokenizer_class and unknown model_type: using PreTrainedTokenizerFast", folder)
            cls_name = "PreTrainedTokenizerFast"
        key = cls_name[:-4] if cls_name.endswith("Fast") else cls_name
        spec = _CLASSES.get(key)
        if spec is None:
            logger.warning("tokenizer class %s is not emulated specifically; using PreTrainedTokenizerFast's rules "
                           "(class-specific default special tokens, if any, are not added)", cls_name)
            spec = _CLASSES["PreTrainedTokenizer"]
        self.class_name = cls_name
        if "tokenizer_file" in init and init["tokenizer_file"] != str(tj_path):
            logger.debug("tokenizer_config.json tokenizer_file=%r ignored: using %s", init["tokenizer_file"], tj_path)

        # ---- added tokens and special tokens as _from_pretrained prepares them
        added_decoder: dict[int, Any] = {}
        added_map: dict[str, Any] = {}
        if "added_tokens_decoder" in init:
            for idx, tok in (init["added_tokens_decoder"] or {}).items():
                if isinstance(tok, dict):
                    tok = AddedToken(**{k: v for k, v in tok.items() if k != "__type"})
                added_decoder[int(idx)] = tok
                added_map[str(tok)] = tok
        else:
            stm = _read_json_if_file(folder / "special_tokens_map.json")
            for k, value in (stm or {}).items():
                if isinstance(value, dict):
                    value = AddedToken(**{**{a: b for a, b in value.items() if a != "__type"}, "special": True})
                elif k == "additional_special_tokens" and isinstance(value, list):
                    extra = init.pop("additional_special_tokens", []) or []
                    for t in value:
                        if isinstance(t, dict):
                            t = AddedToken(**{**{a: b for a, b in t.items() if a != "__type"}, "special": True})
                        if t not in extra:
                            extra.append(t)
                    value = extra
                init[k] = value
            added_json = _read_json_if_file(folder / "added_tokens.json")
            if added_json:
                specials: list[str] = []
                for k in _SPECIAL_ATTRS:
                    if init.get(k) is not None:
                        if k == "additional_special_tokens":
                            specials += [str(t) for t in init[k]]
                        else:
                            specials.append(str(init[k]))
                for s, idx in added_json.items():
                    sp = s in specials
                    added_decoder[idx] = AddedToken(s, rstrip=False, lstrip=False, normalized=not sp, special=sp)
                    # (transformers also files it in its content -> token map under str() of a stale
                    # loop variable -- the last additional special token, or None; that only matters
                    # when a named special token has exactly that content, which we do not emulate)
            for t in _read_json(tj_path).get("added_tokens", []):
                t = dict(t)
                idx = t.pop("id")
                added_decoder[idx] = AddedToken(**t)
                added_map[str(added_decoder[idx])] = added_decoder[idx]
        init = self._convert_added_tokens(init, AddedToken)
        for k in _SPECIAL_ATTRS:
            if k in init and added_map and init[k] is not None and k != "additional_special_tokens":
                init[k] = added_map.get(str(init[k]), init[k])

        # ---- class constructor defaults
        for k, v in spec.defaults.items():
            init.setdefault(k, v)
        if spec.added_token_defaults:
            for k in ("bos_token", "eos_token", "unk_token", "pad_token"):
                if isinstance(init.get(k), str):
                    init[k] = AddedToken(init[k], lstrip=False, rstrip=False, special=True, normalized=False)
        if spec.template:
            init.setdefault("add_bos_token", spec.add_bos)
            init.setdefault("add_eos_token", spec.add_eos)
        if spec.from_slow_if_prefix and init.get("add_prefix_space") is not None:
            raise UnsupportedError(
                f"{folder}: tokenizer_config.json sets add_prefix_space for {cls_name}, which makes transformers "
                f"rebuild the tokenizer from a SentencePiece tokenizer.model instead of tokenizer.json (llama.cpp's "
                f"converter fails here when there is no tokenizer.model; quantcli does not emulate that "
                f"conversion). Remove add_prefix_space from tokenizer_config.json to use tokenizer.json")
        if spec.reject_add_bos and init.get("add_bos_token"):
            raise UnsupportedError(f"{folder}: {cls_name} with add_bos_token=true is rejected by transformers' fast "
                                   f"tokenizer, so llama.cpp's converter cannot load it either")
        add_prefix_space = init.get("add_prefix_space", spec.add_prefix_space)

        # ---- PreTrainedTokenizerFast.__init__
        try:
            backend = Tokenizer.from_file(str(tj_path))
        except Exception as e:  # noqa: BLE001 - the tokenizers library raises plain Exception
            raise InputError(f"{tj_path}: cannot be loaded by the tokenizers library ({e})") from e
        # transformers keeps tokenizer.json's padding/truncation (its pad_token becomes the default
        # pad_token) but switches both off for every encode() call
        padding = backend.padding
        if padding is not None and "pad_token" not in spec.defaults and "pad_token" not in init:
            init["pad_token"] = padding["pad_token"]
        backend.no_truncation()
        backend.no_padding()
        self._backend = backend

        special_map: dict[str, Any] = {k: None for k in _SPECIAL_ATTRS}
        special_map["additional_special_tokens"] = []
        for k in _SPECIAL_ATTRS:
            v = init.get(k)
            if v is None:
                continue
            if k == "additional_special_tokens":
                if not isinstance(v, (list, tuple)) or not all(isinstance(t, (str, AddedToken)) for t in v):
                    raise InputError(f"{folder}: additional_special_tokens must be a list of strings")
                special_map[k] = list(v)
            elif isinstance(v, (str, AddedToken)):
                special_map[k] = v
            else:
                raise InputError(f"{folder}: special token {k} must be a string, got {v!r}")
        extra_special = init.get("extra_special_tokens", {}) or {}
        if not isinstance(extra_special, dict):
            raise UnsupportedError(
                f"{folder}: tokenizer_config.json extra_special_tokens is a {type(extra_special).__name__}; "
                f"transformers 4.57 (used by llama.cpp's converter) only reads a name -> token mapping")
        for k, v in extra_special.items():
            if not isinstance(v, (str, AddedToken)):
                raise InputError(f"{folder}: extra special token {k} must be a string")
            special_map[k] = v
        self._special_map = special_map

        backend.encode_special_tokens = bool(init.get("split_special_tokens", False))
        self.clean_up_tokenization_spaces = bool(init.get("clean_up_tokenization_spaces", False))

        tokens_to_add = [tok for _, tok in sorted(added_decoder.items(), key=lambda x: x[0])]
        encoder = list(self.get_added_vocab().keys()) + [str(t) for t in tokens_to_add]
        tokens_to_add += [t for t in self.all_special_tokens_extended if t not in encoder and t not in tokens_to_add]
        if tokens_to_add:
            special_strings = self.all_special_tokens
            tokens = []
            for t in tokens_to_add:
                if isinstance(t, AddedToken):
                    t.special = t.special or str(t) in special_strings
                else:
                    t = AddedToken(t, special=str(t) in special_strings)
                tokens.append(t)
            backend.add_tokens(tokens)

        try:
            from tokenizers import pre_tokenizers

            state = json.loads(backend.pre_tokenizer.__getstate__())
            if state.get("add_prefix_space", add_prefix_space) != add_prefix_space:
                klass = getattr(pre_tokenizers, state.pop("type"))
                state["add_prefix_space"] = add_prefix_space
                backend.pre_tokenizer = klass(**state)
        except Exception:  # noqa: BLE001 - transformers swallows every error here too
            pass

        # ---- class-specific constructor tails
        if spec.template:
            self._update_post_processor(bool(init["add_bos_token"]), bool(init["add_eos_token"]))
        if spec.bert_normalizer:
            self._update_bert_normalizer(init.get("do_lower_case", True), init.get("strip_accents", None),
                                         init.get("tokenize_chinese_chars", True))
        if init.get("fix_mistral_regex") and self._mistral_regex_applies(config, folder):
            self._fix_mistral_regex()

    # -- construction helpers

    @staticmethod
    def _convert_added_tokens(obj: Any, AddedToken) -> Any:
        if isinstance(obj, dict) and obj.get("__type") == "AddedToken":
            return AddedToken(**{k: v for k, v in obj.items() if k != "__type"})
        if isinstance(obj, (list, tuple)):
            return [HfTokenizer._convert_added_tokens(o, AddedToken) for o in obj]
        if isinstance(obj, dict):
            return {k: HfTokenizer._convert_added_tokens(v, AddedToken) for k, v in obj.items()}
        return obj

    def _token_id(self, token: str) -> int | None:
        tid = self._backend.token_to_id(token)
        if tid is None:
            unk = self._special_map.get("unk_token")
            tid = self._backend.token_to_id(str(unk)) if unk is not None else None
        return tid

    def _update_post_processor(self, add_bos: bool, add_eos: bool) -> None:
        from tokenizers import processors

        bos = self._special_map.get("bos_token")
        eos = self._special_map.get("eos_token")
        bos = None if bos is None else str(bos)
        eos = None if eos is None else str(eos)
        if bos is None and add_bos:
            raise InputError(f"{self.folder}: add_bos_token is true but there is no bos_token")
        if eos is None and add_eos:
            raise InputError(f"{self.folder}: add_eos_token is true but there is no eos_token")
        single = f"{(bos + ':0 ') if add_bos else ''}$A:0{(' ' + eos + ':0') if add_eos else ''}"
        pair = f"{single}{(' ' + bos + ':1') if add_bos else ''} $B:1{(' ' + eos + ':1') if add_eos else ''}"
        special = []
        if add_bos:
            special.append((bos, self._token_id(bos)))
        if add_eos:
            special.append((eos, self._token_id(eos)))
        self._backend.post_processor = processors.TemplateProcessing(single=single, pair=pair,
                                                                     special_tokens=special)

    def _mistral_regex_applies(self, config: dict, folder: Path) -> bool:
        """transformers' _patch_mistral_regex: only for vocabularies over 100000 tokens with a
        pre-tokenizer and a config.json not written by transformers <= 4.57.2 for a non-Mistral
        model type nor by transformers >= 5 -- and it only patches when tokenizer_config asks
        (``fix_mistral_regex``)."""
        if self.vocab_size <= 100000 or self._backend.pre_tokenizer is None:
            return False
        if not (folder / "config.json").is_file():
            return False
        tv = config.get("transformers_version")
        mt = config.get("model_type")
        if tv and _version_le(tv, "4.57.2"):
            if mt is not None and mt not in ("mistral", "mistral3", "voxtral", "ministral", "pixtral"):
                return False
        elif tv and _parse_version(tv) >= _parse_version("5.0.0"):
            return False
        return True

    def _fix_mistral_regex(self) -> None:
        from tokenizers import Regex, pre_tokenizers

        self._backend.pre_tokenizer[0] = pre_tokenizers.Split(
            pattern=Regex(_MISTRAL_FIXED_REGEX), behavior="isolated")

    def _update_bert_normalizer(self, lower: Any, strip: Any, chinese: Any) -> None:
        from tokenizers import normalizers

        if self._backend.normalizer is None:
            raise UnsupportedError(f"{self.folder}: a BertTokenizer whose tokenizer.json has no normalizer makes "
                                   f"transformers 4.57 (and so llama.cpp's converter) fail")
        state = json.loads(self._backend.normalizer.__getstate__())
        if (state.get("lowercase", lower) != lower or state.get("strip_accents", strip) != strip
                or state.get("handle_chinese_chars", chinese) != chinese):
            klass = getattr(normalizers, state.pop("type"))
            state["lowercase"] = lower
            state["strip_accents"] = strip
            state["handle_chinese_chars"] = chinese
            self._backend.normalizer = klass(**state)

    # -- the transformers API the converter uses

    @property
    def backend(self):
        return self._backend

    @property
    def vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary (without added tokens)."""
        return self._backend.get_vocab_size(with_added_tokens=False)

    @property
    def added_tokens_decoder(self) -> dict[int, Any]:
        return self._backend.get_added_tokens_decoder()

    def get_added_vocab(self) -> dict[str, int]:
        return {t.content: i for i, t in sorted(self.added_tokens_decoder.items(), key=lambda x: x[0])}

    @property
    def all_special_tokens_extended(self) -> list[Any]:
        out: list[Any] = []
        seen: set[str] = set()
        for value in self._special_map.values():
            if not value:
                continue
            vals = list(value) if isinstance(value, (list, tuple)) else [value]
            new = [t for t in vals if str(t) not in seen]
            seen.update(map(str, new))
            out.extend(new)
        return out

    @property
    def all_special_tokens(self) -> list[str]:
        return [str(t) for t in self.all_special_tokens_extended]

    @property
    def all_special_ids(self) -> list[int | None]:
        return [self._token_id(t) for t in self.all_special_tokens]

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int]) -> str:
        text = self._backend.decode(ids, skip_special_tokens=False)
        return _clean_up_tokenization(text) if self.clean_up_tokenization_spaces else text


# ------------------------------------------------------------------- pre-tokenizer


def _hash_and_name(tokenizer: HfTokenizer) -> tuple[str, str | None]:
    chkhsh = pretokenizers.chkhsh_of(tokenizer.encode(pretokenizers.CHKTXT))
    return chkhsh, pretokenizers.name_for_hash(chkhsh)


def pre_tokenizer(folder: Path) -> tuple[str, str | None]:
    """(chkhsh, llama.cpp pre-tokenizer name or None) of the tokenizer in ``folder``."""
    return _hash_and_name(HfTokenizer(Path(folder)))


def _resolve_pre(tokenizer: HfTokenizer, pre_override: str | None, tokenizer_model: str) -> str:
    chkhsh, name = _hash_and_name(tokenizer)
    if pre_override is not None:
        validate_pre_name(pre_override, tokenizer_model)
        if name is not None and name != pre_override:
            logger.warning("--vocab-pre %s overrides the detected pre-tokenizer %s", pre_override, name)
        return pre_override
    if name is None:
        examples = "jina-v2-en, bert-bge" if tokenizer_model == "bert" else "llama-bpe, qwen2, gpt-2, smollm"
        raise UnsupportedError(
            f"the BPE pre-tokenizer of {tokenizer.folder} is not recognized (chkhsh {chkhsh}). llama.cpp's "
            f"converter refuses it too: its table of known tokenizers (convert_hf_to_gguf_update.py) has no entry "
            f"for this hash, so llama.cpp would not know how to split text before BPE. If you know which "
            f"pre-tokenizer the model uses (e.g. it is a fine-tune of a known model with the same tokenizer), "
            f"pass --vocab-pre NAME (e.g. {examples}); otherwise the model has to be added to llama.cpp's "
            f"convert_hf_to_gguf_update.py upstream first.")
    return name


# ----------------------------------------------------------------- BPE / WordPiece


def get_vocab_base(folder: Path, hparams: dict, pre_override: str | None = None,
                   tokenizer_model: str = "gpt2") -> tuple[list[str], list[int], str]:
    """tokens, token types and pre-tokenizer name, as the converter's ``get_vocab_base``."""
    tok = HfTokenizer(Path(folder))
    vocab = tok.vocab
    vocab_size = hparams.get("vocab_size", len(vocab))
    if vocab and max(vocab.values()) >= vocab_size:
        raise InputError(f"{folder}: the tokenizer has token id {max(vocab.values())} but config.json vocab_size "
                         f"is {vocab_size} (llama.cpp's converter stops on this too)")
    tokpre = _resolve_pre(tok, pre_override, tokenizer_model)
    reverse = {i: t for t, i in vocab.items()}
    added_vocab = tok.get_added_vocab()
    added_decoder = tok.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
            continue
        token = reverse[i]
        if token in added_vocab:
            # llama.cpp expects CONTROL / USER_DEFINED tokens pre-normalized
            if not added_decoder[i].normalized:
                token = tok.decode(tok.encode(token, add_special_tokens=False))
            if added_decoder[i].special or does_token_look_special(token):
                types.append(CONTROL)
            else:
                token = token.replace(SPIECE_UNDERLINE, " ")
                types.append(USER_DEFINED)
        else:
            types.append(NORMAL)
        tokens.append(token)
    return tokens, types, tokpre


def set_vocab_gpt2(kv: gguf.GGUFWriter, folder: Path, hparams: dict, pre_override: str | None = None) -> None:
    """``_set_vocab_gpt2``: BPE vocab from tokenizer.json, pre-tokenizer by hash, merges."""
    folder = Path(folder)
    tokens, types, tokpre = get_vocab_base(folder, hparams, pre_override)
    kv.add_tokenizer_model("gpt2")
    kv.add_tokenizer_pre(tokpre)
    kv.add_token_list(tokens)
    kv.add_token_types(types)
    SpecialVocab(folder, load_merges=True).add_to_gguf(kv)


def set_vocab_bert(kv: gguf.GGUFWriter, folder: Path, hparams: dict, pre_override: str | None = None) -> None:
    """``BertModel.set_vocab``: token_type_count first, WordPiece with phantom spaces."""
    folder = Path(folder)
    tokens, types, tokpre = get_vocab_base(folder, hparams, pre_override, tokenizer_model="bert")
    kv.add_token_type_count(hparams.get("type_vocab_size", 1))

    def phantom(tok: str, typ: int) -> str:
        if typ == CONTROL:
            return tok
        if tok.startswith("##"):
            return tok[2:]
        return SPIECE_UNDERLINE + tok

    tokens = [phantom(t, y) for t, y in zip(tokens, types)]
    kv.add_tokenizer_model("bert")
    kv.add_tokenizer_pre(tokpre)
    kv.add_token_list(tokens)
    kv.add_token_types(types)
    SpecialVocab(folder, n_vocab=len(tokens)).add_to_gguf(kv)


# -------------------------------------------------------------------- SentencePiece


def _load_spm(path: Path):
    from sentencepiece import SentencePieceProcessor

    sp = SentencePieceProcessor()
    try:
        sp.LoadFromFile(str(path))
    except (OSError, RuntimeError) as e:
        raise InputError(f"{path} is not a valid SentencePiece model ({e}); re-download it") from e
    return sp


def _spm_type(sp, i: int) -> int:
    if sp.IsUnknown(i):
        return UNKNOWN
    if sp.IsControl(i):
        return CONTROL
    if sp.IsUnused(i):
        return UNUSED
    if sp.IsByte(i):
        return BYTE
    return NORMAL  # (SentencePiece USER_DEFINED pieces too)


def create_vocab_sentencepiece(folder: Path, hparams: dict) -> tuple[list[bytes], list[float], list[int]]:
    """``_create_vocab_sentencepiece``: tokens (bytes), scores, types, padded to config vocab_size."""
    folder = Path(folder)
    path = folder / "tokenizer.model"
    if not path.is_file():
        raise FileNotFoundError(f"File not found: {path}")
    sp = _load_spm(path)
    vocab_size = None
    for k in ("vocab_size_per_layer_input", "vocab_size"):
        if k in hparams:
            vocab_size = hparams[k]
            break
    vocab_size = vocab_size or sp.vocab_size()

    tokens = [f"[PAD{i}]".encode() for i in range(vocab_size)]
    scores = [-10000.0] * vocab_size
    types = [UNUSED] * vocab_size
    for i in range(sp.vocab_size()):
        if i >= vocab_size:
            logger.warning("tokenizer.model has %d pieces but vocab_size is %d: pieces from %d ignored",
                           sp.vocab_size(), vocab_size, i)
            break
        tokens[i] = sp.IdToPiece(i).encode("utf-8")
        scores[i] = sp.GetScore(i)
        types[i] = _spm_type(sp, i)

    added = _read_json_if_file(folder / "added_tokens.json")
    for text, tid in (added or {}).items():
        if tid >= vocab_size:
            logger.warning("added token %r (id %d) is beyond vocab_size %d: ignored", text, tid, vocab_size)
            continue
        tokens[tid] = text.encode("utf-8")
        scores[tid] = -1000.0
        types[tid] = USER_DEFINED

    tc = _read_json_if_file(folder / "tokenizer_config.json")
    for sid, data in ((tc or {}).get("added_tokens_decoder", {}) or {}).items():
        tid = int(sid)
        text: str = data["content"]
        if tid >= vocab_size:
            logger.warning("added token %r (id %d) is beyond vocab_size %d: ignored", text, tid, vocab_size)
            continue
        if data.get("special") or does_token_look_special(text):
            types[tid] = CONTROL
        else:
            text = text.replace(SPIECE_UNDERLINE, " ")
            types[tid] = USER_DEFINED
        scores[tid] = -1000.0
        tokens[tid] = text.encode("utf-8")
    return tokens, scores, types


def set_vocab_sentencepiece(kv: gguf.GGUFWriter, folder: Path, hparams: dict) -> None:
    """``_set_vocab_sentencepiece``; FileNotFoundError when there is no tokenizer.model."""
    folder = Path(folder)
    tokens, scores, types = create_vocab_sentencepiece(folder, hparams)
    kv.add_tokenizer_model("llama")
    kv.add_tokenizer_pre("default")
    kv.add_token_list(tokens)
    kv.add_token_scores(scores)
    kv.add_token_types(types)
    SpecialVocab(folder, n_vocab=len(tokens)).add_to_gguf(kv)


_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def set_vocab_llama_hf(kv: gguf.GGUFWriter, folder: Path, hparams: dict) -> None:
    """``_set_vocab_llama_hf`` (gguf-py LlamaHfVocab): a Llama BPE tokenizer.json with byte
    fallback. Raises FileNotFoundError (no tokenizer.json, or not that kind of tokenizer) and
    TypeError (a Llama-3 style tokenizer, or no decoder) exactly where the converter does, so
    that callers can fall back to :func:`set_vocab_gpt2` like it."""
    folder = Path(folder)
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"File not found: {path}")
    tj = _read_json(path)
    model = tj.get("model")
    if not isinstance(model, dict):
        raise InputError(f"{path}: no 'model' object")
    if model.get("type") == "BPE" and model.get("ignore_merges", False) and not model.get("byte_fallback", True):
        raise TypeError("Llama 3 must be converted with BpeVocab")
    decoder = tj.get("decoder")
    if model.get("type") != "BPE" or not model.get("byte_fallback", False):
        raise FileNotFoundError("Cannot find Llama BPE tokenizer")
    if decoder is None:
        raise TypeError("tokenizer.json has no decoder")
    if decoder.get("type") != "Sequence":
        raise FileNotFoundError("Cannot find Llama BPE tokenizer")

    tok = HfTokenizer(folder)
    base = tok.vocab_size
    vocab = tok.vocab
    added = sorted(tok.get_added_vocab().items(), key=lambda x: x[1])
    added_list = [t for t, i in added if i >= base]
    special_ids = set(tok.all_special_ids)
    specials = {t: vocab[t] for t in tok.all_special_tokens if t in vocab}
    reverse = {i: t for t, i in vocab.items()}

    tokens: list[bytes] = []
    types: list[int] = []
    for i in range(base):
        if i not in reverse:
            raise InputError(f"{path}: no token with id {i} below the base vocabulary size {base}")
        text = reverse[i].encode("utf-8")
        tokens.append(text)
        types.append(BYTE if _BYTE_TOKEN.fullmatch(reverse[i]) else CONTROL if i in special_ids else NORMAL)
    for text in added_list:
        tokens.append(text.encode("utf-8"))
        types.append((CONTROL if specials[text] in special_ids else NORMAL) if text in specials else USER_DEFINED)
    scores = [-1000.0] * len(tokens)

    kv.add_tokenizer_model("llama")
    kv.add_tokenizer_pre("default")
    kv.add_token_list(tokens)
    kv.add_token_scores(scores)
    kv.add_token_types(types)
    SpecialVocab(folder, n_vocab=len(tokens)).add_to_gguf(kv)


# ---------------------------------------------------------------- per-model set_vocab


def _missing_tokenizer(folder: Path, expected: str) -> InputError:
    return InputError(f"{folder}: no usable tokenizer; expected {expected}")


def set_vocab_phi3(kv: gguf.GGUFWriter, folder: Path, hparams: dict, pre_override: str | None = None) -> None:
    """``Phi3MiniModel.set_vocab``: GPT2Tokenizer -> BPE path, else its own SentencePiece rules."""
    folder = Path(folder)
    tc = _read_json_if_file(folder / "tokenizer_config.json")
    if tc is not None:
        if "tokenizer_class" not in tc:
            raise InputError(f"{folder / 'tokenizer_config.json'} has no tokenizer_class "
                             f"(llama.cpp's converter needs it for Phi-3 models too)")
        if tc["tokenizer_class"] == "GPT2Tokenizer":
            set_vocab_gpt2(kv, folder, hparams, pre_override)
            return
    path = folder / "tokenizer.model"
    if not path.is_file():
        raise _missing_tokenizer(folder, "tokenizer.model (SentencePiece) for a Phi-3 model")
    sp = _load_spm(path)
    vocab_size = hparams.get("vocab_size", sp.vocab_size())
    tokens = [f"[PAD{i}]".encode() for i in range(vocab_size)]
    scores = [-10000.0] * vocab_size
    types = [UNUSED] * vocab_size

    def put(tid: int, text: bytes, score: float, typ: int) -> None:
        if not 0 <= tid < vocab_size:
            raise InputError(f"{folder}: token {text!r} has id {tid}, outside vocab_size {vocab_size} "
                             f"(llama.cpp's converter fails on this too)")
        tokens[tid], scores[tid], types[tid] = text, score, typ

    for i in range(sp.vocab_size()):
        put(i, sp.IdToPiece(i).encode("utf-8"), sp.GetScore(i), _spm_type(sp, i))
    for text, tid in (_read_json_if_file(folder / "added_tokens.json") or {}).items():
        if tid >= vocab_size:
            continue
        put(tid, text.encode("utf-8"), -1000.0, USER_DEFINED)
    if tc is not None:
        for sid, data in (tc.get("added_tokens_decoder", {}) or {}).items():
            put(int(sid), data["content"].encode("utf-8"), -1000.0, CONTROL if data.get("special") else USER_DEFINED)
    tj = _read_json_if_file(folder / "tokenizer.json")
    if tj is not None:
        for data in tj.get("added_tokens", []):
            put(int(data["id"]), data["content"].encode("utf-8"), -1000.0,
                CONTROL if data.get("special") else USER_DEFINED)

    kv.add_tokenizer_model("llama")
    kv.add_tokenizer_pre("default")
    kv.add_token_list(tokens)
    kv.add_token_scores(scores)
    kv.add_token_types(types)
    SpecialVocab(folder, n_vocab=len(tokens)).add_to_gguf(kv)


def set_vocab_llama(kv: gguf.GGUFWriter, folder: Path, hparams: dict, pre_override: str | None = None) -> None:
    """``LlamaModel.set_vocab`` (Llama, Mistral, Mixtral): add_space_prefix from tokenizer_config,
    then SentencePiece -> Llama-HF BPE -> GPT-2 BPE, then the CodeLlama (32016) and
    granite (49152: add_bos_token False) tweaks."""
    folder = Path(folder)
    if (folder / "tekken.json").is_file() and not (folder / "tokenizer.json").is_file():
        raise UnsupportedError(f"{folder}: Mistral tekken.json tokenizers are not supported; "
                               f"use a checkpoint with tokenizer.json")
    tc = _read_json_if_file(folder / "tokenizer_config.json")
    if tc is not None:
        if (aps := tc.get("add_prefix_space")) is not None:
            kv.add_add_space_prefix(aps)
        if tc.get("tokenizer_class") == "HybridDNATokenizer":
            raise UnsupportedError(f"{folder}: HybridDNATokenizer is not supported")
    try:
        set_vocab_sentencepiece(kv, folder, hparams)
    except FileNotFoundError:
        try:
            set_vocab_llama_hf(kv, folder, hparams)
        except (FileNotFoundError, TypeError):  # (no tokenizer.json: HfTokenizer raises InputError)
            set_vocab_gpt2(kv, folder, hparams, pre_override)

    if hparams.get("vocab_size", 32000) == 32016:  # CodeLlama
        sv = SpecialVocab(folder, load_merges=False, special_token_types=["prefix", "suffix", "middle", "eot"])
        sv._set_special_token("prefix", 32007)
        sv._set_special_token("suffix", 32008)
        sv._set_special_token("middle", 32009)
        sv._set_special_token("eot", 32010)
        sv.add_to_gguf(kv)
    if hparams.get("vocab_size", 32000) == 49152:  # "granite small models" (also hits SmolLM/SmolLM2)
        kv.add_add_bos_token(False)


def set_vocab_qwen2(kv: gguf.GGUFWriter, folder: Path, hparams: dict, pre_override: str | None = None) -> None:
    """``Qwen2Model.set_vocab`` (Qwen2, Qwen3): SentencePiece if tokenizer.model exists, else BPE."""
    try:
        set_vocab_sentencepiece(kv, folder, hparams)
    except FileNotFoundError:
        set_vocab_gpt2(kv, folder, hparams, pre_override)


def set_vocab_gemma2(kv: gguf.GGUFWriter, folder: Path, hparams: dict, pre_override: str | None = None) -> None:
    """``Gemma2Model.set_vocab``: SentencePiece, then add_space_prefix False."""
    folder = Path(folder)
    try:
        set_vocab_sentencepiece(kv, folder, hparams)
    except FileNotFoundError:
        raise _missing_tokenizer(folder, "tokenizer.model (SentencePiece) for a Gemma 2 model") from None
    kv.add_add_space_prefix(False)


def set_vocab_gemma3(kv: gguf.GGUFWriter, folder: Path, hparams: dict, pre_override: str | None = None) -> None:
    """``Gemma3Model.set_vocab``: SentencePiece + add_space_prefix False, else BPE."""
    folder = Path(folder)
    if (folder / "tokenizer.model").is_file():
        set_vocab_sentencepiece(kv, folder, hparams)
        kv.add_add_space_prefix(False)
    else:
        set_vocab_gpt2(kv, folder, hparams, pre_override)


# HF architecture -> set_vocab function (all take kv, folder, hparams, pre_override=None)
SET_VOCAB: dict[str, Callable[..., None]] = {
    "LlamaForCausalLM": set_vocab_llama,
    "MistralForCausalLM": set_vocab_llama,
    "MixtralForCausalLM": set_vocab_llama,
    "Qwen2ForCausalLM": set_vocab_qwen2,
    "Qwen3ForCausalLM": set_vocab_qwen2,
    "Qwen2MoeForCausalLM": set_vocab_gpt2,
    "Qwen3MoeForCausalLM": set_vocab_gpt2,
    "Gemma2ForCausalLM": set_vocab_gemma2,
    "Gemma3ForCausalLM": set_vocab_gemma3,
    "Gemma3ForConditionalGeneration": set_vocab_gemma3,
    "Phi3ForCausalLM": set_vocab_phi3,
    "GPT2LMHeadModel": set_vocab_gpt2,
    "BertModel": set_vocab_bert,
}
