"""Text -> mel -> waveform from training checkpoints.

A joint checkpoint holds both models; two-stage training leaves an acoustic
checkpoint and a vocoder checkpoint. Without any vocoder the mel is inverted
by Griffin-Lim, which is only good enough to hear what was said.
"""

from __future__ import annotations

import functools

import numpy as np

from bittts_tf.models import configs
from bittts_tf.training import checkpoints


class SynthesisError(ValueError):
    """Bad input to synthesis (an unknown speaker)."""


def load_vocoder(checkpoint: str, dtype: str = "float32"):
    """(generator, model config) of the vocoder a checkpoint file or run
    directory holds; CheckpointError if it holds none."""
    path = checkpoints.resolve(checkpoint)
    manifest = checkpoints.read_manifest(path)
    if "model/generator" not in manifest["layout"]:
        raise checkpoints.CheckpointError(f"{path} holds no vocoder (an acoustic-only run?)")
    config = checkpoints.model_config(path, manifest)
    # Imported after the manifest is checked: a missing or corrupt checkpoint
    # is refused without the 5-7 s of importing TensorFlow.
    from bittts_tf.models import build
    with build.dtype_policy(dtype):
        generator = build.build_generator(config)
    checkpoints.restore(path, {"generator": generator})
    return generator, config


class Synthesizer:
    def __init__(self, checkpoint: str, vocoder_checkpoint: str | None = None,
                 dtype: str = "float32"):
        """`dtype` "float64": the same models computing in float64, a reference
        for float32 implementations (tools/check_streaming.py)."""
        # Only the manifests here: the models are built on first use, so a
        # request with bad text or an unknown speaker is refused before the
        # 5-10 s of importing TensorFlow, building and restoring them
        # (tools/synthesize.py).
        self.checkpoint = checkpoints.resolve(checkpoint)
        self.dtype = dtype
        manifest = checkpoints.read_manifest(self.checkpoint)
        self.config = checkpoints.model_config(self.checkpoint, manifest)
        self._acoustic_config = self.config
        self.front_end = checkpoints.front_end(self.checkpoint, manifest)
        if "model/acoustic" not in manifest["layout"]:
            raise checkpoints.CheckpointError(f"{self.checkpoint} holds no acoustic model "
                                              "(a vocoder-only run?)")
        self.vocoder_source = "griffin-lim"
        self._vocoder_config = None
        source = self.checkpoint if "model/generator" in manifest["layout"] else None
        if vocoder_checkpoint:
            source = checkpoints.resolve(vocoder_checkpoint)
        if source:
            vocoder_config = checkpoints.model_config(source)
            if vocoder_config.audio != self.config.audio:
                raise checkpoints.CheckpointError(
                    f"vocoder {source} was trained for {vocoder_config.audio}, the acoustic "
                    f"model for {self.config.audio}")
            try:
                self.config = configs.with_vocoder_of(self.config, vocoder_config)
            except ValueError as error:
                raise checkpoints.CheckpointError(f"vocoder {source} does not fit the acoustic "
                                                  f"model of {self.checkpoint}: {error}") from None
            self.vocoder_source = source
            self._vocoder_config = vocoder_config

    @functools.cached_property
    def acoustic(self):
        from bittts_tf.models import build
        with build.dtype_policy(self.dtype):
            model = build.build_acoustic(self._acoustic_config)
        checkpoints.restore(self.checkpoint, {"acoustic": model})
        return model

    @functools.cached_property
    def generator(self):
        """The vocoder, or None: Griffin-Lim."""
        if self._vocoder_config is None:
            return None
        return load_vocoder(self.vocoder_source, self.dtype)[0]

    def mel(self, text: str, duration_scale: float = 1.0, speaker: int = 0) -> np.ndarray:
        """The mel of `text` in one piece, however long."""
        return self.mel_of_ids(self.front_end.encode(text), duration_scale, speaker)

    def mel_of_ids(self, ids, duration_scale: float = 1.0, speaker: int = 0,
                   with_f0: bool = False):
        """The mel [T, n_mels]; with `with_f0`, (mel, the frame F0 head's
        output [T, 2]) of an acoustic model that has one (AcousticConfig.frame_f0)."""
        self._check_speaker(speaker)
        ids = np.asarray([ids], np.int32)
        speakers = np.asarray([speaker], np.int32) if self.config.acoustic.n_speakers > 1 else None
        mel, lengths, _, *frame_f0 = self.acoustic.infer(
            ids, np.asarray([ids.shape[1]], np.int32), speakers, duration_scale, with_f0=with_f0)
        n = int(lengths[0])
        if with_f0:
            return np.asarray(mel[0, :n]), np.asarray(frame_f0[0][0, :n])
        return np.asarray(mel[0, :n])

    def _check_speaker(self, speaker: int) -> None:
        n_speakers = self.config.acoustic.n_speakers
        if not 0 <= speaker < n_speakers:
            # Caught here: the embedding lookup would fail deep in TensorFlow, or,
            # for a one-speaker model, silently ignore the id.
            raise SynthesisError(f"speaker {speaker} is unknown: {self.checkpoint} has "
                                 f"{n_speakers} speaker(s), ids 0..{n_speakers - 1}")

    def speak(self, text: str, max_tokens: int = 0, duration_scale: float = 1.0,
              speaker: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
        """(each segment's mel, the whole waveform): `text` split as the
        exported text graph splits it (max_tokens 0: one piece), each segment
        voiced with its frame F0 when the vocoder has a source phase."""
        from bittts_tf.text.segment import segment_ids
        pieces = (segment_ids(self.front_end, text, max_tokens) if max_tokens
                  else [self.front_end.encode(text)])
        self._check_speaker(speaker)  # before self.generator builds the vocoder
        with_f0 = getattr(self.generator, "takes_f0", False)
        mels, audio = [], []
        for ids in pieces:
            out = self.mel_of_ids(ids, duration_scale, speaker, with_f0=with_f0)
            mel, frame_f0 = out if with_f0 else (out, None)
            mels.append(mel)
            audio.append(self.waveform(mel, frame_f0))
        return mels, np.concatenate(audio)

    def waveform(self, mel: np.ndarray, frame_f0: np.ndarray | None = None) -> np.ndarray:
        """`frame_f0`: the acoustic model's frame F0 output, for a vocoder with
        a source phase (mel_of_ids(..., with_f0=True))."""
        if getattr(self.generator, "takes_f0", False):
            if frame_f0 is None:
                raise SynthesisError(f"the vocoder of {self.vocoder_source} has a source phase: "
                                     "it needs the acoustic model's frame F0")
            from bittts_tf.models import frame_vocoder
            a = self._acoustic_config.acoustic
            f0_hz, features = frame_vocoder.f0_from_head(
                np.asarray(frame_f0, self.dtype)[None], a.log_f0_mean, a.log_f0_std)
            return np.asarray(self.generator(mel[None].astype(self.dtype), f0=f0_hz,
                                             f0_feature_values=features)[0])
        if self.generator is not None:
            return np.asarray(self.generator(mel[None].astype(self.dtype))[0])
        import librosa
        a = self.config.audio
        return librosa.feature.inverse.mel_to_audio(
            np.exp(mel.T), sr=a.sample_rate, n_fft=a.n_fft, hop_length=a.hop_length,
            win_length=a.win_length, window=a.window, power=1.0, fmin=a.fmin, fmax=a.fmax,
            n_iter=32).astype(np.float32)
