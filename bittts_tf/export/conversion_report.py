"""Size reports of a conversion: a row per packed or constant tensor, the
summary against the float32 baseline, and its table."""

from __future__ import annotations

import dataclasses

import numpy as np

from bittts_tf.litert import tflite_file
from bittts_tf.litert.tflite_file import FLOAT32, INT8, INT32
from bittts_tf.quant import spec


@dataclasses.dataclass
class TensorReport:
    tensor: str
    layer: str
    shape: list[int]
    weights: int
    stored_bytes: int
    bits_per_weight: float
    format: str  # "ternary-indexed", "int4" (packed 4-bit), or a constant's type: "float32", ...


_CONSTANT_BITS = {FLOAT32: 32.0, INT8: 8.0, INT32: 32.0}


def constant_tensor_reports(tflite_bytes: bytes,
                            types: tuple[int, ...] = (FLOAT32,)) -> list[TensorReport]:
    """Every constant tensor of the given types still in a model (the decode
    ops' packed inputs aside), as report rows; format is the type's name."""
    model = tflite_file.parse_model(tflite_bytes)
    decode_codes = tflite_file.custom_opcodes(model)
    rows = []
    for subgraph in model.subgraphs:
        decode_inputs = {int(i) for op in subgraph.operators if op.opcodeIndex in decode_codes
                         for i in op.inputs}
        for index, tensor in enumerate(subgraph.tensors):
            data = model.buffers[tensor.buffer].data
            if (tensor.type not in types or index in decode_inputs or data is None
                    or len(data) == 0):
                continue
            weights = int(np.prod(tensor.shape, dtype=np.int64))
            rows.append(TensorReport(tensor.name.decode(), "", [int(d) for d in tensor.shape],
                                     weights, len(data), _CONSTANT_BITS[tensor.type],
                                     tflite_file.type_names()[tensor.type]))
    return rows


def float_tensor_reports(tflite_bytes: bytes) -> list[TensorReport]:
    """Every constant float32 tensor still in a model, as report rows."""
    return constant_tensor_reports(tflite_bytes, (FLOAT32,))


def int8_tensor_reports(tflite_bytes: bytes) -> list[TensorReport]:
    """The constants of an integer model: int8 weights, int32 biases (and
    shape operands), float32 ones of the ops left in float."""
    return constant_tensor_reports(tflite_bytes, (FLOAT32, INT8, INT32))


@dataclasses.dataclass
class ConversionResult:
    tflite: bytes
    float32_tflite_bytes: int
    tensors: list[TensorReport]

    def summary(self) -> dict:
        ternary = [t for t in self.tensors if t.format == "ternary-indexed"]
        ternary_weights = sum(t.weights for t in ternary)
        ternary_bytes = sum(t.stored_bytes for t in ternary)
        return {
            "custom_op": spec.OP_NAME,
            "tflite_bytes": len(self.tflite),
            "float32_tflite_bytes": self.float32_tflite_bytes,
            "size_ratio_vs_float32": round(len(self.tflite) / self.float32_tflite_bytes, 4),
            "ternary_tensors": len(ternary),
            "ternary_weights": ternary_weights,
            "ternary_stored_bytes": ternary_bytes,
            "bits_per_ternary_weight": round(8.0 * ternary_bytes / max(ternary_weights, 1), 4),
            "float32_weights": sum(t.weights for t in self.tensors if t.format == "float32"),
        }

    def report(self) -> dict:
        return {**self.summary(), "tensors": [dataclasses.asdict(t) for t in self.tensors]}


def format_size_table(result: ConversionResult) -> str:
    lines = [f"{'tensor':60s} {'weights':>9s} {'bytes':>9s} {'bits/w':>7s}  format"]
    for t in result.tensors:
        lines.append(f"{t.tensor[-60:]:60s} {t.weights:9d} {t.stored_bytes:9d} "
                     f"{t.bits_per_weight:7.3f}  {t.format}")
    s = result.summary()
    lines.append(
        f"total: {s['tflite_bytes']} bytes .tflite vs {s['float32_tflite_bytes']} bytes float32 "
        f"({s['size_ratio_vs_float32']:.3f}x); {s['ternary_weights']} ternary weights at "
        f"{s['bits_per_ternary_weight']:.3f} bits each, scale included")
    return "\n".join(lines)
