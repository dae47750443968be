"""quantcli.imatrix against llama-quantize's own imatrix code.

The oracle is llama.cpp's C++ (``common/imatrix-loader.cpp`` + ``tools/quantize/quantize.cpp``
compiled from the vendored sources, see tests/recipe_oracle_cli.py): its ``prepare_imatrix``
gives the normalised, filtered entries, datasets and chunk count; its whole command line
(``llama-quantize --imatrix ...``) gives a quantized file that must be byte-identical to the
one ``llama_model_quantize`` writes from *our* entries and *our* KV overrides.  The writers
have no oracle in reach (llama-imatrix is not built); they are checked by round trips
through llama.cpp's loader and against the layout in tools/imatrix/imatrix.cpp.
"""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

from quantcli import imatrix as I
from quantcli import recipe as R
from tests import recipe_oracle_cli as cli_oracle
from tests import recipe_oracle_llama as L
from tests import recipe_oracle_models as M
from tests.test_recipe_oracle import assert_kv_equal, read_model


def _cli():
    return cli_oracle.require()


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def assert_same_as_llama_quantize(path, include=(), exclude=()):
    want = _cli().prepare_imatrix(str(path), include, exclude)
    assert want is not None, "llama-quantize failed to load it"
    entries, datasets, last_call = want
    ours = I.load_imatrix(path, include, exclude)
    assert sorted(ours.entries) == sorted(entries)
    for k in entries:
        assert bits_equal(ours.entries[k], entries[k]), k
    assert ours.datasets == datasets
    assert ours.chunk_count == last_call
    return ours


# ---------------------------------------------------------------------------------------
# statistics like llama-imatrix collects them
# ---------------------------------------------------------------------------------------


def moe_stats(seed: int = 0):
    """Raw sums/counts for the tensors of a small MoE model (some experts never routed)."""
    m = M.llama_moe("mx", 2, 8)
    rng = np.random.default_rng(seed)
    sums, counts = {}, {}
    for name, shape, _ in m.tensors:
        if len(shape) < 2 or "norm" in name or name.startswith(("token_embd", "output")):
            continue
        nmat = shape[2] if len(shape) > 2 else 1
        sums[name] = (rng.random((nmat, shape[0])) * 50).astype(np.float32)
        c = rng.integers(1, 6, nmat) * 512
        if nmat > 1:
            c[rng.integers(0, nmat)] = 0  # an expert the calibration never used
        counts[name] = c.astype(np.float32)
    return m, sums, counts


@pytest.fixture(scope="module")
def moe(tmp_path_factory):
    d = tmp_path_factory.mktemp("moe")
    m, sums, counts = moe_stats()
    model = read_model(M.write_model(m, d / "mx.gguf"))
    im = d / "imatrix.gguf"
    I.write_imatrix_gguf(im, sums, counts, datasets=["wiki.train.raw", "extra.txt"], chunk_count=12, chunk_size=512)
    dat = d / "imatrix.dat"
    I.write_imatrix_dat(dat, sums, counts, chunk_size=512, last_chunk=12, dataset="wiki.train.raw")
    return model, sums, counts, im, dat


# ---------------------------------------------------------------------------------------
# loading == llama-quantize's prepare_imatrix
# ---------------------------------------------------------------------------------------

FILTERS = [((), ()), (("attn",), ()), (("ffn_down", "attn_v"), ()), ((), ("exps",)), ((), ("blk.1.", "attn_q")),
           (("nothing-matches",), ())]  # fmt: skip


@pytest.mark.parametrize("include,exclude", FILTERS)
def test_gguf_imatrix_like_llama_quantize(moe, include, exclude):
    _, sums, _, im, _ = moe
    ours = assert_same_as_llama_quantize(im, include, exclude)
    if not include and not exclude:
        assert len(ours.entries) == len(sums)
        assert ours.datasets == ["wiki.train.raw", "extra.txt"] and ours.chunk_size == 512


@pytest.mark.parametrize("include,exclude", FILTERS)
def test_legacy_imatrix_like_llama_quantize(moe, include, exclude):
    ours = assert_same_as_llama_quantize(moe[4], include, exclude)
    assert ours.is_legacy


def test_gguf_counts_are_rounded_like_lround(tmp_path):
    """Fractional, zero, negative and huge counts: lround, then <= 0 means all ones."""
    sums = {f"blk.0.t{i}.weight": np.arange(1, 33, dtype=np.float32) * (i + 1) for i in range(8)}
    counts = dict(zip(sums, [[2.5], [0.4], [0.5], [-3.0], [1e9], [3.49999], [1.0], [7.0]]))
    sums["blk.1.e.weight"] = np.arange(4 * 32, dtype=np.float32).reshape(4, 32) + 0.5
    counts["blk.1.e.weight"] = [0.0, 1.5, 2.5, 1e-3]
    p = tmp_path / "round.gguf"
    I.write_imatrix_gguf(p, sums, counts, datasets=[], chunk_count=0, chunk_size=512)
    ours = assert_same_as_llama_quantize(p)
    assert ours.chunk_count == 0 and ours.kv_overrides()[-1][0] == I.KV_IMATRIX_N_ENTRIES


def test_legacy_variants_like_llama_quantize(tmp_path):
    def entry(name: str, ncall: int, values: list[float]) -> bytes:
        b = name.encode()
        return struct.pack("<i", len(b)) + b + struct.pack("<ii", ncall, len(values)) + np.asarray(values, "<f4").tobytes()

    body = struct.pack("<i", 3) + entry("a.weight", 4, [1, 2, 3]) + entry("b.weight", 0, [5, 6]) + entry("c\0junk", -2, [7])
    variants = {
        "no_trailer": body,
        "chunks_only": body + struct.pack("<i", 9),
        "empty_dataset": body + struct.pack("<ii", 9, 0),
        "dataset": body + struct.pack("<ii", 9, 5) + b"wiki!",
        "dataset_cut": body + struct.pack("<ii", 9, 50) + b"short",
    }
    for name, data in variants.items():
        p = tmp_path / f"{name}.dat"
        p.write_bytes(data)
        assert_same_as_llama_quantize(p)


def _gguf(path: Path, kv: dict, tensors: dict) -> Path:
    w = gguf.GGUFWriter(str(path), arch="")
    w.kv_data[0].pop("general.architecture", None)
    for k, v in kv.items():
        if isinstance(v, list):
            w.add_array(k, v)
        else:
            w.add_uint32(k, v)
    for name, (data, raw) in tensors.items():
        w.add_tensor(name, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


META = {"imatrix.datasets": ["d"], "imatrix.chunk_count": 1, "imatrix.chunk_size": 512}
GOOD = {"x.weight.in_sum2": (np.ones(32, np.float32), None), "x.weight.counts": (np.ones(1, np.float32), None)}


@pytest.mark.parametrize(
    "case",
    ["missing_file", "empty_file", "truncated_legacy", "negative_count_entries", "no_metadata", "no_tensors",
     "sums_without_counts", "f16_sums", "zero_values_legacy"],
)  # fmt: skip
def test_bad_files_are_refused_like_llama_quantize(tmp_path, case):
    p = tmp_path / f"{case}.bin"
    if case == "empty_file":
        p.write_bytes(b"")
    elif case == "truncated_legacy":
        p.write_bytes(struct.pack("<ii", 2, 8) + b"a.we")
    elif case == "negative_count_entries":
        p.write_bytes(struct.pack("<i", -1))
    elif case == "zero_values_legacy":
        p.write_bytes(struct.pack("<ii", 1, 1) + b"a" + struct.pack("<ii", 1, 0))
    elif case == "no_metadata":
        _gguf(p, {"imatrix.chunk_count": 1}, GOOD)
    elif case == "no_tensors":
        _gguf(p, META, {})
    elif case == "sums_without_counts":
        _gguf(p, META, {**GOOD, "y.weight.in_sum2": (np.ones(32, np.float32), None)})
    elif case == "f16_sums":
        _gguf(p, META, {"x.weight.in_sum2": (np.ones(32, np.float16), None), "x.weight.counts": GOOD["x.weight.counts"]})
    assert _cli().prepare_imatrix(str(p)) is None, "llama-quantize accepted it"
    with pytest.raises(I.ImatrixError):
        I.load_imatrix(p)


def test_non_finite_values(moe, tmp_path):
    """NaN/Inf: llama_model_quantize refuses -- unless the entry was filtered out."""
    model, sums, counts, _, _ = moe
    sums = dict(sums)
    sums["blk.1.attn_q.weight"] = sums["blk.1.attn_q.weight"].copy()
    sums["blk.1.attn_q.weight"][0, 3] = np.inf
    p = tmp_path / "inf.gguf"
    I.write_imatrix_gguf(p, sums, counts, datasets=["d"], chunk_count=1)
    out = tmp_path / "o.gguf"
    assert _cli().llama_quantize("--imatrix", str(p), str(model.path), str(out), "Q4_0", "2") != 0
    with pytest.raises(I.ImatrixError, match="non-finite"):
        I.load_imatrix(p)
    assert _cli().llama_quantize("--imatrix", str(p), "--exclude-weights", "attn_q", str(model.path), str(out), "Q4_0") == 0
    assert "blk.1.attn_q.weight" not in I.load_imatrix(p, exclude=["attn_q"]).entries


def test_include_and_exclude_together_are_refused(moe, tmp_path):
    model, _, _, im, _ = moe
    rc = _cli().llama_quantize("--imatrix", str(im), "--include-weights", "a", "--exclude-weights", "b",
                               str(model.path), str(tmp_path / "o.gguf"), "Q4_0")  # fmt: skip
    assert rc != 0
    with pytest.raises(I.ImatrixError, match="cannot be used together"):
        I.load_imatrix(im, include=["a"], exclude=["b"])


# ---------------------------------------------------------------------------------------
# end to end: llama-quantize --imatrix FILE  ==  llama_model_quantize(our entries, our KV)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt,recipe,include,exclude",
    [("gguf", "Q4_0", (), ()), ("gguf", "Q2_K_S", (), ()), ("gguf", "Q4_K_M", ("ffn",), ()),
     ("dat", "Q5_0", (), ()), ("dat", "Q3_K_S", (), ("attn_k",)), ("gguf", "Q6_K", ("nothing",), ()),
     ("gguf", "Q2_K_S", ("blk.0.",), ())],
)  # fmt: skip
def test_llama_quantize_with_imatrix_file_is_reproduced(moe, tmp_path, fmt, recipe, include, exclude):
    model, sums, counts, im, dat = moe
    src = im if fmt == "gguf" else dat
    # a path longer than 127 bytes: quantize.imatrix.file is cut
    long_name = tmp_path / ("imatrix-" + "x" * 140 + "." + fmt)
    long_name.write_bytes(src.read_bytes())
    args = ["--imatrix", str(long_name)]
    for s in include:
        args += ["--include-weights", s]
    for s in exclude:
        args += ["--exclude-weights", s]
    cli_out = tmp_path / "cli.gguf"
    rc = _cli().llama_quantize(*args, str(model.path), str(cli_out), recipe, "2")

    ours = I.load_imatrix(long_name, include, exclude)
    opts = R.Options(imatrix=ours.as_params())
    try:
        plan = R.plan(model.tensors, model.model, recipe, opts)
    except R.PlanError:
        assert rc != 0  # e.g. Q2_K_S when the filter left no imatrix
        return
    assert rc == 0
    api_out = tmp_path / "api.gguf"
    res = L.quantize(model.path, api_out, L.ftype_of(recipe), imatrix=ours.as_params(),
                     kv_overrides=ours.kv_overrides() or None)  # fmt: skip
    assert res.ok
    assert api_out.read_bytes() == cli_out.read_bytes()
    r = gguf.GGUFReader(str(cli_out))
    assert [(c.name, c.qtype) for c in plan] == [(t.name, Q(t.tensor_type)) for t in r.tensors]
    theirs = [(f.name, list(f.types), L.field_contents(f)) for f in r.fields.values() if not f.name.startswith("GGUF.")]
    assert_kv_equal(R.quantized_kv(model.kv, recipe, ours.kv_overrides()), theirs)
    if ours.entries:
        keys = [k for k, _, _ in theirs]
        assert "quantize.imatrix.file" in keys and len(dict((k, v) for k, _, v in theirs)["quantize.imatrix.file"]) == 127


# ---------------------------------------------------------------------------------------
# per-tensor lookup: the slice each expert's rows use
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", ["Q4_K_S", "Q4_0", "Q6_K"])
def test_expert_slices_match_llama_cpp(moe, tmp_path, recipe):
    """Quantize each expert of a 3-D tensor with ggml and our for_tensor() row: the bytes
    must equal what llama_model_quantize wrote using its own row -> slice mapping."""
    model, _, _, im, _ = moe
    ours = I.load_imatrix(im)
    res = L.quantize(model.path, tmp_path / "o.gguf", L.ftype_of(recipe), imatrix=ours.as_params())
    assert res.ok
    src = {t.name: t for t in gguf.GGUFReader(str(model.path)).tensors}
    out = {t.name: t for t in gguf.GGUFReader(str(res.path)).tensors}
    plan = {c.name: c for c in R.plan(model.tensors, model.model, recipe, R.Options(imatrix=ours.as_params()))}
    checked = 0
    for name, t in src.items():
        if len(t.shape) != 3 or not plan[name].use_imatrix:
            continue
        x = np.asarray(t.data, np.float32)  # (ne2, ne1, ne0)
        vecs = ours.for_tensor(name, tuple(int(s) for s in t.shape))
        assert vecs.shape == (x.shape[0], x.shape[2])
        got = np.concatenate([M.ggml_quantize(x[e], plan[name].qtype, vecs[e]) for e in range(x.shape[0])])
        assert np.array_equal(got.reshape(-1), np.asarray(out[name].data).view(np.uint8).reshape(-1)), name
        # and a wrong slice would have shown
        wrong = np.concatenate([M.ggml_quantize(x[e], plan[name].qtype, vecs[0]) for e in range(x.shape[0])])
        assert not np.array_equal(wrong.reshape(-1), got.reshape(-1))
        checked += 1
    assert checked == 6


def test_for_tensor_lengths(moe):
    ours = I.load_imatrix(moe[3])
    assert ours.for_tensor("blk.0.attn_q.weight", (256, 2)).shape == (1, 256)
    assert ours.for_tensor("no.such.weight", (256, 2)) is None
    with pytest.raises(I.ImatrixError, match="is different from tensor size"):
        ours.for_tensor("blk.0.ffn_down_exps.weight", (512, 1, 4))
    ours.entries["token_embd.weight"] = np.ones(3, np.float32)
    assert ours.for_tensor("token_embd.weight", (256, 2)) is None  # tolerated, like llama.cpp


# ---------------------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------------------


def test_gguf_writer_layout(moe):
    """What tools/imatrix/imatrix.cpp save_imatrix writes: general.type, datasets, chunk
    count/size; per name (sorted) <name>.in_sum2 [ne0, n_mat] then <name>.counts [1, n_mat],
    1-D when n_mat is 1; raw sums and counts."""
    _, sums, counts, im, _ = moe
    r = gguf.GGUFReader(str(im))
    kv = [(f.name, f.types) for f in r.fields.values() if not f.name.startswith("GGUF.")]
    assert kv == [("general.type", [V.STRING]), ("imatrix.datasets", [V.ARRAY, V.STRING]),
                  ("imatrix.chunk_count", [V.UINT32]), ("imatrix.chunk_size", [V.UINT32])]  # fmt: skip
    assert r.fields["general.type"].contents() == "imatrix"
    names = sorted(sums)
    assert [t.name for t in r.tensors] == [f"{n}.{s}" for n in names for s in ("in_sum2", "counts")]
    for t in r.tensors:
        base, _, kind = t.name.rpartition(".")
        nmat = len(counts[base])
        assert t.tensor_type == Q.F32
        if kind == "in_sum2":
            assert list(t.shape) == ([sums[base].shape[1]] if nmat == 1 else [sums[base].shape[1], nmat])
            assert bits_equal(np.asarray(t.data).reshape(-1), sums[base].reshape(-1))
        else:
            assert list(t.shape) == ([1] if nmat == 1 else [1, nmat])
            assert bits_equal(np.asarray(t.data).reshape(-1), counts[base])
    raw = I.read_imatrix_file(im)
    assert raw.has_metadata and not raw.is_legacy and raw.chunk_count == 12


def test_dat_writer_layout(moe):
    """save_imatrix_legacy: ncall = ceil(max count / chunk size), values (sum/count)*ncall
    (1 where a matrix has count 0), then last chunk and dataset."""
    _, sums, counts, _, dat = moe
    data = dat.read_bytes()
    (n,) = struct.unpack_from("<i", data, 0)
    assert n == len(sums)
    pos = 4
    for name in sorted(sums):
        (ln,) = struct.unpack_from("<i", data, pos)
        assert data[pos + 4 : pos + 4 + ln].decode() == name
        pos += 4 + ln
        ncall, nval = struct.unpack_from("<ii", data, pos)
        pos += 8
        c = np.asarray(counts[name], np.int64)
        assert ncall == -(-int(c.max()) // 512) and nval == sums[name].size
        pos += 4 * nval
    assert struct.unpack_from("<ii", data, pos) == (12, len("wiki.train.raw"))
    assert data[pos + 8 :] == b"wiki.train.raw"


def test_writers_round_trip_through_llama_cpp(moe):
    """Both files, loaded by llama.cpp, normalise to sum/count (legacy: up to float rounding)."""
    _, sums, counts, im, dat = moe
    g = _cli().prepare_imatrix(str(im))[0]
    d = _cli().prepare_imatrix(str(dat))[0]
    for name in sums:
        c = np.asarray(counts[name], np.float32)
        want = np.where(c[:, None] > 0, sums[name] / np.where(c > 0, c, 1)[:, None], 1).astype(np.float32).reshape(-1)
        assert bits_equal(g[name], want)
        np.testing.assert_allclose(d[name], want, rtol=1e-6)
