"""Writes the model-specific sources of a TFLite Micro application from an
exported model folder (tools/export_tts.py):

  bittts-firmware --model_dir=models/slt_tiny --out_dir=fw/generated \
      --phrase="Hello there." --phrase="The battery is low."

  bittts_model_data.h  sizes, CRC-32s, graph shapes, tensor indices, the stream
                       config with the frames graph's states (their tensor
                       indices, sizes and int8 zero points), the int8
                       quantization of the stream's tensors, and the phrases
                       as phoneme ids
  bittts_model_data.c  the .tflite graphs as 16-byte-aligned const arrays (they
                       stay in flash), the phrases
  bittts_op_resolver.h the TFLM op resolver with exactly the ops both graphs use

With --target=engine (and --variant=int8) it writes the sources of the C99
engine's voice instead (firmware_stub/bittts_voice.h, no TFLite Micro):

  bittts_model_data.h  blob sizes, the arena and work-buffer sizes, the stream
                       config, the phrases as phoneme ids
  bittts_model_data.c  each int8 graph lowered to an engine blob
                       (bittts_tf/engine/blob.py) as a const array, the phrases

Phrases are converted to phoneme ids here, on the host (the firmware has no
G2P), and split into segments that fit the text graph as the Python runtime
splits them. The files are written atomically; errors are one line. See
firmware_stub/README.md for the rest of the firmware.
"""

import os
import sys
import zlib

import numpy as np
from absl import flags

from bittts_tf import cli
from bittts_tf.export import tflm
from bittts_tf.export.c_source import c_bytes, c_float, c_string, config_and_phrase_lines, table
from bittts_tf.litert import tflite_file
from bittts_tf.litert.tflite_file import FLOAT32, INT8, INT32
from bittts_tf.runtime import stream_spec
from bittts_tf.runtime.stream import StreamShapes

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Model folder written by tools/export_tts.py.")
flags.DEFINE_string("out_dir", None, "Where to write the generated sources.")
flags.DEFINE_multi_string("phrase", [], "Text to store as phoneme ids (repeatable).")
flags.DEFINE_enum("variant", "packed", ["packed", "int8"], "Which graphs of the folder to embed.")
flags.DEFINE_boolean("allow_missing_ops", False,
                     "Write the sources even when a graph uses an op TFLite Micro has no kernel "
                     "for (the resolver then lists it in a comment; the interpreter will refuse "
                     "the graph until a kernel exists).")
flags.DEFINE_enum("target", "tflm", ["tflm", "engine"],
                  "tflm: the graphs for a TFLite Micro application; engine: engine blobs for "
                  "the C99 engine (firmware_stub/bittts_voice.h), int8 variant only.")
flags.mark_flags_as_required(["model_dir", "out_dir"])
cli.output_flags(folders=("out_dir",), allow=())

DATA_HEADER = "bittts_model_data.h"
DATA_SOURCE = "bittts_model_data.c"
RESOLVER_HEADER = "bittts_op_resolver.h"

# Custom ops TFLite Micro registers itself (its compression's decode op).
TFLM_CUSTOM_METHODS = {"TFLM_DECODE": "AddDecode"}


class FirmwareError(ValueError):
    """Input the sources cannot be made from; the message names it."""


_TYPES = {FLOAT32: "float32", INT32: "int32", INT8: "int8"}


def _quantization(tensor) -> tuple[float, int] | None:
    """(scale, zero point) of a per-tensor quantized tensor, else None."""
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) != 1 or q.zeroPoint is None:
        return None
    return float(np.float32(q.scale[0])), int(q.zeroPoint[0])


def tensor_indices(model, expected: dict, path: str, optional=()) -> dict:
    """{name: (direction, position in the subgraph's inputs or outputs,
    (scale, zero point) or None)}, each tensor's shape and type checked
    against `expected` ({"inputs": {name: (shape, type)}, "outputs": [(name,
    shape, type)] in signature order}). The signature names the tensors: a
    dict of outputs is flattened in sorted key order (output_0, ...), and the
    subgraph's own output list may follow another order."""
    try:
        inputs, outputs = tflite_file.signature_tensors(model)
    except tflite_file.TFLiteFileError as e:
        raise FirmwareError(f"{path}: {e}") from None
    subgraph = model.subgraphs[0]
    wanted = expected["inputs"]
    extra = sorted(set(inputs) - set(wanted) - set(optional))
    missing = sorted(set(wanted) - set(inputs))
    if extra or missing:
        raise FirmwareError(f"{path}: inputs {sorted(inputs)}, expected {sorted(wanted)} "
                            "(an older export?)")
    if len(outputs) != len(expected["outputs"]):
        raise FirmwareError(f"{path}: {len(outputs)} outputs, expected "
                            f"{', '.join(name for name, _, _ in expected['outputs'])}")
    graph_inputs = [int(i) for i in (subgraph.inputs if subgraph.inputs is not None else [])]
    graph_outputs = [int(i) for i in (subgraph.outputs if subgraph.outputs is not None else [])]

    def position(direction, entry, tensor, listed):
        # A re-signed graph's signature can name any tensor; the firmware
        # addresses it by its place in the subgraph's own list.
        if tensor not in listed:
            raise FirmwareError(f"{path}: signature {direction} {entry} names tensor {tensor}, "
                                f"which is not one of the graph's {len(listed)} {direction}s")
        return listed.index(tensor)

    # Keys "in:<name>" / "out:<name>": the stream has a mask and each state both ways.
    found = {f"in:{name}": ("input", position("input", repr(name), tensor, graph_inputs), tensor)
             for name, tensor in inputs.items()}
    found.update({f"out:{name}": ("output", position("output", f"'output_{i}' ({name})",
                                                     tensor, graph_outputs), tensor)
                  for i, ((name, _, _), tensor) in enumerate(zip(expected["outputs"], outputs))})
    want = {f"in:{name}": value for name, value in wanted.items()}
    want.update({f"out:{name}": (shape, dtype) for name, shape, dtype in expected["outputs"]})
    result = {}
    for key, (direction, position, tensor_index) in found.items():
        tensor, name = subgraph.tensors[tensor_index], key.split(":", 1)[1]
        if key in want:
            shape, dtype = want[key]
            got = ([int(n) for n in tensor.shape] if tensor.shape is not None else [],
                   _TYPES.get(tensor.type, "?"))
            if got != (list(shape), dtype):
                raise FirmwareError(f"{path}: {direction} {name!r} is {got[1]} {got[0]}, the "
                                    f"manifest implies {dtype} {list(shape)}")
        quant = _quantization(tensor) if tensor.type == INT8 else None
        if tensor.type == 9 and (quant is None or not (np.isfinite(quant[0]) and quant[0] > 0)
                                 or not -128 <= quant[1] <= 127):
            raise FirmwareError(f"{path}: int8 {direction} {name!r} has no per-tensor scale "
                                "and zero point the stream can use")
        result[key] = (direction, position, quant)
    return result


def check_state_quantization(indices: dict, states, path: str) -> None:
    """A state's int8 codes go back in unchanged: its output must have its
    input's scale and zero point."""
    for name, _, _ in states:
        if indices[f"in:{name}"][2] != indices[f"out:{name}"][2]:
            raise FirmwareError(f"{path}: {name} leaves the graph with quantization "
                                f"{indices[f'out:{name}'][2]} and comes back with "
                                f"{indices[f'in:{name}'][2]}: its codes cannot be carried")


def load_inputs(model_dir: str, variant: str, phrases: list[str]):
    from bittts_tf.runtime import model_folder
    from bittts_tf.text.g2p import FrontEnd
    from bittts_tf.text.normalize import TextError
    from bittts_tf.text.segment import segment_ids

    folder = model_folder.load(model_dir)
    manifest = folder.manifest
    try:
        front_end = FrontEnd.from_dict(manifest["front_end"])
    except (KeyError, TypeError, ValueError) as e:
        raise FirmwareError(f"{model_dir}/{model_folder.MANIFEST}: bad front-end settings ({e})")
    shapes = dict(manifest["shapes"])
    sample_rate = manifest.get("audio", {}).get("sample_rate")
    graphs = {}
    for graph in model_folder.GRAPHS:
        data = folder.read_graph(graph, variant)
        path = os.path.join(model_dir, model_folder.graph_file(graph, variant))
        try:
            model = tflite_file.parse_model(data, path)
        except tflite_file.TFLiteFileError as e:
            raise FirmwareError(str(e)) from None
        graphs[graph] = (path, data, model)
    segments = []
    for text in phrases:
        try:
            # The phrase goes into C source as UTF-8; a command line's stray
            # bytes arrive as lone surrogates that have no encoding.
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise FirmwareError(f"--phrase {text!r}: holds bytes that are not UTF-8") from None
        try:
            segments.append(segment_ids(front_end, text, shapes["max_tokens"]))
        except TextError as e:
            raise FirmwareError(f"--phrase {text!r}: {e}") from None
    return shapes, len(front_end.symbols), int(manifest["speakers"]), sample_rate, graphs, segments


def expected_tensors(shapes: dict, stream: StreamShapes, int8: bool) -> dict:
    """The interface the exporter writes (as the runtime's TextToSpeech._interface):
    the text graph has float32 edges in both variants, the frames graph is
    int8 from end to end in the int8 variant."""
    tokens, channels = shapes["max_tokens"], shapes["encoder_channels"]
    dtype = "int8" if int8 else "float32"
    frames_outputs = stream.outputs()
    return {
        "text": {"inputs": {"phonemes": ([1, tokens], "int32"), "length": ([1], "int32")},
                 "outputs": [("hidden", [1, tokens, channels], "float32"),
                             ("log_duration", [1, tokens], "float32")]},
        "frames": {"inputs": {name: (list(shape), dtype)
                              for name, (shape, _) in stream.inputs(None).items()},
                   "outputs": [(name, list(frames_outputs[name]), dtype)
                               for name in stream.output_names]},
    }


def data_header(model_dir, shapes, stream: StreamShapes, num_symbols, speakers, sample_rate,
                graphs, indices, variant, phrases) -> str:
    int8 = variant == "int8"
    work = stream_spec.work_len(shapes["n_fft"], shapes["hop_length"], stream.head_width, int8,
                                  stream.frame_f0)
    frames = indices["frames"]
    states = stream.states
    lines = [
        f"/* Generated by tools/firmware.py from {os.path.basename(os.path.abspath(model_dir))} "
        f"({variant} graphs). Do not edit. */",
        "#ifndef BITTTS_MODEL_DATA_H_", "#define BITTTS_MODEL_DATA_H_", "",
        "#include <stddef.h>", "#include <stdint.h>", "",
        '#include "bittts_stream_spec.h"', "",
        "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
        "/* The record layout this file was generated for. */",
        f"#if {stream_spec.layout_check()}",
        '#error "bittts_stream_spec.h does not match: run tools/firmware.py again"', "#endif", "",
    ]
    for graph, (path, data, _) in graphs.items():
        upper = graph.upper()
        lines += [f"/* {os.path.basename(path)}: pass to bittts_check_model() before use. */",
                  f"#define BITTTS_MODEL_{upper}_BYTES {len(data)}u",
                  f"#define BITTTS_MODEL_{upper}_CRC32 0x{zlib.crc32(data):08X}u",
                  f"extern const uint8_t bittts_model_{graph}[BITTTS_MODEL_{upper}_BYTES];", ""]
    lines.append("/* Interpreter tensor indices: interpreter.input(i) / output(i). */")
    for graph, names in indices.items():
        for key, (direction, position, _) in names.items():
            name = key.split(":", 1)[-1]
            lines.append(f"#define BITTTS_MODEL_{graph.upper()}_{direction.upper()}_"
                         f"{name.upper()} {position}")
    lines += ["", "/* Shapes (frames and samples). */",
              f"#define BITTTS_MODEL_SAMPLE_RATE {sample_rate}",
              f"#define BITTTS_MODEL_SPEAKERS {speakers}",
              f"#define BITTTS_MODEL_NUM_SYMBOLS {num_symbols}"]
    for name in ("max_tokens", "encoder_channels", "n_mels", "hop_length", "n_fft",
                 "max_frames_per_token", "max_frames_per_segment"):
        lines.append(f"#define BITTTS_MODEL_{name.upper()} {shapes[name]}")
    lines += ["",
              "/* The frames graph is a stream (bittts_stream.h): STEP frames in and STEP",
              " * spectrum rows of HEAD_WIDTH values out per invoke, DELAY frames behind. */",
              f"#define BITTTS_MODEL_STEP {stream.step}",
              f"#define BITTTS_MODEL_DELAY {stream.delay}",
              f"#define BITTTS_MODEL_HEAD_WIDTH {stream.head_width}",
              f"#define BITTTS_MODEL_FRAMES_INT8 {int(int8)} /* 1: its tensors are int8 */",
              "/* 1: a source-phase vocoder's graph, whose frame_f0 output (STEP rows of 2)",
              " * goes to the stream with the spectrum (bittts_frames_io.frame_f0). */",
              f"#define BITTTS_MODEL_FRAME_F0 {int(stream.frame_f0)}",
              "/* Floats of the work buffer: bittts_stream_work_len(&config, "
              "BITTTS_MODEL_FRAMES_INT8). */",
              f"#define BITTTS_MODEL_STREAM_WORK_FLOATS {work}",
              "/* int8: value = scale * (code - zero point) (float32 graphs: unused). */"]
    quantized = [("in:frames", "FRAMES_INPUT_FRAMES"), ("in:mask", "FRAMES_INPUT_MASK"),
                 ("out:spectrum", "FRAMES_OUTPUT_SPECTRUM")]
    if stream.frame_f0:
        quantized.append(("out:frame_f0", "FRAMES_OUTPUT_FRAME_F0"))
    for key, what in quantized:
        scale, zero_point = frames[key][2] or (0.0, 0)
        lines += [f"#define BITTTS_MODEL_{what}_SCALE {c_float(scale)}",
                  f"#define BITTTS_MODEL_{what}_ZERO_POINT {zero_point}"]
    lines += ["/* The states, state_00 first: input and output indices, values in each, the",
              " * int8 zero point (the code of a zero state; 0 for float32). */",
              f"#define BITTTS_MODEL_NUM_STATES {len(states)}",
              "#define BITTTS_MODEL_STATE_INPUTS "
              + table([frames[f"in:{name}"][1] for name, _, _ in states]),
              "#define BITTTS_MODEL_STATE_OUTPUTS "
              + table([frames[f"out:{name}"][1] for name, _, _ in states]),
              "#define BITTTS_MODEL_STATE_LENGTHS "
              + table([f * c for _, f, c in states]),
              "#define BITTTS_MODEL_STATE_ZERO_POINTS "
              + table([(frames[f"in:{name}"][2] or (0.0, 0))[1] for name, _, _ in states]),
              ""]
    lines += config_and_phrase_lines(shapes, stream, num_symbols, phrases,
                                     "run each\n * segment through the text graph on its own.",
                                     sample_rate)
    return "\n".join(lines)


def data_source(graphs, phrases, segments) -> str:
    lines = [
        "/* Generated by tools/firmware.py. Do not edit. */",
        f'#include "{DATA_HEADER}"', "",
        "/* TFLite Micro reads tensors in place: the flatbuffer must be 16-byte aligned.",
        " * Define BITTTS_MODEL_ATTRIBUTES (e.g. a section attribute) to place the arrays. */",
        "#if defined(__GNUC__) || defined(__clang__)",
        "#define BITTTS_ALIGN16 __attribute__((aligned(16)))",
        "#elif defined(__cplusplus) && __cplusplus >= 201103L",
        "#define BITTTS_ALIGN16 alignas(16)",
        "#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L",
        "#define BITTTS_ALIGN16 _Alignas(16)",
        "#else",
        '#error "align bittts_model_text / bittts_model_frames to 16 bytes for this compiler"',
        "#endif",
        "#ifndef BITTTS_MODEL_ATTRIBUTES", "#define BITTTS_MODEL_ATTRIBUTES", "#endif", "",
    ]
    for graph, (path, data, _) in graphs.items():
        lines += [f"/* {os.path.basename(path)} */",
                  f"BITTTS_ALIGN16 BITTTS_MODEL_ATTRIBUTES const uint8_t bittts_model_{graph}"
                  f"[BITTTS_MODEL_{graph.upper()}_BYTES] = {{",
                  c_bytes(data), "};", ""]
    for i, (text, segs) in enumerate(zip(phrases, segments)):
        ids = [str(x) for seg in segs for x in seg]
        rows = [", ".join(ids[j:j + 16]) for j in range(0, len(ids), 16)]
        lines += [f"static const int32_t phrase_{i}_ids[{len(ids)}] = {{",
                  ",\n".join("  " + row for row in rows), "};",
                  f"static const uint16_t phrase_{i}_segments[{len(segs)}] = "
                  f"{{{', '.join(str(len(s)) for s in segs)}}};"]
    if phrases:
        lines += ["", "const bittts_model_phrase bittts_model_phrases[BITTTS_MODEL_NUM_PHRASES] = {"]
        lines += [f"  {{{c_string(text)}, phrase_{i}_ids, phrase_{i}_segments, {len(segs)}}},"
                  for i, (text, segs) in enumerate(zip(phrases, segments))]
        lines.append("};")
    return "\n".join(lines) + "\n"


def resolver_header(model_dir, graphs, ops) -> tuple[str, list[str]]:
    """The resolver and the ops TFLite Micro has no kernel for."""
    from bittts_tf.quant import spec

    methods, missing, seen = [], [], set()
    for graph, (builtins, customs) in ops.items():
        for name in builtins:
            if name in tflm.TFLM_METHODS:
                if name not in seen:
                    methods.append(tflm.TFLM_METHODS[name])
            else:
                missing.append(f"{name} ({graph}.tflite)")
            seen.add(name)
        for name in customs:
            if name in TFLM_CUSTOM_METHODS:
                if name not in seen:
                    methods.append(TFLM_CUSTOM_METHODS[name])
            elif name not in (spec.OP_NAME, spec.CONV_OP_NAME):
                missing.append(f"custom {name} ({graph}.tflite)")
            seen.add(name)
    # Our ops (the fused conv when fused_conv.fuse_ternary_convs rewrote a graph), last.
    ours = [call for name, call in (
        (spec.OP_NAME, "AddCustom(BITTTS_OP_NAME, Register_BitTTSTernaryDecode())"),
        (spec.CONV_OP_NAME, "AddCustom(BITTTS_CONV_OP_NAME, Register_BitTTSTernaryConv())"))
        if any(name in customs for _, customs in ops.values())]
    count = len(methods) + len(ours)
    listing = "\n".join(f"//   {graph}.tflite: {' '.join(builtins + customs)}"
                        for graph, (builtins, customs) in ops.items())
    body = [f"  if (resolver.{call} != kTfLiteOk) return kTfLiteError;"
            for call in [f"{method}()" for method in methods] + ours[:-1]]
    body.append(f"  return resolver.{ours[-1]};" if ours else "  return kTfLiteOk;")
    note = ""
    if missing:
        note = ("\n// TFLite Micro has no kernel for: " + ", ".join(missing) + ".\n"
                "// The interpreter refuses these graphs until the graph is exported without\n"
                "// the op or a kernel is registered for it.\n")
    text = f"""// Generated by tools/firmware.py from {os.path.basename(os.path.abspath(model_dir))}. Do not edit.
// The TFLite Micro op resolver for the model's two graphs, which use:
{listing}
{note}#ifndef BITTTS_OP_RESOLVER_H_
#define BITTTS_OP_RESOLVER_H_

#include "bittts_spec.h"
#include "bittts_tflm_kernel.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

namespace bittts {{

constexpr unsigned int kNumOps = {max(count, 1)};
using OpResolver = tflite::MicroMutableOpResolver<kNumOps>;

// Adds every op both graphs use; one resolver serves both interpreters.
inline TfLiteStatus AddOps(OpResolver& resolver) {{
{chr(10).join(body)}
}}

}}  // namespace bittts

#endif  // BITTTS_OP_RESOLVER_H_
"""
    return text, missing


def engine_files(model_dir, shapes, stream, num_symbols, sample_rate, graphs, phrases,
                 segments) -> tuple[dict, dict]:
    """--target=engine: (file name -> text, summary) with the graphs as engine blobs."""
    from bittts_tf.engine import firmware_data
    from bittts_tf.engine.graph import GraphError
    try:
        made = firmware_data.blobs(graphs, stream)
    except GraphError as e:
        raise FirmwareError(str(e)) from None
    arenas = firmware_data.arena_bytes({g: program for g, (_, program) in made.items()}, shapes)
    blob_graphs = {f"{g}_blob": (graphs[g][0], data, None) for g, (data, _) in made.items()}
    sizes = {key: len(data) for key, (_, data, _) in blob_graphs.items()}
    files = {DATA_HEADER: firmware_data.header(model_dir, shapes, stream, num_symbols, sample_rate,
                                               sizes, arenas, phrases),
             DATA_SOURCE: data_source(blob_graphs, phrases, segments)}
    return files, {"blob_bytes": sizes, "arena_bytes": arenas}


def generate(model_dir: str, out_dir: str, phrases: list[str], variant: str = "packed",
             allow_missing_ops: bool = False, target: str = "tflm") -> dict:
    from bittts_tf import fileio
    from bittts_tf.runtime import model_folder

    if target == "engine" and variant != "int8":
        raise FirmwareError(f"--target=engine runs the int8 graphs: pass --variant=int8, not {variant}")
    if target == "engine" and allow_missing_ops:
        # The engine lowers every op itself or refuses the graph: no resolver to leave one out of.
        raise FirmwareError("--allow_missing_ops is for --target=tflm's op resolver; "
                            "--target=engine has none, so drop one of the two")
    try:
        shapes, num_symbols, speakers, sample_rate, graphs, segments = load_inputs(
            model_dir, variant, phrases)
    except model_folder.ModelFolderError as e:
        raise FirmwareError(str(e)) from None
    if shapes["max_tokens"] > 0xFFFF:
        raise FirmwareError(f"{model_dir}: max_tokens {shapes['max_tokens']} does not fit the "
                            "uint16 segment lengths of the phrase table")
    stream = StreamShapes.from_dict(shapes["stream"])
    try:
        stream_spec.config_values(shapes, num_symbols, sample_rate)
    except ValueError as e:
        raise FirmwareError(f"{model_dir}: {e}") from None
    expected = expected_tensors(shapes, stream, variant == "int8")
    indices = {graph: tensor_indices(model, expected[graph], path,
                                     optional=("speaker",) if graph == "text" else ())
               for graph, (path, _, model) in graphs.items()}
    check_state_quantization(indices["frames"], stream.states, graphs["frames"][0])
    ops = {graph: tflite_file.graph_ops(model) for graph, (_, _, model) in graphs.items()}
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FirmwareError(f"--out_dir {out_dir}: exists and is not a directory")
    extra = {}
    missing = []
    if target == "engine":
        files, extra = engine_files(model_dir, shapes, stream, num_symbols, sample_rate, graphs,
                                    phrases, segments)
    else:
        resolver, missing = resolver_header(model_dir, graphs, ops)
        if missing and not allow_missing_ops:
            raise FirmwareError(f"{model_dir}: TFLite Micro has no kernel for {', '.join(missing)}; "
                                "re-export without it, or pass --allow_missing_ops")
        files = {
            DATA_HEADER: data_header(model_dir, shapes, stream, num_symbols, speakers, sample_rate,
                                     graphs, indices, variant, phrases),
            DATA_SOURCE: data_source(graphs, phrases, segments),
            RESOLVER_HEADER: resolver,
        }
    def writer(text):
        def write(tmp):
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
        return write

    try:
        for name, text in files.items():
            fileio.atomic_write(os.path.join(out_dir, name), writer(text))
    except OSError as e:
        raise FirmwareError(f"--out_dir {out_dir}: cannot write ({e.strerror})") from None
    return {"files": sorted(files), "graph_bytes": {g: len(d) for g, (_, d, _) in graphs.items()},
            "ops": ops, "missing_ops": missing, "phrase_segments": [len(s) for s in segments],
            **extra}


def main(argv):
    del argv
    try:
        summary = generate(FLAGS.model_dir, FLAGS.out_dir, FLAGS.phrase, FLAGS.variant,
                           FLAGS.allow_missing_ops, FLAGS.target)
    except FirmwareError as e:
        sys.exit(f"firmware: {e}")
    for graph, size in summary["graph_bytes"].items():
        builtins, customs = summary["ops"][graph]
        print(f"{graph:7s} {size:9,d} bytes, {len(builtins)} builtin ops + {', '.join(customs)}")
    for key, size in summary.get("blob_bytes", {}).items():
        print(f"{key:11s} {size:9,d} bytes (engine blob)")
    if "arena_bytes" in summary:
        arenas = summary["arena_bytes"]
        print(f"engine arena {arenas['total']:,d} bytes (text {arenas['text']:,d}, "
              f"frames {arenas['frames']:,d})")
    for op in summary["missing_ops"]:
        print(f"warning: TFLite Micro has no kernel for {op}")
    print(f"{len(summary['phrase_segments'])} phrase(s), segments: {summary['phrase_segments']}")
    print(f"wrote {', '.join(summary['files'])} to {os.path.abspath(FLAGS.out_dir)}")

