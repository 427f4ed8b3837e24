"""Speed and memory of an exported model's graph variants, side by side in one run.

  python tools/export_tts.py --checkpoint=... --out_dir=/tmp/bench_model --with_float32
  python tools/bench_tts.py --model_dir=/tmp/bench_model --output=out/bench_tts.json

Configurations: float32 graphs (the same weights as float constants), packed
graphs decoded in the graph (BitTTSTernaryDecode at every invoke, as on a
microcontroller), packed graphs decoded at load (constants for XNNPACK), and
the int8 graphs when the folder has them. Every round synthesizes each
sentence with each configuration in turn, so machine noise falls on all of
them alike. Real-time factor = synthesis time / audio duration; time to
first audio = from the call to the first samples. Peak memory is
each configuration's own process (ru_maxrss) after one synthesis, next to
the same process's before loading the model.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import os
import subprocess
import sys
import time

from absl import flags
from tqdm import tqdm

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Model folder (export with --with_float32 for the baseline).")
flags.DEFINE_string("output", "out/bench_tts.json", "JSON report, written atomically.")
flags.DEFINE_integer("rounds", 5, "Rounds over all configurations.", lower_bound=1)
# LiteRT's interpreter takes 1 or more (it has no "all cores" value).
flags.DEFINE_integer("num_threads", 1, "Interpreter threads.", lower_bound=1)
flags.DEFINE_list("sentences", [
    "The weather will be sunny tomorrow, with a light breeze from the west.",
    "Please turn left at the next corner and walk for two minutes.",
], "Sentences to synthesize.")
flags.register_validator("sentences", bool, message="--sentences is empty: give one or more")
flags.mark_flag_as_required("model_dir")
cli.output_flags(files=("output",))

# A fresh process loads the model and speaks once, in seconds: this stops a hung one.
MEMORY_TIMEOUT_SECONDS = 600

CONFIGURATIONS = [("float32", "float32", "load"), ("in-graph decode", "packed", "graph"),
                  ("decode at load", "packed", "load"), ("int8 in-graph decode", "int8", "graph"),
                  ("int8 decode at load", "int8", "load")]


def peak_memory(model_dir: str, variant: str, decode: str, sentence: str) -> dict:
    """Memory of a fresh process that loads the model and speaks once: its
    peak (ru_maxrss) and how much its resident set grew from just before
    the model was loaded (the runtime's imports already done)."""
    code = (
        "import resource\n"
        "from bittts_tf.runtime import TextToSpeech\n"
        "def rss():\n"
        "    with open('/proc/self/statm') as f:\n"
        "        return int(f.read().split()[1]) * resource.getpagesize()\n"
        "before = rss()\n"
        f"tts = TextToSpeech({model_dir!r}, {variant!r}, {decode!r}, {FLAGS.num_threads})\n"
        f"tts.synthesize({sentence!r})\n"
        "print(rss() - before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    what = f"peak memory of {variant} graphs, {decode} decode"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=MEMORY_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise cli.ToolError(f"{what}: the measuring process took over "
                            f"{MEMORY_TIMEOUT_SECONDS} s") from None
    fields = out.stdout.split()[-2:] if out.returncode == 0 else []
    if len(fields) != 2 or not all(v.lstrip("-").isdigit() for v in fields):
        last = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1]
        raise cli.ToolError(f"{what}: the measuring process failed ({last})")
    grown, peak = (int(v) for v in fields)
    return {"peak_rss_mib": round(peak / 1024, 1), "model_rss_mib": round(grown / 2**20, 2)}


def main(argv):
    del argv
    from bittts_tf import fileio
    from bittts_tf.runtime import ModelFolderError, TextError, TextToSpeech

    # Load every configuration the folder has.
    engines = {}
    for name, variant, decode in CONFIGURATIONS:
        try:
            engines[name] = TextToSpeech(FLAGS.model_dir, variant, decode, FLAGS.num_threads)
        except ModelFolderError as e:
            if "has no" not in str(e):
                sys.exit(f"bench_tts: {e}")
            print(f"skipping {name}: {e}")
    if not engines:
        sys.exit(f"bench_tts: {FLAGS.model_dir} has no graphs to run")
    # Every sentence is read now: one the front end refuses would otherwise
    # end the rounds part-way and lose every timing.
    first = next(iter(engines.values()))
    for sentence in FLAGS.sentences:
        try:
            first.segments(sentence)
        except TextError as e:
            raise cli.ToolError(f"--sentences: {e}") from None

    # Warm up (interpreter start, first allocations: a graph the interpreter
    # refuses is named here).
    for engine in engines.values():
        engine.synthesize(FLAGS.sentences[0])
    # Memory before the rounds, each in its own process: a failure there
    # costs no timings.
    memory = {name: peak_memory(FLAGS.model_dir, variant, decode, FLAGS.sentences[0])
              for name, variant, decode in CONFIGURATIONS if name in engines}

    # Alternate.
    totals = {name: {"seconds": 0.0, "audio_seconds": 0.0, "first_audio": []} for name in engines}
    for _ in tqdm(range(FLAGS.rounds), desc="rounds"):
        for sentence in FLAGS.sentences:
            for name, engine in engines.items():
                result = engine.synthesize(sentence)
                totals[name]["seconds"] += result.seconds
                totals[name]["audio_seconds"] += len(result.audio) / result.sample_rate
                totals[name]["first_audio"].append(result.time_to_first_audio)

    rows = {}
    for name, variant, decode in CONFIGURATIONS:
        if name not in engines:
            continue
        t = totals[name]
        rows[name] = {"variant": variant, "decode": decode,
                      "rtf": round(t["seconds"] / t["audio_seconds"], 4),
                      "time_to_first_audio_ms": round(1000 * sum(t["first_audio"])
                                                      / len(t["first_audio"]), 2),
                      **memory[name]}
    baseline = rows.get("float32")
    if baseline:
        for row in rows.values():
            row["rtf_vs_float32"] = round(row["rtf"] / baseline["rtf"], 3)

    print(f"\n{'configuration':22s} {'RTF':>7s} {'vs f32':>7s} {'1st audio':>10s} {'peak RSS':>9s} "
          f"{'model RSS':>10s}")
    for name, row in rows.items():
        print(f"{name:22s} {row['rtf']:7.4f} {row.get('rtf_vs_float32', float('nan')):7.3f} "
              f"{row['time_to_first_audio_ms']:8.2f}ms {row['peak_rss_mib']:7.1f}MiB "
              f"{row['model_rss_mib']:8.2f}MiB")
    report = {"model_dir": os.path.abspath(FLAGS.model_dir), "num_threads": FLAGS.num_threads,
              "rounds": FLAGS.rounds, "sentences": FLAGS.sentences,
              "step_frames": first.stream_shapes.step,
              "configurations": rows, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    fileio.atomic_write_json(FLAGS.output, report)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    cli.run(main)
