"""Nothing written half, nothing lost: atomic writes with the usual
permissions, logs that survive a torn last line, capped durations."""

import json
import os

import numpy as np
import pytest

from bittts_tf import fileio
from bittts_tf.training import run_log


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o027])
def test_atomic_writes_get_the_mode_the_umask_gives(tmp_path, rng, umask):
    data = rng.integers(0, 256, int(rng.integers(1, 5000)), dtype=np.uint8).tobytes()
    old = os.umask(umask)
    try:
        fileio.atomic_write_bytes(tmp_path / "a.bin", data)
        with open(tmp_path / "plain.bin", "wb") as f:   # the reference: an ordinary new file
            f.write(data)
    finally:
        os.umask(old)
    mode = os.stat(tmp_path / "a.bin").st_mode & 0o777
    assert mode == 0o666 & ~umask == os.stat(tmp_path / "plain.bin").st_mode & 0o777
    assert (tmp_path / "a.bin").read_bytes() == data
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(fileio.TEMP_PREFIX)] == []


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path, rng, monkeypatch):
    old = rng.integers(0, 256, 100, dtype=np.uint8).tobytes()
    fileio.atomic_write_bytes(tmp_path / "f", old)

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device", dst)
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        fileio.atomic_write_bytes(tmp_path / "f", b"new")
    assert (tmp_path / "f").read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_a_failed_rename_names_the_target_not_the_temporary(tmp_path):
    """The temporary file is gone when the error is read: the message names
    what the user asked to write."""
    from bittts_tf import cli
    (tmp_path / "a_folder").mkdir()
    with pytest.raises(OSError) as refused:
        fileio.atomic_write_bytes(tmp_path / "a_folder", b"x")
    line = cli.one_line(refused.value)
    assert str(tmp_path / "a_folder") in line and fileio.TEMP_PREFIX not in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_folder"]


def test_output_problem_names_what_is_in_the_way(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_bytes(b"")
    problem = fileio.output_problem
    assert problem("") == "the path is empty"
    assert problem(tmp_path / "folder") == f"{tmp_path / 'folder'} is a folder, not a file"
    assert problem(tmp_path / "file", folder=True) == f"{tmp_path / 'file'} is a file, not a folder"
    assert problem(tmp_path / "file" / "a" / "b.json") == (
        f"{tmp_path / 'file'} is a file, so {tmp_path / 'file' / 'a' / 'b.json'} cannot be made")
    # What can be written: a new file in new folders, an old file, an old folder.
    for path, folder in ((tmp_path / "new" / "deeper" / "x.json", False), (tmp_path / "file", False),
                         (tmp_path / "folder", True), (tmp_path / "new_folder", True)):
        assert problem(path, folder=folder) is None, path
        if folder:
            os.makedirs(path, exist_ok=True)
        else:
            fileio.atomic_write_bytes(path, b"written")


def random_rows(rng, n):
    return [{"step": s, "mel_l1": float(rng.random()), "adv": float(rng.normal())}
            for s in range(1, n + 1)]


def write_log(path, rows, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


@pytest.mark.parametrize("torn", [True, False])
def test_a_resumed_log_drops_rows_after_the_checkpoint_and_a_torn_last_line(tmp_path, rng,
                                                                           capsys, torn):
    rows = random_rows(rng, int(rng.integers(5, 30)))
    resume_step = int(rng.integers(1, len(rows)))
    # A kill mid-append leaves part of the next row, without its newline.
    whole_next = json.dumps({"step": len(rows) + 1, "mel_l1": 0.5})
    tail = whole_next[:int(rng.integers(1, len(whole_next) - 1))] if torn else ""
    path = tmp_path / "losses.jsonl"
    write_log(path, rows, tail)

    record = run_log.JsonLines(str(path), resume_step)
    expected = [r for r in rows if r["step"] <= resume_step]
    assert path.read_text() == "".join(json.dumps(r) + "\n" for r in expected)
    assert record.last_step == resume_step
    assert ("dropped a torn last line" in capsys.readouterr().out) == torn

    record.append({"step": resume_step + 1, "mel_l1": 1.0})
    got = run_log.read_json_lines(str(path))
    assert sorted(got) == list(range(1, resume_step + 2))


def test_a_row_whole_but_for_its_newline_is_kept(tmp_path, rng):
    rows = random_rows(rng, 6)
    path = tmp_path / "held_out.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows).rstrip("\n"))
    run_log.JsonLines(str(path), 6)
    assert run_log.read_json_lines(str(path)) == {r["step"]: {k: v for k, v in r.items()
                                                                 if k != "step"} for r in rows}


def test_damage_before_the_last_line_is_refused_by_line(tmp_path, rng):
    rows = random_rows(rng, 8)
    path = tmp_path / "losses.jsonl"
    lines = [json.dumps(r) for r in rows]
    bad = int(rng.integers(0, 7))
    lines[bad] = lines[bad][:5]
    path.write_text("\n".join(lines) + "\n")
    before = path.read_bytes()
    with pytest.raises(run_log.LogFileError, match=f"line {bad + 1} is not JSON"):
        run_log.JsonLines(str(path), 8)
    assert path.read_bytes() == before   # refused before anything was rewritten


def test_the_log_rewrite_is_atomic(tmp_path, rng, monkeypatch):
    rows = random_rows(rng, 10)
    path = tmp_path / "losses.jsonl"
    write_log(path, rows)
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError(5, "EIO")))
    with pytest.raises(OSError):
        run_log.JsonLines(str(path), 3)
    assert path.read_bytes() == before


def test_save_wav_never_leaves_half_a_wav(tmp_path, rng, monkeypatch):
    from bittts_tf.audio.io import save_wav
    first = rng.uniform(-0.5, 0.5, 1600).astype(np.float32)
    save_wav(str(tmp_path / "x.wav"), first, 16000)
    before = (tmp_path / "x.wav").read_bytes()
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError(5, "EIO")))
    with pytest.raises(OSError):
        save_wav(str(tmp_path / "x.wav"), first[::-1].copy(), 16000)
    assert (tmp_path / "x.wav").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]


# ---- duration caps ----------------------------------------------------------


def reference_durations(log_d, scale, cap):
    """round(scale * (exp(d) - 1)) clipped to 1..cap, in float64 (d finite)."""
    with np.errstate(over="ignore"):
        frames = np.round(scale * (np.exp(log_d.astype(np.float64)) - 1.0))
    return np.clip(frames, 1, cap).astype(np.int64)


def test_keras_durations_are_capped_before_any_cast(rng):
    """Finite log-durations whose exp overflows (to inf in float32) get the cap;
    a NaN or infinite one on a valid token is refused, as the runtime and the
    firmware refuse it; one on a padded token is no token's and gives 0."""
    from bittts_tf.models import variance
    cap = variance.MAX_FRAMES_PER_TOKEN
    log_d = rng.normal(2.0, 3.0, (3, 40)).astype(np.float32)
    weights = (rng.random((3, 40, 1)) < 0.8).astype(np.float32)
    valid = np.flatnonzero(weights[..., 0] > 0)
    padded = np.flatnonzero(weights[..., 0] == 0)
    log_d.flat[rng.choice(valid, 3, replace=False)] = [1e30, 89.0, -1e30]
    log_d.flat[padded[0]] = np.nan
    scale = float(rng.uniform(0.5, 2.0))
    got = np.asarray(variance.durations_from_log(log_d, weights, scale, refuse_non_finite=True))
    finite = np.nan_to_num(log_d, nan=0.0)
    expected = reference_durations(finite, np.float32(scale), cap) * weights[..., 0].astype(np.int64)
    # float32 exp vs float64 differ only at rounding ties: allow one frame there
    assert np.max(np.abs(got - expected)) <= 1
    assert got.max() <= cap and got[weights[..., 0] > 0].min() >= 1
    assert got.flat[padded[0]] == 0
    for bad in (np.nan, np.inf, -np.inf):
        broken = log_d.copy()
        broken.flat[rng.choice(valid)] = bad
        with pytest.raises(variance.DurationError,
                           match=r"^the duration predictor gave 1 non-finite log-duration"):
            variance.durations_from_log(broken, weights, scale, refuse_non_finite=True)
    # The trainer's held-out boundary metric alone takes one frame instead.
    broken = log_d.copy()
    broken.flat[valid[0]] = np.nan
    lenient = np.asarray(variance.durations_from_log(broken, weights, scale))
    assert lenient.flat[valid[0]] == 1 and lenient.max() <= cap


def test_keras_inference_refuses_a_nan_duration(rng):
    """AcousticModel.infer is the inference path: a duration head that says
    NaN is refused, not spoken as one frame a phoneme."""
    from bittts_tf.models import variance
    from tts_models import random_tts
    config, acoustic, _ = random_tts(int(rng.integers(2**31)))
    head = acoustic.variance_adaptor.duration_predictor.head
    head.bias.assign([np.nan])
    n = int(rng.integers(3, 12))
    ids = rng.integers(1, config.acoustic.n_symbols, (1, n)).astype(np.int32)
    with pytest.raises(variance.DurationError, match=f"gave {n} non-finite"):
        acoustic.infer(ids, np.asarray([n], np.int32))


def test_the_runtime_and_the_export_share_the_caps():
    from bittts_tf.export import tts_graphs
    from bittts_tf.models import variance
    assert tts_graphs.MAX_FRAMES_PER_TOKEN is variance.MAX_FRAMES_PER_TOKEN
    assert tts_graphs.MAX_FRAMES_PER_SEGMENT is variance.MAX_FRAMES_PER_SEGMENT


def test_the_runtime_refuses_non_finite_durations(rng):
    from bittts_tf.runtime.tts import SynthesisError, regulate_durations
    log_d = rng.normal(1.5, 0.5, 20).astype(np.float32)
    log_d[int(rng.integers(0, 20))] = np.nan
    with pytest.raises(SynthesisError, match="non-finite"):
        regulate_durations(log_d, 20, 1.0, 75, 1500)


def test_a_runaway_duration_predictor_cannot_allocate_without_bound(rng):
    """The Keras inference path of a model whose duration head says
    exp(60) frames a phoneme: each phoneme gets the cap."""
    from bittts_tf.models import variance
    from tts_models import random_tts
    seed = int(rng.integers(2**31))
    config, acoustic, _ = random_tts(seed)
    head = acoustic.variance_adaptor.duration_predictor.head
    head.bias.assign([60.0])
    head.kernel.assign(head.kernel * 0.0)
    n = int(rng.integers(3, 12))
    ids = rng.integers(1, config.acoustic.n_symbols, (1, n)).astype(np.int32)
    mel, lengths, durations = acoustic.infer(ids, np.asarray([n], np.int32))
    assert np.asarray(durations).tolist() == [[variance.MAX_FRAMES_PER_TOKEN] * n]
    assert int(lengths[0]) == mel.shape[1] == n * variance.MAX_FRAMES_PER_TOKEN
