"""Frame-rate vocoder: the inverse STFT against numpy and librosa, the
receptive field against brute force, chunks against the whole utterance."""

import dataclasses

import keras
import librosa
import numpy as np
import pytest
import tensorflow as tf

from bittts_tf.export import budget, converter
from bittts_tf.models import build, configs, frame_vocoder, istft


@pytest.mark.parametrize("n_fft", [1024, 256, 48])
def test_two_stage_irfft_equals_numpy(rng, n_fft):
    bins = n_fft // 2 + 1
    real = rng.normal(size=(2, 3, bins)).astype(np.float32)
    imag = rng.normal(size=(2, 3, bins)).astype(np.float32)
    # The imaginary parts of DC and Nyquist do not exist in a real signal's spectrum.
    imag[..., 0] = imag[..., -1] = 0.0
    expected = np.fft.irfft(real + 1j * imag, n=n_fft)
    got = istft.irfft(tf.constant(real), tf.constant(imag), n_fft).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_istft_inverts_librosa_stft(rng):
    audio = rng.normal(0, 0.1, 16000 + int(rng.integers(0, 256))).astype(np.float32)
    spectrum = librosa.stft(audio, n_fft=1024, hop_length=256, window="hann", center=True)
    frames = spectrum.shape[1]
    got = istft.istft(tf.constant(spectrum.real.T[None], tf.float32),
                      tf.constant(spectrum.imag.T[None], tf.float32),
                      tf.ones([1, frames, 1]), 1024, 256).numpy()[0]
    expected = librosa.istft(spectrum, hop_length=256, window="hann", center=True,
                             length=frames * 256)
    assert got.shape == (frames * 256,)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got[:len(audio)], audio[:frames * 256], atol=1e-5)


def small_config():
    config = configs.preset("tiny", quantize="vocoder")
    config.vocoder = dataclasses.replace(config.vocoder, channels=16, hidden_channels=32, blocks=2,
                                         n_fft=64, hop_length=16)
    config.audio = dataclasses.replace(config.audio, hop_length=16, n_mels=8)
    config.acoustic.n_mels = 8
    return config


def test_receptive_field_is_exact(rng):
    """Perturbing one input frame changes a chunk's samples exactly when the
    frame is within the computed reach, on either side."""
    config = small_config()
    vocoder = build.build_generator(config)
    hop = config.vocoder.hop_length
    n_frames, start, stop = 40, 18, 22
    mels = rng.normal(size=(1, n_frames, 8)).astype(np.float32)
    base = vocoder(mels).numpy()[0, start * hop:stop * hop]
    left, right = frame_vocoder.receptive_field(dataclasses.asdict(config.vocoder))
    for frame in range(n_frames):
        changed = mels.copy()
        changed[0, frame] += 1.0
        out = vocoder(changed).numpy()[0, start * hop:stop * hop]
        reaches = start - left <= frame <= stop - 1 + right
        # Exactly: a frame out of reach leaves every sample's bits as they
        # were, one in reach changes some. (A threshold of 1e-6 failed at the
        # far edge, whose samples the Hann window's tail weighs by under 1e-5.)
        assert bool(np.any(out != base)) == reaches, (frame, left, right)


# 339136723 failed the former 1e-6 threshold at the reach's far edge (9.7e-7).
@pytest.mark.replay_seed(339136723)
def test_receptive_field_replayed_seed(rng):
    test_receptive_field_is_exact(rng)


def test_masked_chunks_equal_the_whole_utterance(rng):
    config = small_config()
    vocoder = build.build_generator(config)
    hop = config.vocoder.hop_length
    left, right = frame_vocoder.receptive_field(dataclasses.asdict(config.vocoder))
    n_frames, chunk = int(rng.integers(20, 40)), int(rng.integers(1, 6))
    mels = rng.normal(size=(n_frames, 8)).astype(np.float32)
    whole = vocoder(mels[None]).numpy()[0]
    n_chunks = -(-n_frames // chunk)
    padded = np.zeros((left + n_chunks * chunk + right, 8), np.float32)
    # Frames outside the utterance hold garbage: the mask must hide them.
    padded[:] = rng.normal(size=padded.shape)
    mask = np.zeros((len(padded), 1), np.float32)
    padded[left:left + n_frames] = mels
    mask[left:left + n_frames] = 1.0
    pieces = []
    for k in range(n_chunks):
        window = slice(k * chunk, k * chunk + left + chunk + right)
        out = vocoder(padded[None, window], mask[None, window]).numpy()[0]
        pieces.append(out[left * hop:(left + chunk) * hop])
    streamed = np.concatenate(pieces)[:n_frames * hop]
    np.testing.assert_allclose(streamed, whole, atol=1e-5 * max(1.0, np.abs(whole).max()))


def test_tiny_vocoder_budget():
    """The issue's tiny budget: at most 1 M parameters, 100 MMAC per second."""
    config = configs.preset("tiny")
    vocoder = build.build_generator(config)
    assert vocoder.count_params() <= 1_000_000
    # MACs as the converted graph computes them (every CONV_2D, depthwise and
    # matmul of the float TFLite conversion, the inverse STFT's matmuls included).
    frames = 64
    mels = keras.Input((frames, config.audio.n_mels), batch_size=1)
    mask = keras.Input((frames, 1), batch_size=1)
    graph = converter.convert_float(keras.Model([mels, mask], vocoder(mels, mask)))
    seconds = frames * config.audio.hop_length / config.audio.sample_rate
    macs_per_second = budget.graph_macs(graph)["macs"] / seconds
    print(f"tiny vocoder: {vocoder.count_params()} parameters, {macs_per_second / 1e6:.1f} MMAC/s")
    assert 0 < macs_per_second <= 100e6
