"""What the detection head costs in training time: each dataset trained with and without it, side by side.

For each dataset (filtered and masked as accuracy.py does, seed 0), `deepimpute train` with its
defaults (the detection head) and with `--no-detection`, in alternating order, ``--repeats`` times.
The head does not change the detected values (a unit test checks they are bit for bit the same),
so both train the same epochs and the ratio of their times is the head's cost alone. Writes
results/detection_cost.json and prints a table.

    python benchmarks/detection_cost.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from accuracy import DATASETS, deepimpute, prepare
from measure import machine, measure

HERE = Path(__file__).resolve().parent
VARIANTS = {"detection head": [], "no detection head": ["--no-detection"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "detection_cost.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "datasets": {},
    }
    for name in args.datasets:
        masked = prepare(name, DATASETS[name], args.work)
        runs = {variant: [] for variant in VARIANTS}
        for repeat in range(args.repeats):
            order = list(VARIANTS) if repeat % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                model = args.work / f"{name}.cost.model"
                shutil.rmtree(model, ignore_errors=True)
                run = measure(deepimpute("train", str(masked), str(model), "--quiet", *VARIANTS[variant]))
                history = json.loads((model / "model.json").read_text())["training"]
                runs[variant].append(
                    {"seconds": run.seconds, "fit_seconds": history["seconds"], "epochs": history["epochs"]}
                )
        entry = {
            variant: {key: sum(r[key] for r in found) / len(found) for key in found[0]}
            for variant, found in runs.items()
        }
        entry["ratio"] = round(entry["detection head"]["seconds"] / entry["no detection head"]["seconds"], 3)
        entry["fit_ratio"] = round(
            entry["detection head"]["fit_seconds"] / entry["no detection head"]["fit_seconds"], 3
        )
        results["datasets"][name] = {**entry, "runs": runs}
        print(f"{name}: {entry}", flush=True)
    args.output.write_text(json.dumps(results, indent=1))
    print(
        "\n| dataset | epochs | train seconds, head | without | ratio | fit seconds ratio |\n|---|---|---|---|---|---|"
    )
    for name, entry in results["datasets"].items():
        head, plain = entry["detection head"], entry["no detection head"]
        print(
            f"| {name} | {head['epochs']:.0f} / {plain['epochs']:.0f} | {head['seconds']:.1f} | "
            f"{plain['seconds']:.1f} | {entry['ratio']:.2f} | {entry['fit_ratio']:.2f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
