"""The frames path of two exported voices side by side in one run: a format-1
folder's stateless frames graph (one invoke a chunk, recomputing its context)
against a format-2 folder's stream (one invoke every `step` frames, then the
inverse STFT in C), in LiteRT on one thread, on the same regulated frames.

  python tools/bench_stream.py --old_model_dir=/tmp/slt_v1 --model_dir=models/slt_tiny

Both folders must hold the same weights (re-export the old one's recovered
checkpoint: tools/recover_checkpoint.py). The regulated frames come from the
format-2 folder's text graph on --sentences. Each round times each path in
turn, so machine noise falls on both alike; the report gives each path's
seconds per second of audio (its real-time factor) and their ratio, and the
largest sample difference between the two (they compute the same function).
"""

from bittts_tf import cli

cli.quiet_startup()   # first, as every tool (no TensorFlow here)

import json
import os
import time

import numpy as np
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("old_model_dir", None, "Format-1 model folder (stateless frames graph).")
flags.DEFINE_string("model_dir", "models/slt_tiny", "Format-2 model folder (the stream).")
flags.DEFINE_integer("rounds", 5, "Rounds over both paths.", lower_bound=1)
flags.DEFINE_enum("decode", "load", ["load", "graph"],
                  "Where the ternary weights are decoded: load or graph.")
flags.DEFINE_list("sentences", [
    "The weather will be sunny tomorrow, with a light breeze from the west.",
    "Please turn left at the next corner and walk for two minutes.",
], "Sentences whose regulated frames are run.")
flags.register_validator("sentences", bool, message="--sentences is empty: give one or more")
flags.DEFINE_string("output", "out/bench_stream.json", "JSON report, written atomically.")
flags.mark_flag_as_required("old_model_dir")
cli.output_flags(files=("output",))


class StatelessFrames:
    """A format-1 frames graph: windows of left + chunk + right frames, each
    invoke giving the chunk's samples (the format-1 runtime's loop)."""

    def __init__(self, model_dir: str, decode: str, channels: int):
        from bittts_tf.litert import tflite_file
        from bittts_tf.runtime.decode_at_load import decode_at_load
        manifest_path = os.path.join(model_dir, "manifest.json")
        with open(manifest_path) as f:
            try:
                manifest = json.load(f)
            except ValueError as e:
                raise cli.ToolError(f"{manifest_path}: not readable JSON ({e})") from None
        if not isinstance(manifest, dict):
            raise cli.ToolError(f"{manifest_path}: not a JSON object")
        if manifest.get("format_version") != 1:
            raise cli.ToolError(f"{model_dir}: format version {manifest.get('format_version')}, "
                                "not the stateless format 1")
        # Read now, not at the first chunk: a torn manifest fails before any timing.
        try:
            self.shapes = {key: manifest["shapes"][key] for key in
                           ("left_context", "chunk_frames", "right_context", "hop_length")}
            graph_path = os.path.join(model_dir, manifest["graphs"]["frames"]["file"])
        except KeyError as e:
            raise cli.ToolError(f"{manifest_path}: no {e.args[0]!r} (a format-1 manifest has "
                                "the stateless shapes and graphs.frames.file)") from None
        except TypeError:
            raise cli.ToolError(f"{manifest_path}: its shapes or graphs.frames.file are not "
                                "as a format-1 manifest writes them") from None
        if not all(isinstance(v, int) and v >= 0 for v in self.shapes.values()) \
                or min(self.shapes["chunk_frames"], self.shapes["hop_length"]) < 1:
            raise cli.ToolError(f"{manifest_path}: bad stateless shapes {self.shapes}")
        with open(graph_path, "rb") as f:
            data = f.read()
        tflite_file.parse_model(data, graph_path)
        try:
            if decode == "load":
                from ai_edge_litert.interpreter import Interpreter
                self.interpreter = Interpreter(model_content=decode_at_load(data), num_threads=1)
            else:
                from bittts_tf.litert.native import make_interpreter
                self.interpreter = make_interpreter(data, num_threads=1)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise cli.ToolError(f"{graph_path}: the interpreter cannot load it "
                                f"({cli.one_line(e)[:300]})") from None
        details = self.interpreter.get_input_details()
        self.inputs = {tflite_file.signature_input_name(d["name"]): d["index"] for d in details}
        shapes = {tflite_file.signature_input_name(d["name"]): tuple(int(n) for n in d["shape"])
                  for d in details}
        outputs = self.interpreter.get_output_details()
        numbers = [d["name"].rsplit(":", 1)[-1] for d in outputs]
        if not outputs or not all(n.isdigit() for n in numbers):
            raise cli.ToolError(f"{graph_path}: outputs {[d['name'] for d in outputs]}, not "
                                "the exporter's numbered audio and mel")
        self.audio = min(zip(map(int, numbers), (d["index"] for d in outputs)))[1]
        s = self.shapes
        window = s["left_context"] + s["chunk_frames"] + s["right_context"]
        want = {"frames": (1, window, channels), "mask": (1, window, 1)}
        if shapes != want:
            got = {name: shapes.get(name, "none") for name in want}
            others = len(set(shapes) - set(want))
            more = f" and {others} more" if others else ""
            raise cli.ToolError(f"{graph_path}: inputs {got}{more}, not the {want} its manifest's "
                                f"shapes and {FLAGS.model_dir}'s {channels} channels give")

    def samples(self, regulated: np.ndarray) -> np.ndarray:
        s = self.shapes
        left, chunk, right, hop = (s["left_context"], s["chunk_frames"], s["right_context"],
                                   s["hop_length"])
        n = len(regulated)
        chunks = -(-n // chunk)
        frames = np.zeros((left + chunks * chunk + right, regulated.shape[1]), np.float32)
        mask = np.zeros((len(frames), 1), np.float32)
        frames[left:left + n] = regulated
        mask[left:left + n] = 1.0
        out = []
        for k in range(chunks):
            window = slice(k * chunk, k * chunk + left + chunk + right)
            self.interpreter.set_tensor(self.inputs["frames"], frames[None, window])
            self.interpreter.set_tensor(self.inputs["mask"], mask[None, window])
            self.interpreter.invoke()
            keep = min(chunk, n - k * chunk)
            out.append(self.interpreter.get_tensor(self.audio)[0, :keep * hop].copy())
        return np.concatenate(out)


def main(argv):
    del argv
    from bittts_tf import fileio
    from bittts_tf.runtime import TextError, TextToSpeech
    from bittts_tf.runtime.tts import regulate, regulate_durations

    new = TextToSpeech(FLAGS.model_dir, decode=FLAGS.decode, num_threads=1)
    try:
        sentence_ids = [new.segments(sentence) for sentence in FLAGS.sentences]
    except TextError as e:
        raise cli.ToolError(f"--sentences: {e}") from None
    old = StatelessFrames(FLAGS.old_model_dir, FLAGS.decode, int(new.shapes["encoder_channels"]))
    caps = (new.shapes["max_frames_per_token"], new.shapes["max_frames_per_segment"])
    segments = []
    for ids_of_sentence in sentence_ids:
        for ids in ids_of_sentence:
            hidden, log_duration = new.encode(ids)
            durations, _ = regulate_durations(log_duration, len(ids), 1.0, *caps)
            segments.append(regulate(hidden, durations))
    audio_seconds = sum(len(r) for r in segments) * new.shapes["hop_length"] / new.sample_rate
    paths = {"stateless (format 1)": lambda r: old.samples(r),
             "stream + C inverse STFT (format 2)":
                 lambda r: np.concatenate([s for s, _ in new.frame_chunks(r)])}
    seconds = {name: [] for name in paths}
    outputs = {}
    for _ in range(FLAGS.rounds):
        for name, path in paths.items():
            start = time.perf_counter()
            outputs[name] = [path(r) for r in segments]
            seconds[name].append(time.perf_counter() - start)
    rtf = {name: min(times) / audio_seconds for name, times in seconds.items()}
    a, b = (np.concatenate(outputs[name]) for name in paths)
    names = list(paths)
    report = {"old_model_dir": FLAGS.old_model_dir, "model_dir": FLAGS.model_dir,
              "decode": FLAGS.decode, "threads": 1, "rounds": FLAGS.rounds,
              "audio_seconds": audio_seconds, "real_time_factor": rtf,
              "ratio_old_over_new": rtf[names[0]] / rtf[names[1]],
              "max_sample_difference": float(np.abs(a - b).max()),
              "peak": float(np.abs(a).max())}
    fileio.atomic_write_json(FLAGS.output, report)
    for name in names:
        print(f"{name:36s} real-time factor {rtf[name]:.4f} (best of {FLAGS.rounds})")
    print(f"the stream is {report['ratio_old_over_new']:.2f}x faster; largest sample difference "
          f"{report['max_sample_difference']:.2e} (peak {report['peak']:.3f}); {FLAGS.output}")


if __name__ == "__main__":
    cli.run(main)
