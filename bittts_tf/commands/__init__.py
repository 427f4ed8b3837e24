"""The console commands (pyproject.toml [project.scripts]):

  bittts-speak     speak.py       text -> wav with an exported model folder (the shipped voice by default)
  bittts-export    export_tts.py  a trained checkpoint -> a model folder (needs [train])
  bittts-firmware  firmware.py    a model folder -> C sources for a microcontroller
  bittts-evaluate  evaluate.py    WER / CER / DNSMOS of a model folder (needs [eval])

Each is a module here with absl flags and main(argv); tools/speak.py,
tools/export_tts.py, tools/firmware.py and tools/evaluate.py run the same
modules from a clone.
"""

from __future__ import annotations

import importlib
import sys

from bittts_tf import cli


# The extra each command needs beyond the base install (pyproject.toml).
EXTRAS = {"export_tts": "train", "evaluate": "eval"}


def refuse_missing_extra(error: ModuleNotFoundError, extra: str | None) -> None:
    """A dependency the base install leaves out: one line naming the extra
    that brings it, instead of a traceback. Any other missing module is a bug."""
    if extra is None or (error.name or "").split(".")[0] == "bittts_tf":
        raise error
    sys.exit(f"{cli.tool_name()}: {error.name} is not installed; this command needs the "
             f"[{extra}] extra: pip install 'bittts_tf[{extra}]'")


def missing_requirements(extra: str) -> list[str]:
    """The distributions `extra` lists in the package's metadata (pyproject.toml)
    that are not installed; none known when bittts_tf itself is not installed."""
    import importlib.metadata as metadata
    import re

    try:
        requirements = metadata.requires("bittts_tf") or []
    except metadata.PackageNotFoundError:
        return []
    missing = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        name = re.match(r"[A-Za-z0-9._-]+", spec.strip()).group(0)
        if re.search(rf"extra\s*==\s*[\"']{re.escape(extra)}[\"']", marker) and name != "bittts_tf":
            try:
                metadata.distribution(name)
            except metadata.PackageNotFoundError:
                missing.append(name)
    return missing


def run_command(name: str) -> None:
    """Runs bittts_tf.commands.<name> as a tool: quiet start, flags, one-line refusals."""
    # First, before the command's module imports TensorFlow or LiteRT.
    cli.quiet_startup()
    extra = EXTRAS.get(name)
    # Up front, --help included: the commands import their extra's packages
    # late (a bad flag or file is refused before a TensorFlow import), so an
    # import error would come only after the user had fixed everything else.
    missing = missing_requirements(extra) if extra else []
    if missing:
        sys.exit(f"{cli.tool_name()}: {missing[0]} is not installed; this command needs the "
                 f"[{extra}] extra: pip install 'bittts_tf[{extra}]'")
    try:
        command = importlib.import_module(f"bittts_tf.commands.{name}")
    except ModuleNotFoundError as error:
        refuse_missing_extra(error, extra)
    from absl import flags

    # absl's --help prints __main__'s docstring and the flags __main__ defined;
    # here __main__ is a launcher (the console script, or tools/<name>.py), so
    # give it the command's docstring and flags.
    sys.modules["__main__"].__doc__ = command.__doc__
    for flag in flags.FLAGS.flags_by_module_dict().get(command.__name__, []):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)

    def main(argv):
        try:
            return command.main(argv)
        except ModuleNotFoundError as error:   # one imported late, inside main
            refuse_missing_extra(error, extra)

    cli.run(main)


def speak() -> None:
    run_command("speak")


def export() -> None:
    run_command("export_tts")


def firmware() -> None:
    run_command("firmware")


def evaluate() -> None:
    run_command("evaluate")
