"""bittts_tf.cli: the start-up noise filter on a tool's stderr and the
one-line refusals, in child processes (the filter owns file descriptor 2)."""

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
