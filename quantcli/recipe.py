"""Per-tensor type choice: llama.cpp's quantization mixes ("recipes"), ported to Python.

This module answers one question, exactly as ``llama-quantize`` answers it: *given a model's
tensors, its hyper-parameters and a recipe such as Q4_K_M, which GGML type does each tensor
get, and in which order are the tensors written?*  It does not read or write tensor data.

Reference: llama.cpp commit 0c1e57098 (the source vendored by llama-cpp-python 0.3.36):
``src/llama-quant.cpp`` (``llama_tensor_get_type``, ``llama_tensor_get_type_impl``,
``tensor_allows_quantization``, ``tensor_type_fallback``, ``tensor_requires_imatrix``,
``init_quantize_state_counters``, ``llama_model_quantize_impl``), ``tools/quantize/quantize.cpp``
(``QUANT_OPTIONS``, ``try_parse_ftype``, ``parse_ggml_type``, ``parse_tensor_type``) and
``src/llama-model-loader.h`` (``weight_name_comparer``).  Functions here keep the C++ names in
comments so the two can be read side by side.  ``tests/test_recipe_oracle.py`` runs
``llama_model_quantize`` itself on synthetic models and checks every answer given here.

Public API
----------
``RECIPES``                 canonical name -> `Recipe` (every llama-quantize option; only
                            ``Recipe.supported`` ones can be produced by quantcli's engine)
``resolve_recipe(name)``    case-insensitive lookup with aliases and ftype numbers
``ModelInfo``               the hyper-parameters the rules read (``ModelInfo.from_kv``)
``TensorInfo``              one tensor: GGUF name, shape (ne0 first), source type
``Options``                 llama_model_quantize_params, plus our ``no_fallback``
``plan(tensors, model, recipe, options) -> list[Choice]``   in llama.cpp's output order
``output_order(names)``     llama.cpp's tensor order
``parse_ggml_type``, ``parse_tensor_type``, ``parse_kv_override``
                            llama-quantize's argument parsers (--output-tensor-type,
                            --tensor-type, --override-kv)
``quantized_kv(...)``       the key/value pairs of the quantized file, in order
``guess_file_type``         the input's file type (only for COPY)

Where llama.cpp *crashes* instead of failing cleanly, `plan` raises `PlanError`: when
--output-tensor-type / --token-embedding-type (which skip the fallback) give a tensor a
type whose block does not divide its rows (row validation error or GGML_ASSERT abort,
depending on sizes), or give IQ2_XXS / IQ2_XS / IQ1_S to a tensor without an importance
vector (GGML_ASSERT).

Key/value pairs of the quantized file (``llama_model_quantize_impl``)
---------------------------------------------------------------------
1. Every KV pair of the input, in input order, with its type unchanged (``gguf_set_kv``).
2. ``general.quantization_version`` (UINT32, 2 = ``GGML_QNT_VERSION``) and then
   ``general.file_type`` (UINT32, the recipe's llama_ftype) are *removed if present and
   appended at the end* (``gguf_set_val_u32`` = remove + append), so a converter's early
   ``general.file_type`` moves behind everything else.
3. ``split.no``, ``split.count``, ``split.tensors.count`` are removed.
4. KV overrides, in order, each again remove + append: a float becomes FLOAT32, an int
   becomes UINT32 holding ``abs(value)``, a bool BOOL, a string STRING.  ``llama-quantize``
   puts the user's ``--override-kv`` ones first, then, when an imatrix is in use (at least
   one entry left after --include/--exclude-weights):
   ``quantize.imatrix.file`` (STRING, the --imatrix argument as typed, cut to 127 bytes),
   ``quantize.imatrix.dataset`` (STRING, first dataset, cut to 127 bytes; only if the file
   names one), ``quantize.imatrix.entries_count`` (UINT32, entries after filtering),
   ``quantize.imatrix.chunks_count`` (UINT32, only if > 0).  See
   `quantcli.imatrix.ImatrixData.kv_overrides`.
`quantized_kv` reproduces 1-4.  Tensor infos follow in `plan` order; the data section is
aligned to 32 bytes (GGUF_DEFAULT_ALIGNMENT), each tensor padded with zeros to 32.  Caveat:
llama.cpp pads with 32 even if the input carries a different ``general.alignment`` (which
is copied), so such inputs give a file whose header claims another alignment.

Tensors: which are quantized, how they are written
--------------------------------------------------
``tensor_allows_quantization``: at least 2 dimensions *after dropping trailing 1s* (a
[576, 1] tensor is 1-D), a name ending in "weight" (by a size_t wrap-around in llama.cpp,
any 5-character name passes too), and none of: ``_norm.weight``, ``ffn_gate_inp.weight``,
``position_embd.weight``, ``token_types.weight``, ``ssm_conv1d``, RWKV ``time_mix_*``,
``attn_rel_b.weight``, altup/laurel, vision/audio pieces (see `_allows_quantization`),
``output.weight`` under --leave-output-tensor.  The rest keep their input type.  Every
tensor is written with ``ggml_n_dims`` dimensions, so shapes lose trailing 1s
(`Choice.shape`).  Tensors whose type does not change are copied byte for byte.

What is not ported: ``prune_layers`` (layer pruning and its imatrix remap), ``keep_split``
and ``dry_run`` (no effect on types).  ``--tensor-type`` patterns are ECMAScript regexes in
llama.cpp (``std::regex``) and Python ``re`` patterns here; they agree on ordinary patterns
(literals, ``.``, ``*``, ``+``, ``?``, classes, ``\\d``, anchors, groups, alternation).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Sized

from gguf import GGML_QUANT_SIZES, GGUFValueType, LlamaFileType
from gguf import GGMLQuantizationType as Q

__all__ = [
    "Recipe",
    "RECIPES",
    "SUPPORTED_RECIPES",
    "resolve_recipe",
    "RecipeError",
    "PlanError",
    "FallbackError",
    "ModelInfo",
    "TensorInfo",
    "Options",
    "Choice",
    "plan",
    "output_order",
    "layer_of",
    "tensor_category",
    "parse_ggml_type",
    "parse_tensor_type",
    "parse_kv_override",
    "KV",
    "quantized_kv",
    "guess_file_type",
    "GGML_QNT_VERSION",
]

GGML_QNT_VERSION = 2

# Values gguf 0.19.0 does not name (llama.cpp has them; only used by out-of-scope rules).
_GGML_TYPE_Q2_0 = 42  # ggml.h GGML_TYPE_Q2_0 (block 64)
_LLAMA_FTYPE_MOSTLY_Q2_0 = 41  # llama.h LLAMA_FTYPE_MOSTLY_Q2_0
_LLAMA_FTYPE_GUESSED = 1024

_NOT_QUANTIZED = frozenset({Q.F32, Q.F16, Q.BF16, Q.F64, Q.I8, Q.I16, Q.I32, Q.I64})


class RecipeError(ValueError):
    """Unknown recipe / type name, or a malformed --tensor-type argument."""


class PlanError(RuntimeError):
    """A model llama_model_quantize would refuse (the message follows llama.cpp's)."""


class FallbackError(PlanError):
    """``Options.no_fallback``: a tensor's row does not divide into its type's blocks."""


def _blck_size(t: int) -> int:
    """ggml_blck_size."""
    if t == _GGML_TYPE_Q2_0:
        return 64
    return GGML_QUANT_SIZES[Q(t)][0]


def _is_quantized(t: int) -> bool:
    """ggml_is_quantized."""
    return t == _GGML_TYPE_Q2_0 or Q(t) not in _NOT_QUANTIZED


def _tname(t: int) -> str:
    return "Q2_0" if t == _GGML_TYPE_Q2_0 else Q(t).name


def _ggml_type_name(t: int) -> str:
    """``ggml_type_name`` ("q4_K", "iq2_xxs", "bf16"): used in llama.cpp's messages."""
    name = _tname(t).lower()
    return name[:-2] + "_K" if name.endswith("_k") else name


# ---------------------------------------------------------------------------------------
# Recipes: tools/quantize/quantize.cpp QUANT_OPTIONS + llama_ftype_get_default_type
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """One llama-quantize file type ("mix").

    name:           canonical name, as llama-quantize spells it (``QUANT_OPTIONS``)
    ftype:          the llama_ftype, written to ``general.file_type``
    default_type:   ``llama_ftype_get_default_type(ftype)``: the type of every tensor no
                    rule moves elsewhere
    description:    llama-quantize's one-line description
    aliases:        other names llama-quantize accepts for it (besides the ftype number)
    requires_imatrix: llama-quantize refuses the recipe without an importance matrix on an
                    ordinary model (some tensor gets a type in ``tensor_requires_imatrix``);
                    `plan` gives the exact per-tensor answer
    supported:      quantcli's engine implements every type this mix can choose
    only_copy:      the COPY pseudo-recipe (tensors copied, nothing quantized)
    """

    name: str
    ftype: LlamaFileType
    default_type: Q
    description: str
    aliases: tuple[str, ...] = ()
    requires_imatrix: bool = False
    supported: bool = False
    only_copy: bool = False

    @property
    def nominal_bpw(self) -> float:
        """Bits per weight of ``default_type`` (the mix itself averages a little more)."""
        block, size = GGML_QUANT_SIZES[self.default_type]
        return 8.0 * size / block


F = LlamaFileType

# (name, ftype, default type, description) in QUANT_OPTIONS order.  Q2_0 (ftype 41, GGML
# type 42) is left out: gguf 0.19.0 has no enum value for either.
_QUANT_OPTIONS: list[tuple[str, F, Q, str]] = [
    ("Q1_0", F.MOSTLY_Q1_0, Q.Q1_0, " 1.125 bpw quantization"),
    ("Q4_0", F.MOSTLY_Q4_0, Q.Q4_0, " 4.34G, +0.4685 ppl @ Llama-3-8B"),
    ("Q4_1", F.MOSTLY_Q4_1, Q.Q4_1, " 4.78G, +0.4511 ppl @ Llama-3-8B"),
    ("MXFP4_MOE", F.MOSTLY_MXFP4_MOE, Q.MXFP4, " MXFP4 MoE"),
    ("Q5_0", F.MOSTLY_Q5_0, Q.Q5_0, " 5.21G, +0.1316 ppl @ Llama-3-8B"),
    ("Q5_1", F.MOSTLY_Q5_1, Q.Q5_1, " 5.65G, +0.1062 ppl @ Llama-3-8B"),
    ("IQ2_XXS", F.MOSTLY_IQ2_XXS, Q.IQ2_XXS, " 2.06 bpw quantization"),
    ("IQ2_XS", F.MOSTLY_IQ2_XS, Q.IQ2_XS, " 2.31 bpw quantization"),
    ("IQ2_S", F.MOSTLY_IQ2_S, Q.IQ2_XS, " 2.5  bpw quantization"),
    ("IQ2_M", F.MOSTLY_IQ2_M, Q.IQ2_S, " 2.7  bpw quantization"),
    ("IQ1_S", F.MOSTLY_IQ1_S, Q.IQ1_S, " 1.56 bpw quantization"),
    ("IQ1_M", F.MOSTLY_IQ1_M, Q.IQ1_M, " 1.75 bpw quantization"),
    ("TQ1_0", F.MOSTLY_TQ1_0, Q.TQ1_0, " 1.69 bpw ternarization"),
    ("TQ2_0", F.MOSTLY_TQ2_0, Q.TQ2_0, " 2.06 bpw ternarization"),
    ("Q2_K", F.MOSTLY_Q2_K, Q.Q2_K, " 2.96G, +3.5199 ppl @ Llama-3-8B"),
    ("Q2_K_S", F.MOSTLY_Q2_K_S, Q.Q2_K, " 2.96G, +3.1836 ppl @ Llama-3-8B"),
    ("IQ3_XXS", F.MOSTLY_IQ3_XXS, Q.IQ3_XXS, " 3.06 bpw quantization"),
    ("IQ3_S", F.MOSTLY_IQ3_S, Q.IQ3_S, " 3.44 bpw quantization"),
    ("IQ3_M", F.MOSTLY_IQ3_M, Q.IQ3_S, " 3.66 bpw quantization mix"),
    ("IQ3_XS", F.MOSTLY_IQ3_XS, Q.IQ3_S, " 3.3 bpw quantization"),
    ("Q3_K_S", F.MOSTLY_Q3_K_S, Q.Q3_K, " 3.41G, +1.6321 ppl @ Llama-3-8B"),
    ("Q3_K_M", F.MOSTLY_Q3_K_M, Q.Q3_K, " 3.74G, +0.6569 ppl @ Llama-3-8B"),
    ("Q3_K_L", F.MOSTLY_Q3_K_L, Q.Q3_K, " 4.03G, +0.5562 ppl @ Llama-3-8B"),
    ("IQ4_NL", F.MOSTLY_IQ4_NL, Q.IQ4_NL, " 4.50 bpw non-linear quantization"),
    ("IQ4_XS", F.MOSTLY_IQ4_XS, Q.IQ4_XS, " 4.25 bpw non-linear quantization"),
    ("Q4_K_S", F.MOSTLY_Q4_K_S, Q.Q4_K, " 4.37G, +0.2689 ppl @ Llama-3-8B"),
    ("Q4_K_M", F.MOSTLY_Q4_K_M, Q.Q4_K, " 4.58G, +0.1754 ppl @ Llama-3-8B"),
    ("Q5_K_S", F.MOSTLY_Q5_K_S, Q.Q5_K, " 5.21G, +0.1049 ppl @ Llama-3-8B"),
    ("Q5_K_M", F.MOSTLY_Q5_K_M, Q.Q5_K, " 5.33G, +0.0569 ppl @ Llama-3-8B"),
    ("Q6_K", F.MOSTLY_Q6_K, Q.Q6_K, " 6.14G, +0.0217 ppl @ Llama-3-8B"),
    ("Q8_0", F.MOSTLY_Q8_0, Q.Q8_0, " 7.96G, +0.0026 ppl @ Llama-3-8B"),
    ("F16", F.MOSTLY_F16, Q.F16, "14.00G, +0.0020 ppl @ Mistral-7B"),
    ("BF16", F.MOSTLY_BF16, Q.BF16, "14.00G, -0.0050 ppl @ Mistral-7B"),
    ("F32", F.ALL_F32, Q.F32, "26.00G              @ 7B"),
    ("COPY", F.ALL_F32, Q.F32, "only copy tensors, no quantizing"),
]

# llama-quantize's alias rows ("Q3_K" -> LLAMA_FTYPE_MOSTLY_Q3_K_M, ...).
_ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}

# Every name try_parse_ftype knows, in QUANT_OPTIONS order: order matters for ftype
# numbers, which resolve to the first row with that ftype (12 is found as "Q3_K").
_OPTION_ORDER = [
    "Q1_0", "Q2_0", "Q4_0", "Q4_1", "MXFP4_MOE", "Q5_0", "Q5_1", "IQ2_XXS", "IQ2_XS", "IQ2_S",
    "IQ2_M", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0", "Q2_K", "Q2_K_S", "IQ3_XXS", "IQ3_S", "IQ3_M",
    "Q3_K", "IQ3_XS", "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ4_NL", "IQ4_XS", "Q4_K", "Q4_K_S",
    "Q4_K_M", "Q5_K", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16", "F32", "COPY",
]  # fmt: skip
_FTYPE_OF = {n: int(f) for n, f, _, _ in _QUANT_OPTIONS}
# (name as typed, canonical recipe name or None for Q2_0, ftype number)
_NAME_TABLE: list[tuple[str, str | None, int]] = [
    ("Q2_0", None, _LLAMA_FTYPE_MOSTLY_Q2_0)
    if n == "Q2_0"
    else (n, _ALIASES.get(n, n), _FTYPE_OF[_ALIASES.get(n, n)])
    for n in _OPTION_ORDER
]

# The recipes quantcli's engine implements (all their types are F32/F16/BF16, Q4_0..Q8_0
# or Q2_K..Q6_K).
SUPPORTED_RECIPES = (
    "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
    "Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L",
    "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
    "F16", "BF16", "F32",
)  # fmt: skip

_REQUIRES_IMATRIX = frozenset(
    {"Q2_K_S", "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS"}
)


def _build_recipes() -> dict[str, Recipe]:
    out: dict[str, Recipe] = {}
    for name, ftype, default, desc in _QUANT_OPTIONS:
        out[name] = Recipe(
            name=name,
            ftype=ftype,
            default_type=default,
            description=desc.strip(),
            aliases=tuple(a for a, t in _ALIASES.items() if t == name),
            requires_imatrix=name in _REQUIRES_IMATRIX,
            supported=name in SUPPORTED_RECIPES,
            only_copy=name == "COPY",
        )
    return out


RECIPES: dict[str, Recipe] = _build_recipes()

_STOI = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")


def resolve_recipe(name: str | int) -> Recipe:
    """The recipe for a llama-quantize type argument (``try_parse_ftype``).

    Names are compared case-insensitively ("q4_k_m"), the aliases Q3_K / Q4_K / Q5_K
    give Q3_K_M / Q4_K_M / Q5_K_M, and a number is taken as a llama_ftype ("15" is Q4_K_M;
    like ``std::stoi`` leading blanks and trailing junk are allowed).  Unknown names raise
    `RecipeError` suggesting the closest names.  Q2_0 (ftype 41) is known but cannot be
    represented with gguf 0.19.0, and raises `RecipeError` saying so.
    """
    text = str(name)
    upper = text.upper()
    hit: tuple[str, str | None, int] | None = None
    for row in _NAME_TABLE:
        if row[0].upper() == upper:
            hit = row
            break
    if hit is None:
        m = _STOI.match(text)
        if m:
            number = int(m.group(1))
            hit = next((row for row in _NAME_TABLE if row[2] == number), None)
    if hit is not None:
        if hit[1] is None:
            raise RecipeError(f"recipe {hit[0]} exists in llama-quantize, but gguf 0.19.0 cannot name its types")
        return RECIPES[hit[1]]
    known = [row[0] for row in _NAME_TABLE]
    close = difflib.get_close_matches(upper, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise RecipeError(f"unknown quantization type {text!r}{hint} (known: {', '.join(known)})")


def parse_ggml_type(name: str) -> Q:
    """A GGML type from its name, case-insensitively (``parse_ggml_type``: "q8_0", "Q6_K").

    Accepts every type gguf 0.19.0 names; llama-quantize also takes "q2_0" and, by accident,
    the "DEPRECATED" placeholder names of removed types -- those raise `RecipeError` here.
    """
    upper = name.upper()
    for t in Q:
        if t.name == upper:
            return t
    close = difflib.get_close_matches(upper, [t.name for t in Q], n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise RecipeError(f"invalid ggml_type {name!r}{hint}")


def parse_tensor_type(arg: str) -> tuple[str, Q]:
    """One ``--tensor-type PATTERN=TYPE`` argument (``parse_tensor_type``).

    llama-quantize splits at the first '=', lower-cases the pattern (not the tensor names
    it is matched against!) and parses the type case-insensitively.
    """
    pattern, sep, type_name = arg.partition("=")
    if not sep:
        raise RecipeError(f"malformed tensor type {arg!r} (expected PATTERN=TYPE)")
    if not pattern:
        raise RecipeError("missing tensor name in --tensor-type")
    if not type_name:
        raise RecipeError("missing quantization type in --tensor-type")
    return pattern.lower(), parse_ggml_type(type_name)


_ATOL = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")
_ATOF = re.compile(
    r"[ \t\n\v\f\r]*([+-]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan))",
    re.IGNORECASE,
)


def parse_kv_override(arg: str) -> tuple[str, bool | int | float | str]:
    """One ``--override-kv KEY=TYPE:VALUE`` argument (common.cpp ``string_parse_kv_override``).

    TYPE is ``int`` (C ``atol``: leading digits, else 0), ``float`` (``atof``), ``bool``
    (exactly "true" / "false") or ``str`` (at most 127 characters).  The key must be
    shorter than 128 bytes.  Returns (key, value) for `quantized_kv`'s ``overrides``.
    """
    key, sep, rest = arg.partition("=")
    if not sep or len(key.encode("utf-8")) >= 128:
        raise RecipeError(f"malformed KV override {arg!r}")
    if rest.startswith("int:"):
        m = _ATOL.match(rest[4:])
        v = int(m.group(1)) if m else 0
        return key, max(min(v, 2**63 - 1), -(2**63))
    if rest.startswith("float:"):
        m = _ATOF.match(rest[6:])
        if not m:
            return key, 0.0
        text = m.group(1)
        if "x" in text.lower() and "n" not in text.lower():
            return key, float.fromhex(text)
        return key, float(text)
    if rest.startswith("bool:"):
        if rest[5:] == "true":
            return key, True
        if rest[5:] == "false":
            return key, False
        raise RecipeError(f"invalid boolean value for KV override {arg!r}")
    if rest.startswith("str:"):
        if len(rest[4:].encode("utf-8")) > 127:
            raise RecipeError(f"malformed KV override {arg!r}, value cannot exceed 127 chars")
        return key, rest[4:]
    raise RecipeError(f"invalid type for KV override {arg!r} (expected int:, float:, bool: or str:)")


# ---------------------------------------------------------------------------------------
# Model, tensors, options, result
# ---------------------------------------------------------------------------------------


# llama.cpp sets LLM_TYPE_70B in these per-arch load_arch_hparams (src/models/*.cpp); it is
# the only model type the mixes look at.
def _is_70b(arch: str, n_layer: int, n_head: int, n_head_kv: int, n_expert: int) -> bool:
    if arch in ("llama", "llama-embed"):  # llama_model_llama (llama-embed reuses it)
        return n_expert != 8 and n_layer == 80 and n_head != n_head_kv
    if arch in ("qwen2", "deci", "olmo"):
        return n_layer == 80
    if arch == "jais2":
        return n_layer == 68
    return False


@dataclass(frozen=True)
class ModelInfo:
    """What the mixes read from the model's hyper-parameters (``llama_hparams``).

    arch:          ``general.architecture``
    n_layer:       ``hparams.n_layer_all``: ``{arch}.block_count``, except for graniteswitch
                   (+1 router layer) and nanbeige (times ``{arch}.num_loops``); the
                   ffn_down/gate/up layer count ``n_ffn_*``
    n_head:        ``{arch}.attention.head_count`` (layer 0 if per-layer array; 0 if absent)
    n_head_kv:     ``{arch}.attention.head_count_kv`` (layer 0; absent -> n_head)
    n_expert:      ``{arch}.expert_count`` (0 if absent)
    n_layer_nextn: ``{arch}.nextn_predict_layers`` (0 if absent); only for the 70B test,
                   which looks at ``n_layer() = n_layer_all - n_layer_nextn``
    is_70b:        None: derived like llama.cpp's ``LLM_TYPE_70B`` (llama with 80 layers and
                   GQA, qwen2/deci/olmo with 80 layers, jais2 with 68); or forced
    """

    arch: str
    n_layer: int
    n_head: int = 0
    n_head_kv: int | None = None
    n_expert: int = 0
    n_layer_nextn: int = 0
    is_70b: bool | None = None

    @property
    def head_count_kv(self) -> int:
        return self.n_head if self.n_head_kv is None else self.n_head_kv

    @property
    def n_gqa(self) -> int:
        """``hparams.n_gqa()``: n_head / n_head_kv of layer 0 (0 if n_head_kv is 0)."""
        kv = self.head_count_kv
        return 0 if kv == 0 else self.n_head // kv

    @property
    def llm_type_70b(self) -> bool:
        if self.is_70b is not None:
            return self.is_70b
        return _is_70b(
            self.arch, self.n_layer - self.n_layer_nextn, self.n_head, self.head_count_kv, self.n_expert
        )

    @classmethod
    def from_kv(cls, kv: Mapping[str, Any]) -> "ModelInfo":
        """From GGUF metadata, ``{key: value}`` (arrays as sequences)."""

        def first(value: Any) -> int:
            """get_key_or_arr: a per-layer array gives layer 0's value"""
            if isinstance(value, (str, bytes)):
                raise PlanError(f"expected a number, got {value!r}")
            if hasattr(value, "__len__"):
                return int(value[0]) if len(value) else 0
            return int(value)

        arch = kv.get("general.architecture")
        if not isinstance(arch, str):
            raise PlanError("model metadata has no general.architecture")
        if f"{arch}.block_count" not in kv:
            raise PlanError(f"key not found in model: {arch}.block_count")
        n_layer = int(kv[f"{arch}.block_count"])
        nextn = int(kv.get(f"{arch}.nextn_predict_layers", 0))
        n_head = first(kv.get(f"{arch}.attention.head_count", 0))
        kvh = kv.get(f"{arch}.attention.head_count_kv")
        # per-arch load_arch_hparams that change n_layer_all (src/models/*.cpp)
        if arch == "graniteswitch":
            # an extra router layer at the end, counted as the "nextn" layer
            n_layer, nextn = (n_layer - nextn) + 1, 1
        elif arch == "nanbeige":
            loops = int(kv.get(f"{arch}.num_loops", 1))
            if loops > 1:
                n_layer = (n_layer - nextn) * loops
        return cls(
            arch=arch,
            n_layer=n_layer,
            n_head=n_head,
            n_head_kv=None if kvh is None else first(kvh),
            n_expert=int(kv.get(f"{arch}.expert_count", 0)),
            n_layer_nextn=nextn,
        )


@dataclass(frozen=True)
class TensorInfo:
    """A tensor of the input model.

    name:  GGUF tensor name ("blk.0.attn_q.weight")
    shape: GGML order, ne0 (the row length) first -- as ``gguf.GGUFReader`` reports it
    dtype: the type it has in the input
    """

    name: str
    shape: tuple[int, ...]
    dtype: Q = Q.F32

    def ne(self, i: int) -> int:
        return int(self.shape[i]) if i < len(self.shape) else 1

    @property
    def n_dims(self) -> int:
        """``ggml_n_dims``: trailing dimensions of size 1 do not count (min 1)."""
        n = len(self.shape)
        while n > 1 and self.shape[n - 1] == 1:
            n -= 1
        return max(n, 1)

    @property
    def n_elements(self) -> int:
        out = 1
        for d in self.shape:
            out *= int(d)
        return out


@dataclass(frozen=True)
class Options:
    """``llama_model_quantize_params`` (those that change types) plus quantcli extensions.

    pure:                 --pure: every quantizable tensor gets the recipe's default type
                          (token-embedding / output type options and the fallback still apply)
    leave_output_tensor:  --leave-output-tensor (``quantize_output_tensor = false``)
    output_tensor_type:   --output-tensor-type
    token_embedding_type: --token-embedding-type
    tensor_types:         --tensor-type PATTERN=TYPE, in order; the first pattern found
                          (``re.search``) in a tensor name wins.  Used verbatim: parse CLI
                          arguments with `parse_tensor_type` to get llama-quantize's
                          lower-casing.  Ignored for F32/F16/BF16 recipes, like llama.cpp.
    allow_requantize:     --allow-requantize
    imatrix:              None (no importance matrix) or the entries passed to llama.cpp
                          (name -> vector; only ``len()`` is used here); an empty mapping
                          counts as "an imatrix" (``params.imatrix`` set), as in llama.cpp
    no_fallback:          quantcli extension (llama.cpp issue 26616): raise `FallbackError`
                          instead of falling back when a row does not divide into blocks
    """

    pure: bool = False
    leave_output_tensor: bool = False
    output_tensor_type: Q | None = None
    token_embedding_type: Q | None = None
    tensor_types: Sequence[tuple[str, Q]] = ()
    allow_requantize: bool = False
    imatrix: Mapping[str, Sized] | None = None
    no_fallback: bool = False


@dataclass(frozen=True)
class Choice:
    """The decision for one tensor.

    qtype:            type in the output file
    src_type:         type in the input
    shape:            as written: ne0 first, trailing 1s dropped (gguf stores
                      ``ggml_n_dims`` dimensions, so an input [576, 1] comes out as [576])
    convert:          True when the data is converted (``src_type != qtype``); False: bytes
                      are copied unchanged
    reason:           why, in words ("rule: ...", "override ...", "not quantized: ...", with
                      "; fallback: ..." appended when the row length forced another type)
    category:         llama.cpp's tensor_category (TOKEN_EMBD, ATTENTION_V, FFN_DOWN, ...)
    fallback:         the type was changed by ``tensor_type_fallback``
    use_imatrix:      llama.cpp passes an importance vector when quantizing this tensor
    requires_imatrix: ``tensor_requires_imatrix`` (very low-bit types)
    """

    name: str
    qtype: Q
    src_type: Q
    shape: tuple[int, ...]
    reason: str
    category: str
    convert: bool
    fallback: bool = False
    use_imatrix: bool = False
    requires_imatrix: bool = False


# ---------------------------------------------------------------------------------------
# Ordering: std::map<std::string, llama_tensor_weight, weight_name_comparer>
# ---------------------------------------------------------------------------------------

_BLK = re.compile(r"blk\.[ \t\n\v\f\r]*([+-]?[0-9]+)")


def layer_of(name: str) -> int | None:
    """``sscanf(name, "blk.%d.", &layer)``: the layer number, or None if it does not parse."""
    m = _BLK.match(name)
    if not m:
        return None
    v = int(m.group(1))
    # %d stores an int; out-of-range input is clamped by glibc's strtol, then truncated
    v = max(min(v, 2**63 - 1), -(2**63))
    return ((v + 2**31) % 2**32) - 2**31


def output_order(names: Iterable[str]) -> list[str]:
    """llama.cpp's tensor order (``weight_name_comparer``): layer number ("blk.N.", -1 for
    everything else, so non-layer tensors come first), then name, byte-wise."""

    def key(name: str) -> tuple[int, bytes]:
        layer = layer_of(name)
        return (-1 if layer is None else layer, name.encode("utf-8"))

    return sorted(names, key=key)


# ---------------------------------------------------------------------------------------
# Categories and the quantize bool
# ---------------------------------------------------------------------------------------

TOKEN_EMBD = "TOKEN_EMBD"
ATTENTION_Q = "ATTENTION_Q"
ATTENTION_V = "ATTENTION_V"
ATTENTION_K = "ATTENTION_K"
ATTENTION_QKV = "ATTENTION_QKV"
ATTENTION_KV_B = "ATTENTION_KV_B"
ATTENTION_OUTPUT = "ATTENTION_OUTPUT"
FFN_UP = "FFN_UP"
FFN_GATE = "FFN_GATE"
FFN_DOWN = "FFN_DOWN"
OUTPUT = "OUTPUT"
OTHER = "OTHER"


def _is_token_embd(name: str) -> bool:
    """tensor_name_match_token_embd"""
    return name in ("token_embd.weight", "per_layer_token_embd.weight")


def tensor_category(name: str) -> str:
    """``tensor_get_category`` (substring tests, in llama.cpp's order)."""
    if name == "output.weight":
        return OUTPUT
    if _is_token_embd(name):
        return TOKEN_EMBD
    for needle, cat in (
        ("attn_qkv.weight", ATTENTION_QKV),
        ("attn_kv_b.weight", ATTENTION_KV_B),
        ("attn_v.weight", ATTENTION_V),
        ("attn_k.weight", ATTENTION_K),
        ("attn_q.weight", ATTENTION_Q),
        ("attn_output.weight", ATTENTION_OUTPUT),
        ("ffn_up", FFN_UP),
        ("ffn_gate", FFN_GATE),
        ("ffn_down", FFN_DOWN),
    ):
        if needle in name:
            return cat
    return OTHER


def _is_attn_v(cat: str) -> bool:
    """category_is_attn_v"""
    return cat in (ATTENTION_V, ATTENTION_QKV, ATTENTION_KV_B)


_NOT_QUANTIZED_SUBSTRINGS: tuple[tuple[str, str], ...] = (
    ("ffn_gate_inp.weight", "expert gating"),
    ("ffn_gate_tid2eid.weight", "token-to-expert routing table"),
    ("altup", "altup (tiny)"),
    ("laurel", "laurel (tiny)"),
    ("per_layer_model_proj", "per_layer_model_proj"),
)
_NOT_QUANTIZED_SUBSTRINGS_2: tuple[tuple[str, str], ...] = (
    ("ssm_conv1d", "ssm conv1d"),
    ("shortconv.conv.weight", "short conv"),
    ("indexer.k_proj.weight", "indexer projection"),
    ("indexer.q_proj.weight", "indexer projection"),
)
_GLM5_NEXT_SUBSTRINGS = (
    "hc_", "indexer.attn_q_b", "indexer.attn_k", "indexer.proj", "indexer_compressor_gate",
    "indexer_compressor_ape", "ssm_f_a.weight", "ssm_f_b.weight", "ssm_g_a.weight",
    "ssm_g_b.weight", "ssm_beta.weight", "attn_kv_a_mqa.weight", "attn_k_b.weight",
    "attn_v_b.weight",
)  # fmt: skip
_RWKV_SUBSTRINGS = tuple(
    f"time_mix_{s}.weight"
    for s in ("first", "w0", "w1", "w2", "v0", "v1", "v2", "a0", "a1", "a2", "g1", "g2",
              "decay_w1", "decay_w2", "lerp_fused")
)  # fmt: skip
_MULTIMODAL_SUBSTRINGS = (
    ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
    ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
)  # fmt: skip


def _allows_quantization(t: TensorInfo, arch: str, options: Options, only_copy: bool) -> tuple[bool, str]:
    """``tensor_allows_quantization``; the reason when it does not."""
    if only_copy:
        return False, "COPY"
    if t.n_dims < 2:  # quantize only 2D and 3D tensors (experts)
        return False, "1-D tensor"
    name = t.name
    # name.rfind("weight") == name.size() - 6, "ends with 'weight'" -- and, by size_t
    # wrap-around, also true for any 5-character name (npos == 5 - 6)
    if not (name.endswith("weight") or len(name.encode("utf-8")) == 5):
        return False, "name does not end in 'weight'"
    if "_norm.weight" in name:
        return False, "norm"
    if not (not options.leave_output_tensor or name != "output.weight"):
        return False, "--leave-output-tensor"
    for needle, why in _NOT_QUANTIZED_SUBSTRINGS:
        if needle in name:
            return False, why
    # LLM_TN(arch)(LLM_TENSOR_POS_EMBD / LLM_TENSOR_TOKEN_TYPES, "weight")
    if name == "position_embd.weight":
        return False, "position embeddings"
    if name == "token_types.weight":
        return False, "token types"
    for needle, why in _NOT_QUANTIZED_SUBSTRINGS_2:
        if needle in name:
            return False, why
    if arch == "glm5-next":
        for needle in _GLM5_NEXT_SUBSTRINGS:
            if needle in name:
                return False, f"glm5-next {needle}"
    for needle in _RWKV_SUBSTRINGS:
        if needle in name:
            return False, "RWKV time_mix"
    if "attn_rel_b.weight" in name:
        return False, "relative position bias"
    for needle in _MULTIMODAL_SUBSTRINGS:
        if needle in name:
            return False, f"multimodal {needle}"
    return True, ""


def _requires_imatrix(name: str, dst: int, ftype: int) -> bool:
    """``tensor_requires_imatrix``"""
    if _is_token_embd(name) or name == "output.weight":
        return False
    if dst in (Q.IQ3_XXS, Q.IQ2_XXS, Q.IQ2_XS, Q.IQ2_S, Q.IQ1_M, Q.IQ1_S):
        return True
    if dst == Q.Q2_K:
        # the only k-type exception: Q2_K tensors of a Q2_K_S file
        return ftype == F.MOSTLY_Q2_K_S
    return False


# ---------------------------------------------------------------------------------------
# quantize_state_impl and the type rules
# ---------------------------------------------------------------------------------------


@dataclass
class _State:
    """``quantize_state_impl`` (the counters are bumped only by the rules function)."""

    model: ModelInfo
    options: Options
    patterns: list[tuple[re.Pattern[str], str, Q]]
    n_attention_wv: int = 0
    n_ffn_down: int = 0
    n_ffn_gate: int = 0
    n_ffn_up: int = 0
    i_attention_wv: int = 0
    i_ffn_down: int = 0
    i_ffn_gate: int = 0
    i_ffn_up: int = 0
    n_fallback: int = 0
    has_imatrix: bool = False
    has_tied_embeddings: bool = True  # assume tied until output.weight is seen
    fallbacks: list[str] = field(default_factory=list)


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    """use_more_bits (C integer division; i >= n/8 whenever the modulo is reached)"""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def _get_type_impl(qs: _State, new_type: int, t: TensorInfo, ftype: int, cat: str, why: list[str]) -> int:
    """``llama_tensor_get_type_impl``: the mixture rules.  ``why`` collects the rule text."""
    name = t.name
    arch = qs.model.arch
    hp = qs.model
    n_expert_raw = hp.n_expert  # hparams.n_expert as used in the == 8 / >= 4 tests
    n_expert = max(1, hp.n_expert)
    n_gqa = hp.n_gqa
    fname = _ftype_name(ftype)

    def layer_info(i_layer: int, n_layer: int) -> tuple[int, int]:
        if n_expert > 1:
            # Mixtral's experts are not consecutive: parse the layer from the name
            layer = layer_of(name)
            if layer is None:
                raise PlanError(f"Failed to determine layer for tensor {name}")
            if layer < 0 or layer >= n_layer:
                raise PlanError(f"Bad layer {layer} for tensor {name}. Must be in [0, {n_layer})")
            i_layer = layer
        return i_layer, n_layer

    def set_(typ: int, text: str) -> int:
        why.append(f"{text} -> {_tname(typ)}")
        return typ

    # glm5-next: these tensors never go below Q8_0
    if arch == "glm5-next" and ("attn_q_a" in name or "attn_q_b" in name or "nextn.eh_proj" in name):
        if new_type in (Q.F32, Q.BF16, Q.F16):
            pass
        else:
            return set_(Q.Q8_0, "glm5-next attn_q_a/attn_q_b/nextn.eh_proj")

    # tied embeddings: token_embd is quantized like the output tensor
    if cat == OUTPUT or (qs.has_tied_embeddings and cat == TOKEN_EMBD):
        what = "output" if cat == OUTPUT else "token_embd (tied to output)"
        ott = qs.options.output_tensor_type
        if ott is not None:
            new_type = set_(ott, f"{what}: --output-tensor-type")
        else:
            nx = t.ne(0)
            qk_k = _blck_size(new_type)
            if ftype == F.MOSTLY_MXFP4_MOE:
                new_type = set_(Q.Q8_0, f"{what}: MXFP4_MOE")
            elif arch == "falcon" or nx % qk_k != 0:
                text = "falcon" if arch == "falcon" else f"ne0 {nx} % {qk_k} != 0"
                new_type = set_(Q.Q8_0, f"{what}: {text}")
            elif ftype in (F.MOSTLY_IQ2_XXS, F.MOSTLY_IQ2_XS, F.MOSTLY_IQ3_XXS, F.MOSTLY_IQ1_S,
                           F.MOSTLY_IQ2_S, F.MOSTLY_IQ2_M, F.MOSTLY_IQ1_M):  # fmt: skip
                new_type = set_(Q.Q5_K, f"{what}: {fname}")
            elif new_type != Q.Q8_0:
                new_type = set_(Q.Q6_K, f"{what}")
    elif ftype == F.MOSTLY_MXFP4_MOE:
        # MoE tensors -> MXFP4, other tensors -> Q8_0
        is_bailingmoe3_expert = arch == "bailingmoe3" and cat in (FFN_UP, FFN_GATE, FFN_DOWN)
        if t.ne(2) > 1 and (arch != "bailingmoe3" or is_bailingmoe3_expert):
            new_type = set_(Q.MXFP4, "MXFP4_MOE expert tensor")
        else:
            new_type = set_(Q.Q8_0, "MXFP4_MOE non-expert tensor")
    elif cat == TOKEN_EMBD:
        tet = qs.options.token_embedding_type
        if tet is not None:
            new_type = set_(tet, "token_embd: --token-embedding-type")
        else:
            if ftype in (F.MOSTLY_IQ2_XXS, F.MOSTLY_IQ2_XS, F.MOSTLY_IQ1_S, F.MOSTLY_IQ1_M):
                new_type = set_(Q.Q2_K, f"token_embd: {fname}")
            elif ftype in (F.MOSTLY_IQ2_S, F.MOSTLY_IQ2_M):
                new_type = set_(Q.IQ3_S, f"token_embd: {fname}")
            elif ftype == F.MOSTLY_IQ3_XXS:
                new_type = set_(Q.IQ3_S, f"token_embd: {fname}")
            elif ftype in (F.MOSTLY_TQ1_0, F.MOSTLY_TQ2_0, _LLAMA_FTYPE_MOSTLY_Q2_0):
                new_type = set_(Q.Q4_K, f"token_embd: {fname}")
    elif ftype in (F.MOSTLY_IQ2_XXS, F.MOSTLY_IQ2_XS, F.MOSTLY_IQ1_S,
                   F.MOSTLY_IQ2_S, F.MOSTLY_IQ2_M, F.MOSTLY_IQ1_M):  # fmt: skip
        iq2s_m = ftype in (F.MOSTLY_IQ2_S, F.MOSTLY_IQ2_M)
        if _is_attn_v(cat):
            if n_gqa >= 4 or n_expert_raw >= 4:
                new_type = set_(Q.Q4_K, f"attn_v: {fname} n_gqa {n_gqa} >= 4 or n_expert {n_expert_raw} >= 4")
            else:
                new_type = set_(Q.IQ3_S if iq2s_m else Q.Q2_K, f"attn_v: {fname}")
            qs.i_attention_wv += 1
        elif n_expert_raw == 8 and cat == ATTENTION_K:
            new_type = set_(Q.Q4_K, f"attn_k: {fname} n_expert 8")
        elif cat == FFN_DOWN:
            if qs.i_ffn_down < qs.n_ffn_down // 8:
                new_type = set_(
                    Q.IQ3_S if iq2s_m else Q.Q2_K,
                    f"ffn_down: {fname} i_ffn_down {qs.i_ffn_down} < {qs.n_ffn_down}/8",
                )
            qs.i_ffn_down += 1
        elif cat == ATTENTION_OUTPUT:
            if n_expert_raw == 8:
                new_type = set_(Q.Q5_K, f"attn_output: {fname} n_expert 8")
            else:
                if ftype in (F.MOSTLY_IQ1_S, F.MOSTLY_IQ1_M):
                    new_type = set_(Q.IQ2_XXS, f"attn_output: {fname}")
                elif iq2s_m:
                    new_type = set_(Q.IQ3_S, f"attn_output: {fname}")
    elif _is_attn_v(cat):
        i, n = qs.i_attention_wv, qs.n_attention_wv
        if ftype == F.MOSTLY_Q2_K:
            new_type = set_(Q.Q4_K if n_gqa >= 4 else Q.Q3_K, f"attn_v: Q2_K n_gqa {n_gqa}")
        elif ftype == F.MOSTLY_Q2_K_S and n_gqa >= 4:
            new_type = set_(Q.Q4_K, f"attn_v: Q2_K_S n_gqa {n_gqa} >= 4")
        elif ftype == F.MOSTLY_IQ3_XXS:
            new_type = set_(
                Q.Q4_K if n_gqa >= 4 else (Q.IQ3_S if not qs.has_imatrix else Q.IQ3_XXS),
                f"attn_v: IQ3_XXS n_gqa {n_gqa} imatrix {qs.has_imatrix}",
            )
        elif ftype in (F.MOSTLY_IQ3_XS, F.MOSTLY_IQ3_S) and n_gqa >= 4:
            new_type = set_(Q.Q4_K, f"attn_v: {fname} n_gqa {n_gqa} >= 4")
        elif ftype == F.MOSTLY_IQ3_M:
            new_type = set_(Q.Q4_K, "attn_v: IQ3_M")
        elif ftype == F.MOSTLY_Q3_K_M:
            new_type = set_(Q.Q5_K if i < 2 else Q.Q4_K, f"attn_v: Q3_K_M i_attention_wv {i} {'<' if i < 2 else '>='} 2")
        elif ftype == F.MOSTLY_Q3_K_L:
            new_type = set_(Q.Q5_K, "attn_v: Q3_K_L")
        elif ftype in (F.MOSTLY_IQ4_NL, F.MOSTLY_IQ4_XS) and n_gqa >= 4:
            new_type = set_(Q.Q5_K, f"attn_v: {fname} n_gqa {n_gqa} >= 4")
        elif ftype in (F.MOSTLY_Q4_K_M, F.MOSTLY_Q5_K_M) and _use_more_bits(i, n):
            new_type = set_(Q.Q6_K, f"attn_v: {fname} use_more_bits({i}, {n})")
        elif ftype == F.MOSTLY_Q4_K_S and i < 4:
            new_type = set_(Q.Q5_K, f"attn_v: Q4_K_S i_attention_wv {i} < 4")
        if hp.llm_type_70b:
            # 70B: 8 heads share attn_v, so it is 8x smaller than attn_q -- more bits are cheap
            if new_type in (Q.Q3_K, Q.Q4_K):
                new_type = set_(Q.Q5_K, "attn_v: 70B model")
        if n_expert_raw == 8:
            new_type = set_(Q.Q8_0, "attn_v: n_expert 8")
        qs.i_attention_wv += 1
    elif cat == ATTENTION_K:
        if n_expert_raw == 8:
            new_type = set_(Q.Q8_0, "attn_k: n_expert 8")
        elif ftype == F.MOSTLY_IQ3_XS:
            new_type = set_(Q.IQ3_XXS, "attn_k: IQ3_XS")
        elif ftype == F.MOSTLY_IQ3_XXS:
            new_type = set_(Q.IQ2_S, "attn_k: IQ3_XXS")
    elif cat == ATTENTION_Q:
        if ftype == F.MOSTLY_IQ3_XS:
            new_type = set_(Q.IQ3_XXS, "attn_q: IQ3_XS")
        elif ftype == F.MOSTLY_IQ3_XXS:
            new_type = set_(Q.IQ2_S, "attn_q: IQ3_XXS")
    elif cat == FFN_DOWN:
        i_layer, n_layer = layer_info(qs.i_ffn_down, qs.n_ffn_down)
        at = f"layer {i_layer}/{n_layer}"
        if ftype == F.MOSTLY_Q2_K:
            new_type = set_(Q.Q3_K, "ffn_down: Q2_K")
        elif ftype == F.MOSTLY_Q2_K_S:
            if i_layer < n_layer // 8:
                new_type = set_(Q.Q4_K, f"ffn_down: Q2_K_S {at} < n/8")
        elif ftype == F.MOSTLY_IQ3_XXS and not qs.has_imatrix:
            new_type = set_(Q.Q4_K if i_layer < n_layer // 8 else Q.Q3_K, f"ffn_down: IQ3_XXS without imatrix {at}")
        elif ftype == F.MOSTLY_Q3_K_M:
            if i_layer < n_layer // 16:
                new_type = set_(Q.Q5_K, f"ffn_down: Q3_K_M {at} < n/16")
            elif arch != "falcon" or _use_more_bits(i_layer, n_layer):
                new_type = set_(Q.Q4_K, f"ffn_down: Q3_K_M {at}")
            else:
                new_type = set_(Q.Q3_K, f"ffn_down: Q3_K_M falcon {at}")
        elif ftype == F.MOSTLY_IQ3_M and (
            i_layer < n_layer // 8 or (n_expert_raw == 8 and _use_more_bits(i_layer, n_layer))
        ):
            new_type = set_(Q.Q4_K, f"ffn_down: IQ3_M {at}")
        elif ftype == F.MOSTLY_Q3_K_L:
            new_type = set_(Q.Q4_K if arch == "falcon" else Q.Q5_K, "ffn_down: Q3_K_L")
        elif ftype == F.MOSTLY_Q4_K_M:
            if arch == "falcon":
                if i_layer < n_layer // 16:
                    new_type = set_(Q.Q6_K, f"ffn_down: Q4_K_M falcon {at} < n/16")
                elif _use_more_bits(i_layer, n_layer):
                    new_type = set_(Q.Q5_K, f"ffn_down: Q4_K_M falcon use_more_bits({i_layer}, {n_layer})")
                else:
                    new_type = set_(Q.Q4_K, f"ffn_down: Q4_K_M falcon {at}")
            else:
                if _use_more_bits(i_layer, n_layer):
                    new_type = set_(Q.Q6_K, f"ffn_down: Q4_K_M use_more_bits({i_layer}, {n_layer})")
        elif (
            i_layer < n_layer // 8
            and ftype in (F.MOSTLY_IQ4_NL, F.MOSTLY_IQ4_XS)
            and not qs.has_imatrix
        ):
            new_type = set_(Q.Q5_K, f"ffn_down: {fname} without imatrix {at} < n/8")
        elif ftype == F.MOSTLY_Q5_K_M and _use_more_bits(i_layer, n_layer):
            new_type = set_(Q.Q6_K, f"ffn_down: Q5_K_M use_more_bits({i_layer}, {n_layer})")
        elif ftype == F.MOSTLY_Q4_K_S and arch != "falcon" and i_layer < n_layer // 8:
            new_type = set_(Q.Q5_K, f"ffn_down: Q4_K_S {at} < n/8")
        elif ftype in (F.MOSTLY_Q4_0, F.MOSTLY_Q5_0) and qs.has_imatrix and i_layer < n_layer // 8:
            # guard the first ffn_down layers of Q4_0/Q5_0 -- only with an imatrix, so that
            # without one the result stays what it always was
            new_type = set_(
                Q.Q4_1 if ftype == F.MOSTLY_Q4_0 else Q.Q5_1, f"ffn_down: {fname} with imatrix {at} < n/8"
            )
        qs.i_ffn_down += 1
    elif cat == ATTENTION_OUTPUT:
        if arch != "falcon":
            if n_expert_raw == 8:
                if ftype in (F.MOSTLY_Q2_K, F.MOSTLY_IQ3_XS, F.MOSTLY_IQ3_XXS, F.MOSTLY_Q3_K_S,
                             F.MOSTLY_Q3_K_M, F.MOSTLY_IQ4_NL, F.MOSTLY_Q4_K_S, F.MOSTLY_Q4_K_M,
                             F.MOSTLY_IQ3_S, F.MOSTLY_IQ3_M, F.MOSTLY_IQ4_XS):  # fmt: skip
                    new_type = set_(Q.Q5_K, f"attn_output: {fname} n_expert 8")
            else:
                if ftype == F.MOSTLY_Q2_K:
                    new_type = set_(Q.Q3_K, "attn_output: Q2_K")
                elif ftype == F.MOSTLY_IQ3_XXS:
                    new_type = set_(Q.IQ3_S, "attn_output: IQ3_XXS")
                elif ftype == F.MOSTLY_Q3_K_M:
                    new_type = set_(Q.Q4_K, "attn_output: Q3_K_M")
                elif ftype == F.MOSTLY_Q3_K_L:
                    new_type = set_(Q.Q5_K, "attn_output: Q3_K_L")
                elif ftype == F.MOSTLY_IQ3_M:
                    new_type = set_(Q.Q4_K, "attn_output: IQ3_M")
        else:
            if ftype == F.MOSTLY_Q3_K_L:
                new_type = set_(Q.Q4_K, "attn_output: Q3_K_L falcon")
    elif cat == ATTENTION_QKV:
        if ftype in (F.MOSTLY_Q3_K_M, F.MOSTLY_Q3_K_L, F.MOSTLY_IQ3_M):
            new_type = set_(Q.Q4_K, f"attn_qkv: {fname}")
        elif ftype == F.MOSTLY_Q4_K_M:
            new_type = set_(Q.Q5_K, "attn_qkv: Q4_K_M")
        elif ftype == F.MOSTLY_Q5_K_M:
            new_type = set_(Q.Q6_K, "attn_qkv: Q5_K_M")
    elif cat == FFN_GATE:
        i_layer, n_layer = layer_info(qs.i_ffn_gate, qs.n_ffn_gate)
        if ftype == F.MOSTLY_IQ3_XS and n_layer // 8 <= i_layer < 7 * n_layer // 8:
            new_type = set_(Q.IQ3_XXS, f"ffn_gate: IQ3_XS layer {i_layer}/{n_layer}")
        qs.i_ffn_gate += 1
    elif cat == FFN_UP:
        i_layer, n_layer = layer_info(qs.i_ffn_up, qs.n_ffn_up)
        if ftype == F.MOSTLY_IQ3_XS and n_layer // 8 <= i_layer < 7 * n_layer // 8:
            new_type = set_(Q.IQ3_XXS, f"ffn_up: IQ3_XS layer {i_layer}/{n_layer}")
        qs.i_ffn_up += 1
    return new_type


def _fallback(qs: _State, t: TensorInfo, target: int, why: list[str]) -> tuple[int, bool]:
    """``tensor_type_fallback``: a compatible type when ne0 does not divide into blocks."""
    ncols = t.ne(0)
    qk_k = _blck_size(target)
    if ncols % qk_k == 0:
        return target, False
    if qs.options.no_fallback:
        raise FallbackError(
            f"{t.name}: row length {ncols} is not a multiple of {qk_k} (block size of "
            f"{_tname(target)}); llama.cpp would fall back to another type (--no-fallback)"
        )
    qs.n_fallback += 1
    if target in (Q.IQ1_S, Q.IQ1_M, Q.IQ2_XXS, Q.IQ2_XS, Q.IQ2_S, Q.IQ3_XXS, Q.IQ3_S, Q.IQ4_XS):
        ret = int(Q.IQ4_NL)
    elif target in (_GGML_TYPE_Q2_0, Q.Q2_K, Q.Q3_K, Q.TQ1_0, Q.TQ2_0):
        ret = int(Q.Q4_0)
    elif target == Q.Q4_K:
        ret = int(Q.Q5_0)
    elif target == Q.Q5_K:
        ret = int(Q.Q5_1)
    elif target == Q.Q6_K:
        ret = int(Q.Q8_0)
    elif qk_k <= 32:
        ret = target  # already a 32-block type: the check below makes it F16
    else:
        raise PlanError(f"no tensor type fallback is defined for type {_ggml_type_name(target)}")
    if ncols % _blck_size(ret) != 0:
        why.append(f"fallback: ncols {ncols} % {qk_k} != 0 and % {_blck_size(ret)} != 0 -> F16")
        ret = int(Q.F16)
    else:
        why.append(f"fallback: ncols {ncols} % {qk_k} != 0 -> {_tname(ret)}")
    qs.fallbacks.append(t.name)
    return ret, True


def _get_type(
    qs: _State, t: TensorInfo, default_type: int, ftype: int, cat: str
) -> tuple[int, str, bool]:
    """``llama_tensor_get_type`` for a tensor that allows quantization."""
    opts = qs.options
    if opts.token_embedding_type is not None and cat == TOKEN_EMBD:
        # per_layer_token_embd follows --token-embedding-type unless a --tensor-type names it
        named = t.name == "per_layer_token_embd.weight" and any(p.search(t.name) for p, _, _ in qs.patterns)
        if not named:
            return int(opts.token_embedding_type), f"--token-embedding-type {opts.token_embedding_type.name}", False
    if opts.output_tensor_type is not None and cat == OUTPUT:
        return int(opts.output_tensor_type), f"--output-tensor-type {opts.output_tensor_type.name}", False

    new_type = default_type
    if not _is_quantized(default_type):
        return new_type, f"default {_tname(default_type)} (float recipe: no mixture rules)", False

    why: list[str] = []
    manual = False
    for pattern, text, qtype in qs.patterns:
        if pattern.search(t.name):
            why.append(f"override --tensor-type {text}={qtype.name}")
            new_type = int(qtype)
            manual = True
            break
    if not manual and not opts.pure:
        new_type = _get_type_impl(qs, new_type, t, ftype, cat, why)
        if not why:
            why.append(f"default {_tname(default_type)}")
        else:
            why[:] = ["rule: " + "; ".join(why)]
    elif not manual:
        why.append(f"pure: {_tname(default_type)}")
    new_type, fell_back = _fallback(qs, t, new_type, why)
    return new_type, "; ".join(why), fell_back


def _ftype_name(ftype: int) -> str:
    for name, f, _, _ in _QUANT_OPTIONS:
        if int(f) == int(ftype):
            return name
    return str(int(ftype))


def plan(
    tensors: Sequence[TensorInfo],
    model: ModelInfo,
    recipe: Recipe | str,
    options: Options | None = None,
) -> list[Choice]:
    """The type of every tensor, in the order llama.cpp writes them.

    Follows ``llama_model_quantize_impl``: tensors sorted by `output_order`; the counters
    of ``init_quantize_state_counters`` (``n_attention_wv`` = number of attn_v/attn_qkv/
    attn_kv_b tensors, ``n_ffn_down/gate/up`` = ``model.n_layer``, tied embeddings = no
    tensor named ``output.weight``); then the preliminary pass choosing each type
    (``llama_tensor_get_type``; the ``i_*`` counters move only when the mixture rules run);
    then the checks of the main loop.  Raises `PlanError` where llama.cpp would fail
    (missing imatrix for a type that needs one, imatrix of the wrong length, requantizing
    without ``allow_requantize``, ...) and `FallbackError` under ``options.no_fallback``.
    """
    if isinstance(recipe, str):
        recipe = resolve_recipe(recipe)
    opts = options or Options()
    by_name: dict[str, TensorInfo] = {}
    for t in tensors:
        if t.name in by_name:
            raise PlanError(f"invalid model: tensor '{t.name}' is duplicated")
        by_name[t.name] = TensorInfo(t.name, tuple(int(d) for d in t.shape), Q(t.dtype))
    ordered = [by_name[n] for n in output_order(by_name)]

    ftype = int(recipe.ftype)
    default_type = int(recipe.default_type)
    patterns = []
    for text, qtype in opts.tensor_types:
        try:
            patterns.append((re.compile(text), text, Q(qtype)))
        except re.error as e:
            raise RecipeError(f"invalid --tensor-type pattern {text!r}: {e}") from None
    qs = _State(model=model, options=opts, patterns=patterns)
    qs.has_imatrix = opts.imatrix is not None

    # init_quantize_state_counters
    cats = [tensor_category(t.name) for t in ordered]
    for cat in cats:
        if _is_attn_v(cat):
            qs.n_attention_wv += 1
        if cat == OUTPUT:
            qs.has_tied_embeddings = False
    qs.n_ffn_down = qs.n_ffn_gate = qs.n_ffn_up = model.n_layer

    # preliminary iteration over all weights
    pre: list[tuple[TensorInfo, str, int, str, bool, bool, bool]] = []
    for t, cat in zip(ordered, cats):
        allows, not_why = _allows_quantization(t, model.arch, opts, recipe.only_copy)
        if allows:
            qtype, reason, fell_back = _get_type(qs, t, default_type, ftype, cat)
        else:
            qtype, reason, fell_back = int(t.dtype), f"not quantized: {not_why}", False
        requires = _requires_imatrix(t.name, qtype, ftype)
        if opts.imatrix is None and allows and requires:
            raise PlanError(
                f"this quantization requires an imatrix! (offending tensor: {t.name}, "
                f"target type: {_tname(qtype)})"
            )
        pre.append((t, cat, qtype, reason, fell_back, requires, allows))

    # main loop: the checks done while converting
    out: list[Choice] = []
    for t, cat, qtype, reason, fell_back, requires, _allows in pre:
        convert = int(t.dtype) != qtype
        use_imatrix = False
        if convert:
            if opts.imatrix is not None and t.name in opts.imatrix:
                size = len(opts.imatrix[t.name])
                if size == t.ne(0) * t.ne(2):
                    use_imatrix = True
                elif not _is_token_embd(t.name):
                    raise PlanError(
                        f"imatrix size {size} is different from tensor size {t.ne(0) * t.ne(2)} for {t.name}"
                    )
            if not use_imatrix and requires:
                raise PlanError(
                    f"Missing importance matrix for tensor {t.name} in a very low-bit quantization"
                )
            if _is_quantized(t.dtype) and not opts.allow_requantize:
                raise PlanError(f"requantizing from type {_ggml_type_name(t.dtype)} is disabled")
            if not _is_quantized(t.dtype) and t.dtype not in (Q.F32, Q.F16, Q.BF16):
                raise PlanError(f"cannot dequantize/convert tensor type {_ggml_type_name(t.dtype)}")
            # Only the --output-tensor-type / --token-embedding-type choices skip the
            # fallback.  A type whose block does not divide the row makes ggml write short
            # rows: llama.cpp then fails row validation or aborts, depending on sizes.
            if t.ne(0) % _blck_size(qtype) != 0:
                raise PlanError(
                    f"{t.name}: type {_tname(qtype)} needs rows that are a multiple of "
                    f"{_blck_size(qtype)}, this tensor has {t.ne(0)} (llama.cpp would fail or abort here)"
                )
            # ... and only they can give an imatrix-only type to a tensor exempt from
            # tensor_requires_imatrix: there ggml aborts the process (GGML_ASSERT).
            if qtype in (Q.IQ2_XXS, Q.IQ2_XS, Q.IQ1_S) and not use_imatrix:
                raise PlanError(
                    f"{t.name}: type {_tname(qtype)} cannot be made without an importance "
                    "matrix entry (llama.cpp would abort here)"
                )
        if qtype == _GGML_TYPE_Q2_0:
            raise RecipeError(f"{t.name}: type Q2_0 cannot be named with gguf 0.19.0")
        out.append(
            Choice(
                name=t.name,
                qtype=Q(qtype),
                src_type=t.dtype,
                shape=t.shape[: t.n_dims],
                reason=reason,
                category=cat,
                convert=convert,
                fallback=fell_back,
                use_imatrix=use_imatrix,
                requires_imatrix=requires,
            )
        )
    return out


# ---------------------------------------------------------------------------------------
# Key/value pairs of the output file
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KV:
    """One GGUF key/value pair: ``value`` is a Python scalar, str/bytes, or for ARRAY a list
    whose element type is ``sub_type``."""

    key: str
    type: GGUFValueType
    value: Any
    sub_type: GGUFValueType | None = None


_SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")


def _set(kvs: list[KV], kv: KV) -> None:
    """gguf_set_val_*: remove the key, then append."""
    kvs[:] = [k for k in kvs if k.key != kv.key]
    kvs.append(kv)


def _cut127(s: str | bytes) -> str | bytes:
    """``strncpy(val_str, s, 127)``: at most 127 bytes (a cut inside a UTF-8 sequence
    gives bytes, which gguf writes as they are)."""
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    b = b[:127].split(b"\0", 1)[0]
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b


def quantized_kv(
    input_kv: Sequence[KV],
    recipe: Recipe | str,
    overrides: Sequence[tuple[str, bool | int | float | str]] = (),
    *,
    input_file_type: int | None = None,
) -> list[KV]:
    """The key/value pairs llama_model_quantize writes, in order (see the module docstring).

    ``overrides`` are llama_model_kv_override entries in order: first the user's
    --override-kv, then `quantcli.imatrix.ImatrixData.kv_overrides`.  A bool is written as
    BOOL, an int as UINT32 of its absolute value, a float as FLOAT32, a str as STRING (cut
    to 127 bytes, the size of llama_model_kv_override.val_str).  For the COPY recipe pass
    ``input_file_type`` (`guess_file_type`): llama.cpp then writes the input's file type.
    """
    if isinstance(recipe, str):
        recipe = resolve_recipe(recipe)
    out: list[KV] = []
    for kv in input_kv:
        _set(out, kv)
    ftype = int(recipe.ftype)
    if recipe.only_copy:
        if input_file_type is None:
            raise ValueError("COPY needs input_file_type (see guess_file_type)")
        ftype = int(input_file_type)
    _set(out, KV("general.quantization_version", GGUFValueType.UINT32, GGML_QNT_VERSION))
    _set(out, KV("general.file_type", GGUFValueType.UINT32, ftype))
    out = [k for k in out if k.key not in _SPLIT_KEYS]
    for key, value in overrides:
        if isinstance(value, bool):
            _set(out, KV(key, GGUFValueType.BOOL, value))
        elif isinstance(value, int):
            _set(out, KV(key, GGUFValueType.UINT32, abs(value) & 0xFFFFFFFF))
        elif isinstance(value, float):
            _set(out, KV(key, GGUFValueType.FLOAT32, value))
        elif isinstance(value, (str, bytes)):
            _set(out, KV(key, GGUFValueType.STRING, _cut127(value)))
        else:
            raise TypeError(f"unsupported override value for {key}: {value!r}")
    return out


_GUESS_FTYPE = {
    Q.F32: F.ALL_F32, Q.F16: F.MOSTLY_F16, Q.BF16: F.MOSTLY_BF16, Q.Q4_0: F.MOSTLY_Q4_0,
    Q.Q4_1: F.MOSTLY_Q4_1, Q.Q5_0: F.MOSTLY_Q5_0, Q.Q5_1: F.MOSTLY_Q5_1, Q.Q8_0: F.MOSTLY_Q8_0,
    Q.Q2_K: F.MOSTLY_Q2_K, Q.Q3_K: F.MOSTLY_Q3_K_M, Q.Q4_K: F.MOSTLY_Q4_K_M,
    Q.Q5_K: F.MOSTLY_Q5_K_M, Q.Q6_K: F.MOSTLY_Q6_K, Q.TQ1_0: F.MOSTLY_TQ1_0,
    Q.TQ2_0: F.MOSTLY_TQ2_0, Q.IQ2_XXS: F.MOSTLY_IQ2_XXS, Q.IQ2_XS: F.MOSTLY_IQ2_XS,
    Q.IQ2_S: F.MOSTLY_IQ2_S, Q.IQ3_XXS: F.MOSTLY_IQ3_XXS, Q.IQ1_S: F.MOSTLY_IQ1_S,
    Q.IQ1_M: F.MOSTLY_IQ1_M, Q.IQ4_NL: F.MOSTLY_IQ4_NL, Q.IQ4_XS: F.MOSTLY_IQ4_XS,
    Q.IQ3_S: F.MOSTLY_IQ3_S, Q.NVFP4: F.MOSTLY_NVFP4, Q.Q1_0: F.MOSTLY_Q1_0,
}  # fmt: skip


def guess_file_type(tensors: Sequence[TensorInfo], kv: Mapping[str, Any]) -> int:
    """``llama_model_loader``'s ftype: ``general.file_type`` if present, else the most common
    tensor type's ftype (first to reach the maximum, in `output_order`) | 1024 (GUESSED)."""
    if "general.file_type" in kv:
        return int(kv["general.file_type"])
    counts: dict[Q, int] = {}
    best, best_n = Q.F32, 0
    by_name = {t.name: t for t in tensors}
    for name in output_order(by_name):
        t = by_name[name].dtype
        counts[t] = counts.get(t, 0) + 1
        if best_n < counts[t]:
            best, best_n = t, counts[t]
    return int(_GUESS_FTYPE.get(best, F.ALL_F32)) | _LLAMA_FTYPE_GUESSED
