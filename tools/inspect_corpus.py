"""Print statistics of a speech corpus and draw one utterance's mel spectrogram.

Statistics: hours and utterances (per speaker), clip-length histogram, phone
coverage of the symbol set, how the G2P resolved the transcript words
(dictionary / compound / spelled / rules), and, for corpora with festival
timings, how well the phone durations cover the audio. The PNG shows the log-mel
spectrogram with phone boundaries and labels: festival's when the corpus has
them, otherwise none can be drawn and only the mel is shown.

Example:
  python tools/inspect_corpus.py --corpus_dir=data/festival_corpus --png=out/mel.png
"""

from __future__ import annotations

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import collections
import math
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bittts_tf.audio.config import PRESETS, preset  # noqa: E402
from bittts_tf.audio.features import durations_to_frames, log_mel  # noqa: E402
from bittts_tf.audio.io import load_wav, probe  # noqa: E402
from bittts_tf.data.libritts import load_libritts  # noqa: E402
from bittts_tf.data.ljspeech import load_ljspeech  # noqa: E402
from bittts_tf.text.festival import festival_to_symbol, merge_pauses  # noqa: E402
from bittts_tf.text.g2p import G2P, tokenize  # noqa: E402
from bittts_tf.text.symbols import SymbolTable  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("corpus_dir", None, "Corpus folder.")
flags.DEFINE_enum("layout", "ljspeech", ["ljspeech", "libritts"], "Corpus folder layout.")
flags.DEFINE_string("png", None, "Where to save the mel spectrogram picture (optional).")
flags.DEFINE_string("utt_id", None, "Utterance to draw (default: the first).")
flags.DEFINE_enum("preset", "tiny", sorted(PRESETS), "Audio configuration for the mel.")
flags.DEFINE_float("bin_seconds", 1.0, "Width of the clip-length histogram bins.")
flags.register_validator("bin_seconds", lambda v: math.isfinite(v) and v > 0,
                         message="--bin_seconds must be a finite number of seconds above 0")
flags.mark_flag_as_required("corpus_dir")
cli.output_flags(files=("png",))


def histogram(seconds: list[float], width: float) -> str:
    edges = np.arange(0, max(seconds) + width, width)
    counts, _ = np.histogram(seconds, np.append(edges, edges[-1] + width))
    top = max(counts.max(), 1)
    return "\n".join(f"  {lo:5.1f}-{lo + width:5.1f} s {n:6d} {'#' * int(round(40 * n / top))}"
                     for lo, n in zip(edges, counts) if n or lo < max(seconds))


def phone_symbols(utt, g2p: G2P) -> list[str]:
    if utt.festival_phones:
        return [festival_to_symbol(p, s) for p, s in zip(utt.festival_phones, utt.festival_stress)]
    return [p for w in tokenize(utt.normalized) if w[0].isalpha() for p in g2p.word(w)]


def draw(utt, png: str, cfg) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    audio, _ = load_wav(utt.wav_path, cfg.sample_rate)
    mel = log_mel(audio, cfg)
    fig, ax = plt.subplots(figsize=(max(8, len(mel) / 25), 4.5))
    ax.imshow(mel.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
    if utt.festival_phones:
        symbols = [festival_to_symbol(p, s) for p, s in zip(utt.festival_phones, utt.festival_stress)]
        symbols, ends = merge_pauses(symbols, utt.festival_ends)
        durations = durations_to_frames(np.asarray(ends), len(mel), cfg)
        bounds = np.cumsum(durations)
        for start, end, symbol in zip(bounds - durations, bounds, symbols):
            ax.axvline(end - 0.5, color="white", linewidth=0.6, alpha=0.8)
            ax.text((start + end) / 2 - 0.5, cfg.n_mels + 1, symbol, ha="center", va="bottom",
                    fontsize=7, rotation=90)
    ax.set_xlabel(f"frame (hop {cfg.hop_length} at {cfg.sample_rate} Hz)")
    ax.set_ylabel("mel bin")
    ax.set_title(f"{utt.utt_id} [{utt.speaker}]: {utt.text[:90]}", fontsize=9, pad=28)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
    tmp = png + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, png)


def main(argv):
    del argv
    load = load_ljspeech if FLAGS.layout == "ljspeech" else load_libritts
    utterances, report = load(FLAGS.corpus_dir, min_seconds=0.0, max_seconds=float("inf"))
    if not utterances:
        print(report.summary())
        raise cli.ToolError(f"{FLAGS.corpus_dir}: no usable utterances (the reasons are above)")

    seconds = {}
    for u in utterances:
        frames, sr = probe(u.wav_path)
        seconds[u.utt_id] = frames / sr
    total = sum(seconds.values())
    print(f"corpus {FLAGS.corpus_dir}: {len(utterances)} utterances, {total / 3600:.3f} hours "
          f"(mean {total / len(utterances):.2f} s, min {min(seconds.values()):.2f} s, "
          f"max {max(seconds.values()):.2f} s)")
    by_speaker = collections.defaultdict(list)
    for u in utterances:
        by_speaker[u.speaker].append(seconds[u.utt_id])
    for speaker, values in sorted(by_speaker.items()):
        print(f"  speaker {speaker}: {len(values)} utterances, {sum(values) / 3600:.3f} hours")
    print(report.summary())

    print(f"clip lengths:\n{histogram(list(seconds.values()), FLAGS.bin_seconds)}")

    g2p = G2P()
    table = SymbolTable()
    phone_counts = collections.Counter()
    for u in utterances:
        phone_counts.update(phone_symbols(u, g2p))
    counted = G2P()
    for u in utterances:
        for token in tokenize(u.normalized):
            if token[0].isalpha():
                counted.word(token)
    n_words = sum(counted.counts.values())
    if n_words == 0:
        raise cli.ToolError(f"{FLAGS.corpus_dir}: its transcripts hold no words to read")
    shares = ", ".join(f"{src} {counted.counts[src]} ({100 * counted.counts[src] / n_words:.2f}%)"
                       for src in G2P.SOURCES)
    print(f"G2P over {n_words} transcript words: {shares}")
    used = [s for s in table.symbols[1:] if phone_counts[s]]
    missing = [s for s in table.symbols[1:] if not phone_counts[s]]
    source = "festival segments" if any(u.festival_phones for u in utterances) else "G2P"
    print(f"phone coverage ({source}): {len(used)} of {len(table) - 1} symbols used, "
          f"{sum(phone_counts.values())} phones; unused: {' '.join(missing) or 'none'}")
    print("  most common: " + " ".join(f"{s}:{n}" for s, n in phone_counts.most_common(12)))
    print("  rarest used: " + " ".join(f"{s}:{n}" for s, n in phone_counts.most_common()[-8:]))

    timed = [u for u in utterances if u.festival_ends]
    if timed:
        gaps = [(abs(seconds[u.utt_id] - u.festival_ends[-1]), u.utt_id) for u in timed]
        worst = max(gaps)
        print(f"phone durations: {len(timed)} utterances timed; worst |wav length - sum of "
              f"durations| = {worst[0] * 1000:.2f} ms ({worst[1]}), mean {np.mean([g for g, _ in gaps]) * 1000:.2f} ms")

    if FLAGS.png:
        chosen = [u for u in utterances if u.utt_id == FLAGS.utt_id] if FLAGS.utt_id else utterances[:1]
        if not chosen:
            raise app.UsageError(f"--utt_id={FLAGS.utt_id} is not a usable utterance of the corpus")
        draw(chosen[0], FLAGS.png, preset(FLAGS.preset))
        print(f"mel spectrogram of {chosen[0].utt_id} saved to {FLAGS.png}")


if __name__ == "__main__":
    cli.run(main)
