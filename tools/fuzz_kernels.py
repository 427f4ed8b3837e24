"""Fuzz the C side with libFuzzer: build each target, replay its regression
inputs, fuzz it for N executions, print what happened, write a JSON report.

Targets (sources in tests/c/):
  fuzz_decode          every packed-index decoder of tflite/bittts_ternary.c
                       (table, static table, multiply-shift, naive, int8) on the
                       same input, against each other and a reference decode;
                       invalid bytes and wrong sizes must be refused.
  fuzz_litert_kernel   the LiteRT kernel's Prepare and Eval
                       (tflite/bittts_litert_op.c) on fake TfLiteContext /
                       TfLiteNode records built from the input, planted layout
                       faults included.
  fuzz_engine_blob     the C99 engine's blob reader and every kernel's check
                       and eval behind it (firmware_stub/bittts_engine*.c),
                       on blobs re-signed after mutation; seeded from
                       tests/c/fuzz_seeds/fuzz_engine_blob/.
  fuzz_ternary_conv    the fused ternary convolution
                       (tflite/bittts_ternary_conv.c), float32 and int8,
                       against a naive reference; bad sizes, parameters,
                       overlaps and bytes refused with the output and the
                       scratch untouched; its options parser.

Each is built with clang -fsanitize=fuzzer,address,undefined
-fno-sanitize-recover=all, so a read or write out of bounds, undefined
behaviour or a failed check stops it with the input that caused it (written to
build/fuzz/<target>/crashes/). tests/c/fuzz_regressions/<target>/ holds inputs
that once crashed (see its README); every one is replayed before fuzzing.

  .venv/bin/python tools/fuzz_kernels.py                       # 1,000,000 executions per target
  .venv/bin/python tools/fuzz_kernels.py --smoke               # 3 seconds per target (CI)
  .venv/bin/python tools/fuzz_kernels.py --targets=fuzz_decode --runs=200000

Exit status 0 when no target crashed, 1 when one did, 2 when a target is
unknown or its build failed.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import random
import re
import shutil
import subprocess
import sys
import time

from absl import app, flags

from bittts_tf import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
SANITIZE = ["-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all"]
CFLAGS = ["-std=c99", "-g", "-O1", "-Wall", "-Wextra", "-Werror"]
# The harness and the library sources of each target (library files are
# taken from --source_dir, those with a folder from the repository's root).
TARGETS = {
    "fuzz_decode": (["tests/c/fuzz_decode.c"], ["bittts_ternary.c"], []),
    "fuzz_litert_kernel": (["tests/c/fuzz_litert_kernel.c"],
                           ["bittts_litert_op.c", "bittts_ternary.c", "bittts_ternary_conv.c"],
                           # a refusal it cannot report through the fake
                           # context would print on every input otherwise
                           ["-DBITTTS_LITERT_NO_STDERR"]),
    "fuzz_ternary_conv": (["tests/c/fuzz_ternary_conv.c"],
                          ["bittts_ternary_conv.c", "bittts_ternary.c"], []),
    "fuzz_engine_blob": (["tests/c/fuzz_engine_blob.c"],
                         ["bittts_ternary_conv.c", "bittts_ternary.c",
                          *[f"firmware_stub/{name}" for name in (
                              "bittts_engine.c", "bittts_engine_arith.c", "bittts_engine_fixed.c",
                              "bittts_engine_conv.c", "bittts_engine_data.c", "bittts_stream.c",
                              "bittts_istft.c")]],
                         [f"-I{ROOT / 'firmware_stub'}"]),
}
# Inputs each target's fuzzing starts from, besides what it found before.
SEEDS_DIR = ROOT / "tests" / "c" / "fuzz_seeds"

FLAGS = flags.FLAGS
flags.DEFINE_list("targets", list(TARGETS), f"Targets to build and fuzz, of {list(TARGETS)}.")
flags.DEFINE_integer("runs", 1_000_000, "Executions per target (ignored with --smoke).")
flags.DEFINE_bool("smoke", False, "A short run per target (--smoke_seconds) instead of --runs, "
                  "as CI does; written to the report's 'smoke' section.")
flags.DEFINE_integer("smoke_seconds", 3, "Seconds per target of a --smoke run.")
flags.DEFINE_integer("max_len", 512, "Longest input libFuzzer makes, in bytes.")
flags.DEFINE_integer("seed", None, "libFuzzer's seed (default: random, printed).")
flags.DEFINE_string("report", str(ROOT / "out" / "fuzz_report.json"),
                    "JSON report; its 'full' or 'smoke' section is replaced, the other kept.")
flags.DEFINE_string("build_dir", str(ROOT / "build" / "fuzz"),
                    "Binaries, each target's growing corpus and its crash inputs.")
flags.DEFINE_string("source_dir", str(ROOT / "tflite"),
                    "Directory of the library sources under test (a modified copy, to check "
                    "that the fuzzers catch a planted bug).")
flags.DEFINE_string("regressions_dir", str(ROOT / "tests" / "c" / "fuzz_regressions"),
                    "Inputs that once crashed, one directory per target.")
cli.output_flags(files=("report",))


class BuildError(RuntimeError):
    pass


def build(target: str, build_dir: pathlib.Path, source_dir: pathlib.Path) -> pathlib.Path:
    """Compiles the target with the sanitizers; returns the binary."""
    clang = shutil.which("clang")
    if clang is None:
        raise BuildError("clang not found: `make apt` installs it (deps/apt.txt: clang, "
                         "libclang-rt-dev)")
    harness, library, extra = TARGETS[target]
    binary = build_dir / target / target
    binary.parent.mkdir(parents=True, exist_ok=True)
    command = ([clang, *CFLAGS, *SANITIZE, *extra, f"-I{source_dir}", "-o", str(binary)]
               + [str(ROOT / path) for path in harness]
               + [str((ROOT if "/" in path else source_dir) / path) for path in library]
               + ["-lm"])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"{target}: build failed:\n{' '.join(command)}\n{result.stderr}")
    return binary


def first_error(log: str) -> str:
    """The line that says what went wrong in a libFuzzer log."""
    for pattern in (r"^fuzz_\w+: .*", r".*runtime error: .*", r"^==\d+==ERROR: .*",
                    r"^SUMMARY: .*"):
        match = re.search(pattern, log, re.MULTILINE)
        if match:
            return match.group(0).strip()
    return log.strip().splitlines()[-1] if log.strip() else "no output"


def replay(binary: pathlib.Path, inputs: list[pathlib.Path]) -> list[dict]:
    """Runs the binary on each saved input; returns the ones that still fail."""
    failures = []
    for path in inputs:
        result = subprocess.run([str(binary), str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            failures.append({"input": str(path), "error": first_error(result.stderr)})
    return failures


def fuzz(binary: pathlib.Path, work: pathlib.Path, runs: int | None, seconds: int | None,
         max_len: int, seed: int) -> dict:
    """One libFuzzer run: `runs` executions, or `seconds` of fuzzing."""
    corpus, crashes = work / "corpus", work / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(crashes.iterdir())
    command = [str(binary), f"-seed={seed}", f"-max_len={max_len}", "-print_final_stats=1",
               f"-artifact_prefix={crashes}/"]
    command += [f"-max_total_time={seconds}"] if seconds else [f"-runs={runs}"]
    command.append(str(corpus))
    if (SEEDS_DIR / work.name).is_dir():
        command.append(str(SEEDS_DIR / work.name))
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    executed = re.search(r"stat::number_of_executed_units:\s*(\d+)", result.stderr)
    depth = re.search(r"^fuzz_\w+ depth: (.*)$", result.stderr, re.MULTILINE)
    new_crashes = sorted(str(p) for p in set(crashes.iterdir()) - before)
    crashed = result.returncode != 0
    return {
        "executions": int(executed.group(1)) if executed else None,
        "seconds": round(elapsed, 1),
        "executions_per_second": round(int(executed.group(1)) / elapsed) if executed else None,
        "crashes": max(len(new_crashes), int(crashed)),
        "crash_inputs": new_crashes,
        "error": first_error(result.stderr) if crashed else None,
        "depth": depth.group(1) if depth else None,
        "corpus_inputs": len(list(corpus.iterdir())),
        "command": " ".join(command),
    }


def write_report(path: pathlib.Path, section: str, content: dict) -> None:
    report = {}
    if path.exists():
        try:
            report = json.loads(path.read_text())
        except json.JSONDecodeError:
            report = {}
    report[section] = content
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def main(argv):
    del argv
    unknown = [t for t in FLAGS.targets if t not in TARGETS]
    if unknown:
        print(f"fuzz_kernels: unknown target(s) {unknown}; choose from {list(TARGETS)}",
              file=sys.stderr)
        return 2
    seed = FLAGS.seed if FLAGS.seed is not None else random.randrange(1, 2**31)
    build_dir, source_dir = pathlib.Path(FLAGS.build_dir), pathlib.Path(FLAGS.source_dir)
    section = "smoke" if FLAGS.smoke else "full"
    print(f"fuzz_kernels: seed {seed} (replay with --seed={seed}), "
          + (f"{FLAGS.smoke_seconds} s per target" if FLAGS.smoke
             else f"{FLAGS.runs:,} executions per target"), flush=True)

    results, crashed = {}, False
    for target in FLAGS.targets:
        try:
            binary = build(target, build_dir, source_dir)
        except BuildError as error:
            print(f"fuzz_kernels: {error}", file=sys.stderr)
            return 2
        saved = sorted((pathlib.Path(FLAGS.regressions_dir) / target).glob("*"))
        saved = [p for p in saved if p.is_file()]
        failed = replay(binary, saved)
        run = fuzz(binary, build_dir / target, None if FLAGS.smoke else FLAGS.runs,
                   FLAGS.smoke_seconds if FLAGS.smoke else None, FLAGS.max_len, seed)
        run["regression_inputs"] = [p.name for p in saved]
        run["regression_failures"] = failed
        results[target] = run
        crashed |= bool(run["crashes"] or failed)
        print(f"{target}: {run['executions']:,} executions in {run['seconds']} s "
              f"({run['executions_per_second']:,}/s), {run['crashes']} crash(es); "
              f"{len(saved) - len(failed)} of {len(saved)} saved crash inputs pass"
              if run["executions"] is not None else
              f"{target}: no executions counted, {run['crashes']} crash(es)", flush=True)
        if run["depth"]:
            print(f"  reached: {run['depth']}")
        if run["error"]:
            print(f"  crash: {run['error']}\n  input: {', '.join(run['crash_inputs']) or '?'}")
        for failure in failed:
            print(f"  saved input fails again: {failure['input']}: {failure['error']}")

    write_report(pathlib.Path(FLAGS.report), section, {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "runs_per_target": None if FLAGS.smoke else FLAGS.runs,
        "seconds_per_target": FLAGS.smoke_seconds if FLAGS.smoke else None,
        "max_len": FLAGS.max_len,
        "sanitizers": " ".join(SANITIZE),
        "source_dir": str(source_dir),
        "command": " ".join([pathlib.Path(sys.executable).name, *sys.argv]),
        "targets": results,
    })
    print(f"report: {FLAGS.report} ({section})")
    return 1 if crashed else 0


if __name__ == "__main__":
    app.run(main)
