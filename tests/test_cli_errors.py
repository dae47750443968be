"""Every failure a user can meet, through the installed `quant` command.

Each case checks the documented exit code (quantcli/errors.py), a one-line message that
names the file or tensor and says what to do, no traceback, and the promise of the writer:
no file under the final output name and no temporary file left behind.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import struct
import subprocess

import pytest

from tests.cli_support import (
    DEMO,
    assert_clean,
    base_env,
    copy_model,
    leftovers,
    poke_value,
    quant,
    quant_exe,
    rewrite_header,
    safetensors_header,
)


def error_line(r) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def convert_fails(src, *recipes, out, code, extra=()):
    out.mkdir(exist_ok=True)
    r = quant("convert", src, *recipes, "-o", f"{out}/", *extra)
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert_clean(out)
    return error_line(r)


@pytest.fixture
def demo(tmp_path):
    return copy_model(DEMO, tmp_path / "model")


def test_missing_config(demo, tmp_path):
    (demo / "config.json").unlink()
    msg = convert_fails(demo, "Q4_K_M", out=tmp_path / "out", code=3)
    assert f"{demo}: no config.json" in msg
    assert "download the whole repository" in msg


def test_unsupported_architecture(demo, tmp_path):
    cfg = json.loads((demo / "config.json").read_text())
    cfg["architectures"] = ["MambaForCausalLM"]
    (demo / "config.json").write_text(json.dumps(cfg))
    msg = convert_fails(demo, "Q8_0", out=tmp_path / "out", code=4)
    assert "architecture MambaForCausalLM is not supported" in msg
    for arch in ("LlamaForCausalLM", "Qwen2ForCausalLM", "Gemma3ForCausalLM", "BertModel", "Phi3ForCausalLM"):
        assert arch in msg


def test_unknown_recipe_suggests_the_closest(tmp_path):
    msg = convert_fails(DEMO, "Q8_0", "Q4_K_N", out=tmp_path / "out", code=4)
    assert "unknown quantization type 'Q4_K_N'" in msg
    assert "did you mean" in msg and "Q4_K_M" in msg.split("did you mean")[1].split("?")[0]


def test_unknown_converter_type_via_typo(tmp_path):
    msg = convert_fails(DEMO, "F61", out=tmp_path / "out", code=4)
    assert "'F61'" in msg and "did you mean" in msg and "F16" in msg


def test_truncated_safetensors(demo, tmp_path):
    st = demo / "model.safetensors"
    os.truncate(st, st.stat().st_size - 100_000)
    msg = convert_fails(demo, "Q4_K_M", out=tmp_path / "out", code=3)
    assert str(st) in msg and "truncated" in msg and "re-download" in msg


def _absurd_length(st):
    with open(st, "r+b") as f:
        f.write(struct.pack("<Q", 1 << 60))


def _offsets_past_end(st):
    n, h = safetensors_header(st)
    name = "model.layers.1.mlp.up_proj.weight"
    b, e = h[name]["data_offsets"]
    data_size = st.stat().st_size - 8 - n
    h[name]["data_offsets"] = [data_size - 64, data_size - 64 + (e - b)]  # runs past the end
    rewrite_header(st, h)
    return name


def _offsets_wrong_span(st):
    n, h = safetensors_header(st)
    name = "model.layers.0.input_layernorm.weight"
    b, e = h[name]["data_offsets"]
    h[name]["data_offsets"] = [b, e - 2]
    rewrite_header(st, h)
    return name


def _overlap(st):
    n, h = safetensors_header(st)
    names = sorted(h, key=lambda k: h[k]["data_offsets"][0] if k != "__metadata__" else -1)
    names = [k for k in names if k != "__metadata__"]
    a, b = names[0], names[1]
    size = h[b]["data_offsets"][1] - h[b]["data_offsets"][0]
    start = h[a]["data_offsets"][0]
    h[b]["data_offsets"] = [start, start + size]
    rewrite_header(st, h)
    return b


def _not_json(st):
    n, _ = safetensors_header(st)
    with open(st, "r+b") as f:
        f.seek(8)
        f.write(b"\x00garbage" + b" " * (n - 8))


@pytest.mark.parametrize("damage, expect", [
    (_absurd_length, "safetensors header claims 1152921504606846976 bytes"),
    (_offsets_past_end, "ends at byte"),
    (_offsets_wrong_span, "the header is corrupt"),
    (_overlap, "overlap; the header is corrupt"),
    (_not_json, "safetensors header is not valid JSON"),
], ids=["absurd-header-length", "offsets-out-of-range", "offsets-wrong-size", "overlapping-tensors", "header-not-json"])
def test_header_that_lies(demo, tmp_path, damage, expect):
    st = demo / "model.safetensors"
    tensor = damage(st)
    msg = convert_fails(demo, "Q4_K_M", "F16", out=tmp_path / "out", code=3)
    assert str(st) in msg and expect in msg, msg
    if tensor:
        assert repr(tensor) in msg or tensor in msg, msg
    assert "re-download" in msg or "corrupt" in msg


@pytest.mark.parametrize("value, recipes", [
    (float("nan"), ("Q4_K_M", "Q8_0")),
    (float("inf"), ("F16",)),
    (float("-inf"), ("BF16", "Q6_K")),
])
def test_nan_inf_weights_name_the_tensor(demo, tmp_path, value, recipes):
    """The bad value sits in a late tensor: other tensors (and outputs) were already being
    written when the error is found, and must all disappear."""
    poke_value(demo / "model.safetensors", "model.layers.1.mlp.up_proj.weight", 5 * 256 + 7, value)
    msg = convert_fails(demo, *recipes, out=tmp_path / "out", code=3)
    assert "tensor blk.1.ffn_up.weight (from model.layers.1.mlp.up_proj.weight)" in msg
    assert "non-finite value" in msg and "row 5, column 7" in msg and "re-download the checkpoint" in msg


def test_missing_tokenizer(demo, tmp_path):
    for p in demo.glob("tokenizer*"):
        p.unlink()
    msg = convert_fails(demo, "Q4_K_M", out=tmp_path / "out", code=3)
    assert str(demo) in msg and "tokenizer.json" in msg
    assert "save_pretrained" in msg


def test_missing_shard(tmp_path):
    from fixtures.registry import ensure_fixture

    model = copy_model(ensure_fixture("llama-gqa"), tmp_path / "gqa")
    (model / "model-00002-of-00002.safetensors").unlink()
    msg = convert_fails(model, "Q8_0", out=tmp_path / "out", code=3)
    assert "model-00002-of-00002.safetensors" in msg and "missing" in msg


def test_output_exists_needs_force(tmp_path):
    out = tmp_path / "out"
    r = quant("convert", DEMO, "Q8_0", "Q4_K_M", "-o", f"{out}/", "-q")
    assert r.returncode == 0, r.stderr
    q8 = out / "Tiny-Llama-Demo-1.7M-Q8_0.gguf"
    q4 = out / "Tiny-Llama-Demo-1.7M-Q4_K_M.gguf"
    q4.unlink()
    q8.write_bytes(b"precious")
    # one of two outputs exists: nothing is written, not even the other one
    r = quant("convert", DEMO, "Q4_K_M", "Q8_0", "-o", f"{out}/")
    assert r.returncode == 5
    msg = error_line(r)
    assert f"{q8} already exists; pass --force to overwrite it" in msg
    assert q8.read_bytes() == b"precious"
    assert not q4.exists() and leftovers(out) == []
    r = quant("convert", DEMO, "Q4_K_M", "Q8_0", "-o", f"{out}/", "--force", "-q")
    assert r.returncode == 0, r.stderr
    assert q8.stat().st_size > 1_000_000 and q4.is_file() and leftovers(out) == []


def test_output_folder_missing(tmp_path):
    r = quant("convert", DEMO, "Q8_0", "-o", tmp_path / "nope" / "x.gguf")
    assert r.returncode == 5
    assert f"folder {tmp_path / 'nope'} does not exist" in error_line(r)


def _limited(limit):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


@pytest.mark.parametrize("limit, recipes, failing", [
    (1_000, ("Q8_0",), "Q8_0"),  # not even the header fits
    (500_000, ("Q8_0", "F16"), "Q8_0"),  # the first output's space cannot be reserved
    (1_500_000, ("Q4_K_M", "Q8_0"), "Q8_0"),  # the first fits, the second does not
], ids=["header", "first-output", "second-output"])
def test_disk_full(tmp_path, limit, recipes, failing):
    """A file-size limit (RLIMIT_FSIZE) makes writes fail with EFBIG, as a full disk does."""
    out = tmp_path / "out"
    warm = quant("convert", DEMO, *recipes, "-o", f"{tmp_path / 'warm'}/", "-q")  # also warms the kernel cache
    assert warm.returncode == 0, warm.stderr
    out.mkdir()
    r = subprocess.run([quant_exe(), "convert", str(DEMO), *recipes, "-o", f"{out}/"], env=base_env(),
                       capture_output=True, text=True, timeout=300, preexec_fn=_limited(limit))
    assert r.returncode == 5, r.stderr[-2000:]
    msg = error_line(r)
    assert f"not enough space to write {out}/Tiny-Llama-Demo-1.7M-{failing}.gguf" in msg
    assert "free some space or choose another -o" in msg
    assert_clean(out)


def _gqa():
    from fixtures.registry import ensure_fixture

    return ensure_fixture("llama-gqa")


@pytest.mark.parametrize("sig, code, word", [
    (signal.SIGINT, 130, "interrupted"),
    (signal.SIGTERM, 143, "terminated"),
])
def test_signal_while_writing(tmp_path, sig, code, word):
    """Ctrl-C (SIGINT) or SIGTERM after the first tensors are written: exit 130 / 143,
    every temporary file removed, nothing under the final names."""
    src = _gqa()
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen([quant_exe(), "convert", str(src), "Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M", "Q8_0",
                          "-o", f"{out}/"], env=base_env(), stderr=subprocess.PIPE, text=True)
    seen, during = [], []
    try:
        for line in p.stderr:
            seen.append(line)
            if line.startswith("[   2/"):
                during = leftovers(out)
                p.send_signal(sig)
                break
        rest = p.stderr.read()
        rc = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert during, f"the conversion ended before it could be interrupted: {seen}"
    assert len(during) == 5 and all(".quantcli-" in n for n in during), during
    assert rc == code, rest
    assert f"error: {word}; no output file was left behind" in rest
    assert "Traceback" not in rest
    assert_clean(out)


def test_bad_command_line_is_exit_2(tmp_path):
    r = quant("convert", DEMO, cwd=tmp_path)
    assert r.returncode == 2 and "Missing argument" in r.stderr
    r = quant("convert", DEMO, "Q8_0", "--no-such-option", cwd=tmp_path)
    assert r.returncode == 2 and "No such option" in r.stderr
    r = quant("convert", DEMO, "Q8_0", "--split-max-size", "lots", cwd=tmp_path)
    assert r.returncode == 2 and "expected a size such as 500M" in r.stderr
    assert_clean(tmp_path)
