"""TFMOT `QuantizeConfig`s: ternary weights, activations float or 8-bit.

`activations="float"` quantizes the weights only (use it with
`bittts_tf.tfmot.quantize_apply(model)`, whose scheme adds no activation
quantizers elsewhere either). `activations="8bit"` adds TFMOT's default 8-bit
activation quantizer to the layer's activation, as its Default8Bit configs
do, for `quantize_apply(model, activations="8bit")`.
"""

from __future__ import annotations

import tf_keras
import tensorflow_model_optimization as tfmot

from bittts_tf.tfmot.quantizer import PACKAGE, TernaryWeightQuantizer

ACTIVATION_MODES = ("float", "8bit")


def default_activation_quantizer():
    """The activation quantizer of TFMOT's Default8Bit scheme."""
    return tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
        num_bits=8, per_axis=False, symmetric=False, narrow_range=False)


def check_activations(activations: str) -> str:
    if activations not in ACTIVATION_MODES:
        raise ValueError(f"activations must be one of {ACTIVATION_MODES}, got {activations!r}")
    return activations


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
class TernaryQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """Ternary weights for the weight attribute `weight_attr` of any layer;
    the subclasses fix it and check the layer type."""

    layer_types: tuple = ()  # empty: any layer that has `weight_attr`

    def __init__(self, weight_attr: str = "kernel", activations: str = "float"):
        self.weight_attr = weight_attr
        self.activations = check_activations(activations)

    def check_layer_type(self, layer):
        """Raises a ValueError naming `layer` when this config is not for its type."""
        if self.layer_types and not isinstance(layer, self.layer_types):
            expected = " or ".join(t.__name__ for t in self.layer_types)
            raise ValueError(f"layer {layer.name!r}: {type(self).__name__} quantizes {expected} "
                             f"layers, not {type(layer).__name__}")

    def _check_layer(self, layer):
        self.check_layer_type(layer)
        if getattr(layer, self.weight_attr, None) is None:
            raise ValueError(f"layer {layer.name!r}: has no weight {self.weight_attr!r} to "
                             f"make ternary")

    def get_weights_and_quantizers(self, layer):
        self._check_layer(layer)
        return [(getattr(layer, self.weight_attr), TernaryWeightQuantizer())]

    def get_activations_and_quantizers(self, layer):
        if self.activations == "float":
            return []
        return [(layer.activation, default_activation_quantizer())]

    def set_quantize_weights(self, layer, quantize_weights):
        (kernel,) = quantize_weights
        setattr(layer, self.weight_attr, kernel)

    def set_quantize_activations(self, layer, quantize_activations):
        if quantize_activations:
            (layer.activation,) = quantize_activations

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {"weight_attr": self.weight_attr, "activations": self.activations}

    def __eq__(self, other):
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((type(self), self.weight_attr, self.activations))


class _FixedLayerConfig(TernaryQuantizeConfig):
    weight_attr_of_layer = "kernel"

    def __init__(self, activations: str = "float"):
        super().__init__(self.weight_attr_of_layer, activations)

    def get_config(self):
        return {"activations": self.activations}


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
class TernaryConv1DQuantizeConfig(_FixedLayerConfig):
    """Conv1D: ternary kernel."""

    layer_types = (tf_keras.layers.Conv1D,)


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
class TernaryConv2DQuantizeConfig(_FixedLayerConfig):
    """Conv2D: ternary kernel."""

    layer_types = (tf_keras.layers.Conv2D,)


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
class TernaryDepthwiseConv2DQuantizeConfig(_FixedLayerConfig):
    """DepthwiseConv2D: ternary depthwise kernel."""

    layer_types = (tf_keras.layers.DepthwiseConv2D,)
    weight_attr_of_layer = "depthwise_kernel"


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
class TernaryDenseQuantizeConfig(_FixedLayerConfig):
    """Dense: ternary kernel."""

    layer_types = (tf_keras.layers.Dense,)


_CONFIG_OF_LAYER = (
    (tf_keras.layers.DepthwiseConv2D, TernaryDepthwiseConv2DQuantizeConfig),
    (tf_keras.layers.Conv1D, TernaryConv1DQuantizeConfig),
    (tf_keras.layers.Conv2D, TernaryConv2DQuantizeConfig),
    (tf_keras.layers.Dense, TernaryDenseQuantizeConfig),
)


def config_for(layer, activations: str = "float") -> TernaryQuantizeConfig:
    """The ternary config of a Conv1D, Conv2D, DepthwiseConv2D or Dense layer."""
    for layer_type, config in _CONFIG_OF_LAYER:
        # The exact type: subclasses such as DepthwiseConv2D (of Conv2D) have
        # other weights or ops.
        if type(layer) is layer_type:
            return config(activations)
    supported = ", ".join(t.__name__ for t, _ in _CONFIG_OF_LAYER)
    raise ValueError(f"layer {getattr(layer, 'name', layer)!r}: no ternary config for "
                     f"{type(layer).__name__} (supported: {supported}; for another layer with a "
                     f"kernel, pass TernaryQuantizeConfig(weight_attr=...) yourself)")


def annotate(layer, activations: str = "float"):
    """`quantize_annotate_layer(layer, config_for(layer, activations))`."""
    return tfmot.quantization.keras.quantize_annotate_layer(layer, config_for(layer, activations))
