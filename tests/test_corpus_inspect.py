import os
import re
import subprocess
import sys

import matplotlib.image
import soundfile as sf

from conftest_corpus import REPO, tiny_corpus  # noqa: F401

INSPECT = os.path.join(REPO, "tools", "inspect_corpus.py")


def test_inspect_prints_statistics_and_saves_a_png(tiny_corpus, tmp_path):
    png = str(tmp_path / "mel.png")
    proc = subprocess.run([sys.executable, INSPECT, f"--corpus_dir={tiny_corpus}", f"--png={png}",
                           "--utt_id=bt00001"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    wavs = os.path.join(tiny_corpus, "wavs")
    hours = sum(sf.info(os.path.join(wavs, n)).duration for n in os.listdir(wavs)) / 3600
    m = re.search(r"(\d+) utterances, ([\d.]+) hours", out)
    assert m and int(m.group(1)) == 6 and abs(float(m.group(2)) - hours) < 0.0006
    assert "speaker kal: 3 utterances" in out and "speaker slt: 3 utterances" in out
    assert re.search(r"G2P over \d+ transcript words: dictionary \d+", out)
    assert re.search(r"phone coverage \(festival segments\): \d+ of 70 symbols", out)
    worst = float(re.search(r"worst \|wav length - sum of durations\| = ([\d.]+) ms", out).group(1))
    assert worst < 20.0
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_inspect_rejects_an_unknown_utterance(tiny_corpus, tmp_path):
    proc = subprocess.run([sys.executable, INSPECT, f"--corpus_dir={tiny_corpus}",
                           f"--png={tmp_path / 'x.png'}", "--utt_id=nope"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode != 0 and "--utt_id=nope" in proc.stderr
