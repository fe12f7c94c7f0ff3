"""Run MAGIC (van Dijk et al., Cell 2018) on a Loom file and write its imputation as a Loom.

Runs in MAGIC's own environment (`pip install magic-impute==3.0.0 "numpy<2" loompy`). MAGIC's
usual preprocessing is kept: library-size normalisation to the median library, square root,
MAGIC with its defaults; the result is squared and scaled back to each cell's library so that
it is on the count scale, like `deepimpute impute`. Output layout of reference_loom.py, so
`deepimpute score` scores it with the same code.

    python magic_impute.py IN.loom OUT.loom [--cores N] [--seed S]
"""

import time

import numpy as np
import reference_loom


def main() -> None:
    args = reference_loom.arguments(__doc__)
    method = reference_loom.installed("magic-impute")  # before a long run, not after it

    import magic

    data = reference_loom.read(args.input)
    counts = data["counts"].astype(np.float64)

    started = time.perf_counter()
    library = counts.sum(axis=1, keepdims=True)
    scale = np.median(library) / np.maximum(library, 1)
    smoothed = magic.MAGIC(n_jobs=args.cores, random_state=args.seed, verbose=0).fit_transform(
        np.sqrt(counts * scale)
    )
    imputed = np.square(np.asarray(smoothed)) / scale
    finished = time.perf_counter()

    reference_loom.write(args.output, data, imputed, method=method)
    reference_loom.report_times(0.0, finished - started, 0)


if __name__ == "__main__":
    main()
