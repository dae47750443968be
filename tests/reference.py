"""llama.cpp's own tools as test oracles: its converter and its GGUF contents.

* ``llama_cpp_source()``: the llama.cpp tree vendored in the llama-cpp-python 0.3.36 sdist
  (``pip download``-ed once into ``.cache/`` and unpacked).
* ``reference_convert(model_dir, outtype)``: runs that tree's ``convert_hf_to_gguf.py`` in
  the reference venv (``.venv-ref``: torch 2.13 CPU + transformers 4.57.6, made by
  ``make test``) and returns the GGUF it wrote; cached by the model folder's content.
* ``gguf_dump(path)``: key/value pairs and tensors of a GGUF (split files included) in a
  form two files can be compared with, field by field.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("QUANTCLI_TEST_CACHE", ROOT / ".cache"))
SDIST = "llama-cpp-python==0.3.36"
REF_PYTHON = Path(os.environ.get("QUANTCLI_REF_PYTHON", ROOT / ".venv-ref" / "bin" / "python"))


class ReferenceUnavailable(RuntimeError):
    pass


# What the tests take from the sdist's vendor/llama.cpp: the converter (with its conversion
# package and gguf-py), the chat templates, and the C++ llama-quantize code that
# tests/recipe_oracle_cli.py compiles (tools/quantize, common, the public headers).
_SOURCE_PARTS = ("convert_hf_to_gguf.py", "/conversion/", "/gguf-py/", "/models/templates/",
                 "/tools/quantize/", "/common/", "/include/")
_SOURCE_MARKERS = ("convert_hf_to_gguf.py", "tools/quantize/quantize.cpp", "common/imatrix-loader.cpp",
                   "include/llama.h", "ggml/include/ggml.h")


def llama_cpp_source() -> Path:
    """Path of vendor/llama.cpp from the llama-cpp-python sdist (downloaded once)."""
    dest = CACHE / "llama_cpp_python-0.3.36"
    tree = dest / "vendor" / "llama.cpp"
    if all((tree / m).is_file() for m in _SOURCE_MARKERS):
        return tree
    CACHE.mkdir(parents=True, exist_ok=True)
    dl = CACHE / "sdist"
    tarball = next(iter(dl.glob("llama_cpp_python-0.3.36.tar.gz")), None) if dl.is_dir() else None
    if tarball is None:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(dl), SDIST],
            capture_output=True,
            text=True,
        )
        tarball = next(iter(dl.glob("llama_cpp_python-0.3.36.tar.gz")), None)
        if r.returncode != 0 or tarball is None:
            raise ReferenceUnavailable(f"cannot download {SDIST} sdist: {r.stderr[-500:]}")
    with tarfile.open(tarball) as tf:
        members = [
            m
            for m in tf.getmembers()
            if "/vendor/llama.cpp/" in m.name
            and any(part in m.name for part in _SOURCE_PARTS)
        ]
        tf.extractall(CACHE, members=members, filter="data")
    return tree


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def reference_convert(model_dir: Path, outtype: str = "f16", extra_args: tuple[str, ...] = ()) -> Path:
    """Run llama.cpp's convert_hf_to_gguf.py on model_dir; return the output GGUF path."""
    model_dir = Path(model_dir).resolve()
    if not REF_PYTHON.exists():
        raise ReferenceUnavailable(f"reference venv missing ({REF_PYTHON}); run `make test` to create it")
    tree = llama_cpp_source()
    key = f"{Path(model_dir).name}-{_folder_digest(Path(model_dir))}-{outtype}-{'_'.join(extra_args)}"
    out_dir = CACHE / "reference" / key
    out = out_dir / "model.gguf"
    if out.is_file():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH="", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("NO_LOCAL_GGUF", None)
    cmd = [
        str(REF_PYTHON),
        str(tree / "convert_hf_to_gguf.py"),
        str(model_dir),
        "--outtype",
        outtype,
        "--outfile",
        str(out_dir / "tmp.gguf"),
        *extra_args,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(out_dir))
    if r.returncode != 0:
        raise AssertionError(f"reference converter failed on {model_dir}:\n{r.stderr[-3000:]}")
    produced = sorted(out_dir.glob("tmp*.gguf"))
    if len(produced) == 1:
        produced[0].rename(out)
    else:  # split output: keep the shard names, return the first
        for p in produced:
            p.rename(out_dir / p.name.replace("tmp", "model"))
        out = sorted(out_dir.glob("model-00001-of-*.gguf"))[0]
    return out


@dataclass
class TensorDump:
    name: str
    shape: tuple[int, ...]  # GGML order (ne0 first), as GGUFReader reports
    qtype: str
    sha256: str


@dataclass
class GGUFDump:
    kv: list[tuple[str, str, object]]  # (key, type name, value) in file order
    tensors: list[TensorDump]

    def kv_dict(self) -> dict[str, object]:
        return {k: v for k, _, v in self.kv}


def _field_value(field):
    from gguf import GGUFValueType

    t = field.types[0] if field.types else None
    if t == GGUFValueType.ARRAY:
        sub = field.types[-1]
        if sub == GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8", "surrogateescape") for i in field.data]
        return [field.parts[i].tolist()[0] for i in field.data]
    if t == GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8", "surrogateescape")
    return field.parts[field.data[0]].tolist()[0]


def gguf_dump(path: Path, skip_keys: tuple[str, ...] = ("GGUF.",)) -> GGUFDump:
    """KV pairs (in order, with their GGUF types) and tensors (name, shape, type, bytes hash)."""
    from gguf import GGUFReader, GGUFValueType

    path = Path(path)
    paths = [path]
    if "-00001-of-" in path.name:
        n = int(path.stem.split("-of-")[1])
        paths = [path.with_name(path.name.replace("-00001-of-", f"-{i:05d}-of-")) for i in range(1, n + 1)]
    kv: list[tuple[str, str, object]] = []
    tensors: list[TensorDump] = []
    for i, p in enumerate(paths):
        r = GGUFReader(p)
        for name, field in r.fields.items():
            if name.startswith(skip_keys):
                continue
            if i > 0 and not name.startswith("split."):
                continue
            tname = GGUFValueType(field.types[0]).name
            if field.types[0] == GGUFValueType.ARRAY:
                tname += "[" + GGUFValueType(field.types[-1]).name + "]"
            kv.append((name if i == 0 else f"{name}@{i}", tname, _field_value(field)))
        for t in r.tensors:
            data = np.asarray(t.data)
            tensors.append(
                TensorDump(
                    t.name,
                    tuple(int(d) for d in t.shape),
                    t.tensor_type.name,
                    hashlib.sha256(data.tobytes()).hexdigest(),
                )
            )
    return GGUFDump(kv, tensors)


def assert_same_gguf(ours: Path, theirs: Path, ignore_keys: tuple[str, ...] = ()) -> None:
    """Same keys in the same order with the same types and values; same tensors (name,
    order, shape, type, bytes). ``ignore_keys`` lists documented differences."""
    a = gguf_dump(ours)
    b = gguf_dump(theirs)
    akv = [x for x in a.kv if x[0] not in ignore_keys]
    bkv = [x for x in b.kv if x[0] not in ignore_keys]
    ak = [k for k, _, _ in akv]
    bk = [k for k, _, _ in bkv]
    assert ak == bk, f"key order differs:\n ours  {ak}\n llama {bk}"
    for (k, ta, va), (_, tb, vb) in zip(akv, bkv):
        assert ta == tb, f"{k}: type {ta} vs llama.cpp {tb}"
        if isinstance(va, float) or isinstance(vb, float):
            assert np.float32(va) == np.float32(vb), f"{k}: {va!r} vs llama.cpp {vb!r}"
        else:
            assert va == vb, f"{k}: {str(va)[:200]} vs llama.cpp {str(vb)[:200]}"
    an = [t.name for t in a.tensors]
    bn = [t.name for t in b.tensors]
    assert an == bn, f"tensor order differs:\n ours  {an}\n llama {bn}"
    for ta, tb in zip(a.tensors, b.tensors):
        assert (ta.shape, ta.qtype) == (tb.shape, tb.qtype), f"{ta.name}: {ta.shape} {ta.qtype} vs {tb.shape} {tb.qtype}"
        assert ta.sha256 == tb.sha256, f"{ta.name}: tensor bytes differ from llama.cpp's"


def reference_default_name(model_dir: Path, outtype: str = "f16") -> str:
    """The file name llama.cpp's converter picks when --outfile is a directory."""
    import tempfile

    model_dir = Path(model_dir).resolve()
    if not REF_PYTHON.exists():
        raise ReferenceUnavailable(f"reference venv missing ({REF_PYTHON}); run `make test` to create it")
    tree = llama_cpp_source()
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, PYTHONPATH="", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        r = subprocess.run(
            [str(REF_PYTHON), str(tree / "convert_hf_to_gguf.py"), str(model_dir), "--outtype", outtype,
             "--outfile", d + "/"],
            capture_output=True, text=True, env=env,
        )
        if r.returncode != 0:
            raise AssertionError(f"reference converter failed:\n{r.stderr[-2000:]}")
        (name,) = [p.name for p in Path(d).iterdir()]
    return name
