"""Imports that leave out what this tool never calls, to cut each step's start-up.

- TensorFlow imports Keras eagerly, with the pandas, scikit-learn and matplotlib behind it;
  training uses TensorFlow's operations only (about 2.5 s and 130 MB per training process).
- loompy imports numba only to decorate its kallisto BUS-file functions, which this tool never
  calls, and numpy_groupies (imported by loompy) picks numba as its backend when it is there
  (about 1 s and 75 MB per step). The command line imports loompy with those decorators as
  plain functions, as ``NUMBA_DISABLE_JIT`` would leave them.
- loompy also imports its cell-calling module for ``call_cells``, and with it scipy.stats
  (about 1 s per step); the command line gives loompy a ``call_cells`` that imports the real
  one when first called.

Whatever is left out is importable again, for real, afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types


@contextlib.contextmanager
def _standing_in(name: str, module: types.ModuleType | None):
    """``module`` as package ``name`` for the imports inside; None makes ``import name`` fail."""
    sys.modules[name] = module
    try:
        yield
    finally:
        if sys.modules.get(name) is module:
            del sys.modules[name]


def import_tensorflow():
    """TensorFlow without the Keras it loads at import (a failure TensorFlow tolerates)."""
    if "tensorflow" in sys.modules or "keras" in sys.modules:
        import tensorflow as tf

        return tf
    with _standing_in("keras", None):
        import tensorflow as tf
    return tf


def _unjitted(*args, **kwargs):
    """``numba.jit`` used bare or with a signature and options, as loompy uses it: a no-op."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda function: function


def _call_cells(*args, **kwargs):
    """loompy's ``call_cells``, imported when first called (by then the stand-in module is gone)."""
    from loompy.cell_calling import call_cells

    return call_cells(*args, **kwargs)


def import_loompy() -> None:
    """Import loompy without numba and scipy.stats; if loompy needs more of numba, with numba."""
    if "loompy" in sys.modules or "numba" in sys.modules:
        return
    with _standing_in("numba", None):  # numpy_groupies falls back to numpy on ImportError
        import numpy_groupies  # noqa: F401
    numba = types.ModuleType("numba")
    numba.jit = _unjitted
    cell_calling = types.ModuleType("loompy.cell_calling")
    cell_calling.call_cells = _call_cells
    try:
        with _standing_in("numba", numba), _standing_in("loompy.cell_calling", cell_calling):
            import loompy
    except (ImportError, AttributeError):  # a loompy that uses more of numba than jit
        for name in [m for m in sys.modules if m == "loompy" or m.startswith("loompy.")]:
            del sys.modules[name]
        os.environ.setdefault("NUMBA_DISABLE_JIT", "1")
        import loompy  # noqa: F401
