"""Installed as a user installs it: the source distribution built into a wheel
(which compiles the C libraries), the wheel installed into a fresh venv with
the base dependencies only, bittts-speak run from a folder outside the clone.
And the runtime speaks without importing TensorFlow.

One venv serves the whole file (module fixture): building and installing
take about half a minute, the dependencies come from PyPI through pip's cache.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[1]
VOICE = ROOT / "models" / "slt_tiny"
# What the runtime loads on every synthesis (bittts_tf.litert.native, bittts_tf.runtime.istft_c).
RUNTIME_LIBRARIES = ("libbittts_ternary.so", "libbittts_litert.so", "libbittts_istft.so")
# Imported by training and conversion only: none of them belongs in the runtime.
TRAINING_MODULES = ("tensorflow", "keras", "tf_keras", "tensorflow_model_optimization",
                    "librosa", "matplotlib")


def user_env() -> dict:
    """The environment without our development overrides."""
    return {k: v for k, v in os.environ.items()
            if k not in ("BITTTS_BUILD_DIR", "PYTHONPATH", "VIRTUAL_ENV", "TF_CPP_MIN_LOG_LEVEL")}


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("env", user_env())
    result = subprocess.run([str(c) for c in command], capture_output=True, timeout=600, **kwargs)
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr.decode()[-4000:])
    return result


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> pathlib.Path:
    """Our source distribution: what a user's pip builds from. Built from a
    private copy of the clone's tracked files: setuptools stages an sdist in
    the source root, so two test runs at once (a seed sweep's two jobs) broke
    each other's builds (2 of 3 concurrent pairs failed, tried by hand)."""
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("sdist")
    run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
         "build_meta.build_sdist(sys.argv[1])", out], cwd=source)
    [built] = out.glob("bittts_tf-*.tar.gz")
    return built


@pytest.fixture(scope="module")
def wheel(sdist, tmp_path_factory) -> pathlib.Path:
    """The wheel pip builds from the sdist (so the sdist must hold everything
    the build needs)."""
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check",
         "-w", out, sdist], cwd=out)
    [built] = out.glob("bittts_tf-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> pathlib.Path:
    """A fresh venv holding the wheel and its base dependencies."""
    path = tmp_path_factory.mktemp("user") / "venv"
    run([sys.executable, "-m", "venv", path])
    run([path / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
         wheel])
    return path


def test_wheel_holds_the_c_libraries_and_the_voice(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    libraries = {pathlib.PurePath(n).name for n in names if n.startswith("bittts_tf/_native/")}
    assert set(RUNTIME_LIBRARIES) <= libraries, libraries
    assert all(name.endswith(".so") for name in libraries)
    manifest = json.loads((VOICE / "manifest.json").read_text())
    voice_files = {n.removeprefix("bittts_tf/voices/slt_tiny/") for n in names
                   if n.startswith("bittts_tf/voices/slt_tiny/")}
    assert {"manifest.json"} | {g["file"] for g in manifest["graphs"].values()} <= voice_files
    assert "linux" in wheel.name and "none-any" not in wheel.name   # compiled code: a platform wheel


def test_base_install_has_no_training_dependencies(venv):
    probe = ("import importlib.util, json, sys; "
             "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m)]))")
    found = json.loads(run([venv / "bin" / "python", "-c", probe, *TRAINING_MODULES]).stdout)
    assert found == []


def test_installed_package_uses_its_own_libraries_and_voice(venv, tmp_path):
    where = run([venv / "bin" / "python", "-c",
                 "from bittts_tf import install_layout as l; "
                 "print(l.library_dir()); print(l.default_model_dir())"], cwd=tmp_path)
    library_dir, model_dir = where.stdout.decode().split()
    site_packages = str(venv / "lib")
    assert library_dir.startswith(site_packages) and library_dir.endswith("bittts_tf/_native")
    assert model_dir.startswith(site_packages) and model_dir.endswith("bittts_tf/voices/slt_tiny")


def check_speech(wav: bytes, text: str) -> float:
    """The wav's duration, after checking it is speech at the voice's rate."""
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    expected_rate = json.loads((VOICE / "manifest.json").read_text())["audio"]["sample_rate"]
    assert rate == expected_rate
    seconds = len(audio) / rate
    assert seconds > 0.5, (text, seconds)
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    assert rms > 0.01 and np.abs(audio).max() > 0.1, (text, rms)   # not silence
    return seconds


def test_bittts_speak_from_outside_the_clone(venv, tmp_path):
    speak = venv / "bin" / "bittts-speak"
    result = run([speak, "Hello there.", "-o", "hello.wav"], cwd=tmp_path)
    seconds = check_speech((tmp_path / "hello.wav").read_bytes(), "Hello there.")
    summary = result.stdout.decode()
    assert f"{seconds:.2f} s of audio" in summary and "time to first audio" in summary
    assert result.stderr.decode().strip() == ""   # the start-up notes are filtered

    # -o -: the wav on stdout, nothing else there; our line on stderr.
    piped = run([speak, "--text=The next train leaves at four.", "-o", "-"], cwd=tmp_path)
    check_speech(piped.stdout, "The next train leaves at four.")
    assert "wrote stdout" in piped.stderr.decode()

    listed = run([speak, "--list_speakers"], cwd=tmp_path)
    assert listed.stdout.decode().split() == ["0"]
    # absl ends --help with exit status 1, as every tool in tools/ does.
    helped = subprocess.run([speak, "--help"], capture_output=True, text=True, cwd=tmp_path,
                            env=user_env(), timeout=120).stdout
    assert 'bittts-speak "Hello there." -o hello.wav' in helped and "-o,--output" in helped


def test_bittts_speak_refuses_in_one_line(venv, tmp_path):
    speak = venv / "bin" / "bittts-speak"
    missing = tmp_path / "no_such_voice"
    for args, names in (([], "nothing to say"),
                        ([f"--model_dir={missing}", "Hi."], str(missing))):
        result = subprocess.run([speak, *args], capture_output=True, text=True, cwd=tmp_path,
                                env=user_env(), timeout=120)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert lines[0].startswith("bittts-speak: ") and names in lines[0]


def test_runtime_speaks_without_importing_tensorflow(tmp_path):
    """In the development venv, where TensorFlow is installed (so an import
    would succeed silently): the runtime and the speak command load none of it."""
    script = f"""
import sys
from bittts_tf import install_layout
from bittts_tf.runtime import TextToSpeech
TextToSpeech(str(install_layout.default_model_dir())).synthesize("Hello there.")
sys.argv = ["bittts-speak", "Hello there.", "-o", {str(tmp_path / "hello.wav")!r}]
from bittts_tf import commands
try:
    commands.speak()
except SystemExit as end:
    assert not end.code, end.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {TRAINING_MODULES!r})
print("loaded:", loaded)
"""
    result = run([sys.executable, "-c", script], cwd=tmp_path)
    assert "loaded: []" in result.stdout.decode(), result.stdout.decode()
    check_speech((tmp_path / "hello.wav").read_bytes(), "Hello there.")


def test_no_c_compiler_is_one_line(sdist, tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "--disable-pip-version-check", "-w", tmp_path, sdist],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env={**user_env(), "CC": "no-such-compiler"})
    assert result.returncode != 0
    output = result.stdout + result.stderr
    [line] = [l for l in output.splitlines() if "compiles its C libraries" in l]
    assert "a C compiler (no-such-compiler)" in line and "build-essential" in line


def test_commands_without_their_extra_say_which_to_install(venv, tmp_path):
    for command, extra in (("bittts-export", "train"), ("bittts-evaluate", "eval")):
        result = subprocess.run([venv / "bin" / command, "--help"], capture_output=True,
                                text=True, cwd=tmp_path, env=user_env(), timeout=120)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert lines[0].startswith(f"{command}: ") and f"bittts_tf[{extra}]" in lines[0]
