"""The MPS2 boards in QEMU, as the Cortex-M benchmarks and the board test run
them: an image built by the Makefile, run bare-metal with its output, exit
status and files over semihosting.

With `-icount shift=0` every instruction advances QEMU's virtual clock by
1 ns, so the boards' timer counts instructions; an image prints
"calibration <instructions> <ticks>" from a loop of known length
(firmware_stub/board/mps2_timer.h) and `instructions_per_tick` reads it.
QEMU models no pipeline or wait states: instruction counts, not cycles."""

import dataclasses
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class Board:
    cpu: str           # the core, as reports name it
    machine: str       # qemu-system-arm -M
    clock_hz: float    # a part with this core at its top clock, for real-time factors


# The Makefile's BOARD_m4 and BOARD_m7. Clocks: an STM32F4 (168 MHz) and an
# STM32H7 (480 MHz), the common parts with these cores.
BOARDS = {"m4": Board("Cortex-M4", "mps2-an386", 168e6),
          "m7": Board("Cortex-M7", "mps2-an500", 480e6)}


class BoardError(RuntimeError):
    """An image that cannot be built or did not run (the message says why)."""


def build(elf: str, variables: dict | None = None) -> None:
    """`make <elf>` in the repository (paths relative to it), with make
    `variables` (e.g. the Makefile's VOICE_MODEL) set on its command line."""
    settings = [f"{name}={value}" for name, value in (variables or {}).items()]
    built = subprocess.run(["make", "--no-print-directory", *settings, elf], cwd=ROOT,
                           capture_output=True, text=True)
    if built.returncode:
        last = (built.stderr.strip().splitlines() or ["make failed"])[-1]
        raise BoardError(f"cannot build {elf} ({last}); `make apt` installs arm-none-eabi-gcc")


def run(elf: str, cpu: str, args: tuple[str, ...] = (), timeout: float = 300,
        count_instructions: bool = True) -> str:
    """Runs `elf` on `cpu`'s board with `args` as its argv (semihosting);
    returns its stdout and stderr, or raises BoardError if it failed."""
    machine = BOARDS[cpu].machine
    semihosting = "enable=on,target=native" + "".join(f",arg={a}" for a in args)
    command = ["qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none",
               "-serial", "null", "-semihosting-config", semihosting, "-kernel", elf]
    if count_instructions:
        command[3:3] = ["-icount", "shift=0"]
    try:
        ran = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise BoardError("qemu-system-arm is not installed; `make apt` installs it") from None
    except subprocess.TimeoutExpired:
        raise BoardError(f"{elf} did not finish in {timeout:g} s on {machine}") from None
    text = ran.stdout + ran.stderr
    if ran.returncode:
        raise BoardError(f"{elf} on {machine} failed (status {ran.returncode}): "
                         f"{' / '.join(text.strip().splitlines()[-2:])}")
    return text


def instructions_per_tick(output: str) -> float:
    """The timer's calibration from an image's "calibration" line."""
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "calibration":
            return int(parts[1]) / int(parts[2])
    raise BoardError(f"no calibration line in the image's output {output.strip()[-300:]!r}")
