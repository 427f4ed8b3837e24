"""The shipped voice's int8 ops for the engine's kernel tests: every op of a
kind from both graphs, and the exact comparison of one op with TFLM."""

import functools
import pathlib

import numpy as np

from bittts_tf.engine import check, graph, spec
from bittts_tf.litert import tflite_file

ROOT = pathlib.Path(__file__).resolve().parents[1]
GRAPHS = (ROOT / "models" / "slt_tiny" / "text.int8.tflite",
          ROOT / "models" / "slt_tiny" / "frames.int8.tflite")
STATUS = {name: k for k, (name, _) in enumerate(spec.STATUSES)}


@functools.lru_cache(maxsize=None)
def shipped_graph(path: pathlib.Path) -> tuple[bytes, list]:
    data = tflite_file.read_tflite(path)
    return data, graph.read_graph(data)[1]


def shipped_ops(kind: str) -> list[tuple[bytes, graph.GraphOp]]:
    """(model bytes, op) of every op of `kind` in both graphs."""
    found = []
    for path in GRAPHS:
        data, ops = shipped_graph(path)
        found += [(data, op) for op in ops if op.name == kind]
    return found


def bits(a: np.ndarray) -> np.ndarray:
    """Float32 values as their bits (NaN payloads and signed zeros compared too)."""
    return a.view(np.uint32) if a.dtype == np.float32 else a


def assert_exact(data: bytes, op_index: int, rng: np.random.Generator, feeds=None, what=""):
    """Op `op_index` of `data` in the engine and in TFLM on the same fresh
    inputs: every output equal, bit for bit. Returns the engine's outputs."""
    got, expected, lowered = check.compare_op(data, op_index, rng, feeds)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype, (what, op_index, g.shape, e.shape)
        differ = bits(g) != bits(e)
        assert not differ.any(), (f"{what} op {op_index}: {np.count_nonzero(differ)} of {g.size} "
                                  f"values differ, params {lowered.params}")
    return got
