"""Run the original DeepImpute 1.2 on a Loom file and write its imputation as a Loom.

Runs in DeepImpute 1.2's own environment (see benchmarks/README.md); the output has the
layout of `deepimpute impute` (reference_loom.py), so `deepimpute score` scores both tools
with the same code.

    python original_deepimpute.py IN.loom OUT.loom [--cores N] [--seed S] [--max-epochs E --patience P]
"""

import os
import time

import pandas as pd
import reference_loom

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # TensorFlow 2.15's oneDNN aborts on AVX-512 BF16 EPYCs


def _epoch_options(parser) -> None:
    parser.add_argument("--max-epochs", type=int, default=500, help="Fixed-epoch runs for scaling curves.")
    parser.add_argument("--patience", type=int, default=5)


def unique(names) -> list[str]:
    """Names with the second and later copies of a name suffixed -1, -2, ..."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        copies = seen.get(name, 0)
        seen[name] = copies + 1
        out.append(name if copies == 0 else f"{name}-{copies}")
    return out


def main() -> None:
    args = reference_loom.arguments(__doc__, _epoch_options)
    method = reference_loom.installed("deepimpute")  # before a long run, not after it

    from deepimpute.multinet import MultiNet

    data = reference_loom.read(args.input)
    genes = unique(
        data["genes"]
    )  # DeepImpute 1.2 refuses repeated gene names; this tool's filter suffixes them too
    frame = pd.DataFrame(data["counts"], index=data["cells"], columns=genes)

    started = time.perf_counter()
    model = MultiNet(
        seed=args.seed, ncores=args.cores, verbose=0, max_epochs=args.max_epochs, patience=args.patience
    )
    model.fit(frame)
    trained = time.perf_counter()
    imputed = model.predict(frame)
    finished = time.perf_counter()

    reference_loom.write(
        args.output,
        data,
        imputed.loc[data["cells"], genes].to_numpy(),
        method=method,
    )
    reference_loom.report_times(trained - started, finished - trained, model.trained_epochs)


if __name__ == "__main__":
    main()
