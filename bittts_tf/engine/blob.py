"""An int8 graph lowered to the engine's blob, and the blob's layout.

Layout (little-endian; offsets in bytes from the blob's start, every
section 8-byte aligned):

    header      HEADER_WORDS uint32: magic, version, total size, CRC-32 of
                everything after the header, header size, tensor / op /
                input / output counts, arena bytes, then the offsets and
                sizes of the sections below
    tensors     one TENSOR_BYTES record each: type, rank, storage (arena or
                constant), an int8 tensor's zero point, dims, offset (into
                the arena or the data section), the int8 tensor's scale
    ops         one OP_BYTES record each: opcode, input and output counts,
                tensor ids (0xFFFF: an absent operand), first parameter word,
                parameter count
    io          one IO_BYTES record per graph input (sorted by name), then
                per output (in the signature's order): tensor id and name
    params      int32 parameter words of all ops
    data        the constant tensors, each 8-byte aligned

The arena is planned here: every activation gets an offset; two share bytes
only when their lives (first op that writes to last op that reads) do not
meet. A graph input lives from the invoke's start, an output until its end,
and no input shares bytes with an output, so a caller may read the outputs
and write the next inputs in any order (the stream copies each output state
into its input). On the shipped voice this put the text graph's arena at
44 KB instead of 76 KB with whole-invoke inputs and outputs: its 32 KB float
output is written by the last op.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np

from bittts_tf.engine import graph, spec

HEADER_WORDS = len(spec.HEADER_FIELDS)
HEADER_BYTES = 4 * HEADER_WORDS
HEADER_FIELDS = spec.HEADER_FIELDS
TENSOR_BYTES, OP_BYTES, ABSENT, ALIGN = spec.TENSOR_BYTES, spec.OP_BYTES, spec.ABSENT, spec.ALIGN
STORAGE_ARENA, STORAGE_CONST = spec.STORAGE_ARENA, spec.STORAGE_CONST
_OP_IDS = spec.MAX_OP_INPUTS + spec.MAX_OP_OUTPUTS


@dataclasses.dataclass
class Tensor:
    type: str
    shape: tuple[int, ...]
    data: np.ndarray | None = None   # constant
    graph_index: int | None = None   # the source graph's tensor, None for added ones
    name: str = ""
    scale: float = 0.0               # int8 with one scale (graph inputs and outputs)
    zero_point: int = 0
    offset: int = 0                  # into the arena or the data section

    @property
    def bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * spec.TYPE_BYTES[self.type]


@dataclasses.dataclass
class Program:
    """A lowered graph: tensors, ops (opcode, input ids, output ids, params),
    the inputs and outputs by name (tensor ids), and the planned arena size."""
    tensors: list[Tensor]
    ops: list[tuple[str, list[int | None], list[int], list[int]]]
    inputs: dict[str, int]
    outputs: dict[str, int]
    arena_bytes: int = 0
    outputs_end: int = 0             # every output lies in [0, outputs_end) of the arena


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def lower(data: bytes, name: str = "<graph>", output_names: list[str] | None = None) -> Program:
    """The graph's ops through their lowerings (bittts_tf.engine.spec.lowerings);
    a GraphError names the first op with no lowering. output_names name the
    signature's outputs in order (default output_0, ...)."""
    tensors, ops, inputs, outputs = graph.read_graph(data, name)
    lowerings = spec.lowerings()
    program = Program(tensors=[], ops=[], inputs={}, outputs={})
    ids: dict[int, int] = {}

    def tensor_id(ref) -> int:
        if isinstance(ref, graph.NewTensor):
            value = None if ref.data is None else np.asarray(ref.data).astype(
                {"float32": np.float32, "int8": np.int8, "int32": np.int32, "bool": np.bool_}[ref.type])
            program.tensors.append(Tensor(ref.type, tuple(ref.shape), value))
            return len(program.tensors) - 1
        if ref not in ids:
            info = tensors[ref]
            tensor = Tensor(info.type, info.shape, info.data, ref, info.name)
            if info.type == "int8" and info.scale is not None and len(info.scale) == 1:
                tensor.scale, tensor.zero_point = float(info.scale[0]), int(info.zero_point[0])
            program.tensors.append(tensor)
            ids[ref] = len(program.tensors) - 1
        return ids[ref]

    for op in ops:
        lowering = lowerings.get(op.name)
        if lowering is None:
            raise graph.GraphError(f"{name}: op {op.index} ({op.name}) has no engine kernel")
        lowered = lowering(op)
        if len(lowered.inputs) > spec.MAX_OP_INPUTS or len(lowered.outputs) > spec.MAX_OP_OUTPUTS:
            raise graph.GraphError(f"{name}: op {op.index} ({op.name}) lowered to too many tensors")
        program.ops.append((lowered.opcode,
                            [None if ref is None else tensor_id(ref) for ref in lowered.inputs],
                            [tensor_id(ref) for ref in lowered.outputs],
                            [int(np.int32(p)) for p in lowered.params]))
    constants = spec.const_inputs()
    for k, (opcode, op_inputs, _, _) in enumerate(program.ops):
        for j in constants.get(opcode, ()):
            if (j >= len(op_inputs) or op_inputs[j] is None
                    or program.tensors[op_inputs[j]].data is None):
                raise graph.GraphError(f"{name}: op {ops[k].index} ({ops[k].name}): input {j} "
                                       "must be a constant (its kernel checks it once, at open)")
    names = list(output_names) if output_names is not None else [f"output_{k}" for k in range(len(outputs))]
    if len(names) != len(outputs):
        raise graph.GraphError(f"{name}: {len(outputs)} outputs, {len(names)} names given")
    program.inputs = {key: tensor_id(index) for key, index in sorted(inputs.items())}
    program.outputs = {key: tensor_id(index) for key, index in zip(names, outputs)}
    for t in program.tensors:
        if len(t.shape) > spec.MAX_RANK or any(not 1 <= d <= spec.MAX_DIM for d in t.shape):
            raise graph.GraphError(f"{name}: tensor {t.name or '(added)'} of shape {list(t.shape)}: "
                                   f"the engine takes rank <= {spec.MAX_RANK}, dims 1..{spec.MAX_DIM}")
        if not -128 <= t.zero_point <= 127:
            raise graph.GraphError(f"{name}: tensor {t.name}: zero point {t.zero_point} outside int8")
    for key in list(program.inputs) + names:
        if not key.isascii() or len(key.encode()) >= spec.IO_NAME_BYTES:
            raise graph.GraphError(f"{name}: tensor name {key!r} is not ASCII of at most "
                                   f"{spec.IO_NAME_BYTES - 1} characters")
    return program


def lifetimes(program: Program) -> dict[int, tuple[int, int]]:
    """Arena tensor id -> (first op, last op) it must hold its value over."""
    last_op = len(program.ops) - 1
    life: dict[int, list[int]] = {}
    for k, (_, inputs, outputs, _) in enumerate(program.ops):
        for tid in [t for t in inputs if t is not None] + outputs:
            if program.tensors[tid].data is not None:
                continue
            span = life.setdefault(tid, [k, k])
            span[0], span[1] = min(span[0], k), max(span[1], k)
    for tid in program.inputs.values():
        life.setdefault(tid, [0, 0])[0] = 0
    for tid in program.outputs.values():
        life.setdefault(tid, [last_op, last_op])[1] = last_op
    return {tid: (a, b) for tid, (a, b) in life.items()}


def plan_arena(program: Program, share: bool = True) -> None:
    """Offsets for every arena tensor: largest first, each at the lowest
    aligned offset clear of the tensors already placed whose lives meet its
    own, and of every graph output if it is a graph input (and the other way
    round). share=False: no two tensors share bytes, for tensor-by-tensor
    checks."""
    life = lifetimes(program)
    inputs, outputs = set(program.inputs.values()), set(program.outputs.values())

    def apart(a: int, b: int) -> bool:
        return (a in inputs and b in outputs) or (a in outputs and b in inputs)

    # The outputs go first, at the bottom: the bytes above them are free once
    # the graph has run (the voice puts the frames graph's arena there while
    # the text graph's outputs wait below; header outputs_end).
    order = sorted(life, key=lambda t: (t not in outputs, -program.tensors[t].bytes, t))
    placed: list[tuple[int, int, int]] = []  # (offset, end, tensor)
    top = 0
    for tid in order:
        first, last = life[tid]
        size = _align(max(program.tensors[tid].bytes, 1))
        busy = sorted((o, e) for o, e, other in placed
                      if not share or apart(tid, other)
                      or (life[other][0] <= last and first <= life[other][1]))
        offset = 0
        for o, e in busy:
            if offset + size <= o:
                break
            offset = max(offset, e)
        program.tensors[tid].offset = offset
        placed.append((offset, offset + size, tid))
        top = max(top, offset + size)
    program.arena_bytes = top
    program.outputs_end = max((program.tensors[t].offset + _align(program.tensors[t].bytes)
                               for t in outputs), default=0)


def _header(values: dict) -> bytes:
    return struct.pack(f"<{HEADER_WORDS}I", *[values.get(f, 0) for f in HEADER_FIELDS])


def write(program: Program) -> bytes:
    """The blob of a planned program."""
    data = bytearray()
    for t in program.tensors:
        if t.data is not None:
            data += bytes(-len(data) % ALIGN)
            t.offset = len(data)
            data += np.ascontiguousarray(t.data).tobytes()
    data += bytes(-len(data) % ALIGN)
    tensors = bytearray()
    for t in program.tensors:
        dims = list(t.shape) + [1] * (spec.MAX_RANK - len(t.shape))
        storage = STORAGE_CONST if t.data is not None else STORAGE_ARENA
        tensors += struct.pack(f"<BBBb{spec.MAX_RANK}HIf", spec.TYPES[t.type], len(t.shape),
                               storage, t.zero_point, *dims, t.offset, t.scale)
    assert len(tensors) == TENSOR_BYTES * len(program.tensors)
    ops, params = bytearray(), []
    for opcode, inputs, outputs, words in program.ops:
        ins = [ABSENT if t is None else t for t in inputs] + [ABSENT] * (spec.MAX_OP_INPUTS - len(inputs))
        outs = outputs + [ABSENT] * (spec.MAX_OP_OUTPUTS - len(outputs))
        ops += struct.pack(f"<HBBII{_OP_IDS}H", spec.OPCODES[opcode], len(inputs), len(outputs),
                           len(params), len(words), *ins, *outs)
        params += words
    assert len(ops) == OP_BYTES * len(program.ops)
    io = b"".join(struct.pack(f"<HH{spec.IO_NAME_BYTES}s", tid, 0, key.encode())
                  for key, tid in list(program.inputs.items()) + list(program.outputs.items()))
    sections = [("tensors", bytes(tensors)), ("ops", bytes(ops)), ("io", io),
                ("params", struct.pack(f"<{len(params)}i", *params)), ("data", bytes(data))]
    body, offsets = bytearray(), {}
    for key, section in sections:
        body += bytes(-(HEADER_BYTES + len(body)) % ALIGN)
        offsets[key] = HEADER_BYTES + len(body)
        body += section
    body += bytes(-len(body) % ALIGN)
    values = {"magic": int.from_bytes(spec.MAGIC, "little"), "version": spec.VERSION,
              "total_bytes": HEADER_BYTES + len(body), "crc32": zlib.crc32(bytes(body)),
              "header_bytes": HEADER_BYTES, "n_tensors": len(program.tensors),
              "n_ops": len(program.ops), "n_inputs": len(program.inputs),
              "n_outputs": len(program.outputs), "arena_bytes": program.arena_bytes,
              "tensors_offset": offsets["tensors"], "ops_offset": offsets["ops"],
              "io_offset": offsets["io"], "params_offset": offsets["params"],
              "n_params": len(params), "data_offset": offsets["data"], "data_bytes": len(data),
              "outputs_end": program.outputs_end}
    return _header(values) + bytes(body)


def from_graph(data: bytes, name: str = "<graph>", share: bool = True,
               output_names: list[str] | None = None) -> tuple[bytes, Program]:
    """The blob of an int8 graph and its program (tensor ids -> the graph's)."""
    program = lower(data, name, output_names)
    plan_arena(program, share=share)
    return write(program), program


def header(blob: bytes) -> dict:
    if len(blob) < HEADER_BYTES:
        raise ValueError(f"engine blob: {len(blob)} bytes, shorter than its header")
    return dict(zip(HEADER_FIELDS, struct.unpack_from(f"<{HEADER_WORDS}I", blob)))
