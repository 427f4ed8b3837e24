"""DNSMOS P.835: a reference-free estimate of listener opinion (1-5) of a
speech clip, as overall quality (OVRL), speech signal (SIG) and background
(BAK), from the ONNX models that the `speechmos` package ships (offline).

DNSMOS was trained on noisy and denoised human speech, not on TTS: use it to
rank systems against each other and against a reference voice, not as a MOS.
"""

from __future__ import annotations

import os

import numpy as np

from bittts_tf.eval.metrics import METRIC_RATE, MissingMetricPackage, to_metric_rate

# speechmos loops forever on an empty clip (it doubles the clip until it
# reaches 9 s), so anything shorter is padded with silence up to this length.
_MIN_SECONDS = 0.5


class DnsMos:
    """Scores clips one at a time; the ONNX sessions are loaded once."""

    def __init__(self, threads: int = 1):
        try:
            import onnxruntime
            from speechmos import dnsmos as speechmos_dnsmos
        except ImportError as e:
            raise MissingMetricPackage("DNSMOS needs the 'speechmos' and 'onnxruntime' packages: "
                                       "pip install speechmos onnxruntime") from e
        models = os.path.join(os.path.dirname(speechmos_dnsmos.__file__), "dnsmos_models")
        primary = os.path.join(models, "sig_bak_ovr.onnx")
        p808 = os.path.join(models, "model_v8.onnx")
        self._model = speechmos_dnsmos.DNSMOS(primary, p808)
        # speechmos opens its sessions with onnxruntime's default of one thread
        # per core; evaluation runs beside training, so the count is ours to set.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._model.onnx_sess = onnxruntime.InferenceSession(primary, options)
        self._model.p808_onnx_sess = onnxruntime.InferenceSession(p808, options)

    def score(self, audio: np.ndarray, sample_rate: int) -> dict[str, float]:
        """{"ovrl", "sig", "bak", "p808"} of a mono clip in [-1, 1] at any rate."""
        audio = np.asarray(audio)
        if audio.ndim != 1:
            raise ValueError(f"DNSMOS wants a mono clip, got shape {audio.shape}")
        clip = np.clip(to_metric_rate(audio, sample_rate), -1.0, 1.0).astype(np.float32)
        minimum = int(_MIN_SECONDS * METRIC_RATE)
        if len(clip) < minimum:
            clip = np.pad(clip, (0, minimum - len(clip)))
        result = self._model(clip, METRIC_RATE, False)
        return {"ovrl": float(result["ovrl_mos"]), "sig": float(result["sig_mos"]),
                "bak": float(result["bak_mos"]), "p808": float(result["p808_mos"])}
