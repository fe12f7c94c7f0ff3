"""What users compare imputation tools by, on every shared dataset, for this tool and its peers, in one run.

For each dataset (filtered as accuracy.py filters it) and each method, two imputations:

- on the paper's masking (`deepimpute mask --seed 0`): masked Pearson, and masked MSE at true
  counts >= 2, on log1p;
- on molecular cross-validation (`deepimpute mask --protocol mcv --seed 0`, 10% of molecules
  held out): Open Problems' MSE and Poisson loss, each also scaled by their controls (0 without
  denoising, 1 for perfect denoising, higher is better), and the mean of the two scaled scores,
  by which Open Problems ranks denoising methods; the MSE this tool reported before 0.2 (cells at
  the median held-out depth) beside them; and, where the dataset has
  cell-type labels, ARI and AMI of k-means and of Leiden, for the imputed and the unimputed
  counts; time and peak memory of this run.

Methods: this tool with its defaults and with each of ``--variants`` (NAME=TRAIN ARGS | IMPUTE
ARGS; by default the other fills of the same model, and the model without a detection head,
trained and imputed as before it), DeepImpute 1.2 and DCA (``--original-python``: DeepImpute 1.2's
environment, where DCA also runs, see README.md), MAGIC (``--magic-python``). Variants with the
same training arguments share one model. Every method is scored by `deepimpute score` on the
same masked Looms; clustering scores are means over 10 k-means and 5 Leiden starts.

    python benchmarks/downstream.py --original-python /tmp/di12/bin/python --magic-python /tmp/magic/bin/python

Writes results/downstream.json and results/downstream.png, and prints a table. A method run
again on a dataset (``--datasets``, ``--methods``) replaces its own figures in the JSON; the
others are kept.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from accuracy import DATASETS, LABELS, deepimpute, prepare
from measure import machine, measure

HERE = Path(__file__).resolve().parent
MCV = ("mcv_mse", "mcv_poisson", "mcv_mse_scaled", "mcv_poisson_scaled", "mcv_score", "mcv_mse_median_depth")
CLUSTERING = ("ari", "ari_sd", "ami", "ari_leiden", "ari_leiden_sd", "ami_leiden", "silhouette")
MEASURES = ("pearson", "mse_count_ge2", *MCV, *CLUSTERING)
LOWER_IS_BETTER = ("mse_count_ge2", "mcv_mse", "mcv_poisson", "mcv_mse_median_depth")


def masked_looms(name: str, work: Path) -> dict[str, Path]:
    """The dataset filtered and masked as accuracy.py does ("paper"), and split for MCV ("mcv")."""
    looms = {"paper": prepare(name, DATASETS[name], work), "mcv": work / f"{name}.mcv.loom"}
    if not looms["mcv"].exists():
        filtered = work / f"{name}.filtered.loom"
        measure(deepimpute("mask", str(filtered), str(looms["mcv"]), "--protocol", "mcv", "--seed", "0"))
    return looms


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


# models trained in this run, by (masked Loom, training arguments): variants that differ only in
# how they impute share one model, so their figures differ by the imputation alone
TRAINED: dict[tuple[Path, str], tuple[Path, float, float]] = {}


def impute(
    method: str, masked: Path, out: Path, args: argparse.Namespace, variants: dict
) -> tuple[float, float, float | None]:
    """Impute ``masked`` into ``out`` with ``method``: seconds and peak RSS (MB) of the whole of it,
    and this tool's seconds of training alone (None for the others)."""
    out.unlink(missing_ok=True)
    if method == "this tool" or method in variants:
        train_args, _, impute_args = variants.get(method, "").partition("|")
        key = (masked, " ".join(train_args.split()))
        if key not in TRAINED:
            model = args.work / f"{masked.stem}.{_slug(key[1]) or 'defaults'}.model"
            shutil.rmtree(model, ignore_errors=True)
            trained = measure(deepimpute("train", str(masked), str(model), "--quiet", *key[1].split()))
            TRAINED[key] = (model, trained.seconds, trained.peak_rss_mb)
        model, train_seconds, train_peak = TRAINED[key]
        imputed = measure(
            deepimpute("impute", str(masked), str(model), str(out), "--quiet", *impute_args.split())
        )
        return train_seconds + imputed.seconds, max(train_peak, imputed.peak_rss_mb), train_seconds
    runner = {"DeepImpute 1.2": "original_deepimpute.py", "MAGIC": "magic_impute.py", "DCA": "dca_impute.py"}[
        method
    ]
    python = args.magic_python if method == "MAGIC" else args.original_python
    result = measure([python, str(HERE / runner), str(masked), str(out), "--cores", "2"])
    return result.seconds, result.peak_rss_mb, None


def scored(imputed: Path, labels: str | None) -> dict:
    out = imputed.with_suffix(".scores.json")
    measure(
        deepimpute(
            "score", str(imputed), "--output", str(out), "--quiet", *(["--labels", labels] if labels else [])
        )
    )
    return json.loads(out.read_text())


def run_method(name: str, method: str, looms: dict, args, variants: dict, before: dict) -> dict:
    """Impute and score ``method`` on both maskings of dataset ``name``. A peer's imputed Looms
    from an earlier run are scored again, not imputed again, with ``--rescore-peers`` (its time
    and memory are then that run's, from ``before``)."""
    imputed = {kind: args.work / f"{name}.{_slug(method)}.{kind}.loom" for kind in looms}
    peer = method != "this tool" and method not in variants
    rescore = peer and args.rescore_peers and all(path.exists() for path in imputed.values())
    result: dict = {"rescored": True} if rescore else {}
    try:
        if not rescore:
            impute(method, looms["paper"], imputed["paper"], args, variants)
        paper = scored(imputed["paper"], None)
        result.update(pearson=paper["pearson"], mse_count_ge2=paper["mse_count_ge2"])
        if rescore:
            seconds, peak, train_seconds = before["seconds"], before["peak_rss_mb"], None
        else:
            seconds, peak, train_seconds = impute(method, looms["mcv"], imputed["mcv"], args, variants)
        mcv = scored(imputed["mcv"], LABELS.get(name))
    except RuntimeError as failure:
        return {**result, "failed": str(failure).strip().splitlines()[-1][-300:]}
    result.update(
        {measure: mcv[measure] for measure in MCV}, seconds=round(seconds, 1), peak_rss_mb=round(peak)
    )
    if train_seconds is not None:
        result["train_seconds"] = round(train_seconds, 1)
    baseline = {
        "mcv_mse": mcv["mcv_mse_without_imputation"],
        "mcv_poisson": mcv["mcv_poisson_without_imputation"],
        "mcv_mse_median_depth": mcv["mcv_mse_median_depth_without_imputation"],
        **dict.fromkeys(("mcv_mse_scaled", "mcv_poisson_scaled", "mcv_score"), 0.0),
    }
    if "clustering" in mcv:
        for key in CLUSTERING:
            result[key] = mcv["clustering"]["imputed"][key]
            baseline[key] = mcv["clustering"]["without_imputation"][key]
    result["without_imputation"] = baseline
    return result


def table(results: dict) -> str:
    """A Markdown table per dataset: the unimputed counts, then every method."""
    columns = (*MEASURES, "seconds", "peak_rss_mb")
    lines = []
    for name, methods in results["datasets"].items():
        lines += [
            f"\n{name}\n",
            "| method | " + " | ".join(columns) + " |",
            "|---" * (len(columns) + 1) + "|",
        ]
        baseline = next((m["without_imputation"] for m in methods.values() if "without_imputation" in m), {})
        for method, figures in {"no imputation": baseline, **methods}.items():
            if "failed" in figures:
                lines.append(f"| {method} | failed: {figures['failed'][:100]} |")
                continue
            cells = [_figure(m, figures[m]) if m in figures else "-" for m in columns]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


TARGET_MEASURES = ("pearson", "mse_count_ge2", "mcv_mse", "mcv_poisson", "ari")


def verdict(results: dict, method: str = "this tool") -> str:
    """Per dataset, how ``method`` stands: the measures of TARGET_MEASURES on which it is ahead of
    both MAGIC and DCA, whether it beats no imputation on MCV MSE and Poisson, and whether it is
    not behind the unimputed counts on k-means and Leiden ARI (where there are labels)."""
    lines = [
        f"\n{method}: ahead of MAGIC and DCA; MCV against no imputation; ARI against no imputation\n",
        "| dataset | ahead of both on | MCV MSE < none | MCV Poisson < none | ARI k-means, Leiden >= none |",
        "|---|---|---|---|---|",
    ]
    for name, methods in results["datasets"].items():
        ours, peers = methods.get(method, {}), [methods.get(p, {}) for p in ("MAGIC", "DCA")]
        if "pearson" not in ours or any("pearson" not in p for p in peers):
            continue
        ahead = [
            m
            for m in TARGET_MEASURES
            if m in ours
            and all(ours[m] < p[m] if m in LOWER_IS_BETTER else ours[m] > p[m] for p in peers if m in p)
        ]
        none = ours["without_imputation"]
        ari = (
            f"{ours['ari'] >= none['ari']}, {ours['ari_leiden'] >= none['ari_leiden']}"
            if "ari" in ours
            else "-"
        )
        lines.append(
            f"| {name} | {', '.join(ahead) or 'none'} ({len(ahead)} of {sum(m in ours for m in TARGET_MEASURES)}) "
            f"| {ours['mcv_mse'] < none['mcv_mse']} | {ours['mcv_poisson'] < none['mcv_poisson']} | {ari} |"
        )
    return "\n".join(lines)


def _figure(column: str, value: float) -> str:
    return {"seconds": f"{value:.1f}", "peak_rss_mb": f"{value:,.0f}"}.get(column, f"{value:.4f}")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(results["datasets"])
    methods = sorted({m for methods in results["datasets"].values() for m in methods})
    figure, axes = plt.subplots(1, len(MEASURES), figsize=(3.2 * len(MEASURES), 4), sharey=False)
    for axis, measure_name in zip(axes, MEASURES):
        for i, method in enumerate(["no imputation", *methods]):
            values = []
            for name in datasets:
                entry = (
                    results["datasets"][name].get(method)
                    if method != "no imputation"
                    else next(
                        (
                            m["without_imputation"]
                            for m in results["datasets"][name].values()
                            if "without_imputation" in m
                        ),
                        {},
                    )
                )
                values.append((entry or {}).get(measure_name, float("nan")))
            axis.scatter(range(len(datasets)), values, label=method, s=18, marker="os^vD*"[i % 6])
        axis.set_xticks(range(len(datasets)), datasets, rotation=60, fontsize=7)
        axis.set_title(
            measure_name + (" (lower better)" if measure_name in LOWER_IS_BETTER else ""), fontsize=8
        )
    axes[0].legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--methods", nargs="+", default=["this tool", "DeepImpute 1.2", "MAGIC", "DCA"])
    parser.add_argument(
        "--variants",
        nargs="*",
        default=[
            "paper fill (layer detected_fill)=| --fill detected",
            "denoised, zeros only=| --fill denoised --policy restore",
            "old default (expected_log, zeros only)=| --fill expected_log --policy restore",
            "expected_log, policy all=| --fill expected_log --policy all",
            "expected, policy all=| --fill expected --policy all",
            "confident=| --fill confident",
            "no detection head (as before)=--no-detection |",
        ],
        metavar="NAME=ARGS",
    )
    parser.add_argument("--original-python", help="DeepImpute 1.2's environment (also DCA's)")
    parser.add_argument("--magic-python", help="MAGIC's environment")
    parser.add_argument(
        "--rescore-peers",
        action="store_true",
        help="score the peers' imputed Looms of an earlier run in --work again instead of imputing anew",
    )
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "downstream.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    variants = dict(item.split("=", 1) for item in args.variants)
    # A method run again on a dataset replaces its own figures; the others are kept.
    results = json.loads(args.output.read_text()) if args.output.exists() else {"datasets": {}}
    results.update(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        machine=machine(),
        variants={**results.get("variants", {}), "this tool": "| (the defaults)", **variants},
    )
    methods = [args.methods[0], *variants, *args.methods[1:]]
    for name in args.datasets:
        looms = masked_looms(name, args.work)
        entry = results["datasets"].setdefault(name, {})
        for method in methods:
            entry[method] = run_method(name, method, looms, args, variants, entry.get(method, {}))
        args.output.write_text(json.dumps(results, indent=1))
        print(table({"datasets": {name: results["datasets"][name]}}), flush=True)
    plot(results, args.output.with_suffix(".png"))
    print(table(results))
    print(verdict(results))


if __name__ == "__main__":
    sys.exit(main())
