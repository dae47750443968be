"""`quant inspect FILE.gguf`: metadata, tensor table, type histogram, size and bits per
weight, as tables or --json; split files read as one model.  Checked against gguf's own
GGUFReader."""

from __future__ import annotations

import json
import os

import gguf
import numpy as np
import pytest

from tests.cli_support import DEMO, quant


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inspect")
    r = quant("convert", DEMO, "Q4_K_M", "Q8_0", "-o", f"{d}/", "-q")
    assert r.returncode == 0, r.stderr
    r = quant("convert", DEMO, "Q8_0", "-o", f"{d}/split/", "--split-max-tensors", "8", "-q")
    assert r.returncode == 0, r.stderr
    return d


def inspect_json(*args):
    r = quant("inspect", *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_json_against_gguf_reader(files):
    path = files / "Tiny-Llama-Demo-1.7M-Q4_K_M.gguf"
    s = inspect_json(path)
    reader = gguf.GGUFReader(path)
    assert s["file"] == str(path) and s["files"] == [str(path)]
    assert s["file_bytes"] == os.path.getsize(path)
    assert s["architecture"] == "llama" and s["name"] == "Tiny Llama Demo"
    assert s["file_type"] == "MOSTLY_Q4_K_M"
    expect = [{"name": t.name, "shape": [int(x) for x in t.shape], "type": t.tensor_type.name,
               "bytes": int(t.n_bytes)} for t in reader.tensors]
    assert s["tensors"] == expect
    assert s["tensor_count"] == len(expect)
    weights = sum(int(np.prod(t["shape"])) for t in expect)
    nbytes = sum(t["bytes"] for t in expect)
    assert s["weights"] == weights and s["tensor_bytes"] == nbytes
    assert s["bits_per_weight"] == pytest.approx(8 * nbytes / weights)
    # histogram
    assert sum(h["tensors"] for h in s["types"].values()) == len(expect)
    for name, h in s["types"].items():
        mine = [t for t in expect if t["type"] == name]
        assert h["tensors"] == len(mine) and h["bytes"] == sum(t["bytes"] for t in mine)
        assert h["bits_per_weight"] == pytest.approx(8 * h["bytes"] / h["weights"])
    assert s["types"]["Q4_K"]["bits_per_weight"] == 4.5 and s["types"]["Q6_K"]["bits_per_weight"] == 6.5625
    # metadata: every key, in file order, with its type; long arrays shortened
    keys = [f.name for f in reader.fields.values() if not f.name.startswith("GGUF.")]
    assert list(s["metadata"]) == keys == list(s["metadata_types"])
    assert s["metadata"]["general.file_type"] == 15
    assert s["metadata_types"]["tokenizer.ggml.tokens"] == "ARRAY[STRING]"
    assert s["metadata_types"]["llama.rope.freq_base"] == "FLOAT32"
    assert s["metadata"]["tokenizer.ggml.tokens"].startswith("[1024 items: '<unk>', '<s>', '</s>', ...")


def test_full_and_partial_json(files):
    path = files / "Tiny-Llama-Demo-1.7M-Q8_0.gguf"
    s = inspect_json(path, "--full")
    assert len(s["metadata"]["tokenizer.ggml.tokens"]) == 1024
    s = inspect_json(path, "--no-tensors", "--no-metadata")
    assert "tensors" not in s and "metadata" not in s and s["tensor_count"] == 21


def test_table(files):
    path = files / "Tiny-Llama-Demo-1.7M-Q4_K_M.gguf"
    r = quant("inspect", path, env=None)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for text in (str(path), "architecture", "llama", "MOSTLY_Q4_K_M", "1,097,984 bytes", "bits per weight",
                 "5.0359", "metadata (34 keys)", "general.name", "Tiny Llama Demo", "tokenizer.ggml.tokens",
                 "[1024 items", "types", "Q6_K", "6.562", "tensors (21)", "blk.1.ffn_down.weight",
                 "256 x 1024", "215,040"):
        assert text in out, text
    # a float32 key is shown as the value it holds, not its double expansion
    assert "1e-05" in out and "9.99999974" not in out


def test_split_files_read_as_one(files):
    split = files / "split"
    parts = sorted(split.iterdir())
    assert [p.name for p in parts] == [f"Tiny-Llama-Demo-1.7M-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    whole = inspect_json(files / "Tiny-Llama-Demo-1.7M-Q8_0.gguf")
    for part in (parts[0], parts[2]):  # any part names the whole model
        s = inspect_json(part)
        assert s["files"] == [str(p) for p in parts]
        assert s["file_bytes"] == sum(p.stat().st_size for p in parts)
        assert s["tensors"] == whole["tensors"]
        assert s["types"] == whole["types"] and s["bits_per_weight"] == whole["bits_per_weight"]
        assert s["metadata"]["split.count"] == 3
    r = quant("inspect", parts[1])
    assert r.returncode == 0 and "(3 split files)" in r.stdout


def test_missing_split_part(files, tmp_path):
    for p in sorted((files / "split").iterdir())[:2]:
        (tmp_path / p.name).write_bytes(p.read_bytes())
    r = quant("inspect", tmp_path / "Tiny-Llama-Demo-1.7M-Q8_0-00001-of-00003.gguf")
    assert r.returncode == 3
    assert "split part(s) Tiny-Llama-Demo-1.7M-Q8_0-00003-of-00003.gguf are missing" in r.stderr


def test_bad_files(files, tmp_path):
    r = quant("inspect", tmp_path / "nope.gguf")
    assert r.returncode == 3 and f"error: {tmp_path / 'nope.gguf'}: no such file" in r.stderr
    (tmp_path / "text.gguf").write_text("hello, not a model\n")
    r = quant("inspect", tmp_path / "text.gguf")
    assert r.returncode == 3 and "not a readable GGUF file" in r.stderr
    data = (files / "Tiny-Llama-Demo-1.7M-Q8_0.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) // 2])
    r = quant("inspect", tmp_path / "cut.gguf")
    assert r.returncode == 3 and "cut.gguf: not a readable GGUF file" in r.stderr
    assert "Traceback" not in r.stderr
