"""The LiteRT kernel's runtime layout guards (tflite/bittts_litert_op.h), run
against fake runtimes built here with ctypes: the layout tflite/litert_abi.h
declares decodes like numpy; planted wrong layouts (a context, node,
registration record or tensor record laid out as another runtime version
might) are refused with one line naming the pinned runtimes, never a crash
and never a call through an unchecked pointer. Also: the library is loaded
so that none of its symbols is global, and the Eval refusals the fuzzer led to."""

import ctypes
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bittts_tf.litert import native
from bittts_tf.quant import packing, spec

PINNED = (f"ai-edge-litert {spec.LITERT_VERSION}", f"tflite-micro {spec.TFLM_WHEEL_VERSION}")
FLOAT32, INT8 = 1, 9
ARENA_RW = 2  # kTfLiteArenaRw

c_void_p, c_int, c_size_t = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t

TENSOR_FIELDS = [
    ("type", c_int), ("data", c_void_p), ("dims", c_void_p), ("scale", ctypes.c_float),
    ("zero_point", ctypes.c_int32), ("allocation_type", c_int), ("bytes", c_size_t),
    ("allocation", c_void_p), ("name", ctypes.c_char_p), ("delegate", c_void_p),
    ("buffer_handle", c_int), ("data_is_stale", ctypes.c_bool), ("is_variable", ctypes.c_bool),
    ("quantization_type", c_int), ("quantization_params", c_void_p), ("sparsity", c_void_p),
    ("dims_signature", c_void_p)]
NODE_FIELDS = [("inputs", c_void_p), ("outputs", c_void_p), ("intermediates", c_void_p),
               ("temporaries", c_void_p), ("user_data", c_void_p), ("builtin_data", c_void_p),
               ("custom_initial_data", c_void_p), ("custom_initial_data_size", c_int)]
CONTEXT_FIELDS = [("tensors_size", c_size_t), ("GetExecutionPlan", c_void_p),
                  ("tensors", c_void_p), ("impl_", c_void_p), ("ResizeTensor", c_void_p),
                  ("ReportError", c_void_p)]
REGISTRATION_FIELDS = [
    ("init", c_void_p), ("free", c_void_p), ("prepare", c_void_p), ("invoke", c_void_p),
    ("profiling_string", c_void_p), ("builtin_code", ctypes.c_int32),
    ("custom_name", ctypes.c_char_p), ("version", c_int), ("registration_external", c_void_p),
    ("async_kernel", c_void_p), ("inplace_operator", ctypes.c_uint64)]


def struct(name, fields):
    return type(name, (ctypes.Structure,), {"_fields_": fields})


Tensor = struct("Tensor", TENSOR_FIELDS)
Node = struct("Node", NODE_FIELDS)
Context = struct("Context", CONTEXT_FIELDS)
Registration = struct("Registration", REGISTRATION_FIELDS)
KERNEL = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p)

# The fake runtime's functions must be code of a loaded object, as the real
# runtime's are (ctypes callbacks live in anonymous memory): a tiny library.
FAKE_RUNTIME = textwrap.dedent("""
    #include <stdarg.h>
    #include <stdio.h>
    static char last[2048];
    static int count;
    void fake_report_error(void *context, const char *format, ...) {
      va_list args;
      (void)context;
      va_start(args, format);
      vsnprintf(last, sizeof last, format, args);
      va_end(args);
      ++count;
    }
    const char *fake_last_report(void) { return last; }
    int fake_reports(void) { return count; }
    void fake_reset(void) { last[0] = 0; count = 0; }
    int fake_never_called(void) { return 1; }
""")


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fake_runtime")
    (directory / "fake.c").write_text(FAKE_RUNTIME)
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(directory / "fake.so"),
                    str(directory / "fake.c")], check=True)
    lib = ctypes.CDLL(str(directory / "fake.so"))
    lib.fake_last_report.restype = ctypes.c_char_p
    return lib


@pytest.fixture(scope="module")
def kernel():
    lib = native._load_litert_op_library()
    for name in ("bittts_litert_registration", "bittts_litert_old_format_registration"):
        getattr(lib, name).restype = ctypes.POINTER(Registration)
    for name in ("bittts_litert_check_context", "bittts_litert_check_node",
                 "bittts_litert_check_stored_registration"):
        getattr(lib, name).restype = ctypes.c_char_p
    lib.bittts_litert_check_stored_registration.argtypes = [c_void_p, c_void_p, c_int]
    lib.bittts_litert_refuse_runtime.argtypes = [ctypes.c_char_p]
    return lib


def address(function) -> int:
    return ctypes.cast(function, c_void_p).value


def int_array(values):
    array = (c_int * (1 + len(values)))(len(values), *values)
    return array


class FakeGraph:
    """A decode node's tensors, node and context in the declared layout;
    every buffer is kept alive by this object."""

    def __init__(self, fake, packed, scale, num_weights, out_type=FLOAT32):
        self.fake, self.keep = fake, []
        out_size = 4 if out_type == FLOAT32 else 1
        self.packed = np.ascontiguousarray(packed, np.int8)
        self.scale = np.float32([scale])
        self.out = np.zeros(num_weights, np.float32 if out_type == FLOAT32 else np.int8)
        self.tensors = (Tensor * 3)()
        for tensor, array, kind, name in ((self.tensors[0], self.packed, INT8, b"packed"),
                                          (self.tensors[1], self.scale, FLOAT32, b"scale"),
                                          (self.tensors[2], self.out, out_type, b"weights")):
            dims = int_array([array.size])
            self.keep.append(dims)
            tensor.type, tensor.dims = kind, ctypes.addressof(dims)
            tensor.data = array.ctypes.data if array.size else None
            tensor.bytes = array.size * (out_size if array is self.out else array.itemsize)
            tensor.allocation_type, tensor.name = ARENA_RW, name
        self.inputs, self.outputs, self.empty = int_array([0, 1]), int_array([2]), int_array([])
        self.node = Node(inputs=ctypes.addressof(self.inputs),
                         outputs=ctypes.addressof(self.outputs),
                         intermediates=ctypes.addressof(self.empty),
                         temporaries=ctypes.addressof(self.empty))
        self.impl = (c_void_p * 4)()
        self.context = Context(
            tensors_size=3, GetExecutionPlan=address(fake.fake_never_called),
            tensors=ctypes.addressof(self.tensors), impl_=ctypes.addressof(self.impl),
            ResizeTensor=address(fake.fake_never_called),
            ReportError=address(fake.fake_report_error))

    def call(self, kernel_lib, which, context=None, node=None, registration=None):
        registration = registration or kernel_lib.bittts_litert_registration().contents
        function = KERNEL(getattr(registration, which))
        self.fake.fake_reset()
        return function(ctypes.addressof(context or self.context),
                        ctypes.addressof(node or self.node))


def random_weights(rng, n):
    codes = rng.integers(-1, 2, n).astype(np.int8)
    return codes, packing.encode(codes)


def assert_layout_refusal(message: str):
    assert "runtime layout mismatch" in message, message
    for pinned in PINNED:
        assert pinned in message, (pinned, message)
    assert message.startswith(f"{spec.OP_NAME}: ") and "\n" not in message.rstrip("\n"), message


@pytest.mark.parametrize("out_type", [FLOAT32, INT8])
def test_declared_layout_prepares_and_decodes_like_numpy(fake, kernel, rng, out_type):
    for n in (1, 5, 7, int(rng.integers(8, 3000))):
        codes, packed = random_weights(rng, n)
        scale = float(rng.uniform(-3, 3))
        graph = FakeGraph(fake, packed, scale, n, out_type)
        assert graph.call(kernel, "prepare") == 0, native.litert_kernel_error()
        assert graph.call(kernel, "invoke") == 0, fake.fake_last_report()
        expected = (codes.astype(np.float32) * np.float32(scale) if out_type == FLOAT32
                    else codes)
        np.testing.assert_array_equal(graph.out, expected)
        assert fake.fake_reports() == 0


def shifted(fields, new_field, before):
    """`fields` with one more pointer-sized field inserted before `before`."""
    at = [name for name, _ in fields].index(before)
    return fields[:at] + [(new_field, c_void_p)] + fields[at:]


def test_context_with_a_new_leading_field_is_refused(fake, kernel, rng):
    # A runtime whose TfLiteContext grew a field in front: our tensors_size
    # reads that field (here a pointer), every later field one slot late.
    codes, packed = random_weights(rng, int(rng.integers(1, 200)))
    graph = FakeGraph(fake, packed, 0.5, codes.size)
    Grown = struct("GrownContext", shifted(CONTEXT_FIELDS, "new_field", "tensors_size"))
    grown = Grown(new_field=ctypes.addressof(graph.impl),
                  **{name: getattr(graph.context, name) for name, _ in CONTEXT_FIELDS})
    assert graph.call(kernel, "prepare", context=grown) == 1
    message = native.litert_kernel_error()
    assert_layout_refusal(message)
    assert "context tensor count" in message
    assert fake.fake_reports() == 0  # ReportError was not trusted


def test_context_with_tensors_and_a_function_swapped_is_refused(fake, kernel, rng):
    codes, packed = random_weights(rng, int(rng.integers(1, 200)))
    graph = FakeGraph(fake, packed, 0.5, codes.size)
    graph.context.tensors, graph.context.GetExecutionPlan = (graph.context.GetExecutionPlan,
                                                             graph.context.tensors)
    assert graph.call(kernel, "prepare") == 1
    assert_layout_refusal(native.litert_kernel_error())
    assert "context tensors pointer" in native.litert_kernel_error()
    assert fake.fake_reports() == 0


def test_report_error_slot_holding_data_is_never_called(fake, kernel, rng):
    # One more field before ReportError: our ReportError reads that field,
    # here a data pointer; calling it would jump into data.
    codes, packed = random_weights(rng, int(rng.integers(1, 200)))
    graph = FakeGraph(fake, packed, 0.5, codes.size)
    Grown = struct("GrownContext", shifted(CONTEXT_FIELDS, "new_field", "ReportError"))
    grown = Grown(new_field=ctypes.addressof(graph.impl),
                  **{name: getattr(graph.context, name) for name, _ in CONTEXT_FIELDS})
    for which in ("prepare", "invoke"):
        assert graph.call(kernel, which, context=grown) == 1
        assert_layout_refusal(native.litert_kernel_error())
        assert fake.fake_reports() == 0


def test_node_with_a_new_leading_field_is_refused_through_report_error(fake, kernel, rng):
    codes, packed = random_weights(rng, int(rng.integers(1, 200)))
    graph = FakeGraph(fake, packed, 0.5, codes.size)
    Grown = struct("GrownNode", shifted(NODE_FIELDS, "new_field", "inputs"))
    grown = Grown(new_field=None, **{name: getattr(graph.node, name) for name, _ in NODE_FIELDS})
    assert graph.call(kernel, "prepare", node=grown) == 1
    message = fake.fake_last_report().decode()
    assert_layout_refusal(message)
    assert message.rstrip("\n") == native.litert_kernel_error()
    # A runtime that keeps a pointer where our user_data is:
    graph.node.user_data = ctypes.addressof(graph.impl)
    assert graph.call(kernel, "prepare") == 1
    assert "user_data" in native.litert_kernel_error()
    assert_layout_refusal(native.litert_kernel_error())


def test_node_index_out_of_range_is_refused(fake, kernel, rng):
    codes, packed = random_weights(rng, int(rng.integers(1, 200)))
    graph = FakeGraph(fake, packed, 0.5, codes.size)
    graph.empty_intermediate = int_array([int(rng.integers(3, 1000))])
    graph.node.intermediates = ctypes.addressof(graph.empty_intermediate)
    assert graph.call(kernel, "prepare") == 1
    assert "intermediates[0]" in native.litert_kernel_error()
    assert_layout_refusal(native.litert_kernel_error())


def test_tensor_record_of_another_layout_is_refused(fake, kernel, rng):
    # A runtime whose TfLiteTensor has one more field before `bytes`: the
    # array of records has a longer stride and every byte count is misread.
    codes, packed = random_weights(rng, int(rng.integers(6, 200)))
    graph = FakeGraph(fake, packed, 0.5, codes.size)
    Grown = struct("GrownTensor", shifted(TENSOR_FIELDS, "new_field", "bytes"))
    grown = (Grown * 3)()
    for old, new in zip(graph.tensors, grown):
        for name, _ in TENSOR_FIELDS:
            setattr(new, name, getattr(old, name))
    graph.context.tensors = ctypes.addressof(grown)
    assert graph.call(kernel, "prepare") == 1
    message = fake.fake_last_report().decode()
    assert "tensor record inconsistent" in message and PINNED[0] in message, message


def test_stored_registration_of_another_layout_is_refused(kernel):
    ours = kernel.bittts_litert_registration().contents
    version = spec.FORMAT_VERSION

    def stored_as(fields, **extra):
        record = struct("Stored", fields)()
        for name, _ in REGISTRATION_FIELDS:
            setattr(record, name, getattr(ours, name))
        record.builtin_code, record.version = 32, version
        for name, value in extra.items():
            setattr(record, name, value)
        return record

    same = stored_as(REGISTRATION_FIELDS)
    assert kernel.bittts_litert_check_stored_registration(
        ctypes.addressof(same), ctypes.addressof(ours), version) is None
    # A runtime record with one more function after invoke.
    grown = stored_as(shifted(REGISTRATION_FIELDS, "new_function", "profiling_string"),
                      new_function=ours.prepare)
    message = kernel.bittts_litert_check_stored_registration(
        ctypes.addressof(grown), ctypes.addressof(ours), version).decode()
    assert_layout_refusal(message)
    assert "other functions at our offsets" in message
    # A runtime record with a field before builtin_code: version and name move.
    moved = stored_as(shifted(REGISTRATION_FIELDS, "new_field", "builtin_code"), new_field=None)
    message = kernel.bittts_litert_check_stored_registration(
        ctypes.addressof(moved), ctypes.addressof(ours), version).decode()
    assert_layout_refusal(message)
    assert kernel.bittts_litert_check_stored_registration(
        None, ctypes.addressof(ours), version).decode().count("holds no record") == 1


def test_a_refused_registration_fails_every_prepare(fake, kernel, rng):
    codes, packed = random_weights(rng, int(rng.integers(1, 200)))
    graph = FakeGraph(fake, packed, 0.5, codes.size)
    planted = kernel.bittts_litert_check_stored_registration(
        None, ctypes.addressof(kernel.bittts_litert_registration().contents), 2)
    kernel.bittts_litert_refuse_runtime(planted)
    try:
        assert graph.call(kernel, "prepare") == 1
        assert graph.call(kernel, "invoke") == 1
        assert_layout_refusal(fake.fake_last_report().decode())
    finally:
        kernel.bittts_litert_refuse_runtime(None)
    assert graph.call(kernel, "prepare") == 0


def test_eval_refuses_overlap_and_non_finite_scales_and_reads_a_misaligned_scale(
        fake, kernel, rng):
    n = int(rng.integers(10, 500))
    codes, packed = random_weights(rng, n)
    graph = FakeGraph(fake, packed, 0.5, n)
    # the output's buffer over the packed bytes (found by the fuzzer)
    graph.tensors[2].data = graph.tensors[0].data
    graph.tensors[2].type, graph.tensors[2].bytes = INT8, n
    graph.tensors[0].bytes = packed.size
    assert graph.call(kernel, "prepare") == 0
    assert graph.call(kernel, "invoke") == 1
    assert "overlaps an input" in fake.fake_last_report().decode()
    for bad in (np.nan, np.inf, -np.inf):
        graph = FakeGraph(fake, packed, bad, n)
        assert graph.call(kernel, "prepare") == 0
        assert graph.call(kernel, "invoke") == 1
        assert "is not finite" in fake.fake_last_report().decode()
    # a scale at an odd address (UBSan's finding): read, not dereferenced
    scale = float(rng.uniform(0.1, 2))
    graph = FakeGraph(fake, packed, scale, n)
    odd = np.zeros(8, np.uint8)
    odd[1:5] = np.frombuffer(np.float32(scale).tobytes(), np.uint8)
    graph.tensors[1].data = odd.ctypes.data + 1
    assert graph.call(kernel, "prepare") == 0
    assert graph.call(kernel, "invoke") == 0, fake.fake_last_report()
    np.testing.assert_array_equal(graph.out, codes.astype(np.float32) * np.float32(scale))


LOADED_LOCALLY = textwrap.dedent("""
    import ctypes, sys
    import numpy as np
    from bittts_tf.litert import native
    interpreter = native.make_interpreter(open(sys.argv[1], "rb").read())
    interpreter.allocate_tensors()
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_array_equal(out, np.load(sys.argv[2]))
    everything = ctypes.CDLL(None)
    for name in ("BitTTS_RegisterOps", "bittts_litert_registration", "bittts_decode_f32"):
        assert not hasattr(everything, name), name + " is global"
    print("decoded; no symbol of ours is global")
""")


def test_library_is_loaded_locally_and_exports_only_its_interface(rng, tmp_path):
    from tests.test_export_litert import decode_only_model
    n = int(rng.integers(1, 400))
    codes, packed = random_weights(rng, n)
    scale = float(rng.uniform(0.1, 2))
    model = tmp_path / "decode.tflite"
    model.write_bytes(decode_only_model(packed, scale, (n,)))
    np.save(tmp_path / "expected.npy", codes.astype(np.float32) * np.float32(scale))
    result = subprocess.run([sys.executable, "-c", LOADED_LOCALLY, str(model),
                             str(tmp_path / "expected.npy")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no symbol of ours is global" in result.stdout
    exported = subprocess.run(["nm", "-D", "--defined-only", str(native.LITERT_LIBRARY)],
                              capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in exported.splitlines() if line.strip()}
    assert spec.REGISTERER_SYMBOL in names
    assert names <= {spec.REGISTERER_SYMBOL, "bittts_litert_register_error",
                     "bittts_litert_kernel_error", "bittts_litert_registration",
                     "bittts_litert_old_format_registration", "bittts_litert_check_context",
                     "bittts_litert_check_node", "bittts_litert_check_stored_registration",
                     "bittts_litert_refuse_runtime"}, names


def test_real_runtime_refuses_a_non_finite_scale(rng):
    from tests.test_export_litert import decode_only_model
    codes, packed = random_weights(rng, int(rng.integers(1, 100)))
    interpreter = native.make_interpreter(decode_only_model(packed, float("nan"), codes.shape))
    interpreter.allocate_tensors()
    with pytest.raises(RuntimeError, match="scale nan is not finite"):
        interpreter.invoke()
