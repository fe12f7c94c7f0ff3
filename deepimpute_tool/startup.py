"""What the command line sets up before it imports anything heavy; imported first by ``cli``.

loompy imports numba only to decorate its kallisto BUS-file functions, which this tool never
calls, and numpy_groupies (imported by loompy) picks numba as its backend when it is there.
numba with llvmlite costs every step about 1 s and 75 MB of start-up, so the command line
imports loompy with those decorators as plain functions instead, as ``NUMBA_DISABLE_JIT``
would leave them. Anything that imports numba later gets the real one.
"""

from __future__ import annotations

import os
import sys
import types


def _unjitted(*args, **kwargs):
    """``numba.jit`` used bare or with a signature and options, as loompy uses it: a no-op."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda function: function


def import_loompy_without_numba() -> None:
    """Import loompy with numba kept out; if loompy needs more of numba, import it normally."""
    if "loompy" in sys.modules or "numba" in sys.modules:
        return
    sys.modules["numba"] = None  # numpy_groupies falls back to numpy on ImportError
    try:
        import numpy_groupies  # noqa: F401
    finally:
        del sys.modules["numba"]
    stand_in = types.ModuleType("numba")
    stand_in.jit = _unjitted
    sys.modules["numba"] = stand_in
    try:
        import loompy
    except (ImportError, AttributeError):  # a loompy that uses more of numba than jit
        for name in [m for m in sys.modules if m == "loompy" or m.startswith("loompy.")]:
            del sys.modules[name]
        del sys.modules["numba"]
        os.environ.setdefault("NUMBA_DISABLE_JIT", "1")
        import loompy  # noqa: F401
    finally:
        if sys.modules.get("numba") is stand_in:
            del sys.modules["numba"]


import_loompy_without_numba()
