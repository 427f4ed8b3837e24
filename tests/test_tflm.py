"""TFLite Micro through the pinned tflite-micro wheel: the firmware's kernel
registered by build/libbittts_tflm_py.so gives LiteRT's outputs on the
runtime's own inputs (float32 within 1e-5 of the output's scale, int8 within
one quantization step of LiteRT's reference kernels); the registerer
refuses anything that is not the wheel's resolver, with one line; the
smallest arena is the smallest; a corrupt packed byte fails Invoke by name;
the stock-TFLM LUT form runs with no custom op and equals the packed graph;
the budget's MAC count equals the layers' arithmetic."""

import ctypes
import json
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from bittts_tf.export import budget, tflm
from bittts_tf.litert import tflite_file
from bittts_tf.quant import spec
from bittts_tf.runtime.decode_at_load import decode_at_load
from bittts_tf.runtime import model_folder
from seeds import fresh_seed
from tts_models import SHARED_VOICE_MAX_TOKENS, shared_voice_folder

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_TOKENS, STEP = 24, 4
TEXTS = ["Hello there.", "The quick brown fox jumped over the lazy dog by the river."]
PREFIX = f"{spec.TFLM_REGISTERER_SYMBOL}: cannot register {spec.OP_NAME}: "


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A random tiny model's folder, float32 (packed) and int8 graphs: the
    run's shared random voice (tts_models.shared_voice_folder, a fresh
    printed seed; test_firmware speaks the same folder)."""
    assert SHARED_VOICE_MAX_TOKENS == MAX_TOKENS
    return shared_voice_folder(tmp_path_factory, STEP)


def test_wheel_is_pinned():
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    assert f"tflite-micro=={tflm.WHEEL_VERSION}" in lock
    assert tflm.wheel_version() == tflm.WHEEL_VERSION


# --- the registerer on resolvers that are not the wheel's ------------------

CAPACITY = 200


class Registration(ctypes.Structure):
    _fields_ = [("init", ctypes.c_void_p), ("free", ctypes.c_void_p),
                ("prepare", ctypes.c_void_p), ("invoke", ctypes.c_void_p),
                ("reset", ctypes.c_void_p), ("builtin_code", ctypes.c_int32),
                ("custom_name", ctypes.c_char_p)]


class Resolver(ctypes.Structure):
    """MicroMutableOpResolver<200> as TFLM 90b983c declares it (read by hand)."""
    _fields_ = [("vptr", ctypes.c_void_p), ("registrations", Registration * CAPACITY),
                ("registrations_len", ctypes.c_uint),
                ("builtin_codes", ctypes.c_int32 * CAPACITY),
                ("builtin_parsers", ctypes.c_void_p * CAPACITY),
                ("num_builtin_ops", ctypes.c_uint)]


def resolver_vtable() -> int:
    """Address of the wheel's PythonOpsResolver vtable's first slot."""
    from tflite_micro.python.tflite_micro import _runtime
    lib = ctypes.CDLL(_runtime.__file__)
    symbol = ctypes.c_uint8.in_dll(lib, "_ZTVN6tflite17PythonOpsResolverE")
    return ctypes.addressof(symbol) + 2 * ctypes.sizeof(ctypes.c_void_p)


def fake_resolver(codes, listed=None) -> Resolver:
    resolver = Resolver()
    resolver.vptr = resolver_vtable()
    for i, code in enumerate(codes):
        resolver.registrations[i].builtin_code = code
    listed = codes if listed is None else listed
    for i, code in enumerate(listed):
        resolver.builtin_codes[i] = code
    resolver.registrations_len = len(codes)
    resolver.num_builtin_ops = len(listed)
    return resolver


def register(resolver) -> tuple[bool, str]:
    pointer = None if resolver is None else ctypes.addressof(resolver)
    ok = tflm.registerer()(pointer)
    return ok, tflm.register_error()


def test_registerer_refuses_what_is_not_the_wheels_resolver():
    ok, error = register(None)
    assert not ok and error == PREFIX + "the resolver pointer is NULL"
    heap = np.zeros(4, np.uint64)
    fake = Resolver()
    fake.vptr = heap.ctypes.data  # a vtable pointer into no loaded object
    ok, error = register(fake)
    assert not ok and error.startswith(PREFIX + "the resolver's vtable is in no loaded object")
    too_long = fake_resolver([3, 4])
    too_long.registrations_len = 5000
    ok, error = register(too_long)
    assert not ok and error == (PREFIX + "resolver layout differs: 5000 registrations, "
                                "2 builtins, capacity 200")
    ok, error = register(fake_resolver([3, 4], listed=[3, 5]))
    assert not ok and error == (PREFIX + "resolver layout differs: registration 1 (builtin 4) "
                                "is not where the wheel's FindOp finds it")
    assert "\n" not in error


def test_registerer_appends_the_decode_and_the_conv_op():
    resolver = fake_resolver([3, 4, 9])
    ok, error = register(resolver)
    assert ok and error == ""
    assert resolver.registrations_len == 5 and resolver.num_builtin_ops == 3
    for slot, name in zip(resolver.registrations[3:5], (spec.OP_NAME, spec.CONV_OP_NAME)):
        assert slot.builtin_code == 32 and slot.custom_name == name.encode()
        assert slot.prepare and slot.invoke and slot.init
    assert [resolver.registrations[i].builtin_code for i in range(3)] == [3, 4, 9]
    ok, error = register(resolver)  # twice is refused, as AddCustom does
    assert not ok and error == PREFIX + "already registered with this resolver"


def test_kernel_refuses_a_context_that_is_not_the_wheels():
    """Init and Prepare check the TfLiteContext before the kernel reads it:
    a zeroed record (as a layout mismatch would look) is refused by name."""
    resolver = fake_resolver([3])
    assert register(resolver)[0], tflm.register_error()
    slot = resolver.registrations[1]
    context = (ctypes.c_uint8 * 512)()
    node = (ctypes.c_uint8 * 64)()
    init = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t)(
        slot.init)
    prepare = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(slot.prepare)
    assert init(ctypes.addressof(context), None, 0) is None
    assert tflm.kernel_message() == (f"{spec.OP_NAME}: TfLiteContext layout differs "
                                      "(GetEvalTensor / GetTensor)")
    assert prepare(ctypes.addressof(context), ctypes.addressof(node)) == 1  # kTfLiteError
    assert "TfLiteContext layout differs" in tflm.kernel_message()


# --- TFLM against LiteRT ------------------------------------------------------

def test_float_graphs_equal_litert(folder):
    report = tflm.compare_with_litert(folder, "packed", TEXTS)
    print(json.dumps(report))
    for graph in model_folder.GRAPHS:
        assert report[graph]["invocations"] >= len(TEXTS)
        for output in report[graph]["outputs"].values():
            # Summation order differs (LiteRT's optimized kernels vs TFLM's
            # reference ones): a few float32 ulps of the output's scale.
            assert output["max_abs_error"] <= 1e-5 * max(1.0, output["peak"]), (graph, output)


def test_int8_graphs_equal_litert_reference_kernels(folder):
    report = tflm.compare_with_litert(folder, "int8", TEXTS, litert_kernels="reference")
    print(json.dumps(report))
    # The stream code for code: every pointwise layer is a CONV_2D (QuantDense
    # on sequences), and each SUB's scales are tied by powers of two
    # (int8_scales.tie_sub_scales) and each MUL's output scale moved
    # (tie_mul_scales: LiteRT's reference MUL derives its multiplier in
    # float32, TFLM in float64; seed 1368705874's voice had state_08 one step
    # apart). The text graph keeps Keras' layer norm
    # (NEG in float between DEQUANTIZE and QUANTIZE, SQUARED_DIFFERENCE,
    # RSQRT): seed 1054083383 gives one of its hidden states one step apart,
    # an op not yet traced.
    for name, output in report["frames"]["outputs"].items():
        assert output["max_abs_error"] <= 1e-5 * max(1.0, output["peak"]), (name, output)
    assert all(o["step"] is not None for o in report["frames"]["outputs"].values())
    for name, output in report["text"]["outputs"].items():
        if output["step"] is not None:
            assert output["max_error_in_steps"] <= 1.0 + 1e-5, (name, output)
        else:  # float outputs: a step of the int8 tensor they are read from
            assert output["max_abs_error"] <= output["peak"] / 100, (name, output)


def test_shipped_int8_voice_equals_litert_reference_kernels():
    """models/slt_tiny's int8 graphs (fused ternary convs, ternary head, SUB
    scales tied) in TFLM and in LiteRT's reference kernels: code for code
    (tools/check_tflm.py, 20 sentences: 20 text-graph and 1,196 stream
    invocations; before the tie the stream's states were 1 step apart and its
    spectrum 2)."""
    report = tflm.compare_with_litert(str(ROOT / "models" / "slt_tiny"), "int8", TEXTS[:1],
                                      litert_kernels="reference")
    print(json.dumps(report))
    for graph in model_folder.GRAPHS:
        for name, output in report[graph]["outputs"].items():
            assert output["max_abs_error"] <= 1e-5 * max(1.0, output["peak"]), (graph, name, output)


def test_smallest_arena_is_the_smallest(folder):
    model = model_folder.load(folder).read_graph("text", "int8")
    arena = tflm.smallest_arena(model)
    assert tflm.runs_in(model, arena)
    assert not tflm.runs_in(model, arena - 16)


def test_corrupt_packed_byte_fails_invoke_by_name(folder):
    model = model_folder.load(folder).read_graph("text", "packed")
    parsed = tflite_file.parse_model(model)
    decode = next(i for i, c in enumerate(parsed.operatorCodes)
                  if c.customCode is not None and bytes(c.customCode).decode() == spec.OP_NAME)
    subgraph = parsed.subgraphs[0]
    op = next(o for o in subgraph.operators if o.opcodeIndex == decode)
    buffer = parsed.buffers[subgraph.tensors[op.inputs[0]].buffer]
    buffer.data[7] = 127
    graph = tflm.Graph(tflite_file.serialize_model(parsed), 1 << 20)
    order = {t: n for n, t in graph.inputs.items()}
    inputs = dict(zip([order[int(i)] for i in subgraph.inputs], tflm.zero_inputs(model)))
    with pytest.raises(tflm.TFLMError, match=r"packed byte 7 is 127, outside -121\.\.121"):
        graph.run(**inputs)


# --- stock TFLM: the LUT form --------------------------------------------------

@pytest.mark.parametrize("variant", ["packed", "int8"])
def test_lut_form_runs_unmodified_and_equals_the_packed_graph(folder, variant):
    packed = {g: model_folder.load(folder).read_graph(g, variant) for g in model_folder.GRAPHS}
    lut = {}
    for graph, model in packed.items():
        lut[graph], summary = tflm.lut_compress(model, graph)
        parsed = tflite_file.parse_model(lut[graph])
        customs = [bytes(c.customCode).decode() for c in parsed.operatorCodes
                   if c.customCode is not None]
        assert spec.OP_NAME not in customs and customs, customs
        # The encoded tensors hold 2 bits per ternary weight, no more.
        kernels = []
        decoded = decode_at_load(model, graph, kernels)
        weights = [int(np.prod(t["shape"])) for t in tflm.ternary_tensors(decoded, kernels).values()]
        assert summary["ternary_weights"] == sum(weights)
        tables = summary["stored_bytes_with_tables"] - sum(-(-n // 4) for n in weights)
        assert 0 < tables < 0.1 * sum(weights) / 4
        # The int8 kernels are stored per tensor (one scale for all channels:
        # int8_scales.collapse_equal_channel_scales), so one table each.
        assert summary["per_channel_tensors"] == 0
    exact = tflm.compare_packed_in_tflm(packed, lut, count=2)
    assert all(entry["max_abs_error"] == 0.0 for entry in exact.values()), exact
    # No registerer: the wheel alone runs the LUT text graph and gives what
    # the packed graph gives with ours.
    from tflite_micro.python.tflite_micro import runtime
    wheel_only = runtime.Interpreter.from_bytes(bytes(lut["text"]), custom_op_registerers=[],
                                                arena_size=1 << 20)
    ours = tflm.make_interpreter(packed["text"], 1 << 20)
    rng = np.random.default_rng(fresh_seed("test_tflm LUT inputs"))
    for i, zero in enumerate(tflm.zero_inputs(packed["text"])):
        value = rng.integers(1, MAX_TOKENS + 1, zero.shape).astype(zero.dtype)  # ids, a length
        wheel_only.set_input(value, i)
        ours.set_input(value, i)
    wheel_only.invoke()
    ours.invoke()
    for i in range(len(tflite_file.parse_model(packed["text"]).subgraphs[0].outputs)):
        np.testing.assert_array_equal(wheel_only.get_output(i), ours.get_output(i))


# --- the budget ------------------------------------------------------------------

def test_macs_equal_the_layers_arithmetic():
    import tensorflow as tf
    frames, channels = 40, 8
    inputs = keras.Input((frames, channels), batch_size=1)
    x = keras.layers.Conv1D(16, 5, padding="same")(inputs)
    x = keras.layers.DepthwiseConv1D(3, padding="same")(x)
    x = keras.layers.Dense(12)(x)
    y = keras.layers.Conv1D(6, 3, padding="same", groups=2)(inputs)
    model = keras.Model(inputs, [x, y])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    counted = budget.graph_macs(converter.convert())
    expected = (frames * 5 * channels * 16 + frames * 3 * 16 + frames * 16 * 12
                + frames * 3 * (channels // 2) * 6)
    assert counted["macs"] == expected, counted


def test_macs_of_the_fused_ternary_conv_are_the_convs(folder):
    """The fused op's weights are packed bytes: its MACs are counted from
    them and equal the CONV_2D's it replaced (the float graph fused here,
    the folder's int8 graph, fused at export, against its CONV_2D form)."""
    from bittts_tf.export import fused_conv
    for graph in model_folder.GRAPHS:
        model = model_folder.load(folder).read_graph(graph, "packed")
        fused = fused_conv.fuse_ternary_convs(model, graph)
        assert fused.fused, graph
        int8 = model_folder.load(folder).read_graph(graph, "int8")
        for unfused, fused_bytes in ((model, fused.tflite), (decode_at_load(int8), int8)):
            before, after = budget.graph_macs(unfused), budget.graph_macs(fused_bytes)
            assert after["macs"] == before["macs"] > 0
            assert after["macs_by_op"].get(spec.CONV_OP_NAME, 0) > 0
            assert before["macs_by_op"].get(spec.CONV_OP_NAME, 0) == 0


def test_macs_per_second_of_the_stream_and_its_latency():
    shapes = {"hop_length": 256, "max_tokens": 64,
              "stream": {"step": 4, "delay": 34, "states": []}}
    rates = budget.macs_per_second(shapes, 16000, frames_macs=5_000_000, text_macs=10_000_000,
                                   frames_per_phoneme=5.0)
    # Each invoke computes 4 new frames: 62.5 frames a second at hop 256.
    assert np.isclose(rates["frames_graph_macs_per_second"], 5e6 * 62.5 / 4)
    assert np.isclose(rates["text_graph_macs_per_second"], 10e6 / (64 * 5 * 256 / 16000))
    assert np.isclose(rates["total_macs_per_second"],
                      rates["frames_graph_macs_per_second"] + rates["text_graph_macs_per_second"])
    latency = budget.latency_frames(shapes, 1024)
    assert latency == {"stream_delay": 34, "step": 4, "istft_delay": 2, "total_frames": 40}


def test_budget_tool(folder, tmp_path):
    output = tmp_path / "budget.json"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "budget.py"),
                          f"--model_dir={folder}", f"--output={output}",
                          "--variants=packed,int8_lut"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(output.read_text())
    assert set(report["variants"]) == {"packed", "int8_lut"}
    packed = report["variants"]["packed"]
    files = {g: model_folder.load(folder).read_graph(g) for g in model_folder.GRAPHS}
    assert packed["targets"]["flash_bytes"] == sum(len(m) for m in files.values())
    for graph, entry in packed["graphs"].items():
        assert entry["arena_bytes"] % 16 == 0 and entry["macs"] > 0
        # The wheel's own record splits the arena (head + tail = total).
        assert entry["arena"]["head"] + entry["arena"]["tail"] == entry["arena"]["total"]
        assert entry["arena"]["total"] <= entry["arena_bytes"]
        assert sum(v for k, v in entry["flash"].items() if k != "bytes") == entry["flash"]["bytes"]
    assert "MMAC/s" in run.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "budget.py"),
                          f"--model_dir={tmp_path / 'none'}", f"--output={output}"],
                         capture_output=True, text=True)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1].startswith("budget: ")
    assert "not a model folder" in bad.stderr


def test_macs_per_second_refuses_a_frames_per_phoneme_that_is_not_positive():
    shapes = {"hop_length": 256, "max_tokens": 64, "stream": {"step": 4}}
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(budget.BudgetError, match="frames per phoneme"):
            budget.macs_per_second(shapes, 16000, 5_000_000, 10_000_000, bad)


def refused_in_one_line(run, expected: str) -> str:
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("budget: ") and expected in lines[0], lines
    return lines[0]


def test_budget_tool_refuses_bad_flags_before_loading_anything(tmp_path):
    """Before the arena search: --frames_per_phoneme=0 divided by zero after
    it, a negative one passed the MAC target, --variants= wrote an empty report."""
    output = tmp_path / "budget.json"
    for args, expected in ((["--frames_per_phoneme=0"], "--frames_per_phoneme must be a positive"),
                           (["--frames_per_phoneme=-5"], "--frames_per_phoneme must be a positive"),
                           (["--frames_per_phoneme=nan"], "--frames_per_phoneme must be a positive"),
                           (["--variants="], "--variants is empty")):
        run = subprocess.run([sys.executable, str(ROOT / "tools" / "budget.py"),
                              f"--model_dir={tmp_path / 'none'}", f"--output={output}", *args],
                             capture_output=True, text=True)
        refused_in_one_line(run, expected)
    assert not output.exists()


def test_budget_tool_keeps_the_variants_done_when_a_later_one_fails(tmp_path):
    """The shipped folder with its int8 text graph damaged: packed is counted,
    int8 refused; packed's figures land beside --output, marked incomplete,
    and a complete report already at --output stays as it was."""
    model = tmp_path / "model"
    shutil.copytree(ROOT / "models" / "slt_tiny", model)
    damaged = bytearray((model / "text.int8.tflite").read_bytes())
    damaged[len(damaged) // 2] ^= 1
    (model / "text.int8.tflite").write_bytes(bytes(damaged))
    output = tmp_path / "budget.json"
    output.write_text('{"earlier": "complete"}')
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "budget.py"), f"--model_dir={model}",
                          f"--output={output}", "--variants=packed,int8", "--noarena"],
                         capture_output=True, text=True)
    line = refused_in_one_line(run, "int8: ")
    partial = tmp_path / "budget.incomplete.json"
    assert "text.int8.tflite" in line and "variants done: packed" in line and str(partial) in line
    assert json.loads(output.read_text()) == {"earlier": "complete"}
    report = json.loads(partial.read_text())
    assert set(report["variants"]) == {"packed"}
    assert report["incomplete"]["failed_variant"] == "int8"
    assert report["variants"]["packed"]["macs_per_second"]["total_macs_per_second"] > 0
    # A run that completes replaces the leftovers.
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "budget.py"), f"--model_dir={model}",
                          f"--output={output}", "--variants=packed", "--noarena"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert set(json.loads(output.read_text())["variants"]) == {"packed"} and not partial.exists()


def test_check_tflm_tool_errors_are_one_line(tmp_path):
    for args, expected in ((["--model_dir=" + str(tmp_path / "none")], "not a model folder"),
                           (["--model_dir=x", "--litert_kernels=fast"], "unknown ['fast']"),
                           (["--model_dir=x", "--sentences=0"], "must be at least 1")):
        run = subprocess.run([sys.executable, str(ROOT / "tools" / "check_tflm.py"),
                              f"--output={tmp_path / 'out.json'}", *args],
                             capture_output=True, text=True)
        assert run.returncode != 0
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith("check_tflm: ") and expected in last, run.stderr[-500:]
