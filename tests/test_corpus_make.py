import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from conftest_corpus import MAKE_CORPUS, REPO, TINY_FLAGS, require_festival, run_make_corpus, tiny_corpus  # noqa: F401

from bittts_tf.text.festival import festival_to_symbol


def read_metadata(root):
    with open(os.path.join(root, "metadata.csv"), encoding="utf-8") as f:
        return [line.split("|") for line in f.read().splitlines()]


def test_corpus_layout_and_speakers(tiny_corpus):
    rows = read_metadata(tiny_corpus)
    assert len(rows) == 6
    assert all(len(r) == 4 and r[1] and r[2] for r in rows)
    assert [r[3] for r in rows] == ["slt", "kal"] * 3
    for utt_id, *_ in rows:
        info = sf.info(os.path.join(tiny_corpus, "wavs", utt_id + ".wav"))
        assert info.samplerate == 16000 and info.subtype == "PCM_16" and info.frames > 8000


def test_phone_durations_cover_the_wavs(tiny_corpus):
    with open(os.path.join(tiny_corpus, "phone_durations.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    assert len(records) == 6
    for rec in records:
        seconds = sf.info(os.path.join(tiny_corpus, "wavs", rec["id"] + ".wav")).duration
        ends = np.asarray(rec["ends"])
        assert np.all(np.diff(ends) >= 0) and rec["phones"][0] == rec["phones"][-1] == "pau"
        assert abs(seconds - ends[-1]) < 0.020, (rec["id"], seconds, ends[-1])
        for phone, stress in zip(rec["phones"], rec["stress"]):
            festival_to_symbol(phone, stress)  # every phone maps into the symbol set


def test_same_flags_give_identical_audio(tiny_corpus, tmp_path):
    out = str(tmp_path / "again")
    run_make_corpus(out, "--num_utterances=2")
    for utt_id in ("bt00000", "bt00001"):
        a = open(os.path.join(tiny_corpus, "wavs", utt_id + ".wav"), "rb").read()
        b = open(os.path.join(out, "wavs", utt_id + ".wav"), "rb").read()
        assert a == b, utt_id


def test_killed_run_resumes_without_redoing_finished_work(tmp_path):
    require_festival()
    out = str(tmp_path / "resume")
    cmd = [sys.executable, MAKE_CORPUS, f"--out_dir={out}", *TINY_FLAGS, "--batch_size=1",
           "--num_workers=1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    segments = os.path.join(out, "segments")
    deadline = time.time() + 120
    while time.time() < deadline:
        if os.path.isdir(segments) and len([n for n in os.listdir(segments) if n.endswith(".json")]) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: python and its festival child
    proc.wait()
    finished = sorted(n for n in os.listdir(segments) if n.endswith(".json"))
    assert 2 <= len(finished) < 6, "the kill should land mid-run"
    before = {n: os.stat(os.path.join(segments, n)).st_mtime_ns for n in finished}
    # Damage one more item the way a crash between the two writes would.
    victim = finished[0][:-5]
    os.unlink(os.path.join(out, "wavs", victim + ".wav"))

    result = run_make_corpus(out)
    assert f"{len(finished) - 1} of 6 utterances already done" in result.stdout
    for name in finished[1:]:
        assert os.stat(os.path.join(segments, name)).st_mtime_ns == before[name], name
    assert len(read_metadata(out)) == 6
    assert not [n for d in ("wavs", "segments") for n in os.listdir(os.path.join(out, d))
                if n.startswith(".tmp")]
    assert os.path.exists(os.path.join(out, "wavs", victim + ".wav"))


def test_restart_with_other_settings_is_refused(tiny_corpus):
    proc = run_make_corpus(tiny_corpus, "--seed=8", check=False)
    assert proc.returncode != 0 and "other settings" in proc.stderr


def refusal(proc) -> str:
    """The one stderr line of a refused run."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("make_corpus: "), lines
    return lines[0]


def test_a_plan_that_cannot_be_made_does_not_block_the_corrected_command(tmp_path):
    require_festival()
    out = tmp_path / "corpus"
    small = ["--num_utterances=1", "--voices=slt", "--num_workers=1", "--sources=everyday"]
    line = refusal(run_make_corpus(str(out), *small, "--min_words=30", "--max_words=5", check=False))
    assert "no usable everyday sentence" in line
    assert not (out / "corpus_settings.json").exists()

    fixed = run_make_corpus(str(out), *small, "--min_words=1", "--max_words=30")
    assert "0 of 1 utterances already done" in fixed.stdout
    settings = json.loads((out / "corpus_settings.json").read_text())
    assert (settings["min_words"], settings["max_words"]) == (1, 30)
    assert len(read_metadata(out)) == 1


@pytest.mark.parametrize("flag", ["--voices=", "--num_workers=0", "--batch_size=0",
                                  "--num_utterances=0"])
def test_an_empty_or_zero_flag_is_refused_in_one_line_before_writing(tmp_path, flag):
    out = tmp_path / "corpus"
    line = refusal(run_make_corpus(str(out), flag, check=False))
    assert flag.split("=")[0] in line
    assert not out.exists()


@pytest.mark.parametrize("damage", [b'{"sample_rate": 16', b"\xff\xfe\x00garbage", b"[1, 2]\n"])
def test_a_damaged_settings_file_is_named_and_kept(tmp_path, damage):
    out = tmp_path / "corpus"
    out.mkdir()
    path = out / "corpus_settings.json"
    path.write_bytes(damage)
    line = refusal(run_make_corpus(str(out), check=False))
    assert f"{path} is damaged" in line and "--out_dir" in line
    assert path.read_bytes() == damage


def test_missing_festival_is_refused_in_one_line(tmp_path):
    nothing = tmp_path / "empty_path"
    nothing.mkdir()
    proc = subprocess.run([sys.executable, MAKE_CORPUS, f"--out_dir={tmp_path / 'corpus'}"],
                          capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "PATH": str(nothing)})
    assert "festival is not installed" in refusal(proc)
