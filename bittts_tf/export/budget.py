"""What a model folder costs a microcontroller: flash, arena, and
multiply-accumulates per second of audio, counted from the .tflite graphs.

MACs are counted from each op's tensor shapes (the graphs have fixed
shapes): CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED and
BATCH_MATMUL. Everything else (elementwise ops, layer norms, the decode
ops) is counted as elements written, apart from the MACs.
"""

from __future__ import annotations

import numpy as np

from bittts_tf.litert import tflite_file
from bittts_tf.quant import spec

# Targets of the tiny model on a microcontroller: 512 KB of flash and 128 KB
# of RAM (nRF5340-class parts), and 100 MMAC per second of audio, which a
# stream that recomputes nothing reaches (the stateless graph cost 283).
TARGETS = {"flash_bytes": 512 * 1024, "arena_bytes": 128 * 1024, "macs_per_second": 100e6}

_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 16: 4}
_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool",
               7: "int16", 9: "int8", 10: "float64"}


class BudgetError(ValueError):
    """A graph the budget cannot count; the message names it."""


def _shape(tensor) -> list[int]:
    return [int(d) for d in (tensor.shape if tensor.shape is not None else [])]


def _elements(tensor) -> int:
    return int(np.prod(_shape(tensor), dtype=np.int64))


def op_macs(op_name: str, inputs: list, outputs: list, options) -> int:
    """Multiply-accumulates of one op from its tensors (schema TensorT)."""
    if op_name == "CONV_2D":
        out_elements = _elements(outputs[0])
        _, kh, kw, cin = _shape(inputs[1])  # filter [out, kh, kw, in / groups]
        return out_elements * kh * kw * cin
    if op_name == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = _shape(inputs[1])  # filter [1, kh, kw, out]
        return _elements(outputs[0]) * kh * kw
    if op_name == "TRANSPOSE_CONV":
        # inputs: output shape, filter [out, kh, kw, in], input
        _, kh, kw, _ = _shape(inputs[1])
        return _elements(inputs[2]) * kh * kw * _shape(inputs[1])[0]
    if op_name == "FULLY_CONNECTED":
        units, depth = _shape(inputs[1])  # weights [units, depth]
        rows = _elements(inputs[0]) // depth
        return rows * units * depth
    if op_name == "BATCH_MATMUL":
        a, b = _shape(inputs[0]), _shape(inputs[1])
        adj_x = bool(getattr(options, "adjX", False)) if options is not None else False
        adj_y = bool(getattr(options, "adjY", False)) if options is not None else False
        m, k = (a[-1], a[-2]) if adj_x else (a[-2], a[-1])
        n = b[-2] if adj_y else b[-1]
        batch = _elements(outputs[0]) // (m * n)
        return batch * m * n * k
    return 0


MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL")


def graph_macs(model_bytes: bytes, name: str = "graph") -> dict:
    """MACs per invocation, by op type, and the other ops' elements."""
    model = tflite_file.parse_model(model_bytes, name)
    names = tflite_file.builtin_names()
    by_op: dict[str, int] = {}
    other_elements = 0
    for subgraph in model.subgraphs:
        tensors = subgraph.tensors
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = tflite_file.builtin_code(model, op)
            op_name = (bytes(code.customCode).decode() if code.customCode is not None
                       else names.get(builtin, str(builtin)))
            inputs = [tensors[i] if i >= 0 else None for i in op.inputs]
            outputs = [tensors[i] for i in op.outputs]
            if op_name in MAC_OPS:
                macs = op_macs(op_name, inputs, outputs, op.builtinOptions)
                by_op[op_name] = by_op.get(op_name, 0) + macs
            elif op_name == spec.CONV_OP_NAME:
                # The fused ternary conv: its weights are the packed bytes
                # (5 a byte, under 5 of padding), [Cout, 1, K, Cin] in order.
                cin, cout = _shape(inputs[0])[-1], _shape(outputs[0])[-1]
                taps = spec.TRITS_PER_BYTE * _elements(inputs[1]) // (cout * cin)
                macs = _elements(outputs[0]) * taps * cin
                by_op[op_name] = by_op.get(op_name, 0) + macs
            else:
                other_elements += sum(_elements(t) for t in outputs)
    return {"macs": sum(by_op.values()), "macs_by_op": dict(sorted(by_op.items())),
            "other_op_output_elements": other_elements}


def flash_breakdown(model_bytes: bytes, name: str = "graph") -> dict:
    """Bytes of the file by what they hold: packed ternary kernels, their
    scales, other constants by type, and the rest (graph structure)."""
    model = tflite_file.parse_model(model_bytes, name)
    decode_codes = tflite_file.custom_opcodes(model)
    role = {}
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if op.opcodeIndex in decode_codes:
                role[subgraph.tensors[op.inputs[0]].buffer] = "ternary_packed"
                role[subgraph.tensors[op.inputs[1]].buffer] = "ternary_scales"
    kinds: dict[str, int] = {}
    counted = set()
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            buffer = model.buffers[tensor.buffer]
            if tensor.buffer in counted or buffer.data is None or len(buffer.data) == 0:
                continue
            counted.add(tensor.buffer)
            kind = role.get(tensor.buffer) or f"{_TYPE_NAMES.get(tensor.type, tensor.type)}_constants"
            kinds[kind] = kinds.get(kind, 0) + len(buffer.data)
    constants = sum(kinds.values())
    # Per-channel scales (float32) and zero points (int64) live in the
    # tensor tables, not in buffers: an int8 graph's largest non-weight cost.
    quantization = 0
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            q = tensor.quantization
            if q is not None:
                quantization += 4 * len(q.scale if q.scale is not None else [])
                quantization += 8 * len(q.zeroPoint if q.zeroPoint is not None else [])
    return {"bytes": len(model_bytes), **dict(sorted(kinds.items())),
            "quantization_parameters": quantization,
            "graph_structure_and_padding": len(model_bytes) - constants - quantization}


def largest_constants(model_bytes: bytes, count: int = 5) -> list[dict]:
    """The largest constant buffers and the tensors that hold them."""
    model = tflite_file.parse_model(model_bytes)
    seen = {}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            buffer = model.buffers[tensor.buffer]
            if buffer.data is None or not len(buffer.data) or tensor.buffer in seen:
                continue
            seen[tensor.buffer] = {"name": (tensor.name or b"").decode(), "shape": _shape(tensor),
                                   "type": _TYPE_NAMES.get(tensor.type, str(tensor.type)),
                                   "bytes": len(buffer.data)}
    return sorted(seen.values(), key=lambda t: -t["bytes"])[:count]


def largest_activations(model_bytes: bytes, count: int = 5) -> list[dict]:
    """The largest non-constant tensors: what an arena has to hold."""
    model = tflite_file.parse_model(model_bytes)
    found = []
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            buffer = model.buffers[tensor.buffer]
            if buffer.data is not None and len(buffer.data):
                continue
            size = _elements(tensor) * _TYPE_BYTES.get(tensor.type, 4)
            found.append({"name": (tensor.name or b"").decode(), "shape": _shape(tensor),
                          "type": _TYPE_NAMES.get(tensor.type, str(tensor.type)), "bytes": size})
    return sorted(found, key=lambda t: -t["bytes"])[:count]


def macs_per_second(shapes: dict, sample_rate: int, frames_macs: int, text_macs: int,
                    frames_per_phoneme: float, istft_instructions_per_frame: int | None = None
                    ) -> dict:
    """Frames graph: a stream, each invoke computes `step` new frames and
    nothing twice, so its MACs per second are its MACs per invoke times
    invokes per second. Text graph: one invocation per segment of up to
    max_tokens phonemes, amortized over the audio of a full segment at
    `frames_per_phoneme` (an assumption: shorter segments cost more). The
    inverse STFT (C, outside the graphs) is counted apart."""
    # Zero would divide by zero; a negative or NaN assumption gives a rate
    # that passes the target while meaning nothing.
    if not (np.isfinite(frames_per_phoneme) and frames_per_phoneme > 0):
        raise BudgetError(f"frames per phoneme {frames_per_phoneme}: must be a positive number")
    hop, step = shapes["hop_length"], shapes["stream"]["step"]
    step_seconds = step * hop / sample_rate
    frames_rate = frames_macs / step_seconds
    segment_seconds = shapes["max_tokens"] * frames_per_phoneme * hop / sample_rate
    text_rate = text_macs / segment_seconds
    return {"step_frames": step, "step_seconds": step_seconds,
            "frames_graph_macs_per_invoke": frames_macs,
            "frames_graph_macs_per_second": frames_rate,
            "text_graph_macs_per_segment": text_macs,
            "frames_per_phoneme_assumed": frames_per_phoneme,
            "text_graph_macs_per_second": text_rate,
            "total_macs_per_second": frames_rate + text_rate}


def latency_frames(shapes: dict, n_fft: int) -> dict:
    """From the first regulated frame in to its first sample out, in frames:
    the stream's delay (its convs look ahead), one step's wait for the
    invoke, and the inverse STFT's n_fft / (2 hop) frames of overlap."""
    stream, hop = shapes["stream"], shapes["hop_length"]
    istft = n_fft // (2 * hop)
    total = stream["delay"] + stream["step"] + istft
    return {"stream_delay": stream["delay"], "step": stream["step"], "istft_delay": istft,
            "total_frames": total}
