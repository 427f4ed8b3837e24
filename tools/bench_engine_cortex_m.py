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
import tempfile

from absl import app, flags

from bittts_tf.engine import board

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "out/bench_engine_cortex_m.json", "JSON report (written atomically).")
flags.DEFINE_list("cpus", ["m7", "m4"], "Boards to run: m7 (mps2-an500), m4 (mps2-an386).")
cli.output_flags(files=("out",))

FLASH_BUDGET, RAM_BUDGET = 512 * 1024, 128 * 1024


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
    elf = os.path.join("build", f"speak_{cpu}.elf")
    board.build(elf)
    with tempfile.TemporaryDirectory() as tmp:
        pcm = os.path.join(tmp, "speech.pcm")
        text = board.run(elf, cpu, ("speak", pcm, "0"), timeout=1800)
    values, ops = {}, {}
    opnames = {code: op for op, code in spec.OPCODES.items()}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] in ("samples", "ticks", "stack") and len(parts) == 2:
            values[parts[0]] = int(parts[1])
        elif parts[0] == "arena":
            values["arena"] = int(parts[1])
        elif parts[0] == "op":
            ops[opnames.get(int(parts[1]), parts[1])] = (int(parts[2]), int(parts[3]))
    values["per_tick"] = board.instructions_per_tick(text)
    if not {"samples", "ticks", "stack"} <= set(values) or not values["samples"]:
        raise board.BoardError(f"{elf}: unexpected output {text.strip()[-300:]!r}")
    seconds = values["samples"] / sample_rate
    per_second = values["ticks"] * values["per_tick"] / seconds
    image = footprint(os.path.join(board.ROOT, elf))
    target = board.BOARDS[cpu]
    return {
        "cpu": target.cpu, "board": target.machine, "audio_seconds": seconds,
        "instructions_per_audio_second": per_second,
        "real_time_factor_at_clock": per_second / target.clock_hz, "clock_hz": target.clock_hz,
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
    unknown = [c for c in FLAGS.cpus if c not in board.BOARDS]
    if unknown:
        raise app.UsageError(f"--cpus: unknown {unknown}; choose from {sorted(board.BOARDS)}")
    with open(os.path.join(board.ROOT, "models", "slt_tiny", "manifest.json")) as f:
        sample_rate = int(json.load(f)["audio"]["sample_rate"])
    report = {cpu: run_board(cpu, sample_rate) for cpu in FLAGS.cpus}
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
