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

from absl import flags

from bittts_tf.engine import board

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "out/bench_decode_cortex_m.json", "JSON report (written atomically).")
cli.output_flags(files=("out",))



def run_board(cpu: str) -> dict:
    elf = os.path.join("build", f"bench_decode_{cpu}.elf")
    board.build(elf)
    output = board.run(elf, cpu)
    per_tick, results = board.instructions_per_tick(output), {}
    for line in output.splitlines():
        parts = line.split()
        if parts and parts[0] == "decoder":
            name, weights, ticks = parts[1], int(parts[2]), int(parts[3])
            results[name] = {"weights": weights, "timer_ticks": ticks,
                             "instructions": round(ticks * per_tick),
                             "instructions_per_weight": round(ticks * per_tick / weights, 3)}
    if not results:
        raise board.BoardError(f"{elf}: no decoder lines in {output.strip()[-300:]!r}")
    return {"cpu": board.BOARDS[cpu].cpu, "board": board.BOARDS[cpu].machine,
            "instructions_per_tick": per_tick, "decoders": results}


def main(argv):
    del argv
    from bittts_tf import fileio

    report = {cpu: run_board(cpu) for cpu in board.BOARDS}
    names = list(report["m4"]["decoders"])
    print(f"{'decoder':22s} " + " ".join(f"{report[c]['cpu']:>10s}" for c in board.BOARDS)
          + "   (instructions per weight)")
    for name in names:
        print(f"{name:22s} " + " ".join(
            f"{report[c]['decoders'][name]['instructions_per_weight']:10.3f}" for c in board.BOARDS))
    fileio.atomic_write_json(FLAGS.out, report)
    print(f"wrote {os.path.abspath(FLAGS.out)}")


if __name__ == "__main__":
    cli.run(main)
