import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest_corpus import REPO, tiny_cache, tiny_corpus  # noqa: F401

from bittts_tf.audio.config import preset
from bittts_tf.audio.features import frame_features
from bittts_tf.audio.io import load_wav
from bittts_tf.data.cache import FeatureCache, build_feature_cache
from bittts_tf.data.ljspeech import load_ljspeech
from bittts_tf.text.festival import festival_to_symbol
from bittts_tf.text.symbols import PAUSE

CFG = preset("tiny")


def test_cache_holds_what_the_models_need(tiny_cache, tiny_corpus):
    assert len(tiny_cache) == 6 and tiny_cache.speakers == {"kal": 0, "slt": 1}
    with open(os.path.join(tiny_corpus, "phone_durations.jsonl"), encoding="utf-8") as f:
        timings = {r["id"]: r for r in map(json.loads, f)}
    for entry in tiny_cache.entries:
        z = tiny_cache.load(entry["utt_id"])
        audio, _ = load_wav(entry["wav_path"], CFG.sample_rate)
        n = CFG.n_frames(len(audio))
        assert z["mel"].shape == (n, CFG.n_mels) and z["f0"].shape == z["energy"].shape == (n,)
        assert int(z["speaker"]) == tiny_cache.speakers[entry["speaker"]]
        np.testing.assert_allclose(z["audio"] / 32767.0, audio, atol=1.5 / 32767)
        # Phonemes come from festival's segments, one per segment (pauses merged).
        t = timings[entry["utt_id"]]
        symbols = [festival_to_symbol(p, s) for p, s in zip(t["phones"], t["stress"])]
        merged = [s for i, s in enumerate(symbols) if not (s == PAUSE and i and symbols[i - 1] == PAUSE)]
        assert tiny_cache.front_end.symbols.decode(z["phonemes"]) == merged
        d = z["durations"]
        assert len(d) == len(z["phonemes"]) and d.sum() == n and np.all(d >= 0)
        # Each phone's frames start where festival says it starts (to the frame).
        starts = np.concatenate([[0], np.cumsum(d)[:-1]])
        ends_s = [e for i, e in enumerate(t["ends"]) if not (symbols[i] == PAUSE and i + 1 < len(symbols) and symbols[i + 1] == PAUSE)]
        start_s = np.concatenate([[0.0], ends_s[:-1]])
        nonempty = d > 0
        np.testing.assert_allclose(starts[nonempty] * CFG.hop_length / CFG.sample_rate,
                                   start_s[nonempty], atol=CFG.hop_length / CFG.sample_rate)
        voiced = z["f0"] > 0
        assert voiced.mean() > 0.3  # festival speech is mostly voiced
        pf0 = z["phone_f0"]
        pos = 0
        for k, dk in enumerate(d):
            seg = z["f0"][pos:pos + dk]
            seg = seg[seg > 0]
            assert pf0[k] == pytest.approx(seg.mean() if len(seg) else 0.0, rel=1e-5)
            pos += dk


def test_features_equal_a_direct_extraction(tiny_cache):
    entry = tiny_cache.entries[0]
    audio, _ = load_wav(entry["wav_path"], CFG.sample_rate)
    direct = frame_features(audio, CFG)
    z = tiny_cache.load(entry["utt_id"])
    for key in ("mel", "f0", "energy"):
        np.testing.assert_allclose(z[key], direct[key], rtol=1e-5, atol=1e-5)


def test_reuse_partial_rebuild_and_config_change(tiny_corpus, tmp_path):
    utterances, report = load_ljspeech(tiny_corpus)
    cache_dir = str(tmp_path / "cache")
    kwargs = dict(report=report, num_workers=1, progress=False)
    first = build_feature_cache(utterances[:4], CFG, cache_dir, **kwargs)
    assert first.stats["extracted"] == 4 and not first.stats["reused_manifest"]

    again = build_feature_cache(utterances[:4], CFG, cache_dir, **kwargs)
    assert again.stats["reused_manifest"]

    # Two more utterances: only they are extracted.
    grown = build_feature_cache(utterances, CFG, cache_dir, **kwargs)
    assert grown.stats["extracted"] == 2 and grown.stats["reused_files"] == 4

    # Another configuration rebuilds everything, and the result follows it.
    other = dataclasses.replace(CFG, n_mels=40)
    rebuilt = build_feature_cache(utterances, other, cache_dir, **kwargs)
    assert rebuilt.stats["extracted"] == 6 and rebuilt.audio_config == other
    assert rebuilt.load(utterances[0].utt_id)["mel"].shape[1] == 40

    # Loading from disk alone gives the same manifest.
    assert FeatureCache(cache_dir).entries == rebuilt.entries


def test_utterance_without_timings_gets_g2p_phonemes(tiny_corpus, tmp_path):
    utterances, _ = load_ljspeech(tiny_corpus)
    utt = dataclasses.replace(utterances[0], festival_phones=None, festival_stress=None,
                              festival_ends=None)
    cache = build_feature_cache([utt], CFG, str(tmp_path / "c"), num_workers=1, progress=False)
    z = cache.load(utt.utt_id)
    assert "durations" not in z
    assert list(z["phonemes"]) == cache.front_end.encode(utt.normalized)


def test_corpus_at_another_rate_is_resampled(tiny_corpus, tmp_path):
    from bittts_tf.audio.io import save_wav
    from bittts_tf.data.libritts import load_libritts
    source, _ = load_ljspeech(tiny_corpus)
    root = tmp_path / "libritts24k" / "spk" / "ch"
    root.mkdir(parents=True)
    lengths = {}
    for u in source[:2]:
        audio, _ = load_wav(u.wav_path, 24000)
        save_wav(str(root / f"{u.utt_id}.wav"), audio, 24000)
        (root / f"{u.utt_id}.normalized.txt").write_text(u.normalized)
        lengths[u.utt_id] = len(audio)
    utterances, report = load_libritts(str(tmp_path / "libritts24k"))
    cache = build_feature_cache(utterances, CFG, str(tmp_path / "c"), report=report,
                                num_workers=1, progress=False)
    for e in cache.entries:
        z = cache.load(e["utt_id"])
        n16 = len(z["audio"])
        assert abs(n16 - lengths[e["utt_id"]] * 2 / 3) <= 1
        assert len(z["mel"]) == CFG.n_frames(n16)
        assert e["speaker"] == "spk" and "durations" not in z


def test_timings_that_do_not_fit_the_audio_are_skipped(tiny_corpus, tmp_path):
    utterances, _ = load_ljspeech(tiny_corpus)
    u = utterances[0]
    stretched = dataclasses.replace(u, festival_ends=[e * 1.5 for e in u.festival_ends])
    cache = build_feature_cache([stretched, utterances[1]], CFG, str(tmp_path / "c"),
                                num_workers=1, progress=False)
    assert [e["utt_id"] for e in cache.entries] == [utterances[1].utt_id]
    assert "durations do not fit the audio" in cache.report.reason_of(u.utt_id)


def build_cache_command(*flags: str) -> subprocess.CompletedProcess:
    """The command the README documents, run as a user would."""
    return subprocess.run([sys.executable, "-m", "bittts_tf.data.build_cache", *flags],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def test_build_cache_command_refuses_a_missing_corpus_in_one_line(tmp_path):
    missing = tmp_path / "no_corpus"
    proc = build_cache_command(f"--corpus_dir={missing}", f"--cache_dir={tmp_path / 'cache'}")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines == [f"build_cache: {missing}: no metadata.csv; not an LJSpeech-format corpus"]
    assert not (tmp_path / "cache").exists()


def test_build_cache_command_builds_with_parallel_workers(tiny_corpus, tmp_path):
    # Two workers: spawned, they import the module again and must still work.
    cache_dir = tmp_path / "cache"
    proc = build_cache_command(f"--corpus_dir={tiny_corpus}", f"--cache_dir={cache_dir}",
                               "--num_workers=2")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "cache built: 6 utterances (6 extracted" in proc.stdout
    assert len(FeatureCache(str(cache_dir))) == 6
