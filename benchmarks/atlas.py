"""Atlas scale: `deepimpute run` on 1.3 million cells, and on 100,000 cells of every gene, in bounded memory.

Parts (``--parts``):

- ``mouse``: Looms of 100,000 and 1,300,000 cells x 1,000 genes resampled from mouse1m_10k
  (resample.py: cells drawn with replacement, each count kept with probability 0.9), each
  through `deepimpute run` (filter, train, impute) in one process; the per-step time and peak
  memory come from the lines `run` logs, the total from wait4.
- ``wide``: 100,000 cells x all 32,738 genes of pbmc3k, the same way.
- ``original``: DeepImpute 1.2 on the same inputs, under an address-space limit and a time
  limit (``--original-memory-gb``, ``--original-timeout``), as far as it gets.

    python benchmarks/atlas.py --original-python /tmp/di12/bin/python

Writes results/atlas.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from measure import machine, measure, parse_times
from resample import write_resampled

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
STEP_LINE = re.compile(r"\] (filter|train|impute): ([\d.]+) s; peak memory so far (\d+) MB")
INPUTS = {
    "mouse1m_100k": ("mouse1m_10k", 100_000, None, ["--min-genes", "0", "--min-cells", "1"]),
    "mouse1m_1300k": ("mouse1m_10k", 1_300_000, None, ["--min-genes", "0", "--min-cells", "1"]),
    "pbmc3k_wide_100k": ("pbmc3k", 100_000, None, ["--min-genes", "0", "--min-cells", "0"]),
}
PARTS = {"mouse": ["mouse1m_100k", "mouse1m_1300k"], "wide": ["pbmc3k_wide_100k"]}


def run_this_tool(name: str, work: Path) -> dict:
    source, n_cells, n_genes, filter_args = INPUTS[name]
    loom = write_resampled(DATA / f"{source}.loom", work / f"{name}.loom", n_cells=n_cells, n_genes=n_genes)
    out = work / f"{name}.run"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "deepimpute_tool", "run", str(loom), str(out), *filter_args]
    result = measure(command)
    steps = {
        step: {"seconds": float(s), "peak_rss_mb_so_far": int(m)}
        for step, s, m in STEP_LINE.findall(result.output)
    }
    model = json.loads((out / "model" / "model.json").read_text())
    return {
        "cells": n_cells,
        "target_genes": model["training"]["target_genes"],
        "total_seconds": round(result.seconds, 1),
        "peak_rss_mb": round(result.peak_rss_mb),
        "microseconds_per_cell": round(1e6 * result.seconds / n_cells, 1),
        "steps": steps,
        "training_cells": model["training"]["cells"],
        "epochs": model["training"]["epochs"],
        "input_mb": round(loom.stat().st_size / 2**20),
        "output_mb": round((out / "imputed.loom").stat().st_size / 2**20),
    }


def run_original(name: str, work: Path, python: str, *, timeout: float, memory_gb: float) -> dict:
    loom = work / f"{name}.loom"
    imputed = work / f"{name}.original.loom"
    imputed.unlink(missing_ok=True)
    command = [python, str(HERE / "original_deepimpute.py"), str(loom), str(imputed)]
    try:
        result = measure(command, timeout=timeout, limit_bytes=int(memory_gb * 2**30))
    except RuntimeError as error:
        return {
            "failed": str(error).strip().splitlines()[-1][-300:],
            "memory_limit_gb": memory_gb,
            "timeout_s": timeout,
        }
    times = parse_times(result.output)
    return {
        "total_seconds": round(result.seconds, 1),
        "peak_rss_mb": round(result.peak_rss_mb),
        "train_seconds": round(times["train"], 1),
        "impute_seconds": round(times["impute"], 1),
        "epochs": int(times["epochs"]),
    }


def table(results: dict) -> str:
    rows = ["| input | cells | total (s) | µs per cell | peak RSS (MB) | filter (s) | train (s) | impute (s) | training cells |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, entry in results.get("this_tool", {}).items():
        steps = entry["steps"]
        rows.append(
            f"| {name} | {entry['cells']:,} | {entry['total_seconds']} | {entry['microseconds_per_cell']} | "
            f"{entry['peak_rss_mb']:,} | {steps['filter']['seconds']} | {steps['train']['seconds']} | "
            f"{steps['impute']['seconds']} | {entry['training_cells']:,} |"
        )
    for name, entry in results.get("deepimpute_1_2", {}).items():
        outcome = entry.get("failed") or f"{entry['total_seconds']} s, {entry['peak_rss_mb']:,} MB"
        rows.append(f"| {name}, DeepImpute 1.2 | | {outcome} | | | | | | |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", nargs="+", choices=[*PARTS, "original"], default=[*PARTS, "original"])
    parser.add_argument("--original-python", help="Python of an environment with deepimpute==1.2")
    parser.add_argument("--original-timeout", type=float, default=3600)
    parser.add_argument("--original-memory-gb", type=float, default=20)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "atlas.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.output.read_text()) if args.output.exists() else {}
    results.update(machine=machine(), date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    for part, names in PARTS.items():
        if part in args.parts:
            for name in names:
                results.setdefault("this_tool", {})[name] = run_this_tool(name, args.work)
                args.output.write_text(json.dumps(results, indent=1))
    if "original" in args.parts and args.original_python:
        for name in [n for names in PARTS.values() for n in names]:
            if (args.work / f"{name}.loom").exists():
                results.setdefault("deepimpute_1_2", {})[name] = run_original(
                    name,
                    args.work,
                    args.original_python,
                    timeout=args.original_timeout,
                    memory_gb=args.original_memory_gb,
                )
                args.output.write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
