"""The training budget on data larger than it: the default ``--max-cells`` against every cell.

No shared dataset has more cells than the default budget (100,000), so one is made: 150,000
thinned copies of mouse1m_10k's cells (resample.py: each count kept with probability 0.9).
It is filtered as accuracy.py filters mouse1m_10k (repeated gene names made unique); for each
seed it is masked with that seed (the paper's protocol), then trained and imputed with
the default budget and with ``--max-cells 0`` (every cell), and both are scored at the same
masked entries. Copies of 10,000 cells carry less new information than 150,000 real cells
would, so this measures what the budget costs at this size, not what a real atlas would gain.

    python benchmarks/training_budget_large.py --seeds 0 1 2

Writes results/training_budget_large.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from accuracy import DATA, DATASETS, deepimpute, run_this_tool
from measure import measure, run_header
from resample import write_resampled

HERE = Path(__file__).resolve().parent
ARMS = {"default budget (100,000 cells)": [], "every cell (--max-cells 0)": ["--max-cells", "0"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, default=150_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "training_budget_large.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    source = write_resampled(
        DATA / "mouse1m_10k.loom", args.work / f"mouse1m_10k.resampled{args.cells}.loom", n_cells=args.cells
    )
    filtered = args.work / f"{source.stem}.filtered.loom"  # as accuracy.py filters mouse1m_10k
    if not filtered.exists():
        measure(deepimpute("filter", str(source), str(filtered), *DATASETS["mouse1m_10k"]))
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for seed in args.seeds:
        masked = args.work / f"{source.stem}.masked{seed}.loom"
        if not masked.exists():
            measure(deepimpute("mask", str(filtered), str(masked), "--seed", str(seed)))
        for arm, extra in ARMS.items():
            runs[arm].append({"seed": seed, **run_this_tool(masked, args.work, extra, seed)})
    summary = {}
    for arm, found in runs.items():
        summary[arm] = {"runs": found}
        for key in ("train_seconds", "pearson", "mse", "mse_count_ge2"):
            values = [run[key] for run in found]
            summary[arm][key] = statistics.mean(values)
            summary[arm][f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
    results = {
        **run_header(),
        "input": f"{args.cells} cells resampled from mouse1m_10k (1,000 genes)",
        "arms": summary,
    }
    args.output.write_text(json.dumps(results, indent=1))
    print("| training cells | train (s) | masked Pearson | masked MSE | MSE, count >= 2 |")
    print("|---|---|---|---|---|")
    for arm, figures in summary.items():
        print(
            f"| {arm} | {figures['train_seconds']:.0f} | {figures['pearson']:.4f} ± {figures['pearson_sd']:.4f} "
            f"| {figures['mse']:.4f} | {figures['mse_count_ge2']:.4f} ± {figures['mse_count_ge2_sd']:.4f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
