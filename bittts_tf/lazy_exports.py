"""A package's names, each imported from its module on first use (PEP 562).

bittts_tf.quant and bittts_tf.models export classes that need TensorFlow
beside modules that do not (the packed format, the configs): importing the
package must not import TensorFlow, which costs about 4 s of CPU a process.
"""

from __future__ import annotations

import importlib


def exports(package: str, modules: dict[str, tuple[str, ...]]):
    """(__getattr__, __all__) for `package`: `modules` maps a module to the
    names it gives the package."""
    module_of = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name):
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module_of[name]), name)

    return __getattr__, sorted(module_of)
