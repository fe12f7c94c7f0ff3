"""Is the dispersion that training fits on its own cells biased? theta on seen cells against unseen ones.

`train` fits each target gene's negative-binomial shape theta by moments on the cells the
networks trained on, around the expected counts the networks predict for them. A model fits its
training cells more closely than new ones, so theta could come out too high (too little
overdispersion). For each dataset (filtered as accuracy.py filters it), this trains with the
defaults on 90% of the cells (chosen with ``--seed``), then fits theta again with the same
model (`deepimpute_tool.denoising.fit_dispersion`) on the 10% it never saw and, as the control
of the same size, on as many of the cells it trained on. Genes at a bound of the fit (0.01 or
1000: too few counts to tell) in either small fit are left out of the comparison: the median
and quartiles of log(theta unseen / theta seen) over the others. Writes
results/dispersion_in_sample.json and prints a table.

    python benchmarks/dispersion_in_sample.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from accuracy import DATASETS, filtered_loom
from measure import run_header

from deepimpute_tool.denoising import MAX_SHAPE, MIN_SHAPE, fit_dispersion
from deepimpute_tool.loom import read_loom
from deepimpute_tool.training import train
from deepimpute_tool.training_options import TrainingParameters

HERE = Path(__file__).resolve().parent


def at_bounds(theta: np.ndarray) -> np.ndarray:
    return (theta <= MIN_SHAPE * 1.001) | (theta >= MAX_SHAPE * 0.999)


def run(name: str, work: Path, *, seed: int) -> dict:
    data = read_loom(filtered_loom(name, DATASETS[name], work), layers=False)
    counts = sp.csr_matrix(data.counts, dtype=np.float32)
    rng = np.random.default_rng(seed)
    order = rng.permutation(counts.shape[0])
    n_unseen = counts.shape[0] // 10
    unseen, seen = np.sort(order[:n_unseen]), np.sort(order[n_unseen:])
    seen_sample = np.sort(rng.choice(seen, n_unseen, replace=False))
    model = train(counts[seen], data.genes, params=TrainingParameters())
    on_seen = fit_dispersion(model, counts[seen_sample], data.genes)
    on_unseen = fit_dispersion(model, counts[unseen], data.genes)
    inside = ~at_bounds(on_seen) & ~at_bounds(on_unseen)
    log_ratio = np.log(on_unseen[inside] / on_seen[inside])
    return {
        "cells_trained": int(seen.size),
        "cells_per_small_fit": int(n_unseen),
        "target_genes": int(model.dispersion.size),
        "median_theta_all_trained": float(np.median(model.dispersion)),
        "genes_inside_bounds": int(inside.sum()),
        "median_theta_seen": float(np.median(on_seen[inside])) if inside.any() else None,
        "median_theta_unseen": float(np.median(on_unseen[inside])) if inside.any() else None,
        "median_log_ratio": float(np.median(log_ratio)) if inside.any() else None,
        "log_ratio_quartiles": [float(q) for q in np.quantile(log_ratio, [0.25, 0.75])]
        if inside.any()
        else None,
        "at_bounds_seen": float(at_bounds(on_seen).mean()),
        "at_bounds_unseen": float(at_bounds(on_unseen).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "dispersion_in_sample.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = {**run_header(), "seed": args.seed, "datasets": {}}
    for name in args.datasets:
        results["datasets"][name] = run(name, args.work, seed=args.seed)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(
        "| dataset | cells trained / per small fit | genes inside the bounds in both | median theta: seen / unseen "
        "| log(unseen / seen): median [quartiles] | at a bound: seen / unseen |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in results["datasets"].items():
        if r["median_log_ratio"] is None:
            figures = "- | -"
        else:
            q1, q3 = r["log_ratio_quartiles"]
            figures = (
                f"{r['median_theta_seen']:.2f} / {r['median_theta_unseen']:.2f} | "
                f"{r['median_log_ratio']:+.2f} [{q1:+.2f}, {q3:+.2f}]"
            )
        print(
            f"| {name} | {r['cells_trained']} / {r['cells_per_small_fit']} | {r['genes_inside_bounds']} of "
            f"{r['target_genes']} | {figures} | {r['at_bounds_seen']:.2f} / {r['at_bounds_unseen']:.2f} |"
        )


if __name__ == "__main__":
    main()
