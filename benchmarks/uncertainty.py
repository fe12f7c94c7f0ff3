"""Is `impute --uncertainty` informative? The rank correlation of the spread with the error.

For each dataset (filtered and masked as accuracy.py does, the paper's masking, seed 0): train
with the defaults, impute with `--uncertainty N` (N predictions with hidden units dropped, as in
training), and let `deepimpute score` report, at the masked entries, the Spearman correlation
between the spread of the N predictions and the absolute error of the imputed value. Also the
time of imputation with and without the N samples.

    python benchmarks/uncertainty.py --samples 20

Writes results/uncertainty.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from accuracy import DATASETS, deepimpute, prepare
from measure import measure, run_header

HERE = Path(__file__).resolve().parent


def run(name: str, work: Path, samples: int) -> dict:
    masked = prepare(name, DATASETS[name], work)
    model = work / f"{name}.uncertainty.model"
    shutil.rmtree(model, ignore_errors=True)
    measure(deepimpute("train", str(masked), str(model), "--quiet"))
    seconds = {}
    outputs = {label: work / f"{name}.uncertainty.{label}.loom" for label in ("plain", "with_uncertainty")}
    for label, extra in (("plain", []), ("with_uncertainty", ["--uncertainty", str(samples)])):
        outputs[label].unlink(missing_ok=True)
        impute = deepimpute("impute", str(masked), str(model), str(outputs[label]), "--quiet", *extra)
        seconds[label] = measure(impute).seconds
    scores = work / f"{name}.uncertainty.scores.json"
    measure(deepimpute("score", str(outputs["with_uncertainty"]), "--output", str(scores), "--quiet"))
    metrics = json.loads(scores.read_text())
    return {
        "uncertainty_error_spearman": round(metrics["uncertainty_error_spearman"], 4),
        "masked_entries": metrics["masked_entries"],
        "impute_seconds": round(seconds["plain"], 1),
        "impute_seconds_with_uncertainty": round(seconds["with_uncertainty"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "uncertainty.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = {
        **run_header(),
        "samples": args.samples,
        "datasets": {name: run(name, args.work, args.samples) for name in args.datasets},
    }
    args.output.write_text(json.dumps(results, indent=1))
    print("| dataset | masked entries | Spearman(spread, error) | impute (s) | with uncertainty (s) |")
    print("|---|---|---|---|---|")
    for name, r in results["datasets"].items():
        print(
            f"| {name} | {r['masked_entries']:,} | {r['uncertainty_error_spearman']:.3f} | "
            f"{r['impute_seconds']} | {r['impute_seconds_with_uncertainty']} |"
        )


if __name__ == "__main__":
    sys.exit(main())
