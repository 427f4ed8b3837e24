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
  instructions, not cycles);
- the same for longer sentences (--sentences, each in an image of its own
  under build/bench_voice/), and the line through all of them: instructions
  per second of audio in the stream's steady state, and per segment (the
  text graph, which runs at max_tokens whatever the segment's length, the
  frames graph's flush of its lookahead, opening and checking the blobs).
  A short phrase pays the segment's cost over little audio.

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
flags.DEFINE_multi_string(
    "sentences", ["The battery is low, please plug me in.",
                  "Turn left in two hundred meters, then keep right at the fork and follow the "
                  "signs for the airport."],
    "Longer sentences to speak beside the image's phrase (no double quotes); [] for none.")
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


def speak(elf: str, cpu: str) -> str:
    """The image's output for its phrase 0."""
    with tempfile.TemporaryDirectory() as tmp:
        return board.run(elf, cpu, ("speak", os.path.join(tmp, "speech.pcm"), "0"), timeout=3600)


def parse_speech(elf: str, text: str) -> dict:
    """samples, ticks, stack, arena, segments, per_tick and {op: (calls, ticks)}."""
    from bittts_tf.engine import spec
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
        elif parts[0] == "phrase" and "segment(s)" in parts:
            values["segments"] = int(parts[parts.index("segment(s)") - 1])
        elif parts[0] == "op":
            ops[opnames.get(int(parts[1]), parts[1])] = (int(parts[2]), int(parts[3]))
    values["per_tick"] = board.instructions_per_tick(text)
    if not {"samples", "ticks", "stack", "segments"} <= set(values) or not values["samples"]:
        raise board.BoardError(f"{elf}: unexpected output {text.strip()[-300:]!r}")
    values["ops"] = ops
    return values


def run_sentence(cpu: str, index: int, sentence: str, sample_rate: int) -> dict:
    """One longer sentence in an image of its own (the Makefile's VOICE_*
    variables): its seconds, segments and instructions."""
    folder = os.path.join("build", "bench_voice", str(index))
    elf = os.path.join(folder, f"speak_{cpu}.elf")
    board.build(elf, {"VOICE_DATA": os.path.join(folder, "data"), "SPEAK_DIR": folder,
                      "VOICE_PHRASE": sentence})
    values = parse_speech(elf, speak(elf, cpu))
    seconds = values["samples"] / sample_rate
    return {"sentence": sentence, "audio_seconds": seconds, "segments": values["segments"],
            "instructions": values["ticks"] * values["per_tick"],
            "instructions_per_audio_second": values["ticks"] * values["per_tick"] / seconds}


def fixed_and_steady(runs: list[dict]) -> dict | None:
    """Least squares of instructions = per_segment * segments + per_second *
    seconds over the runs (None with fewer than two)."""
    import numpy as np
    if len(runs) < 2:
        return None
    a = np.array([[r["segments"], r["audio_seconds"]] for r in runs], np.float64)
    b = np.array([r["instructions"] for r in runs], np.float64)
    (per_segment, per_second), *_ = np.linalg.lstsq(a, b, rcond=None)
    return {"instructions_per_segment": float(per_segment),
            "instructions_per_audio_second": float(per_second)}


def run_board(cpu: str, sample_rate: int) -> dict:
    elf = os.path.join("build", f"speak_{cpu}.elf")
    board.build(elf)
    values = parse_speech(elf, speak(elf, cpu))
    ops = values["ops"]
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
        "segments": values["segments"], "instructions": values["ticks"] * values["per_tick"],
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
    bad = [s for s in FLAGS.sentences if '"' in s or not s.strip()]
    if bad:
        raise app.UsageError(f"--sentences: {bad[0]!r} is empty or has a double quote")
    report = {}
    for cpu in FLAGS.cpus:
        report[cpu] = run_board(cpu, sample_rate)
        report[cpu]["sentences"] = [run_sentence(cpu, i, s, sample_rate)
                                    for i, s in enumerate(FLAGS.sentences)]
        phrase = {"audio_seconds": report[cpu]["audio_seconds"], "segments": report[cpu]["segments"],
                  "instructions": report[cpu]["instructions"]}
        report[cpu]["fit"] = fixed_and_steady([phrase] + report[cpu]["sentences"])
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
        for s in r["sentences"]:
            print(f"  {s['audio_seconds']:5.2f} s, {s['segments']} segment(s): "
                  f"{s['instructions_per_audio_second'] / 1e6:,.1f} M instructions per second of audio, "
                  f"real-time factor {s['instructions_per_audio_second'] / r['clock_hz']:.2f}: "
                  f"{s['sentence']!r}")
        if r["fit"]:
            print(f"  fit over these: {r['fit']['instructions_per_audio_second'] / 1e6:,.1f} M per second "
                  f"of audio + {r['fit']['instructions_per_segment'] / 1e6:,.1f} M per segment")
    fileio.atomic_write_json(FLAGS.out, report)
    print(f"wrote {os.path.abspath(FLAGS.out)}")


if __name__ == "__main__":
    cli.run(main)
