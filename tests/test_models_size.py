"""Size accounting against hand-computed figures."""

import math

import keras

from bittts_tf.models import build, configs, size
from bittts_tf.quant import QuantConv1D


def test_bytes_of_a_hand_built_model():
    inputs = keras.Input((None, 7))
    x = QuantConv1D(3, 5, weight_bits=1.58, name="ternary")(inputs)
    x = QuantConv1D(4, 2, weight_bits=4, name="four_bit")(x)
    x = QuantConv1D(2, 1, weight_bits=32, name="float")(x)
    model = keras.Model(inputs, x)
    r = size.size_report(model)
    assert r.params == (5 * 7 * 3 + 3) + (2 * 3 * 4 + 4) + (1 * 4 * 2 + 2)
    assert r.conv_params == 105 + 24 + 8
    assert r.quantized_params == 105 + 24
    assert r.float32_bytes == 4 * r.params
    ternary = math.ceil(105 / 5) + 4 + 3 * 4
    four_bit = 24 * 4 // 8 + 4 + 4 * 4
    floats = 4 * (8 + 2)
    assert r.deployed_bytes == ternary + four_bit + floats


def conv_weights_from_config(config):
    a, v, mels = config.acoustic, config.vocoder, config.audio.n_mels
    c, m, att = a.encoder_channels, a.attention_hidden_multiplier, a.attention_channels

    def predictor(ch, layers, k):
        return k * c * ch + (layers - 1) * k * ch * ch

    acoustic = (a.encoder_blocks * a.encoder_kernel * c * c
                + predictor(a.duration_channels, a.duration_layers, a.duration_kernel)
                + predictor(a.pitch_channels, a.pitch_layers, a.pitch_kernel)
                + predictor(a.energy_channels, a.energy_layers, a.energy_kernel)
                + 2 * a.variance_embedding_kernel * c
                + c * a.decoder_channels
                + a.decoder_blocks * a.decoder_kernel * a.decoder_channels ** 2)
    aligner = (a.attention_key_kernel * c * c * m + c * m * att
               + a.attention_query_kernel * mels * mels * m + mels * m * att + att * att)
    ch = v.initial_channel
    vocoder = 7 * mels * ch
    for rate_kernel in v.upsample_kernels:
        vocoder += rate_kernel * ch * (ch // 2)
        ch //= 2
        per_dilation = 2 if v.resblock_type == 1 else 1
        vocoder += sum(k * ch * ch * len(d) * per_dilation
                       for k, d in zip(v.resblock_kernels, v.resblock_dilations))
    vocoder += 7 * ch
    return acoustic, aligner, vocoder


def test_paper_config_conv_weights_and_sizes():
    config = configs.preset("paper", quantize="all")
    acoustic, generator = build.build_acoustic(config), build.build_generator(config)
    want_acoustic, want_aligner, want_vocoder = conv_weights_from_config(config)
    inference = size.size_report(acoustic, ("acoustic/aligner",))
    aligner = size.size_report(acoustic.aligner)
    vocoder = size.size_report(generator)
    assert inference.conv_params == want_acoustic
    assert aligner.conv_params == want_aligner
    assert vocoder.conv_params == want_vocoder
    # Only the final waveform conv (kernel 7, 128 / 2**4 input channels) stays float.
    assert vocoder.quantized_params == want_vocoder - 7 * 8
    total = inference + aligner + vocoder
    assert total.params == acoustic.count_params() + generator.count_params()
    print(f"paper: {total.params:,d} params, {total.conv_params:,d} conv weights, "
          f"{total.float32_bytes / 1e6:.2f} MB float32, {total.deployed_bytes / 1e6:.2f} MB ternary")
    # Ternary-indexed storage is 1.6/32 of float for the kernels plus the float rest.
    float_rest = total.float32_bytes - 4 * total.quantized_params
    assert total.deployed_bytes >= float_rest + total.quantized_params * 1.6 / 8
    assert total.deployed_bytes <= float_rest + total.quantized_params * 1.6 / 8 + 5 * 200
