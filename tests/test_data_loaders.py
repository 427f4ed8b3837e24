import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest_corpus import tiny_corpus  # noqa: F401

from bittts_tf.audio.config import preset
from bittts_tf.data.cache import build_feature_cache
from bittts_tf.data.libritts import load_libritts
from bittts_tf.data.ljspeech import CorpusError, load_ljspeech


def copy_corpus(src, dst):
    shutil.copytree(src, dst)
    return dst


def metadata_rows(root):
    with open(os.path.join(root, "metadata.csv"), encoding="utf-8") as f:
        return [line.split("|") for line in f.read().splitlines()]


def write_rows(root, rows):
    with open(os.path.join(root, "metadata.csv"), "w", encoding="utf-8") as f:
        f.write("\n".join("|".join(r) for r in rows) + "\n")


def test_ljspeech_loader_reads_everything(tiny_corpus):
    utterances, report = load_ljspeech(tiny_corpus)
    assert len(utterances) == 6 and len(report) == 0
    rows = metadata_rows(tiny_corpus)
    for utt, row in zip(utterances, rows):
        assert (utt.utt_id, utt.text, utt.normalized, utt.speaker) == tuple(row)
        assert utt.festival_phones and len(utt.festival_phones) == len(utt.festival_ends)


def test_planted_faults_are_skipped_and_reported(tiny_corpus, tmp_path):
    root = copy_corpus(tiny_corpus, str(tmp_path / "faulty"))
    rows = metadata_rows(root)
    wav = lambda utt_id: os.path.join(root, "wavs", utt_id + ".wav")  # noqa: E731
    truncated, not_audio, empty_text, zero_clip = (rows[i][0] for i in range(4))
    data = open(wav(truncated), "rb").read()
    open(wav(truncated), "wb").write(data[:len(data) // 3])
    open(wav(not_audio), "w").write("<html>this is not a wav file</html>")
    rows[2][1] = rows[2][2] = "  "
    sf.write(wav(zero_clip), np.zeros(0, np.float32), 16000, subtype="PCM_16")
    write_rows(root, rows)

    utterances, report = load_ljspeech(root)
    assert {u.utt_id for u in utterances} == {r[0] for r in rows[4:]}
    assert report.ids() == {truncated, not_audio, empty_text, zero_clip}
    assert "truncated WAV" in report.reason_of(truncated)
    assert "not readable audio" in report.reason_of(not_audio)
    assert report.reason_of(empty_text) == "empty transcript"
    assert "too short: 0.000 s" in report.reason_of(zero_clip)

    # The feature cache carries the report along and extracts the rest.
    cache = build_feature_cache(utterances, preset("tiny"), str(tmp_path / "cache"), report=report,
                                num_workers=1, progress=False)
    assert len(cache) == 2 and cache.report.ids() == report.ids()
    with open(tmp_path / "cache" / "skipped.json", encoding="utf-8") as f:
        assert {item["utt_id"] for item in json.load(f)} == report.ids()


def test_clips_outside_the_length_limits_are_reported(tiny_corpus):
    utterances, report = load_ljspeech(tiny_corpus, min_seconds=0.3, max_seconds=3.0)
    seconds = {u: sf.info(os.path.join(tiny_corpus, "wavs", u + ".wav")).duration
               for u, *_ in metadata_rows(tiny_corpus)}
    assert {u.utt_id for u in utterances} == {u for u, s in seconds.items() if s <= 3.0}
    too_long = {u for u, s in seconds.items() if s > 3.0}
    assert too_long and report.ids() == too_long
    assert all(r.reason.startswith("too long") for r in report)


def test_duplicate_and_malformed_lines(tiny_corpus, tmp_path):
    root = copy_corpus(tiny_corpus, str(tmp_path / "dup"))
    rows = metadata_rows(root)
    write_rows(root, rows + [rows[0], ["lonely-id"]])
    utterances, report = load_ljspeech(root)
    assert len(utterances) == 6
    assert "duplicate id" in report.reason_of(rows[0][0])
    assert "malformed metadata line" in report.reason_of("lonely-id")


def test_missing_metadata_is_a_corpus_error(tmp_path):
    with pytest.raises(CorpusError, match="no metadata.csv"):
        load_ljspeech(str(tmp_path))


def test_libritts_layout(tiny_corpus, tmp_path):
    root = tmp_path / "libritts"
    rows = metadata_rows(tiny_corpus)
    for utt_id, text, normalized, speaker in rows:
        folder = root / speaker / "chapter1"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(tiny_corpus, "wavs", utt_id + ".wav"), folder / f"{utt_id}.wav")
        (folder / f"{utt_id}.original.txt").write_text(text)
        if utt_id != rows[0][0]:
            (folder / f"{utt_id}.normalized.txt").write_text(normalized.upper())
    (root / "kal" / "chapter1" / "orphan.wav").write_bytes(
        open(os.path.join(tiny_corpus, "wavs", rows[1][0] + ".wav"), "rb").read())
    utterances, report = load_libritts(str(root))
    by_id = {u.utt_id: u for u in utterances}
    assert set(by_id) == {r[0] for r in rows}
    assert report.ids() == {"orphan"} and "no transcript" in report.reason_of("orphan")
    for utt_id, text, normalized, speaker in rows:
        u = by_id[utt_id]
        assert u.speaker == speaker and u.text == text and u.festival_phones is None
        expected = normalized if utt_id == rows[0][0] else normalized.upper()
        assert u.normalized == expected
