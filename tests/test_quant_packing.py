"""Weight indexing: round trips, sizes, errors; Python spec vs the C library."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bittts_tf.export import runtime
from bittts_tf.quant import packing, spec

shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=23)
ternary_arrays = shapes.flatmap(
    lambda shape: hnp.arrays(np.int8, shape, elements=st.sampled_from([-1, 0, 1])))


def brute_force_decode(indices, n):
    """Base-3 digits by repeated division: the definition, not the table."""
    out = []
    for byte in indices:
        value = int(byte)
        for _ in range(spec.TRITS_PER_BYTE):
            out.append(value % 3 - 1)
            value //= 3
    return np.array(out[:n], np.int8)


@given(ternary_arrays)
def test_round_trip_any_shape(codes):
    indices = packing.encode(codes)
    assert indices.dtype == np.uint8
    assert indices.size == -(-codes.size // 5)
    assert indices.max(initial=0) <= spec.MAX_INDEX
    np.testing.assert_array_equal(packing.decode(indices, codes.size).reshape(codes.shape), codes)
    np.testing.assert_array_equal(brute_force_decode(indices, codes.size), codes.reshape(-1))


@given(ternary_arrays, st.floats(1e-6, 10.0, allow_nan=False))
def test_pack_unpack_float_weights(codes, scale):
    packed = packing.pack(codes, scale)
    np.testing.assert_array_equal(packing.unpack(packed),
                                  codes.astype(np.float32) * np.float32(scale))


@given(st.integers(10_000, 3_000_000))
def test_storage_at_most_1_61_bits_per_weight_from_10k_weights(n):
    size = packing.PackedTernary(np.zeros(packing.packed_size(n), np.uint8), 1.0, (n,))
    assert size.bits_per_weight <= 1.61
    assert size.nbytes == -(-n // 5) + 4


def test_measured_storage_of_real_tensors(rng):
    for n in (10_000, 10_001, 65_539, 327_680):
        packed = packing.pack(rng.integers(-1, 2, n), 0.1)
        assert packed.indices.nbytes + 4 == packed.nbytes
        assert packed.bits_per_weight <= 1.61, (n, packed.bits_per_weight)


def test_padding_trits_are_zero_weights():
    indices = packing.encode(np.array([1, -1, 1], np.int8))
    assert indices[0] == (2 + 0 * 3 + 2 * 9 + 1 * 27 + 1 * 81)


def test_errors_name_the_problem():
    with pytest.raises(packing.PackingError, match="must be -1, 0 or 1"):
        packing.encode(np.array([0, 2, 1]))
    with pytest.raises(packing.PackingError, match="need 2 packed bytes"):
        packing.decode(np.zeros(3, np.uint8), 7)
    with pytest.raises(packing.PackingError, match="byte 1 is 243"):
        packing.decode(np.array([0, 243], np.uint8), 10)
    with pytest.raises(packing.PackingError, match="uint8"):
        packing.decode(np.zeros(2, np.int32), 10)


def test_committed_c_header_is_generated_from_spec():
    assert spec.HEADER_PATH.read_text() == spec.c_header(), \
        "tflite/bittts_spec.h is stale: run python -m bittts_tf.quant.spec --write-header"


def test_c_library_agrees_with_python_spec():
    assert runtime.c_spec() == {"op_name": spec.OP_NAME, "trits_per_byte": spec.TRITS_PER_BYTE,
                                "max_index": spec.MAX_INDEX,
                                "packed_size_of_11": packing.packed_size(11)}


@given(st.integers(1, 5000), st.floats(1e-4, 4.0))
def test_c_decoders_equal_numpy_decode(n, scale):
    codes = np.random.default_rng(n).integers(-1, 2, n).astype(np.int8)
    indices = packing.encode(codes)
    expected = packing.decode(indices, n).astype(np.float32) * np.float32(scale)
    np.testing.assert_array_equal(runtime.c_decode_f32(indices, scale, n), expected)
    np.testing.assert_array_equal(runtime.c_decode_f32(indices, scale, n, naive=True), expected)
    np.testing.assert_array_equal(runtime.c_decode_i8(indices, n), codes)


@pytest.mark.parametrize("bad_byte", [243, 250, 255])
def test_c_decoder_rejects_out_of_range_index(rng, bad_byte):
    indices = packing.encode(rng.integers(-1, 2, 100))
    indices[7] = bad_byte
    for decode in (lambda: runtime.c_decode_f32(indices, 1.0, 100),
                   lambda: runtime.c_decode_f32(indices, 1.0, 100, naive=True),
                   lambda: runtime.c_decode_i8(indices, 100)):
        with pytest.raises(runtime.DecodeError, match=f"byte 7 is {bad_byte}"):
            decode()


def test_c_decoder_rejects_size_mismatch(rng):
    indices = packing.encode(rng.integers(-1, 2, 100))
    with pytest.raises(runtime.DecodeError, match="does not match"):
        runtime.c_decode_f32(indices, 1.0, 101)
