"""Times the packed-ternary decoders side by side on one 16 M-weight tensor.

The decoders decode the same int8 bytes (format version 2) in one run: the C
table decode (the static const trit table times the scale, no RAM table), the
C multiply-shift decode (no table: one multiply-add-shift per byte, one
multiply-shift per weight), the naive C decode (division and modulo per weight),
and numpy (table look-up). `c_fast` is whichever of them bittts_decode_f32, the
LiteRT kernel's decoder, calls. Two ways:

* streamed: the tensor is decoded block by block into a cache-sized buffer, as
  a consumer that uses each block right away would (the headline figures:
  they measure the decoder, not the memory bus);
* whole: the whole tensor into one 64 MB output buffer (bound by DRAM writes).

Each figure is the best of --repeats runs. Writes out/bench_decode.json.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import time

import numpy as np
from absl import flags

from bittts_tf import fileio
from bittts_tf.litert import native
from bittts_tf.quant import packing, spec

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_weights", 16 * 1024 * 1024, "Weights in the benchmark tensor.")
flags.DEFINE_integer("block_bytes", 32768, "Packed bytes per block in the streamed mode "
                     "(32768 bytes = 163840 weights = 640 KiB of float32, about "
                     "half the paper's largest conv kernel).")
flags.DEFINE_integer("repeats", 7, "Timed runs per decoder; the best is reported.")
flags.DEFINE_integer("seed", 0, "Seed of the random ternary tensor.")
flags.DEFINE_string("out", "out/bench_decode.json", "Where to write the results.")
cli.output_flags(files=("out",))


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def decoders(scale):
    def c_decoder(name):
        return lambda idx, n, out: native.c_decode_f32(idx, scale, n, out=out, decoder=name)

    return {
        "c_fast": c_decoder("fast"),
        "c_lut": c_decoder("lut"),
        "c_mulshift": c_decoder("mulshift"),
        "c_naive": c_decoder("naive"),
        "numpy": lambda idx, n, out: native.numpy_decode_f32(idx, scale, n),
    }


def streamed(decode, indices, n, block_bytes, out_block):
    """Decodes block by block; returns the checksum so no work is skipped."""
    block_weights = block_bytes * spec.TRITS_PER_BYTE
    total = 0.0
    for start in range(0, indices.size, block_bytes):
        chunk = indices[start:start + block_bytes]
        count = min(block_weights, n - start * spec.TRITS_PER_BYTE)
        total += float(decode(chunk, count, out_block[:count])[0])
    return total


def main(argv):
    del argv
    n = FLAGS.num_weights
    codes = np.random.default_rng(FLAGS.seed).integers(-1, 2, n).astype(np.int8)
    indices = packing.encode(codes)
    scale = 0.02
    expected = codes.astype(np.float32) * np.float32(scale)
    whole_out = np.empty(n, np.float32)
    block_out = np.empty(FLAGS.block_bytes * spec.TRITS_PER_BYTE, np.float32)

    results = {"format_version": spec.FORMAT_VERSION, "num_weights": n,
               "packed_bytes": int(indices.size), "block_bytes": FLAGS.block_bytes,
               "repeats": FLAGS.repeats}
    print(f"decoding {n} ternary weights ({indices.size} packed bytes, format "
          f"v{spec.FORMAT_VERSION}), best of {FLAGS.repeats}")
    print(f"{'decoder':11s} {'streamed w/s':>14s} {'whole-buffer w/s':>17s}")
    for name, decode in decoders(scale).items():
        if not np.array_equal(decode(indices, n, whole_out), expected):
            raise SystemExit(f"{name} decoded the tensor wrongly")
        stream_s = best_time(lambda: streamed(decode, indices, n, FLAGS.block_bytes, block_out),
                             FLAGS.repeats)
        whole_s = best_time(lambda: decode(indices, n, whole_out), FLAGS.repeats)
        results[f"{name}_weights_per_s"] = n / stream_s
        results[f"{name}_whole_buffer_weights_per_s"] = n / whole_s
        print(f"{name:11s} {n / stream_s:14.3e} {n / whole_s:17.3e}")
    for mode in ("", "whole_buffer_"):
        label = mode or "streamed_"
        fast = results[f"c_fast_{mode}weights_per_s"]
        for other in ("c_lut", "c_mulshift", "c_naive", "numpy"):
            results[f"c_fast_over_{other.removeprefix('c_')}_{label}ratio"] = (
                fast / results[f"{other}_{mode}weights_per_s"])
    for other in ("mulshift", "naive", "numpy"):
        print(f"C fast / {other + ':':9s} {results[f'c_fast_over_{other}_streamed_ratio']:.2f}x "
              f"streamed, {results[f'c_fast_over_{other}_whole_buffer_ratio']:.2f}x whole buffer")
    fileio.atomic_write_json(FLAGS.out, results)
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    cli.run(main)
