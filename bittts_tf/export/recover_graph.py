"""A packed graph as recovery reads it: its ops, which op makes and which
ops read each tensor, its float32 constants, and the weights a conv reads,
decoded from a BitTTSTernaryDecode op (the codes and beta kept) or a float32
constant.

A ternary kernel is the output of a BitTTSTernaryDecode op: its int8 input
holds the codes (`packing.decode`) and its float32 input the scale beta;
`decode_at_load` must give the same floats (checked).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bittts_tf.litert import tflite_file
from bittts_tf.litert.tflite_file import FLOAT32, INT4, INT8
from bittts_tf.quant import packing, spec
from bittts_tf.runtime import decode_at_load

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
BIAS_OPERAND = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}
WEIGHT_OPERAND = 1
# Shape-only ops that may sit between a conv and the ops reading its output.
_PASS_THROUGH = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")


class RecoveryError(ValueError):
    """A model folder whose weights cannot all be read back; the message names
    the layer or tensor."""


@dataclasses.dataclass
class Weight:
    values: np.ndarray           # float32 in the op's layout
    tensor: str
    codes: np.ndarray | None     # int8 codes in the op's layout, when packed
    beta: float | None


class Graph:
    """One packed graph: its ops, their names and the tensors between them."""

    def __init__(self, role: str, file: str, data: bytes):
        self.role = role  # "text" or "frames"
        self.file = file
        self.model = tflite_file.parse_model(data, file)
        if len(self.model.subgraphs) != 1:
            raise RecoveryError(f"{file}: {len(self.model.subgraphs)} subgraphs; an exported "
                                "graph has one")
        self.subgraph = self.model.subgraphs[0]
        self.tensors = self.subgraph.tensors
        self.ops = list(self.subgraph.operators or [])
        names = tflite_file.builtin_names()
        decode_codes = tflite_file.custom_opcodes(self.model)
        self.kinds = [spec.OP_NAME if op.opcodeIndex in decode_codes
                      else names.get(tflite_file.builtin_code(self.model, op), "CUSTOM")
                      for op in self.ops]
        self.producer: dict[int, int] = {}
        self.consumers: dict[int, list[int]] = {}
        for k, op in enumerate(self.ops):
            for t in op.outputs if op.outputs is not None else []:
                self.producer[int(t)] = k
            for t in op.inputs if op.inputs is not None else []:
                if int(t) >= 0:
                    self.consumers.setdefault(int(t), []).append(k)
        self._constants: dict[int, np.ndarray | None] = {}
        # Each op's output names, split where the converter joined fused ops' names.
        self.output_names = [[part for o in (op.outputs if op.outputs is not None else [])
                              for part in self.name(int(o)).split(";") if part]
                             for op in self.ops]

    def name(self, tensor: int) -> str:
        return self.tensors[tensor].name.decode(errors="replace")

    def input(self, k: int, position: int) -> int:
        inputs = self.ops[k].inputs
        return int(inputs[position]) if inputs is not None and len(inputs) > position else -1

    def output(self, k: int) -> int:
        return int(self.ops[k].outputs[0])

    def made_by(self, tensor: int) -> str | None:
        """The kind of op computing `tensor` (None for a constant or an input)."""
        return self.kinds[self.producer[tensor]] if tensor in self.producer else None

    def other_input(self, k: int, tensor: int) -> int:
        """The other input of a binary op `k` that reads `tensor`."""
        a, b = self.input(k, 0), self.input(k, 1)
        return b if a == tensor else a

    def constant(self, tensor: int) -> np.ndarray | None:
        """A float32 constant's values, else None."""
        if tensor not in self._constants:
            self._constants[tensor] = self._read_constant(tensor)
        return self._constants[tensor]

    def _read_constant(self, tensor: int) -> np.ndarray | None:
        if tensor < 0:
            return None
        t = self.tensors[tensor]
        data = self.model.buffers[t.buffer].data
        if t.type != FLOAT32 or data is None or len(data) == 0:
            return None
        shape = tuple(int(d) for d in t.shape) if t.shape is not None else ()
        values = np.frombuffer(bytes(data), np.float32)
        if values.size != int(np.prod(shape, dtype=np.int64)):
            raise RecoveryError(f"{self.file}: constant {self.name(tensor)!r} holds {values.size} "
                                f"floats for its shape {list(shape)}")
        return values.reshape(shape)

    def has_weights(self, k: int) -> bool:
        """A conv / matmul op whose weights are constant or decoded from packed ones."""
        t = self.input(k, WEIGHT_OPERAND)
        return t >= 0 and (self.made_by(t) == spec.OP_NAME or self.constant(t) is not None
                           or self._int4_source(t) is not None)

    def _int4_source(self, tensor: int):
        """The INT4 constant a DEQUANTIZE turns into `tensor` (4-bit kernels), else None."""
        if self.made_by(tensor) != "DEQUANTIZE":
            return None
        source = self.tensors[self.input(self.producer[tensor], 0)]
        return source if source.type == INT4 else None

    def weight(self, tensor: int, what: str) -> Weight:
        """The weights in tensor `tensor`: decoded from a BitTTSTernaryDecode
        op (codes and beta kept), or a float32 constant."""
        if self.made_by(tensor) == spec.OP_NAME:
            op = self.ops[self.producer[tensor]]
            indices_tensor = self.tensors[int(op.inputs[0])]
            shape = tuple(int(d) for d in self.tensors[tensor].shape)
            raw = self.model.buffers[indices_tensor.buffer].data
            scale = self.constant(int(op.inputs[1]))
            if indices_tensor.type != INT8 or raw is None or scale is None or scale.size != 1:
                raise RecoveryError(f"{self.file}: {what}: the decode op of {self.name(tensor)!r} "
                                    "has no int8 indices and float32 scale")
            try:
                codes = packing.decode(np.asarray(raw, np.uint8).view(np.int8),
                                       int(np.prod(shape))).reshape(shape)
                _, values = decode_at_load.decoded_weights(self.model, op, self.subgraph)
            except (packing.PackingError, tflite_file.TFLiteFileError) as e:
                raise RecoveryError(f"{self.file}: {what}: packed weights "
                                    f"{self.name(tensor)!r} do not decode ({e})") from None
            beta = float(scale.reshape(-1)[0])
            if not np.array_equal(values, codes.astype(np.float32) * np.float32(beta)):
                raise RecoveryError(f"{self.file}: {what}: the numpy decode of "
                                    f"{self.name(tensor)!r} disagrees with decode_at_load")
            return Weight(values, self.name(tensor), codes, beta)
        if self._int4_source(tensor) is not None:
            try:
                _, values = decode_at_load.dequantized_int4(self.model,
                                                            self.ops[self.producer[tensor]],
                                                            self.subgraph)
            except tflite_file.TFLiteFileError as e:
                raise RecoveryError(f"{self.file}: {what}: the 4-bit weights of "
                                    f"{self.name(tensor)!r} do not decode ({e})") from None
            return Weight(values, self.name(tensor), None, None)
        values = self.constant(tensor)
        if values is None:
            raise RecoveryError(f"{self.file}: {what}: tensor {self.name(tensor)!r} is neither a "
                                "float32 constant nor decoded from packed weights")
        return Weight(values, self.name(tensor), None, None)

    def readers(self, tensor: int) -> list[int]:
        """The ops reading `tensor`, looking through shape-only ops."""
        found = []
        for k in self.consumers.get(tensor, []):
            if self.kinds[k] in _PASS_THROUGH and self.input(k, 0) == tensor:
                found.extend(self.readers(self.output(k)))
            else:
                found.append(k)
        return found

    def graph_inputs_feeding(self, tensor: int) -> set[str]:
        """Names of the graph inputs `tensor` is computed from."""
        inputs = {int(i) for i in self.subgraph.inputs}
        seen, todo, found = set(), [tensor], set()
        while todo:
            t = todo.pop()
            if t in seen or t < 0:
                continue
            seen.add(t)
            if t in inputs:
                found.add(self.name(t))
            if t in self.producer:
                todo.extend(int(i) for i in self.ops[self.producer[t]].inputs)
        return found

    def ancestors(self) -> list[int]:
        """Per op, a bit set of the ops it depends on (ops are stored in an
        order they can run in, so one pass sees every producer first)."""
        found = []
        for op in self.ops:
            bits = 0
            for t in op.inputs if op.inputs is not None else []:
                p = self.producer.get(int(t))
                if p is not None:
                    bits |= found[p] | (1 << p)
            found.append(bits)
        return found
