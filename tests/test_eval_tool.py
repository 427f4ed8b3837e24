"""tools/evaluate.py end to end, with a stand-in runtime that speaks with
festival (so the model's rows must equal festival's), and its one-line errors."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "evaluate.py")

# The interface bittts_tf.runtime provides, answered by festival's slt voice
# resampled to the model rate: a "model" whose ceiling is exactly festival.
STAND_IN_RUNTIME = textwrap.dedent('''
    import dataclasses
    import os

    import numpy as np

    from bittts_tf.audio.config import AudioConfig
    from bittts_tf.audio.features import log_mel
    from bittts_tf.audio.io import resample
    from bittts_tf.data import festival
    from bittts_tf.text.normalize import normalize_text


    class ModelFolderError(ValueError):
        pass


    @dataclasses.dataclass
    class Result:
        audio: np.ndarray
        mel: np.ndarray
        sample_rate: int


    class TextToSpeech:
        def __init__(self, model_dir, variant="packed", engine="litert"):
            if not os.path.isfile(os.path.join(model_dir, "model.tflite")):
                raise ModelFolderError(f"{model_dir}: no model.tflite")
            self.audio_config = AudioConfig()

        def segments(self, text):
            return [normalize_text(text)]

        def synthesize(self, text, duration_scale=1.0):
            [spoken], _ = festival.synthesize_batch([("x", normalize_text(text))], "slt")
            rate = self.audio_config.sample_rate
            audio = resample(spoken.audio, spoken.sample_rate, rate)
            if duration_scale != 1.0:   # slower speech: the same audio stretched
                n = round(len(audio) * duration_scale)
                audio = np.interp(np.linspace(0, len(audio) - 1, n), np.arange(len(audio)),
                                  audio).astype(np.float32)
            return Result(audio, log_mel(audio, self.audio_config), rate)
''')

LAUNCH = textwrap.dedent('''
    import runpy, sys
    import stand_in_runtime
    sys.modules["bittts_tf.runtime"] = stand_in_runtime
    sys.argv = [{tool!r}] + sys.argv[1:]
    runpy.run_path({tool!r}, run_name="__main__")
''').format(tool=TOOL)


def run_tool(tmp_path, *args, stand_in=True):
    env = dict(os.environ)
    if stand_in:
        (tmp_path / "stand_in_runtime.py").write_text(STAND_IN_RUNTIME)
        env["PYTHONPATH"] = str(tmp_path)
        command = [sys.executable, "-c", LAUNCH, *args]
    else:
        command = [sys.executable, TOOL, *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def one_line_error(proc, *expected):
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("evaluate: "), proc.stderr
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.tflite").write_bytes(b"stand-in")
    return folder


def test_scores_every_system_and_the_stand_in_model_matches_festival(tmp_path, model_dir):
    output, audio_dir = tmp_path / "out" / "eval.json", tmp_path / "wavs"
    proc = run_tool(tmp_path, f"--model_dir={model_dir}", f"--output={output}",
                    f"--audio_dir={audio_dir}", "--limit=2")
    print(proc.stdout, proc.stderr[-2000:])
    assert proc.returncode == 0
    report = json.loads(output.read_text())
    systems = report["systems"]
    assert sorted(systems) == sorted(["model", "griffin_lim", "festival", "festival_griffin_lim"])
    for name, result in systems.items():
        assert len(result["sentences"]) == 2
        assert {"wer", "cer", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"} <= set(result["summary"])
        assert name in proc.stdout
        assert sorted(os.listdir(audio_dir / name)) == ["01.wav", "02.wav"]
    # Same audio, same mel: the pairs must agree sentence by sentence.
    for a, b in (("model", "festival"), ("griffin_lim", "festival_griffin_lim")):
        assert [r["heard"] for r in systems[a]["sentences"]] == \
            [r["heard"] for r in systems[b]["sentences"]]
        for metric in ("dnsmos_ovrl", "cpps_db"):
            assert systems[a]["summary"][metric] == \
                pytest.approx(systems[b]["summary"][metric], abs=1e-3)
    assert systems["festival"]["summary"]["wer"] < 0.5
    # MCD against festival's clips: none for festival itself, none between
    # the stand-in and festival (the same audio), and each sentence's figure
    # a plain time-warped MCD of the clips written (16-bit) recomputes.
    from bittts_tf.audio.config import AudioConfig
    from bittts_tf.audio.io import load_wav
    from test_paper_table import plain_dtw_mcd

    assert "mcd_db" not in systems["festival"]["summary"]
    assert systems["model"]["summary"]["mcd_db"] == pytest.approx(0.0, abs=1e-9)
    config = AudioConfig.from_dict(report["audio_config"])
    for name in ("griffin_lim", "festival_griffin_lim"):
        for index, row in enumerate(systems[name]["sentences"]):
            clip = lambda system: load_wav(str(audio_dir / system / f"{index + 1:02d}.wav"),
                                           config.sample_rate)[0]
            expected = plain_dtw_mcd(clip("festival"), clip(name), config)
            assert row["mcd_db"] == pytest.approx(expected, rel=0.02), (name, index)
            assert row["mcd_db"] > 0.5
    assert "MCD dB" in proc.stdout
    assert not [n for n in os.listdir(output.parent) if n.startswith(".tmp-")]


def test_a_model_folder_the_runtime_rejects_gets_one_line(tmp_path):
    """The real runtime on a copy of the shipped voice whose text graph was cut short."""
    folder = tmp_path / "slt_tiny"
    shutil.copytree(os.path.join(REPO, "models", "slt_tiny"), folder)
    graph = folder / "text.tflite"
    graph.write_bytes(graph.read_bytes()[:1000])
    one_line_error(run_tool(tmp_path, f"--model_dir={folder}", "--nodnsmos", stand_in=False),
                   str(graph), "1000 bytes", "truncated")


@pytest.mark.parametrize("stand_in", [True, False])
def test_a_missing_model_folder_gets_one_line(tmp_path, stand_in):
    missing = tmp_path / "no_such_model"
    one_line_error(run_tool(tmp_path, f"--model_dir={missing}", stand_in=stand_in),
                   str(missing), "no such folder")


def test_the_real_runtime_on_an_empty_folder_gets_one_line(tmp_path):
    # The real bittts_tf.runtime: no traceback.
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(run_tool(tmp_path, f"--model_dir={empty}", "--nodnsmos", stand_in=False))


def test_a_bad_sentences_file_or_system_gets_one_line(tmp_path, model_dir):
    missing = tmp_path / "nope.txt"
    one_line_error(run_tool(tmp_path, f"--model_dir={model_dir}", f"--sentences={missing}"),
                   str(missing))
    one_line_error(run_tool(tmp_path, f"--model_dir={model_dir}", "--systems=model,opera"),
                   "opera")


def test_a_bad_set_or_a_set_with_a_file_gets_one_line(tmp_path, model_dir):
    one_line_error(run_tool(tmp_path, f"--model_dir={model_dir}", "--set=training"),
                   "'training'", "validation, test")
    sentences = tmp_path / "mine.txt"
    sentences.write_text("A fine sentence here.\n")
    one_line_error(run_tool(tmp_path, f"--model_dir={model_dir}", "--set=test",
                            f"--sentences={sentences}"), "not both")


@pytest.mark.parametrize("args, name", [((), "test"), (("--set=validation",), "validation"),
                                        (("--set=test",), "test")])
def test_the_report_names_the_set_it_scored(tmp_path, model_dir, args, name):
    from bittts_tf.eval import sets
    output = tmp_path / "eval.json"
    proc = run_tool(tmp_path, f"--model_dir={model_dir}", f"--output={output}", *args,
                    "--limit=1", "--systems=festival", "--nodnsmos")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(output.read_text())
    expected = sets.load_set(name)
    assert report["set"] == name and report["sentences_file"] == sets.SETS[name]
    assert report["num_sentences"] == 1
    assert report["systems"]["festival"]["sentences"][0]["sentence"] == expected[0]
    assert f"set: {name} (1 of {len(expected)} sentences, {sets.SETS[name]})" in proc.stdout


def test_a_sentences_file_is_reported_as_the_set_file(tmp_path, model_dir):
    output, sentences = tmp_path / "eval.json", tmp_path / "mine.txt"
    sentences.write_text("A fine sentence here.\n")
    proc = run_tool(tmp_path, f"--model_dir={model_dir}", f"--output={output}",
                    f"--sentences={sentences}", "--systems=festival", "--nodnsmos")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(output.read_text())
    assert report["set"] == "file" and report["sentences_file"] == str(sentences)
    assert f"set: file (1 sentence, {sentences})" in proc.stdout


def test_the_speaking_rate_reaches_the_model_and_the_report(tmp_path, model_dir):
    output = tmp_path / "eval.json"
    proc = run_tool(tmp_path, f"--model_dir={model_dir}", f"--output={output}", "--limit=1",
                    "--systems=model,festival", "--nodnsmos", "--duration_scale=1.5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(output.read_text())
    assert report["duration_scale"] == 1.5
    seconds = {name: report["systems"][name]["summary"]["seconds"] for name in ("model", "festival")}
    # festival is the reference and speaks at its own rate; the model 1.5x as long.
    assert seconds["model"] == pytest.approx(1.5 * seconds["festival"], abs=1e-3)
    proc = run_tool(tmp_path, f"--model_dir={model_dir}", f"--output={output}",
                    "--duration_scale=0")
    one_line_error(proc, "duration_scale")


def test_an_output_that_is_a_folder_is_refused_before_scoring(tmp_path, model_dir):
    folder = tmp_path / "results"
    folder.mkdir()
    proc = run_tool(tmp_path, f"--model_dir={model_dir}", f"--output={folder}", "--limit=1",
                    "--systems=model", "--nodnsmos")
    one_line_error(proc, f"--output={folder}: {folder} is a folder")
    assert "set:" not in proc.stdout and list(folder.iterdir()) == []


@pytest.fixture(scope="module")
def vocoder_checkpoint(tmp_path_factory):
    """A small frame vocoder with random weights (a fresh, printed seed), saved
    as a training run saves one."""
    from seeds import fresh_seed
    from tts_models import save_small_vocoder_run

    return save_small_vocoder_run(fresh_seed("eval_tool_vocoder"),
                                  tmp_path_factory.mktemp("voc_run"), step=3)


def test_festival_vocoder_speaks_festivals_mel_through_the_checkpoint(tmp_path, model_dir,
                                                                      vocoder_checkpoint):
    """The clip equals the checkpoint's vocoder, rebuilt here, on the log-mel of
    festival's own audio, to a 16-bit step."""
    import soundfile as sf

    from bittts_tf.audio.config import AudioConfig
    from bittts_tf.audio.features import log_mel
    from bittts_tf.audio.io import resample
    from bittts_tf.data import festival
    from bittts_tf.eval import sets
    from bittts_tf.eval.synthesis import load_vocoder
    from bittts_tf.text.normalize import normalize_text

    output, audio_dir = tmp_path / "eval.json", tmp_path / "wavs"
    proc = run_tool(tmp_path, f"--model_dir={model_dir}", f"--output={output}", "--limit=1",
                    f"--audio_dir={audio_dir}", "--systems=festival,festival_vocoder",
                    f"--vocoder_checkpoint={vocoder_checkpoint}", "--nodnsmos")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(output.read_text())
    assert sorted(report["systems"]) == ["festival", "festival_vocoder"]
    assert "festival_vocoder" in proc.stdout

    sentence = sets.load_set("test")[0]
    config = AudioConfig()
    [spoken], _ = festival.synthesize_batch([("x", normalize_text(sentence))], "slt")
    audio = resample(spoken.audio, spoken.sample_rate, config.sample_rate)
    generator, _ = load_vocoder(str(vocoder_checkpoint))
    expected = np.clip(np.asarray(generator(log_mel(audio, config)[None])[0]), -1, 1)
    got, rate = sf.read(audio_dir / "festival_vocoder" / "01.wav", dtype="float32")
    assert rate == config.sample_rate and got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1.01 / 32767


def test_festival_vocoder_without_a_checkpoint_or_with_a_bad_one_gets_one_line(
        tmp_path, model_dir):
    one_line_error(run_tool(tmp_path, f"--model_dir={model_dir}",
                            "--systems=festival_vocoder"), "--vocoder_checkpoint")
    one_line_error(run_tool(tmp_path, f"--model_dir={model_dir}",
                            f"--vocoder_checkpoint={tmp_path}"), "--vocoder_checkpoint")
    missing = tmp_path / "nothing.npz"
    one_line_error(run_tool(tmp_path, f"--model_dir={model_dir}", "--systems=festival_vocoder",
                            f"--vocoder_checkpoint={missing}"), str(missing))
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not a zip")
    one_line_error(run_tool(tmp_path, f"--model_dir={model_dir}", "--systems=festival_vocoder",
                            f"--vocoder_checkpoint={corrupt}"), str(corrupt))
