"""What every tool in tools/ shares: a quiet start and one-line refusals.

A tool reads

    from bittts_tf import cli
    cli.quiet_startup()          # before anything imports TensorFlow or LiteRT
    ...imports, flags, main...
    if __name__ == "__main__":
        cli.run(main)

quiet_startup() keeps TensorFlow's and LiteRT's start-up notes off the
terminal. They are not ours to print and read as failures: "failed call to
cuInit: INTERNAL: CUDA error" on a machine that has no GPU and needs none,
the oneDNN and CPU-feature notices, absl's "before InitializeLog" banner, the
XNNPACK delegate note. TF_CPP_MIN_LOG_LEVEL alone does not do it: TensorFlow
2.21 writes the import-time lines through absl before it reads the variable,
and LiteRT's logger ignores it. So stderr passes through a small filter
process that drops exactly those lines, as TF_CPP_MIN_LOG_LEVEL would have;
everything else (our messages, Python warnings, real TensorFlow errors) goes
through unchanged. A filter process, not a thread: if the tool crashes hard,
the filter still forwards the crash report, then sees end-of-file and exits.
TF_CPP_MIN_LOG_LEVEL=0 in the environment turns the filter off. It also
keeps Keras from importing scikit-learn, which no tool uses
(`keep_keras_off_scikit_learn`: about a second of CPU at every start).

run(main) is absl's app.run, except that an error the package (or the tool)
raises to refuse bad input ends the tool with one line, "tool: what is
wrong", and exit status 1 instead of a traceback; so does an OSError (a
missing or unreadable file), which names its file. Any other exception is a
bug and keeps its traceback.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import sys
import time
from typing import Callable

# The package's own default; users can still set their own level.
DEFAULT_TF_LOG_LEVEL = "2"

_ABSL_BANNER = r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
_CPP_LINE = r"{severity}\d{{4}} [\d:.]+ +\d+ [\w.\-]+:\d+\] "   # absl/glog line prefix
_LITERT_INFO = r"INFO: (Created TensorFlow Lite|Initialized TensorFlow Lite)"
_CPU_FEATURES_TAIL = r"To enable the following instructions: .* rebuild TensorFlow"
_CUINIT = _CPP_LINE.format(severity="E") + r"failed call to cuInit"


def noise_pattern(log_level: int, has_gpu_driver: bool) -> re.Pattern | None:
    """The stderr lines a tool drops at TF_CPP_MIN_LOG_LEVEL=log_level (None:
    drop nothing). A failed cuInit is noise only where no GPU driver exists:
    where one does, it is a real error."""
    patterns = []
    if log_level >= 1:
        patterns += [_ABSL_BANNER, _CPP_LINE.format(severity="I"), _LITERT_INFO, _CPU_FEATURES_TAIL]
    if log_level >= 2:
        patterns += [_CPP_LINE.format(severity="W")]
    if log_level >= 1 and not has_gpu_driver:
        patterns += [_CUINIT]
    if not patterns:
        return None
    return re.compile("^(?:" + "|".join(patterns) + ")")


def inline_noise_pattern(log_level: int) -> re.Pattern | None:
    """LiteRT's delegate note where it lands in the middle of a line: after a
    progress bar's text, which tqdm ends with no newline while it runs."""
    return re.compile(_LITERT_INFO + r"[^\n\r]*(?:\r\n|\n|\r)?") if log_level >= 1 else None


def _has_gpu_driver() -> bool:
    return os.path.exists("/proc/driver/nvidia")


def quiet_startup() -> None:
    """Sets TensorFlow's log level (unless the user did), starts the stderr
    filter and keeps Keras off scikit-learn. Call it before TensorFlow or
    LiteRT loads."""
    keep_keras_off_scikit_learn()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", DEFAULT_TF_LOG_LEVEL)
    try:
        level = int(os.environ["TF_CPP_MIN_LOG_LEVEL"])
    except ValueError:
        level = int(DEFAULT_TF_LOG_LEVEL)
    noise = noise_pattern(level, _has_gpu_driver())
    if noise is None or not hasattr(os, "fork"):
        return
    _start_filter(noise, inline_noise_pattern(level))


def keep_keras_off_scikit_learn() -> None:
    """Keras 3 imports scikit-learn at start-up, for its scikit-learn model
    wrappers, whenever it is installed (librosa requires it). That import was
    1.0-1.3 s of the 5.4-6.9 s of CPU that importing TensorFlow and Keras
    took here, in every tool that trains, converts or scores. No tool uses
    the wrappers or anything else of scikit-learn (nor do the librosa
    functions the package calls), so a tool's process marks it as not
    importable, and Keras skips the wrappers as it does when scikit-learn is
    absent. A process that has imported it already keeps it."""
    sys.modules.setdefault("sklearn", None)


def _start_filter(noise: re.Pattern, inline: re.Pattern | None = None) -> None:
    read_end, write_end = os.pipe()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _filter_loop(read_end, write_end, noise, inline)   # never returns
    os.close(read_end)
    original_stderr = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def finish():
        # Hand fd 2 back (closing our end of the pipe) and wait briefly for the
        # filter to forward the last lines, so they come before the shell prompt.
        sys.stderr.flush()
        os.dup2(original_stderr, 2)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.01)

    atexit.register(finish)


def _filter_loop(read_end: int, write_end: int, noise: re.Pattern,
                 inline: re.Pattern | None) -> None:
    """The filter process: forwards the pipe to the real stderr line by line,
    minus the noise, until every writer has gone."""
    try:
        # Ctrl-C reaches the whole process group; the filter must outlive the
        # tool to forward its last words, and ends at end-of-file anyway.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_IGN)
        os.close(write_end)
        # Hold nothing else open: a caller reading the tool's stdout waits for its end.
        os.closerange(0, 2)
        os.closerange(3, read_end)
        os.closerange(read_end + 1, 1024)
        pending = b""
        while True:
            chunk = os.read(read_end, 65536)
            pending += chunk
            *lines, pending = re.split(rb"(?<=[\n\r])", pending)
            if not chunk:
                lines, pending = lines + [pending], b""
            for line in lines:
                text = line.decode("utf-8", "replace")
                if not line or noise.match(text):
                    continue
                if inline is not None and inline.search(text):
                    line = inline.sub("", text).encode("utf-8")
                try:
                    os.write(2, line)
                except OSError:
                    pass
            if not chunk:
                break
    finally:
        os._exit(0)


class ToolError(Exception):
    """A tool's own refusal of its input (the message names the input)."""


def refuses_input(error: BaseException) -> bool:
    """True for the errors that mean "bad input", not "bug": the classes the
    package or the running tool define (each names what was wrong), absl's
    UsageError (a bad flag), and OSError (a file missing, unreadable, or in
    the way)."""
    from absl import app

    if isinstance(error, (OSError, app.UsageError)):
        return True
    if not isinstance(error, Exception):
        return False
    module = type(error).__module__ or ""
    return module == "__main__" or module == "bittts_tf" or module.startswith("bittts_tf.")


def one_line(error: BaseException) -> str:
    """The error's message on one line; an OSError names its file."""
    if isinstance(error, OSError) and error.strerror:
        names = [n for n in (error.filename, error.filename2) if n is not None]
        text = ": ".join([*map(str, names), error.strerror]) if names else error.strerror
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def output_flags(files=(), folders=(), allow=("",)) -> None:
    """Refuses, while the flags are parsed, an output path that cannot be
    written (fileio.output_problem): `files` and `folders` name the flags.
    A value in `allow` passes unchecked (by default the empty string, which
    an optional output flag takes to mean "none"; a flag whose empty value
    means nothing passes allow=())."""
    from absl import flags

    from bittts_tf import fileio

    def validator(folder):
        def check(value):
            if value is None or value in allow:
                return True
            problem = fileio.output_problem(value, folder=folder)
            if problem is not None:
                raise flags.ValidationError(problem)
            return True
        return check

    for name in files:
        flags.register_validator(name, validator(False))
    for name in folders:
        flags.register_validator(name, validator(True))


def tool_name() -> str:
    return os.path.splitext(os.path.basename(sys.argv[0] or "tool"))[0]


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a bad flag refused in one line too (absl's own
    parser adds a second line and, for a UsageError, the whole docstring)."""
    from absl import flags

    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        sys.exit(f"{tool_name()}: {one_line(error)} (--helpshort lists the flags)")


def run(main: Callable[[list[str]], object]) -> None:
    """absl.app.run(main), with bad input refused in one line (exit status 1)."""
    from absl import app

    def guarded_main(argv):
        try:
            return main(argv)
        except Exception as error:   # noqa: BLE001 -- sorted below: bugs re-raise
            if not refuses_input(error):
                raise
            sys.stdout.flush()
            sys.exit(f"{tool_name()}: {one_line(error)}")

    app.run(guarded_main, flags_parser=_parse_flags)
