"""Accuracy, time and memory of this tool against the original DeepImpute 1.2, side by side.

For each dataset and each seed: filter (pbmc3k: genes detected in at least 10 cells), mask
with `deepimpute mask --seed SEED` (so every seed is another masking, and the spread over
seeds holds both the masking's and the training's), then train + impute with each tool on
the same masked Loom, and score both with `deepimpute score` (same code, same masked entries).
``--fixed-masking`` masks with seed 0 for every seed (the protocol of results before 0.2).

    python benchmarks/accuracy.py --original-python /path/to/deepimpute-1.2-venv/bin/python

Writes benchmarks/results/accuracy.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from measure import machine, measure, parse_times

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
DATASETS = {
    "pbmc3k": ["--min-genes", "0", "--min-cells", "10"],
    "mouse1m_10k": ["--min-genes", "0", "--min-cells", "1"],
    "pbmc68k_reduced": ["--min-genes", "0", "--min-cells", "10"],
    "celltypist_sample": ["--min-genes", "0", "--min-cells", "10"],
    "tenx_v3_small": ["--min-genes", "0", "--min-cells", "10"],
    "pbmc_small": ["--min-genes", "0", "--min-cells", "10"],
}
DEFAULT_DATASETS = ["pbmc3k", "mouse1m_10k"]
# Datasets with cell-type labels, scored for the paper's clustering metrics too.
LABELS = {"pbmc68k_reduced": "CellType", "pbmc_small": "CellType"}
CLUSTERING = ("ari", "ami", "fmi", "silhouette")


def deepimpute(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepimpute_tool", *args]


def filtered_loom(name: str, filter_args: list[str], work: Path) -> Path:
    """The shared dataset ``name`` filtered with ``filter_args`` into ``work`` (once)."""
    filtered = work / f"{name}.filtered.loom"
    if not filtered.exists():
        measure(deepimpute("filter", str(DATA / f"{name}.loom"), str(filtered), *filter_args))
    return filtered


def prepare(name: str, filter_args: list[str], work: Path, *, masking_seed: int = 0) -> Path:
    filtered = filtered_loom(name, filter_args, work)
    masked = work / f"{name}.masked.loom" if masking_seed == 0 else work / f"{name}.masked{masking_seed}.loom"
    if not masked.exists():
        measure(deepimpute("mask", str(filtered), str(masked), "--seed", str(masking_seed)))
    return masked


def score(imputed: Path, *, labels: str | None = None) -> dict:
    """The masked-entry figures, and with ``labels`` the clustering scores of the imputed
    counts and of the masked counts without imputation (``*_without_imputation``)."""
    scores_path = imputed.with_suffix(".scores.json")
    label_args = ["--labels", labels] if labels else []
    measure(deepimpute("score", str(imputed), "--output", str(scores_path), "--quiet", *label_args))
    scores = json.loads(scores_path.read_text())
    keys = (
        "masked_entries",
        "mse",
        "pearson",
        "mse_count_ge2",
        "pearson_count_ge2",
        "masked_entries_count_ge2",
    )
    figures = {k: scores[k] for k in keys}
    if labels:
        clustering = scores["clustering"]
        figures |= {k: clustering["imputed"][k] for k in CLUSTERING}
        figures |= {f"{k}_without_imputation": clustering["without_imputation"][k] for k in CLUSTERING}
    return figures


def run_this_tool(
    masked: Path, work: Path, extra: list[str], seed: int, *, labels: str | None = None
) -> dict:
    model, imputed = work / f"{masked.stem}.model", work / f"{masked.stem}.this.loom"
    shutil.rmtree(model, ignore_errors=True)
    trained = measure(deepimpute("train", str(masked), str(model), "--quiet", "--seed", str(seed), *extra))
    imputing = measure(deepimpute("impute", str(masked), str(model), str(imputed), "--quiet"))
    epochs = json.loads((model / "model.json").read_text())["training"]["epochs"]
    return {
        "train_seconds": round(trained.seconds, 2),
        "impute_seconds": round(imputing.seconds, 2),
        "total_seconds": round(trained.seconds + imputing.seconds, 2),
        "peak_rss_mb": round(max(trained.peak_rss_mb, imputing.peak_rss_mb), 1),
        "epochs": epochs,
        **score(imputed, labels=labels),
    }


def run_original(masked: Path, work: Path, python: str, seed: int, *, labels: str | None = None) -> dict:
    imputed = work / f"{masked.stem}.original.loom"
    imputed.unlink(missing_ok=True)
    result = measure(
        [python, str(HERE / "original_deepimpute.py"), str(masked), str(imputed), "--seed", str(seed)]
    )
    times = parse_times(result.output)
    return {
        "train_seconds": round(times["train"], 2),
        "impute_seconds": round(times["impute"], 2),
        "total_seconds": round(result.seconds, 2),
        "peak_rss_mb": round(result.peak_rss_mb, 1),
        "epochs": int(times["epochs"]),
        **score(imputed, labels=labels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--original-python", help="Python of an environment with deepimpute==1.2")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=DEFAULT_DATASETS)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "accuracy.json")
    parser.add_argument("--train-args", default="", help="Extra options for `deepimpute train`.")
    parser.add_argument("--skip-original", action="store_true", help="Run this tool only.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="One run of each tool per seed.")
    parser.add_argument("--fixed-masking", action="store_true", help="Mask with seed 0 whatever the seed.")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=[],
        metavar="NAME=ARGS",
        help="Also run this tool with these `deepimpute train` options, side by side: 'previous=--batch-size 64'",
    )
    args = parser.parse_args()
    variants = dict(item.split("=", 1) for item in args.variants)
    args.work.mkdir(parents=True, exist_ok=True)

    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "train_args": args.train_args,
        "variants": variants,
        "protocol": "filter, mask --seed "
        + ("0" if args.fixed_masking else "SEED")
        + " (10 entries per gene), train + impute --seed SEED, score at masked entries",
        "datasets": {},
    }
    for name in args.datasets:
        runs: dict[str, list[dict]] = {
            "this_tool": [],
            **{f"this_tool {v}": [] for v in variants},
            "deepimpute_1.2": [],
        }
        labels, original_failure = LABELS.get(name), None
        for seed in args.seeds:
            masked = prepare(name, DATASETS[name], args.work, masking_seed=0 if args.fixed_masking else seed)
            runs["this_tool"].append(
                run_this_tool(masked, args.work, args.train_args.split(), seed, labels=labels)
            )
            for variant, extra in variants.items():
                runs[f"this_tool {variant}"].append(
                    run_this_tool(
                        masked, args.work, [*args.train_args.split(), *extra.split()], seed, labels=labels
                    )
                )
            if not args.skip_original and original_failure is None:
                try:
                    runs["deepimpute_1.2"].append(
                        run_original(masked, args.work, args.original_python, seed, labels=labels)
                    )
                except RuntimeError as failure:
                    original_failure = str(failure).strip().splitlines()[-1]
        results["datasets"][name] = {
            tool: summarise(tool_runs, args.seeds) for tool, tool_runs in runs.items() if tool_runs
        }
        if original_failure is not None:  # the seeds run before the failure are kept
            results["datasets"][name].setdefault("deepimpute_1.2", {})["failed"] = original_failure
        print_table({name: results["datasets"][name]})
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))
    print_table(results["datasets"])


def summarise(runs: list[dict], seeds: list[int]) -> dict:
    """Mean and standard deviation over seeds of every figure, and the runs themselves."""
    import statistics

    keys = runs[0].keys()
    mean = {k: round(statistics.mean(r[k] for r in runs), 4) for k in keys}
    sd = {k: round(statistics.stdev(r[k] for r in runs), 4) if len(runs) > 1 else 0.0 for k in keys}
    return {"mean": mean, "sd": sd, "runs": [{"seed": seed, **run} for seed, run in zip(seeds, runs)]}


def print_table(datasets: dict) -> None:
    """Means over seeds, with the standard deviation of the accuracy figures."""
    accuracy = ("mse", "mse_count_ge2", "pearson")
    cost = ("train_seconds", "impute_seconds", "total_seconds", "peak_rss_mb", "epochs")
    print(
        f"{'dataset':<18} {'tool':<24} "
        + " ".join(f"{c:>17}" for c in accuracy)
        + " "
        + " ".join(f"{c:>14}" for c in cost)
    )
    for name, tools in datasets.items():
        for tool, summary in tools.items():
            if "failed" in summary:
                print(f"{name:<18} {tool:<24} failed: {summary['failed'][:100]}")
            if "mean" not in summary:
                continue
            mean, sd = summary["mean"], summary["sd"]
            cells = [f"{mean[c]:>9.4f} ±{sd[c]:<6.4f}" for c in accuracy] + [f"{mean[c]:>14}" for c in cost]
            print(f"{name:<18} {tool:<24} " + " ".join(cells))
            if "ari" in mean:
                for suffix, what in (("", "imputed"), ("_without_imputation", "without imputation")):
                    scores = ", ".join(f"{k.upper()} {mean[k + suffix]:.3f}" for k in CLUSTERING)
                    print(f"{'':<18} {'':<15} clustering, {what}: {scores}")


if __name__ == "__main__":
    main()
