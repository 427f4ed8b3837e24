"""Instructions per weight of the ternary decoders built for Cortex-M4 and
Cortex-M7, counted in QEMU: the packed format's table, multiply-shift and
naive float32 decoders and its int8 decoder, next to a plain 2-bit unpack and
a float32 memcpy of the decoded weights.

  python tools/bench_decode_cortex_m.py --out=out/bench_decode_cortex_m.json

Builds build/bench_decode_{m4,m7}.elf with make (tests/c/cortex_m/bench_decode.c
and tflite/bittts_ternary.c, -O2, hard float) and runs each on its MPS2 board
(mps2-an386: M4, mps2-an500: M7) with `-icount shift=0`, under which the
board's timer counts instructions; the program calibrates that on a loop of
known length. QEMU models neither pipelines nor wait states: the figures are
instructions, not cycles.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import os
import subprocess
import sys

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "out/bench_decode_cortex_m.json", "JSON report (written atomically).")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS = {"m4": ("Cortex-M4", "mps2-an386"), "m7": ("Cortex-M7", "mps2-an500")}


class BenchError(RuntimeError):
    pass


def run_board(cpu: str) -> dict:
    elf = os.path.join("build", f"bench_decode_{cpu}.elf")
    built = subprocess.run(["make", "--no-print-directory", elf], cwd=ROOT, capture_output=True,
                           text=True)
    if built.returncode:
        last = (built.stderr.strip().splitlines() or ["make failed"])[-1]
        raise BenchError(f"cannot build {elf} ({last}); `make apt` installs arm-none-eabi-gcc")
    command = ["qemu-system-arm", "-M", BOARDS[cpu][1], "-icount", "shift=0", "-nographic",
               "-monitor", "none", "-serial", "null", "-semihosting-config",
               "enable=on,target=native", "-kernel", elf]
    try:
        ran = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        raise BenchError("qemu-system-arm is not installed; `make apt` installs it") from None
    except subprocess.TimeoutExpired:
        raise BenchError(f"{elf} did not finish in 300 s on {BOARDS[cpu][1]}") from None
    if ran.returncode:
        raise BenchError(f"{elf} on {BOARDS[cpu][1]} failed: "
                         f"{' / '.join(ran.stdout.strip().splitlines()[-2:]) or ran.stderr.strip()}")
    per_tick, results = None, {}
    for line in ran.stdout.splitlines():
        parts = line.split()
        if parts[0] == "calibration":
            per_tick = int(parts[1]) / int(parts[2])
        elif parts[0] == "decoder":
            name, weights, ticks = parts[1], int(parts[2]), int(parts[3])
            results[name] = {"weights": weights, "timer_ticks": ticks,
                             "instructions": round(ticks * per_tick),
                             "instructions_per_weight": round(ticks * per_tick / weights, 3)}
    if per_tick is None or not results:
        raise BenchError(f"{elf}: unexpected output {ran.stdout.strip()!r}")
    return {"cpu": BOARDS[cpu][0], "board": BOARDS[cpu][1], "instructions_per_tick": per_tick,
            "decoders": results}


def main(argv):
    del argv
    from bittts_tf import fileio

    try:
        report = {cpu: run_board(cpu) for cpu in BOARDS}
    except BenchError as e:
        sys.exit(f"bench_decode_cortex_m: {e}")
    names = list(report["m4"]["decoders"])
    print(f"{'decoder':22s} " + " ".join(f"{report[c]['cpu']:>10s}" for c in BOARDS)
          + "   (instructions per weight)")
    for name in names:
        print(f"{name:22s} " + " ".join(
            f"{report[c]['decoders'][name]['instructions_per_weight']:10.3f}" for c in BOARDS))
    fileio.atomic_write_json(FLAGS.out, report)
    print(f"wrote {os.path.abspath(FLAGS.out)}")


if __name__ == "__main__":
    cli.run(main)
