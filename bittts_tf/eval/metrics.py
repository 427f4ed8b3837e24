"""Objective speech metrics: mel cepstral distortion (here), PESQ and STOI
(`pesq`, `pystoi` packages), the voice's periodicity (CPPS,
`praat-parselmouth`), and word and character error rates with pocketsphinx's
built-in English model (a weak recognizer: compare systems with each other
and with the original recordings, never with published WERs).

The reference and the test signal are assumed time-aligned and of equal
length, which holds when both come from the same ground-truth durations or
when a vocoder re-synthesizes a recording from its own mel.
"""

from __future__ import annotations

import math
import re

import numpy as np
import scipy.fft
import scipy.signal

from bittts_tf.audio.config import AudioConfig
from bittts_tf.audio.features import log_mel
from bittts_tf.audio.io import to_pcm16

# 10 / ln 10 * sqrt(2): the usual dB scaling of the cepstral distance.
MCD_CONSTANT = 10.0 / math.log(10.0) * math.sqrt(2.0)
METRIC_RATE = 16000


class MissingMetricPackage(ImportError):
    pass


def cepstrum_of_log_mel(log_mel_frames: np.ndarray, n_coefficients: int) -> np.ndarray:
    """c[:, :n] with log_mel[k] = c0 + sum_{m>=1} c_m cos(pi m (k + 1/2) / K) over
    the K bands: the scale of a (minimum-phase) mel-cepstrum, the one
    MCD_CONSTANT assumes. Then MCD is the RMS dB distance between the
    cepstrally smoothed log mels with their means removed. (An orthonormal DCT
    would scale c_m by sqrt(K / 2) instead.)"""
    n_bands = log_mel_frames.shape[1]
    c = scipy.fft.dct(log_mel_frames, type=2, axis=1)[:, :n_coefficients] / n_bands
    c[:, 0] /= 2.0
    return c


def mel_cepstrum(audio: np.ndarray, config: AudioConfig, n_coefficients: int = 13,
                 floor_db: float = -60.0) -> np.ndarray:
    """Cepstra [frames, n_coefficients] (c0 included) of the natural-log mel,
    floored `floor_db` below the loudest bin so silence does not dominate."""
    mel = log_mel(audio, config)
    floor = mel.max() + floor_db / 20.0 * math.log(10.0)
    return cepstrum_of_log_mel(np.maximum(mel, floor), n_coefficients)


def mel_cepstral_distortion(reference: np.ndarray, test: np.ndarray, config: AudioConfig,
                            n_coefficients: int = 13) -> float:
    """MCD in dB over c1..c(n-1) (c0, the loudness, excluded), frame-aligned."""
    a = mel_cepstrum(reference, config, n_coefficients)
    b = mel_cepstrum(test, config, n_coefficients)
    n = min(len(a), len(b))
    diff = a[:n, 1:] - b[:n, 1:]
    return float(MCD_CONSTANT * np.mean(np.sqrt(np.sum(diff ** 2, axis=1))))


def mcd_dtw(reference: np.ndarray, test: np.ndarray, config: AudioConfig) -> float:
    """Mel cepstral distortion (dB, c1..c12) of `test` against `reference`
    along their dynamic-time-warping path: clips of one sentence spoken at
    different speeds (a voice against festival's)."""
    import librosa
    from scipy.spatial.distance import cdist

    a = mel_cepstrum(reference, config)[:, 1:]
    b = mel_cepstrum(test, config)[:, 1:]
    cost = cdist(a, b)
    _, path = librosa.sequence.dtw(C=cost, backtrack=True)
    return float(MCD_CONSTANT * np.mean(cost[path[:, 0], path[:, 1]]))


def to_metric_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    audio = np.asarray(audio, np.float64)
    if sample_rate == METRIC_RATE:
        return audio
    g = math.gcd(sample_rate, METRIC_RATE)
    return scipy.signal.resample_poly(audio, METRIC_RATE // g, sample_rate // g)


# Praat's smoothed cepstral peak prominence with the defaults of its
# "Get CPPS" (Hillenbrand's settings): a power cepstrogram every 2 ms above
# a 60 Hz pitch floor, averaged over 20 ms and 0.5 ms of quefrency, the peak
# sought between 60 and 330 Hz above a robust straight tilt line.
_CPPS_CEPSTROGRAM = (60.0, 0.002, 5000.0, 50.0)
_CPPS_QUERY = ("no", 0.02, 0.0005, 60.0, 330.0, 0.05, "Parabolic", 0.001, 0.05, "Straight",
               "Robust")


def cpps_db(audio: np.ndarray, sample_rate: int) -> float:
    """How periodic a clip's voice is: the smoothed cepstral peak prominence
    in dB (Praat's CPPS, through the `praat-parselmouth` package), the
    harmonics' height above the noise between them. Measured: festival's slt
    voice 15.31 on the 160 validation sentences (the shipped voice 14.81), a
    200 Hz pulse train 37.3, white noise 3.7."""
    try:
        import parselmouth
        from parselmouth.praat import call
    except ImportError as e:
        raise MissingMetricPackage("CPPS needs the 'praat-parselmouth' package: "
                                   "pip install praat-parselmouth") from e
    sound = parselmouth.Sound(to_metric_rate(audio, sample_rate), sampling_frequency=METRIC_RATE)
    cepstrogram = call(sound, "To PowerCepstrogram", *_CPPS_CEPSTROGRAM)
    return float(call(cepstrogram, "Get CPPS", *_CPPS_QUERY))


def pesq_score(reference: np.ndarray, test: np.ndarray, sample_rate: int) -> float | None:
    """Wide-band PESQ at 16 kHz; None where PESQ is undefined: a silent
    signal, or one in which its voice activity detector finds no utterance
    (3 in 240 outputs of random-weight tiny vocoders on the synthetic test
    corpus: a vocoder early in training can give such noise)."""
    try:
        from pesq import NoUtterancesError, pesq
    except ImportError as e:
        raise MissingMetricPackage("PESQ needs the 'pesq' package: pip install pesq") from e
    ref, deg = to_metric_rate(reference, sample_rate), to_metric_rate(test, sample_rate)
    n = min(len(ref), len(deg))
    if not (np.any(ref[:n]) and np.any(deg[:n])):
        return None   # the pesq package divides by the silent signal's level (NaN, then a ValueError)
    try:
        return float(pesq(METRIC_RATE, ref[:n], deg[:n], "wb"))
    except NoUtterancesError:
        return None


def stoi_score(reference: np.ndarray, test: np.ndarray, sample_rate: int) -> float:
    try:
        from pystoi import stoi
    except ImportError as e:
        raise MissingMetricPackage("STOI needs the 'pystoi' package: pip install pystoi") from e
    n = min(len(reference), len(test))
    return float(stoi(np.asarray(reference[:n], np.float64), np.asarray(test[:n], np.float64),
                      sample_rate, extended=False))


def word_errors(hypothesis: list[str], reference: list[str]) -> int:
    """Levenshtein distance between word lists (substitutions, insertions, deletions)."""
    previous = list(range(len(reference) + 1))
    for i, word in enumerate(hypothesis, 1):
        current = [i] + [0] * len(reference)
        for j, ref_word in enumerate(reference, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1,
                             previous[j - 1] + (word != ref_word))
        previous = current
    return previous[-1]


# Neither a letter, a digit nor an apostrophe: re's word class is str.isalnum
# and the underscore.
_NOT_A_WORD_CHARACTER = re.compile(r"[^\w']|_")


def normalize_words(text: str) -> list[str]:
    """Lower-case words of letters, digits and apostrophes; anything else
    separates words."""
    return _NOT_A_WORD_CHARACTER.sub(" ", text).lower().split()


def word_error_rate(hypotheses: list[str], references: list[str]) -> float:
    """Corpus WER: total word errors over total reference words."""
    errors = sum(word_errors(normalize_words(h), normalize_words(r))
                 for h, r in zip(hypotheses, references))
    return errors / max(1, sum(len(normalize_words(r)) for r in references))


def normalize_characters(text: str) -> str:
    """Lower-case ASCII letters and digits with single spaces between words: the
    string CER counts. Apostrophes join ("don't" -> "dont") so a recognizer's
    spelling of a contraction is not two words; other punctuation separates."""
    text = text.replace("'", "")
    kept = "".join(c.lower() if c.isascii() and c.isalnum() else " " for c in text)
    return " ".join(kept.split())


def character_error_rate(hypotheses: list[str], references: list[str]) -> float:
    """Corpus CER: total character edits over total reference characters
    (spaces included, so a wrong word boundary costs one)."""
    pairs = [(normalize_characters(h), normalize_characters(r))
             for h, r in zip(hypotheses, references)]
    errors = sum(word_errors(list(h), list(r)) for h, r in pairs)
    return errors / max(1, sum(len(r) for _, r in pairs))


class Recognizer:
    """pocketsphinx 5 with its bundled US English model."""

    def __init__(self):
        try:
            from pocketsphinx import Decoder
        except ImportError as e:
            raise MissingMetricPackage("WER needs the 'pocketsphinx' package: "
                                       "pip install pocketsphinx") from e
        self.decoder = Decoder(samprate=METRIC_RATE)

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        audio = to_metric_rate(audio, sample_rate)
        pcm = to_pcm16(audio)
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""
