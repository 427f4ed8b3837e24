"""The C side under libFuzzer (tools/fuzz_kernels.py): the CI smoke run of
every target with every saved crash input replayed, a planted bug caught, and
the sanitizer build of the unit tests failing on undefined behaviour."""

import json
import pathlib
import re
import shutil
import subprocess
import sys


ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "fuzz_kernels.py"
REGRESSIONS = ROOT / "tests" / "c" / "fuzz_regressions"


def require_clang():
    assert shutil.which("clang"), "clang is missing: `make apt` installs it (deps/apt.txt)"


def run_tool(*args, timeout=300):
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_smoke_run_of_every_target(tmp_path, rng):
    """A few seconds per target, as CI runs it: no crash, every saved crash
    input passes, the kernel target gets past Prepare into the decode, and
    the fused conv computes and refuses, and the engine opens, refuses and
    invokes blobs."""
    require_clang()
    report = tmp_path / "report.json"
    result = run_tool("--smoke", "--smoke_seconds=3", f"--seed={int(rng.integers(1, 2**31))}",
                      f"--report={report}")
    print(result.stdout, result.stderr[-3000:])
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    targets = json.loads(report.read_text())["smoke"]["targets"]
    assert set(targets) == {"fuzz_decode", "fuzz_litert_kernel", "fuzz_ternary_conv",
                            "fuzz_engine_blob"}
    for name, run in targets.items():
        assert run["crashes"] == 0 and run["regression_failures"] == [], (name, run)
        assert run["executions"] > 1000, (name, run)
        saved = sorted(p.name for p in (REGRESSIONS / name).iterdir())
        assert run["regression_inputs"] == saved and saved, (name, saved)
    decoded = re.search(r"Eval decoded (\d+)", targets["fuzz_litert_kernel"]["depth"])
    assert decoded and int(decoded.group(1)) > 0, targets["fuzz_litert_kernel"]["depth"]
    for status in ("decoded", "invalid byte", "size mismatch", "NULL"):
        count = re.search(rf"{status} (\d+)", targets["fuzz_decode"]["depth"])
        assert count and int(count.group(1)) > 0, (status, targets["fuzz_decode"]["depth"])
    for status in ("computed", "size", "invalid byte", "parameter", "options parsed"):
        count = re.search(rf"{status} (\d+)", targets["fuzz_ternary_conv"]["depth"])
        assert count and int(count.group(1)) > 0, (status, targets["fuzz_ternary_conv"]["depth"])
    for status in ("opened", "refused", "invoked"):
        count = re.search(rf"{status} (\d+)", targets["fuzz_engine_blob"]["depth"])
        assert count and int(count.group(1)) > 0, (status, targets["fuzz_engine_blob"]["depth"])


def test_a_planted_out_of_bounds_read_is_caught(tmp_path, rng):
    """A copy of the decoder whose index scan lets byte 122 through (one past
    the table): the fuzzer must stop with a crash and save its input."""
    require_clang()
    source = tmp_path / "tflite"
    shutil.copytree(ROOT / "tflite", source)
    decoder = source / "bittts_ternary.c"
    text = decoder.read_text()
    check = "if (worst <= BITTTS_NUM_PATTERNS - 1) return BITTTS_OK;"
    assert text.count(check) == 1
    decoder.write_text(text.replace(check, "if (worst <= BITTTS_NUM_PATTERNS) return BITTTS_OK;"))
    report = tmp_path / "report.json"
    result = run_tool("--targets=fuzz_decode", "--smoke", "--smoke_seconds=60",
                      f"--seed={int(rng.integers(1, 2**31))}", f"--source_dir={source}",
                      f"--build_dir={tmp_path / 'build'}", f"--report={report}")
    print(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    run = json.loads(report.read_text())["smoke"]["targets"]["fuzz_decode"]
    assert run["crashes"] >= 1 and run["crash_inputs"], run
    assert re.search(r"overflow|fuzz_decode: ", run["error"]), run["error"]
    assert "crash:" in result.stdout


def test_unknown_target_is_refused_in_one_line():
    result = run_tool("--targets=fuzz_nothing")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "fuzz_nothing" in result.stderr


def test_sanitized_unit_test_build_fails_on_undefined_behaviour(tmp_path, rng):
    """The Makefile's SANITIZE flags (used for the *_asan unit tests) turn a
    signed overflow into a failing exit, not a printed warning and status 0."""
    makefile = (ROOT / "Makefile").read_text()
    flags = re.search(r"^SANITIZE := (.*)$", makefile, re.MULTILINE).group(1).split()
    assert "-fno-sanitize-recover=all" in flags
    program = tmp_path / "overflow.c"
    program.write_text("#include <limits.h>\n#include <stdlib.h>\n"
                       "int main(int argc, char **argv) {\n"
                       "  int x = INT_MAX - (int)strtol(argv[1], 0, 10);\n"
                       "  x += 2;  /* overflows for an argument below 2 */\n"
                       "  return x == 0;\n}\n")
    binary = tmp_path / "overflow"
    subprocess.run(["cc", *flags, "-o", str(binary), str(program)], check=True)
    small = int(rng.integers(0, 2))  # 0 or 1: both overflow
    failed = subprocess.run([str(binary), str(small)], capture_output=True, text=True)
    assert failed.returncode != 0 and "runtime error" in failed.stderr, failed
    fine = subprocess.run([str(binary), str(int(rng.integers(2, 100)))], capture_output=True,
                          text=True)
    assert fine.returncode == 0, fine
