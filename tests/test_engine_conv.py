"""The engine's convolutions against TFLite Micro: every CONV_2D,
DEPTHWISE_CONV_2D and BitTTSTernaryConv of the shipped int8 voice, one op at
a time on fresh random inputs, must give the TFLM wheel's outputs bit for
bit; corrupt kernels, shapes and parameters are refused with a status."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bittts_tf.engine import check, graph, lower_conv, native, spec
from bittts_tf.quant import spec as quant_spec
from engine_ops import STATUS, assert_exact, shipped_ops

OK, ERR_INDEX, ERR_PARAM, ERR_SIZE = (STATUS[s] for s in ("OK", "ERR_INDEX", "ERR_PARAM",
                                                          "ERR_SIZE"))


def _ops(name: str) -> list[tuple[bytes, int]]:
    return [(data, op.index) for data, op in shipped_ops(name)]


def _assert_exact(data: bytes, index: int, rng: np.random.Generator) -> None:
    assert_exact(data, index, rng)


@pytest.mark.parametrize("name, least", [("CONV_2D", 4), ("DEPTHWISE_CONV_2D", 8),
                                         (quant_spec.CONV_OP_NAME, 35)])
def test_every_shipped_op_is_bit_exact(name, least, seed):
    rng = np.random.default_rng(seed)
    ops = _ops(name)
    assert len(ops) >= least
    for data, index in ops:
        _assert_exact(data, index, rng)


# --- one lowered op with its arrays, for the refusals ---------------------------

def _lowered_arrays(name: str):
    """(lowered op, input arrays, output arrays) of the first `name` op."""
    data, index = _ops(name)[0]
    tensors, ops, _, _ = graph.read_graph(graph.single_op_model(data, index))
    lowered = spec.lowerings()[name](ops[0])
    rng = np.random.default_rng(0)
    feeds = {i: check.random_input(tensors[i], rng) for i in lowered.inputs
             if isinstance(i, int) and not tensors[i].is_const}
    inputs = [None if ref is None else native._array(ref, tensors, feeds) for ref in lowered.inputs]
    outputs = [np.zeros(ref.shape if isinstance(ref, graph.NewTensor) else tensors[ref].shape,
                        np.int8) for ref in lowered.outputs]
    return lowered, inputs, outputs


@pytest.mark.parametrize("byte", [122, -122, -128, 127])
def test_corrupt_packed_byte_is_err_index(byte, seed):
    lowered, inputs, outputs = _lowered_arrays(quant_spec.CONV_OP_NAME)
    assert native.run_op(lowered.opcode, inputs, outputs, lowered.params) == OK
    packed = inputs[1].copy()
    packed[np.random.default_rng(seed).integers(packed.size)] = byte
    before = [o.copy() for o in outputs]
    status = native.run_op(lowered.opcode, [inputs[0], packed, inputs[2]], outputs,
                           lowered.params)
    assert status == ERR_INDEX
    assert all(np.array_equal(a, b) for a, b in zip(outputs, before))


def _status(lowered, inputs, outputs, params=None) -> int:
    return native.run_op(lowered.opcode, inputs, outputs,
                         lowered.params if params is None else params)


@pytest.mark.parametrize("name", ["CONV_2D", "DEPTHWISE_CONV_2D", quant_spec.CONV_OP_NAME])
def test_bad_shapes_and_params_are_refused(name):
    lowered, inputs, outputs = _lowered_arrays(name)
    names = spec.params()[lowered.opcode]
    assert _status(lowered, inputs, outputs) == OK

    def with_param(word: str, value: int) -> int:
        params = list(lowered.params)
        params[names.index(word)] = value
        return _status(lowered, inputs, outputs, params)

    # too few / many words, tensors
    assert _status(lowered, inputs, outputs, lowered.params[:-1]) != OK
    assert _status(lowered, inputs, outputs, lowered.params + [0]) != OK
    assert _status(lowered, inputs[:-1], outputs) != OK
    # an output one frame short, the wrong type
    short = [np.zeros(o.shape[:2] + (o.shape[2] - 1,) + o.shape[3:], o.dtype)
             if k == 0 else o for k, o in enumerate(outputs)]
    assert _status(lowered, inputs, short) == ERR_SIZE
    assert _status(lowered, inputs, [outputs[0].astype(np.float32)] + outputs[1:]) != OK
    # words out of range
    assert with_param("stride" if "stride" in names else "stride_w", 0) == ERR_PARAM
    assert with_param("input_offset", 129) == ERR_PARAM
    assert with_param("act_min", lowered.params[names.index("act_max")] + 1) == ERR_PARAM
    assert with_param("padding", 7) == ERR_PARAM
    if name == quant_spec.CONV_OP_NAME:
        assert with_param("shift", 31) == ERR_PARAM
        assert with_param("kernel_size", 0) == ERR_PARAM
        assert with_param("kernel_size", lowered.params[0] + 1) != OK  # packed size mismatch
        scratch = np.zeros(outputs[1].size - 1, np.int8)
        assert _status(lowered, inputs, [outputs[0], scratch]) == ERR_SIZE
    else:
        assert with_param("pad_w", lowered.params[names.index("pad_w")] + 1) == ERR_PARAM
        shifts = inputs[4].copy()
        shifts[0] = 31
        assert _status(lowered, inputs[:4] + [shifts], outputs) == ERR_PARAM
        # per-channel arrays one short
        assert _status(lowered, inputs[:3] + [inputs[3][:-1].copy(), inputs[4]], outputs) \
            == ERR_SIZE


def test_quantize_multiplier_matches_the_c_kernel(seed):
    """The lowering's QuantizeMultiplier port against the C one the TFLM
    kernel registration uses (flush to zero, the carry into 2^31)."""
    from bittts_tf.export import fused_conv
    if not fused_conv.CONV_LIBRARY.exists():
        pytest.skip("build/libbittts_ternary_conv.so missing: make lib")
    rng = np.random.default_rng(seed)
    reals = list(np.exp(rng.uniform(math.log(2.0**-40), math.log(2.0**29), 2000)))
    reals += [0.0, 2.0**-32, 2.0**-31, 0.5, 1.0, 1.0 - 2.0**-40, 0.75, 2.0**29]
    for real in reals:
        assert lower_conv.quantize_multiplier(real) == fused_conv.quantize_multiplier(real), real
