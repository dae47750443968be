"""`quant convert ORG/NAME`: hub repositories through huggingface_hub's cache, offline.

The cache is built in huggingface_hub's own layout (blobs, snapshots, refs, tree listing)
from the committed demo model; every run has HF_HUB_OFFLINE=1, so nothing touches the
network."""

from __future__ import annotations

import json

import pytest

from tests.cli_support import DEMO, add_snapshot, assert_clean, base_env, model_files, quant

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40

# what a typical hub repository holds besides what the conversion reads
JUNK_IN_SNAPSHOT = {
    "pytorch_model.bin": b"not a pickle we would ever open",
    "onnx/model.onnx": b"junk",
    "training_args.bin": b"junk",
}
JUNK_ON_HUB_ONLY = {
    "flax_model.msgpack": 1000,
    "tf_model.h5": 1000,
    "model.pt": 1000,
    "original/consolidated.00.pth": 1000,
    "gguf/model-Q4_K_M.gguf": 1000,
}


@pytest.fixture
def hub_cache(tmp_path):
    """acme/tiny-demo: main -> the demo model (plus junk), v2 -> the demo renamed."""
    cache = tmp_path / "hub"
    files = model_files(DEMO)
    add_snapshot(cache, "acme/tiny-demo", COMMIT_A, {**files, **JUNK_IN_SNAPSHOT}, refs=("main",),
                 tree_extra=JUNK_ON_HUB_ONLY)
    config = json.loads((DEMO / "config.json").read_text())
    config["_name_or_path"] = "acme/renamed-demo"
    add_snapshot(cache, "acme/tiny-demo", COMMIT_B,
                 {**files, "config.json": json.dumps(config, indent=2).encode()}, refs=("v2",))
    return cache


def test_patterns_fetch_only_what_conversion_reads():
    from huggingface_hub.utils import filter_repo_objects

    from quantcli.source import HUB_PATTERNS

    repo = [
        "config.json", "generation_config.json", "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json",
        "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "README.md",
        "vocab.txt", "merges.txt", "vocab.json", "added_tokens.json", "chat_template.jinja",
        "modules.json", "1_Pooling/config.json",
        # never needed
        "pytorch_model.bin", "pytorch_model-00001-of-00002.bin", "pytorch_model.bin.index.json",
        "model.pt", "consolidated.00.pth", "original/consolidated.00.pth", "tf_model.h5",
        "flax_model.msgpack", "onnx/model.onnx", "openvino/openvino_model.xml",
        "model-Q4_K_M.gguf", "training_args.bin", ".gitattributes", "rust_model.ot",
    ]
    got = set(filter_repo_objects(repo, allow_patterns=HUB_PATTERNS))
    assert got == set(repo[:17])
    for pattern in HUB_PATTERNS:
        assert not pattern.endswith((".bin", ".pt", ".pth", ".h5", ".msgpack", ".onnx", ".gguf", "*"))


def test_convert_from_cache_is_the_folder_conversion(hub_cache, tmp_path):
    """The cached repo (with junk files in the snapshot, and more junk on the hub that was
    never downloaded) converts to exactly what the local folder converts to."""
    env = base_env(HF_HUB_CACHE=hub_cache)
    r = quant("convert", "acme/tiny-demo", "Q8_0", "Q4_K_M", "-o", tmp_path / "from-hub", env=env)
    assert r.returncode == 0, r.stderr
    r2 = quant("convert", DEMO, "Q8_0", "Q4_K_M", "-o", tmp_path / "local", env=env)
    assert r2.returncode == 0, r2.stderr
    hub = sorted((tmp_path / "from-hub").iterdir())
    local = sorted((tmp_path / "local").iterdir())
    assert [p.name for p in hub] == [p.name for p in local] == [
        "Tiny-Llama-Demo-1.7M-Q4_K_M.gguf", "Tiny-Llama-Demo-1.7M-Q8_0.gguf"]
    for a, b in zip(hub, local):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_hf_home_is_the_standard_cache(hub_cache, tmp_path):
    """With only HF_HOME set, the cache is HF_HOME/hub, as for every huggingface_hub tool."""
    home = tmp_path / "hfhome"
    home.mkdir()
    hub_cache.rename(home / "hub")
    env = base_env(HF_HOME=home)
    env.pop("HF_HUB_CACHE", None)
    out = tmp_path / "x.gguf"
    r = quant("convert", "acme/tiny-demo", "Q8_0", "-o", out, "-q", env=env)
    assert r.returncode == 0, r.stderr
    assert out.is_file()


def test_revision_selects_the_snapshot(hub_cache, tmp_path):
    env = base_env(HF_HUB_CACHE=hub_cache)
    for rev in ("v2", COMMIT_B):
        out = tmp_path / rev[:8]
        r = quant("convert", "acme/tiny-demo", "Q8_0", "--revision", rev, "-o", f"{out}/", env=env)
        assert r.returncode == 0, r.stderr
        assert [p.name for p in out.iterdir()] == ["Renamed-Demo-1.7M-Q8_0.gguf"], rev
    out = tmp_path / "main"
    r = quant("convert", "acme/tiny-demo", "Q8_0", "--revision", "main", "-o", f"{out}/", env=env)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in out.iterdir()] == ["Tiny-Llama-Demo-1.7M-Q8_0.gguf"]


def test_unknown_revision_offline(hub_cache, tmp_path):
    env = base_env(HF_HUB_CACHE=hub_cache)
    r = quant("convert", "acme/tiny-demo", "Q8_0", "--revision", "v9", "-o", tmp_path / "o.gguf", env=env, cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert "acme/tiny-demo (revision v9): not in the local Hugging Face cache" in r.stderr
    assert "Traceback" not in r.stderr
    assert_clean(tmp_path)


def test_repo_not_in_cache_offline(hub_cache, tmp_path):
    env = base_env(HF_HUB_CACHE=hub_cache)
    r = quant("convert", "nobody/nothing", "Q4_K_M", env=env, cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("error: nobody/nothing: not in the local Hugging Face cache"), err
    assert "HF_HUB_OFFLINE" in err and "network" in err
    assert "Traceback" not in r.stderr
    assert_clean(tmp_path)


def test_incomplete_snapshot_offline(tmp_path):
    """A cached snapshot that misses a needed file (listed in the repo's tree) is refused
    with a clear message -- the counterpart of the junk files above, which were not asked
    for and so did not matter."""
    cache = tmp_path / "hub"
    files = model_files(DEMO)
    del files["tokenizer.model"]
    add_snapshot(cache, "acme/partial", COMMIT_A, files, refs=("main",), tree_extra={"tokenizer.model": 14461})
    r = quant("convert", "acme/partial", "Q8_0", env=base_env(HF_HUB_CACHE=cache), cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert "acme/partial: the cached snapshot misses files" in r.stderr
    assert "tokenizer.model" in r.stderr and "network access" in r.stderr
    assert ggufs_here(tmp_path) == []


def ggufs_here(folder):
    return sorted(p.name for p in folder.glob("*.gguf"))


def test_not_a_repo_id(tmp_path):
    r = quant("convert", "no-such-folder", "Q8_0", cwd=tmp_path)
    assert r.returncode == 3
    assert "no-such-folder: no such folder, and not a Hugging Face repo id (expected ORG/NAME)" in r.stderr
