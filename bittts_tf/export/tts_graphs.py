"""A trained TTS -> two TFLite graphs with fixed shapes, the ones a
microcontroller runs:

- the *text* graph: phoneme ids padded to `max_tokens`, their count (and the
  speaker) -> encoder states with the pitch and energy embeddings added, and
  the predicted log-durations;
- the *frames* graph, a stream (`streaming.frames_stream_function`): each
  invoke takes `step` length-regulated encoder frames, their mask and every
  conv's state, and returns the spectral head's output (log-magnitudes and
  phases) and the mel of frames `delay` behind, with the new states; the
  acoustic decoder and the vocoder share it. The inverse STFT runs after it,
  outside the graph (firmware_stub/bittts_istft.c).

Length regulation happens between the two, outside the graphs (numpy in
bittts_tf.runtime, C in the firmware).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from bittts_tf.export import converter as converter_lib
from bittts_tf.export import conversion_report, fused_conv, int8_scales, packer, streaming
from bittts_tf.litert import tflite_file
from bittts_tf.models.frame_vocoder import FrameVocoder
from bittts_tf.models import variance
from bittts_tf.quant import layers as qlayers
from bittts_tf.text.segment import MIN_TOKENS

TEXT_GRAPH = "text"
FRAMES_GRAPH = "frames"


class ExportError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class GraphShapes:
    max_tokens: int
    stream: streaming.StreamShapes
    hop_length: int


def graph_shapes(acoustic, vocoder, max_tokens: int, step: int) -> GraphShapes:
    if max_tokens < MIN_TOKENS:
        raise ExportError(f"max_tokens={max_tokens}: a text graph needs room for a word and two "
                          f"pauses ({MIN_TOKENS})")
    if not isinstance(vocoder, FrameVocoder):
        raise ExportError(f"the frames graph needs the frame-rate vocoder; {type(vocoder).__name__} "
                          "runs at the sample rate and is not exported")
    try:
        stream = streaming.stream_shapes(acoustic, vocoder, step)
    except streaming.StreamingError as error:
        raise ExportError(str(error)) from None
    return GraphShapes(max_tokens, stream, vocoder.config["hop_length"])


class _LayerGroup(keras.layers.Layer):
    """The layers one graph uses: the converter packs exactly their ternary kernels."""

    def __init__(self, layers, **kwargs):
        super().__init__(**kwargs)
        self.members = list(layers)


def text_function(acoustic, shapes: GraphShapes):
    multi_speaker = acoustic.speaker_embedding is not None
    signature = [tf.TensorSpec([1, shapes.max_tokens], tf.int32, name="phonemes"),
                 tf.TensorSpec([1], tf.int32, name="length")]
    if multi_speaker:
        signature.append(tf.TensorSpec([1], tf.int32, name="speaker"))

    @tf.function(input_signature=signature)
    def text(phonemes, length, speaker=None):
        hidden, text_weights = acoustic.encode(phonemes, length, speaker)
        hidden, predictions = acoustic.variance_adaptor(hidden, text_weights)
        return {"hidden": hidden, "log_duration": predictions["log_duration"]}

    layers = [acoustic.phone_embedding, acoustic.encoder, acoustic.variance_adaptor]
    if multi_speaker:
        layers.append(acoustic.speaker_embedding)
    return text, _LayerGroup(layers)


FRAMES_LAYERS = ("decoder_input", "decoder", "mel_projection")


def frames_function(acoustic, vocoder, shapes: GraphShapes):
    function, _ = streaming.frames_stream_function(acoustic, vocoder, shapes.stream.step)
    layers = [getattr(acoustic, name) for name in FRAMES_LAYERS] + [vocoder]
    if vocoder.takes_f0:
        # Its layers, not the model: the converter saves the group as a
        # SavedModel, which traces each model's call on its first input
        # alone, and a source-phase vocoder refuses a call without F0 (the
        # converter then silently dropped the graph's signature).
        layers[-1:] = [layer for layer in (vocoder.conv_in, vocoder.f0_input, vocoder.norm_in,
                                           *vocoder.blocks, vocoder.norm_out, vocoder.head,
                                           acoustic.f0_projection) if layer is not None]
    return function, _LayerGroup(layers)


def _frozen(function, trackable):
    """The concrete function with its variables as constants: the quantized
    kernels as float constants, which the packer replaces; resource variables
    would keep them float and live."""
    with converter_lib.kernels_as_keras_computes_them(trackable):
        return convert_variables_to_constants_v2(function.get_concrete_function())


def convert_function(function, trackable) -> bytes:
    """Plain TFLite conversion of a tf.function with a fixed signature."""
    with converter_lib.captured_output():
        frozen = _frozen(function, trackable)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], trackable)
        return bytes(converter.convert())


@dataclasses.dataclass
class ConvertedGraph:
    name: str
    packed: bytes             # ternary kernels packed, BitTTSTernaryDecode in the graph
    folded: bytes             # the same weights as float32 constants (the speed baseline)
    float32: bytes            # the float32 architecture, weights unquantized (the size baseline)
    tensors: list             # conversion_report.TensorReport rows of the packed graph
    shipped: bytes = b""      # what the model folder holds, when not `packed` (int8: fused)

    @property
    def file(self) -> bytes:
        return self.shipped or self.packed


def convert_graph(name: str, make_function, float32_baseline: bool = True) -> ConvertedGraph:
    """`make_function()` -> (tf.function, layer group); called twice, since a
    traced function keeps the weights it was traced with."""
    function, layers = make_function()
    folded = convert_function(function, layers)
    if _has_packed_kernels(layers):
        packed, reports = packer.pack_ternary_weights(layers, folded)
        reports = reports + conversion_report.float_tensor_reports(packed)
    else:
        packed, reports = folded, conversion_report.float_tensor_reports(folded)
    baseline = b""
    if float32_baseline:
        with _float_weights(layers):
            baseline = convert_function(*make_function())
    return ConvertedGraph(name, packed, folded, baseline, reports)


def _has_packed_kernels(layers) -> bool:
    """Whether the packer has kernels to pack: ternary, or 4-bit (INT4)."""
    return any(getattr(layer, "is_ternary", False) or layer.weight_bits == 4
               for layer in qlayers.quantized_layers(layers))


class _float_weights:
    """Within the block, every QAT layer of `layers` runs with float weights
    (the float32 conversion of the same architecture)."""

    def __init__(self, layers):
        self.layers = qlayers.quantized_layers(layers)

    def __enter__(self):
        self.saved = [layer.weight_bits for layer in self.layers]
        for layer in self.layers:
            layer.weight_bits = 32
        return self

    def __exit__(self, *exc):
        for layer, bits in zip(self.layers, self.saved):
            layer.weight_bits = bits
        return False


def export_graphs(acoustic, vocoder, shapes: GraphShapes,
                  float32_baseline: bool = True) -> dict[str, ConvertedGraph]:
    """Both graphs; `float32_baseline=False` skips the float32 conversions
    that only the size report needs."""
    return {TEXT_GRAPH: convert_graph(TEXT_GRAPH, lambda: text_function(acoustic, shapes),
                                      float32_baseline),
            FRAMES_GRAPH: convert_graph(FRAMES_GRAPH,
                                        lambda: frames_function(acoustic, vocoder, shapes),
                                        float32_baseline)}


def size_summary(graph: ConvertedGraph) -> dict:
    ternary = [t for t in graph.tensors if t.format == "ternary-indexed"]
    weights = sum(t.weights for t in ternary)
    stored = sum(t.stored_bytes for t in ternary)
    return {"bytes": len(graph.file), "float32_bytes": len(graph.float32) or None,
            "ratio_vs_float32": (round(len(graph.file) / len(graph.float32), 4)
                                 if graph.float32 else None),
            "ternary_tensors": len(ternary), "ternary_weights": weights,
            "ternary_stored_bytes": stored,
            "bits_per_ternary_weight": round(8.0 * stored / weights, 4) if weights else None,
            "int4_weights": sum(t.weights for t in graph.tensors if t.format == "int4"),
            "float32_weights": sum(t.weights for t in graph.tensors if t.format == "float32"),
            "int8_weights": sum(t.weights for t in graph.tensors if t.format == "int8")}



# The caps of length regulation, written into the manifest (their one home is
# the acoustic model's variance module, whose Keras inference applies them too).
MAX_FRAMES_PER_TOKEN = variance.MAX_FRAMES_PER_TOKEN
MAX_FRAMES_PER_SEGMENT = variance.MAX_FRAMES_PER_SEGMENT


def _source_phase(model_config, shapes: GraphShapes) -> dict:
    """{"source_phase": ...} for a source-phase vocoder (what the runtime's
    inverse STFT needs besides the graph's frame F0), else nothing."""
    if not shapes.stream.frame_f0:
        return {}
    a = model_config.acoustic
    return {"source_phase": {"cutoff": float(model_config.vocoder.source_phase_cutoff),
                             "log_f0_mean": float(a.log_f0_mean),
                             "log_f0_std": float(a.log_f0_std)}}


def manifest(model_config, front_end, shapes: GraphShapes, graphs: dict[str, bytes],
             source: dict) -> dict:
    from bittts_tf.runtime import model_folder
    return {
        "format": model_folder.FORMAT_NAME,
        "format_version": model_folder.FORMAT_VERSION,
        "audio": model_config.audio.to_dict(),
        "front_end": front_end.to_dict(),
        "speakers": int(model_config.acoustic.n_speakers),
        "shapes": {"max_tokens": shapes.max_tokens, "hop_length": shapes.hop_length,
                   "encoder_channels": int(model_config.acoustic.encoder_channels),
                   "n_mels": int(model_config.audio.n_mels),
                   "max_frames_per_token": MAX_FRAMES_PER_TOKEN,
                   "max_frames_per_segment": MAX_FRAMES_PER_SEGMENT,
                   "n_fft": int(model_config.vocoder.n_fft),
                   "stream": shapes.stream.to_dict(),
                   **_source_phase(model_config, shapes)},
        "graphs": {key: {"file": key + ".tflite", "bytes": len(data),
                         "sha256": model_folder.sha256(data)} for key, data in graphs.items()},
        "model_config": model_config.to_dict(),
        "source": source,
    }


def size_report(converted: dict[str, ConvertedGraph], files: dict[str, bytes],
                int8: dict[str, ConvertedGraph] | None = None) -> dict:
    per_graph = {name: size_summary(graph) for name, graph in converted.items()}
    ternary_weights = sum(g["ternary_weights"] for g in per_graph.values())
    ternary_bytes = sum(g["ternary_stored_bytes"] for g in per_graph.values())
    packed = sum(len(g.packed) for g in converted.values())
    float32 = sum(len(g.float32) for g in converted.values())
    report = {"graphs": per_graph,
              "total": {"packed_graph_bytes": packed, "float32_graph_bytes": float32 or None,
                        "ratio_vs_float32": round(packed / float32, 4) if float32 else None,
                        "model_folder_graph_bytes": sum(len(d) for d in files.values()),
                        "ternary_weights": ternary_weights, "ternary_stored_bytes": ternary_bytes,
                        "bits_per_ternary_weight": (round(8.0 * ternary_bytes / ternary_weights, 4)
                                                    if ternary_weights else None)}}
    if int8:
        report["int8"] = int8_size_report(int8, converted)
    return report


def export_model_folder(out_dir: str, acoustic, vocoder, model_config, front_end,
                        max_tokens: int, step: int, source: dict,
                        float32_baseline: bool = True, with_float32: bool = False,
                        int8_utterances: list[dict] | None = None) -> dict:
    """Converts both graphs and writes the model folder; returns the size report.

    `with_float32` also writes the "float32" variant (the same weights as
    float constants, 5-8x larger): for benchmarks, not for shipping.
    `int8_utterances` (feature-cache dicts, see `calibration_inputs`) adds
    the "int8" variant calibrated on them."""
    from bittts_tf.runtime import model_folder
    shapes = graph_shapes(acoustic, vocoder, max_tokens, step)
    converted = export_graphs(acoustic, vocoder, shapes, float32_baseline)
    graphs = {model_folder.graph_key(name, "packed"): graph.packed
              for name, graph in converted.items()}
    if with_float32:
        graphs.update({model_folder.graph_key(name, "float32"): graph.folded
                       for name, graph in converted.items()})
    int8 = None
    if int8_utterances is not None:
        int8 = export_int8_graphs(acoustic, vocoder, shapes, int8_utterances)
        graphs.update({model_folder.graph_key(name, "int8"): graph.file
                       for name, graph in int8.items()})
    files = {key + ".tflite": data for key, data in graphs.items()}
    report = size_report(converted, files, int8)
    model_folder.write(out_dir, manifest(model_config, front_end, shapes, graphs, source), files,
                       {model_folder.SIZE_REPORT: report})
    return report


# --- Integer graphs ---------------------------------------------------------

def _windows(stream: np.ndarray, size: int, count: int, rng) -> list[np.ndarray]:
    """`count` windows of `size` rows at random places of `stream` (tiled
    when shorter than one window)."""
    if len(stream) < size:
        stream = np.concatenate([stream] * -(-size // len(stream)))
    starts = rng.integers(0, len(stream) - size + 1, count)
    return [stream[start:start + size] for start in starts]


def calibration_inputs(acoustic, utterances: list[dict], shapes: GraphShapes,
                       windows_per_utterance: int = 4, seed: int = 0) -> dict[str, list]:
    """What the int8 converter calibrates activation ranges on, from corpus
    utterances (feature-cache dicts with "phonemes", optionally "speaker" and
    "durations"): text-graph inputs (windows of the utterances' phonemes run
    together, every position a real token: a padded position is masked, so
    the real ones never read it, but it would set the ranges) and, under
    "regulated", the utterances' regulated frames run together, through
    which the frames graph's stream is calibrated (`streaming.calibration_inputs`)."""
    if not utterances:
        raise ExportError("int8 calibration needs at least one utterance")
    rng = np.random.default_rng(seed)
    multi_speaker = acoustic.speaker_embedding is not None
    tokens, token_speakers, regulated = [], [], []
    for utterance in utterances:
        ids = np.asarray(utterance["phonemes"], np.int32)[:shapes.max_tokens]
        n = len(ids)
        speaker = int(utterance.get("speaker", 0))
        padded = np.zeros((1, shapes.max_tokens), np.int32)
        padded[0, :n] = ids
        hidden, weights = acoustic.encode(padded, np.asarray([n], np.int32),
                                          np.asarray([speaker], np.int32) if multi_speaker else None)
        hidden, predictions = acoustic.variance_adaptor(hidden, weights)
        hidden = np.asarray(hidden[0, :n])
        if "durations" in utterance and len(utterance["durations"]) >= n:
            durations = np.asarray(utterance["durations"][:n], np.int64)
        else:
            durations = np.maximum(np.round(np.exp(np.asarray(predictions["log_duration"][0, :n]))
                                            - 1.0), 1).astype(np.int64)
        tokens.append(ids)
        token_speakers.append(np.full(n, speaker, np.int32))
        regulated.append(hidden[np.repeat(np.arange(n), durations)])
    stream = np.stack([np.concatenate(tokens), np.concatenate(token_speakers)], axis=1)
    text = []
    for window in _windows(stream, shapes.max_tokens, len(utterances), rng):
        sample = {"phonemes": window[None, :, 0].copy(),
                  "length": np.asarray([shapes.max_tokens], np.int32)}
        if multi_speaker:
            sample["speaker"] = window[:1, 1].copy()
        text.append(sample)
    return {TEXT_GRAPH: text, "regulated": np.concatenate(regulated),
            "frames_steps": windows_per_utterance * len(utterances)}


def convert_int8_function(function, trackable, samples: list, integer_io: bool = False) -> bytes:
    """Integer conversion: int8 activations calibrated on `samples`, int8
    weights (per output channel), int32 biases; `integer_io`: int8 inputs and
    outputs too (no QUANTIZE / DEQUANTIZE at the edges). Output scales
    calibrated below one accumulator step are raised to it (`int8_scales`:
    LiteRT's default delegate refuses them), each SUB's scales are tied
    by powers of two and each MUL's output scale moved to one whose multiplier
    both precisions derive alike (so TFLite Micro and LiteRT requantize them
    alike)."""
    frozen = _frozen(function, trackable)
    with converter_lib.captured_output():
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], trackable)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]
        if integer_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        model = bytes(converter.convert())
    model = int8_scales.floor_output_scales(model)[0]
    model = int8_scales.tie_sub_scales(model)[0]
    return int8_scales.tie_mul_scales(model)[0]


def export_int8_graphs(acoustic, vocoder, shapes: GraphShapes, utterances: list[dict],
                       graphs: tuple[str, ...] = (TEXT_GRAPH, FRAMES_GRAPH)
                       ) -> dict[str, ConvertedGraph]:
    """The `graphs` as integer models calibrated on `utterances`: `packed` with
    the ternary kernels packed (int8 codes decoded by BitTTSTernaryDecode,
    one scale a kernel: `int8_scales.collapse_equal_channel_scales`),
    `folded` as the TFLite converter made it; no float32 baseline. The frames
    graph's calibration runs the text path in Keras whichever are asked for."""
    unknown = set(graphs) - {TEXT_GRAPH, FRAMES_GRAPH}
    if unknown:
        raise ValueError(f"unknown graphs {sorted(unknown)}: {TEXT_GRAPH!r}, {FRAMES_GRAPH!r}")
    samples = calibration_inputs(acoustic, utterances, shapes)
    function, _ = frames_function(acoustic, vocoder, shapes)
    samples[FRAMES_GRAPH] = streaming.calibration_inputs(
        function, shapes.stream, samples["regulated"], samples["frames_steps"])
    out = {}
    for name, make in ((TEXT_GRAPH, lambda: text_function(acoustic, shapes)),
                       (FRAMES_GRAPH, lambda: frames_function(acoustic, vocoder, shapes))):
        if name not in graphs:
            continue
        function, layers = make()
        # The stream is int8 from its inputs to its outputs: the states leave
        # and come back as int8 codes, unchanged.
        model = convert_int8_function(function, layers, samples[name],
                                      integer_io=name == FRAMES_GRAPH)
        packed, reports = model, []
        if _has_packed_kernels(layers):
            packed, reports = packer.pack_int8_ternary_weights(layers, model)
            packed = int8_scales.collapse_equal_channel_scales(packed)[0]
        out[name] = ConvertedGraph(name, packed, model, b"",
                                   reports + conversion_report.int8_tensor_reports(packed),
                                   microcontroller_form(packed, name))
    return out


def microcontroller_form(packed: bytes, name: str) -> bytes:
    """The int8 graph as the model folder ships it: every decode -> CONV_2D
    pair fused into one BitTTSTernaryConv, which reads the packed bytes
    itself, and the tensor names dropped but the graph's inputs' and
    outputs'. On the shipped voice the fusion took the TFLite Micro arena
    from 174,896 to 101,184 bytes (no decoded kernel in it) and the names
    were 29 KB of flash. A desktop runtime turns the fused ops back into
    CONV_2D with constant filters at load (`runtime.decode_at_load`), the
    same graph as decoding the packed one."""
    return tflite_file.strip_tensor_names(fused_conv.fuse_ternary_convs(packed, name).tflite, name)


def int8_size_report(int8: dict[str, ConvertedGraph],
                     converted: dict[str, ConvertedGraph]) -> dict:
    """Sizes of the integer graphs next to the float graphs with packed
    ternary weights (`converted`) and their float32 baselines."""
    per_graph = {}
    for name, graph in int8.items():
        summary = size_summary(graph)
        packed, float32 = len(converted[name].packed), len(converted[name].float32)
        summary.update({"packed_float_bytes": packed,
                        "ratio_vs_packed_float": round(len(graph.file) / packed, 4),
                        "float32_bytes": float32 or None,
                        "ratio_vs_float32": round(len(graph.file) / float32, 4) if float32 else None})
        per_graph[name] = summary
    total = sum(len(g.file) for g in int8.values())
    packed = sum(len(converted[name].packed) for name in int8)
    float32 = sum(len(converted[name].float32) for name in int8)
    weights = sum(g["ternary_weights"] for g in per_graph.values())
    stored = sum(g["ternary_stored_bytes"] for g in per_graph.values())
    return {"graphs": per_graph,
            "total": {"int8_graph_bytes": total, "packed_float_graph_bytes": packed,
                      "ratio_vs_packed_float": round(total / packed, 4),
                      "float32_graph_bytes": float32 or None,
                      "ratio_vs_float32": round(total / float32, 4) if float32 else None,
                      "ternary_weights": weights, "ternary_stored_bytes": stored,
                      "bits_per_ternary_weight": round(8.0 * stored / weights, 4) if weights else None}}
