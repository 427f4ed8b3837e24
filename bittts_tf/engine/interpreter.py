"""The C99 engine behind LiteRT's interpreter interface (the part
bittts_tf.runtime uses: allocate_tensors, get_input_details /
get_output_details, set_tensor, invoke, get_tensor, by the graph's own
tensor indices), so the runtime speaks through the engine with
`engine="c99"` exactly as it does through LiteRT."""

from __future__ import annotations

import numpy as np

from bittts_tf.engine import blob as blob_lib
from bittts_tf.engine import native

_DTYPES = {"float32": np.float32, "int8": np.int8, "int32": np.int32, "bool": np.bool_}


class Interpreter:
    def __init__(self, model_content: bytes, name: str = "<graph>"):
        blob, program = blob_lib.from_graph(bytes(model_content), name)
        self.blob_bytes = len(blob)
        self._engine = native.BlobEngine(blob)
        self._input_position = {program.tensors[tid].graph_index: k
                                for k, tid in enumerate(program.inputs.values())}
        self._output_position = {program.tensors[tid].graph_index: k
                                 for k, tid in enumerate(program.outputs.values())}
        # The runtime addresses tensors by the graph's own index; the program
        # kept it, with each tensor's type, shape and int8 parameters.
        self._inputs = [self._detail(program.tensors[tid], f"serving_default_{key}:0")
                        for key, tid in program.inputs.items()]
        self._outputs = [self._detail(program.tensors[tid], program.tensors[tid].name)
                         for tid in program.outputs.values()]

    @staticmethod
    def _detail(tensor: blob_lib.Tensor, name: str) -> dict:
        quantized = tensor.type == "int8" and tensor.scale != 0.0
        return {"name": name, "index": tensor.graph_index, "shape": np.asarray(tensor.shape, np.int32),
                "dtype": _DTYPES[tensor.type], "quantization_parameters":
                {"scales": np.asarray([tensor.scale] if quantized else [], np.float32),
                 "zero_points": np.asarray([tensor.zero_point] if quantized else [], np.int32),
                 "quantized_dimension": 0}}

    @property
    def arena_bytes(self) -> int:
        return int(self._engine.arena.size)

    def allocate_tensors(self) -> None:
        """The arena was planned and bound when the blob was opened."""

    def get_input_details(self) -> list[dict]:
        return list(self._inputs)

    def get_output_details(self) -> list[dict]:
        return list(self._outputs)

    def set_tensor(self, index: int, value) -> None:
        if index not in self._input_position:
            raise ValueError(f"tensor {index} is not an input of the graph")
        target = self._engine.input(self._input_position[index])
        value = np.asarray(value)
        if value.shape != target.shape or value.dtype != target.dtype:
            raise ValueError(f"input {index}: got {value.dtype}{list(value.shape)}, "
                             f"expected {target.dtype}{list(target.shape)}")
        target[...] = value

    def invoke(self) -> None:
        self._engine.invoke()

    def get_tensor(self, index: int) -> np.ndarray:
        if index not in self._output_position:
            raise ValueError(f"tensor {index} is not an output of the graph")
        return self._engine.output(self._output_position[index])
