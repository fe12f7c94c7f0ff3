"""Run DCA (Eraslan et al., Nature Communications 2019) on a Loom file and write its denoised counts as a Loom.

DCA 0.3.4 pins TensorFlow < 2.5, which has no wheels for Python 3.11; it runs here in DeepImpute
1.2's environment (TensorFlow 2.15 with Keras 2) with `pip install --no-deps dca==0.3.4
"anndata<0.11" "scanpy<1.10"` and the import shims below, which map the Keras 2.4 names DCA
uses onto Keras 2.15 and leave out its hyperparameter search. DCA's defaults: a negative binomial
autoencoder with conditional dispersion (`ae_type="nb-conddisp"`, not the zero-inflated one),
its own normalisation; the output is its mean expression on the count scale. Output layout of
reference_loom.py, so `deepimpute score` scores it with the same code.

    python dca_impute.py IN.loom OUT.loom [--cores N] [--seed S]
"""

import os
import sys
import time
import types

import numpy as np
import reference_loom

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # TensorFlow 2.15's oneDNN aborts on AVX-512 BF16 EPYCs


def _shims() -> None:
    import keras
    import keras.layers
    import keras.optimizers
    import tensorflow as tf

    sys.modules["keras.objectives"] = keras.losses
    engine = types.ModuleType("keras.engine")
    engine.topology = types.SimpleNamespace(Layer=keras.layers.Layer)
    engine.base_layer = types.SimpleNamespace(InputSpec=keras.layers.InputSpec)
    sys.modules.update(
        {
            "keras.engine": engine,
            "keras.engine.topology": engine.topology,
            "keras.engine.base_layer": engine.base_layer,
        }
    )
    for name in ("tensorflow.contrib", "tensorflow.contrib.opt"):
        sys.modules[name] = types.SimpleNamespace(ScipyOptimizerInterface=None)
    sys.modules["kopt"] = types.SimpleNamespace(CompileFN=None, test_fn=None)
    sys.modules["hyperopt"] = types.SimpleNamespace(fmin=None, tpe=None, hp=None, Trials=None)
    for name in ("RMSprop", "Adam"):  # DCA trains in TensorFlow 1 graph mode: the legacy optimizers
        setattr(keras.optimizers, name, getattr(keras.optimizers.legacy, name))
    tf.compat.v1.keras.backend.set_session = lambda session: None  # keep the session its model was built in


def main() -> None:
    args = reference_loom.arguments(__doc__)
    method = reference_loom.installed("dca")  # before a long run, not after it
    _shims()
    import anndata
    from dca.api import dca

    data = reference_loom.read(args.input)
    counts = data["counts"].astype(np.float32)
    detected = counts.sum(axis=0) > 0  # DCA leaves out genes and cells with no count; they stay zero
    started = time.perf_counter()
    adata = anndata.AnnData(counts[:, detected])
    adata.obs_names = [str(i) for i in range(counts.shape[0])]
    denoised = dca(adata, copy=True, threads=max(args.cores, 1), random_state=args.seed, verbose=False)
    imputed = np.zeros_like(counts)
    rows = denoised.obs_names.astype(int)
    imputed[np.ix_(rows, np.flatnonzero(detected))] = np.asarray(denoised.X)
    finished = time.perf_counter()
    reference_loom.write(args.output, data, imputed, method=method)
    reference_loom.report_times(finished - started, 0.0, 0)


if __name__ == "__main__":
    main()
