"""llama.cpp loads what we write, tokenizes like the model's own tokenizer, and computes
the same logits as from llama.cpp's own conversion."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import Tokenizer

from quantcli import convert as C
from tests import llama_runtime
from tests.test_convert_reference import REAL, SYNTHETIC, fixture, theirs

MULTILINGUAL = [
    "Hello world! 123 4567 test.",
    "The quick brown fox jumps over the lazy dog.",
    "нещо на Български; 我想在apple工作1314151天～ Grüße, café, naïve 🚀",
    "  two  spaces\tand a tab\nnew line 3.14159 ->> ...",
]
EMBEDDING = {"bert", "minilm"}


@pytest.mark.parametrize("name", SYNTHETIC + REAL)
def test_llama_cpp_loads_and_tokenizes_like_the_tokenizer(name, tmp_path):
    folder = fixture(name)
    (path,) = C.convert(folder, ["Q8_0"], C.Options(out=tmp_path / "m.gguf"))
    res = llama_runtime.run(path, texts=MULTILINGUAL, prompt="Hello world", embedding=name in EMBEDDING)
    if name in EMBEDDING:
        e = np.asarray(res["embedding"])
        assert np.isfinite(e).all() and np.abs(e).max() > 0
    else:
        lg = np.asarray(res["logits"])
        assert lg.shape[1] == res["n_vocab"] and np.isfinite(lg).all() and lg.std() > 0
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()  # tokenizer.json may pad/truncate to a fixed length (MiniLM: 128)
    tok.no_truncation()
    expected = [tok.encode(t, add_special_tokens=False).ids for t in MULTILINGUAL]
    assert res["tokens"] == expected


def test_smollm2_logits_equal_llama_cpp_own_conversion(tmp_path):
    folder = fixture("smollm2")
    (ours,) = C.convert(folder, ["F16"], C.Options(out=tmp_path / "ours.gguf"))
    ref = theirs(folder, "F16")
    prompt = "The capital of France is"
    a = llama_runtime.run(ours, prompt=prompt)
    b = llama_runtime.run(ref, prompt=prompt)
    assert a["prompt_tokens"] == b["prompt_tokens"]
    np.testing.assert_array_equal(np.asarray(a["logits"]), np.asarray(b["logits"]))
    # and the model is the real one: greedy next token after the prompt is " Paris"
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tok.decode([int(np.argmax(a["logits"][-1]))]) == " Paris"
