"""The whole voice on Cortex-M7 and Cortex-M4, measured: the board image
(firmware_stub/board/speak_mps2.c with the shipped voice's engine blobs, built
by `make firmware-image`) speaks its phrase in QEMU with `-icount shift=0`,
under which the board's timer counts instructions (calibrated on a loop of
known length). Prints and writes:

- footprint from the M7 and M4 ELFs: flash (.text + .rodata + .data's load
  image: code, tables and the model) and RAM (.data + .bss + the stack's
  high-water mark, found by painting the stack before speaking);
- instructions per second of audio, in all and per op kind, and the
  real-time factor they imply at 480 MHz (M7) and 168 MHz (M4) assuming one
  instruction per cycle (QEMU models no pipeline or wait states: these are
  instructions, not cycles).

    python tools/bench_engine_cortex_m.py --out=out/bench_engine_cortex_m.json
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import os
import subprocess
import sys
import tempfile

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "out/bench_engine_cortex_m.json", "JSON report (written atomically).")
flags.DEFINE_list("cpus", ["m7", "m4"], "Boards to run: m7 (mps2-an500), m4 (mps2-an386).")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS = {"m4": ("Cortex-M4", "mps2-an386", 168e6), "m7": ("Cortex-M7", "mps2-an500", 480e6)}
FLASH_BUDGET, RAM_BUDGET = 512 * 1024, 128 * 1024


class BenchError(RuntimeError):
    pass


def footprint(elf: str) -> dict:
    """Section sizes of the image (arm-none-eabi-size -A)."""
    out = subprocess.run(["arm-none-eabi-size", "-A", elf], capture_output=True, text=True,
                         check=True).stdout
    sections = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    flash = sum(sections.get(s, 0) for s in (".text", ".ARM.exidx", ".data"))
    return {"sections": sections, "flash_bytes": flash,
            "static_ram_bytes": sections.get(".data", 0) + sections.get(".bss", 0)}


def run_board(cpu: str, sample_rate: int) -> dict:
    from bittts_tf.engine import spec
    name, board, clock = BOARDS[cpu]
    elf = os.path.join("build", f"speak_{cpu}.elf")
    built = subprocess.run(["make", "--no-print-directory", elf], cwd=ROOT, capture_output=True,
                           text=True)
    if built.returncode:
        last = (built.stderr.strip().splitlines() or ["make failed"])[-1]
        raise BenchError(f"cannot build {elf} ({last}); `make apt` installs arm-none-eabi-gcc")
    with tempfile.TemporaryDirectory() as tmp:
        pcm = os.path.join(tmp, "speech.pcm")
        command = ["qemu-system-arm", "-M", board, "-icount", "shift=0", "-nographic", "-monitor",
                   "none", "-serial", "null", "-semihosting-config",
                   f"enable=on,target=native,arg=speak,arg={pcm},arg=0", "-kernel", elf]
        try:
            ran = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        except FileNotFoundError:
            raise BenchError("qemu-system-arm is not installed; `make apt` installs it") from None
        except subprocess.TimeoutExpired:
            raise BenchError(f"{elf} did not finish in 1800 s on {board}") from None
    text = ran.stdout + ran.stderr
    if ran.returncode:
        raise BenchError(f"{elf} on {board} failed: {' / '.join(text.strip().splitlines()[-2:])}")
    values, ops = {}, {}
    opnames = {code: op for op, code in spec.OPCODES.items()}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] in ("samples", "ticks", "stack") and len(parts) == 2:
            values[parts[0]] = int(parts[1])
        elif parts[0] == "calibration":
            values["per_tick"] = int(parts[1]) / int(parts[2])
        elif parts[0] == "arena":
            values["arena"] = int(parts[1])
        elif parts[0] == "op":
            ops[opnames.get(int(parts[1]), parts[1])] = (int(parts[2]), int(parts[3]))
    if not {"samples", "ticks", "stack", "per_tick"} <= set(values) or not values["samples"]:
        raise BenchError(f"{elf}: unexpected output {text.strip()[-300:]!r}")
    seconds = values["samples"] / sample_rate
    per_second = values["ticks"] * values["per_tick"] / seconds
    image = footprint(os.path.join(ROOT, elf))
    return {
        "cpu": name, "board": board, "audio_seconds": seconds,
        "instructions_per_audio_second": per_second,
        "real_time_factor_at_clock": per_second / clock, "clock_hz": clock,
        "flash_bytes": image["flash_bytes"], "sections": image["sections"],
        "stack_bytes": values["stack"], "arena_bytes": values.get("arena"),
        "ram_bytes": image["static_ram_bytes"] + values["stack"],
        "ops": {op: {"calls": calls, "instructions_per_audio_second": ticks * values["per_tick"] / seconds}
                for op, (calls, ticks) in sorted(ops.items(), key=lambda kv: -kv[1][1])},
    }


def main(argv):
    del argv
    import json

    from bittts_tf import fileio
    unknown = [c for c in FLAGS.cpus if c not in BOARDS]
    if unknown:
        sys.exit(f"bench_engine_cortex_m: --cpus: unknown {unknown}; choose from {sorted(BOARDS)}")
    with open(os.path.join(ROOT, "models", "slt_tiny", "manifest.json")) as f:
        sample_rate = int(json.load(f)["audio"]["sample_rate"])
    try:
        report = {cpu: run_board(cpu, sample_rate) for cpu in FLAGS.cpus}
    except BenchError as e:
        sys.exit(f"bench_engine_cortex_m: {e}")
    for cpu, r in report.items():
        print(f"{r['cpu']} ({r['board']}): {r['audio_seconds']:.2f} s of audio")
        print(f"  flash {r['flash_bytes']:,d} B (budget {FLASH_BUDGET:,d}), RAM {r['ram_bytes']:,d} B "
              f"= .data + .bss {r['ram_bytes'] - r['stack_bytes']:,d} + stack {r['stack_bytes']:,d} "
              f"(budget {RAM_BUDGET:,d}; arena {r['arena_bytes']:,d})")
        print(f"  {r['instructions_per_audio_second'] / 1e6:,.1f} M instructions per second of audio: "
              f"real-time factor {r['real_time_factor_at_clock']:.2f} at {r['clock_hz'] / 1e6:.0f} MHz "
              "(one instruction per cycle)")
        for op, o in r["ops"].items():
            share = o["instructions_per_audio_second"] / r["instructions_per_audio_second"]
            print(f"    {op:20s} {o['calls']:7,d} calls {o['instructions_per_audio_second'] / 1e6:9.1f} M/s "
                  f"{100 * share:5.1f}%")
    fileio.atomic_write_json(FLAGS.out, report)
    print(f"wrote {os.path.abspath(FLAGS.out)}")


if __name__ == "__main__":
    cli.run(main)
