"""Run MAGIC (van Dijk et al., Cell 2018) on a Loom file and write its imputation as a Loom.

Runs in MAGIC's own environment (`pip install magic-impute==3.0.0 "numpy<2" loompy`). MAGIC's
usual preprocessing is kept: library-size normalisation to the median library, square root,
MAGIC with its defaults; the result is squared and scaled back to each cell's library so that
it is on the count scale, like `deepimpute impute`. Same output layout as original_deepimpute.py
(main matrix imputed, layer 'raw' the input, other layers carried over), so `deepimpute score`
scores it with the same code.

    python magic_impute.py IN.loom OUT.loom [--cores N] [--seed S]
"""

import argparse
import sys
import time

import loompy
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--cores", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import magic

    with loompy.connect(args.input, "r", validate=False) as ds:
        counts = ds[:, :].T.astype(np.float64)
        layers = {name: ds.layers[name][:, :] for name in ds.layers.keys() if name != ""}
        row_attrs = {k: ds.ra[k] for k in ds.ra.keys()}
        col_attrs = {k: ds.ca[k] for k in ds.ca.keys()}

    started = time.perf_counter()
    library = counts.sum(axis=1, keepdims=True)
    scale = np.median(library) / np.maximum(library, 1)
    smoothed = magic.MAGIC(n_jobs=args.cores, random_state=args.seed, verbose=0).fit_transform(
        np.sqrt(counts * scale)
    )
    imputed = np.square(np.asarray(smoothed)) / scale
    finished = time.perf_counter()

    layers = {"": imputed.T.astype(np.float32), "raw": counts.T.astype(np.float32), **layers}
    loompy.create(args.output, layers, row_attrs, col_attrs)
    print(f"TIMES train=0 impute={finished - started:.3f} epochs=0", file=sys.stderr)


if __name__ == "__main__":
    main()
