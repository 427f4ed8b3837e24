"""Learned phone durations of an acoustic checkpoint against the corpus's
ground-truth (festival) durations, on the utterances its run held out.

  python tools/eval_alignment.py --checkpoint=runs/am --corpus=data/festival_cache

Prints the mean absolute phone boundary error (the figure training logs as
alignment_boundary_ms), its signed mean (a systematic early or late bias shows
here), the median, the share of boundaries more than two frames off, and the
same split by speaker and by whether a boundary touches a pause.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import json

import numpy as np
from absl import app, flags

from bittts_tf import fileio
from bittts_tf.data.cache import FeatureCache
from bittts_tf.training.checkpoints import resolve
from bittts_tf.training import checkpoints

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Acoustic (or joint) checkpoint, or its run directory.")
flags.DEFINE_string("corpus", None, "Feature cache with ground-truth durations.")
flags.DEFINE_integer("batch_size", 16, "Utterances per forward pass.")
flags.DEFINE_string("output", None, "Optional JSON file for the figures.")
flags.mark_flags_as_required(["checkpoint", "corpus"])
cli.output_flags(files=("output",))


def main(argv):
    del argv
    path = resolve(FLAGS.checkpoint, f"--checkpoint={FLAGS.checkpoint}")
    manifest = checkpoints.read_manifest(path)
    config = checkpoints.model_config(path, manifest)
    symbols = checkpoints.front_end(path, manifest).symbols
    cache = FeatureCache(FLAGS.corpus)   # before the model: a bad corpus is refused at once
    utterances = [cache.load(i) for i in manifest["held_out_ids"]]
    if any("durations" not in u for u in utterances):
        raise app.UsageError(f"{FLAGS.corpus} has no ground-truth durations")
    # TensorFlow: once the checkpoint and the corpus are known good.
    from bittts_tf.eval.alignment_metrics import boundary_error_summary, boundary_errors_frames
    from bittts_tf.models import build
    from bittts_tf.training import data
    acoustic = build.build_acoustic(config)
    checkpoints.restore(path, {"acoustic": acoustic})

    groups = {"all": []}
    for start in range(0, len(utterances), FLAGS.batch_size):
        chunk = utterances[start:start + FLAGS.batch_size]
        batch = data.pad_batch(chunk, config.audio.hop_length)
        learned = np.asarray(acoustic(batch, training=False)["durations"])
        for i, u in enumerate(chunk):
            n = len(u["phonemes"])
            errors = boundary_errors_frames(learned[i, :n], u["durations"])
            is_pause = np.asarray(u["phonemes"]) == symbols.pause_id
            pause = is_pause[:-1] | is_pause[1:]
            groups["all"].extend(errors)
            groups.setdefault(f"speaker {int(u.get('speaker', 0))}", []).extend(errors)
            groups.setdefault("touching a pause", []).extend(errors[pause])
            groups.setdefault("between two phones", []).extend(errors[~pause])
    frame_ms = 1000.0 * config.audio.hop_length / config.audio.sample_rate
    report = {"checkpoint": path, "step": manifest["step"], "utterances": len(utterances),
              "frame_ms": frame_ms,
              **{name: boundary_error_summary(e, frame_ms) for name, e in groups.items() if e}}
    print(json.dumps(report, indent=1))
    if FLAGS.output:
        fileio.atomic_write_json(FLAGS.output, report)


if __name__ == "__main__":
    cli.run(main)
