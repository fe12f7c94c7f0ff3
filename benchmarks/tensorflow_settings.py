"""This tool with TensorFlow's oneDNN optimisations on (its default) and off, side by side.

The runners of DeepImpute 1.2 and DCA set ``TF_ENABLE_ONEDNN_OPTS=0``: their TensorFlow 2.15
aborts with oneDNN on AVX-512 BF16 processors such as this project's EPYC. This tool runs on
TensorFlow 2.21 with oneDNN on. To say what that difference is worth, each dataset is trained
and imputed with both settings, alternating, ``--repeats`` times each, on the same masking and
seed: train seconds and masked accuracy.

    python benchmarks/tensorflow_settings.py --datasets pbmc3k mouse1m_10k --repeats 2

Writes results/tensorflow_settings.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from accuracy import DATASETS, deepimpute, prepare, score
from measure import measure, run_header

HERE = Path(__file__).resolve().parent
SETTINGS = {"oneDNN on (this tool's default)": None, "TF_ENABLE_ONEDNN_OPTS=0 (as the peers)": "0"}


def run(masked: Path, work: Path, setting: str | None) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    model, imputed = work / "settings.model", work / "settings.imputed.loom"  # each run replaces them
    trained = measure(deepimpute("train", str(masked), str(model), "--quiet", "--seed", "0"), env=env)
    measure(deepimpute("impute", str(masked), str(model), str(imputed), "--quiet"), env=env)
    figures = score(imputed)
    return {"train_seconds": round(trained.seconds, 2), "pearson": figures["pearson"], "mse": figures["mse"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=["pbmc3k", "mouse1m_10k"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "tensorflow_settings.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = {
        **run_header(),
        "datasets": {},
    }
    for name in args.datasets:
        masked = prepare(name, DATASETS[name], args.work)
        runs: dict[str, list[dict]] = {label: [] for label in SETTINGS}
        for _ in range(args.repeats):
            for label, setting in SETTINGS.items():
                runs[label].append(run(masked, args.work, setting))
        results["datasets"][name] = {
            label: {
                "train_seconds": statistics.mean(r["train_seconds"] for r in found),
                "pearson": statistics.mean(r["pearson"] for r in found),
                "runs": found,
            }
            for label, found in runs.items()
        }
    args.output.write_text(json.dumps(results, indent=1))
    print("| dataset | setting | train seconds (mean) | masked Pearson |")
    print("|---|---|---|---|")
    for name, by_setting in results["datasets"].items():
        for label, figures in by_setting.items():
            print(f"| {name} | {label} | {figures['train_seconds']:.1f} | {figures['pearson']:.4f} |")


if __name__ == "__main__":
    sys.exit(main())
