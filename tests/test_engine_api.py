"""The engine's public API: registry, names, sizes and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q

import formats
from formats.registry import REGISTRY

ENGINE_TYPES = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"}


def test_registry_holds_exactly_the_engine_types():
    formats.supports("F32")  # loads the families
    assert {t.name for t in REGISTRY} == ENGINE_TYPES


@pytest.mark.parametrize("name", sorted(ENGINE_TYPES))
def test_block_layout_matches_gguf_sizes(name):
    bt = formats.block_type(name)
    block_size, type_size = GGML_QUANT_SIZES[Q[name]]
    assert bt.block.itemsize == type_size
    assert bt.block_size == block_size


def test_supports_names_and_enums():
    assert formats.supports("q4_k") and formats.supports(Q.Q6_K) and formats.supports(int(Q.Q8_0))
    assert not formats.supports("IQ2_XXS")
    assert not formats.supports("not-a-type")


def test_unsupported_type_is_a_clear_error():
    with pytest.raises(formats.QuantizationError, match="IQ2_XXS is not supported"):
        formats.quantize(np.zeros((1, 256), np.float32), "IQ2_XXS")


@pytest.mark.parametrize("qt", ["Q4_K", "Q4_0"])
def test_nan_and_inf_name_the_first_bad_row(qt):
    x = np.zeros((5, 256), np.float32)
    x[3, 17] = np.nan
    x[4, 0] = np.inf
    with pytest.raises(formats.QuantizationError, match=r"row 3, column 17"):
        formats.quantize(x, qt)
    x[3, 17] = 0
    with pytest.raises(formats.QuantizationError, match=r"row 4, column 0"):
        formats.quantize(x, qt)


def test_row_length_that_does_not_divide_into_blocks():
    with pytest.raises(formats.QuantizationError, match="576 values does not divide"):
        formats.quantize(np.zeros((2, 576), np.float32), "Q4_K")
    with pytest.raises(formats.QuantizationError, match="does not divide"):
        formats.row_size("Q8_0", 33)
    assert formats.row_size("Q8_0", 576) == 576 // 32 * 34


def test_importance_of_wrong_length_or_not_finite():
    x = np.zeros((1, 256), np.float32)
    with pytest.raises(formats.QuantizationError, match="128 values, rows have 256"):
        formats.quantize(x, "Q4_K", importance=np.ones(128, np.float32))
    qw = np.ones(256, np.float32)
    qw[9] = np.nan
    with pytest.raises(formats.QuantizationError, match="column 9"):
        formats.quantize(x, "Q4_K", importance=qw)


def test_input_must_be_2d_float32():
    with pytest.raises(formats.QuantizationError, match="2-D float32"):
        formats.quantize(np.zeros((2, 256), np.float64), "Q4_K")
    with pytest.raises(formats.QuantizationError, match="2-D float32"):
        formats.quantize(np.zeros(256, np.float32), "Q4_K")


def test_round_trip_shapes():
    x = np.random.default_rng(0).standard_normal((3, 512)).astype(np.float32)
    for name in sorted(ENGINE_TYPES):
        q = formats.quantize(x, name)
        assert q.dtype == np.uint8 and q.shape == (3, formats.row_size(name, 512))
        back = formats.dequantize(q, name, 512)
        assert back.shape == x.shape and back.dtype == np.float32
        # a loose sanity bound; the exact values are checked against ggml elsewhere
        assert np.abs(back - x).max() < 1.0


def test_dequantize_rejects_partial_rows():
    q = formats.quantize(np.zeros((2, 256), np.float32), "Q4_K")
    with pytest.raises(formats.QuantizationError, match="whole number"):
        formats.dequantize(q.reshape(-1)[:-1], "Q4_K", 256)
