"""An int8 TFLite graph as the engine's lowering sees it: tensors with their
type, shape, quantization and constant data, and ops with their inputs,
outputs and options."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from bittts_tf.litert import tflite_file

# TFLite tensor type codes -> the engine's type names (spec.TYPES).
_TYPES = {tflite_file.FLOAT32: "float32", tflite_file.INT8: "int8",
          tflite_file.INT32: "int32", 6: "bool"}  # 6: schema TensorType.BOOL
_DTYPES = {"float32": np.float32, "int8": np.int8, "int32": np.int32, "bool": np.bool_}


class GraphError(ValueError):
    """A graph the engine cannot run; the message names the op or tensor."""


@dataclasses.dataclass
class TensorInfo:
    index: int
    name: str
    type: str                          # spec.TYPES key
    shape: tuple[int, ...]
    scale: np.ndarray | None = None    # float32, one per channel or one
    zero_point: np.ndarray | None = None  # int64, as many as scale
    quantized_dimension: int = 0
    data: np.ndarray | None = None     # constant tensors only

    @property
    def is_const(self) -> bool:
        return self.data is not None


@dataclasses.dataclass
class GraphOp:
    index: int
    name: str                          # builtin name, or the custom op's code
    inputs: list[TensorInfo | None]    # None: an absent optional operand (-1)
    outputs: list[TensorInfo]
    options: object = None             # the builtin options record (ModelT form)
    custom_options: bytes = b""


@dataclasses.dataclass
class NewTensor:
    """A tensor a lowering adds: constant data stored in the blob (`data`
    given), or arena scratch of `shape` live only during the op."""
    type: str
    shape: tuple[int, ...]
    data: np.ndarray | None = None


@dataclasses.dataclass
class Lowered:
    """One engine op: `opcode` a spec.OPCODES name; inputs and outputs are
    graph tensor indices or NewTensors (scratch goes after the outputs);
    params are int32 words in the order spec.PARAMS[opcode] names them
    (float32 values as their bits: spec.float_word)."""
    opcode: str
    inputs: list
    outputs: list
    params: list[int]


def _tensor(model, sg, index: int) -> TensorInfo:
    t = sg.tensors[index]
    if t.type not in _TYPES:
        raise GraphError(f"tensor {index} ({_name(t)}): type {t.type} is not one the engine runs")
    kind = _TYPES[t.type]
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    info = TensorInfo(index=index, name=_name(t), type=kind, shape=shape)
    q = t.quantization
    if q is not None and q.scale is not None and len(q.scale):
        info.scale = np.asarray(q.scale, np.float32)
        info.zero_point = np.asarray(q.zeroPoint, np.int64)
        info.quantized_dimension = int(q.quantizedDimension or 0)
    buf = model.buffers[t.buffer] if t.buffer is not None and t.buffer < len(model.buffers) else None
    if buf is not None and buf.data is not None and len(buf.data):
        raw = np.asarray(buf.data, np.uint8).tobytes()
        data = np.frombuffer(raw, _DTYPES[kind])
        if data.size != int(np.prod(shape, dtype=np.int64)):
            raise GraphError(f"tensor {index} ({info.name}): {data.size} values for shape {shape}")
        info.data = data.reshape(shape)
    return info


def _name(t) -> str:
    return t.name.decode() if isinstance(t.name, bytes) else str(t.name)


def read_graph(data: bytes, name: str = "<graph>"):
    """(tensors by index, ops, input name -> tensor index, output tensor
    indices) of a one-subgraph model: the signature's names and output order
    when it has one, else input_0, .. and the subgraph's order."""
    model = tflite_file.parse_model(data, name)
    if len(model.subgraphs) != 1:
        raise GraphError(f"{name}: {len(model.subgraphs)} subgraphs; the engine runs one")
    sg = model.subgraphs[0]
    names = tflite_file.builtin_names()
    tensors = {i: _tensor(model, sg, i) for i in range(len(sg.tensors))}
    ops = []
    for k, op in enumerate(sg.operators):
        code = model.operatorCodes[op.opcodeIndex]
        op_name = code.customCode.decode() if code.customCode else names.get(tflite_file.builtin_code(model, op), "?")
        ops.append(GraphOp(
            index=k, name=op_name,
            inputs=[tensors[i] if i >= 0 else None for i in op.inputs],
            outputs=[tensors[i] for i in op.outputs],
            options=op.builtinOptions,
            custom_options=bytes(np.asarray(op.customOptions, np.uint8)) if op.customOptions is not None else b""))
    if model.signatureDefs:
        inputs, outputs = tflite_file.signature_tensors(model)
    else:
        inputs = {f"input_{k}": int(i) for k, i in enumerate(sg.inputs)}
        outputs = [int(i) for i in sg.outputs]
    return tensors, ops, inputs, outputs


def single_op_model(data: bytes, op_index: int, name: str = "<graph>") -> bytes:
    """A model of one op of `data`'s graph (for checking one kernel against
    an interpreter on random inputs): see ops_model."""
    return ops_model(tflite_file.parse_model(data, name), [op_index])


def ops_model(model, op_indices: list[int]) -> bytes:
    """A model of some ops of a parsed graph (`model`, left unchanged), in
    their order: their tensors and only the constant buffers those use; the
    inputs are the tensors no kept op writes and no buffer holds, the
    outputs what the last op writes. Made from one parse: parsing a whole
    graph again for every op cost far more than running the op (a 94 s
    test here spent most of it in flatbuffer reads)."""
    sg = model.subgraphs[0]
    ops = [copy.copy(sg.operators[i]) for i in op_indices]
    used = [i for op in ops for i in list(op.inputs) + list(op.outputs) if i >= 0]
    order = list(dict.fromkeys(used))
    remap = {old: new for new, old in enumerate(order)}

    def constant_buffer(t) -> int | None:
        if t.buffer is None or not 0 < t.buffer < len(model.buffers):
            return None
        data = model.buffers[t.buffer].data
        return t.buffer if data is not None and len(data) > 0 else None

    buffers = [model.buffers[0]]
    tensors, inputs, written = [], [], {i for op in ops for i in op.outputs}
    for old in order:
        tensor = copy.copy(sg.tensors[old])
        kept = constant_buffer(tensor)
        tensor.buffer = 0
        if old not in written and kept is not None:
            buffers.append(model.buffers[kept])
            tensor.buffer = len(buffers) - 1
        elif old not in written:
            inputs.append(remap[old])
        tensors.append(tensor)
    for op in ops:
        op.inputs = [remap[i] if i >= 0 else -1 for i in op.inputs]
        op.outputs = [remap[i] for i in op.outputs]

    part = copy.copy(model)
    subgraph = copy.copy(sg)
    subgraph.tensors, subgraph.operators = tensors, ops
    subgraph.inputs, subgraph.outputs = inputs, list(ops[-1].outputs)
    part.subgraphs, part.buffers, part.signatureDefs = [subgraph], buffers, []
    part.metadata = part.metadataBuffer = None    # they index the whole graph's buffers
    return tflite_file.serialize_model(part)
