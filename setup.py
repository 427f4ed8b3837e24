"""The build step pyproject.toml cannot declare: the wheel carries the C
libraries the package loads through ctypes, and the shipped voice.

The libraries are what the Makefile's `lib` target builds (the Makefile is
their one list): build_py runs `make lib BUILD=<a scratch folder>` and copies
every shared library it made into the package, where
bittts_tf/install_layout.py looks first. The voice, models/slt_tiny, is
copied into the package the same way (git keeps one copy, in models/).

An editable install (`make setup`: pip install -e .) builds neither: there the
package uses the clone's build/ (`make lib`) and models/slt_tiny directly.
"""

import importlib.util
import os
import pathlib
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py
from setuptools.errors import CompileError

SOURCE_ROOT = pathlib.Path(__file__).resolve().parent


def _install_layout():
    """bittts_tf/install_layout.py, read by path: the package is not importable yet."""
    spec = importlib.util.spec_from_file_location(
        "bittts_install_layout", SOURCE_ROOT / "bittts_tf" / "install_layout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LAYOUT = _install_layout()


def _check_build_tools() -> None:
    """One line naming what is missing, instead of make's error halfway through."""
    missing = [f"{tool} ({command})" for tool, command in (
        ("a C compiler", os.environ.get("CC", "cc")),
        ("a C++ compiler", os.environ.get("CXX", "c++")),
        ("make", "make"),
    ) if shutil.which(command.split()[0]) is None]
    if missing:
        raise CompileError(f"bittts_tf compiles its C libraries at install time and needs "
                           f"{' and '.join(missing)}, not found on PATH: install them (Debian: "
                           f"apt-get install build-essential) or set CC / CXX")


class BuildPyWithNative(build_py):
    """build_py, plus the C libraries and the voice copied into the package."""

    def run(self):
        editable = getattr(self, "editable_mode", False)
        package_dir = pathlib.Path(self.build_lib) / "bittts_tf"
        if not editable:
            # build_py only adds files: a module deleted since the last in-tree
            # build would stay in build/setuptools and go into the wheel.
            shutil.rmtree(package_dir, ignore_errors=True)
        super().run()
        if editable:
            return
        self._build_libraries(package_dir / LAYOUT.PACKAGED_LIBRARY_DIR)
        self._copy_voice(package_dir / LAYOUT.PACKAGED_VOICE_DIR)

    def _build_libraries(self, target: pathlib.Path) -> None:
        _check_build_tools()
        scratch = pathlib.Path(self.build_lib).resolve().parent / "native"
        shutil.rmtree(scratch, ignore_errors=True)   # the wheel holds what this `make lib` built
        # make's own error output is the useful part; a failed compile ends the build.
        result = subprocess.run(["make", "-C", str(SOURCE_ROOT), "--no-print-directory", "lib",
                                 f"BUILD={scratch}"])
        if result.returncode != 0:
            raise CompileError(f"`make lib BUILD={scratch}` failed (exit status "
                               f"{result.returncode}); its output is above")
        libraries = sorted(scratch.glob("*.so"))
        if not libraries:
            raise CompileError(f"`make lib` built no shared library into {scratch}")
        target.mkdir(parents=True)
        for library in libraries:
            shutil.copy2(library, target / library.name)

    def _copy_voice(self, target: pathlib.Path) -> None:
        shutil.copytree(SOURCE_ROOT / LAYOUT.CLONE_VOICE_DIR, target)


class NativeDistribution(Distribution):
    """The wheel holds compiled code: tag it for this platform, not py3-none-any."""

    def has_ext_modules(self):
        return True


setup(
    distclass=NativeDistribution,
    cmdclass={"build_py": BuildPyWithNative},
    # setuptools' scratch space inside the Makefile's build/ (`make clean` removes it),
    # not beside it: build/ is the Makefile's.
    options={"build": {"build_base": "build/setuptools"}},
)
