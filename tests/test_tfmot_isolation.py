"""No process imports both Keras 3 model building and TFMOT.

TFMOT works only with tf-keras and switches its whole process to legacy
Keras (TF_USE_LEGACY_KERAS=1). Three guards keep the two apart:
- statically, nothing outside bittts_tf/tfmot, tools/tfmot_example.py and the
  --tfmot_model branch of tools/convert.py imports TFMOT, tf-keras or
  bittts_tf.tfmot (so no test module does: their tf-keras code runs in
  subprocesses);
- in every test process, tests/conftest.py fails a test after which TFMOT or
  tf-keras is loaded;
- bittts_tf.tfmot refuses to load in a process that has built Keras 3 objects.
"""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
LEGACY_KERAS_MODULES = ("tensorflow_model_optimization", "tf_keras", "bittts_tf.tfmot")


def _imported_modules(node) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def _is_legacy_keras(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in LEGACY_KERAS_MODULES)


def legacy_keras_imports(path: pathlib.Path) -> list[tuple[int, str, bool]]:
    """(line, module, at module level) of each import of TFMOT / tf-keras /
    bittts_tf.tfmot in a Python file."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        for module in _imported_modules(node):
            if _is_legacy_keras(module):
                found.append((node.lineno, module, id(node) in top_level))
    return found


def test_only_the_tfmot_files_import_tfmot():
    allowed_anywhere = {"tools/tfmot_example.py"}
    allowed_in_functions = {"tools/convert.py"}
    offenders = []
    for folder in ("bittts_tf", "tools", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith("bittts_tf/tfmot/") or relative in allowed_anywhere:
                continue
            for line, module, top_level in legacy_keras_imports(path):
                if top_level or relative not in allowed_in_functions:
                    offenders.append(f"{relative}:{line} imports {module}")
    assert not offenders, offenders


def test_the_scan_sees_every_spelling_of_the_import(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text("import tf_keras\nfrom bittts_tf import tfmot\n"
                      "def f():\n    import tensorflow_model_optimization as tfmot\n"
                      "from bittts_tf import quant\n")
    assert legacy_keras_imports(source) == [
        (1, "tf_keras", True), (2, "bittts_tf.tfmot", True),
        (4, "tensorflow_model_optimization", False)]


def test_this_test_process_has_no_legacy_keras():
    assert [name for name in LEGACY_KERAS_MODULES if name in sys.modules] == []


def run_python(code: str):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_tfmot_refuses_a_process_that_built_keras3_models():
    done = run_python(
        "import keras\n"
        "inputs = keras.Input((3,))\n"
        "keras.Model(inputs, keras.layers.Dense(2)(inputs))\n"
        "import bittts_tf.tfmot\n")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith(
        "ImportError: bittts_tf.tfmot: this process has built Keras 3 objects")


def test_converter_and_ternary_math_load_no_keras3_in_a_legacy_process():
    done = run_python(
        "import os, sys\n"
        "os.environ['TF_USE_LEGACY_KERAS'] = '1'\n"
        "import bittts_tf.quant.quantizers, bittts_tf.export.converter\n"
        "print(sorted(m for m in sys.modules if m == 'keras' or m.startswith('keras.'))[:3])\n")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
