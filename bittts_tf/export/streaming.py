"""The frames graph as a stream: each invoke takes `step` new regulated
frames and returns the spectral head's output of `step` earlier frames;
every conv carries its past inputs as state, so nothing is recomputed.

The stateless frames graph (`tts_graphs.frames_function`) recomputes its
context on every chunk: 71 context frames for 32 emitted, 3.2x the MACs,
277 MMAC per second of audio on the shipped voice against 86 without. Here
each "same"-padded conv of kernel K runs VALID over its last K - 1 inputs
(state) and the `step` new ones, and so emits the outputs of frames
(K - 1) / 2 behind its newest input. Delays add up along the network: the
decoder's blocks and the vocoder's convs put the head's output `delay`
frames behind the input (35 on the tiny preset). The residual of a block is
the centre of its conv's window (the block's input, already masked), and the
mask of every delay point comes from one mask history, so every layer sees
exactly what it sees in the whole utterance: zeros before the first frame
(the zero state) and after the last (the caller feeds `delay` more frames
with mask 0 to flush).

State is passed in and out of the graph as tensors (`state_00`, ...), not
held in resource variables: the int8 converter gives a concatenation's
operands and its result one scale, so a state's int8 codes leave the graph
and come back unchanged, and no runtime needs variable support.

The inverse STFT is not in the graph: the head's output (log-magnitudes and
phases) goes to one C99 implementation (firmware_stub/bittts_istft.c), so
its float tensors (five of 844 KB at a 103-frame window) leave the arena.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from bittts_tf.models.frame_vocoder import (F0_FEATURE_SCALE, F0_REFERENCE, FrameVocoder,
                                            sigmoid_gelu)
from bittts_tf.runtime.stream import StreamShapes, zero_states


class StreamingError(RuntimeError):
    pass


def _conv(layer, x):
    """A QAT conv (or a QuantDense as a 1x1 conv) on [1, 1, T, C], VALID: TFLite's
    CONV_2D layout, so the converter adds no RESHAPE around it (Conv1D on
    [B, T, C] costs two per conv: 64 of the graph's 394 ops)."""
    kernel = layer.quantized_kernel()
    if len(kernel.shape) == 2:
        kernel = kernel[None]
    y = tf.nn.conv2d(layer.quantize_input(x), kernel[None], strides=1, padding="VALID")
    return layer._add_bias_and_activation(y)


def _depthwise(layer, x):
    """Keras DepthwiseConv1D (kernel [K, C, 1]) on [1, 1, T, C], VALID."""
    y = tf.nn.depthwise_conv2d(x, layer.kernel[None], strides=[1, 1, 1, 1], padding="VALID")
    if layer.use_bias:
        y = y + layer.bias
    return y


def _layer_norm(layer, x):
    """Keras LayerNormalization over channels, written so that every op has
    an int8 kernel: Keras' own form computes -mean with NEG, which the int8
    graph ran in float between DEQUANTIZE and QUANTIZE (3 ops a norm)."""
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    centred = x - mean
    variance = tf.reduce_mean(centred * centred, axis=-1, keepdims=True)
    y = centred * tf.math.rsqrt(variance + layer.epsilon)
    if layer.scale:
        y = y * layer.gamma
    if layer.center:
        y = y + layer.beta
    return y


_VOICING_OUT = tf.constant([1.0, 1.0 / 16.0])
_FIRST_CHANNEL = tf.constant([1.0, 0.0])
_SECOND_CHANNEL = tf.constant([0.0, 1.0])


def f0_input_map(config) -> np.ndarray:
    """M ([2, 2] float32) with f0_features(log-F0, voicing) = pair @ M for
    pair = voicing * [standardized log-F0, 1]: from the acoustic config's
    log-F0 standardization and f0_features' constants. The frames graph runs
    f0_input as one 1x1 conv of kernel M @ W (recovery undoes it)."""
    scale = F0_FEATURE_SCALE
    return np.array([[config["log_f0_std"] * scale, 0.0],
                     [(config["log_f0_mean"] - math.log(F0_REFERENCE)) * scale, 1.0]],
                    np.float32)


def _f0_input_folded(layer, pair, config):
    """f0_input(f0_features(log-F0, voicing)) from pair ([1, 1, T, 2], see
    f0_input_map): one 1x1 conv of kernel M @ W."""
    kernel = tf.matmul(tf.constant(f0_input_map(config)), tf.cast(layer.kernel, tf.float32))
    return tf.nn.conv2d(pair, kernel[None, None], strides=1, padding="VALID") + layer.bias


def _plan(acoustic, vocoder) -> tuple[list, int, int]:
    """([(name, conv layer, kernel, channels in)], decoder delay, total delay)."""
    if not isinstance(vocoder, FrameVocoder):
        raise StreamingError(f"streaming needs the frame-rate vocoder, not {type(vocoder).__name__}")
    convs = []
    delay = 0
    if acoustic.decoder_input.kernel_size[0] != 1:
        raise StreamingError("decoder_input must be a 1x1 conv")
    for block in acoustic.decoder.blocks:
        k = block.conv.kernel_size[0]
        convs.append((f"decoder/{block.name}", block.conv, k, acoustic.config["decoder_channels"]))
        delay += (k - 1) // 2
    decoder_delay = delay
    k = vocoder.conv_in.kernel_size[0]
    convs.append(("vocoder/conv_in", vocoder.conv_in, k, vocoder.n_mels))
    delay += (k - 1) // 2
    for block in vocoder.blocks:
        k = block.depthwise.kernel_size[0]
        convs.append((f"vocoder/{block.name}", block.depthwise, k, block.channels))
        delay += (k - 1) // 2
    if vocoder.takes_f0 and acoustic.f0_projection is None:
        raise StreamingError("the vocoder has a source phase but the acoustic model gives no "
                             "frame F0 (AcousticConfig.frame_f0)")
    for name, layer, k, _ in convs:
        if k % 2 == 0 or layer.padding != "same" or tuple(layer.dilation_rate) != (1,) \
                or tuple(layer.strides) != (1,):
            raise StreamingError(f"{name}: only odd-kernel, stride-1, undilated 'same' convs stream")
    return convs, decoder_delay, delay


def stream_shapes(acoustic, vocoder, step: int) -> StreamShapes:
    if step < 1:
        raise StreamingError(f"step={step} must be at least 1")
    convs, decoder_delay, delay = _plan(acoustic, vocoder)
    states = [(f"state_{i:02d}", k - 1, channels) for i, (_, _, k, channels) in enumerate(convs)]
    states.append((f"state_{len(states):02d}", delay - decoder_delay, vocoder.n_mels))  # mel delay
    states.append((f"state_{len(states):02d}", delay, 1))                           # mask history
    if vocoder.takes_f0:
        # The F0 features wait for conv_in's centre; the F0 head's output for
        # the spectrum's frame. Apart from the mel's delay line: the int8
        # graph gives a state one scale, and log-F0 needs its own (a 1 % F0
        # error is 0.11 of a standardized unit, under 2 codes of the mel's).
        states.append((f"state_{len(states):02d}", delay - decoder_delay, 2))  # frame F0 delay
        if vocoder.f0_input is not None:
            k = vocoder.conv_in.kernel_size[0]
            states.append((f"state_{len(states):02d}", (k - 1) // 2, 2))     # F0 features
    return StreamShapes(step, delay, acoustic.config["encoder_channels"], vocoder.n_mels,
                        vocoder.config["n_fft"] + 2, tuple(states), vocoder.takes_f0)


def _window(state, x, keep: int):
    """(state + x along time (axis 2 of NHWC), the new state: the window's
    last `keep` frames)."""
    window = tf.concat([state, x], axis=2)
    return window, window[:, :, window.shape[2] - keep:] if keep else state


def frames_stream_function(acoustic, vocoder, step: int):
    """(tf.function, StreamShapes): frames [1, 1, step, C], mask [1, 1, step, 1]
    and the states [1, 1, frames, channels] -> {"spectrum": head output
    [1, 1, step, n_fft + 2], "mask", "mel" of the same (delayed) frames, and
    the new states}."""
    shapes = stream_shapes(acoustic, vocoder, step)
    convs, decoder_delay, delay = _plan(acoustic, vocoder)
    config = acoustic.config
    # NHWC [1, 1, T, C] in and out: a [1, T, C] edge costs a RESHAPE per input
    # and a slice per output (35 ops of the tiny graph).
    signature = [tf.TensorSpec([1, 1, step, shapes.channels], tf.float32, name="frames"),
                 tf.TensorSpec([1, 1, step, 1], tf.float32, name="mask")]
    signature += [tf.TensorSpec([1, 1, frames, channels], tf.float32, name=name)
                  for name, frames, channels in shapes.states]
    n_conv = len(convs)

    def body(frames, mask, states):
        # Everything is [1, 1, T, C] (NHWC); time is axis 2.
        new_states = []
        history, mask_state = _window(states[n_conv + 1], mask, delay)

        def mask_at(d):
            return history[:, :, delay - d:delay - d + step]

        def conv_window(i, x):
            window, state = _window(states[i], x, convs[i][2] - 1)
            new_states.append(state)
            return window

        d = 0
        x = _conv(acoustic.decoder_input, frames * mask) * mask
        for i, block in enumerate(acoustic.decoder.blocks):
            half = (convs[i][2] - 1) // 2
            window = conv_window(i, x)
            y = _layer_norm(block.norm, tf.nn.relu(_conv(block.conv, window)))
            d += half
            x = (y + window[:, :, half:half + step]) * mask_at(d)
        mel = (_conv(acoustic.mel_projection, x) * config["mel_std"] + config["mel_mean"]) \
            * mask_at(d)
        conditioned = shapes.frame_f0 and vocoder.f0_input is not None
        if shapes.frame_f0:
            frame_f0 = _conv(acoustic.f0_projection, x) * mask_at(d)
        if conditioned:
            # The vocoder's F0 features are linear in voicing * [log-F0, 1]
            # (f0_features): that pair goes through the window, and the
            # linear map folds into f0_input's kernel (_f0_input_folded).
            # Measured on the int8 frames graph: the features as written
            # (slices, a PACK run in float) cost 8.7 KB of flash.
            voicing = tf.sigmoid(frame_f0[..., 1:2]) * mask_at(d)
            features = (frame_f0 * _FIRST_CHANNEL + _SECOND_CHANNEL) * voicing
        i = len(acoustic.decoder.blocks)
        half = (convs[i][2] - 1) // 2
        window = conv_window(i, mel)
        d += half
        x = _conv(vocoder.conv_in, window)
        if conditioned:
            feature_window, feature_state = _window(states[n_conv + 3], features, half)
            x = x + _f0_input_folded(vocoder.f0_input, feature_window[:, :, :step], config)
        x = _layer_norm(vocoder.norm_in, x) * mask_at(d)
        for j, block in enumerate(vocoder.blocks):
            half = (convs[i + 1 + j][2] - 1) // 2
            window = conv_window(i + 1 + j, x)
            y = _layer_norm(block.norm, _depthwise(block.depthwise, window))
            y = _conv(block.project, sigmoid_gelu(_conv(block.expand, y)))
            d += half
            x = (window[:, :, half:half + step] + y) * mask_at(d)
        spectrum = _conv(vocoder.head, _layer_norm(vocoder.norm_out, x))
        mel_window, mel_state = _window(states[n_conv], mel, delay - decoder_delay)
        outputs = {"spectrum": spectrum, "mask": mask_at(delay), "mel": mel_window[:, :, :step]}
        new_states += [mel_state, mask_state]
        if shapes.frame_f0:
            # Only the voicing logit's sign is read (runtime.istft_c); scaled
            # down, it leaves the log-F0 beside it the int8 tensor's codes.
            f0_out = frame_f0 * _VOICING_OUT
            f0_window, f0_state = _window(states[n_conv + 2], f0_out, delay - decoder_delay)
            outputs["frame_f0"] = f0_window[:, :, :step]
            new_states.append(f0_state)
        if conditioned:
            new_states.append(feature_state)
        for k, state in enumerate(new_states):
            outputs[shapes.states[k][0]] = state
        return outputs

    @tf.function(input_signature=signature)
    def stream(frames, mask, *states):
        return body(frames, mask, list(states))

    return stream, shapes


def calibration_inputs(function, shapes: StreamShapes, regulated, count: int) -> list[dict]:
    """Inputs of `count` steps of the Keras stream `function`, spread evenly
    over a run through regulated frames [T, C] (utterances run together;
    tiled when short), taken once every conv's state holds real frames.
    Steps whose states still hold the zero start are left out: a layer norm
    of an all-zero row divides by sqrt(epsilon), some 1000 times what real
    rows see, and would stretch the int8 range until real rows quantize to
    zero (seen: every vocoder activation zero)."""
    if count < 1:
        raise StreamingError(f"calibration needs at least one step, got {count}")
    warm_up = -(-shapes.delay // shapes.step) + 1
    regulated = np.asarray(regulated, np.float32)
    needed = (warm_up + count) * shapes.step
    if len(regulated) < needed:
        regulated = np.concatenate([regulated] * -(-needed // len(regulated)))
    n_steps = len(regulated) // shapes.step
    chosen = set(np.linspace(warm_up, n_steps - 1, count).round().astype(int).tolist())
    states = zero_states(shapes)
    samples = []
    mask = np.ones((1, 1, shapes.step, 1), np.float32)
    for k in range(max(chosen) + 1):
        frames = regulated[None, None, k * shapes.step:(k + 1) * shapes.step]
        sample = {"frames": frames, "mask": mask, **states}
        if k in chosen:
            samples.append(sample)
        out = function(frames, mask, *[states[name] for name, _, _ in shapes.states])
        states = {name: np.asarray(out[name]) for name, _, _ in shapes.states}
    return samples


__all__ = ["StreamShapes", "StreamingError", "calibration_inputs", "frames_stream_function",
           "stream_shapes"]
