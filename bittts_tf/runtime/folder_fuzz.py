"""Damaged model folders, and what the runtime does with them.

A model folder's manifest vouches for its files by size and SHA-256, which
proves only that the files are the ones listed: a broken exporter or a
hostile sender re-signs whatever it wrote. So this module damages a folder's
graphs on purpose, re-signs the manifest, speaks through the real runtime
(`TextToSpeech`, as `tools/speak.py` does) and sorts each try into

  spoke      audio came back (counted apart when some samples are not finite)
  refused    an error the tools print on one line (`cli.refuses_input`)
  traceback  any other exception: what a user would see as a Python traceback
  crash      the process died on a signal
  hang       no answer within the time limit

Each try runs in a forked child (the parent has imported the runtime once),
so a crash or a hang costs one try, not the run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import signal
import time

import numpy as np

from bittts_tf.litert import tflite_file
from bittts_tf.runtime import model_folder as folder_lib

OUTCOMES = ("spoke", "spoke_nonfinite", "refused", "traceback", "crash", "hang")
BAD = ("traceback", "crash", "hang")


def _flip_bytes(data: bytes, rng, graphs) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        position = int(rng.integers(len(out)))
        out[position] ^= int(rng.integers(1, 256))
    return bytes(out)


def _truncate(data: bytes, rng, graphs) -> bytes:
    return data[:int(rng.integers(len(data)))]


def _splice(data: bytes, rng, graphs) -> bytes:
    """A run of the file copied over another place in it (torn writes)."""
    length = int(rng.integers(4, 257))
    source, target = (int(x) for x in rng.integers(0, max(len(data) - length, 1), 2))
    out = bytearray(data)
    out[target:target + length] = data[source:source + length]
    return bytes(out)


def _other_graph(data: bytes, rng, graphs) -> bytes:
    """The folder's other graph in this one's place."""
    return next(g for g in graphs.values() if g != data)


def _structured(edit):
    """A mutation of the parsed model, serialized again (a valid flatbuffer
    whose contents lie)."""
    def mutate(data: bytes, rng, graphs) -> bytes:
        model = tflite_file.parse_model(data)
        edit(model, rng)
        return tflite_file.serialize_model(model)
    mutate.__name__ = edit.__name__
    return mutate


def _swap_buffers(model, rng) -> None:
    full = [i for i, b in enumerate(model.buffers) if b.data is not None and len(b.data)]
    a, b = (int(i) for i in rng.choice(full, 2, replace=False))
    model.buffers[a].data, model.buffers[b].data = model.buffers[b].data, model.buffers[a].data


def _tensor_shape(model, rng) -> None:
    tensors = [t for t in model.subgraphs[0].tensors if t.shape is not None and len(t.shape)]
    tensor = tensors[int(rng.integers(len(tensors)))]
    shape = np.array(tensor.shape, np.int32)
    shape[int(rng.integers(len(shape)))] = int(rng.choice([0, 1, 2, 7, 1 << 20, -1]))
    tensor.shape = shape


def _operator_input(model, rng) -> None:
    subgraph = model.subgraphs[0]
    ops = [op for op in subgraph.operators if op.inputs is not None and len(op.inputs)]
    op = ops[int(rng.integers(len(ops)))]
    inputs = np.array(op.inputs, np.int32)
    count = len(subgraph.tensors)
    inputs[int(rng.integers(len(inputs)))] = int(rng.choice(
        [int(rng.integers(count)), count, count + 1000, -1]))
    op.inputs = inputs


def _operator_code(model, rng) -> None:
    ops = model.subgraphs[0].operators
    op = ops[int(rng.integers(len(ops)))]
    op.opcodeIndex = int(rng.integers(len(model.operatorCodes) + 2))


def _tensor_type(model, rng) -> None:
    tensors = model.subgraphs[0].tensors
    tensor = tensors[int(rng.integers(len(tensors)))]
    tensor.type = int(rng.choice([0, 1, 2, 3, 7, 9, 10, 17]))


MUTATIONS = {f.__name__.lstrip("_"): f for f in (
    _flip_bytes, _truncate, _splice, _other_graph, _structured(_swap_buffers),
    _structured(_tensor_shape), _structured(_operator_input), _structured(_operator_code),
    _structured(_tensor_type))}


@dataclasses.dataclass
class Try:
    index: int
    decode: str
    variant: str
    graph: str
    mutation: str
    outcome: str
    message: str


def write_damaged_folder(source: folder_lib.ModelFolder, variant: str, graphs: dict[str, bytes],
                         path: str) -> None:
    """`graphs` (role -> bytes) as `variant` of a folder at `path` whose
    manifest lists them with their own sizes and hashes (re-signed)."""
    manifest = copy.deepcopy(source.manifest)
    files = {}
    manifest["graphs"] = {}
    for graph, data in graphs.items():
        name = folder_lib.graph_file(graph, variant)
        files[name] = data
        manifest["graphs"][folder_lib.graph_key(graph, variant)] = {
            "file": name, "bytes": len(data), "sha256": folder_lib.sha256(data)}
    folder_lib.write(path, manifest, files)


def _speak(path: str, variant: str, decode: str, text: str) -> tuple[str, str]:
    from bittts_tf import cli
    from bittts_tf.runtime import TextToSpeech
    try:
        result = TextToSpeech(path, variant, decode).synthesize(text)
    except Exception as error:  # noqa: BLE001 -- sorted as the tools sort it
        line = cli.one_line(error)
        if cli.refuses_input(error):
            return "refused", line
        return "traceback", f"{type(error).__module__}.{type(error).__name__}: {line}"
    if not np.all(np.isfinite(result.audio)):
        return "spoke_nonfinite", f"{int(np.sum(~np.isfinite(result.audio)))} samples"
    return "spoke", f"{len(result.audio)} samples"


def run_in_child(path: str, variant: str, decode: str, text: str,
                 timeout: float) -> tuple[str, str]:
    """`_speak` in a forked child, its stdout and stderr discarded."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            outcome = _speak(path, variant, decode, text)
            os.write(write_end, json.dumps(outcome).encode()[:60000])
        finally:
            os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            return "hang", f"no answer within {timeout:g} s"
        time.sleep(0.005)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    if os.WIFSIGNALED(status):
        return "crash", f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    if not answer:
        return "crash", f"exit status {os.WEXITSTATUS(status)} with no answer"
    outcome, message = json.loads(answer)
    return outcome, message


def fuzz(model_dir: str, work_dir: str, tries: int, decode_modes, variants, seed: int,
         text: str = "Hi.", timeout: float = 60.0, progress=None,
         keep_dir: str | None = None) -> list[Try]:
    """`tries` damaged folders per decode mode, each spoken once; those that
    ended in a traceback, crash or hang are moved to `keep_dir` (if given)."""
    source = folder_lib.load(model_dir)
    variants = list(variants or source.variants)
    originals = {v: {g: source.read_graph(g, v) for g in folder_lib.GRAPHS} for v in variants}
    rng = np.random.default_rng(seed)
    results = []
    names = sorted(MUTATIONS)
    for decode in decode_modes:
        for _ in range(tries):
            variant = variants[int(rng.integers(len(variants)))]
            graph = folder_lib.GRAPHS[int(rng.integers(len(folder_lib.GRAPHS)))]
            mutation = names[int(rng.integers(len(names)))]
            graphs = dict(originals[variant])
            graphs[graph] = MUTATIONS[mutation](graphs[graph], rng, originals[variant])
            path = os.path.join(work_dir, f"try{len(results)}")
            write_damaged_folder(source, variant, graphs, path)
            outcome, message = run_in_child(path, variant, decode, text, timeout)
            results.append(Try(len(results), decode, variant, graph, mutation, outcome, message))
            if keep_dir and outcome in BAD:
                os.makedirs(keep_dir, exist_ok=True)
                shutil.move(path, os.path.join(keep_dir, f"try{len(results) - 1}_{decode}"))
            else:
                shutil.rmtree(path)
            if progress is not None:
                progress(results[-1])
    return results


def table(results: list[Try]) -> dict:
    """{decode mode: {mutation: {outcome: count}}}."""
    counts: dict = {}
    for r in results:
        row = counts.setdefault(r.decode, {}).setdefault(r.mutation, dict.fromkeys(OUTCOMES, 0))
        row[r.outcome] += 1
    return counts


def markdown(counts: dict) -> str:
    lines = []
    for decode, rows in counts.items():
        lines += [f"decode={decode}", "",
                  "| mutation | " + " | ".join(OUTCOMES) + " |",
                  "|---|" + "---|" * len(OUTCOMES)]
        totals = dict.fromkeys(OUTCOMES, 0)
        for mutation in sorted(rows):
            lines.append(f"| {mutation} | " + " | ".join(str(rows[mutation][o]) for o in OUTCOMES)
                         + " |")
            for o in OUTCOMES:
                totals[o] += rows[mutation][o]
        lines += ["| **all** | " + " | ".join(str(totals[o]) for o in OUTCOMES) + " |", ""]
    return "\n".join(lines)
