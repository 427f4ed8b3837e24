"""Every tool, given each kind of bad input, refuses it in one line.

Each case runs a tool as a user would (a subprocess) on one bad input and
asserts: exit status non-zero, no traceback, stderr exactly one line, that
line starts with the tool's name and names the input. The table of tool x
input -> message goes to out/bad_input_table.md (the issue's "bad-input
table"). The bad inputs are small and made fresh from a printed seed: random
garbage bytes, truncations of real files at a random point.

Cases run two at a time: each is mostly a Python + TensorFlow start-up.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np

from bittts_tf.runtime import model_folder
from seeds import fresh_seed
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(REPO, "out", "bad_input_table.md")
NOISE_MARKERS = ("Traceback", "cuInit", "oneDNN", "absl::InitializeLog", "cudart_stub",
                 "XNNPACK delegate", "cpu_feature_guard")


@dataclasses.dataclass
class Case:
    tool: str
    bad_input: str          # the kind of bad input, for the table
    args: list[str]
    names: str              # what the message must name (a path, a flag, a value)


@dataclasses.dataclass
class Outcome:
    case: Case
    returncode: int
    stdout: str
    stderr: str


def run_tool(case: Case, cwd: str) -> Outcome:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    process = subprocess.run([sys.executable, os.path.join(REPO, "tools", case.tool), *case.args],
                             cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return Outcome(case, process.returncode, process.stdout, process.stderr)


def garbage(path, rng, size=2048) -> str:
    with open(path, "wb") as f:
        f.write(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    return str(path)


def truncated_copy(source, path, rng) -> str:
    data = open(source, "rb").read()
    cut = int(rng.integers(len(data) // 8, len(data) * 7 // 8))
    with open(path, "wb") as f:
        f.write(data[:cut])
    return str(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The good inputs the bad ones are made from, and the bad ones."""
    import keras

    from bittts_tf.text import FrontEnd
    from bittts_tf.training import checkpoints
    from tts_models import random_tts

    seed = fresh_seed("bad inputs")
    rng = np.random.default_rng(seed)
    root = tmp_path_factory.mktemp("bad_inputs")
    paths = {"root": str(root)}

    # A real (random-weight) joint checkpoint, then its corruptions.
    config, acoustic, vocoder = random_tts(seed)
    run = root / "run"
    good = checkpoints.save(str(run / "checkpoints"), 1, {"acoustic": acoustic, "generator": vocoder},
                            {}, {"model_config": config.to_dict(), "front_end": FrontEnd().to_dict()})
    paths["checkpoint"] = good
    # Whole arrays, a manifest without the model's config.
    paths["configless_checkpoint"] = checkpoints.save(
        str(root / "configless" / "checkpoints"), 1, {"acoustic": acoustic, "generator": vocoder},
        {}, {"front_end": FrontEnd().to_dict()})
    # A 4-bit vocoder, which a ternary acoustic model cannot be paired with.
    config_4bit, _, vocoder_4bit = random_tts(seed, weight_bits=4)
    paths["vocoder_4bit"] = checkpoints.save(
        str(root / "vocoder_4bit" / "checkpoints"), 1, {"generator": vocoder_4bit}, {},
        {"model_config": config_4bit.to_dict(), "front_end": FrontEnd().to_dict()})
    # A sentence list whose third sentence has a word longer than a segment.
    paths["unsayable_sentences"] = str(root / "sentences.txt")
    (root / "sentences.txt").write_text("Hello there.\nIt is late.\nA "
                                        + "".join(rng.choice(list("abcdefgh"), 300)) + " word.\n")
    paths["garbage_checkpoint"] = garbage(root / "garbage.npz", rng)
    paths["truncated_checkpoint"] = truncated_copy(good, root / "truncated.npz", rng)
    paths["missing"] = str(root / "no_such_file")
    paths["garbage_report"] = garbage(root / "report.json", rng)

    # The shipped model folder, and copies with a truncated graph / a torn manifest.
    model_dir = os.path.join(REPO, "models", "slt_tiny")
    truncated_dir = root / "truncated_model"
    shutil.copytree(model_dir, truncated_dir)
    truncated_copy(os.path.join(model_dir, "text.tflite"), truncated_dir / "text.tflite", rng)
    paths["truncated_model"] = str(truncated_dir)
    torn_dir = root / "torn_manifest"
    shutil.copytree(model_dir, torn_dir)
    truncated_copy(os.path.join(model_dir, "manifest.json"), torn_dir / "manifest.json", rng)
    paths["torn_manifest"] = str(torn_dir)
    paths["model_dir"] = model_dir
    paths["truncated_tflite"] = str(truncated_dir / "text.tflite")
    # The shipped folder without its int8 variant (its manifest lists what is left).
    float_only = root / "float_only_model"
    folder = model_folder.load(model_dir)
    model_folder.write(str(float_only), {**folder.manifest, "graphs": {
        key: entry for key, entry in folder.manifest["graphs"].items() if "." not in key}},
        {entry["file"]: open(os.path.join(model_dir, entry["file"]), "rb").read()
         for key, entry in folder.manifest["graphs"].items() if "." not in key})
    paths["float_only_model"] = str(float_only)

    # A Keras model with one input, for a .tflite with two (wrong input count).
    keras.utils.set_random_seed(seed)
    one_input = keras.Sequential([keras.Input((None, 8)), keras.layers.Dense(4)])
    paths["keras_model"] = str(root / "one_input.keras")
    one_input.save(paths["keras_model"])
    paths["garbage_keras"] = garbage(root / "garbage.keras", rng)

    # A feature cache whose manifest is garbage, and one with no manifest.
    corrupt_cache = root / "corrupt_cache"
    corrupt_cache.mkdir()
    garbage(corrupt_cache / "manifest.json", rng)
    paths["corrupt_cache"] = str(corrupt_cache)

    # An LJSpeech-layout corpus whose one wav is garbage.
    corpus = root / "corpus"
    (corpus / "wavs").mkdir(parents=True)
    (corpus / "metadata.csv").write_text("utt1|Hello there.|Hello there.\n")
    garbage(corpus / "wavs" / "utt1.wav", rng)
    paths["bad_audio_corpus"] = str(corpus)

    # A run directory whose held-out log is damaged in the middle.
    damaged_run = root / "damaged_run"
    damaged_run.mkdir()
    (damaged_run / "held_out.jsonl").write_text('{"step": 1, "mel_l1": 1.0}\n{"step": 2, "mel\n'
                                                 '{"step": 3, "mel_l1": 0.5}\n')
    paths["damaged_run"] = str(damaged_run)
    return paths


def cases(p) -> list[Case]:
    out = os.path.join(p["root"], "out")
    wav = os.path.join(out, "x.wav")
    return [
        # tools/synthesize.py: checkpoints, text, speaker
        Case("synthesize.py", "missing checkpoint", [f"--checkpoint={p['missing']}", "--text=Hi.", f"--output={wav}"], p["missing"]),
        Case("synthesize.py", "garbage checkpoint", [f"--checkpoint={p['garbage_checkpoint']}", "--text=Hi.", f"--output={wav}"], p["garbage_checkpoint"]),
        Case("synthesize.py", "truncated checkpoint", [f"--checkpoint={p['truncated_checkpoint']}", "--text=Hi.", f"--output={wav}"], p["truncated_checkpoint"]),
        Case("synthesize.py", "text with nothing to say", [f"--checkpoint={p['checkpoint']}", "--text=\u2603 \u2603", f"--output={wav}"], "\u2603"),
        Case("synthesize.py", "bad speaker id", [f"--checkpoint={p['checkpoint']}", "--text=Hi.", "--speaker=7", f"--output={wav}"], "7"),
        # tools/speak.py: model folders, text, speaker
        Case("speak.py", "missing model folder", [f"--model_dir={p['missing']}", "--text=Hi.", f"--output={wav}"], p["missing"]),
        Case("speak.py", "truncated graph", [f"--model_dir={p['truncated_model']}", "--text=Hi.", f"--output={wav}"], "text.tflite"),
        Case("speak.py", "torn manifest", [f"--model_dir={p['torn_manifest']}", "--text=Hi.", f"--output={wav}"], "manifest.json"),
        Case("speak.py", "text with nothing to say", [f"--model_dir={p['model_dir']}", "--text=\u2603 \u2603", f"--output={wav}"], "\u2603"),
        Case("speak.py", "bad speaker id", [f"--model_dir={p['model_dir']}", "--text=Hi.", "--speaker=7", f"--output={wav}"], "7"),
        # tools/validate.py and tools/convert.py: model files
        Case("validate.py", "missing .tflite", [f"--keras_model={p['keras_model']}", f"--tflite={p['missing']}"], p["missing"]),
        Case("validate.py", "truncated .tflite", [f"--keras_model={p['keras_model']}", f"--tflite={p['truncated_tflite']}"], p["truncated_tflite"]),
        Case("validate.py", "garbage .keras", [f"--keras_model={p['garbage_keras']}", f"--tflite={os.path.join(p['model_dir'], 'text.tflite')}"], p["garbage_keras"]),
        Case("validate.py", "wrong input count", [f"--keras_model={p['keras_model']}", f"--tflite={os.path.join(p['model_dir'], 'text.tflite')}"], "2 input(s), the Keras model 1"),
        Case("validate.py", "garbage checkpoint", [f"--checkpoint={p['garbage_checkpoint']}", f"--tflite={os.path.join(p['model_dir'], 'frames.tflite')}"], p["garbage_checkpoint"]),
        Case("convert.py", "missing .keras", [f"--keras_model={p['missing']}", f"--out={out}/m.tflite"], p["missing"]),
        Case("convert.py", "garbage .keras", [f"--keras_model={p['garbage_keras']}", f"--out={out}/m.tflite"], p["garbage_keras"]),
        Case("convert.py", "truncated checkpoint", [f"--checkpoint={p['truncated_checkpoint']}", f"--out={out}/m.tflite"], p["truncated_checkpoint"]),
        # tools/train.py: corpora and checkpoints to start from
        Case("train.py", "missing corpus", [f"--corpus={p['missing']}", f"--output_dir={out}/run1", "--steps=2", "--checkpoint_every=1"], p["missing"]),
        Case("train.py", "corrupt cache", [f"--corpus={p['corrupt_cache']}", f"--output_dir={out}/run2", "--steps=2", "--checkpoint_every=1"], p["corrupt_cache"]),
        Case("train.py", "garbage --init_from", ["--corpus=synthetic:8", f"--init_from={p['garbage_checkpoint']}", f"--output_dir={out}/run3", "--steps=2", "--checkpoint_every=1", "--held_out=2", "--batch_size=2"], p["garbage_checkpoint"]),
        Case("train.py", "negative --vocoder_input_noise", ["--mode=vocoder", "--corpus=synthetic:8", "--vocoder_input_noise=-0.5", f"--output_dir={out}/run4", "--steps=2", "--checkpoint_every=1", "--held_out=2", "--batch_size=2"], "-0.5"),
        Case("train.py", "--held_out too large", ["--corpus=synthetic:8", "--held_out=20", f"--output_dir={out}/run5", "--steps=2", "--checkpoint_every=1"], "hold out 20"),
        # the other tools
        Case("export_tts.py", "truncated checkpoint", [f"--checkpoint={p['truncated_checkpoint']}", f"--out_dir={out}/voice"], p["truncated_checkpoint"]),
        Case("average_checkpoints.py", "garbage checkpoint", [f"--checkpoints={p['garbage_checkpoint']},{p['checkpoint']}", f"--output={out}/avg.npz"], p["garbage_checkpoint"]),
        Case("eval_alignment.py", "corrupt cache", [f"--checkpoint={p['checkpoint']}", f"--corpus={p['corrupt_cache']}"], p["corrupt_cache"]),
        Case("check_streaming.py", "garbage checkpoint", [f"--checkpoint={p['garbage_checkpoint']}", f"--corpus={p['corrupt_cache']}", f"--output={out}/s.json"], p["garbage_checkpoint"]),
        Case("inspect_corpus.py", "unreadable audio", [f"--corpus_dir={p['bad_audio_corpus']}"], p["bad_audio_corpus"]),
        Case("compare_evals.py", "garbage report", [f"--a={p['garbage_report']}", f"--b={p['garbage_report']}"], p["garbage_report"]),
        Case("compare_evals.py", "missing report", [f"--a={p['missing']}", f"--b={p['missing']}"], p["missing"]),
        Case("compare_runs.py", "damaged log", [f"--runs={p['damaged_run']}", f"--output={out}/c.png"], "held_out.jsonl"),
        Case("bench_tts.py", "truncated graph", [f"--model_dir={p['truncated_model']}", f"--output={out}/b.json", "--rounds=1"], "text.tflite"),
        Case("budget.py", "torn manifest", [f"--model_dir={p['torn_manifest']}", f"--output={out}/b.json"], "manifest.json"),
        Case("check_tflm.py", "truncated graph", [f"--model_dir={p['truncated_model']}", f"--output={out}/t.json", "--sentences=1"], "text.tflite"),
        Case("firmware.py", "truncated graph", [f"--model_dir={p['truncated_model']}", f"--out_dir={out}/fw"], "text.tflite"),
        Case("evaluate.py", "missing model folder", [f"--model_dir={p['missing']}", f"--output={out}/e.json", "--limit=1", "--nodnsmos"], p["missing"]),
        Case("eval_int8.py", "model without int8 graphs", [f"--model_dir={p['float_only_model']}", f"--output={out}/i.json", "--limit=1", "--nower"], "int8"),
        Case("demo.py", "torn manifest", [f"--model_dir={p['torn_manifest']}", f"--out_dir={out}/demo"], "manifest.json"),
        Case("model_size.py", "bad weight bits", ["--weight_bits=3"], "3"),
        # outputs that cannot be written, refused before the work
        Case("speak.py", "--output a folder", [f"--model_dir={p['model_dir']}", "--text=Hi.", f"--output={p['root']}"], f"--output={p['root']}"),
        Case("convert.py", "--out under a file", [f"--checkpoint={p['checkpoint']}", f"--out={p['checkpoint']}/m.tflite"], p["checkpoint"]),
        Case("evaluate.py", "--output empty", [f"--model_dir={p['model_dir']}", "--output=", "--limit=1", "--nodnsmos"], "--output="),
        Case("firmware.py", "--out_dir a file", [f"--model_dir={p['model_dir']}", f"--out_dir={p['checkpoint']}"], p["checkpoint"]),
        # and the rest
        Case("convert.py", "checkpoint without its config", [f"--checkpoint={p['configless_checkpoint']}", f"--out={out}/m.tflite"], p["configless_checkpoint"]),
        Case("evaluate.py", "a sentence too long to say", [f"--model_dir={p['model_dir']}", f"--sentences={p['unsayable_sentences']}", f"--output={out}/e.json", "--nodnsmos", "--systems=model"], f"{p['unsayable_sentences']}, sentence 3"),
        Case("firmware.py", "phrase that is not UTF-8", [f"--model_dir={p['model_dir']}", f"--out_dir={out}/fw2", os.fsdecode(b"--phrase=Hello \xff there.")], "--phrase"),
        Case("check_streaming.py", "a vocoder that does not fit", [f"--checkpoint={p['checkpoint']}", f"--vocoder_checkpoint={p['vocoder_4bit']}", f"--output={out}/s2.json"], "does not fit"),
        Case("validate.py", "no trials", [f"--keras_model={p['keras_model']}", f"--tflite={p['missing']}", "--trials=0"], "--trials=0"),
        Case("inspect_corpus.py", "zero-width bins", [f"--corpus_dir={p['bad_audio_corpus']}", "--bin_seconds=0"], "--bin_seconds"),
    ]


def test_every_tool_refuses_bad_input_in_one_line(inputs):
    todo = cases(inputs)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda c: run_tool(c, inputs["root"]), todo))
    write_table(outcomes, inputs["root"])

    problems = []
    for o in outcomes:
        lines = o.stderr.strip().splitlines()
        tool = o.case.tool.removesuffix(".py")
        what = f"{o.case.tool} / {o.case.bad_input}"
        if o.returncode == 0:
            problems.append(f"{what}: exit status 0")
        if any(marker in o.stderr for marker in NOISE_MARKERS):
            problems.append(f"{what}: traceback or start-up noise:\n{o.stderr[-3000:]}")
        elif len(lines) != 1:
            problems.append(f"{what}: {len(lines)} stderr lines:\n{o.stderr[-3000:]}")
        elif not lines[0].startswith(f"{tool}: ") or o.case.names not in lines[0]:
            problems.append(f"{what}: the line does not start with '{tool}: ' and name "
                            f"{o.case.names!r}: {lines[0]}")
    assert not problems, "\n".join(problems)


def write_table(outcomes: list[Outcome], root: str) -> None:
    rows = ["| tool | bad input | exit | message (stderr) |", "|---|---|---|---|"]
    for o in outcomes:
        message = " / ".join(o.stderr.strip().splitlines()[-1:]) or "(nothing)"
        message = message.replace(root, "$TMP")
        rows.append(f"| {o.case.tool} | {o.case.bad_input} | {o.returncode} | "
                    f"{message.replace('|', '&#124;')} |")
    text = "\n".join(rows) + "\n"
    print(text)
    from bittts_tf import fileio
    fileio.atomic_write_text(TABLE, "# Bad input, tool by tool\n\nWritten by "
                             "tests/test_tools_bad_input.py; $TMP is the test's temporary folder.\n\n"
                             + text)
