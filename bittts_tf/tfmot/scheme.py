"""`quantize_apply` for ternary annotations, with float or 8-bit activations.

TFMOT's default scheme quantizes more than the annotated layers: it puts an
8-bit QuantizeLayer on the model inputs and quantizes the outputs of the
layers feeding annotated ones. `FloatActivationScheme` does neither, so a
model annotated with `activations="float"` keeps every activation float and
its .tflite matches tf-keras to float rounding.
"""

from __future__ import annotations

import tf_keras
import tensorflow_model_optimization as tfmot
# Not in TFMOT's public API; the version is pinned (requirements.lock).
from tensorflow_model_optimization.python.core.quantization.keras.quantize_annotate import (
    QuantizeAnnotate)

from bittts_tf.tfmot import configs
from bittts_tf.tfmot.quantizer import TernaryWeightQuantizer

_keras_api = tfmot.quantization.keras


class _UnchangedLayout(_keras_api.QuantizeLayoutTransform):
    """No layout rewrites: with float activations there is nothing to fuse
    for an integer backend (and folding a BatchNormalization into a ternary
    kernel would make it non-ternary anyway)."""

    def apply(self, model, layer_quantize_map):
        return model, layer_quantize_map


class _AnnotatedOnlyRegistry(_keras_api.QuantizeRegistry):
    """Quantizes exactly the annotated layers, with their own configs."""

    def get_quantize_config(self, layer):
        return None

    def supports(self, layer):
        return False


class FloatActivationScheme(_keras_api.QuantizeScheme):
    """Only the annotated layers' weights are quantized; activations stay float."""

    def get_layout_transformer(self):
        return _UnchangedLayout()

    def get_quantize_registry(self):
        return _AnnotatedOnlyRegistry()


_OBJECTS = {
    "TernaryWeightQuantizer": TernaryWeightQuantizer,
    "TernaryQuantizeConfig": configs.TernaryQuantizeConfig,
    "TernaryConv1DQuantizeConfig": configs.TernaryConv1DQuantizeConfig,
    "TernaryConv2DQuantizeConfig": configs.TernaryConv2DQuantizeConfig,
    "TernaryDepthwiseConv2DQuantizeConfig": configs.TernaryDepthwiseConv2DQuantizeConfig,
    "TernaryDenseQuantizeConfig": configs.TernaryDenseQuantizeConfig,
}


def quantize_scope(*custom_objects):
    """TFMOT's `quantize_scope` with the ternary objects in it (they are also
    registered as "bittts_tf>Name", which is how `get_config` names them)."""
    return _keras_api.quantize_scope(*custom_objects, _OBJECTS)


def _annotations(model):
    return [layer for layer in model.layers if isinstance(layer, QuantizeAnnotate)]


def quantize_apply(model: tf_keras.Model, activations: str = "float") -> tf_keras.Model:
    """TFMOT's `quantize_apply` for a model annotated with the ternary configs.

    activations="float": `FloatActivationScheme`, every annotation must be a
    ternary config with activations="float". activations="8bit": TFMOT's
    default 8-bit scheme (ternary annotations must say activations="8bit";
    layers annotated with TFMOT's own configs are quantized as usual)."""
    configs.check_activations(activations)
    if not isinstance(model, tf_keras.Model):
        raise ValueError(f"model: expected a tf_keras.Model, got {type(model).__name__} (a Keras 3 "
                         f"model cannot be quantized with TFMOT)")
    for layer in _annotations(model):
        config = layer.quantize_config
        name = layer.layer.name
        if isinstance(config, configs.TernaryQuantizeConfig):
            # Here rather than in TFMOT's build, which buries the message in a trace.
            config.check_layer_type(layer.layer)
            if config.activations != activations:
                raise ValueError(f"layer {name!r}: annotated with activations="
                                 f"{config.activations!r}, but quantize_apply was asked for "
                                 f"activations={activations!r}")
        elif activations == "float":
            raise ValueError(f"layer {name!r}: annotated without a ternary config, which "
                             f"activations='float' needs for every annotated layer")
    scheme = (FloatActivationScheme() if activations == "float"
              else _keras_api.default_8bit.Default8BitQuantizeScheme())
    with quantize_scope():
        return _keras_api.quantize_apply(model, scheme)
