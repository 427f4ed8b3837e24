"""Trains, exports and scores the voices of the paper's table at CPU scale
(issue 25): one recipe, the same CPU budget for every voice, so that a table
(tools/paper_table.py) can compare them.

  nohup nice -n 19 python tools/paper_voices.py > runs/paper/driver.log 2>&1 &
  python tools/paper_voices.py --dry_run          # the commands and how far each stage got; nothing run

The voices (--voices; the paper's table, the first five, in this order by
default):
  float32        the tiny config, no quantization
  ternary_all    ternary acoustic model and vocoder
  ternary_am     ternary acoustic model, float32 vocoder
  4bit           4-bit acoustic model and vocoder
  float32_small  float32, its widths cut to about ternary_all's bytes
  float32_src    the shipped voice's architecture (frame F0 head, source-phase
                 vocoder: see below), no quantization; with a joint stage
  ternary_src    the same, ternary (the spectral head too, as shipped)

Each voice, on the same recipe (models/slt_tiny/README.md, "How the voice was
first made"), with the CPU budget of --acoustic_minutes + --finetune_minutes
(25 + 95 = 120 CPU minutes; + --joint_minutes for a source-phase voice):
  1. acoustic     the acoustic model until 25 CPU minutes; the last 3
                  checkpoints within them averaged;
  2. warmup       the vocoder on the spectral losses until 30 CPU minutes;
  3. adversarial  from the warm-up's last checkpoint within 30 minutes, against
                  period discriminators, until 62 minutes (the vocoder's CPU
                  carries over from stage to stage); the last 2 within averaged;
  4. finetune     from that average, on the averaged acoustic model's mels,
                  until 95 minutes; the last 2 within averaged;
  5. export       the model folder (with its int8 variant, --int8_utterances);
  6. evaluate     tools/evaluate.py --set=test (WER, CER, DNSMOS; the clips kept
                  for the MCD against festival's);
  7. bench        tools/bench_tts.py on one thread (real-time factor);
  8. budget       tools/budget.py (flash and arena of the int8 graphs).
After the first voice's scoring, festival's own voice (the teacher) speaks the
same test sentences once (--systems=festival): the table's reference row and
the MCD's reference clips.

The source-phase voices (float32_src, ternary_src) have the architecture and
recipe of the shipped voice since 2026-12-06 (models/slt_tiny/README.md): in
every stage --acoustic_config=dropout=0.0,frame_f0=true (a frame-level log-F0
and voicing head, trained by its own losses in the acoustic stage) and
--vocoder_config=[quantize_head=true,]source_phase_cutoff=4000,
source_f0_input=false (in vocoder mode the source phase takes the corpus's
F0, with --teacher_acoustic too). After stage 4 they go on:
  4b. pair       tools/pair_checkpoints.py: the averaged acoustic model and the
                 averaged fine-tuned vocoder in one checkpoint, weights only
                 (latent ternary weights and aligner as trained): a joint run
                 starts from it at step 0 with fresh optimizers and 0 CPU
                 seconds;
  4c. joint      tools/train.py --mode=joint from the pair, with the shipped
                 joint flags (learning rate 1e-4, ground-truth durations, the
                 recording's F0 for the source phase, period discriminators
                 after 300 steps), until --joint_minutes of its own CPU time;
                 the last 2 checkpoints within averaged;
and stages 5-8 export the joint average (both models from it). --joint_minutes
is 0 by default (no joint stage): these voices run only when named, with it.
The float32 twin of the shipped ternary voice at its lineage's CPU time
(acoustic 36.6, vocoder 295.7: warm-up 27.8, adversarial to 61.9; joint
212.5; about 545 CPU minutes):

  nohup nice -n 5 python tools/paper_voices.py --voices=float32_src --root=runs/twin \
      --out=out/twin --acoustic_minutes=36.6 --warmup_minutes=27.8 \
      --adversarial_minutes=61.9 --finetune_minutes=295.7 --joint_minutes=212.5 \
      --nofestival > runs/twin.log 2>&1 &

train.py stops a run at its first checkpoint past the budget and keeps only
its last 3 checkpoints, so every checkpoint is hard-linked into the run's
kept/ folder as it appears, and the averages take the last ones whose CPU
time is within the budget: the weights of a voice never cost more than its
budget (the checkpoint past it is trained but not used).

Files: runs (checkpoints, logs) under --root/VOICE/ (am, voc_warmup, voc_adv,
voc_ft, joint, logs/STAGE.log), averages and scores under --out/VOICE/
(am_avg3.npz, voc_adv_avg2.npz, voc_ft_avg2.npz, pair.npz, joint_avg2.npz,
model/, eval_test.json, eval_test_wavs/, bench_tts.json, budget.json). A
stage that finished has a marker, --root/VOICE/done/STAGE.json (written
atomically), and is skipped; a stage that was killed starts again, and a
training stage resumes from its newest checkpoint. So after a kill, run the
same command again (one driver at a time per --root: a second one waits for
the first; the stage's command dies with the driver). A stage that fails ends its voice (the others go on); the exit
status is then 1. Paths are relative to the folder the driver runs in: the
repository's.

Scoring a voice (11-13 wall minutes for the 254 test sentences) keeps one core
busy; a second driver keeps the other: its own --root and voices, the same
--out, and --nofestival (festival is scored once):

  nohup nice -n 5 python tools/paper_voices.py --voices=ternary_all,float32_small,float32 \
      > runs/paper/driver.log 2>&1 &
  nohup nice -n 5 python tools/paper_voices.py --root=runs/paper_b --voices=ternary_am,4bit \
      --nofestival > runs/paper_b/driver.log 2>&1 &
"""

from bittts_tf import cli

cli.quiet_startup()   # first, as every tool (this one loads no TensorFlow)

import ctypes
import dataclasses
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

from absl import flags

from bittts_tf import fileio
from bittts_tf.training import checkpoints

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Voice:
    """How a voice differs from the others: each training run's --quantize
    covers the model it trains."""
    acoustic_quantize: str
    vocoder_quantize: str
    weight_bits: str = ""             # "" : train.py's default (1.58, ternary)
    acoustic_config: tuple = ()       # field=value overrides of the tiny preset
    vocoder_config: tuple = ()
    # A last stage fine-tuning both models together (train.py --mode=joint)
    # from the pair of averages; the model folder is exported from it.
    joint: bool = False

    @property
    def joint_quantize(self) -> str:
        """The joint run's --quantize: both models' scopes together."""
        return {("none", "none"): "none", ("acoustic", "none"): "acoustic",
                ("none", "vocoder"): "vocoder",
                ("acoustic", "vocoder"): "all"}[(self.acoustic_quantize, self.vocoder_quantize)]


# float32_small: every width of the tiny preset cut (depths and kernels kept)
# to 244,205 deployed parameters, 976,820 bytes as float32
# (bittts_tf.models.size), against ternary_all's 992,847 deployed bytes (the
# tiny config, ternary convs, the float spectral head).
SMALL_ACOUSTIC = ("encoder_channels=48", "decoder_channels=32", "duration_channels=32",
                  "pitch_channels=32", "energy_channels=32")
SMALL_VOCODER = ("channels=40", "hidden_channels=128")

# The shipped voice's architecture since 2026-12-06 (models/slt_tiny/README.md):
# a frame F0 head on the acoustic model, the source phase below 4 kHz in the
# vocoder (no F0 input features), and a joint fine-tune of the pair. The
# ternary one's spectral head is ternary too, as shipped.
SOURCE_ACOUSTIC = ("frame_f0=true",)
SOURCE_VOCODER = ("source_phase_cutoff=4000", "source_f0_input=false")

VOICES = {
    "float32": Voice("none", "none"),
    "ternary_all": Voice("acoustic", "vocoder"),
    "ternary_am": Voice("acoustic", "none"),
    "4bit": Voice("acoustic", "vocoder", weight_bits="4"),
    "float32_small": Voice("none", "none", acoustic_config=SMALL_ACOUSTIC,
                           vocoder_config=SMALL_VOCODER),
    "float32_src": Voice("none", "none", acoustic_config=SOURCE_ACOUSTIC,
                         vocoder_config=SOURCE_VOCODER, joint=True),
    "ternary_src": Voice("acoustic", "vocoder", acoustic_config=SOURCE_ACOUSTIC,
                         vocoder_config=("quantize_head=true",) + SOURCE_VOCODER, joint=True),
}
# The paper's table: the voices made unless --voices names others.
PAPER_VOICES = ["float32", "ternary_all", "ternary_am", "4bit", "float32_small"]

FLAGS = flags.FLAGS
flags.DEFINE_list("voices", PAPER_VOICES, "Voices to make, in order (default: the paper's "
                  f"table); one or more of {', '.join(VOICES)}. "
                  f"{', '.join(v for v in VOICES if VOICES[v].joint)} end with a joint stage "
                  "(--joint_minutes).")
flags.DEFINE_string("root", "runs/paper", "Training runs, logs and stage markers: ROOT/VOICE/.")
flags.DEFINE_string("out", "out/paper", "Averaged checkpoints, model folders and scores: OUT/VOICE/.")
flags.DEFINE_string("corpus", "data/slt_varied_cache", "Feature cache (or synthetic:N for a smoke run).")
flags.DEFINE_string("config", "tiny", "Model size preset.")
flags.DEFINE_integer("held_out", 20, "Utterances held out of training (train.py --held_out).")
flags.DEFINE_integer("batch_size", 16, "Utterances per batch.")
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints of every run.")
flags.DEFINE_integer("media_every", 5000, "Steps between TensorBoard audio and images.")
flags.DEFINE_float("acoustic_minutes", 25.0, "CPU minutes of the acoustic model.")
flags.DEFINE_float("warmup_minutes", 30.0, "CPU minutes of the vocoder's spectral warm-up.")
flags.DEFINE_float("adversarial_minutes", 62.0,
                   "The vocoder's CPU minutes at the end of the adversarial stage (warm-up included).")
flags.DEFINE_float("finetune_minutes", 95.0,
                   "The vocoder's CPU minutes at the end of the fine-tuning (all its stages).")
flags.DEFINE_float("joint_minutes", 0.0,
                   "CPU minutes of the joint stage (both models together, from the pair of "
                   "averages; its own CPU time, none carried over) of the voices that have one "
                   f"({', '.join(v for v in VOICES if VOICES[v].joint)}); 0: no joint stage, and "
                   "those voices are refused.", lower_bound=0.0)
flags.DEFINE_string("int8_corpus", None, "Feature cache calibrating the int8 graphs "
                    "(default: --corpus when it is a cache).")
flags.DEFINE_integer("int8_utterances", 64, "Calibration utterances of the int8 graphs (0: no "
                     "int8 variant, and no int8 budget).")
flags.DEFINE_integer("eval_limit", 0, "Score only the first N test sentences (0: all; for smoke runs).")
flags.DEFINE_integer("bench_rounds", 3, "Rounds of tools/bench_tts.py.")
flags.DEFINE_boolean("festival", True, "Score festival's own voice on the test sentences once, "
                     "after the first voice (--nofestival: another driver does).")
flags.DEFINE_boolean("dry_run", False, "Print each stage's command (or that it is done, or how far "
                     "an unfinished training stage got: step and CPU minutes); run nothing.")
flags.DEFINE_string("python", sys.executable, "The Python that runs the tools.")


# Every run's --steps: the CPU budget stops it long before.
STEPS = 200000
flags.register_validator("checkpoint_every", lambda every: every > 0 and STEPS % every == 0,
                         message=f"--checkpoint_every must divide {STEPS}")
# train.py reads --max_cpu_minutes <= 0 as no limit: here that would train
# for all STEPS, so every budget is positive, and each vocoder stage ends
# after the one before (a stage that starts over its budget stops at once
# and leaves no checkpoint for the next).
flags.register_validator("acoustic_minutes", lambda minutes: minutes > 0,
                         message="--acoustic_minutes must be positive")
flags.register_multi_flags_validator(
    ["warmup_minutes", "adversarial_minutes", "finetune_minutes"],
    lambda f: 0 < f["warmup_minutes"] < f["adversarial_minutes"] < f["finetune_minutes"],
    message="the vocoder's budgets must grow: 0 < --warmup_minutes < --adversarial_minutes "
            "< --finetune_minutes (each is the vocoder's CPU minutes at the end of its stage)")
flags.register_validator("voices", lambda voices: bool(voices),
                         message="--voices: name one or more voices")
cli.output_flags(folders=("out",))


class StageFailed(RuntimeError):
    """A stage's command failed; its log says why."""


# ---------------------------------------------------------------------------
# The story: one voice, stage by stage.
# ---------------------------------------------------------------------------

def make_voice(stages: "Stages", name: str) -> str:
    """Every stage of voice `name`; returns its model folder."""
    voice = VOICES[name]
    run = lambda folder: os.path.join(FLAGS.root, name, folder)   # noqa: E731
    out = lambda file: os.path.join(FLAGS.out, name, file)         # noqa: E731

    # 1. The acoustic model; the last three checkpoints within its budget averaged.
    am = stages.train(name, "acoustic", acoustic_flags(voice, run("am")),
                      run("am"), FLAGS.acoustic_minutes, keep=3)
    am_average = stages.average(name, "acoustic_average", am, out("am_avg3.npz"))

    # 2. The vocoder's spectral warm-up.
    warmup = stages.train(name, "warmup", vocoder_flags(voice, run("voc_warmup"),
                                                         FLAGS.warmup_minutes),
                          run("voc_warmup"), FLAGS.warmup_minutes, keep=1)
    warm_checkpoint, warm_step = chosen(warmup, "the warm-up's last checkpoint within budget")

    # 3. Adversarial, against period discriminators only, from that checkpoint.
    adversarial = stages.train(name, "adversarial", vocoder_flags(
        voice, run("voc_adv"), FLAGS.adversarial_minutes, adversarial=True,
        init_from=warm_checkpoint, warmup_steps=warm_step),
        run("voc_adv"), FLAGS.adversarial_minutes, keep=2)
    adversarial_average = stages.average(name, "adversarial_average", adversarial,
                                         out("voc_adv_avg2.npz"))

    # 4. Fine-tuning on the averaged acoustic model's mels.
    finetune = stages.train(name, "finetune", vocoder_flags(
        voice, run("voc_ft"), FLAGS.finetune_minutes, adversarial=True,
        init_from=adversarial_average, warmup_steps=warm_step, teacher=am_average),
        run("voc_ft"), FLAGS.finetune_minutes, keep=2)
    vocoder_average = stages.average(name, "finetune_average", finetune, out("voc_ft_avg2.npz"))
    sources = {"checkpoint": am_average, "vocoder_checkpoint": vocoder_average}

    if voice.joint:
        # 4b. Both models together, from the pair of averages: one checkpoint
        # holding both (weights only: the joint run starts at step 0 and 0
        # CPU seconds, so its budget is its own); the last 2 within averaged.
        pair = out("pair.npz")
        stages.command(name, "pair", tool("pair_checkpoints.py", acoustic=am_average,
                                          vocoder=vocoder_average, output=pair))
        joint = stages.train(name, "joint", joint_flags(voice, run("joint"), pair),
                             run("joint"), FLAGS.joint_minutes, keep=2)
        # A joint checkpoint holds the vocoder too: export takes both from it.
        sources = {"checkpoint": stages.average(name, "joint_average", joint,
                                                out("joint_avg2.npz"))}

    # 5-8. The model folder, scored like every other.
    model = out("model")
    stages.command(name, "export", tool("export_tts.py", **sources, out_dir=model,
                                        **int8_flags()))
    stages.command(name, "evaluate", tool("evaluate.py", model_dir=model, set="test",
                                          systems="model", audio_dir=out("eval_test_wavs"),
                                          output=out("eval_test.json"), **limit_flags()))
    stages.command(name, "bench", tool("bench_tts.py", model_dir=model, num_threads=1,
                                       rounds=FLAGS.bench_rounds, output=out("bench_tts.json")))
    stages.command(name, "budget", tool("budget.py", model_dir=model, variants="packed,int8",
                                        output=out("budget.json")))

    return model


def speak_festival(stages: "Stages", model: str) -> None:
    """Festival's own voice on the same test sentences, once (evaluate.py
    takes the audio config from a model folder)."""
    reference = os.path.join(FLAGS.out, "festival")
    stages.command("festival", "evaluate", tool(
        "evaluate.py", model_dir=model, set="test", systems="festival",
        audio_dir=os.path.join(reference, "eval_test_wavs"),
        output=os.path.join(reference, "eval_test.json"), **limit_flags()))


def acoustic_config(voice: Voice) -> str:
    return ",".join(("dropout=0.0",) + voice.acoustic_config)


def acoustic_flags(voice: Voice, output_dir: str) -> list[str]:
    return tool("train.py", mode="acoustic", **common_flags(voice, voice.acoustic_quantize),
                learning_rate="2e-3", lr_decay_rate=0.985, use_ground_truth_durations=True,
                binarization_start_step=300, acoustic_config=acoustic_config(voice),
                max_cpu_minutes=FLAGS.acoustic_minutes, output_dir=output_dir)


def vocoder_flags(voice: Voice, output_dir: str, minutes: float, adversarial: bool = False,
                  init_from: str = "", warmup_steps=30000, teacher: str = "") -> list[str]:
    """The warm-up's flags; an adversarial stage keeps only the period
    discriminators (n_scales=0) and starts them at `warmup_steps`."""
    vocoder_config = (("n_scales=0",) if adversarial else ()) + voice.vocoder_config
    return tool("train.py", mode="vocoder", **common_flags(voice, voice.vocoder_quantize),
                segment_frames=48, learning_rate="1e-3", lr_decay_rate=0.995, stft_loss_weight=9,
                vocoder_config=",".join(vocoder_config),
                # A joint voice names its acoustic config in every stage (the
                # source-phase vocoder takes the corpus's F0 in vocoder mode).
                acoustic_config=acoustic_config(voice) if voice.joint else "",
                init_from=init_from, generator_warmup_steps=warmup_steps,
                teacher_acoustic=teacher, max_cpu_minutes=minutes, output_dir=output_dir)


def joint_flags(voice: Voice, output_dir: str, init_from: str) -> list[str]:
    """The shipped voice's joint fine-tune (models/slt_tiny/README.md): the
    acoustic model's mels (ground-truth durations) feed the vocoder, the
    recording's F0 drives the source phase (--target_f0_steps past any
    budget), fresh period discriminators after 300 steps."""
    return tool("train.py", mode="joint", **common_flags(voice, voice.joint_quantize),
                segment_frames=48, learning_rate="1e-4", lr_decay_rate=0.995, stft_loss_weight=9,
                vocoder_config=",".join(("n_scales=0",) + voice.vocoder_config),
                acoustic_config=acoustic_config(voice), use_ground_truth_durations=True,
                init_from=init_from, target_f0_steps=1000000, generator_warmup_steps=300,
                max_cpu_minutes=FLAGS.joint_minutes, output_dir=output_dir)


def common_flags(voice: Voice, quantize: str) -> dict:
    return dict(config=FLAGS.config, quantize=quantize, weight_bits=voice.weight_bits,
                corpus=FLAGS.corpus, held_out=FLAGS.held_out, batch_size=FLAGS.batch_size,
                checkpoint_every=FLAGS.checkpoint_every, media_every=FLAGS.media_every,
                steps=STEPS)


def int8_flags() -> dict:
    corpus = FLAGS.int8_corpus or (None if FLAGS.corpus.startswith("synthetic:") else FLAGS.corpus)
    if not FLAGS.int8_utterances or not corpus:
        return {}
    return {"int8_corpus": corpus, "int8_utterances": FLAGS.int8_utterances}


def limit_flags() -> dict:
    return {"limit": FLAGS.eval_limit} if FLAGS.eval_limit else {}


def tool(script: str, **options) -> list[str]:
    """[python, tools/SCRIPT, --name=value ...]; empty options are left out,
    True is a bare --name."""
    command = [FLAGS.python, os.path.relpath(os.path.join(REPO, "tools", script))]
    for name, value in options.items():
        if value is None or value == "" or value is False:
            continue
        if isinstance(value, float):
            value = f"{value:g}"
        command.append(f"--{name}" if value is True else f"--{name}={value}")
    return command


def chosen(record: dict | None, placeholder: str) -> tuple[str, object]:
    """(checkpoint, step) a training stage chose, or placeholders in a dry run."""
    if record is None:
        return f"<{placeholder}>", "<its step>"
    last = record["chosen"][-1]
    return last["path"], last["step"]


# ---------------------------------------------------------------------------
# The machinery: markers, logs, checkpoints kept, commands run.
# ---------------------------------------------------------------------------

class Stages:
    def __init__(self, dry_run: bool):
        self.dry_run = dry_run
        self.failed: list[str] = []
        self.printed: set[str] = set()   # a dry run names each stage once

    def marker(self, voice: str, stage: str) -> str:
        return os.path.join(FLAGS.root, voice, "done", stage + ".json")

    def done(self, voice: str, stage: str) -> dict | None:
        path = self.marker(voice, stage)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def command(self, voice: str, stage: str, command: list[str], finish=None,
                note: str = "") -> dict | None:
        """Runs `command` unless the stage is done; `finish()` adds to the
        marker. A dry run prints `note` before the command."""
        record = self.done(voice, stage)
        label = f"{voice}/{stage}"
        if record is not None:
            print(f"{label}: done ({self.marker(voice, stage)})", flush=True)
            return record
        if self.dry_run:
            if label not in self.printed:
                print(f"{label}: {note}{shlex.join(command)}", flush=True)
            self.printed.add(label)
            return None
        log = os.path.join(FLAGS.root, voice, "logs", stage + ".log")
        print(f"{now()} {label}: started; log {log}", flush=True)
        start = time.time()
        run_logged(command, log, keeper=finish)
        record = {"stage": stage, "command": command, "log": log,
                  "wall_minutes": round((time.time() - start) / 60, 2), "finished_at": now()}
        if finish is not None:
            record.update(finish())
        fileio.atomic_write_json(self.marker(voice, stage), record)
        print(f"{now()} {label}: done in {record['wall_minutes']} wall minutes", flush=True)
        return record

    def train(self, voice: str, stage: str, command: list[str], run_dir: str, minutes: float,
              keep: int) -> dict | None:
        """A train.py run; its marker names the `keep` last checkpoints within
        `minutes` of CPU time."""
        kept = Keeper(run_dir)
        note = ""
        if self.dry_run and self.done(voice, stage) is None:
            # A run that spans sessions: how far the killed or running stage got.
            reached = progress(run_dir)
            if reached is not None:
                note = (f"under way, {reached['cpu_minutes']:.1f} of {minutes:g} CPU minutes "
                        f"at step {reached['step']}; ")
        return self.command(voice, stage, command, finish=_Finish(kept, minutes, keep),
                            note=note)

    def average(self, voice: str, stage: str, trained: dict | None, output: str) -> str:
        """The average of the checkpoints `trained` chose, as `output`."""
        if trained is not None:
            paths = [c["path"] for c in trained["chosen"]]
            self.command(voice, stage, tool("average_checkpoints.py",
                                            checkpoints=",".join(paths), output=output))
        elif self.dry_run:
            print(f"{voice}/{stage}: {shlex.join(tool('average_checkpoints.py'))} "
                  f"--checkpoints=<the chosen checkpoints> --output={output}", flush=True)
        return output


class Keeper:
    """Hard-links every checkpoint of a run into its kept/ folder, so the ones
    train.py deletes (it keeps 3) can still be averaged."""

    def __init__(self, run_dir: str):
        self.source = os.path.join(run_dir, "checkpoints")
        self.kept = os.path.join(run_dir, "kept")

    def sweep(self) -> None:
        os.makedirs(self.kept, exist_ok=True)
        for path in checkpoints.list_checkpoints(self.source):
            target = os.path.join(self.kept, os.path.basename(path))
            if not os.path.exists(target):
                try:
                    os.link(path, target)
                except FileNotFoundError:   # deleted by train.py meanwhile
                    pass

    def all(self) -> list[dict]:
        """Every checkpoint kept: path, step, CPU seconds, oldest first."""
        self.sweep()
        rows = []
        for path in checkpoints.list_checkpoints(self.kept):
            manifest = checkpoints.read_manifest(path)
            rows.append({"path": path, "step": int(manifest["step"]),
                         "cpu_minutes": round(float(manifest.get("cpu_seconds", 0.0)) / 60, 3)})
        return rows


def progress(run_dir: str) -> dict | None:
    """Step and CPU minutes of the newest checkpoint a run wrote (in its
    checkpoints/ or kept/ folder), read without writing anything; None
    before its first."""
    newest = [paths[-1] for paths in (checkpoints.list_checkpoints(os.path.join(run_dir, folder))
                                      for folder in ("checkpoints", "kept")) if paths]
    if not newest:
        return None
    manifest = max((checkpoints.read_manifest(path) for path in newest),
                   key=lambda m: int(m["step"]))
    return {"step": int(manifest["step"]),
            "cpu_minutes": float(manifest.get("cpu_seconds", 0.0)) / 60}


@dataclasses.dataclass
class _Finish:
    keeper: Keeper
    minutes: float
    keep: int

    def sweep(self) -> None:
        self.keeper.sweep()

    def __call__(self) -> dict:
        rows = self.keeper.all()
        within = [r for r in rows if r["cpu_minutes"] <= self.minutes]
        record = {"budget_cpu_minutes": self.minutes, "checkpoints": rows,
                  "chosen": within[-self.keep:]}
        if len(within) < self.keep:
            # Fewer kept than asked (the driver was down while train.py ran):
            # the newest ones, said so.
            record["chosen"] = rows[-self.keep:]
            record["over_budget"] = True
        if not record["chosen"]:
            raise StageFailed(f"{self.keeper.kept}: no checkpoint")
        return record


def run_logged(command: list[str], log: str, keeper=None) -> None:
    """Runs `command` in the repository, its output appended to `log`; a
    keeper's sweep() runs every 5 s meanwhile. The command dies with the
    driver (PR_SET_PDEATHSIG), so no orphan trains beside the next driver."""
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n=== {now()} {shlex.join(command)}\n")
        f.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent)
        stop = threading.Event()

        def sweep_until_done():
            while not stop.wait(5.0):
                keeper.sweep()

        sweeper = threading.Thread(target=sweep_until_done, daemon=True) if keeper else None
        if sweeper:
            sweeper.start()
        try:
            status = process.wait()
        finally:
            stop.set()
            if sweeper:
                sweeper.join()
    if status != 0:
        raise StageFailed(f"exit status {status}; see {log}")


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def hold_lock() -> object:
    """One driver at a time per --root: a second one waits for the first."""
    os.makedirs(FLAGS.root, exist_ok=True)
    handle = open(os.path.join(FLAGS.root, "driver.lock"), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"{now()} another driver holds {handle.name}; waiting for it", flush=True)
        fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def main(argv):
    del argv
    unknown = [v for v in FLAGS.voices if v not in VOICES]
    if unknown:
        raise cli.ToolError(f"--voices: unknown {unknown}; choose from {', '.join(VOICES)}")
    joint = [v for v in FLAGS.voices if VOICES[v].joint]
    if joint and not FLAGS.joint_minutes:
        raise cli.ToolError(f"--voices: a joint stage ends {', '.join(joint)}; give its budget, "
                            "--joint_minutes")
    if not FLAGS.dry_run:
        lock = hold_lock()   # noqa: F841 -- held until the driver exits
        # Only this driver's folders: a second driver (another --root, other
        # voices, --nofestival) may be writing beside it in the same --out.
        for name in FLAGS.voices + (["festival"] if FLAGS.festival else []):
            fileio.remove_stale_temps(os.path.join(FLAGS.out, name))
    stages = Stages(FLAGS.dry_run)
    print(f"{now()} voices {', '.join(FLAGS.voices)}; budget {FLAGS.acoustic_minutes:g} (acoustic) + "
          f"{FLAGS.finetune_minutes:g} (vocoder: warm-up to {FLAGS.warmup_minutes:g}, adversarial "
          f"to {FLAGS.adversarial_minutes:g}) CPU minutes a voice"
          + (f", + {FLAGS.joint_minutes:g} (joint) for {', '.join(joint)}" if joint else ""),
          flush=True)
    for name in FLAGS.voices:
        try:
            model = make_voice(stages, name)
        except (StageFailed, checkpoints.CheckpointError) as e:
            print(f"{now()} {name}: FAILED: {e}", flush=True)
            stages.failed.append(name)
            continue
        if not FLAGS.festival:
            continue
        try:
            speak_festival(stages, model)
        except StageFailed as e:
            print(f"{now()} festival: FAILED: {e}", flush=True)
            stages.failed.append("festival")
    if stages.failed:
        sys.exit(f"paper_voices: failed: {', '.join(stages.failed)}")
    print(f"{now()} all done" if not FLAGS.dry_run else "(dry run)", flush=True)


if __name__ == "__main__":
    cli.run(main)
