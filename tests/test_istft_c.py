"""The C inverse STFT (firmware_stub/bittts_istft.c through ctypes on
build/libbittts_istft.so): its inverse FFT against numpy's irfft, its stream
over random head frames and masks against the Keras/TF inverse STFT of the
whole utterance (bittts_tf.models.istft) and against librosa, its alignment
(what each push puts out), its refusals (nothing written), and the spec module
that is the single source of its constants and tables."""

import ctypes
import re
import subprocess
import sys

import librosa
import numpy as np
import pytest

from bittts_tf.audio import istft_spec
from bittts_tf.runtime import istft_c

N, HOP = istft_spec.N_FFT, istft_spec.HOP_LENGTH
BINS = N // 2 + 1
R = istft_spec.delay_frames()
# The stream against the whole-utterance inverse STFT, relative to the
# utterance's peak: both are float32 (TF's two-stage matmul DFT, our FFT, libm
# expf / cosf / sinf against TF's); measured errors are 1e-7 .. 5e-7.
PEAK_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def lib():
    try:
        return istft_c.library()
    except FileNotFoundError as e:
        pytest.fail(str(e))


def random_head(rng, frames: int, n_fft: int = N) -> np.ndarray:
    """Log-magnitudes from silence to past the clip (a few infinite), phases
    well beyond one turn."""
    bins = n_fft // 2 + 1
    logmag = rng.uniform(-8.0, 8.0, (frames, bins))
    special = rng.random((frames, bins))
    logmag[special < 0.005] = -np.inf
    logmag[special > 0.995] = np.inf
    phase = rng.uniform(-40.0, 40.0, (frames, bins))
    return np.concatenate([logmag, phase], axis=1).astype(np.float32)


def random_mask(rng, frames: int, kind: str) -> np.ndarray:
    mask = np.ones(frames, np.float32)
    if kind == "holes":
        mask[rng.random(frames) < 0.3] = 0.0
    elif kind == "edges":   # the utterance starts and ends inside the frames
        mask[:rng.integers(0, frames // 2 + 1)] = 0.0
        mask[frames - rng.integers(0, frames // 2 + 1):] = 0.0
    elif kind == "fractions":
        mask = rng.uniform(0.0, 1.0, frames).astype(np.float32)
        mask[rng.random(frames) < 0.3] = 0.0
    return mask


def keras_istft(head: np.ndarray, mask: np.ndarray, n_fft: int = N, hop: int = HOP):
    """The vocoder's spectrum (FrameVocoder.spectrum's arithmetic) and
    inverse STFT, in TensorFlow, of the whole utterance."""
    import tensorflow as tf

    from bittts_tf.models import frame_vocoder
    from bittts_tf.models import istft as istft_lib

    bins = n_fft // 2 + 1
    x = tf.constant(head[None])
    m = tf.constant(mask[None, :, None])
    magnitude = tf.exp(tf.minimum(x[..., :bins], frame_vocoder.MAX_LOG_MAGNITUDE)) * m
    real, imag = magnitude * tf.cos(x[..., bins:]), magnitude * tf.sin(x[..., bins:])
    return istft_lib.istft(real, imag, m, n_fft, hop).numpy()[0]


# ---- the spec: one source for Python and C ----------------------------------


def test_committed_header_is_generated_from_spec():
    assert istft_spec.HEADER_PATH.read_text() == istft_spec.c_header(), \
        "firmware_stub/bittts_istft_spec.h is stale: run python -m " \
        "bittts_tf.audio.istft_spec --write-header"


def test_header_tables_are_exact():
    header = istft_spec.c_header()

    def table(name):
        body = header[header.index(name):]
        body = body[body.index("= {") + 3:body.index("};")]
        return [np.float32(v) for v in re.findall(r"[-0-9.e+]+(?=f)", body)]

    # Every float literal reads back as the float32 it was written from.
    assert np.array_equal(table("BITTTS_ISTFT_HALF_WINDOW"), istft_spec.half_window())
    assert np.array_equal(np.reshape(table("BITTTS_ISTFT_TWIDDLES"), (-1, 2)),
                          istft_spec.twiddles())
    # The strided half table is hann_window(n) bit for bit for every n served.
    half = istft_spec.half_window()
    n = istft_spec.MIN_N_FFT
    while n <= N:
        stride = N // n
        k = np.arange(n)
        strided = half[np.minimum(k, n - k) * stride]
        assert np.array_equal(strided, istft_spec.hann_window(n)), n
        n *= 2
    # Twiddles within half an ulp of the exact values; the quarter turn exact.
    angle = 2 * np.pi * np.arange(N // 2) / N
    tw = istft_spec.twiddles().astype(np.float64)
    assert np.all(np.abs(tw[:, 0] - np.cos(angle)) <= np.spacing(np.float32(1)) / 2)
    assert np.all(np.abs(tw[:, 1] - np.sin(angle)) <= np.spacing(np.float32(1)) / 2)
    assert tw[N // 4, 0] == 0.0 and tw[N // 4, 1] == 1.0
    reversal = istft_spec.bit_reversal()
    assert sorted(reversal) == list(range(N // 2))
    assert all(reversal[reversal[k]] == k for k in range(N // 2))


def test_model_code_takes_its_constants_from_the_spec():
    from bittts_tf.models import configs, frame_vocoder
    from bittts_tf.models import istft as istft_lib

    assert frame_vocoder.MAX_LOG_MAGNITUDE is istft_spec.MAX_LOG_MAGNITUDE
    assert istft_lib.ENVELOPE_FLOOR is istft_spec.ENVELOPE_FLOOR
    assert istft_lib.hann_window is istft_spec.hann_window
    default = configs.FrameVocoderConfig()
    assert (default.n_fft, default.hop_length) == (N, HOP)
    # Every preset's frame vocoder is one the C implementation serves.
    for name, make in configs.PRESETS.items():
        vocoder = make().vocoder
        if isinstance(vocoder, configs.FrameVocoderConfig):
            istft_spec.check_config(vocoder.n_fft, vocoder.hop_length)


def test_lengths_and_configs_agree_with_c(lib):
    assert lib.bittts_istft_check(N, HOP) == 0
    for n in range(-2, 2 * N + 2):
        for hop in sorted({-1, 0, 1, 2, 3, 4, 6, 8, 16, 64, 256, 512, n // 2, n}):
            try:
                istft_spec.check_config(n, hop)
                valid = True
            except ValueError:
                valid = False
            assert (lib.bittts_istft_check(n, hop) == 0) == valid, (n, hop)
            if valid:
                assert lib.bittts_istft_state_len(n, hop) == istft_spec.state_len(n, hop)
                assert lib.bittts_istft_delay_frames(n, hop) == istft_spec.delay_frames(n, hop)
                assert lib.bittts_istft_scratch_len(n) == istft_spec.scratch_len(n)
                assert lib.bittts_istft_head_len(n) == istft_spec.head_len(n)
            else:
                assert lib.bittts_istft_state_len(n, hop) == 0
    messages = [lib.bittts_istft_status_message(code).decode()
                for code in range(len(istft_spec.STATUSES))]
    assert messages == [message for _, message in istft_spec.STATUSES]


# ---- the inverse FFT ----------------------------------------------------------


def irfft_tolerance(real: np.ndarray, imag: np.ndarray, n: int) -> float:
    """Every output and partial sum of the float FFT is at most
    A = (1 / n) sum_k w_k |X_k| (w = 2 inside, 1 at bins 0 and n / 2); each of
    the log2(n / 2) stages, the split step and the scaling add a few roundings
    of at most eps / 2 relative: (log2 n + 3) eps A. Measured errors sit
    13x (n = 4) to 100x (n = 1024) below."""
    magnitude = np.abs(real.astype(np.float64) + 1j * imag)
    a = abs(real[0]) + abs(real[-1]) + 2 * magnitude[1:-1].sum()
    return (np.log2(n) + 3) * np.finfo(np.float32).eps * a / n


@pytest.mark.parametrize("n", [4, 8, 16, 32, 64, 128, 256, 512, 1024])
def test_irfft_matches_numpy(rng, n):
    for _ in range(5):
        scale = 2.0 ** rng.integers(-30, 30)
        real = (rng.standard_normal(n // 2 + 1) * scale).astype(np.float32)
        imag = (rng.standard_normal(n // 2 + 1) * scale).astype(np.float32)
        ours = istft_c.irfft(real, imag, n)
        exact = np.fft.irfft(real.astype(np.float64) + 1j * imag.astype(np.float64), n)
        assert np.max(np.abs(ours - exact)) <= irfft_tolerance(real, imag, n)


# ---- the stream -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ones", "holes", "edges", "fractions"])
def test_stream_matches_the_keras_istft(rng, kind):
    for frames in (1, 2, R + 1, int(rng.integers(4, 12)), int(rng.integers(40, 90))):
        head = random_head(rng, frames)
        mask = random_mask(rng, frames, kind)
        ours = istft_c.istft_stream(head, mask)
        reference = keras_istft(head, mask)
        assert ours.shape == reference.shape == (frames * HOP,)
        peak = np.max(np.abs(reference))
        assert np.max(np.abs(ours - reference)) <= PEAK_TOLERANCE * peak, (frames, peak)


@pytest.mark.parametrize("n_fft,hop", [(4, 1), (16, 8), (64, 4), (256, 64), (512, 128),
                                       (1024, 512), (1024, 64)])
def test_stream_other_configurations(rng, n_fft, hop):
    frames = int(rng.integers(1, 30))
    head = random_head(rng, frames, n_fft)
    mask = random_mask(rng, frames, str(rng.choice(["ones", "holes", "edges", "fractions"])))
    ours = istft_c.istft_stream(head, mask, n_fft, hop)
    reference = keras_istft(head, mask, n_fft, hop)
    peak = np.max(np.abs(reference))
    assert np.max(np.abs(ours - reference)) <= PEAK_TOLERANCE * peak


def test_stream_matches_librosa(rng):
    """librosa's centred Hann istft divides by the squared window of every
    frame: comparable when every frame exists (mask 1)."""
    for frames in (1, 3, int(rng.integers(10, 60))):
        head = random_head(rng, frames)
        ours = istft_c.istft_stream(head, np.ones(frames, np.float32))
        magnitude = np.exp(np.minimum(head[:, :BINS].astype(np.float64),
                                      istft_spec.MAX_LOG_MAGNITUDE))
        spectrum = (magnitude * np.exp(1j * head[:, BINS:].astype(np.float64))).T
        reference = librosa.istft(spectrum, hop_length=HOP, win_length=N, n_fft=N,
                                  window="hann", center=True, length=frames * HOP)
        peak = np.max(np.abs(reference))
        assert np.max(np.abs(ours - reference)) <= PEAK_TOLERANCE * peak


def test_alignment_push_by_push(rng):
    """Push p puts out samples [(p - R) hop, (p - R + 1) hop); nothing before
    push R; R flushes finish; further flushes give what a longer utterance
    of masked frames would (the last windows' tails)."""
    frames, extra = int(rng.integers(1, 10)), int(rng.integers(1, 4))
    head = random_head(rng, frames + extra)
    mask = random_mask(rng, frames, "holes")
    stream = istft_c.IstftStream()
    assert stream.delay_frames == R == 2
    parts = [stream.push(frame, m) for frame, m in zip(head[:frames], mask)]
    assert [len(p) for p in parts] == [0 if p < R else HOP for p in range(frames)]
    parts += [stream.flush() for _ in range(R + extra)]
    longer = keras_istft(head, np.concatenate([mask, np.zeros(extra, np.float32)]))
    ours = np.concatenate(parts)
    assert ours.shape == ((frames + extra) * HOP,)
    peak = np.max(np.abs(longer))
    assert np.max(np.abs(ours - longer)) <= PEAK_TOLERANCE * peak
    assert np.array_equal(ours[:frames * HOP], istft_c.istft_stream(head[:frames], mask))
    # Begun again, the same stream object gives the same samples, also when
    # fed several frames at a time (a streaming graph's invoke).
    stream.reset()
    split = int(rng.integers(0, frames + 1))
    again = [stream.push_frames(head[:split], mask[:split]),
             stream.push_frames(head[split:frames], mask[split:]), stream.finish()]
    assert np.array_equal(np.concatenate(again), ours[:frames * HOP])


# ---- refusals: a status, and nothing written ---------------------------------------


def _f32(array):
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def test_refused_calls_write_nothing(lib, rng):
    code = istft_spec.status_code
    canary = np.float32(-12345.0)
    record = (ctypes.c_uint64 * 8)()
    state = np.full(istft_spec.state_len() + 4, canary, np.float32)
    # begin
    for args, status in [((N, HOP, None, state.size), "NULL"),
                         ((N, HOP, _f32(state), istft_spec.state_len() - 1), "SIZE"),
                         ((N + 2, HOP, _f32(state), state.size), "CONFIG"),
                         ((N, 3, _f32(state), state.size), "CONFIG"),
                         ((N, N, _f32(state), state.size), "CONFIG"),
                         ((2 * N, HOP, _f32(state), state.size), "CONFIG")]:
        before = bytes(record)
        assert lib.bittts_istft_begin(record, *args) == code(status), args
        assert bytes(record) == before and np.all(state == canary)
    assert lib.bittts_istft_begin(None, N, HOP, _f32(state), state.size) == code("NULL")
    head = random_head(rng, 1)[0]
    head[np.isinf(head)] = 0.0
    scratch = np.full(N + 4, canary, np.float32)
    out = np.full(HOP + 4, canary, np.float32)
    n_out = ctypes.c_size_t(777)
    assert lib.bittts_istft_push(record, _f32(head), head.size, 1.0, _f32(scratch), N,
                                 _f32(out), HOP, ctypes.byref(n_out)) == code("STATE")
    assert lib.bittts_istft_begin(record, N, HOP, _f32(state), state.size) == code("OK")
    assert np.all(state[:istft_spec.state_len()] == 0) and np.all(state[-4:] == canary)
    for _ in range(3):   # something in the state to keep
        assert lib.bittts_istft_push(record, _f32(head), head.size, 1.0, _f32(scratch), N,
                                     _f32(out), HOP, ctypes.byref(n_out)) == code("OK")

    def bad_head(index, value):
        h = head.copy()
        h[index] = value
        return h

    cases = [
        (dict(head=None), "NULL"), (dict(scratch=None), "NULL"), (dict(out=None), "NULL"),
        (dict(n_out=None), "NULL"), (dict(head_len=N + 1), "SIZE"),
        (dict(scratch_len=N - 1), "SIZE"), (dict(out_len=HOP - 1), "SIZE"),
        (dict(mask=-0.5), "VALUE"), (dict(mask=1.0001), "VALUE"), (dict(mask=np.nan), "VALUE"),
        (dict(head=bad_head(int(rng.integers(0, BINS)), np.nan)), "VALUE"),
        (dict(head=bad_head(int(rng.integers(BINS, 2 * BINS)), np.inf)), "VALUE"),
        (dict(head=bad_head(int(rng.integers(BINS, 2 * BINS)), np.nan)), "VALUE"),
    ]
    for overrides, status in cases:
        args = dict(head=head, head_len=head.size, mask=1.0, scratch=scratch, scratch_len=N,
                    out=out, out_len=HOP, n_out=ctypes.byref(n_out))
        args.update(overrides)
        scratch[:] = canary
        out[:] = canary
        n_out.value = 777
        record_before, state_before = bytes(record), state.copy()
        got = lib.bittts_istft_push(
            record, None if args["head"] is None else _f32(args["head"]), args["head_len"],
            args["mask"], None if args["scratch"] is None else _f32(args["scratch"]),
            args["scratch_len"], None if args["out"] is None else _f32(args["out"]),
            args["out_len"], args["n_out"])
        assert got == code(status), overrides
        assert np.all(scratch == canary) and np.all(out == canary) and n_out.value == 777
        assert bytes(record) == record_before and np.array_equal(state, state_before)
    assert lib.bittts_istft_flush(record, _f32(out), HOP - 1, ctypes.byref(n_out)) == code("SIZE")
    assert lib.bittts_istft_flush(record, None, HOP, ctypes.byref(n_out)) == code("NULL")
    assert np.all(out == canary) and n_out.value == 777
    spectrum = np.zeros(N + 2, np.float32)
    assert lib.bittts_istft_irfft(N, _f32(spectrum), N + 1, _f32(scratch), N) == code("SIZE")
    assert lib.bittts_istft_irfft(N, _f32(spectrum), N + 2, _f32(scratch), N - 1) == code("SIZE")
    assert lib.bittts_istft_irfft(N - 1, _f32(spectrum), N + 2, _f32(scratch), N) == \
        code("CONFIG")
    assert np.all(scratch == canary)
    # The Python wrapper raises with the status's message.
    with pytest.raises(istft_c.IstftError, match="mask outside 0..1"):
        istft_c.IstftStream().push(head, 2.0)
    with pytest.raises(istft_c.IstftError, match="n_fft must be a power of two"):
        istft_c.IstftStream(1000, 250)
    with pytest.raises(ValueError):
        istft_c.istft_stream(head, np.ones(3))


def test_runtime_module_imports_no_tensorflow():
    code = ("import sys, numpy as np\n"
            "from bittts_tf.runtime import istft_c\n"
            "istft_c.istft_stream(np.zeros((3, 1026), np.float32))\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert ran.stdout.split() == ["False", "False"]
