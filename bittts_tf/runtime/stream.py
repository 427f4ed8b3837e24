"""Running exported graphs without TensorFlow: one graph runner for LiteRT
and the tflite-micro wheel, and the drive of the streaming frames graph.

The frames graph (bittts_tf.export.streaming builds it) takes `step` new
regulated frames, their mask and every conv's state, and returns the spectral
head's output and the mel of frames `delay` behind, with the new states. A
segment of T frames is T frames fed `step` at a time and then `delay` masked
frames; each emitted row of frame j < T goes on to the inverse STFT.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from bittts_tf.litert import tflite_file


@dataclasses.dataclass(frozen=True)
class StreamShapes:
    step: int                      # frames in and out per invoke
    delay: int                     # output frames lag the input by this many
    channels: int                  # regulated encoder frame width
    n_mels: int
    head_width: int                # n_fft + 2: log-magnitudes, then phases
    states: tuple                  # ((name, frames, channels), ...) in input order
    # The graph also emits the acoustic model's frame F0 head ([1, 1, step, 2]:
    # standardized log-F0, voicing logit / 16: only its sign is read) of the
    # spectrum's frames, which a source-phase vocoder's phases need
    # (istft_c.IstftStream with a source).
    frame_f0: bool = False

    @property
    def output_names(self) -> list[str]:
        """The graph's outputs in signature order (output_0, ...): a dict of
        outputs is flattened in sorted key order."""
        rows = ["spectrum", "mask", "mel"] + (["frame_f0"] if self.frame_f0 else [])
        return sorted(rows + [name for name, _, _ in self.states])

    @property
    def state_names(self) -> list[str]:
        return [name for name, _, _ in self.states]

    def to_dict(self) -> dict:
        shapes = {"step": self.step, "delay": self.delay, "channels": self.channels,
                  "n_mels": self.n_mels, "head_width": self.head_width,
                  "states": [list(s) for s in self.states]}
        if self.frame_f0:   # absent otherwise: folders made before it read the same
            shapes["frame_f0"] = True
        return shapes

    @classmethod
    def from_dict(cls, d: dict) -> "StreamShapes":
        return cls(int(d["step"]), int(d["delay"]), int(d["channels"]), int(d["n_mels"]),
                   int(d["head_width"]), tuple((str(n), int(f), int(c)) for n, f, c in d["states"]),
                   bool(d.get("frame_f0", False)))

    def inputs(self, dtype) -> dict[str, tuple]:
        """Input name -> (shape, dtype): NHWC [1, 1, frames, channels]."""
        spec = {"frames": ((1, 1, self.step, self.channels), dtype),
                "mask": ((1, 1, self.step, 1), dtype)}
        spec.update({name: ((1, 1, frames, channels), dtype)
                     for name, frames, channels in self.states})
        return spec

    def outputs(self) -> dict[str, tuple]:
        """Output name -> shape."""
        shapes = {"spectrum": (1, 1, self.step, self.head_width), "mask": (1, 1, self.step, 1),
                  "mel": (1, 1, self.step, self.n_mels)}
        if self.frame_f0:
            shapes["frame_f0"] = (1, 1, self.step, 2)
        shapes.update({name: (1, 1, frames, channels) for name, frames, channels in self.states})
        return shapes


def zero_states(shapes: StreamShapes) -> dict:
    return {name: np.zeros((1, 1, frames, channels), np.float32)
            for name, frames, channels in shapes.states}


class GraphRunner:
    """One graph's interpreter, inputs and outputs by name: inputs from the
    signature, outputs named `output_names` in the signature's order (the
    subgraph's own output list and its "PartitionedCall:<i>" names may follow
    another). With `tflm`, a tflite-micro wheel interpreter (set_input /
    get_output by position); else LiteRT's.

    int8 tensors: a float input is quantized with the tensor's parameters, an
    int8 input passes as it is; outputs come back dequantized except those
    named in `raw` (states, whose codes go back in unchanged)."""

    def __init__(self, model: bytes, interpreter, output_names: list[str], raw=(),
                 tflm: bool = False):
        parsed = tflite_file.parse_model(model)
        inputs, outputs = tflite_file.signature_tensors(parsed)
        if len(outputs) != len(output_names):
            raise tflite_file.TFLiteFileError(
                f"the graph has {len(outputs)} outputs, {len(output_names)} expected")
        subgraph = parsed.subgraphs[0]
        self.interpreter, self.tflm = interpreter, tflm
        self.tensor = {name: subgraph.tensors[t] for name, t in inputs.items()}
        self.input_index = inputs
        self.input_position = {name: [int(i) for i in subgraph.inputs].index(t)
                               for name, t in inputs.items()}
        self.output_index = dict(zip(output_names, outputs))
        self.output_position = {name: [int(i) for i in subgraph.outputs].index(t)
                                for name, t in self.output_index.items()}
        self.output_tensor = {name: subgraph.tensors[t] for name, t in self.output_index.items()}
        self.raw = set(raw)
        # Looked up once: a stream step sets and reads some 35 tensors.
        self.input_q = {name: self._parameters(t) for name, t in self.tensor.items()}
        self.output_q = {name: self._parameters(t) for name, t in self.output_tensor.items()}

    @staticmethod
    def _parameters(tensor):
        q = tensor.quantization
        if tensor.type != tflite_file.INT8 or q is None or q.scale is None or len(q.scale) != 1:
            return None
        return np.float32(q.scale[0]), int(q.zeroPoint[0])

    def input_dtype(self, name: str):
        return np.int8 if self.tensor[name].type == tflite_file.INT8 else None

    def zero(self, name: str, shape) -> np.ndarray:
        """An input of zeros: the zero point's code for an int8 tensor."""
        q = self.input_q[name]
        if q is None:
            return np.zeros(shape, np.float32)
        return np.full(shape, q[1], np.int8)

    def _quantized(self, name: str, value: np.ndarray) -> np.ndarray:
        q = self.input_q[name]
        if q is None or value.dtype == np.int8:
            return value
        return np.clip(np.round(value / q[0]) + q[1], -128, 127).astype(np.int8)

    def run(self, **inputs) -> dict[str, np.ndarray]:
        for name, value in inputs.items():
            value = self._quantized(name, np.asarray(value))
            if self.tflm:
                self.interpreter.set_input(np.ascontiguousarray(value), self.input_position[name])
            else:
                self.interpreter.set_tensor(self.input_index[name], value)
        self.interpreter.invoke()
        out = {}
        for name in self.output_index:
            value = (self.interpreter.get_output(self.output_position[name]) if self.tflm
                     else self.interpreter.get_tensor(self.output_index[name]))
            q = self.output_q[name]
            if q is not None and name not in self.raw:
                value = (value.astype(np.float32) - q[1]) * q[0]
            out[name] = value
        return out


class RunnerGraph:
    """A graph as the runtime drives it, `zero` and `run` by input name,
    around a GraphRunner (`self.runner`). A subclass names in `failures` the
    errors of its interpreter that `failed` turns into its own."""

    runner: GraphRunner
    failures: tuple = ()

    def failed(self, error: Exception) -> Exception:
        return error

    def zero(self, name: str, shape) -> np.ndarray:
        return self.runner.zero(name, shape)

    def run(self, **inputs) -> dict[str, np.ndarray]:
        try:
            return self.runner.run(**inputs)
        except self.failures as error:
            raise self.failed(error) from None


def stream_rows(run, shapes: StreamShapes, regulated: np.ndarray, zero: dict | None = None
                ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Drives the frames graph (`run(**inputs) -> outputs`, a GraphRunner's
    run or a Keras step) over regulated frames [T, C]: `step` frames an
    invoke, then `delay` masked frames. Yields (spectrum rows, mel rows,
    frame F0 rows or None) of frames 0 .. T-1 in order, as each invoke
    completes them. `zero`: the states to start from (default float zeros;
    an int8 graph's zero point)."""
    regulated = np.asarray(regulated, np.float32)
    total, step, delay = len(regulated), shapes.step, shapes.delay
    n_steps = -(-(total + delay) // step)
    frames = np.zeros((n_steps * step, shapes.channels), np.float32)
    frames[:total] = regulated
    mask = np.zeros((n_steps * step, 1), np.float32)
    mask[:total] = 1.0
    states = dict(zero) if zero is not None else zero_states(shapes)
    for k in range(n_steps):
        rows = slice(k * step, (k + 1) * step)
        out = run(frames=frames[None, None, rows], mask=mask[None, None, rows], **states)
        states = {name: out[name] for name in shapes.state_names}
        first = k * step - delay          # the frame of this invoke's first output row
        keep = slice(max(0, -first), max(0, min(step, total - first)))
        if keep.stop > keep.start:
            yield (np.asarray(out["spectrum"])[0, 0, keep], np.asarray(out["mel"])[0, 0, keep],
                   np.asarray(out["frame_f0"])[0, 0, keep] if shapes.frame_f0 else None)


def run_stream(run, shapes: StreamShapes, regulated, zero: dict | None = None,
               with_f0: bool = False) -> tuple[np.ndarray, ...]:
    """(spectrum [T, n_fft + 2], mel [T, n_mels]) of the whole segment, and
    with `with_f0` the frame F0 rows [T, 2] after them."""
    if with_f0 and not shapes.frame_f0:
        raise ValueError("this frames graph emits no frame F0")
    parts = list(stream_rows(run, shapes, regulated, zero))
    widths = (shapes.head_width, shapes.n_mels, 2)
    columns = [np.concatenate([p[i] for p in parts]) if parts
               else np.zeros((0, widths[i]), np.float32) for i in range(2 + with_f0)]
    return tuple(columns)
