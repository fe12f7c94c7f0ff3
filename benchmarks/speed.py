"""Speed and memory of this tool against DeepImpute 1.2 and MAGIC, measured side by side in one run.

Parts (all by default; pick some with --parts):

- head_to_head: mouse1m_10k and pbmc3k (genes in >= 10 cells), masked with `deepimpute mask
  --seed 0`; train + impute wall time, peak RSS, masked MSE / MSE at counts >= 2 / Pearson for
  this tool (defaults, and variants given by --variants), DeepImpute 1.2 and MAGIC.
- scaling: 1k-100k cells x 3,000 genes resampled from pbmc3k (binomial thinning), a fixed
  number of epochs for both DeepImpute implementations (the paper's Figure 6 setting).
- wide: the full 32,738-gene pbmc3k, trained at a fixed number of epochs: peak RSS.
- streaming: a model trained on mouse1m_10k imputes 100k and 1M resampled cells.
- hardware: the floating-point operations of one training epoch on pbmc3k over the matrix
  product rate of this machine, float32 and bfloat16, measured in the same run.

    python benchmarks/speed.py --original-python DI12/bin/python --magic-python MAGIC/bin/python

Writes benchmarks/results/speed.json (parts run again replace their own entry), prints a
table and draws benchmarks/results/speed.png.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from accuracy import DATA, deepimpute, prepare, run_original, run_this_tool, score
from measure import machine, measure, parse_times
from resample import write_resampled

HERE = Path(__file__).resolve().parent
PARTS = ("head_to_head", "scaling", "wide", "streaming", "hardware")
HEAD_TO_HEAD = {
    "pbmc3k": ["--min-genes", "0", "--min-cells", "10"],
    "mouse1m_10k": ["--min-genes", "0", "--min-cells", "1"],
}


def run_magic(masked: Path, work: Path, python: str) -> dict:
    imputed = work / f"{masked.stem}.magic.loom"
    imputed.unlink(missing_ok=True)
    result = measure([python, str(HERE / "magic_impute.py"), str(masked), str(imputed)])
    times = parse_times(result.output)
    return {
        "train_seconds": 0.0,
        "impute_seconds": round(times["impute"], 2),
        "total_seconds": round(result.seconds, 2),
        "peak_rss_mb": round(result.peak_rss_mb, 1),
        **score(imputed),
    }


def head_to_head(args) -> dict:
    results = {}
    for name, filter_args in HEAD_TO_HEAD.items():
        masked = prepare(name, filter_args, args.work)
        tools = {"this_tool": run_this_tool(masked, args.work, [], 0)}
        for variant in args.variants:
            tools[f"this_tool {variant}"] = run_this_tool(masked, args.work, variant.split(), 0)
        if args.original_python:
            tools["deepimpute_1.2"] = run_original(masked, args.work, args.original_python, 0)
        if args.magic_python:
            tools["magic"] = run_magic(masked, args.work, args.magic_python)
        results[name] = tools
        print_head_to_head({name: tools})
    return {"datasets": results}


def _timed_out(command: list[str], seconds: int) -> list[str]:
    return ["timeout", "--signal=KILL", str(seconds), *command]


def scaling(args) -> dict:
    epochs = str(args.scaling_epochs)
    rows = []
    original_gave_up = False
    for n_cells in args.scaling_cells:
        loom = write_resampled(
            DATA / "pbmc3k.loom", args.work / f"pbmc3k_{n_cells}.loom", n_cells=n_cells, n_genes=3000
        )
        model, imputed = args.work / f"pbmc3k_{n_cells}.model", args.work / f"pbmc3k_{n_cells}.imputed.loom"
        trained = measure(
            deepimpute(
                "train", str(loom), str(model), "--quiet", "--max-epochs", epochs, "--patience", epochs
            )
        )
        imputing = measure(deepimpute("impute", str(loom), str(model), str(imputed), "--quiet"))
        training = json.loads((model / "model.json").read_text())["training"]
        row = {
            "cells": n_cells,
            "genes": 3000,
            "this_tool": {
                "train_seconds": round(trained.seconds, 2),
                "fit_seconds_per_epoch": training["seconds_per_epoch"],
                "impute_seconds": round(imputing.seconds, 2),
                "peak_rss_mb": round(max(trained.peak_rss_mb, imputing.peak_rss_mb), 1),
            },
        }
        if args.original_python and not original_gave_up:
            out = args.work / f"pbmc3k_{n_cells}.original.loom"
            command = [args.original_python, str(HERE / "original_deepimpute.py"), str(loom), str(out)]
            command += ["--max-epochs", epochs, "--patience", epochs]
            try:
                result = measure(_timed_out(command, args.original_timeout))
                times = parse_times(result.output)
                row["deepimpute_1.2"] = {
                    "train_seconds": times["train"],
                    "impute_seconds": times["impute"],
                    "total_seconds": round(result.seconds, 2),
                    "peak_rss_mb": round(result.peak_rss_mb, 1),
                }
            except RuntimeError as error:
                row["deepimpute_1.2"] = {"failed": str(error).splitlines()[0][-300:]}
                original_gave_up = True
            out.unlink(missing_ok=True)
        imputed.unlink(missing_ok=True)
        rows.append(row)
        print_scaling(rows[-1:])
    return {"epochs": args.scaling_epochs, "original_timeout_seconds": args.original_timeout, "rows": rows}


def wide(args) -> dict:
    model = args.work / "pbmc3k_all_genes.model"
    epochs = str(args.scaling_epochs)
    trained = measure(
        deepimpute(
            "train",
            str(DATA / "pbmc3k.loom"),
            str(model),
            "--quiet",
            "--max-epochs",
            epochs,
            "--patience",
            epochs,
        )
    )
    training = json.loads((model / "model.json").read_text())["training"]
    import loompy

    with loompy.connect(str(DATA / "pbmc3k.loom"), "r", validate=False) as ds:
        n_genes, n_cells = ds.shape
    return {
        "genes": n_genes,
        "cells": n_cells,
        "target_genes": training["target_genes"],
        "epochs": training["epochs"],
        "train_seconds": round(trained.seconds, 2),
        "peak_rss_mb": round(trained.peak_rss_mb, 1),
        "dense_genes_x_genes_float64_mb": round(n_genes**2 * 8 / 2**20, 1),
    }


def streaming(args) -> dict:
    prepare("mouse1m_10k", HEAD_TO_HEAD["mouse1m_10k"], args.work)
    filtered = args.work / "mouse1m_10k.filtered.loom"  # its gene names made unique
    model = args.work / "mouse1m_10k.stream.model"
    if not (model / "model.json").exists():
        measure(deepimpute("train", str(filtered), str(model), "--quiet"))
    rows = []
    for n_cells in args.streaming_cells:
        loom = write_resampled(filtered, args.work / f"mouse1m_{n_cells}.loom", n_cells=n_cells)
        imputed = args.work / f"mouse1m_{n_cells}.imputed.loom"
        imputing = measure(deepimpute("impute", str(loom), str(model), str(imputed), "--quiet"))
        rows.append(
            {
                "cells": n_cells,
                "genes": 1000,
                "impute_seconds": round(imputing.seconds, 2),
                "microseconds_per_cell": round(imputing.seconds / n_cells * 1e6, 2),
                "peak_rss_mb": round(imputing.peak_rss_mb, 1),
                "input_mb": round(loom.stat().st_size / 2**20, 1),
                "output_mb": round(imputed.stat().st_size / 2**20, 1),
            }
        )
        imputed.unlink()
        print(rows[-1])
    return {"rows": rows}


def epoch_flops(model_json: dict) -> float:
    """Useful floating-point operations of one epoch: forward and backward, training cells,
    plus the forward pass on the validation cells (padding not counted)."""
    training, parameters = model_json["training"], model_json["parameters"]
    hidden = parameters["hidden"]
    per_cell_forward = per_cell_training = 0
    for subnet in model_json["subnetworks"]:
        n_in, n_out = len(subnet["predictors"]), len(subnet["targets"])
        per_cell_forward += 2 * (n_in * hidden + hidden * n_out)
        # forward, then dW1 (2 n_in h), dW2 (2 h n_out) and dH (2 h n_out); no gradient of the inputs
        per_cell_training += 4 * n_in * hidden + 6 * hidden * n_out
    return per_cell_training * training["train_cells"] + per_cell_forward * training["validation_cells"]


def matmul_rates() -> dict:
    """GFLOP/s of TensorFlow's matrix products here: large square, and the training's shapes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    rates = {}
    shapes = {"square_2048": (1, 2048, 2048, 2048), "training_batched": (22, 64, 1500, 256)}
    for dtype in (tf.float32, tf.bfloat16):
        for label, (nets, m, k, n) in shapes.items():
            a = tf.cast(tf.random.uniform((nets, m, k)), dtype)
            b = tf.cast(tf.random.uniform((nets, k, n)), dtype)
            product = tf.function(lambda a, b: tf.matmul(a, b))
            product(a, b).numpy()
            repeats, started = 0, time.perf_counter()
            while time.perf_counter() - started < 2.0:
                product(a, b).numpy()
                repeats += 1
            seconds = (time.perf_counter() - started) / repeats
            rates[f"{dtype.name}_{label}"] = round(2 * nets * m * k * n / seconds / 1e9, 1)
    return rates


def hardware(args) -> dict:
    masked = prepare("pbmc3k", HEAD_TO_HEAD["pbmc3k"], args.work)
    results = {"matmul_gflops": matmul_rates()}
    for precision in ("float32", "bfloat16"):
        model = args.work / f"pbmc3k.hardware.{precision}.model"
        epochs = str(args.hardware_epochs)
        measure(
            deepimpute(
                "train", str(masked), str(model), "--quiet", "--max-epochs", epochs, "--patience", epochs,
                "--precision", precision,
            )
        )  # fmt: skip
        model_json = json.loads((model / "model.json").read_text())
        flops = epoch_flops(model_json)
        seconds = model_json["training"]["seconds_per_epoch"]
        results[precision] = {
            "epochs": model_json["training"]["epochs"],
            "gflop_per_epoch": round(flops / 1e9, 1),
            "seconds_per_epoch": seconds,
            "achieved_gflops": round(flops / seconds / 1e9, 1),
        }
        peak = results["matmul_gflops"][f"{precision}_square_2048"]
        results[precision]["fraction_of_matmul_rate"] = round(flops / seconds / 1e9 / peak, 3)
    return results


# ---------------------------------------------------------------- reporting


def print_head_to_head(datasets: dict) -> None:
    columns = (
        "mse",
        "mse_count_ge2",
        "pearson",
        "train_seconds",
        "impute_seconds",
        "total_seconds",
        "peak_rss_mb",
    )
    print(f"{'dataset':<12} {'tool':<34}" + "".join(f"{c:>15}" for c in columns))
    for name, tools in datasets.items():
        for tool, figures in tools.items():
            print(f"{name:<12} {tool:<34}" + "".join(f"{figures[c]:>15.4g}" for c in columns))


def total_wall(figures: dict) -> float:
    """Wall time of train and impute as processes (this tool: two processes; DI 1.2: one)."""
    return figures.get("total_seconds", figures["train_seconds"] + figures["impute_seconds"])


def print_scaling(rows: list[dict]) -> None:
    for row in rows:
        ours, original = row["this_tool"], row.get("deepimpute_1.2", {})
        theirs = (
            f"DI 1.2 {original['total_seconds']:.1f} s in all (fit {original['train_seconds']:.1f} s), "
            f"RSS {original['peak_rss_mb']:.0f} MB"
            if "train_seconds" in original
            else original.get("failed", "DI 1.2 not run")
        )
        print(
            f"{row['cells']:>7} cells: this tool {total_wall(ours):.1f} s in all: train {ours['train_seconds']:.1f} s "
            f"({ours['fit_seconds_per_epoch']:.2f} s/epoch), impute {ours['impute_seconds']:.1f} s, "
            f"RSS {ours['peak_rss_mb']:.0f} MB | {theirs}"
        )


def print_all(results: dict) -> None:
    parts = results["parts"]
    if "head_to_head" in parts:
        print("\nHead to head (masked protocol, seed 0)")
        print_head_to_head(parts["head_to_head"]["datasets"])
    if "scaling" in parts:
        print(f"\nScaling, {parts['scaling']['epochs']} epochs, 3,000 genes")
        print_scaling(parts["scaling"]["rows"])
    if "wide" in parts:
        w = parts["wide"]
        print(
            f"\nWide: {w['genes']} genes x {w['cells']} cells, {w['target_genes']} targets: train "
            f"{w['train_seconds']} s ({w['epochs']} epochs), peak RSS {w['peak_rss_mb']} MB "
            f"(a dense genes x genes float64 matrix alone: {w['dense_genes_x_genes_float64_mb']} MB)"
        )
    if "streaming" in parts:
        print("\nStreaming imputation (1,000 genes)")
        for row in parts["streaming"]["rows"]:
            print(
                f"{row['cells']:>8} cells: {row['impute_seconds']} s ({row['microseconds_per_cell']} us/cell), "
                f"peak RSS {row['peak_rss_mb']} MB"
            )
    if "hardware" in parts:
        h = parts["hardware"]
        print("\nHardware: matrix product rates (GFLOP/s)", h["matmul_gflops"])
        for precision in ("float32", "bfloat16"):
            r = h[precision]
            print(
                f"{precision}: {r['gflop_per_epoch']} GFLOP/epoch in {r['seconds_per_epoch']} s = "
                f"{r['achieved_gflops']} GFLOP/s, {r['fraction_of_matmul_rate']:.0%} of the square-matrix rate"
            )


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = results["parts"]
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.8))
    if "head_to_head" in parts:
        datasets = parts["head_to_head"]["datasets"]
        names = list(datasets)
        tools = sorted({t for d in datasets.values() for t in d})
        width = 0.8 / len(tools)
        for ax, figure, label in (
            (axes[0], "total_seconds", "train + impute wall time (s)"),
            (axes[1], "peak_rss_mb", "peak RSS (MB)"),
        ):
            for i, tool in enumerate(tools):
                values = [datasets[n].get(tool, {}).get(figure, 0) for n in names]
                bars = ax.bar([j + i * width for j in range(len(names))], values, width, label=tool)
                pearsons = [datasets[n].get(tool, {}).get("pearson", float("nan")) for n in names]
                for bar, r in zip(bars, pearsons):
                    ax.annotate(f"r={r:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                                va="bottom", fontsize=7, rotation=90)  # fmt: skip
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names)
            ax.set_ylim(top=ax.get_ylim()[1] * 1.2)
            ax.set_ylabel(label)
            ax.set_title("Masked benchmark (r: masked Pearson)")
        axes[0].legend(fontsize=7, loc="upper right")
    if "scaling" in parts:
        ax = axes[2]
        rows = parts["scaling"]["rows"]
        for tool, marker in (("this_tool", "o"), ("deepimpute_1.2", "s")):
            points = [(r["cells"], total_wall(r[tool])) for r in rows if "impute_seconds" in r.get(tool, {})]
            if points:
                ax.plot(*zip(*points), marker=marker, label=tool)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("cells (3,000 genes)")
        ax.set_ylabel(f"train + impute wall time, {parts['scaling']['epochs']} epochs (s)")
        ax.set_title("Scaling with cells")
        ax.legend(fontsize=7)
    if "streaming" in parts:
        ax = axes[3]
        rows = parts["streaming"]["rows"]
        cells = [r["cells"] for r in rows]
        ax.plot(cells, [r["impute_seconds"] for r in rows], marker="o", label="impute wall time (s)")
        ax.plot(cells, [r["peak_rss_mb"] for r in rows], marker="s", label="peak RSS (MB)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("cells (1,000 genes)")
        ax.set_title("Streaming imputation")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _commit() -> str:
    """The code measured: git commit, marked dirty when files other than the results differ from it
    (this run rewrites results/ after every part)."""
    import subprocess

    def git(*arguments: str) -> str:
        done = subprocess.run(["git", *arguments], cwd=HERE, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "..", ":(exclude)results")
    return f"{commit}-dirty" if changed else commit


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--original-python", help="Python of an environment with deepimpute==1.2")
    parser.add_argument("--magic-python", help="Python of an environment with magic-impute==3.0.0")
    parser.add_argument(
        "--parts", nargs="*", choices=PARTS, default=list(PARTS), help="None: only print and plot the JSON."
    )
    parser.add_argument(
        "--variants",
        nargs="*",
        default=["--coarse-learning-rate 0", "--ensemble 2", "--cell-fraction 0.5"],
        help="Extra runs of this tool in head_to_head, each a string of train options.",
    )
    parser.add_argument("--scaling-cells", type=int, nargs="+", default=[1000, 5000, 10_000, 50_000, 100_000])
    parser.add_argument("--scaling-epochs", type=int, default=3)
    parser.add_argument(
        "--original-timeout", type=int, default=1800, help="Seconds before DI 1.2 is given up."
    )
    parser.add_argument("--streaming-cells", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--hardware-epochs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "speed.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    results = json.loads(args.output.read_text()) if args.output.exists() else {"parts": {}}
    results.update(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        machine=machine(),
    )
    for part in args.parts:
        started = time.perf_counter()
        print(f"== {part}", flush=True)
        results["parts"][part] = globals()[part](args)
        results["parts"][part]["benchmark_seconds"] = round(time.perf_counter() - started, 1)
        results["parts"][part]["measured"] = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "commit": _commit(),
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=1))
    print_all(results)
    plot(results, args.output.with_suffix(".png"))


if __name__ == "__main__":
    main()
