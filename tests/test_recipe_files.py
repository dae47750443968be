"""Whole files: `quant convert MODEL RECIPE` against llama.cpp's two steps -- its converter
to F32, then `llama_model_quantize` -- computed in the test.  Same tensor names, order,
types, shapes and bytes; same key/value pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

from quantcli import convert as C
from quantcli import recipe as R
from quantcli.imatrix import load_imatrix, write_imatrix_dat, write_imatrix_gguf
from tests.recipe_oracle_llama import ftype_of, quantize
from tests.reference import assert_same_gguf, gguf_dump
from tests.test_convert_reference import fixture, theirs

QUANT_RECIPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L",
                 "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K"]
FIXTURES = ["smollm2", "minilm", "llama-gqa", "qwen2moe", "mixtral", "llama-tied"]


def llama_cpp_two_steps(folder: Path, recipe: str, tmp_path: Path, **params) -> Path:
    f32 = theirs(folder, "F32")
    out = tmp_path / f"llama-{recipe}.gguf"
    res = quantize(f32, out, ftype_of(recipe), **params)
    assert res.ok, f"llama_model_quantize failed: {res.error() or res.log[-1500:]}"
    return out


def ours(folder: Path, recipes: list[str], tmp_path: Path, **opts) -> list[Path]:
    out = tmp_path / "ours"
    out.mkdir(parents=True, exist_ok=True)
    return C.convert(folder, recipes, C.Options(out=out, **opts))


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("recipe", QUANT_RECIPES)
def test_recipe_equals_llama_quantize(name, recipe, tmp_path):
    folder = fixture(name)
    (path,) = ours(folder, [recipe], tmp_path)
    assert_same_gguf(path, llama_cpp_two_steps(folder, recipe, tmp_path))


@pytest.mark.parametrize("name", ["smollm2", "llama-gqa", "qwen2moe"])
@pytest.mark.parametrize("recipe", ["F16", "BF16", "F32", "Q8_0"])
def test_float_and_q8_recipes_have_llama_quantize_types_and_bytes(name, recipe, tmp_path):
    """F32/F16/BF16/Q8_0 are written as convert_hf_to_gguf.py writes them (its tensor and
    key order); every tensor has the type and bytes llama-quantize would give it."""
    folder = fixture(name)
    (path,) = ours(folder, [recipe], tmp_path)
    a = {t.name: t for t in gguf_dump(path).tensors}
    b = {t.name: t for t in gguf_dump(llama_cpp_two_steps(folder, recipe, tmp_path)).tensors}
    assert a.keys() == b.keys()
    for n in a:
        assert (a[n].qtype, a[n].sha256) == (b[n].qtype, b[n].sha256), n


# -- importance matrices --------------------------------------------------------------------

def make_imatrix(folder: Path, tmp_path: Path, fmt: str) -> Path:
    """A random importance matrix for every matrix the recipe rules look at, in llama.cpp's
    file format (raw sums + counts), with some all-zero columns and an unrouted expert."""
    from gguf import GGUFReader

    f32 = GGUFReader(theirs(folder, "F32"))
    rng = np.random.default_rng(0)
    sums, counts = {}, {}
    for t in f32.tensors:
        if not t.name.startswith("blk.") or len(t.shape) < 2:
            continue
        ne0 = int(t.shape[0])
        n_mat = int(t.shape[2]) if len(t.shape) > 2 else 1
        s = (rng.random((n_mat, ne0)) ** 3 * 50).astype(np.float32)
        s[:, rng.random(ne0) < 0.03] = 0.0
        c = rng.integers(10, 100, n_mat).astype(np.float32)
        if n_mat > 1:
            c[-1] = 0  # an expert the calibration never routed to
        sums[t.name] = s
        counts[t.name] = c
    path = tmp_path / ("imatrix.gguf" if fmt == "gguf" else "imatrix.dat")
    if fmt == "gguf":
        write_imatrix_gguf(path, sums, counts, datasets=["wiki.train.raw"], chunk_count=12, chunk_size=512)
    else:
        write_imatrix_dat(path, sums, counts, chunk_size=512, last_chunk=12, dataset="wiki.train.raw")
    return path


@pytest.mark.parametrize("fmt", ["gguf", "dat"])
@pytest.mark.parametrize("recipe", ["Q4_K_M", "Q3_K_S", "Q2_K_S", "Q4_0", "Q5_1", "Q6_K"])
@pytest.mark.parametrize("name", ["llama-gqa", "qwen2moe"])
def test_imatrix_gives_llama_quantize_bytes(name, recipe, fmt, tmp_path):
    folder = fixture(name)
    imat = make_imatrix(folder, tmp_path, fmt)
    data = load_imatrix(imat)
    ref = llama_cpp_two_steps(folder, recipe, tmp_path, imatrix=data.entries,
                              kv_overrides=data.kv_overrides(str(imat)))
    (path,) = ours(folder, [recipe], tmp_path, imatrix=imat)
    assert path.name.endswith(f"-{recipe}-imat.gguf")
    assert_same_gguf(path, ref)


def test_recipe_needing_an_imatrix_fails_before_any_work(tmp_path):
    folder = fixture("llama-gqa")
    with pytest.raises(C.InputError, match="Q2_K_S.*--imatrix"):
        ours(folder, ["Q4_K_M", "Q2_K_S"], tmp_path)
    assert not list((tmp_path / "ours").iterdir())


# -- overrides ---------------------------------------------------------------------------

OVERRIDES = [
    ("pure", dict(pure=True), dict(pure=True)),
    ("leave-output", dict(leave_output_tensor=True), dict(quantize_output_tensor=False)),
    ("output-type", dict(output_tensor_type=Q.Q8_0), dict(output_tensor_type=int(Q.Q8_0))),
    ("embd-type", dict(token_embedding_type=Q.Q5_0), dict(token_embedding_type=int(Q.Q5_0))),
    ("tensor-type", dict(tensor_types=(R.parse_tensor_type("ffn_down=Q8_0"), R.parse_tensor_type("ATTN_V=q5_0"))),
     dict(tt_overrides=[("ffn_down", int(Q.Q8_0)), ("attn_v", int(Q.Q5_0))])),
]


@pytest.mark.parametrize("label, ours_opts, llama_params", OVERRIDES, ids=[o[0] for o in OVERRIDES])
@pytest.mark.parametrize("name", ["llama-gqa", "smollm2"])
def test_overrides_match_llama_quantize_params(name, label, ours_opts, llama_params, tmp_path):
    folder = fixture(name)
    (path,) = ours(folder, ["Q4_K_M"], tmp_path, quant=R.Options(**ours_opts))
    assert "Q4_K_M-pure" in path.name if label == "pure" else "Q4_K_M-custom" in path.name
    assert_same_gguf(path, llama_cpp_two_steps(folder, "Q4_K_M", tmp_path, **llama_params))


def test_embedding_type_that_does_not_fit_the_rows_is_refused_like_llama_cpp(tmp_path):
    """--token-embedding-type skips llama.cpp's fallback: Q4_K cannot hold SmolLM2's rows of
    576; llama.cpp fails, and so do we, before writing anything, naming the tensor."""
    folder = fixture("smollm2")
    f32 = theirs(folder, "F32")
    res = quantize(f32, tmp_path / "llama.gguf", ftype_of("Q4_K_M"), token_embedding_type=int(Q.Q4_K))
    assert not res.ok
    with pytest.raises(C.InputError, match="token_embd.weight"):
        ours(folder, ["Q4_K_M"], tmp_path, quant=R.Options(token_embedding_type=Q.Q4_K))
    assert not list((tmp_path / "ours").iterdir())


def test_several_recipes_in_one_run_equal_separate_runs(tmp_path):
    folder = fixture("smollm2")
    together = ours(folder, ["Q4_K_M", "Q5_K_M", "Q8_0"], tmp_path / "a")
    for path in together:
        recipe = path.stem.rsplit("-", 1)[-1]
        (alone,) = ours(folder, [recipe.replace("_M", "_M")], tmp_path / f"b-{recipe}")
        assert path.read_bytes() == alone.read_bytes()


# -- GGUF sources: requantizing -------------------------------------------------------------

@pytest.mark.parametrize("name, fmt", [("mixtral", "F16"), ("gpt2", "F16"), ("smollm2-bf16", "BF16"), ("llama-gqa", "BF16")])
def test_requantizing_our_float_file_equals_converting_directly(name, fmt, tmp_path):
    """The checkpoint's values are exact in its own dtype, so its F16/BF16 file holds them
    all: Q4_K_M from that file and from the checkpoint are the same file."""
    folder = fixture(name)
    (float_file,) = ours(folder, [fmt], tmp_path / "float")
    (from_file,) = C.convert(float_file, ["Q4_K_M"], C.Options(out=tmp_path / "a.gguf"))
    (direct,) = ours(folder, ["Q4_K_M"], tmp_path / "direct")
    assert from_file.read_bytes() == direct.read_bytes()


@pytest.mark.parametrize("recipe", ["Q4_K_M", "Q3_K_S", "Q8_0", "F16"])
def test_requantizing_a_gguf_equals_llama_quantize_on_it(recipe, tmp_path):
    folder = fixture("qwen2moe")
    bf16 = ours(folder, ["BF16"], tmp_path / "in", split_max_tensors=10)[0]  # a split input
    assert "-00001-of-" in bf16.name
    (path,) = C.convert(bf16, [recipe], C.Options(out=tmp_path / "ours.gguf"))
    ref = tmp_path / "llama.gguf"
    res = quantize(bf16, ref, ftype_of(recipe))
    assert res.ok, res.error()
    assert_same_gguf(path, ref)


def test_quantized_input_needs_allow_requantize(tmp_path):
    folder = fixture("llama-gqa")
    (q8,) = ours(folder, ["Q8_0"], tmp_path / "in")
    with pytest.raises(C.InputError, match="requantizing from type q8_0 is disabled"):
        C.convert(q8, ["Q4_K_M"], C.Options(out=tmp_path / "x.gguf"))
    (path,) = C.convert(q8, ["Q4_K_M"], C.Options(out=tmp_path / "ours.gguf", quant=R.Options(allow_requantize=True)))
    ref = tmp_path / "llama.gguf"
    res = quantize(q8, ref, ftype_of("Q4_K_M"), allow_requantize=True)
    assert res.ok, res.error()
    assert_same_gguf(path, ref)
