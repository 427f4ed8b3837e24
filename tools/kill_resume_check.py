"""Kills a tools/train.py run with SIGKILL part-way, reruns the same command,
and reports whether training continued at the step and loss where it stopped.

  python tools/kill_resume_check.py --kill_after_step=130 --report=out/joint_resume.json -- \
      --mode=joint --quantize=all --corpus=data/joint_cache --held_out=4 --batch_size=4 \
      --steps=200 --checkpoint_every=50 --output_dir=runs/joint_check

Everything after `--` goes to tools/train.py unchanged (the output directory
must be new). The killed run's per-step losses are kept aside before the
rerun; the steps the killed run logged after its last checkpoint are run
again by the rerun, and their losses must match. The report also gives each
loss's mean over the first and the last 20 steps (is it falling?) and
whether every logged loss is finite.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import json
import math
import os
import signal
import subprocess
import sys
import time

from absl import app, flags

from bittts_tf import fileio
from bittts_tf.training import checkpoints, run_log
from bittts_tf.training.resume_check import compare, falling

FLAGS = flags.FLAGS
flags.DEFINE_integer("kill_after_step", None, "SIGKILL the first run once it has logged this step.")
flags.DEFINE_string("report", None, "JSON file for the figures (optional).")
flags.DEFINE_float("timeout_minutes", 60, "Give up on either run after this long.")
flags.mark_flag_as_required("kill_after_step")
cli.output_flags(files=("report",))

TRAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")


def output_dir_of(train_args: list[str]) -> str:
    for arg in train_args:
        if arg.startswith("--output_dir="):
            return arg.split("=", 1)[1]
    raise app.UsageError("give tools/train.py an --output_dir=... after --")


def last_logged_step(output_dir: str) -> int:
    try:
        return max(run_log.read_losses(output_dir), default=0)
    except (FileNotFoundError, json.JSONDecodeError):   # not there yet, or a line half-written
        return 0


def run_until_killed(command: list[str], output_dir: str, kill_after_step: int, log) -> None:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60 * FLAGS.timeout_minutes
    while last_logged_step(output_dir) < kill_after_step:
        if process.poll() is not None:
            raise app.UsageError(f"train.py exited with {process.returncode} before step "
                                 f"{kill_after_step}; see {log.name}")
        if time.time() > deadline:
            process.kill()
            raise app.UsageError(f"step {kill_after_step} not reached in {FLAGS.timeout_minutes} min")
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()


def main(argv):
    train_args = argv[1:]
    output_dir = output_dir_of(train_args)
    if os.path.exists(os.path.join(output_dir, "losses.jsonl")):
        raise app.UsageError(f"{output_dir} already holds a run; give a new --output_dir")
    os.makedirs(output_dir, exist_ok=True)
    command = [sys.executable, TRAIN, *train_args]

    with open(os.path.join(output_dir, "killed_run.log"), "w") as log:
        started = time.time()
        run_until_killed(command, output_dir, FLAGS.kill_after_step, log)
    killed_losses = run_log.read_losses(output_dir)
    with open(os.path.join(output_dir, "losses.jsonl"), "rb") as f:   # the rerun rewrites it
        fileio.atomic_write_bytes(os.path.join(output_dir, "killed_losses.jsonl"), f.read())
    last = checkpoints.latest(os.path.join(output_dir, "checkpoints"))
    resumed_at = checkpoints.read_manifest(last)["step"] if last else 0
    print(f"killed after step {max(killed_losses)} ({time.time() - started:.0f} s); newest "
          f"checkpoint: {last or 'none'} (step {resumed_at})")

    with open(os.path.join(output_dir, "rerun.log"), "w") as log:
        rerun = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                               timeout=60 * FLAGS.timeout_minutes, check=False)
    if rerun.returncode:
        raise app.UsageError(f"the rerun exited with {rerun.returncode}; see {log.name}")
    with open(log.name) as f:
        said_resumed = any(f"at step {resumed_at}" in line and "resumed from" in line for line in f)
    losses = run_log.read_losses(output_dir)

    report = {"killed_after_step": max(killed_losses), "resumed_at_step": resumed_at,
              "rerun_said_resumed": said_resumed, "final_step": max(losses),
              "all_steps_logged_once": sorted(losses) == list(range(1, max(losses) + 1)),
              "all_finite": all(math.isfinite(v) for row in losses.values() for v in row.values()),
              **compare(killed_losses, losses, resumed_at), "losses": falling(losses)}
    print(json.dumps(report, indent=1))
    if FLAGS.report:
        fileio.atomic_write_json(FLAGS.report, report)


if __name__ == "__main__":
    cli.run(main)
