"""The engine against TFLite Micro (the pinned wheel's interpreter, its
reference kernels): one op of a graph on fresh random inputs, or a whole
graph tensor by tensor."""

from __future__ import annotations

import numpy as np

from bittts_tf.engine import graph, native, spec
from bittts_tf.export import tflm
from bittts_tf.litert import tflite_file

_ARENA = 4 << 20


def random_input(info: graph.TensorInfo, rng: np.random.Generator) -> np.ndarray:
    """Random values of a tensor's type and shape: int8 codes over the whole
    range, float32 standard normal, bool fair coins; int32 small non-negative
    (indices and lengths: feed your own where a range matters)."""
    shape = info.shape
    if info.type == "int8":
        return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)
    if info.type == "float32":
        return rng.standard_normal(shape).astype(np.float32)
    if info.type == "bool":
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.integers(0, 8, size=shape).astype(np.int32)


def tflm_outputs(model: bytes, feeds: list[np.ndarray], n_outputs: int) -> list[np.ndarray]:
    interpreter = tflm.make_interpreter(model, _ARENA)
    for k, value in enumerate(feeds):
        interpreter.set_input(value, k)
    interpreter.invoke()
    return [np.array(interpreter.get_output(k)) for k in range(n_outputs)]


def compare_op(data: bytes, op_index: int, rng: np.random.Generator,
               feeds: dict[int, np.ndarray] | None = None):
    """(engine outputs, TFLM outputs, the lowered op) for op `op_index` of the
    model `data`, both fed the same inputs: `feeds` (by the op's input
    position) where given, else random_input."""
    model = graph.single_op_model(data, op_index)
    tensors, ops, inputs, outputs = graph.read_graph(model)
    op = ops[0]
    lower = spec.lowerings().get(op.name)
    if lower is None:
        raise graph.GraphError(f"op {op_index} ({op.name}): no lowering")
    lowered = lower(op)
    feeds = dict(feeds or {})
    by_index = {}
    for position, info in enumerate(op.inputs):
        if info is None or info.is_const:
            continue
        value = feeds.get(position)
        by_index[info.index] = random_input(info, rng) if value is None else np.asarray(value)
    ordered = [by_index[i] for i in inputs.values()]
    expected = tflm_outputs(model, ordered, len(outputs))
    got = native.run_lowered(lowered, tensors, by_index)
    return got, expected, lowered


def graph_feeds(data: bytes, rng: np.random.Generator, feeds: dict[str, np.ndarray] | None = None):
    """Inputs for a whole graph by name: `feeds` where given, else random_input."""
    tensors, _, inputs, _ = graph.read_graph(data)
    feeds = dict(feeds or {})
    return {name: np.asarray(feeds[name]) if name in feeds else random_input(tensors[index], rng)
            for name, index in inputs.items()}


def compare_graph(data: bytes, feeds: dict[str, np.ndarray], arena_size: int = 16 << 20):
    """The engine (its arena unshared) and TFLM (all tensors preserved) on
    the same inputs: a list of (op index, opcode, output graph tensor index,
    engine value, TFLM value) for every op output, in op order."""
    from bittts_tf.engine import blob as blob_module
    blob, program = blob_module.from_graph(data, share=False)
    engine = native.BlobEngine(blob)
    for k, name in enumerate(program.inputs):
        engine.input(k)[...] = np.asarray(feeds[name]).reshape(engine.input(k).shape)
    engine.invoke()
    interpreter = tflm.make_interpreter(data, arena_size, preserve_all_tensors=True)
    _, _, inputs, _ = graph.read_graph(data)
    name_of = {index: name for name, index in inputs.items()}
    subgraph_inputs = tflite_file.parse_model(data).subgraphs[0].inputs
    for k, index in enumerate(subgraph_inputs):
        detail = interpreter.get_input_details(k)
        value = np.asarray(feeds[name_of[int(index)]]).astype(detail["dtype"]).reshape(detail["shape"])
        interpreter.set_input(value, k)
    interpreter.invoke()
    rows = []
    for k, (opcode, _, outputs, _) in enumerate(program.ops):
        for tid in outputs:
            index = program.tensors[tid].graph_index
            if index is None:
                continue  # scratch
            rows.append((k, opcode, index, engine.tensor(tid),
                         np.array(interpreter.GetTensor(index, 0)["tensor_data"])))
    return rows

