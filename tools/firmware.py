"""Writes the model-specific sources of a TFLite Micro application from an
exported model folder (tools/export_tts.py):

  python tools/firmware.py --model_dir=models/slt_tiny --out_dir=fw/generated \
      --phrase="Hello there." --phrase="The battery is low."

  bittts_model_data.h  sizes, CRC-32s, graph shapes, tensor indices, the stream
                       config, and the phrases as phoneme ids
  bittts_model_data.c  the .tflite graphs as 16-byte-aligned const arrays (they
                       stay in flash), the phrases
  bittts_op_resolver.h the TFLM op resolver with exactly the ops both graphs use

Phrases are converted to phoneme ids here, on the host (the firmware has no
G2P), and split into segments that fit the text graph as the Python runtime
splits them. The files are written atomically; errors are one line. See
firmware_stub/README.md for the rest of the firmware.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import os
import sys
import zlib

from absl import flags

from bittts_tf.export import tflite_file
from bittts_tf.runtime import firmware_spec

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Model folder written by tools/export_tts.py.")
flags.DEFINE_string("out_dir", None, "Where to write the generated sources.")
flags.DEFINE_multi_string("phrase", [], "Text to store as phoneme ids (repeatable).")
flags.DEFINE_enum("variant", "packed", ["packed", "int8"], "Which graphs of the folder to embed.")
flags.DEFINE_boolean("allow_missing_ops", False,
                     "Write the sources even when a graph uses an op TFLite Micro has no kernel "
                     "for (the resolver then lists it in a comment; the interpreter will refuse "
                     "the graph until a kernel exists).")
flags.mark_flags_as_required(["model_dir", "out_dir"])

DATA_HEADER = "bittts_model_data.h"
DATA_SOURCE = "bittts_model_data.c"
RESOLVER_HEADER = "bittts_op_resolver.h"

# Custom ops TFLite Micro registers itself (its compression's decode op).
TFLM_CUSTOM_METHODS = {"TFLM_DECODE": "AddDecode"}

# Each graph's outputs are named "PartitionedCall:<k>", k following the
# sorted keys of the exported function's output dict (tts_graphs).
OUTPUT_NAMES = {"text": ("hidden", "log_duration"), "frames": ("audio", "mel")}


class FirmwareError(ValueError):
    """Input the sources cannot be made from; the message names it."""


def _schema():
    from ai_edge_litert import schema_py_generated as schema
    return schema


def tensor_indices(model, graph: str, expected: dict, path: str) -> dict:
    """{name: (direction, index in the subgraph's inputs or outputs)}, each
    tensor's shape and type checked against what the stream expects."""
    schema = _schema()
    subgraph = model.subgraphs[0]
    found = {}
    for position, tensor_index in enumerate(subgraph.inputs):
        name = subgraph.tensors[tensor_index].name.decode()
        found[name.removeprefix("serving_default_").split(":")[0]] = ("input", position,
                                                                      tensor_index)
    outputs = sorted(enumerate(subgraph.outputs),
                     key=lambda item: int(subgraph.tensors[item[1]].name.decode().rsplit(":")[-1]))
    if len(outputs) != len(OUTPUT_NAMES[graph]):
        raise FirmwareError(f"{path}: {len(outputs)} outputs, expected "
                            f"{', '.join(OUTPUT_NAMES[graph])}")
    for name, (position, tensor_index) in zip(OUTPUT_NAMES[graph], outputs):
        found[name] = ("output", position, tensor_index)
    types = {schema.TensorType.FLOAT32: "float32", schema.TensorType.INT32: "int32"}
    result = {}
    for name, (shape, dtype) in expected.items():
        if name not in found:
            raise FirmwareError(f"{path}: no tensor named {name!r} (an older export?)")
        direction, position, tensor_index = found[name]
        tensor = subgraph.tensors[tensor_index]
        got = (list(tensor.shape) if tensor.shape is not None else [], types.get(tensor.type, "?"))
        if got != (shape, dtype):
            raise FirmwareError(f"{path}: {direction} {name!r} is {got[1]} {got[0]}, the manifest "
                                f"implies {dtype} {shape}")
        result[name] = (direction, position)
    if "speaker" in found:
        result["speaker"] = found["speaker"][:2]
    return result


def c_string(text: str) -> str:
    """A C string literal of the UTF-8 bytes (octal escapes, which cannot run
    into the next character the way hex escapes do)."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


_HEX = [f"0x{i:02x}," for i in range(256)]


def c_bytes(data: bytes) -> str:
    return "\n".join("  " + "".join(_HEX[b] for b in data[i:i + 16])
                     for i in range(0, len(data), 16))


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
            segments.append(segment_ids(front_end, text, shapes["max_tokens"]))
        except TextError as e:
            raise FirmwareError(f"--phrase {text!r}: {e}") from None
    return shapes, len(front_end.symbols), int(manifest["speakers"]), sample_rate, graphs, segments


def expected_tensors(shapes: dict) -> dict:
    window = shapes["left_context"] + shapes["chunk_frames"] + shapes["right_context"]
    tokens, channels = shapes["max_tokens"], shapes["encoder_channels"]
    return {
        "text": {"phonemes": ([1, tokens], "int32"), "length": ([1], "int32"),
                 "hidden": ([1, tokens, channels], "float32"),
                 "log_duration": ([1, tokens], "float32")},
        "frames": {"frames": ([1, window, channels], "float32"),
                   "mask": ([1, window, 1], "float32"),
                   "audio": ([1, shapes["chunk_frames"] * shapes["hop_length"]], "float32"),
                   "mel": ([1, shapes["chunk_frames"], shapes["n_mels"]], "float32")},
    }


def data_header(model_dir, shapes, num_symbols, speakers, sample_rate, graphs, indices,
                phrases, segments) -> str:
    values = dict(shapes, num_symbols=num_symbols)
    config = ", \\\n".join(f"    {values[name]} /* {name} */"
                           for name, _ in firmware_spec.CONFIG_FIELDS)
    window = shapes["left_context"] + shapes["chunk_frames"] + shapes["right_context"]
    lines = [
        f"/* Generated by tools/firmware.py from {os.path.basename(os.path.abspath(model_dir))}. "
        "Do not edit. */",
        "#ifndef BITTTS_MODEL_DATA_H_", "#define BITTTS_MODEL_DATA_H_", "",
        "#include <stddef.h>", "#include <stdint.h>", "",
        '#include "bittts_stream_spec.h"', "",
        "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
        "/* The record layout this file was generated for. */",
        f"#if BITTTS_CONFIG_NUM_FIELDS != {len(firmware_spec.CONFIG_FIELDS)}",
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
        for name, (direction, position) in names.items():
            lines.append(f"#define BITTTS_MODEL_{graph.upper()}_{direction.upper()}_"
                         f"{name.upper()} {position}")
    lines += ["", "/* Shapes (frames and samples). */",
              f"#define BITTTS_MODEL_SAMPLE_RATE {sample_rate}",
              f"#define BITTTS_MODEL_SPEAKERS {speakers}",
              f"#define BITTTS_MODEL_NUM_SYMBOLS {num_symbols}"]
    for name in ("max_tokens", "encoder_channels", "n_mels", "chunk_frames", "left_context",
                 "right_context", "hop_length", "max_frames_per_token", "max_frames_per_segment"):
        lines.append(f"#define BITTTS_MODEL_{name.upper()} {shapes[name]}")
    lines += [f"#define BITTTS_MODEL_WINDOW_FRAMES {window}",
              f"#define BITTTS_MODEL_CHUNK_SAMPLES {shapes['chunk_frames'] * shapes['hop_length']}",
              "", "/* static const bittts_stream_config config = BITTTS_MODEL_STREAM_CONFIG; */",
              "#define BITTTS_MODEL_STREAM_CONFIG { \\", config + " \\", "}", "",
              "/* A phrase: the phoneme ids of its segments one after another; run each",
              " * segment through the text graph on its own. */",
              "typedef struct {", "  const char *text;", "  const int32_t *ids;",
              "  const uint16_t *segment_lengths;", "  uint16_t num_segments;",
              "} bittts_model_phrase;", "",
              f"#define BITTTS_MODEL_NUM_PHRASES {len(phrases)}"]
    if phrases:
        lines.append("extern const bittts_model_phrase bittts_model_phrases"
                     "[BITTTS_MODEL_NUM_PHRASES];")
    lines += ["", "#ifdef __cplusplus", "}", "#endif", "", "#endif /* BITTTS_MODEL_DATA_H_ */", ""]
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
            if name in firmware_spec.TFLM_METHODS:
                if name not in seen:
                    methods.append(firmware_spec.TFLM_METHODS[name])
            else:
                missing.append(f"{name} ({graph}.tflite)")
            seen.add(name)
        for name in customs:
            if name in TFLM_CUSTOM_METHODS:
                if name not in seen:
                    methods.append(TFLM_CUSTOM_METHODS[name])
            elif name != spec.OP_NAME:
                missing.append(f"custom {name} ({graph}.tflite)")
            seen.add(name)
    custom = any(spec.OP_NAME in customs for _, customs in ops.values())
    count = len(methods) + int(custom)
    listing = "\n".join(f"//   {graph}.tflite: {' '.join(builtins + customs)}"
                        for graph, (builtins, customs) in ops.items())
    body = [f"  if (resolver.{method}() != kTfLiteOk) return kTfLiteError;" for method in methods]
    body.append(f"  return resolver.AddCustom(BITTTS_OP_NAME, Register_BitTTSTernaryDecode());"
                if custom else "  return kTfLiteOk;")
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


def generate(model_dir: str, out_dir: str, phrases: list[str], variant: str = "packed",
             allow_missing_ops: bool = False) -> dict:
    from bittts_tf import fileio
    from bittts_tf.runtime import model_folder

    try:
        shapes, num_symbols, speakers, sample_rate, graphs, segments = load_inputs(
            model_dir, variant, phrases)
    except model_folder.ModelFolderError as e:
        raise FirmwareError(str(e)) from None
    if shapes["max_tokens"] > 0xFFFF:
        raise FirmwareError(f"{model_dir}: max_tokens {shapes['max_tokens']} does not fit the "
                            "uint16 segment lengths of the phrase table")
    expected = expected_tensors(shapes)
    indices = {graph: tensor_indices(model, graph, expected[graph], path)
               for graph, (path, _, model) in graphs.items()}
    ops = {graph: tflite_file.graph_ops(model) for graph, (_, _, model) in graphs.items()}
    resolver, missing = resolver_header(model_dir, graphs, ops)
    if missing and not allow_missing_ops:
        raise FirmwareError(f"{model_dir}: TFLite Micro has no kernel for {', '.join(missing)}; "
                            "re-export without it, or pass --allow_missing_ops")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FirmwareError(f"--out_dir {out_dir}: exists and is not a directory")
    files = {
        DATA_HEADER: data_header(model_dir, shapes, num_symbols, speakers, sample_rate, graphs,
                                 indices, phrases, segments),
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
            "ops": ops, "missing_ops": missing, "phrase_segments": [len(s) for s in segments]}


def main(argv):
    del argv
    try:
        summary = generate(FLAGS.model_dir, FLAGS.out_dir, FLAGS.phrase, FLAGS.variant,
                           FLAGS.allow_missing_ops)
    except FirmwareError as e:
        sys.exit(f"firmware: {e}")
    for graph, size in summary["graph_bytes"].items():
        builtins, customs = summary["ops"][graph]
        print(f"{graph:7s} {size:9,d} bytes, {len(builtins)} builtin ops + {', '.join(customs)}")
    for op in summary["missing_ops"]:
        print(f"warning: TFLite Micro has no kernel for {op}")
    print(f"{len(summary['phrase_segments'])} phrase(s), segments: {summary['phrase_segments']}")
    print(f"wrote {', '.join(summary['files'])} to {os.path.abspath(FLAGS.out_dir)}")


if __name__ == "__main__":
    cli.run(main)
