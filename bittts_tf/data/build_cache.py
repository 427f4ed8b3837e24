"""Extract (or reuse) the feature cache of a corpus.

  python -m bittts_tf.data.build_cache --corpus_dir=data/festival_corpus \\
      --cache_dir=data/festival_cache --preset=tiny

Reads an LJSpeech-format or LibriTTS-style folder, extracts features for every
usable utterance in parallel, and prints what was skipped and why. Run again
with the same settings it reuses the cache at once; with other settings it
rebuilds it.
"""

from __future__ import annotations

from bittts_tf import cli

if __name__ == "__main__":
    # Only when run: an import (or a spawned extraction worker, which imports
    # this module under another name) must not start a second stderr filter.
    cli.quiet_startup()

import time

from absl import flags

from bittts_tf.audio.config import PRESETS, preset
from bittts_tf.data.cache import build_feature_cache
from bittts_tf.data.libritts import load_libritts
from bittts_tf.data.ljspeech import load_ljspeech

FLAGS = flags.FLAGS
flags.DEFINE_string("corpus_dir", None, "Corpus folder.")
flags.DEFINE_enum("layout", "ljspeech", ["ljspeech", "libritts"], "Corpus folder layout.")
flags.DEFINE_string("cache_dir", None, "Where the features go.")
flags.DEFINE_enum("preset", "tiny", sorted(PRESETS), "Audio feature configuration.")
flags.DEFINE_integer("num_workers", None, "Parallel processes (default: all cores).")
flags.DEFINE_float("min_seconds", 0.3, "Shorter clips are skipped.")
flags.DEFINE_float("max_seconds", 20.0, "Longer clips are skipped.")
flags.mark_flags_as_required(["corpus_dir", "cache_dir"])


def main(argv):
    del argv
    start = time.time()
    load = load_ljspeech if FLAGS.layout == "ljspeech" else load_libritts
    utterances, report = load(FLAGS.corpus_dir, min_seconds=FLAGS.min_seconds,
                              max_seconds=FLAGS.max_seconds)
    print(f"{FLAGS.corpus_dir}: {len(utterances)} usable utterances, {len(report)} skipped by the loader",
          flush=True)
    cache = build_feature_cache(utterances, preset(FLAGS.preset), FLAGS.cache_dir, report=report,
                                num_workers=FLAGS.num_workers, min_seconds=FLAGS.min_seconds,
                                max_seconds=FLAGS.max_seconds)
    elapsed = time.time() - start
    print(cache.report.summary())
    if cache.stats.get("reused_manifest"):
        print(f"cache reused unchanged: {len(cache)} utterances in {elapsed:.2f} s")
    else:
        extracted = cache.stats["extracted"]
        rate = extracted / cache.stats["seconds"] if extracted else 0.0
        print(f"cache built: {len(cache)} utterances ({extracted} extracted, "
              f"{cache.stats['reused_files']} reused) in {elapsed:.1f} s; extraction "
              f"{rate:.2f} utt/s with {cache.stats['num_workers']} processes")


if __name__ == "__main__":
    cli.run(main)
