"""The engine against ggml itself: identical bytes for every type, with and without an
importance vector, on the inputs where implementations drift apart."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import quants as gguf_quants
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import formats
from tests import ggml_oracle

LEGACY = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0]
KQUANTS = [Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K]
FLOATS = [Q.F32, Q.F16, Q.BF16]
ALL_TYPES = FLOATS + LEGACY + KQUANTS


def block_of(qt: Q) -> int:
    return formats.block_type(qt).block_size


def row_lengths(qt: Q) -> list[int]:
    """From one block up to 14336 (Llama-3-8B's ffn width), including awkward sizes."""
    if block_of(qt) == 256:
        return [256, 512, 768, 1280, 4096, 14336]
    return [32, 64, 96, 576, 4096, 14336]


def gaussian_with_outliers(rng, rows: int, n: int) -> np.ndarray:
    x = (rng.standard_normal((rows, n)) * 0.02).astype(np.float32)
    k = max(1, n // 200)  # ~0.5% outlier columns, x20
    cols = rng.choice(n, k, replace=False)
    x[:, cols] *= 20
    return x


def importance_for(rng, n: int) -> np.ndarray:
    """Positive importance with some exact zeros, like a real imatrix of a dead channel."""
    qw = (rng.random(n) ** 3 * 10).astype(np.float32)
    qw[rng.random(n) < 0.05] = 0.0
    return qw


def assert_same_bytes(x: np.ndarray, qt: Q, qw: np.ndarray | None) -> None:
    ours = formats.quantize(x, qt, importance=qw)
    ref = ggml_oracle.quantize_chunk(x, qt, qw)
    assert ours.shape == ref.shape
    if not np.array_equal(ours, ref):
        bad = np.flatnonzero((ours != ref).any(axis=1))
        col = int(np.flatnonzero(ours[bad[0]] != ref[bad[0]])[0])
        pytest.fail(
            f"{qt.name} {'imatrix' if qw is not None else 'plain'}: {len(bad)} of {len(x)} rows "
            f"differ from ggml; first row {bad[0]}, byte {col}"
        )


@pytest.fixture(params=[None, "importance"], ids=["plain", "imatrix"])
def with_importance(request):
    return request.param is not None


@pytest.mark.parametrize("qt", ALL_TYPES, ids=lambda t: t.name)
def test_gaussian_rows_with_outliers(qt, with_importance):
    rng = np.random.default_rng(int(qt))
    for n in row_lengths(qt):
        rows = 24 if n <= 4096 else 4
        x = gaussian_with_outliers(rng, rows, n)
        qw = importance_for(rng, n) if with_importance else None
        assert_same_bytes(x, qt, qw)


@pytest.mark.parametrize("qt", ALL_TYPES, ids=lambda t: t.name)
def test_degenerate_rows(qt, with_importance):
    """All-zero, constant, one huge value, tiny values, alternating signs, f16 extremes."""
    rng = np.random.default_rng(100 + int(qt))
    n = 512
    rows = []
    rows.append(np.zeros(n))
    rows.append(np.full(n, 0.125))
    rows.append(np.full(n, -3.0))
    for huge in (1e4, 1e20, 3e38):
        r = rng.standard_normal(n) * 0.02
        r[rng.integers(n)] = huge
        rows.append(r)
    rows.append(rng.standard_normal(n) * 1e-30)
    rows.append(np.full(n, 1e-30))
    rows.append(rng.standard_normal(n) * 1e-6)
    rows.append(np.where(np.arange(n) % 2 == 0, 1.0, -1.0))
    r = np.zeros(n)
    r[::32] = 1.0  # one value per legacy block
    rows.append(r)
    rows.append(np.concatenate([np.zeros(n // 2), rng.standard_normal(n // 2)]))  # zero blocks
    rows.append(rng.standard_normal(n) * 70000.0)  # beyond the f16 range
    rows.append(rng.standard_normal(n) * 6e-8)  # f16 subnormals
    rows.append(np.full(n, -0.0))  # negative zeros: C keeps its initial +0.0 as the max
    rows.append(np.where(np.arange(n) % 3 == 0, -0.0, 0.0))  # mixed signed zeros
    r = np.abs(rng.standard_normal(n))
    r[:7] = -0.0
    rows.append(r)  # a block starting with -0 (min/max ties)
    rows.append(np.abs(rng.standard_normal(n)))  # all positive (min > 0)
    r = -np.abs(rng.standard_normal(n))
    r[1::32], r[3::32] = -0.0, 0.0
    rows.append(r)  # max is a zero: -0 comes first
    r = np.abs(rng.standard_normal(n))
    r[2::32], r[5::32] = 0.0, -0.0
    rows.append(r)  # min is a zero: +0 comes first
    rows.append(np.where(np.arange(n) % 2 == 0, -1.0, 1.0))  # |max| tie, negative first
    r = rng.standard_normal(n) * 0.1
    r[7::16], r[11::16] = 2.5, -2.5  # a +v / -v tie inside each block, +v first
    rows.append(r)
    rows.append(-r)  # and -v first
    rows.append(-np.abs(rng.standard_normal(n)))  # all negative
    x = np.asarray(rows, dtype=np.float32)
    qw = importance_for(rng, n) if with_importance else None
    assert_same_bytes(x, qt, qw)
    if with_importance:
        assert_same_bytes(x, qt, np.zeros(n, np.float32))  # an all-zero importance vector
        assert_same_bytes(x, qt, np.full(n, 1e-30, np.float32))


finite_f32 = st.floats(
    min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=32
)


@st.composite
def rows_and_importance(draw, block: int):
    nblocks = draw(st.integers(1, 3 if block == 256 else 8))
    n = nblocks * block
    rows = draw(st.integers(1, 3))
    scale = draw(st.sampled_from([1e-3, 0.02, 1.0, 300.0]))
    x = draw(hnp.arrays(np.float32, (rows, n), elements=finite_f32)) * np.float32(scale / 1e6)
    # sprinkle exact repeats / zeros, which hypothesis finds on its own only rarely
    if draw(st.booleans()):
        x[:, : n // 4] = 0.0
    qw = None
    if draw(st.booleans()):
        qw = draw(
            hnp.arrays(
                np.float32,
                n,
                elements=st.floats(0.0, 100.0, allow_nan=False, width=32),
            )
        )
    return x.astype(np.float32), qw


@pytest.mark.parametrize("qt", LEGACY + KQUANTS + [Q.F16, Q.BF16], ids=lambda t: t.name)
def test_hypothesis_rows(qt):
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=True,
    )
    @given(rows_and_importance(block_of(qt)))
    def check(data):
        x, qw = data
        assert_same_bytes(x, qt, qw)

    check()


@pytest.mark.parametrize("qt", ALL_TYPES, ids=lambda t: t.name)
def test_dequantize_matches_gguf_and_ggml(qt):
    rng = np.random.default_rng(7 + int(qt))
    n = 1024
    x = gaussian_with_outliers(rng, 16, n)
    q = ggml_oracle.quantize_chunk(x, qt, None)
    ours = formats.dequantize(q, qt, n)
    theirs = gguf_quants.dequantize(q, qt).reshape(ours.shape).astype(np.float32)
    ggml = ggml_oracle.dequantize(q, qt, n)
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32)), "differs from gguf.quants"
    assert np.array_equal(ours.view(np.uint32), ggml.view(np.uint32)), "differs from ggml"


@pytest.mark.parametrize("qt", ALL_TYPES, ids=lambda t: t.name)
def test_thread_count_does_not_change_bytes(qt):
    rng = np.random.default_rng(3)
    n = 256 * 4
    x = gaussian_with_outliers(rng, 37, n)
    qw = importance_for(rng, n)
    for imp in (None, qw):
        one = formats.quantize(x, qt, importance=imp, threads=1)
        two = formats.quantize(x, qt, importance=imp, threads=2)
        assert np.array_equal(one, two)


@pytest.mark.parametrize("qt", ALL_TYPES, ids=lambda t: t.name)
def test_row_size_matches_ggml(qt):
    for n in row_lengths(qt):
        assert formats.row_size(qt, n) == ggml_oracle.row_size(qt, n)
