"""The safetensors reader: exact values, row ranges, shards, and every lie a header can tell."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from quantcli.checkpoint import Checkpoint, parse_header
from quantcli.errors import InputError


def write_raw(path, header: dict, data: bytes, declared_len: int | None = None):
    blob = json.dumps(header).encode()
    n = len(blob) if declared_len is None else declared_len
    path.write_bytes(struct.pack("<Q", n) + blob + data)


def test_reads_exactly_what_safetensors_wrote(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "b.weight": rng.standard_normal((7, 33)).astype(np.float32),
        "a.weight": rng.standard_normal((5, 4, 3)).astype(np.float16),
        "c.bias": rng.standard_normal(9).astype(np.float32),
    }
    save_file(tensors, tmp_path / "model.safetensors")
    ref = load_file(tmp_path / "model.safetensors")
    with Checkpoint(tmp_path) as ck:
        assert [r.name for r in ck] == sorted(tensors)  # the converter's order
        for name in tensors:
            np.testing.assert_array_equal(ck.read(name), ref[name].astype(np.float32))
        # row ranges: every dimension but the last flattened
        np.testing.assert_array_equal(ck.read("a.weight", 3, 17), ref["a.weight"].reshape(20, 3)[3:17])
        np.testing.assert_array_equal(ck.read("b.weight", 5), ref["b.weight"][5:])


def test_bf16_widens_exactly(tmp_path):
    bits = np.array([0x3F80, 0xBF80, 0x0001, 0x7F7F, 0x8000, 0x4049], dtype="<u2")
    header = {"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}}
    write_raw(tmp_path / "model.safetensors", header, bits.tobytes())
    with Checkpoint(tmp_path) as ck:
        got = ck.read("w")
    expected = (bits.astype(np.uint32) << 16).view(np.float32).reshape(2, 3)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    assert got[0, 0] == 1.0 and got[0, 1] == -1.0


def test_sharded_checkpoint_uses_the_index(tmp_path):
    save_file({"x.weight": np.ones((2, 2), np.float32)}, tmp_path / "model-00002-of-00002.safetensors")
    save_file({"y.weight": np.zeros((2, 2), np.float32)}, tmp_path / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"x.weight": "model-00002-of-00002.safetensors",
                            "y.weight": "model-00001-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with Checkpoint(tmp_path) as ck:
        assert [r.name for r in ck] == ["y.weight", "x.weight"]  # files sorted by name
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(InputError, match="model-00002-of-00002.safetensors.*missing"):
        Checkpoint(tmp_path)


@pytest.mark.parametrize(
    "case, header, data, declared, match",
    [
        ("offset beyond file", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, None, "truncated"),
        ("size mismatch", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}, b"\0" * 16, None, "needs 16 bytes"),
        ("absurd header length", {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, 1 << 40, "header claims"),
        ("reversed offsets", {"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}}, b"\0" * 8, None, "data offsets"),
        ("unknown dtype", {"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 4, None, "unsupported dtype"),
        ("overlap", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                     "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, None, "overlap"),
        ("missing field", {"w": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, None, "malformed"),
    ],
)
def test_header_lies_are_caught(tmp_path, case, header, data, declared, match):
    path = tmp_path / "model.safetensors"
    write_raw(path, header, data, declared)
    with pytest.raises(InputError, match=match) as e:
        parse_header(path)
    assert str(path) in str(e.value)


def test_not_json_and_truncated_files(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 5) + b"{nope")
    with pytest.raises(InputError, match="not valid JSON"):
        parse_header(path)
    path.write_bytes(b"\x01\x02")
    with pytest.raises(InputError, match="truncated"):
        parse_header(path)


def test_pickles_are_refused_never_opened(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not even a pickle")
    with pytest.raises(InputError, match="never unpickles"):
        Checkpoint(tmp_path)


def test_no_weights_at_all(tmp_path):
    with pytest.raises(InputError, match="no \\*.safetensors"):
        Checkpoint(tmp_path)
