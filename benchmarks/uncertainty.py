"""Which uncertainty tells where the errors are, and do the calibrated intervals hold their coverage?

For each dataset (filtered and masked as accuracy.py does, the paper's masking, seed 0): train
with the defaults and `--calibration` (counts hidden to calibrate on), then impute three ways: plain; with
`--uncertainty N` (the spread of N Monte Carlo dropout predictions); with `--interval P`
(split-conformal intervals, the layer 'uncertainty' their half-width). `deepimpute score`
reports, at the masked entries, the coverage and median width of the intervals, and for each
uncertainty its rank correlation with the absolute error, its partial rank correlation given
the prediction, and the AUC of flagging the worst tenth of errors by it and by the prediction
alone. The imputations are timed `--repeats` times each, side by side, for the cost of
`--interval` as a ratio to the plain imputation.

    python benchmarks/uncertainty.py --samples 20 --interval 0.8

Writes results/uncertainty.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

from accuracy import DATASETS, deepimpute, prepare
from measure import measure, run_header

HERE = Path(__file__).resolve().parent
KEYS = (
    "uncertainty_error_spearman",
    "uncertainty_error_partial_spearman",
    "uncertainty_auc_worst_tenth",
    "prediction_auc_worst_tenth",
)


def run(name: str, work: Path, *, samples: int, interval: float, repeats: int) -> dict:
    masked = prepare(name, DATASETS[name], work)
    model = work / f"{name}.uncertainty.model"
    shutil.rmtree(model, ignore_errors=True)
    measure(deepimpute("train", str(masked), str(model), "--calibration", "--quiet"))
    variants = {
        "plain": [],
        "dropout": ["--uncertainty", str(samples)],
        "interval": ["--interval", str(interval)],
    }
    seconds: dict[str, list[float]] = {label: [] for label in variants}
    outputs = {label: work / f"{name}.uncertainty.{label}.loom" for label in variants}
    for _ in range(repeats):
        for label, extra in variants.items():
            outputs[label].unlink(missing_ok=True)
            impute = deepimpute("impute", str(masked), str(model), str(outputs[label]), "--quiet", *extra)
            seconds[label].append(measure(impute).seconds)
    found = {"masked_entries": None}
    for label in ("dropout", "interval"):
        scores_path = outputs[label].with_suffix(".scores.json")
        measure(deepimpute("score", str(outputs[label]), "--output", str(scores_path), "--quiet"))
        metrics = json.loads(scores_path.read_text())
        found["masked_entries"] = metrics["masked_entries"]
        found[label] = {key: round(metrics[key], 4) for key in KEYS}
        if label == "interval":
            found[label]["coverage"] = round(metrics["interval_coverage"], 4)
            found[label]["median_width"] = round(metrics["interval_median_width"], 3)
    calibration = json.loads((model / "model.json").read_text())["calibration"]
    found["calibration_entries"] = calibration["entries"] if calibration else 0
    found["seconds"] = {label: [round(s, 2) for s in values] for label, values in seconds.items()}
    plain = statistics.median(seconds["plain"])
    found["interval_time_ratio"] = round(statistics.median(seconds["interval"]) / plain, 3)
    found["dropout_time_ratio"] = round(statistics.median(seconds["dropout"]) / plain, 3)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "uncertainty.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = {
        **run_header(),
        "samples": args.samples,
        "interval": args.interval,
        "repeats": args.repeats,
        "datasets": {
            name: run(name, args.work, samples=args.samples, interval=args.interval, repeats=args.repeats)
            for name in args.datasets
        },
    }
    args.output.write_text(json.dumps(results, indent=1))
    print(
        f"| dataset | masked | calibration entries | coverage of {args.interval:.0%} intervals | median width "
        "| Spearman: dropout / interval | partial given the prediction: dropout / interval "
        "| AUC worst tenth: dropout / interval / prediction | time: interval / dropout (x plain) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results["datasets"].items():
        d, i = r["dropout"], r["interval"]
        print(
            f"| {name} | {r['masked_entries']:,} | {r['calibration_entries']:,} | {i['coverage']:.3f} "
            f"| {i['median_width']:.2f} | {d['uncertainty_error_spearman']:.3f} / "
            f"{i['uncertainty_error_spearman']:.3f} | {d['uncertainty_error_partial_spearman']:.3f} / "
            f"{i['uncertainty_error_partial_spearman']:.3f} | {d['uncertainty_auc_worst_tenth']:.3f} / "
            f"{i['uncertainty_auc_worst_tenth']:.3f} / {i['prediction_auc_worst_tenth']:.3f} "
            f"| {r['interval_time_ratio']:.2f} / {r['dropout_time_ratio']:.2f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
