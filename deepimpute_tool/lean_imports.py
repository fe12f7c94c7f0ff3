"""TensorFlow without the Keras it imports eagerly, to cut training's start-up.

TensorFlow imports Keras at import time, with the pandas, scikit-learn and matplotlib behind
it; training uses TensorFlow's operations only (about 2.5 s and 130 MB per training process).
Keras stays importable, for real, afterwards.
"""

from __future__ import annotations

import contextlib
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
