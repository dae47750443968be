"""quantcli.recipe against llama.cpp itself.

Every expectation here is computed in the test by llama.cpp: ``llama_model_quantize`` from
libllama (llama-cpp-python 0.3.36) quantizes synthetic F32 models and we read back, with
gguf.GGUFReader, the tensor order, the types, the KV pairs, and from its log which tensors
fell back, were converted or went without an importance vector.  Where llama.cpp fails, our
`plan` must refuse with the same message.  The tool-level parts (type names, --tensor-type
parsing, --override-kv, the whole llama-quantize command line) are checked against
llama-quantize's own C++ compiled from the vendored sources (tests/recipe_oracle_cli.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

from quantcli import recipe as R
from tests import recipe_oracle_cli as cli_oracle
from tests import recipe_oracle_llama as L
from tests import recipe_oracle_models as M

IN_SCOPE = list(R.SUPPORTED_RECIPES)
OTHER = [n for n in R.RECIPES if n not in R.SUPPORTED_RECIPES and n != "COPY"]
ALL_MODELS = [m.name for m in M.models()]
# the IQ/TQ/MXFP4 sweep skips the biggest models to stay fast
IQ_MODELS = ["llama16", "llama_gqa4", "smollm2_576", "mixtral8", "mixtral8_split", "moe4", "bert_minilm",
             "gemma3_270m", "falcon", "kitchen_sink", "llama70b"]  # fmt: skip


# ---------------------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------------------


@dataclass
class Loaded:
    path: Path
    tensors: list[R.TensorInfo]
    model: R.ModelInfo
    kv: list[R.KV]
    kvdict: dict[str, Any]


def read_model(path: Path) -> Loaded:
    r = gguf.GGUFReader(str(path))
    kv, kvdict = [], {}
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        value = f.contents()
        kvdict[f.name] = value
        sub = f.types[1] if f.types[0] == V.ARRAY else None
        kv.append(R.KV(f.name, f.types[0], value, sub))
    tensors = [R.TensorInfo(t.name, tuple(int(x) for x in t.shape), Q(t.tensor_type)) for t in r.tensors]
    return Loaded(path, tensors, R.ModelInfo.from_kv(kvdict), kv, kvdict)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Loaded]:
    d = tmp_path_factory.mktemp("models")
    return {m.name: read_model(M.write_model(m, d / f"{m.name}.gguf")) for m in M.models()}


def make_imatrix(tensors: list[R.TensorInfo], seed: int = 0, skip: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        t.name: (rng.random(t.ne(0) * t.ne(2)) + 0.05).astype(np.float32)
        for t in tensors
        if t.n_dims >= 2 and t.name not in skip
    }


def llama_params(o: R.Options) -> dict[str, Any]:
    """The same request, spelled as llama_model_quantize_params."""
    return dict(
        output_tensor_type=o.output_tensor_type,
        token_embedding_type=o.token_embedding_type,
        allow_requantize=o.allow_requantize,
        quantize_output_tensor=not o.leave_output_tensor,
        pure=o.pure,
        tt_overrides=list(o.tensor_types) if o.tensor_types else None,
        imatrix=o.imatrix,
    )


def check(loaded: Loaded, recipe: str, tmp_path: Path, options: R.Options = R.Options(), **extra):
    """Run llama.cpp and plan(); assert they agree.  Returns (choices | None, result)."""
    res = L.quantize(loaded.path, tmp_path / "out.gguf", L.ftype_of(recipe), **llama_params(options), **extra)
    try:
        ours = R.plan(loaded.tensors, loaded.model, R.resolve_recipe(recipe), options)
    except R.PlanError as e:
        assert not res.ok, f"plan refused ({e}) but llama.cpp quantized"
        assert res.error().strip() and res.error().strip() in str(e), (res.error(), str(e))
        return None, res
    assert res.ok, f"llama.cpp failed ({res.error()}) but plan() gave an answer"
    assert [c.name for c in ours] == res.names, "tensor order"
    got = [(c.name, c.qtype.name) for c in ours]
    want = [(n, t.name) for n, t, _ in res.tensors]
    diff = [(a, b) for a, b in zip(got, want) if a != b]
    assert not diff, f"{len(diff)} type differences, first: {diff[:6]}"
    assert [c.shape for c in ours] == [s for _, _, s in res.tensors]
    assert {c.name for c in ours if c.fallback} == res.fallbacks(), "fallbacks"
    assert {c.name: c.convert for c in ours} == res.converted(), "converted vs copied"
    if options.imatrix is not None:
        mismatch = set(re.findall(r"imatrix size \d+ is different from tensor size \d+ for (\S+)", res.log))
        assert {c.name for c in ours if c.convert and not c.use_imatrix} == res.imatrix_missing() | mismatch
    return ours, res


# ---------------------------------------------------------------------------------------
# recipe table
# ---------------------------------------------------------------------------------------


def test_ftype_numbers_match_llama_h():
    for name, rec in R.RECIPES.items():
        assert int(rec.ftype) == L.ftype_of(name), name
    assert set(IN_SCOPE) <= set(R.RECIPES)
    assert R.resolve_recipe("q4_k").name == "Q4_K_M"
    assert R.resolve_recipe("Q3_K").name == "Q3_K_M"
    assert R.resolve_recipe("q5_K").name == "Q5_K_M"


def test_unknown_recipe_suggests_close_names():
    with pytest.raises(R.RecipeError, match="did you mean Q4_K_M"):
        R.resolve_recipe("Q4_KM")
    with pytest.raises(R.RecipeError, match="unknown quantization type"):
        R.resolve_recipe("banana")


def _cli():
    return cli_oracle.require()


NAME_PROBES = (
    [n for n, *_ in R._NAME_TABLE]
    + [n.lower() for n, *_ in R._NAME_TABLE]
    + ["q4_K_m", "Iq2_xxs", "copy", "Copy", "bf16", "f32", "Q4_K_M ", " Q4_K_M", "Q4KM", "Q2_0", "q2_0", "", "x"]
    + [str(i) for i in range(-1, 45)]
    + [" 15", "+15", "15abc", "0x0f", "-0", "1024"]
)


@pytest.mark.parametrize("text", NAME_PROBES)
def test_recipe_names_like_llama_quantize(text):
    """resolve_recipe against llama-quantize's try_parse_ftype."""
    want = _cli().try_parse_ftype(text)
    if want is None:
        with pytest.raises(R.RecipeError):
            R.resolve_recipe(text)
        return
    ftype, name = want
    if ftype == L.constants()["LLAMA_FTYPE_MOSTLY_Q2_0"]:
        with pytest.raises(R.RecipeError, match="gguf 0.19.0"):
            R.resolve_recipe(text)
        return
    rec = R.resolve_recipe(text)
    assert int(rec.ftype) == ftype
    assert name in (rec.name,) + rec.aliases  # llama-quantize may report the alias


TYPE_PROBES = [t.name for t in Q] + [t.name.lower() for t in Q] + ["q4_k", "Q4_K", "bf16", "iq4_nl", "q4", "", "f64", "i32"]


@pytest.mark.parametrize("text", TYPE_PROBES)
def test_ggml_type_names_like_llama_quantize(text):
    want = _cli().parse_ggml_type(text)
    if want == 43:  # GGML_TYPE_COUNT: invalid
        with pytest.raises(R.RecipeError):
            R.parse_ggml_type(text)
    else:
        assert int(R.parse_ggml_type(text)) == want


@pytest.mark.parametrize(
    "arg",
    ["attn_v=q8_0", "ATTN_V=Q6_K", r"blk\.[0-3]\.FFN_DOWN=q5_k", "output.weight=f16", "a=b=q8_0", "=q8_0",
     "attn_v=", "attn_v", "attn_v=q9_9", "Token_Embd=BF16"],
)  # fmt: skip
def test_tensor_type_argument_like_llama_quantize(arg):
    ok, pattern, qtype = _cli().parse_tensor_type(arg)
    if not ok:
        with pytest.raises(R.RecipeError):
            R.parse_tensor_type(arg)
        return
    assert R.parse_tensor_type(arg) == (pattern, Q(qtype))


@pytest.mark.parametrize(
    "arg",
    ["a.b=int:-7", "a.b=int: 12x", "a.b=int:x", "a.b=float:0.25", "a.b=float:1e3z", "a.b=float:-inf",
     "a.b=float:0x1p3", "a.b=bool:true", "a.b=bool:false", "a.b=bool:True", "a.b=str:hello world",
     "a.b=str:" + "x" * 127, "a.b=str:" + "x" * 128, "a.b=int32:3", "noequals", "k" * 128 + "=int:1"],
)  # fmt: skip
def test_kv_override_argument_like_llama_quantize(arg):
    want = _cli().parse_kv_override(arg)
    if want is None:
        with pytest.raises(R.RecipeError):
            R.parse_kv_override(arg)
        return
    key, value = R.parse_kv_override(arg)
    assert key == want[0]
    assert type(value) is type(want[1]) and value == want[1]


# ---------------------------------------------------------------------------------------
# the mixes: every recipe on every model
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", IN_SCOPE)
@pytest.mark.parametrize("model", ALL_MODELS)
def test_mix(models, tmp_path, model, recipe):
    ours, res = check(models[model], recipe, tmp_path)
    if R.RECIPES[recipe].requires_imatrix:
        assert ours is None and "requires an imatrix" in res.error()


@pytest.mark.parametrize("recipe", IN_SCOPE)
@pytest.mark.parametrize("model", ALL_MODELS)
def test_mix_with_imatrix(models, tmp_path, model, recipe):
    m = models[model]
    ours, _ = check(m, recipe, tmp_path, R.Options(imatrix=make_imatrix(m.tensors)))
    assert ours is not None


@pytest.mark.parametrize("recipe", OTHER)
@pytest.mark.parametrize("model", IQ_MODELS)
def test_other_mixes_with_imatrix(models, tmp_path, model, recipe):
    """The IQ/TQ/MXFP4/Q1_0 branches are ported too (the engine does not write these yet)."""
    m = models[model]
    check(m, recipe, tmp_path, R.Options(imatrix=make_imatrix(m.tensors)))


@pytest.mark.parametrize("recipe", OTHER)
@pytest.mark.parametrize("model", ["llama16", "smollm2_576", "mixtral8", "gemma3_270m", "falcon"])
def test_other_mixes_without_imatrix(models, tmp_path, model, recipe):
    check(models[model], recipe, tmp_path)


def test_the_sweep_is_sensitive(models):
    """The synthetic models do exercise the rules that need hparams or tensor names."""
    m70 = models["llama70b"]
    a = R.plan(m70.tensors, m70.model, "Q3_K_S")
    b = R.plan(m70.tensors, replace(m70.model, is_70b=False), "Q3_K_S")
    assert m70.model.llm_type_70b and not models["llama65b"].model.llm_type_70b
    assert models["qwen2_80"].model.llm_type_70b
    assert [c.qtype for c in a] != [c.qtype for c in b]
    ms = models["mixtral8_split"]  # layer from the name, not from the running counter
    a = R.plan(ms.tensors, ms.model, "Q4_K_M")
    b = R.plan(ms.tensors, replace(ms.model, n_expert=1), "Q4_K_M")
    assert [c.qtype for c in a] != [c.qtype for c in b]
    m16 = models["llama16"]
    kinds = {c.qtype for c in R.plan(m16.tensors, m16.model, "Q4_K_M")}
    assert {Q.Q4_K, Q.Q6_K, Q.F32} <= kinds


# ---------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------

OPTION_MODELS = ["llama16", "llama_gqa2_tied", "smollm2_576", "mixtral8", "kitchen_sink", "bert_minilm"]
OPTION_RECIPES = ["Q4_0", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_S", "Q6_K", "Q8_0", "F16"]


@pytest.mark.parametrize("recipe", OPTION_RECIPES + ["Q4_K_S", "Q3_K_L", "BF16"])
@pytest.mark.parametrize("model", OPTION_MODELS)
def test_pure(models, tmp_path, model, recipe):
    check(models[model], recipe, tmp_path, R.Options(pure=True))


@pytest.mark.parametrize("otype", [Q.Q8_0, Q.Q4_0, Q.F16, Q.Q6_K])
@pytest.mark.parametrize("recipe", OPTION_RECIPES)
@pytest.mark.parametrize("model", ["llama16", "llama_gqa2_tied", "kitchen_sink"])
def test_output_tensor_type(models, tmp_path, model, recipe, otype):
    check(models[model], recipe, tmp_path, R.Options(output_tensor_type=otype))


@pytest.mark.parametrize("etype", [Q.Q8_0, Q.Q4_K, Q.F16])
@pytest.mark.parametrize("recipe", OPTION_RECIPES)
@pytest.mark.parametrize("model", ["llama16", "llama_gqa2_tied", "kitchen_sink"])
def test_token_embedding_type(models, tmp_path, model, recipe, etype):
    check(models[model], recipe, tmp_path, R.Options(token_embedding_type=etype))


@pytest.mark.parametrize("recipe", ["Q4_K_M", "Q2_K", "F16"])
def test_token_and_output_types_together_on_tied_model(models, tmp_path, recipe):
    for opts in [
        R.Options(output_tensor_type=Q.Q8_0),  # tied token_embd follows the output rules
        R.Options(output_tensor_type=Q.Q8_0, token_embedding_type=Q.Q4_0),
        R.Options(output_tensor_type=Q.Q8_0, pure=True),
        R.Options(output_tensor_type=Q.Q5_0, tensor_types=[("token_embd", Q.Q4_0)]),
    ]:
        check(models["llama_gqa2_tied"], recipe, tmp_path, opts)


@pytest.mark.parametrize("recipe", ["Q4_K_M", "Q3_K_S", "Q8_0", "F16"])
def test_per_layer_token_embd_and_token_embedding_type(models, tmp_path, recipe):
    m = models["kitchen_sink"]
    for opts in [
        R.Options(token_embedding_type=Q.Q8_0),
        R.Options(token_embedding_type=Q.Q8_0, tensor_types=[("per_layer_token_embd", Q.Q4_0)]),
        R.Options(token_embedding_type=Q.Q8_0, tensor_types=[("token_embd", Q.Q5_0)]),
    ]:
        check(m, recipe, tmp_path, opts)


@pytest.mark.parametrize("recipe", ["Q4_K_M", "Q2_K", "Q6_K", "Q4_0", "F16"])
@pytest.mark.parametrize("model", ["llama16", "llama_gqa2_tied", "falcon"])
def test_leave_output_tensor(models, tmp_path, model, recipe):
    check(models[model], recipe, tmp_path, R.Options(leave_output_tensor=True))
    check(models[model], recipe, tmp_path, R.Options(leave_output_tensor=True, output_tensor_type=Q.Q8_0))


OVERRIDES = {
    "all_attn_v": [("attn_v", Q.Q8_0)],
    "first_attn_v": [(r"blk\.0\.attn_v", Q.Q4_K)],  # the counters then skip one tensor
    "first_match_wins": [("ffn_down", Q.Q5_0), ("ffn_.*", Q.Q8_0), ("attn", Q.Q4_1)],
    "experts": [(r"ffn_.*_exps", Q.Q8_0)],
    "needs_fallback": [("attn_q", Q.Q4_K), ("ffn_up", Q.Q6_K)],
    "output_words": [("output", Q.Q5_1)],
    "to_float": [("ffn_gate", Q.F16), ("attn_k", Q.BF16), ("attn_output", Q.F32)],
    "same_as_default": [(r"blk\.1[0-9]\.", Q.Q4_K)],
    "anchored": [(r"^token_embd\.weight$", Q.Q8_0), (r"weight$", Q.Q5_0)],
}


@pytest.mark.parametrize("recipe", ["Q4_K_M", "Q3_K_M", "Q2_K", "Q5_K_M", "Q4_0", "F16"])
@pytest.mark.parametrize("case", list(OVERRIDES))
@pytest.mark.parametrize("model", ["llama16", "smollm2_576", "mixtral8", "kitchen_sink"])
def test_tensor_type_overrides(models, tmp_path, model, case, recipe):
    check(models[model], recipe, tmp_path, R.Options(tensor_types=OVERRIDES[case]))


def test_overrides_with_pure_and_output_type(models, tmp_path):
    m = models["llama16"]
    for opts in [
        R.Options(pure=True, tensor_types=[("attn_v", Q.Q8_0)]),
        R.Options(output_tensor_type=Q.Q4_0, tensor_types=[("output", Q.Q8_0)]),
        R.Options(token_embedding_type=Q.Q4_0, tensor_types=[("token_embd", Q.Q8_0)]),
    ]:
        check(m, "Q4_K_M", tmp_path, opts)


# ---------------------------------------------------------------------------------------
# importance matrix rules and errors
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", ["Q2_K_S", "IQ2_XXS", "IQ1_S", "IQ3_XXS"])
def test_imatrix_partial(models, tmp_path, recipe):
    """Entries missing for some tensors: quantized without, unless the type needs one."""
    m = models["llama16"]
    im = make_imatrix(m.tensors, skip=("token_embd.weight", "output.weight", "blk.3.ffn_up.weight"))
    check(m, recipe, tmp_path, R.Options(imatrix=im))
    im = make_imatrix(m.tensors, skip=("token_embd.weight", "output.weight"))
    check(m, recipe, tmp_path, R.Options(imatrix=im))


@pytest.mark.parametrize("recipe", ["Q4_0", "Q4_K_M"])
def test_imatrix_wrong_length(models, tmp_path, recipe):
    m = models["mixtral8"]
    im = make_imatrix(m.tensors)
    im["token_embd.weight"] = np.ones(7, np.float32)  # tolerated for token_embd
    ours, _ = check(m, recipe, tmp_path, R.Options(imatrix=im))
    assert ours is not None and not next(c for c in ours if c.name == "token_embd.weight").use_imatrix
    im["blk.1.ffn_down_exps.weight"] = np.ones(512, np.float32)  # one expert's worth: an error
    ours, res = check(m, recipe, tmp_path, R.Options(imatrix=im))
    assert ours is None and "is different from tensor size" in res.error()


def test_empty_imatrix_still_counts_as_imatrix(models, tmp_path):
    """params.imatrix pointing at just the terminator: has_imatrix, no vectors."""
    ours, _ = check(models["llama16"], "Q4_0", tmp_path, R.Options(imatrix={}))
    assert any(c.qtype == Q.Q4_1 for c in ours)  # the Q4_0-with-imatrix ffn_down rule


# ---------------------------------------------------------------------------------------
# sources that are not F32, requantizing, odd models
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def requant_model(tmp_path_factory) -> Loaded:
    m = M.llama("requant", 8)
    m.tensors = [
        (n, s, Q.Q8_0 if "attn_q" in n else Q.Q4_K if "attn_k" in n else Q.F16 if "ffn_up" in n else t)
        for n, s, t in m.tensors
    ]
    return read_model(M.write_model(m, tmp_path_factory.mktemp("rq") / "requant.gguf"))


@pytest.mark.parametrize("recipe", ["Q8_0", "Q4_K_M", "Q4_K_S", "F16", "F32"])
def test_requantize(requant_model, tmp_path, recipe):
    check(requant_model, recipe, tmp_path)  # refused unless every quantized source is kept
    check(requant_model, recipe, tmp_path, R.Options(allow_requantize=True))


def test_unconvertible_source_type(tmp_path):
    m = M.llama("i32", 2)
    m.t("blk.0.ids.weight", 256, 2, dtype=Q.I32)
    loaded = read_model(M.write_model(m, tmp_path / "i32.gguf"))
    ours, res = check(loaded, "Q4_K_M", tmp_path)
    assert ours is None and "cannot dequantize" in res.error()


def test_moe_tensor_without_layer(tmp_path):
    m = M.llama_moe("moe_bad", 2, 8)
    m.t("ffn_down_extra.weight", 512, 2)  # MoE: the layer must come from the name
    loaded = read_model(M.write_model(m, tmp_path / "bad.gguf"))
    ours, res = check(loaded, "Q4_K_M", tmp_path)
    assert ours is None and "Failed to determine layer" in res.error()
    m = M.llama_moe("moe_bad2", 2, 8)
    m.t("blk.7.ffn_down.weight", 512, 2)  # layer 7 of 2
    loaded = read_model(M.write_model(m, tmp_path / "bad2.gguf"))
    ours, res = check(loaded, "Q4_K_M", tmp_path)
    assert ours is None and "Bad layer 7" in res.error()


def test_copy(models, tmp_path):
    for name in ["llama16", "kitchen_sink"]:
        m = models[name]
        res = L.quantize(m.path, tmp_path / "out.gguf", L.ftype_of("F32"), only_copy=True)
        ours = R.plan(m.tensors, m.model, "COPY")
        assert [(c.name, c.qtype) for c in ours] == [(n, t) for n, t, _ in res.tensors]
        assert not any(c.convert for c in ours)
        want = R.quantized_kv(m.kv, "COPY", input_file_type=R.guess_file_type(m.tensors, m.kvdict))
        assert_kv_equal(want, res.kv)


def test_no_fallback(models):
    m = models["smollm2_576"]
    normal = R.plan(m.tensors, m.model, "Q4_K_M")
    first = next(c for c in normal if c.fallback)
    with pytest.raises(R.FallbackError, match=re.escape(first.name)):
        R.plan(m.tensors, m.model, "Q4_K_M", R.Options(no_fallback=True))
    m = models["llama16"]
    assert R.plan(m.tensors, m.model, "Q4_K_M", R.Options(no_fallback=True)) == R.plan(m.tensors, m.model, "Q4_K_M")


def test_choice_reasons_are_informative(models):
    m = models["smollm2_576"]
    by = {c.name: c for c in R.plan(m.tensors, m.model, "Q4_K_M", R.Options(tensor_types=[("blk.0.attn_q", Q.Q8_0)]))}
    assert by["blk.0.attn_q.weight"].reason.startswith("override")
    assert "fallback" in by["blk.1.attn_q.weight"].reason
    assert by["output_norm.weight"].reason == "not quantized: 1-D tensor"
    assert "use_more_bits" in by["blk.0.ffn_down.weight"].reason


# ---------------------------------------------------------------------------------------
# key/value pairs
# ---------------------------------------------------------------------------------------


def _norm(types: list[V], value: Any) -> Any:
    if types[0] == V.FLOAT32:
        return float(np.float32(value))
    if types[0] == V.STRING and isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if types[0] == V.ARRAY:
        return [_norm(types[1:], v) for v in value]
    return value


def assert_kv_equal(ours: list[R.KV], theirs: list[tuple[str, list[V], Any]]) -> None:
    assert [k.key for k in ours] == [k for k, _, _ in theirs]
    for k, (key, types, value) in zip(ours, theirs):
        assert k.type == types[0], key
        if k.type == V.ARRAY:
            assert k.sub_type == types[1], key
        assert _norm(types, k.value) == _norm(types, value), key


@pytest.fixture(scope="module")
def kv_model(tmp_path_factory) -> Loaded:
    m = M.llama("kvs", 2)
    head = [
        ("general.file_type", 1, V.UINT32, None),  # converters write it early: it moves to the end
        ("general.name", "Tiny Llama", V.STRING, None),
        ("split.no", 0, V.UINT16, None),
        ("split.count", 1, V.UINT16, None),
        ("split.tensors.count", 21, V.INT32, None),
        ("general.quantization_version", 1, V.UINT32, None),
        ("test.i8", -3, V.INT8, None),
        ("test.u64", 2**40, V.UINT64, None),
        ("test.i64", -(2**40), V.INT64, None),
        ("test.f64", 0.1, V.FLOAT64, None),
        ("test.bool", True, V.BOOL, None),
        ("test.arr_f32", [0.1, 0.2], V.ARRAY, V.FLOAT32),
        ("test.over", 5, V.UINT32, None),
    ]
    m.kv = head + m.kv
    return read_model(M.write_model(m, tmp_path_factory.mktemp("kv") / "kvs.gguf"))


@pytest.mark.parametrize("recipe", ["Q4_K_M", "Q8_0", "F16", "Q2_K"])
def test_kv_pairs(kv_model, tmp_path, recipe):
    res = L.quantize(kv_model.path, tmp_path / "out.gguf", L.ftype_of(recipe))
    assert res.ok
    assert_kv_equal(R.quantized_kv(kv_model.kv, recipe), res.kv)
    assert res.kv[-1][0] == "general.file_type" and res.kv[-1][2] == L.ftype_of(recipe)


def test_kv_overrides(kv_model, tmp_path):
    overrides = [
        ("test.over", -9),  # existing key: removed, appended as UINT32 abs()
        ("test.new_f", 0.1),
        ("test.new_b", False),
        ("general.name", "y" * 200),  # cut to 127 bytes
        ("test.utf8", "é" * 100),  # cut inside a 2-byte character
        ("general.file_type", 3),
        ("test.big", -(2**33) - 5),
    ]
    res = L.quantize(kv_model.path, tmp_path / "out.gguf", L.ftype_of("Q4_K_M"), kv_overrides=overrides)
    assert res.ok
    assert_kv_equal(R.quantized_kv(kv_model.kv, "Q4_K_M", overrides), res.kv)


def test_whole_llama_quantize_command_line(models, tmp_path):
    """llama-quantize's main(): argument parsing, lower-cased patterns, the mix, the KV."""
    o = _cli()
    m = models["llama16"]
    out = tmp_path / "cli.gguf"
    args = ["--tensor-type", r"BLK\.[0-3]\.ATTN_V=q8_0", "--tensor-type", "ffn_up=Q5_0",
            "--output-tensor-type", "q8_0", "--override-kv", "test.x=int:-4",
            "--override-kv", "general.name=str:cli"]  # fmt: skip
    assert o.llama_quantize(*args, str(m.path), str(out), "q4_k_m", "2") == 0
    opts = R.Options(
        tensor_types=[R.parse_tensor_type(args[1]), R.parse_tensor_type(args[3])],
        output_tensor_type=R.parse_ggml_type("q8_0"),
    )
    ours = R.plan(m.tensors, m.model, R.resolve_recipe("q4_k_m"), opts)
    r = gguf.GGUFReader(str(out))
    assert [(c.name, c.qtype) for c in ours] == [(t.name, Q(t.tensor_type)) for t in r.tensors]
    theirs = [(f.name, list(f.types), f.contents()) for f in r.fields.values() if not f.name.startswith("GGUF.")]
    kvo = [R.parse_kv_override(args[7]), R.parse_kv_override(args[9])]
    assert_kv_equal(R.quantized_kv(m.kv, "Q4_K_M", kvo), theirs)


@pytest.fixture(scope="module")
def quirk_models(tmp_path_factory) -> dict[str, Loaded]:
    d = tmp_path_factory.mktemp("quirks")
    return {m.name: read_model(M.write_model(m, d / f"{m.name}.gguf")) for m in M.layer_count_quirks()}


@pytest.mark.parametrize("recipe", IN_SCOPE)
@pytest.mark.parametrize("model", ["nanbeige_loops", "graniteswitch", "llama70b_nextn"])
def test_layer_count_quirks(quirk_models, tmp_path, model, recipe):
    """n_layer_all != block_count (nanbeige loops, graniteswitch router layer) and a llama
    whose MTP layer hides a 70B (n_layer() = block_count - nextn_predict_layers)."""
    m = quirk_models[model]
    opts = R.Options(imatrix=make_imatrix(m.tensors)) if recipe == "Q2_K_S" else R.Options()
    ours, _ = check(m, recipe, tmp_path, opts)
    assert ours is not None
    if recipe == "Q4_K_M":  # the quirk matters for this mix
        block_count = int(m.kvdict[f"{m.model.arch}.block_count"])
        naive = R.ModelInfo(m.model.arch, block_count, m.model.n_head, m.model.n_head_kv)
        assert [c.qtype for c in R.plan(m.tensors, naive, recipe)] != [c.qtype for c in ours]


@pytest.fixture(scope="module")
def untied_576(tmp_path_factory) -> Loaded:
    m = M.llama("untied_576", 4, d=576, ff=1536, nh=9, nkv=3)
    return read_model(M.write_model(m, tmp_path_factory.mktemp("u576") / "u576.gguf"))


@pytest.mark.parametrize(
    "which,options",
    [("untied_576", R.Options(output_tensor_type=Q.Q4_K)),  # these two options skip the fallback
     ("untied_576", R.Options(token_embedding_type=Q.Q6_K)),
     ("bert_minilm", R.Options(token_embedding_type=Q.Q4_K)),
     ("llama16", R.Options(output_tensor_type=Q.IQ2_XXS)),  # imatrix-only type, output is exempt
     ("llama16", R.Options(token_embedding_type=Q.IQ2_XXS))],
)  # fmt: skip
def test_where_llama_cpp_fails_or_aborts_we_refuse(models, untied_576, tmp_path, which, options):
    """llama.cpp either fails ('quantized data validation failed') or kills the process
    (GGML_ASSERT), depending on sizes; plan() refuses cleanly.  Tied models are fine: there
    --output-tensor-type reaches token_embd through the rules, with the fallback."""
    m = untied_576 if which == "untied_576" else models[which]
    with pytest.raises(R.PlanError, match="would (fail or )?abort"):
        R.plan(m.tensors, m.model, "Q4_K_M", options)
    try:
        res = L.quantize(m.path, tmp_path / "out.gguf", L.ftype_of("Q4_K_M"), **llama_params(options))
    except RuntimeError as e:
        assert "worker process died" in str(e)
    else:
        assert not res.ok and "validation failed" in res.error()
    if which == "untied_576" and options.output_tensor_type is not None:
        ours, _ = check(models["smollm2_576"], "Q4_K_M", tmp_path, options)
        assert ours is not None
