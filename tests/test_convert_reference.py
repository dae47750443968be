"""`quant convert` against llama.cpp's own convert_hf_to_gguf.py, fixture by fixture:
the same key/value pairs (order, types, values) and the same tensors (names, order, shapes,
types, bytes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fixtures.make_synthetic import REAL_LAYOUT_NAMES
from fixtures.registry import FixtureUnavailable, ensure_fixture
from quantcli import convert as C
from tests.reference import ReferenceUnavailable, assert_same_gguf, reference_convert, reference_default_name

SYNTHETIC = ["llama-gqa", "llama-tied", "llama-spm", "mistral", "mixtral", "qwen2", "qwen3",
             "gemma2", "gemma3", "phi3", "gpt2", "bert", "qwen2moe", "qwen3moe", "demo"]
REAL = ["smollm2", "smollm2-bf16", "minilm"]
# shrunk copies of real hub models' configs and tensor layouts (fixtures/make_synthetic.py, "real-*")
REAL_LAYOUTS = list(REAL_LAYOUT_NAMES)


def fixture(name: str) -> Path:
    try:
        return ensure_fixture(name)
    except FixtureUnavailable as e:
        pytest.skip(f"fixture {name} unavailable: {e}")


def ours(folder: Path, outtype: str, tmp_path: Path, **opts) -> Path:
    out = tmp_path / f"ours-{outtype}.gguf"
    (path,) = C.convert(folder, [outtype], C.Options(out=out, **opts))
    return path


def theirs(folder: Path, outtype: str, *extra: str) -> Path:
    try:
        return reference_convert(folder, outtype.lower(), tuple(extra))
    except ReferenceUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("name", SYNTHETIC + REAL)
@pytest.mark.parametrize("outtype", ["F16", "Q8_0"])
def test_same_file_as_llama_cpp(name, outtype, tmp_path):
    folder = fixture(name)
    assert_same_gguf(ours(folder, outtype, tmp_path), theirs(folder, outtype))


@pytest.mark.parametrize("name", [n for n in REAL_LAYOUTS if n != "real-gpt2"])
def test_real_layout_same_file_as_llama_cpp(name, tmp_path):
    """F16 only: each reference conversion costs seconds; the Q8_0 path is the synthetic fixtures'."""
    folder = fixture(name)
    assert_same_gguf(ours(folder, "F16", tmp_path), theirs(folder, "F16"))


def test_gpt2_mask_buffers_are_skipped(tmp_path):
    """openai-community/gpt2's model.safetensors carries h.N.attn.bias causal-mask buffers;
    llama.cpp's converter stops on them, quantcli leaves them out (a documented difference)
    and writes what the converter writes for the model re-saved without them."""
    with_buffers, resaved = fixture("real-gpt2"), fixture("real-gpt2-resaved")
    with pytest.raises(AssertionError, match=re.escape("Can not map tensor 'h.0.attn.bias'")):
        theirs(with_buffers, "F16")
    # the folder name is all that differs between the two, and general.name/basename come from it
    assert_same_gguf(ours(with_buffers, "F16", tmp_path), theirs(resaved, "F16"),
                     ignore_keys=("general.name", "general.basename"))


@pytest.mark.parametrize("name", ["smollm2-bf16", "minilm", "qwen2moe", "gemma3", "llama-spm"])
@pytest.mark.parametrize("outtype", ["F32", "BF16", "auto"])
def test_other_outtypes(name, outtype, tmp_path):
    folder = fixture(name)
    assert_same_gguf(ours(folder, outtype, tmp_path), theirs(folder, outtype))


def test_split_by_tensor_count_matches_llama_cpp(tmp_path):
    folder = fixture("llama-gqa")
    out = tmp_path / "split.gguf"
    paths = C.convert(folder, ["F16"], C.Options(out=out, split_max_tensors=7))
    assert [p.name for p in paths] == [f"split-{i:05d}-of-00004.gguf" for i in range(1, 5)]
    ref = theirs(folder, "F16", "--split-max-tensors", "7")
    assert_same_gguf(paths[0], ref)


def test_split_by_size_matches_llama_cpp(tmp_path):
    folder = fixture("llama-gqa")
    paths = C.convert(folder, ["F32"], C.Options(out=tmp_path / "s.gguf", split_max_size=1_000_000))
    assert len(paths) > 2
    assert_same_gguf(paths[0], theirs(folder, "F32", "--split-max-size", "1M"))


@pytest.mark.parametrize("name", ["smollm2", "minilm", "qwen2moe", "phi3", "real-Mixtral-8x7B-Instruct-v0.1",
                                  "real-Qwen3-30B-A3B"])
def test_default_name_is_the_one_llama_cpp_picks(name, tmp_path, monkeypatch):
    """<BaseName>-<Size>-<FineTune>-<Version>-<TYPE>.gguf, from the same metadata."""
    monkeypatch.chdir(tmp_path)
    folder = fixture(name)
    (path,) = C.convert(folder, ["F16"], C.Options())
    try:
        expected = reference_default_name(folder, "f16")
    except ReferenceUnavailable as e:
        pytest.skip(str(e))
    assert path == tmp_path / expected
    assert path.name.endswith("-F16.gguf")
