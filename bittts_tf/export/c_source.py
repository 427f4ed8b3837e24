"""C source text for the generated model files (tools/firmware.py, both
targets): literals, initializers, and the parts of bittts_model_data.h the
TFLite Micro and the engine targets share (the stream's config record, the
phrase table)."""

from __future__ import annotations

import numpy as np

from bittts_tf.runtime import stream_spec
from bittts_tf.runtime.stream import StreamShapes


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


def c_float(value: float) -> str:
    """A float32 as a C literal: its shortest decimal, which reads back to it."""
    return str(np.float32(value)) + "f"


def table(values, indent: str = "    ") -> str:
    """A brace initializer, 12 values a line ({0} when empty: C has no {})."""
    rows = [", ".join(str(v) for v in values[i:i + 12]) for i in range(0, len(values), 12)]
    return "{" + f", \\\n{indent}".join(rows) + "}" if rows else "{0}"


def config_and_phrase_lines(shapes: dict, stream: StreamShapes, num_symbols: int,
                            phrases: list[str], segment_note: str,
                            sample_rate: float | None = None) -> list[str]:
    """The header's BITTTS_MODEL_STREAM_CONFIG initializer, the phrase
    record and table declaration, and the header's closing lines."""
    values = stream_spec.config_values(shapes, num_symbols, sample_rate)
    config = [f"    {values[name]} /* {name} */" for name, _ in stream_spec.CONFIG_FIELDS]
    config += [f"    {table(values[name][:len(stream.states)], '     ')} /* {name} */"
               for name, _ in stream_spec.CONFIG_ARRAYS]
    config += [f"    {c_float(values[name])} /* {name} */"
               for name, _ in stream_spec.CONFIG_SOURCE_FIELDS]
    lines = ["/* static const bittts_stream_config config = BITTTS_MODEL_STREAM_CONFIG; */",
             "#define BITTTS_MODEL_STREAM_CONFIG { \\", ", \\\n".join(config) + " \\", "}", "",
             "/* A phrase: the phoneme ids of its segments one after another; " + segment_note + " */",
             "typedef struct {", "  const char *text;", "  const int32_t *ids;",
             "  const uint16_t *segment_lengths;", "  uint16_t num_segments;",
             "} bittts_model_phrase;", "",
             f"#define BITTTS_MODEL_NUM_PHRASES {len(phrases)}"]
    if phrases:
        lines.append("extern const bittts_model_phrase bittts_model_phrases"
                     "[BITTTS_MODEL_NUM_PHRASES];")
    return lines + ["", "#ifdef __cplusplus", "}", "#endif", "", "#endif /* BITTTS_MODEL_DATA_H_ */", ""]
