"""Ternary (1.58-bit) QAT for tf-keras models through TensorFlow Model Optimization.

For users who train with `tf-keras` and quantize with TFMOT: annotate layers
with the ternary `QuantizeConfig`s, `quantize_apply`, `fit`, then convert to a
.tflite whose ternary kernels are packed 5 weights per byte and decoded by
BitTTSTernaryDecode (`convert`)::

    import tf_keras
    from bittts_tf import tfmot as ternary   # first, in a process of its own

    model = tf_keras.Sequential([
        tf_keras.Input((49, 40, 1)),
        ternary.annotate(tf_keras.layers.Conv2D(64, 3, activation="relu")),
        tf_keras.layers.GlobalAveragePooling2D(),
        ternary.annotate(tf_keras.layers.Dense(12)),
    ])
    model = ternary.quantize_apply(model)      # activations stay float
    model.compile(...); model.fit(...)
    result = ternary.convert(model)            # .tflite bytes and size report

`annotate(layer, activations="8bit")` with `quantize_apply(model,
activations="8bit")` adds TFMOT's default 8-bit activation quantization.

TFMOT works only with tf-keras, and importing it switches the whole process
to legacy Keras (TF_USE_LEGACY_KERAS=1). So this package is never imported by
the rest of bittts_tf, and it refuses to load in a process where tf.keras is
already Keras 3 or that has built Keras 3 objects: import it first, in a
process of its own.
"""

import os
import sys

# Before TensorFlow is first imported, so that tf.keras means tf-keras in this
# process (TFMOT sets the same variable, but only after importing TensorFlow).
os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as _tf  # noqa: E402


def keras3_objects_built() -> list[str]:
    """The generated names Keras 3 has handed out in this process (layers,
    models, symbolic tensors): non-empty once a Keras 3 model was built.
    TFMOT imports Keras 3 modules but builds nothing with them."""
    state = sys.modules.get("keras.src.backend.common.global_state")
    if state is None:
        return []
    # Keras keeps the counters behind its naming (keras.src.utils.naming) here.
    uids = state.get_global_attribute("object_name_uids") or {}
    return sorted(name for name, count in uids.items() if count)


def _require_legacy_keras():
    version = getattr(_tf.keras, "version", None)
    if callable(version) and str(version()).startswith("3."):
        raise ImportError("bittts_tf.tfmot: tf.keras is already Keras 3 in this process; import "
                          "bittts_tf.tfmot first, in a process that builds no Keras 3 model")
    built = keras3_objects_built()
    if built:
        raise ImportError(f"bittts_tf.tfmot: this process has built Keras 3 objects "
                          f"({', '.join(built[:3])}); TFMOT needs a process of its own")


_require_legacy_keras()

from bittts_tf.tfmot.configs import (  # noqa: E402
    ACTIVATION_MODES, TernaryConv1DQuantizeConfig, TernaryConv2DQuantizeConfig,
    TernaryDenseQuantizeConfig, TernaryDepthwiseConv2DQuantizeConfig, TernaryQuantizeConfig,
    annotate, config_for)
from bittts_tf.tfmot.export import (  # noqa: E402
    ModelFileError, TernaryKernel, compare_litert, convert, load_model, ternary_kernels)
from bittts_tf.tfmot.quantizer import TernaryWeightQuantizer  # noqa: E402
from bittts_tf.tfmot.scheme import (  # noqa: E402
    FloatActivationScheme, quantize_apply, quantize_scope)

__all__ = [
    "ACTIVATION_MODES", "FloatActivationScheme", "ModelFileError", "TernaryConv1DQuantizeConfig",
    "TernaryConv2DQuantizeConfig", "TernaryDenseQuantizeConfig",
    "TernaryDepthwiseConv2DQuantizeConfig", "TernaryKernel", "TernaryQuantizeConfig",
    "TernaryWeightQuantizer", "annotate", "compare_litert", "config_for", "convert", "load_model",
    "keras3_objects_built", "quantize_apply", "quantize_scope", "ternary_kernels",
]
