"""Scoring text-to-speech systems on a fixed set of sentences: pocketsphinx
word and character error rates against what a reader would say, and DNSMOS
of each clip.

A system is a render callable (text -> mono float32 waveform at a known
rate), so the same code scores the runtime, festival's own voice (the
teacher, i.e. the ceiling a model trained on it can reach), Griffin-Lim of a
mel, or a stub in a test.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

import numpy as np
from tqdm import tqdm

from bittts_tf.audio.config import AudioConfig
from bittts_tf.audio.features import log_mel
from bittts_tf.audio.io import resample, save_wav
from bittts_tf.eval import metrics
from bittts_tf.text.normalize import normalize_text

# The 40 sentences the shipped voice's checkpoints were chosen on: the seed and
# first 40 of the validation set (bittts_tf.eval.sets), kept for the quick
# checks that speak a few sentences. Scores to report come from the test set.
SENTENCES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sentences.txt")
DNSMOS_KEYS = ("ovrl", "sig", "bak")

Render = Callable[[str], np.ndarray]


class SentencesError(ValueError):
    """A sentences file that cannot be used; the message names the file."""


class RenderError(RuntimeError):
    """A system failed on one sentence; the message names system and sentence."""


def load_sentences(path: str = SENTENCES_FILE) -> list[str]:
    """One sentence a line; blank lines and lines starting with # are skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise SentencesError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SentencesError(f"{path}: is a folder, not a sentences file") from None
    except UnicodeDecodeError as e:
        raise SentencesError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    sentences = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # A line with nothing to say would score as a free zero-error sentence.
        if not metrics.normalize_words(spoken_form(line)):
            raise SentencesError(f"{path}:{number}: {line!r} has no words to say")
        sentences.append(line)
    if not sentences:
        raise SentencesError(f"{path}: holds no sentences")
    return sentences


def spoken_form(text: str) -> str:
    """What a reader says for `text`, written the way pocketsphinx writes what
    it heard: digits, currency, percentages and abbreviations spelled out by
    the project's normalizer, lower case."""
    return normalize_text(text).lower()


def griffin_lim(mel: np.ndarray, config: AudioConfig, n_iter: int = 32) -> np.ndarray:
    """Waveform of a natural-log mel [frames, n_mels] (bittts_tf.audio.features)
    by Griffin-Lim, with a fixed phase seed so two runs give the same audio."""
    import librosa
    magnitude_mel = np.exp(np.asarray(mel, np.float64)).T
    # Bins at the log floor were silence, not a quiet sound of that level.
    magnitude_mel[magnitude_mel <= config.log_floor * (1 + 1e-4)] = 0.0
    stft = librosa.feature.inverse.mel_to_stft(
        magnitude_mel, sr=config.sample_rate, n_fft=config.n_fft, power=1.0,
        fmin=config.fmin, fmax=config.fmax)
    audio = librosa.griffinlim(
        stft, n_iter=n_iter, hop_length=config.hop_length, win_length=config.win_length,
        n_fft=config.n_fft, window=config.window, center=True, pad_mode="reflect",
        length=(len(mel) - 1) * config.hop_length, random_state=0)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def griffin_lim_of(render: Render, config: AudioConfig, n_iter: int = 32) -> Render:
    """A system that speaks through Griffin-Lim from the mel of `render`'s audio
    (at config.sample_rate): how far a perfect mel gets without a vocoder."""
    return lambda text: griffin_lim(log_mel(render(text), config), config, n_iter)


def vocoder_of(render: Render, generator, config: AudioConfig) -> Render:
    """A system that speaks through `generator` (a Keras vocoder) from the mel
    of `render`'s audio: how far a perfect mel gets with this vocoder."""
    def speak(text):
        mel = log_mel(render(text), config).astype(np.float32)
        return np.clip(np.asarray(generator(mel[None])[0]), -1.0, 1.0).astype(np.float32)
    return speak


def festival_renderer(sentences: Iterable[str], sample_rate: int, voice: str = "slt",
                      batch_size: int = 8, progress: bool = True) -> Render:
    """Synthesizes every sentence with festival up front (one process per batch:
    start-up costs more than a sentence) and returns a lookup by sentence.

    Festival gets the normalized text, so it says the same words the model's
    front end does (its own reading of "2019" would differ)."""
    from bittts_tf.data import festival

    sentences = list(dict.fromkeys(sentences))
    audio = {}
    with tqdm(total=len(sentences), desc=f"festival {voice}", unit="sentence",
              disable=not progress) as bar:
        for start in range(0, len(sentences), batch_size):
            chunk = sentences[start:start + batch_size]
            items = [(str(start + i), normalize_text(s)) for i, s in enumerate(chunk)]
            results, failures = festival.synthesize_batch(items, voice)
            if failures:
                utt_id, reason = failures[0]
                raise festival.FestivalError(f"festival failed on {sentences[int(utt_id)]!r}: "
                                             f"{reason}")
            for r in results:
                audio[sentences[int(r.utt_id)]] = resample(r.audio, r.sample_rate, sample_rate)
            bar.update(len(chunk))
    return lambda text: audio[text]


def _check_audio(audio, where: str) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise RenderError(f"{where}: audio must be mono [n], got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise RenderError(f"{where}: audio holds NaN or infinite samples")
    return audio


def score_system(name: str, sentences: list[str], render: Render, sample_rate: int,
                 recognizer, dnsmos=None, audio_dir: str | None = None,
                 progress: bool = True, reference_voice: Render | None = None,
                 audio_config: AudioConfig | None = None) -> dict:
    """Renders and scores each sentence. `recognizer` has
    transcribe(audio, rate) -> str (metrics.Recognizer); `dnsmos` has
    score(audio, rate) -> dict (dnsmos.DnsMos), or is None to skip DNSMOS.
    With a `reference_voice` (festival's) and the `audio_config` of
    the clips, each sentence also gets its MCD against the reference's clip
    along their time warp (metrics.mcd_dtw).
    Returns {"system", "sample_rate", "summary", "sentences": [per sentence]}."""
    rows = []
    for index, sentence in enumerate(tqdm(sentences, desc=name, unit="sentence",
                                          disable=not progress)):
        where = f"{name}, sentence {index + 1} {sentence!r}"
        try:
            audio = render(sentence)
        except Exception as e:  # any failure becomes one line naming the sentence
            raise RenderError(f"{where}: {type(e).__name__}: {e}") from e
        audio = _check_audio(audio, where)
        reference = spoken_form(sentence)
        heard = recognizer.transcribe(audio, sample_rate)
        heard_words = metrics.normalize_words(spoken_form(heard))
        reference_words = metrics.normalize_words(reference)
        heard_chars = metrics.normalize_characters(spoken_form(heard))
        reference_chars = metrics.normalize_characters(reference)
        row = {"sentence": sentence, "reference": reference, "heard": heard,
               "seconds": len(audio) / sample_rate,
               "words": len(reference_words),
               "word_errors": metrics.word_errors(heard_words, reference_words),
               "characters": len(reference_chars),
               "character_errors": metrics.word_errors(list(heard_chars), list(reference_chars))}
        if dnsmos is not None:
            row.update({f"dnsmos_{k}": v for k, v in dnsmos.score(audio, sample_rate).items()})
            row["cpps_db"] = metrics.cpps_db(audio, sample_rate)
        if reference_voice is not None:
            row["mcd_db"] = metrics.mcd_dtw(reference_voice(sentence), audio, audio_config)
        if audio_dir:
            save_wav(os.path.join(audio_dir, name, f"{index + 1:02d}.wav"), audio, sample_rate)
        rows.append(row)
    return {"system": name, "sample_rate": sample_rate, "summary": summarize(rows),
            "sentences": rows}


def summarize(rows: list[dict]) -> dict:
    """Corpus WER and CER (total errors over total reference words or
    characters, so long sentences weigh more) and mean DNSMOS."""
    summary = {"sentences": len(rows),
               "wer": sum(r["word_errors"] for r in rows) / max(1, sum(r["words"] for r in rows)),
               "cer": (sum(r["character_errors"] for r in rows)
                       / max(1, sum(r["characters"] for r in rows))),
               "seconds": float(sum(r["seconds"] for r in rows))}
    for key in [f"dnsmos_{k}" for k in DNSMOS_KEYS] + ["cpps_db", "mcd_db"]:
        values = [r[key] for r in rows if key in r]
        if values:
            summary[key] = float(np.mean(values))
    return summary


def format_table(results: list[dict]) -> str:
    """One line per system: WER, CER, DNSMOS OVRL / SIG / BAK, CPPS, MCD
    against the reference voice, seconds of audio."""
    header = (f"{'system':<22} {'WER':>6} {'CER':>6} {'OVRL':>5} {'SIG':>5} {'BAK':>5} "
              f"{'CPPS':>5} {'MCD dB':>6} {'audio s':>8}")
    lines = [header, "-" * len(header)]
    for result in results:
        s = result["summary"]
        mos = [f"{s[f'dnsmos_{k}']:5.2f}" if f"dnsmos_{k}" in s else f"{'-':>5}"
               for k in DNSMOS_KEYS]
        cpps = f"{s['cpps_db']:5.2f}" if "cpps_db" in s else f"{'-':>5}"
        mcd = f"{s['mcd_db']:6.2f}" if "mcd_db" in s else f"{'-':>6}"
        lines.append(f"{result['system']:<22} {s['wer']:6.3f} {s['cer']:6.3f} {' '.join(mos)} "
                     f"{cpps} {mcd} {s['seconds']:8.1f}")
    return "\n".join(lines)
