"""Run the original DeepImpute 1.2 on a Loom file and write its imputation as a Loom.

Runs in DeepImpute 1.2's own environment (see benchmarks/README.md); the output has the
same layout as `deepimpute impute` (main matrix imputed, layer 'raw' the input counts,
other layers such as 'original' carried over), so `deepimpute score` scores both tools
with the same code.

    python original_deepimpute.py IN.loom OUT.loom [--cores N] [--seed S] [--max-epochs E --patience P]
"""

import argparse
import os
import sys
import time

import loompy
import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--cores", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, default=500, help="Fixed-epoch runs for scaling curves.")
    parser.add_argument("--patience", type=int, default=5)
    args = parser.parse_args()

    from deepimpute.multinet import MultiNet

    with loompy.connect(args.input, "r", validate=False) as ds:
        counts = ds[:, :].T
        genes = np.asarray(ds.ra["Gene"]).astype(str)
        cells = np.asarray(ds.ca["CellID"]).astype(str)
        layers = {name: ds.layers[name][:, :] for name in ds.layers.keys() if name != ""}
        row_attrs = {k: ds.ra[k] for k in ds.ra.keys()}
        col_attrs = {k: ds.ca[k] for k in ds.ca.keys()}
    frame = pd.DataFrame(counts, index=cells, columns=genes)

    started = time.perf_counter()
    model = MultiNet(
        seed=args.seed, ncores=args.cores, verbose=0, max_epochs=args.max_epochs, patience=args.patience
    )
    model.fit(frame)
    trained = time.perf_counter()
    imputed = model.predict(frame)
    finished = time.perf_counter()

    layers = {"": imputed.loc[cells, genes].to_numpy(np.float32).T, "raw": counts.T, **layers}
    loompy.create(args.output, layers, row_attrs, col_attrs)
    print(
        f"TIMES train={trained - started:.3f} impute={finished - trained:.3f} epochs={model.trained_epochs}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
