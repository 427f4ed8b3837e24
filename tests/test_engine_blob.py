"""The engine's blob: written by bittts_tf.engine.blob, checked by
bittts_engine_open (header, CRC-32, records, references) before anything runs."""

import pathlib
import struct
import zlib

import numpy as np

from bittts_tf.engine import blob, native, spec


def _program(rng) -> blob.Program:
    """Two graph tensors and no ops: enough to exercise the reader."""
    shape = tuple(int(n) for n in rng.integers(1, 6, size=3))
    tensors = [blob.Tensor("int8", shape, graph_index=0), blob.Tensor("float32", (1, shape[2]), graph_index=1),
               blob.Tensor("int32", (4,), data=rng.integers(-9, 9, size=4).astype(np.int32))]
    program = blob.Program(tensors=tensors, ops=[], inputs={"a": 0}, outputs={"b": 1})
    blob.plan_arena(program)
    return program


def _resign(data: bytearray) -> bytes:
    struct.pack_into("<I", data, 4 * spec.HEADER_FIELDS.index("crc32"),
                     zlib.crc32(bytes(data[blob.HEADER_BYTES:])))
    return bytes(data)


def _status(data: bytes, arena: int | None = None) -> str:
    try:
        native.BlobEngine(data, arena)
    except native.EngineError as error:
        return str(error).split(":")[1].split()[0]
    return "OK"


def test_blob_round_trip_views(seed):
    rng = np.random.default_rng(seed)
    program = _program(rng)
    data = blob.write(program)
    head = blob.header(data)
    assert head["total_bytes"] == len(data) and head["n_tensors"] == 3
    assert head["crc32"] == zlib.crc32(data[blob.HEADER_BYTES:])
    engine = native.BlobEngine(data)
    assert engine.input(0).shape == program.tensors[0].shape
    assert engine.output(0).shape == (1, program.tensors[0].shape[2])
    value = rng.integers(-128, 128, size=program.tensors[0].shape).astype(np.int8)
    engine.input(0)[...] = value
    np.testing.assert_array_equal(engine.tensor(0), value)
    np.testing.assert_array_equal(engine.tensor(2), program.tensors[2].data)
    engine.invoke()  # no ops: nothing to do, nothing refused


def test_blob_damage_is_refused_by_name(seed):
    rng = np.random.default_rng(seed)
    data = blob.write(_program(rng))
    assert _status(data) == "OK"
    assert _status(data[:-8]) == "ERR_BLOB"                       # truncated
    assert _status(b"XXXX" + data[4:]) == "ERR_BLOB"               # magic
    flipped = bytearray(data)
    flipped[blob.HEADER_BYTES + int(rng.integers(0, len(data) - blob.HEADER_BYTES))] ^= 0x40
    assert _status(bytes(flipped)) == "ERR_CRC"
    version = bytearray(data)
    struct.pack_into("<I", version, 4, spec.VERSION + 1)
    assert _status(bytes(version)) == "ERR_VERSION"
    arena = blob.header(data)["arena_bytes"]
    assert _status(data, arena - 1) == "ERR_SIZE"
    # A re-signed record pointing outside its buffer: a tensor past the arena,
    # a constant past the data section, an unknown type.
    for field, value in ((4 + 2 * spec.MAX_RANK, arena), (4 + 2 * spec.MAX_RANK, 1 << 30)):
        bad = bytearray(data)
        struct.pack_into("<I", bad, blob.header(data)["tensors_offset"] + field, value)
        assert _status(_resign(bad)) in ("ERR_BLOB",), value
    bad = bytearray(data)
    bad[blob.header(data)["tensors_offset"]] = 99
    assert _status(_resign(bad)) == "ERR_UNSUPPORTED"


def _every_view_inside_its_buffer(data: bytes) -> None:
    """An opened blob: every tensor's view lies inside the blob or the arena,
    and invoking it returns a status (nothing read or written elsewhere)."""
    engine = native.BlobEngine(data)
    buffers = [(engine._blob.ctypes.data, engine._blob.nbytes),
               (engine.arena.ctypes.data, engine.arena.nbytes)]
    for k in range(blob.header(data)["n_tensors"]):
        view = engine._view("bittts_engine_tensor_view", k)
        start = view.ctypes.data
        assert any(base <= start and start + view.nbytes <= base + size
                   for base, size in buffers), (k, start, view.nbytes, buffers)
    try:
        engine.invoke()
    except native.EngineError:
        pass   # a data-dependent refusal is a status too


def test_random_resigned_mutations_never_crash(seed):
    """Every byte of a re-signed blob may be anything: open refuses with a
    status or opens a blob whose every view lies inside its buffers."""
    rng = np.random.default_rng(seed)
    data = blob.write(_program(rng))
    outcomes = {}
    for _ in range(300):
        bad = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            bad[int(rng.integers(0, len(bad)))] = int(rng.integers(0, 256))
        bad = _resign(bad) if bad[:4] == data[:4] else bytes(bad)
        status = _status(bad)
        outcomes[status] = outcomes.get(status, 0) + 1
        if status == "OK":
            _every_view_inside_its_buffer(bad)
    print(outcomes)
    assert outcomes.get("OK", 0) > 0   # some mutations (a scale, a value) leave a good blob
    assert set(outcomes) <= {"OK", "ERR_BLOB", "ERR_CRC", "ERR_VERSION", "ERR_SIZE", "ERR_UNSUPPORTED",
                             "ERR_INDEX", "ERR_PARAM"}


SEEDS = pathlib.Path(__file__).resolve().parent / "c" / "fuzz_seeds" / "fuzz_engine_blob"
# One op of each of these kinds from the shipped voice's graphs (small
# constants only: libFuzzer's inputs stay under 512 bytes).
SEED_OPS = ("ADD", "MUL", "SUB", "RSQRT", "MEAN", "LOGISTIC", "STRIDED_SLICE", "CONCATENATION",
            "RESHAPE", "SQUARED_DIFFERENCE", "QUANTIZE", "DEQUANTIZE")


def seed_blobs() -> dict[str, bytes]:
    from bittts_tf.engine import graph
    from bittts_tf.litert import tflite_file
    found = {}
    for name in ("text", "frames"):
        data = tflite_file.read_tflite(pathlib.Path(__file__).resolve().parents[1]
                                       / "models" / "slt_tiny" / f"{name}.int8.tflite")
        _, ops, _, _ = graph.read_graph(data)
        for op in ops:
            if op.name in SEED_OPS and op.name not in found:
                candidate, _ = blob.from_graph(graph.single_op_model(data, op.index))
                if len(candidate) <= 512:
                    found[op.name] = candidate
    return found


def test_fuzz_seeds_are_current():
    """The fuzz target's seed blobs are what the writer makes today (rewrite
    them with BITTTS_WRITE_FUZZ_SEEDS=1 after a format change or a new
    shipped voice: they are ops of its graphs)."""
    import os
    blobs = seed_blobs()
    assert len(blobs) >= 8, sorted(blobs)
    if os.environ.get("BITTTS_WRITE_FUZZ_SEEDS"):
        SEEDS.mkdir(parents=True, exist_ok=True)
        for path in SEEDS.glob("*.blob"):
            path.unlink()
        for name, data in blobs.items():
            (SEEDS / f"{name.lower()}.blob").write_bytes(data)
    for name, data in blobs.items():
        path = SEEDS / f"{name.lower()}.blob"
        assert path.exists() and path.read_bytes() == data, f"{path} is stale or missing"


def test_generated_header_is_current():
    """firmware_stub/bittts_engine_spec.h is what bittts_tf/engine/spec.py
    generates (python -m bittts_tf.engine.spec --write-header)."""
    assert spec.HEADER_PATH.read_text() == spec.c_header()



# The graph ops whose engine kernels read some inputs' data in their check.
CHECKED_INPUT_OPS = {"CONV_2D": "CONV_2D", "DEPTHWISE_CONV_2D": "DEPTHWISE_CONV_2D",
                     "BitTTSTernaryConv": "TERNARY_CONV", "LOGISTIC": "LOGISTIC"}


def _shipped_ops(graph_op: str) -> list[tuple[bytes, int]]:
    """(graph, op index) of every op of kind `graph_op` in the shipped
    voice's int8 graphs."""
    from bittts_tf.engine import graph
    from bittts_tf.litert import tflite_file
    found = []
    for name in ("text", "frames"):
        data = tflite_file.read_tflite(pathlib.Path(__file__).resolve().parents[1]
                                       / "models" / "slt_tiny" / f"{name}.int8.tflite")
        _, ops, _, _ = graph.read_graph(data)
        found += [(data, op.index) for op in ops if op.name == graph_op]
    return found


def _as_graph_input(program: blob.Program, input_slot: int) -> bytes:
    """The blob of `program` with its op's input `input_slot` held in the
    arena as a graph input instead of a constant."""
    import copy
    program = copy.deepcopy(program)
    tensor_id = program.ops[0][1][input_slot]
    program.tensors[tensor_id].data = None
    program.inputs[f"in{input_slot}"] = tensor_id
    blob.plan_arena(program)
    return blob.write(program)


def test_an_input_its_check_reads_must_be_a_constant(seed):
    """Multipliers, shifts, packed bytes and the LOGISTIC table are checked
    once, at open: the engine refuses a blob that keeps one in the arena,
    where it could change after the check (a depthwise shift of -100 made
    eval shift by 100 bits). Other inputs may live in the arena."""
    from bittts_tf.engine import graph
    rng = np.random.default_rng(seed)
    required = spec.const_inputs()
    assert set(required) == set(CHECKED_INPUT_OPS.values())
    for graph_op, opcode in CHECKED_INPUT_OPS.items():
        candidates = _shipped_ops(graph_op)
        data, index = candidates[int(rng.integers(len(candidates)))]
        print(graph_op, "op", index)
        program = blob.lower(graph.single_op_model(data, index))
        assert program.ops[0][0] == opcode
        blob.plan_arena(program)
        assert _status(blob.write(program)) == "OK", graph_op
        for slot in required[opcode]:
            assert _status(_as_graph_input(program, slot)) == "ERR_BLOB", (graph_op, slot)
        if opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):  # the filter: read only by eval
            assert _status(_as_graph_input(program, 1)) == "OK", graph_op


def test_the_writer_refuses_a_lowering_that_leaves_a_checked_input_in_the_arena(monkeypatch):
    """The Python side holds the same rule: an op whose listed input is not
    a constant (here the activations, listed for the test) fails to lower,
    naming the op."""
    import pytest
    from bittts_tf.engine import graph
    data, index = _shipped_ops("CONV_2D")[0]
    real = spec.const_inputs()
    monkeypatch.setattr(spec, "const_inputs", lambda: {**real, "CONV_2D": (0, 3, 4)})
    with pytest.raises(graph.GraphError, match=r"CONV_2D\): input 0 must be a constant"):
        blob.lower(graph.single_op_model(data, index))
