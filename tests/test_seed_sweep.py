"""tools/seed_sweep.py finds exactly the seeds that fail: a planted test
fails for seeds divisible by 3 (the reference is that arithmetic), another
always passes."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PLANTED = '''
import os

def test_fails_on_multiples_of_three():
    assert int(os.environ["BITTTS_TEST_SEED"]) % 3 != 0

def test_always_passes():
    pass
'''


def sweep(tmp_path, *flags):
    output = tmp_path / "sweep.json"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "seed_sweep.py"),
                           f"--output={output}", *flags], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    return done, (json.loads(output.read_text()) if output.exists() else None)


def test_the_sweep_lists_every_failing_seed_with_its_replay(tmp_path, rng):
    planted = tmp_path / "test_planted.py"
    planted.write_text(PLANTED)
    first = int(rng.integers(1, 10**6))
    done, report = sweep(tmp_path, f"--tests={planted}", f"--first_seed={first}", "--seeds=7",
                         "--jobs=2")
    assert done.returncode == 1, done.stderr
    expected = sorted(s for s in range(first, first + 7) if s % 3 == 0)
    assert sorted(f["seed"] for f in report["failures"]) == expected
    assert all(f["test"].endswith("::test_fails_on_multiples_of_three") for f in report["failures"])
    assert all(f"BITTTS_TEST_SEED={f['seed']} " in f["replay"] for f in report["failures"])
    assert report["seeds_run"] == 7 and report["test_runs"] == 14
    assert (tmp_path / "sweep.md").exists()


def test_resume_runs_only_the_seeds_not_yet_run(tmp_path, rng):
    planted = tmp_path / "test_planted.py"
    planted.write_text(PLANTED)
    first = int(rng.integers(1, 10**6))
    flags = (f"--tests={planted}", f"--first_seed={first}", "--jobs=2", "--resume")
    sweep(tmp_path, *flags, "--seeds=4")
    report_path = tmp_path / "sweep.json"
    earlier = json.loads(report_path.read_text())
    for run in earlier["runs"]:      # marks a kept run: a seed run again would lose it
        run["summary"] = "kept"
    report_path.write_text(json.dumps(earlier))
    done, report = sweep(tmp_path, *flags, "--seeds=7")
    assert done.returncode == 1, done.stderr
    assert sorted(run["seed"] for run in report["runs"]) == list(range(first, first + 7))
    assert [run["summary"] for run in report["runs"]].count("kept") == 4
    expected = sorted(s for s in range(first, first + 7) if s % 3 == 0)
    assert sorted(f["seed"] for f in report["failures"]) == expected
    assert report["seeds_run"] == 7 and report["seeds_planned"] == 7
    # Another selection of tests cannot continue this report.
    other = tmp_path / "test_other.py"
    other.write_text("def test_x():\n    pass\n")
    done, _ = sweep(tmp_path, f"--tests={other}", "--seeds=2", "--resume")
    assert done.returncode == 1 and "--resume" in done.stderr
    assert done.stderr.strip().count("\n") == 0


def test_junit_times_choose_the_tests(tmp_path):
    junit = tmp_path / "suite.xml"
    junit.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="tests.test_a" name="test_fast" time="0.5"/>'
        '<testcase classname="tests.test_a" name="test_slow[x y]" time="30"/>'
        '<testcase classname="tests.test_b.TestGroup" name="test_mid" time="4"/>'
        '</testsuite></testsuites>')
    def listed(*flags):
        done, _ = sweep(tmp_path, f"--junit={junit}", "--list", *flags)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    assert listed("--faster_than=5") == ["tests/test_a.py::test_fast",
                                         "tests/test_b.py::TestGroup::test_mid"]
    assert listed("--slower_than=5") == ["tests/test_a.py::test_slow[x y]"]
    assert listed("--tests=tests/test_b.py") == ["tests/test_b.py::TestGroup::test_mid"]
    assert listed("--tests=tests/test_a.py::test_fast") == ["tests/test_a.py::test_fast"]


def test_a_missing_junit_report_is_refused_in_one_line(tmp_path):
    done, _ = sweep(tmp_path, f"--junit={tmp_path / 'none.xml'}", "--faster_than=1")
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "none.xml" in done.stderr
