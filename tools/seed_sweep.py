"""Runs tests under many fresh seeds and lists every seed that fails, with the
command that replays it.

  python tools/seed_sweep.py --seeds=50 --junit=out/suite.xml --faster_than=5 --output=out/sweep_fast.json
  python tools/seed_sweep.py --seeds=10 --junit=out/suite.xml --slower_than=5 --output=out/sweep_slow.json
  python tools/seed_sweep.py --seeds=20 --tests=tests/test_export_int8.py
  python tools/seed_sweep.py --seeds=10 --junit=out/suite.xml --slower_than=5 --resume \
      --output=out/sweep_slow.json     # goes on after a stop: runs only the seeds not yet run

Every test takes its seed from BITTTS_TEST_SEED when it is set (tests/seeds.py,
tests/conftest.py), so one pytest run per seed covers the chosen tests with
that seed; --jobs runs that many seeds at once (each pytest with
--workers_per_job xdist workers). The tests come from --tests, narrowed by
their time in a JUnit XML report of an earlier run (`pytest
--junitxml=FILE`) with --faster_than / --slower_than. Seeds are drawn fresh
(printed) unless --first_seed is given. The JSON report (written
atomically; a Markdown table beside it) lists the tests x seeds run and each
failure with its replay command; exit status 1 when any test failed.
"""

from bittts_tf import cli

cli.quiet_startup()   # first, as every tool (this one loads no TensorFlow)

import concurrent.futures
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_list("tests", ["tests"], "pytest paths or node ids to run.")
flags.DEFINE_string("junit", None, "JUnit XML of an earlier run: its test times choose the tests "
                    "with --faster_than / --slower_than.")
flags.DEFINE_float("faster_than", None, "Only tests that took less than this many seconds.")
flags.DEFINE_float("slower_than", None, "Only tests that took at least this many seconds.")
flags.DEFINE_integer("seeds", 10, "Seeds to run.")
flags.DEFINE_integer("first_seed", None, "Run seeds first_seed, first_seed + 1, ... instead of "
                     "fresh random ones.")
flags.DEFINE_integer("jobs", 2, "Seeds run at once.")
flags.DEFINE_integer("workers_per_job", 1, "pytest-xdist workers of each run (1: no xdist).")
flags.DEFINE_float("timeout_minutes", 60.0, "A run still going after this long counts as failed.")
flags.DEFINE_string("output", "out/seed_sweep.json", "JSON report; the .md table beside it.")
flags.DEFINE_bool("list", False, "Print the chosen tests, one per line, and run nothing.")
flags.DEFINE_bool("resume", False, "Keep the seeds already run in --output (the same tests) and "
                  "run only the rest: a sweep longer than a session goes on where it stopped.")
cli.output_flags(files=("output",))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def junit_cases(path: str) -> dict[str, tuple[float, str]]:
    """node id -> (seconds, outcome: passed, failed or skipped) of a JUnit XML report."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as error:
        raise cli.ToolError(f"{path}: not a readable JUnit XML report ({error})") from None
    cases = {}
    for case in root.iter("testcase"):
        # pytest writes classname "tests.test_x" (or "tests.test_x.TestClass").
        parts = case.get("classname", "").split(".")
        module_end = next((i for i, p in enumerate(parts) if p.startswith("test_")), len(parts) - 1)
        node = ("/".join(parts[:module_end + 1]) + ".py::"
                + "::".join(parts[module_end + 1:] + [case.get("name", "")]))
        outcome = "passed"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        cases[node] = (float(case.get("time", 0.0)), outcome)
    return cases


def _selects(selection: str, node: str) -> bool:
    """Whether a pytest path or node id names `node`."""
    selection = selection.rstrip("/")
    return (node == selection or node.startswith(selection + "::")
            or node.startswith(selection + "/"))


def chosen_tests() -> list[str]:
    if FLAGS.junit is None:
        if FLAGS.faster_than is not None or FLAGS.slower_than is not None:
            raise cli.ToolError("--faster_than / --slower_than need --junit (the times of a run)")
        return list(FLAGS.tests)
    cases = junit_cases(FLAGS.junit)
    chosen = []
    for node, (seconds, _) in sorted(cases.items()):
        if not any(_selects(t, node) for t in FLAGS.tests):
            continue
        if FLAGS.faster_than is not None and seconds >= FLAGS.faster_than:
            continue
        if FLAGS.slower_than is not None and seconds < FLAGS.slower_than:
            continue
        chosen.append(node)
    if not chosen:
        raise cli.ToolError(f"{FLAGS.junit}: no test matches --tests and the time limits")
    return chosen


def existing(tests: list[str]) -> tuple[list[str], list[str]]:
    """(the node ids pytest still collects, those it does not): a JUnit
    report of an earlier run may name tests since renamed or removed, and one
    missing id makes pytest run nothing (exit status 4)."""
    files = sorted({t.split("::")[0] for t in tests})
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", *files], cwd=REPO, capture_output=True,
                          text=True)
    collected = {line.strip() for line in done.stdout.splitlines() if "::" in line}
    if not collected:
        return list(tests), []
    keep = [t for t in tests if "::" not in t or t in collected]
    return keep, [t for t in tests if t not in keep]


def run_seed(seed: int, tests: list[str], workdir: str) -> dict:
    report = os.path.join(workdir, f"seed{seed}.xml")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               f"--junitxml={report}", *tests]
    if FLAGS.workers_per_job > 1:
        command[4:4] = ["-n", str(FLAGS.workers_per_job)]
    env = dict(os.environ, BITTTS_TEST_SEED=str(seed))
    start = time.time()
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=FLAGS.timeout_minutes * 60)
        status, tail = done.returncode, (done.stdout.strip().splitlines() or [""])[-1]
    except subprocess.TimeoutExpired:
        status, tail = -1, f"timed out after {FLAGS.timeout_minutes:g} minutes"
    cases = junit_cases(report) if os.path.exists(report) else {}
    failed = sorted(node for node, (_, outcome) in cases.items() if outcome == "failed")
    if status not in (0, 1) and not failed:
        failed = [f"(the run itself: exit status {status}: {tail})"]
    return {"seed": seed, "tests_run": len(cases), "failed": failed,
            "seconds": round(time.time() - start, 1), "summary": tail}


def earlier_runs(path: str, tests: list[str]) -> list[dict]:
    """The runs of an earlier sweep's report at `path` (none if there is no
    report); refused if it swept other tests."""
    if not os.path.exists(path):
        return []
    try:
        with open(path) as f:
            report = json.load(f)
        runs, earlier_tests = list(report["runs"]), report["test_ids"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise cli.ToolError(f"--resume: {path} is not a sweep report ({error})") from None
    if earlier_tests != tests:
        raise cli.ToolError(f"--resume: {path} swept {len(earlier_tests)} other test(s); "
                            "choose the same tests or another --output")
    return runs


def replay(seed: int, node: str) -> str:
    return f"BITTTS_TEST_SEED={seed} .venv/bin/python -m pytest '{node}'"


def markdown(report: dict) -> str:
    lines = [f"{report['tests']} tests x {report['seeds_run']} seeds "
             f"(of {report.get('seeds_planned', report['seeds_run'])} planned): "
             f"{report['test_runs']} test runs, {len(report['failures'])} failures", ""]
    if report["failures"]:
        lines += ["| test | seed | replay |", "|---|---|---|"]
        lines += [f"| {f['test']} | {f['seed']} | `{f['replay']}` |" for f in report["failures"]]
    return "\n".join(lines)


def main(argv):
    del argv
    from tqdm import tqdm

    from bittts_tf import fileio

    tests, gone = existing(chosen_tests())
    if gone:
        print(f"{len(gone)} test(s) of the selection no longer exist and are left out: "
              + ", ".join(gone[:5]) + (" ..." if len(gone) > 5 else ""), file=sys.stderr)
    if FLAGS.list:
        print("\n".join(tests))
        return
    runs = earlier_runs(FLAGS.output, tests) if FLAGS.resume else []
    done = {run["seed"] for run in runs}
    if FLAGS.first_seed is not None:
        seeds = [FLAGS.first_seed + i for i in range(FLAGS.seeds)]
    else:
        seeds = sorted(done) + [secrets.randbits(31) for _ in range(FLAGS.seeds - len(done))]
    planned, seeds = seeds, [s for s in seeds if s not in done]
    if runs:
        print(f"resuming {FLAGS.output}: {len(runs)} seed(s) already run")
    print(f"{len(tests)} test(s) x {len(seeds)} seeds: {', '.join(map(str, seeds))}")
    start = time.time() - sum(run["seconds"] for run in runs)

    def report_so_far() -> dict:
        failures = [{"test": node, "seed": run["seed"], "replay": replay(run["seed"], node)}
                    for run in runs for node in run["failed"]]
        return {"tests": len(tests), "left_out": gone, "seeds_run": len(runs),
                "seeds_planned": len(planned),
                "test_runs": sum(run["tests_run"] for run in runs),
                "seconds": round(time.time() - start, 1), "selection": {
                    "tests": FLAGS.tests, "junit": FLAGS.junit, "faster_than": FLAGS.faster_than,
                    "slower_than": FLAGS.slower_than},
                "failures": failures, "runs": runs, "test_ids": tests}

    def write(report: dict) -> None:
        fileio.atomic_write_json(FLAGS.output, report)
        fileio.atomic_write_text(os.path.splitext(FLAGS.output)[0] + ".md",
                                 markdown(report) + "\n")

    with tempfile.TemporaryDirectory(prefix="seed_sweep_") as workdir, \
            concurrent.futures.ThreadPoolExecutor(max(FLAGS.jobs, 1)) as pool, \
            tqdm(total=len(seeds), unit="seed", file=sys.stderr) as bar:
        for run in pool.map(lambda s: run_seed(s, tests, workdir), seeds):
            runs.append(run)
            bar.update()
            for node in run["failed"]:
                bar.write(f"seed {run['seed']}: FAILED {node}\n  replay: {replay(run['seed'], node)}")
            # Written after every seed: a long sweep stopped early keeps what it ran.
            write(report_so_far())
    report = report_so_far()
    failures = report["failures"]
    write(report)
    print(markdown(report))
    print(f"{report['seconds']:.0f} s; report {FLAGS.output}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    cli.run(main)
