"""Helpers for the tests that drive the installed `quant` command as a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo"


def quant_exe() -> str:
    """The `quant` console script of the environment running the tests."""
    cand = Path(sys.executable).with_name("quant")
    if cand.is_file():
        return str(cand)
    found = shutil.which("quant")
    if not found:
        pytest.skip("the `quant` command is not installed (pip install -e .)")
    return found


def base_env(**extra) -> dict:
    """The test's environment, never touching the network or the user's hub cache."""
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env.pop("COLUMNS", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def quant(*args, cwd=None, env=None, timeout=600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [quant_exe(), *map(str, args)],
        cwd=cwd,
        env=env or base_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for stamp in dst.glob(".fixture*"):
        stamp.unlink()
    return dst


def leftovers(folder: Path) -> list[str]:
    """Temporary writer files (``.<stem>.quantcli-<pid>.gguf``) anywhere under `folder`."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*quantcli-*"))


def ggufs(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*.gguf"))


def assert_clean(folder: Path) -> None:
    """The promise of every failing run: no output under its final name, no temporary file."""
    assert ggufs(folder) == [], f"files left in {folder}: {ggufs(folder)}"
    assert leftovers(folder) == [], f"temporary files left in {folder}: {leftovers(folder)}"


def safetensors_header(path: Path) -> tuple[int, dict]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return n, json.loads(f.read(n))


def rewrite_header(path: Path, header: dict) -> None:
    """Replace a safetensors header by `header`, padded with spaces to the same length (so
    the data section stays where it is)."""
    n, _ = safetensors_header(path)
    raw = json.dumps(header, separators=(",", ":")).encode()
    assert len(raw) <= n, "new header longer than the old one"
    raw = raw + b" " * (n - len(raw))
    with open(path, "r+b") as f:
        f.seek(8)
        f.write(raw)


def poke_value(path: Path, tensor: str, index: int, value: float) -> None:
    """Overwrite element `index` of `tensor` (BF16, F16 or F32) with `value`."""
    import numpy as np

    n, header = safetensors_header(path)
    info = header[tensor]
    begin, _ = info["data_offsets"]
    dtype = info["dtype"]
    if dtype == "BF16":
        raw = struct.pack("<H", int(np.array([value], np.float32).view(np.uint32)[0] >> 16))
    elif dtype == "F16":
        raw = np.array([value], np.float16).tobytes()
    else:
        raw = np.array([value], np.float32).tobytes()
    with open(path, "r+b") as f:
        f.seek(8 + n + begin + index * len(raw))
        f.write(raw)


# -- a Hugging Face hub cache, built offline ------------------------------------------------

def add_snapshot(cache: Path, repo_id: str, commit: str, files: dict[str, Path | bytes],
                 refs: tuple[str, ...] = (), tree_extra: dict[str, int] | None = None) -> Path:
    """Put a snapshot of `repo_id` at `commit` into a hub cache folder (HF_HUB_CACHE), in
    huggingface_hub's layout: ``models--ORG--NAME/blobs/<hash>``, ``snapshots/<commit>/<file>``
    (relative symlinks to the blobs), ``refs/<ref>`` and the tree listing
    ``trees/<commit>.json`` that huggingface_hub writes when it downloads.  `tree_extra` lists
    files the repository has on the hub but the snapshot lacks (name -> size): offline,
    huggingface_hub refuses a snapshot that misses a file matching the requested patterns."""
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    snap = storage / "snapshots" / commit
    tree = {}
    for rel, content in files.items():
        data = content if isinstance(content, bytes) else Path(content).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        blob = storage / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            blob.write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
        tree[rel] = {"size": len(data), "blob_id": hashlib.sha1(data).hexdigest()}
    for rel, size in (tree_extra or {}).items():
        tree[rel] = {"size": size, "blob_id": hashlib.sha1(rel.encode()).hexdigest()}
    for ref in refs:
        (storage / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (storage / "refs" / ref).write_text(commit)
    (storage / "trees").mkdir(parents=True, exist_ok=True)
    (storage / "trees" / f"{commit}.json").write_text(json.dumps({"format_version": 1, "files": tree}))
    return snap


def model_files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(Path(folder).iterdir()) if p.is_file() and not p.name.startswith(".")}
