"""tools/bench_stream.py, tools/bench_tts.py and tools/demo.py refuse bad
input in one line, before the work it would cost: flags no run can use,
a sentence the front end refuses (checked before the first one is spoken
or timed), a damaged format-1 manifest, a damaged size report; and the
demo reports a folder exported without a float32 baseline instead of
failing at its last step.

Each case runs the tool as a user would (a subprocess). Most fail at flag
parsing or on reading a folder, before LiteRT starts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(REPO, "models", "slt_tiny")
BAD_SENTENCE = "..."   # nothing pronounceable


def run_tool(tool: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", tool), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def refused(run: subprocess.CompletedProcess, tool: str, *expected: str) -> str:
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: "), lines
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def shipped_copy(tmp_path) -> str:
    folder = tmp_path / "model"
    shutil.copytree(SHIPPED, folder)
    return str(folder)


# --- bench_stream ----------------------------------------------------------------

def test_bench_stream_refuses_bad_flags(tmp_path):
    """--decode=foo reached TextToSpeech (a ValueError traceback), --rounds=0
    took min([]), an empty --sentences divided by zero seconds of audio."""
    output = str(tmp_path / "bench.json")
    for flag, expected in (("--decode=foo", "--decode=foo"), ("--rounds=0", "--rounds=0"),
                           ("--sentences=", "--sentences is empty")):
        refused(run_tool("bench_stream.py", f"--old_model_dir={tmp_path}", f"--output={output}",
                         flag), "bench_stream", expected)
    assert not os.path.exists(output)


def test_bench_stream_refuses_a_damaged_format1_manifest_naming_it(tmp_path):
    cases = {"torn": ('{"format_version": 1, "sha', "not readable JSON"),
             "list": ("[1]", "not a JSON object"),
             "no_shapes": ('{"format_version": 1}', "no 'shapes'"),
             "no_graph": (json.dumps({"format_version": 1, "shapes": {
                 "left_context": 8, "chunk_frames": 4, "right_context": 8, "hop_length": 256}}),
                 "no 'graphs'"),
             "text_shapes": (json.dumps({"format_version": 1, "shapes": "x"}),
                             "are not as a format-1 manifest writes them")}
    for name, (text, expected) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "manifest.json").write_text(text)
        refused(run_tool("bench_stream.py", f"--old_model_dir={folder}",
                         f"--output={tmp_path / 'bench.json'}"),
                "bench_stream", str(folder / "manifest.json"), expected)


def test_bench_stream_refuses_a_frames_graph_whose_inputs_do_not_fit(tmp_path):
    """A format-1 manifest over the format-2 stream graph: refused when it is
    loaded, not by set_tensor in the first round."""
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(os.path.join(SHIPPED, "frames.tflite"), folder / "frames.tflite")
    (folder / "manifest.json").write_text(json.dumps({
        "format_version": 1, "graphs": {"frames": {"file": "frames.tflite"}},
        "shapes": {"left_context": 8, "chunk_frames": 4, "right_context": 8, "hop_length": 256}}))
    refused(run_tool("bench_stream.py", f"--old_model_dir={folder}",
                     f"--output={tmp_path / 'bench.json'}"),
            "bench_stream", str(folder / "frames.tflite"), "'frames': (1, 20, ")


def test_bench_stream_checks_every_sentence_first(tmp_path):
    refused(run_tool("bench_stream.py", f"--old_model_dir={tmp_path}",
                     f"--output={tmp_path / 'bench.json'}", f"--sentences=Hello.,{BAD_SENTENCE}"),
            "bench_stream", "--sentences", repr(BAD_SENTENCE))


# --- bench_tts -------------------------------------------------------------------

def test_bench_tts_refuses_bad_flags(tmp_path):
    """--rounds=0 divided by zero seconds; --num_threads=0 was reported as a
    graph the interpreter cannot load (LiteRT takes 1 or more); an empty
    --sentences gave an IndexError."""
    output = str(tmp_path / "bench.json")
    for flag, expected in (("--rounds=0", "--rounds=0"), ("--num_threads=0", "--num_threads=0"),
                           ("--num_threads=-1", "--num_threads=-1"),
                           ("--sentences=", "--sentences is empty")):
        refused(run_tool("bench_tts.py", f"--model_dir={SHIPPED}", f"--output={output}", flag),
                "bench_tts", expected)
    assert not os.path.exists(output)


def test_bench_tts_checks_every_sentence_before_the_rounds(tmp_path):
    """Only the first sentence was spoken in the warm-up: a bad later one
    ended the rounds part-way."""
    run = run_tool("bench_tts.py", f"--model_dir={SHIPPED}", f"--output={tmp_path / 'b.json'}",
                   f"--sentences=Hello.,{BAD_SENTENCE}")
    refused(run, "bench_tts", "--sentences", repr(BAD_SENTENCE))
    assert "rounds" not in run.stderr


def test_bench_tts_names_a_failed_memory_measurement_before_the_rounds(tmp_path):
    """The memory process failing was a CalledProcessError traceback after
    every round. Here it fails at start-up (a sitecustomize that exits in
    `python -c` only, which is how the tool starts it)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys\n"
        "if sys.argv == ['-c']:\n"
        "    sys.stderr.write('MemoryError: simulated\\n')\n"
        "    sys.stderr.flush()\n"
        "    os._exit(1)\n")
    path = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    output = tmp_path / "b.json"
    run = run_tool("bench_tts.py", f"--model_dir={SHIPPED}", f"--output={output}", "--rounds=1",
                   "--sentences=Hello.", env={"PYTHONPATH": path})
    refused(run, "bench_tts", "peak memory of ", "the measuring process failed",
            "MemoryError: simulated")
    assert "rounds" not in run.stderr and not output.exists()


# --- demo ------------------------------------------------------------------------

def test_demo_refuses_an_empty_sentence_list(tmp_path):
    refused(run_tool("demo.py", f"--out_dir={tmp_path / 'demo'}", "--sentences="),
            "demo", "--sentences is empty")
    assert not (tmp_path / "demo").exists()


def test_demo_checks_the_size_report_and_every_sentence_before_speaking(tmp_path):
    """Read after every sentence was spoken and transcribed, a damaged size
    report lost report.json (JSONDecodeError, KeyError); so did a bad
    sentence after good ones."""
    model = shipped_copy(tmp_path)
    size_report = os.path.join(model, "size_report.json")
    with open(size_report) as f:
        good = json.load(f)
    cases = [('{"total": ', "not readable JSON"), ("[]", 'no "total" object'),
             (json.dumps({"total": {k: v for k, v in good["total"].items()
                                    if k != "packed_graph_bytes"}}),
              "total has no 'packed_graph_bytes'"),
             (json.dumps({"total": {**good["total"], "ternary_weights": "many"}}),
              "total 'ternary_weights' is 'many', not a whole number")]
    out_dir = tmp_path / "demo"
    for text, expected in cases:
        with open(size_report, "w") as f:
            f.write(text)
        refused(run_tool("demo.py", f"--model_dir={model}", f"--out_dir={out_dir}"),
                "demo", size_report, expected)
    with open(size_report, "w") as f:
        json.dump(good, f)
    refused(run_tool("demo.py", f"--model_dir={model}", f"--out_dir={out_dir}",
                     f"--sentences=Hello.,{BAD_SENTENCE}"),
            "demo", "--sentences", repr(BAD_SENTENCE))
    assert not out_dir.exists()   # nothing was spoken


def test_demo_reports_a_folder_without_a_float32_baseline(tmp_path):
    """export float32_baseline=False writes float32_graph_bytes None: the
    ratio was a TypeError after the speaking; now it is absent (null)."""
    model = shipped_copy(tmp_path)
    size_report = os.path.join(model, "size_report.json")
    with open(size_report) as f:
        sizes = json.load(f)
    sizes["total"].update(float32_graph_bytes=None, ratio_vs_float32=None)
    with open(size_report, "w") as f:
        json.dump(sizes, f)
    out_dir = tmp_path / "demo"
    run = run_tool("demo.py", f"--model_dir={model}", f"--out_dir={out_dir}", "--decode=load",
                   "--sentences=Hello.")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "no float32 baseline" in run.stdout
    with open(out_dir / "report.json") as f:
        report = json.load(f)
    assert report["float32_model_bytes"] is None and report["size_ratio_vs_float32"] is None
    assert report["graph_bytes"] == sizes["total"]["packed_graph_bytes"]
    assert len(report["sentences"]) == 1
