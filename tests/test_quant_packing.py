"""Weight indexing (format version 2, balanced ternary): round trips, sizes,
errors; Python spec vs the C library; every C decoder vs numpy."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bittts_tf.litert import native
from bittts_tf.quant import packing, spec

shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=23)
ternary_arrays = shapes.flatmap(
    lambda shape: hnp.arrays(np.int8, shape, elements=st.sampled_from([-1, 0, 1])))

INVALID_BYTES = [b for b in range(-128, 128) if abs(b) > 121]
C_DECODERS = sorted(native.F32_DECODERS)


def brute_force_decode(indices, n):
    """Balanced base-3 digits by repeated division: the definition, not the table."""
    out = []
    for byte in indices:
        value = int(byte)
        for _ in range(spec.TRITS_PER_BYTE):
            trit = (value + 1) % 3 - 1  # the remainder in -1..1
            out.append(trit)
            value = (value - trit) // 3
        assert value == 0, byte
    return np.array(out[:n], np.int8)


@given(ternary_arrays)
def test_round_trip_any_shape(codes):
    indices = packing.encode(codes)
    assert indices.dtype == np.int8
    assert indices.size == -(-codes.size // 5)
    assert np.abs(indices.astype(int)).max(initial=0) <= spec.MAX_INDEX
    np.testing.assert_array_equal(packing.decode(indices, codes.size).reshape(codes.shape), codes)
    np.testing.assert_array_equal(brute_force_decode(indices, codes.size), codes.reshape(-1))


@given(ternary_arrays)
def test_negating_the_weights_negates_the_bytes(codes):
    np.testing.assert_array_equal(packing.encode(-codes), -packing.encode(codes))


def test_the_243_patterns_are_the_bytes_minus_121_to_121():
    seen = {}
    for trits in itertools.product((-1, 0, 1), repeat=5):
        byte = int(packing.encode(np.array(trits, np.int8))[0])
        assert byte == sum(t * 3**k for k, t in enumerate(trits))
        seen[byte] = trits
        np.testing.assert_array_equal(packing.decode(np.int8([byte]), 5), trits)
    assert sorted(seen) == list(range(-121, 122))
    assert (spec.MIN_INDEX, spec.MAX_INDEX, spec.NUM_PATTERNS) == (-121, 121, 243)


def test_prescale_constants_are_exact_for_every_byte():
    assert spec.prescale_is_exact()


@given(ternary_arrays, st.floats(1e-6, 10.0, allow_nan=False))
def test_pack_unpack_float_weights(codes, scale):
    packed = packing.pack(codes, scale)
    np.testing.assert_array_equal(packing.unpack(packed),
                                  codes.astype(np.float32) * np.float32(scale))


@given(st.integers(10_000, 3_000_000))
def test_storage_at_most_1_61_bits_per_weight_from_10k_weights(n):
    size = packing.PackedTernary(np.zeros(packing.packed_size(n), np.int8), 1.0, (n,))
    assert size.bits_per_weight <= 1.61
    assert size.nbytes == -(-n // 5) + 4


def test_measured_storage_of_real_tensors(rng):
    for n in (10_000, 10_001, 65_539, 327_680):
        packed = packing.pack(rng.integers(-1, 2, n), 0.1)
        assert packed.indices.nbytes + 4 == packed.nbytes
        assert packed.bits_per_weight <= 1.61, (n, packed.bits_per_weight)


def test_padding_trits_are_zero_weights():
    indices = packing.encode(np.array([1, -1, 1], np.int8))
    assert indices[0] == 1 - 1 * 3 + 1 * 9 + 0 * 27 + 0 * 81


def test_errors_name_the_problem():
    with pytest.raises(packing.PackingError, match="must be -1, 0 or 1"):
        packing.encode(np.array([0, 2, 1]))
    with pytest.raises(packing.PackingError, match="need 2 packed bytes"):
        packing.decode(np.zeros(3, np.int8), 7)
    with pytest.raises(packing.PackingError, match="uint8"):
        packing.decode(np.zeros(2, np.uint8), 10)
    with pytest.raises(packing.PackingError, match="int32"):
        packing.decode(np.zeros(2, np.int32), 10)


@pytest.mark.parametrize("bad_byte", INVALID_BYTES)
def test_numpy_decode_rejects_each_invalid_byte(bad_byte):
    assert len(INVALID_BYTES) == 13
    indices = np.int8([0, 121, bad_byte, -121])
    with pytest.raises(packing.PackingError, match=f"byte 2 is {bad_byte}, outside -121..121"):
        packing.decode(indices, 20)


def test_committed_c_header_is_generated_from_spec():
    assert spec.HEADER_PATH.read_text() == spec.c_header(), \
        "tflite/bittts_spec.h is stale: run python -m bittts_tf.quant.spec --write-header"


def test_c_library_agrees_with_python_spec():
    assert native.c_spec() == {"op_name": spec.OP_NAME, "format_version": spec.FORMAT_VERSION,
                                "trits_per_byte": spec.TRITS_PER_BYTE,
                                "min_index": spec.MIN_INDEX, "max_index": spec.MAX_INDEX,
                                "packed_size_of_11": packing.packed_size(11)}
    assert spec.FORMAT_VERSION == 2


@given(st.integers(1, 5000), st.floats(1e-4, 4.0))
def test_c_decoders_equal_brute_force_decode(n, scale):
    codes = np.random.default_rng(n).integers(-1, 2, n).astype(np.int8)
    indices = packing.encode(codes)
    expected = brute_force_decode(indices, n).astype(np.float32) * np.float32(scale)
    for decoder in C_DECODERS:
        np.testing.assert_array_equal(native.c_decode_f32(indices, scale, n, decoder=decoder),
                                      expected, err_msg=decoder)
    np.testing.assert_array_equal(native.c_decode_i8(indices, n), codes)


def test_c_decoders_on_every_byte_value(rng):
    scale = float(rng.uniform(0.01, 3.0))
    indices = np.arange(-121, 122, dtype=np.int8)
    rng.shuffle(indices)
    n = 5 * indices.size - int(rng.integers(0, 5))
    expected = brute_force_decode(indices, n)
    for decoder in C_DECODERS:
        np.testing.assert_array_equal(native.c_decode_f32(indices, scale, n, decoder=decoder),
                                      expected.astype(np.float32) * np.float32(scale),
                                      err_msg=decoder)
    np.testing.assert_array_equal(native.c_decode_i8(indices, n), expected)


@pytest.mark.parametrize("bad_byte", INVALID_BYTES)
def test_c_decoders_reject_each_invalid_byte(rng, bad_byte):
    indices = packing.encode(rng.integers(-1, 2, 100))
    indices[7] = bad_byte
    decoders = [lambda d=d: native.c_decode_f32(indices, 1.0, 100, decoder=d) for d in C_DECODERS]
    for decode in decoders + [lambda: native.c_decode_i8(indices, 100)]:
        with pytest.raises(native.DecodeError, match=f"outside -121..121 \\(byte 7 is {bad_byte}\\)"):
            decode()


def test_c_decoder_rejects_size_mismatch_and_wrong_dtypes(rng):
    indices = packing.encode(rng.integers(-1, 2, 100))
    with pytest.raises(native.DecodeError, match="does not match"):
        native.c_decode_f32(indices, 1.0, 101)
    with pytest.raises(native.DecodeError, match="does not match"):
        native.c_decode_i8(indices, 95)
    with pytest.raises(ValueError, match="int8 array .*format version 2.*uint8"):
        native.c_decode_f32(indices.view(np.uint8), 1.0, 100)
    with pytest.raises(ValueError, match="at least 100 elements"):
        native.c_decode_f32(indices, 1.0, 100, out=np.empty(99, np.float32))


# --- 4-bit weights: TFLite's INT4 layout ------------------------------------

int4_arrays = shapes.flatmap(
    lambda shape: hnp.arrays(np.int8, shape, elements=st.integers(-7, 7)))


def brute_force_int4(data, n):
    """Two's-complement nibbles read bit by bit, low nibble first."""
    out = []
    for byte in np.asarray(data, np.uint8):
        for shift in (0, 4):
            bits = [(int(byte) >> (shift + b)) & 1 for b in range(4)]
            out.append(sum(bit << b for b, bit in enumerate(bits[:3])) - 8 * bits[3])
    return np.array(out[:n], np.int8)


@given(int4_arrays)
def test_int4_round_trip_any_shape(codes):
    data = packing.encode_int4(codes)
    assert data.dtype == np.uint8 and data.size == -(-codes.size // 2)
    np.testing.assert_array_equal(packing.decode_int4(data, codes.size).reshape(codes.shape), codes)
    np.testing.assert_array_equal(brute_force_int4(data, codes.size), codes.reshape(-1))
    if codes.size % 2:
        assert data[-1] >> 4 == 0  # an odd count's last high nibble is zero


@given(int4_arrays, st.floats(1e-6, 1e3))
def test_int4_pack_sizes_and_values(codes, scale):
    packed = packing.pack_int4(codes, scale)
    assert packed.nbytes == -(-codes.size // 2) + spec.SCALE_BYTES
    np.testing.assert_array_equal(packing.unpack_int4(packed),
                                  codes.astype(np.float32) * np.float32(scale))


@pytest.mark.parametrize("bad", [8, -8, 0.5, 100])
def test_int4_encode_refuses_codes_outside_the_4bit_grid(bad):
    with pytest.raises(packing.PackingError, match="4-bit codes must be integers in -7..7"):
        packing.encode_int4(np.array([0, bad, 1]))


def test_int4_decode_refuses_minus_8_and_a_wrong_length(rng):
    codes = rng.integers(-7, 8, size=9)
    data = packing.encode_int4(codes)
    with pytest.raises(packing.PackingError, match="need 5 bytes, got 4"):
        packing.decode_int4(data[:4], 9)
    where = int(rng.integers(0, 9))
    damaged = data.copy()
    damaged[where // 2] = (damaged[where // 2] & (0xF0 if where % 2 == 0 else 0x0F)) | \
        (0x8 << (4 * (where % 2)))
    with pytest.raises(packing.PackingError, match=f"4-bit weight {where} is -8"):
        packing.decode_int4(damaged, 9)
