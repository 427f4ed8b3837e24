"""Acoustic model: padding invariance, quantization scopes, configs."""

import dataclasses

import keras
import numpy as np
import pytest

from bittts_tf.models import build, configs
from bittts_tf.models.weight_norm import WeightNormConv1D


def random_utterances(config, rng, lengths):
    """Utterances of (n_tokens, n_frames), with F0 that has unvoiced frames."""
    out = []
    for n_tokens, n_frames in lengths:
        f0 = rng.uniform(80, 300, n_frames).astype(np.float32)
        f0[rng.random(n_frames) < 0.3] = 0.0
        out.append({"phonemes": rng.integers(1, config.acoustic.n_symbols, n_tokens),
                    "mels": rng.normal(-4, 2, (n_frames, config.audio.n_mels)).astype(np.float32),
                    "f0": f0, "energy": rng.uniform(0, 40, n_frames).astype(np.float32)})
    return out


def pad_batch(utterances, pad_value=0.0, extra_frames=0):
    """Pads with `pad_value` (not zero) to prove the model masks its inputs."""
    n_tok = max(len(u["phonemes"]) for u in utterances)
    n_fr = max(len(u["mels"]) for u in utterances) + extra_frames
    b = len(utterances)
    batch = {"phonemes": np.zeros((b, n_tok), np.int32),
             "phoneme_lengths": np.array([len(u["phonemes"]) for u in utterances], np.int32),
             "mels": np.full((b, n_fr, utterances[0]["mels"].shape[1]), pad_value, np.float32),
             "mel_lengths": np.array([len(u["mels"]) for u in utterances], np.int32),
             "f0": np.full((b, n_fr), pad_value, np.float32),
             "energy": np.full((b, n_fr), pad_value, np.float32),
             "speakers": np.zeros((b,), np.int32)}
    for i, u in enumerate(utterances):
        batch["phonemes"][i, :len(u["phonemes"])] = u["phonemes"]
        for key in ("mels", "f0", "energy"):
            batch[key][i, :len(u[key])] = u[key]
    return batch


@pytest.mark.parametrize("quantize,n_speakers", [("none", 1), ("acoustic", 2)])
def test_padding_does_not_change_outputs(quantize, n_speakers, rng):
    config = configs.preset("tiny", quantize=quantize, n_speakers=n_speakers)
    model = build.build_acoustic(config)
    short, long_ = random_utterances(config, rng, [(5, 23), (9, 41)])
    alone = model(pad_batch([short]))
    batched = model(pad_batch([short, long_], pad_value=7.0, extra_frames=3))
    n_tok, n_fr = len(short["phonemes"]), len(short["mels"])
    # The mel is compared in the model's standardized units (what its layers
    # compute, before the fixed affine map back to log-mel units).
    for out in (alone, batched):
        out["mel"] = np.asarray(out["mel"]) / config.acoustic.mel_std
    for key, valid in [("mel", (slice(None, n_fr),)), ("log_probs", (slice(None, n_fr), slice(None, n_tok))),
                       ("durations", (slice(None, n_tok),)), ("log_duration", (slice(None, n_tok),)),
                       ("pitch", (slice(None, n_tok),)), ("pitch_target", (slice(None, n_tok),)),
                       ("energy_target", (slice(None, n_tok),))]:
        np.testing.assert_allclose(np.asarray(batched[key][0])[valid], np.asarray(alone[key][0])[valid],
                                   atol=1e-5, rtol=1e-5, err_msg=key)
    assert np.asarray(alone["durations"]).sum() == n_fr
    assert np.all(np.asarray(batched["mel"][0, n_fr:]) == 0)

    speakers = [1, 0] if n_speakers > 1 else None
    mel_alone, len_alone, dur_alone = model.infer(pad_batch([short])["phonemes"], [n_tok],
                                                  speakers and speakers[:1])
    b = pad_batch([short, long_])
    mel_b, len_b, dur_b = model.infer(b["phonemes"], b["phoneme_lengths"], speakers)
    np.testing.assert_array_equal(dur_b[0, :n_tok], dur_alone[0])
    frames = int(len_alone[0])
    assert int(len_b[0]) == frames
    np.testing.assert_allclose(np.asarray(mel_b[0, :frames]) / config.acoustic.mel_std,
                               np.asarray(mel_alone[0, :frames]) / config.acoustic.mel_std,
                               atol=1e-5, rtol=1e-5)


def away_from_ternary_ties(value):
    """The weights with every |w| / mean|w| at least 1e-3 from 0.5, where a
    ternary code changes. There, float32's mean|w| and float64's can round one
    weight to different codes (seed 794568999 flipped one weight in
    generator/block_2/expand, 1.5e-3 of the audio's peak): a tie, not a
    difference between the two builds."""
    if value.ndim < 2:
        return value
    value = value.copy()
    for _ in range(10):
        ratio = np.abs(value.astype(np.float64)) / np.mean(np.abs(value.astype(np.float64)))
        near = np.abs(ratio - 0.5) < 1e-3
        if not near.any():
            return value
        value[near] *= np.float32(0.99)
    raise AssertionError("weights still at a ternary tie after 10 nudges")


@pytest.mark.parametrize("quantize", ["none", "all"])
def test_models_built_in_float64_compute_the_float32_models_function(quantize, rng):
    """The float64 build (tools/check_streaming.py's exact reference): every
    tensor the models make follows the policy, and with the float32 models'
    weights it gives their outputs to float32 rounding."""
    config = configs.preset("tiny", quantize=quantize)
    models32 = [build.build_acoustic(config), build.build_generator(config)]
    with build.dtype_policy("float64"):
        models64 = [build.build_acoustic(config), build.build_generator(config)]
    assert keras.mixed_precision.global_policy().name == "float32"
    for model32, model64 in zip(models32, models64):
        assert [v.path for v in model32.weights] == [v.path for v in model64.weights]
        for v32, v64 in zip(model32.weights, model64.weights):
            # Random weights: the zero-initialized mel projection would make
            # every mel the mean mel.
            value = away_from_ternary_ties(rng.normal(0, 0.3, v32.shape).astype(np.float32))
            v32.assign(value)
            v64.assign(value.astype(np.float64))
    batch = pad_batch(random_utterances(config, rng, [(7, 29), (4, 17)]))
    batch["durations"] = np.zeros(batch["phonemes"].shape, np.int32)
    batch["durations"][0, :7] = rng.multinomial(29 - 7, np.full(7, 1 / 7)) + 1
    batch["durations"][1, :4] = rng.multinomial(17 - 4, np.full(4, 1 / 4)) + 1
    (acoustic32, generator32), (acoustic64, generator64) = models32, models64
    mel32 = np.asarray(acoustic32(batch, use_ground_truth_durations=True)["mel"])
    mel64 = np.asarray(acoustic64(batch, use_ground_truth_durations=True)["mel"])
    assert mel64.dtype == np.float64
    scale = np.abs(mel64).max()
    np.testing.assert_allclose(mel32, mel64, atol=1e-5 * scale, rtol=0)
    assert np.abs(mel32 - mel64).max() > 0   # float64 arithmetic, not float32 cast up
    audio32 = np.asarray(generator32(mel32))
    audio64 = np.asarray(generator64(mel32.astype(np.float64)))
    assert audio64.dtype == np.float64
    np.testing.assert_allclose(audio32, audio64, atol=1e-5 * np.abs(audio64).max(), rtol=0)


def expected_quantized(model, exclude=()):
    """Every conv layer in the model, found by walking Keras' own layer tree."""
    convs = [l for l in model._flatten_layers(include_self=False, recursive=True)
             if isinstance(l, (keras.layers.Conv1D, keras.layers.Conv1DTranspose))]
    return {l.path for l in convs if l.name not in exclude}


def with_vocoder(config, kind):
    """The preset with the frame-rate vocoder (tiny's own) or a HiFi-GAN V3."""
    if kind == "hifigan":
        config.vocoder = configs.hifigan("V3", initial_channel=32, upsample_rates=(8, 8, 4),
                                         upsample_kernels=(16, 16, 8))
    return config


@pytest.mark.parametrize("kind", ["frame", "hifigan"])
@pytest.mark.parametrize("scope", configs.QUANTIZE_SCOPES)
def test_quantization_scope_selects_exactly_the_intended_layers(scope, kind):
    bits = {"none": 1.58, "acoustic": 2, "vocoder": 4, "all": 1.58}[scope]
    config = with_vocoder(configs.preset("tiny", quantize=scope, weight_bits=bits), kind)
    acoustic, generator = build.build_acoustic(config), build.build_generator(config)
    rows = build.quantization_table({"acoustic": acoustic, "vocoder": generator})
    got = {(m, path) for m, path, _, _ in rows}
    want = set()
    if scope in ("acoustic", "all"):
        want |= {("acoustic", p) for p in expected_quantized(acoustic)}
    if scope in ("vocoder", "all"):
        want |= {("vocoder", p) for p in expected_quantized(generator, exclude={"conv_post"})}
    assert got == want
    assert all(b == bits for _, _, b, _ in rows)
    # Counted from the architecture: encoder, aligner (2 key + 3 query convs),
    # three predictors, two variance embeddings, decoder input, decoder.
    a = config.acoustic
    n_acoustic = (a.encoder_blocks + 5 + a.duration_layers + a.pitch_layers + a.energy_layers
                  + 2 + 1 + a.decoder_blocks)
    v = config.vocoder
    if kind == "hifigan":
        convs_per_block = (sum(len(d) for d in v.resblock_dilations)
                           * (2 if v.resblock_type == 1 else 1))
        n_vocoder = 1 + len(v.upsample_rates) * (1 + convs_per_block)
        # The final waveform conv is never quantized, whatever the scope.
        assert not generator.conv_post.is_quantized
    else:
        n_vocoder = 1 + 2 * v.blocks  # input conv, expand and project of each block
        assert not generator.head.is_quantized  # the spectral head stays float
    assert len(got) == {"none": 0, "acoustic": n_acoustic, "vocoder": n_vocoder,
                        "all": n_acoustic + n_vocoder}[scope]
    assert all(not isinstance(l, keras.layers.Conv1D) or hasattr(l, "is_quantized")
               for l in acoustic._flatten_layers() + generator._flatten_layers())


@pytest.mark.parametrize("version,published", [("V2", 0.93e6), ("V3", 1.46e6)])
def test_hifigan_versions_have_the_published_sizes(version, published, rng):
    config = configs.preset("tiny")
    config = dataclasses.replace(config, vocoder=configs.hifigan(version), audio=config.audio)
    generator = build.build_generator(config)
    assert abs(generator.count_params() - published) / published < 0.02
    mel = rng.normal(size=(2, 5, 80)).astype(np.float32)
    audio = generator(mel)
    assert audio.shape == (2, 5 * config.audio.hop_length)
    assert np.all(np.abs(audio) < 1)


def test_weight_norm_kernel_is_g_times_unit_direction(rng):
    layer = WeightNormConv1D(6, 3, weight_bits=1.58)
    layer.build((None, None, 4))
    v = np.asarray(layer._kernel)
    unit = v / np.sqrt((v ** 2).sum(axis=(0, 1), keepdims=True))
    np.testing.assert_allclose(np.asarray(layer.kernel), unit, rtol=1e-5)  # g starts at 1
    g = rng.uniform(0.5, 2, 6).astype(np.float32)
    layer.weight_norm_g.assign(g)
    expected = g * v / np.sqrt((v ** 2).sum(axis=(0, 1), keepdims=True))
    np.testing.assert_allclose(np.asarray(layer.kernel), expected, rtol=1e-5)
    codes, beta = layer.ternary_codes()
    np.testing.assert_array_equal(codes, np.clip(np.round(expected / beta), -1, 1))


def test_config_json_round_trip_and_bad_scope():
    config = configs.preset("paper", quantize="all", weight_bits="2")
    again = configs.ModelConfig.from_json(config.to_json())
    assert again.to_dict() == config.to_dict() and again.weight_bits == 2
    with pytest.raises(ValueError, match="quantize scope"):
        configs.preset("tiny", quantize="decoder")
    with pytest.raises(ValueError, match="not a ModelConfig"):
        configs.ModelConfig.from_dict({"name": "x"})


def test_acoustic_overrides_are_typed_and_reach_the_aligner():
    overrides = configs.parse_acoustic_overrides(
        ["alignment_prior_scaling=0.25", "aligner_text_input=encoder", "encoder_blocks=3",
         "attention_query_kernel=5"])
    assert overrides == {"alignment_prior_scaling": 0.25, "aligner_text_input": "encoder",
                         "encoder_blocks": 3, "attention_query_kernel": 5}
    assert type(overrides["encoder_blocks"]) is int
    config = configs.preset("tiny", n_symbols=20, **overrides)
    again = configs.ModelConfig.from_json(config.to_json())
    acoustic = build.build_acoustic(again)
    assert acoustic.aligner.prior_scaling == 0.25
    assert acoustic.aligner.query_layers[0].kernel_size == (5,)
    assert acoustic.aligner.key_layers[0].kernel_size == (3,)
    assert len(acoustic.encoder.blocks) == 3
    for bad, message in [("alignment_prior_scaling", "field=value"),
                         ("no_such_field=1", "no field 'no_such_field'"),
                         ("encoder_blocks=two", "'two' is not a int")]:
        with pytest.raises(ValueError, match=message):
            configs.parse_acoustic_overrides([bad])


def test_vocoder_overrides_are_typed_and_shape_the_discriminators():
    overrides = configs.parse_vocoder_overrides(["n_scales=0", "periods=2:3:5"], "tiny")
    assert overrides == {"n_scales": 0, "periods": (2, 3, 5)}
    config = configs.preset("tiny", n_symbols=20, vocoder_overrides=overrides)
    again = configs.ModelConfig.from_json(config.to_json())
    assert again.vocoder.n_scales == 0 and again.vocoder.periods == (2, 3, 5)
    discriminators = build.build_discriminators(again)
    assert [d.period for d in discriminators.period_discriminators] == [2, 3, 5]
    assert discriminators.scale_discriminators == []
    for bad, message in [("n_scales", "field=value"), ("no_such=1", "no field 'no_such'"),
                         ("periods=2:x", "not a tuple")]:
        with pytest.raises(ValueError, match=message):
            configs.parse_vocoder_overrides([bad], "tiny")


def test_resolution_discriminators_are_asked_for_by_their_window_lengths():
    overrides = configs.parse_vocoder_overrides(["resolution_ffts=256:1024"], "tiny")
    config = configs.ModelConfig.from_json(
        configs.preset("tiny", n_symbols=20, vocoder_overrides=overrides).to_json())
    assert config.vocoder.resolution_ffts == (256, 1024)
    discriminators = build.build_discriminators(config)
    assert [d.n_fft for d in discriminators.resolution_discriminators] == [256, 1024]
    assert build.build_discriminators(configs.preset("tiny", n_symbols=20)) \
        .resolution_discriminators == []
    with pytest.raises(ValueError, match="power of two"):
        configs.preset("tiny", n_symbols=20, vocoder_overrides={"resolution_ffts": (300,)})


def test_resolution_discriminator_judges_numpys_stft_magnitude(rng):
    from bittts_tf.models.discriminators import Discriminators, _conv_stack
    ffts = (64, 128)
    discriminators = Discriminators(periods=(2,), n_scales=0, width=0.125, resolution_ffts=ffts)
    audio = rng.normal(0, 0.3, (3, int(rng.integers(700, 1200)))).astype(np.float32)
    scores, features = discriminators(audio)
    assert len(scores) == len(features) == 1 + len(ffts)
    for i, n_fft in enumerate(ffts):
        hop = n_fft // 4
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
        frames = -(-audio.shape[1] // hop)  # zeros past the end, as far as a frame starts
        padded = np.pad(audio, [(0, 0), (0, (frames - 1) * hop + n_fft - audio.shape[1])])
        magnitude = np.stack([np.abs(np.fft.rfft(padded[:, f * hop:f * hop + n_fft] * window))
                              for f in range(frames)], axis=1)
        judge = discriminators.resolution_discriminators[i]
        expected, _ = _conv_stack(judge.convs, judge.conv_post,
                                  magnitude[..., None].astype(np.float32))
        np.testing.assert_allclose(scores[1 + i], expected.numpy()[..., 0], rtol=1e-4, atol=1e-4)
    # The magnitude only: the same verdicts on the negated wave (the period
    # discriminator's differ); and one row per utterance, so a batch splits.
    negated, _ = discriminators(-audio)
    for i in range(len(ffts)):
        np.testing.assert_allclose(negated[1 + i], scores[1 + i], rtol=1e-4, atol=1e-4)
    assert not np.allclose(negated[0], scores[0])
    alone, _ = discriminators(audio[1:2])
    for got, batched in zip(alone, scores):
        np.testing.assert_allclose(got, batched[1:2], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("acoustic_scope, vocoder_scope, merged", [
    ("acoustic", "vocoder", "all"), ("all", "none", "acoustic"), ("none", "all", "vocoder"),
    ("none", "none", "none"), ("all", "all", "all")])
def test_config_of_separately_trained_models_takes_the_vocoders(acoustic_scope, vocoder_scope,
                                                                 merged):
    from bittts_tf.models import build
    acoustic = configs.preset("tiny", quantize=acoustic_scope)
    vocoder = configs.preset("tiny", quantize=vocoder_scope,
                             vocoder_overrides={"quantize_head": True, "n_scales": 0})
    config = configs.with_vocoder_of(acoustic, vocoder)
    assert config.quantize == merged and config.acoustic == acoustic.acoustic
    assert config.vocoder == vocoder.vocoder and config.vocoder.quantize_head
    assert config.vocoder_bits == vocoder.vocoder_bits
    assert config.acoustic_bits == acoustic.acoustic_bits
    head = build.build_generator(config).head
    assert head.weight_bits == vocoder.vocoder_bits


def test_config_of_models_of_two_widths_is_refused():
    acoustic = configs.preset("tiny", quantize="acoustic", weight_bits=1.58)
    vocoder = configs.preset("tiny", quantize="vocoder", weight_bits=4)
    with pytest.raises(ValueError, match="one config holds one width"):
        configs.with_vocoder_of(acoustic, vocoder)


def test_frame_vocoder_norm_epsilon_reaches_every_layer_norm(rng):
    epsilon = float(rng.uniform(0.01, 1.0))
    config = configs.preset("tiny", vocoder_overrides={"norm_epsilon": epsilon})
    assert configs.vocoder_config_from_dict(
        dataclasses.asdict(config.vocoder)).norm_epsilon == epsilon
    generator = build.build_generator(config)
    mel = rng.normal(-4, 2, (1, 9, 80)).astype(np.float32)
    generator(mel)
    norms = [layer for layer in generator._flatten_layers()
             if isinstance(layer, keras.layers.LayerNormalization)]
    assert len(norms) == config.vocoder.blocks + 2
    assert all(layer.epsilon == epsilon for layer in norms)
    # The block's norm against numpy's layer norm with that epsilon.
    block = generator.blocks[0]
    x = rng.normal(0, 0.05, (1, 9, config.vocoder.channels)).astype(np.float32)
    gamma, beta = (np.asarray(w) for w in block.norm.weights)
    centred = x - x.mean(-1, keepdims=True)
    expected = centred / np.sqrt((centred ** 2).mean(-1, keepdims=True) + epsilon) * gamma + beta
    np.testing.assert_allclose(np.asarray(block.norm(x)), expected, rtol=1e-5, atol=1e-6)
    # A config saved before the field builds the 1e-6 of before.
    saved = {k: v for k, v in dataclasses.asdict(config.vocoder).items() if k != "norm_epsilon"}
    assert configs.vocoder_config_from_dict(saved).norm_epsilon == 1e-6
