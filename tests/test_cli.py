"""bittts_tf.cli: the start-up noise filter on a tool's stderr and the
one-line refusals, in child processes (the filter owns file descriptor 2)."""

import json
import os
import subprocess
import sys
import textwrap


def run_child(body: str, env_level: str = "2") -> subprocess.CompletedProcess:
    script = "from bittts_tf import cli\ncli.quiet_startup()\n" + textwrap.dedent(body)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": env_level}   # the user's own level wins
    return subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60,
                          env=env)


def test_the_delegate_note_is_dropped_alone_and_after_a_progress_bar():
    """LiteRT's note on a line of its own, and where it lands right after a
    progress bar's unfinished text: the bar's text stays, the note goes."""
    result = run_child("""
        import os, sys
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
        os.write(2, b"speaking:  40%|####")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
        os.write(2, b"\\rspeaking: 100%|##########|\\n")
        os.write(2, b"a real message: INFO: Created nothing\\n")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (b"speaking:  40%|####\rspeaking: 100%|##########|\n"
                             b"a real message: INFO: Created nothing\n")


def test_level_zero_keeps_every_line():
    note = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
    result = run_child(f"""
        import os
        os.write(2, b"bar" + {note.encode()!r})
    """, env_level="0")
    assert result.stderr == b"bar" + note.encode()


def test_a_package_error_is_one_line_and_a_bug_keeps_its_traceback():
    refused = run_child("""
        from absl import flags
        from bittts_tf.training.checkpoints import CheckpointError
        def main(argv):
            raise CheckpointError("checkpoint x.npz is corrupt")
        cli.run(main)
    """)
    assert refused.returncode == 1
    assert refused.stderr.decode().strip().splitlines() == ["-c: checkpoint x.npz is corrupt"]
    bug = run_child("""
        def main(argv):
            raise KeyError("step")
        cli.run(main)
    """)
    assert bug.returncode != 0 and b"Traceback" in bug.stderr and b"KeyError" in bug.stderr


def test_a_tool_process_imports_keras_without_scikit_learn_and_librosa_still_works(seed):
    """keep_keras_off_scikit_learn: after quiet_startup, Keras and TensorFlow
    import without scikit-learn, and every librosa function the package
    calls still runs (none needs it). Checked against the same calls in a
    process that imports scikit-learn."""
    probe = textwrap.dedent('''
        import json, sys
        if sys.argv[1] == "tool":
            from bittts_tf import cli
            cli.quiet_startup()
        import keras, librosa, numpy as np, tensorflow
        rng = np.random.default_rng(int(sys.argv[2]))
        t = np.arange(8000) / 8000
        y = (np.sin(2 * np.pi * 180 * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32)
        mel_basis = librosa.filters.mel(sr=8000, n_fft=256, n_mels=20)
        spectrum = np.abs(librosa.stft(y, n_fft=256, hop_length=64,
                                       window=librosa.filters.get_window("hann", 256)))
        mel = mel_basis @ spectrum
        f0, _, _ = librosa.pyin(y, fmin=80, fmax=400, sr=8000, frame_length=1024)
        results = {
            "pad_center": librosa.util.pad_center(np.ones(3), size=7).tolist(),
            "mel": float(mel.sum()),
            "f0": float(np.nanmedian(f0)),
            "resample": float(np.abs(librosa.resample(y, orig_sr=8000, target_sr=4000)).sum()),
            "dtw": float(librosa.sequence.dtw(mel[:, :20], mel[:, 5:30])[0][-1, -1]),
            "mel_to_stft": float(librosa.feature.inverse.mel_to_stft(
                mel[:, :10], sr=8000, n_fft=256).sum()),
            "griffinlim": librosa.griffinlim(spectrum[:, :10], n_iter=2, hop_length=64,
                                             random_state=0).shape[0],
            "mel_to_audio": librosa.feature.inverse.mel_to_audio(
                mel[:, :10], sr=8000, n_fft=256, hop_length=64, n_iter=2).shape[0],
        }
        print(json.dumps({"sklearn": sys.modules.get("sklearn") is not None,
                          "results": results}))
    ''')
    outputs = {}
    for mode in ("tool", "plain"):
        done = subprocess.run([sys.executable, "-c", probe, mode, str(seed)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    assert not outputs["tool"]["sklearn"]
    assert outputs["plain"]["sklearn"]   # the reference did import it through Keras
    assert outputs["tool"]["results"] == outputs["plain"]["results"]
