"""Peak memory and time of the Python API against the command line, on one sparse AnnData.

Issue 23's figure: ``deepimpute_tool.pp.impute`` on a sparse 100,000-cell AnnData should peak
at no more than 1.5x what ``deepimpute run`` does on the same data written as h5ad. Both train
with the same options and impute every cell; run also filters (thresholds 0: every cell and
gene kept) and writes Loom files, pp.impute holds its result in memory as the API must.

    python benchmarks/anndata_memory.py [--cells 100000] [--max-epochs 10]

The cells are mouse1m_10k's, drawn with replacement and binomially thinned (resample.py).
Writes results/anndata_memory.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from measure import measure, run_header
from resample import write_resampled

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent / "shared" / "data" / "mouse1m_10k.loom"
REPO = HERE.parent

TO_H5AD = """
import sys
import anndata
import pandas as pd
from deepimpute_tool.dataset import make_unique
from deepimpute_tool.loom import read_loom
data = read_loom(sys.argv[1])
genes = make_unique(data.genes)  # as scanpy's var_names_make_unique; deepimpute filter does the same
anndata.AnnData(X=data.counts, obs=pd.DataFrame(index=data.cells), var=pd.DataFrame(index=genes)).write_h5ad(sys.argv[2])
"""

API = """
import sys, time
import anndata
import deepimpute_tool as di
adata = anndata.read_h5ad(sys.argv[1])
started = time.perf_counter()
di.pp.impute(adata, layer=None, max_epochs=int(sys.argv[2]), cores=2, seed=0)
print(f"API_SECONDS {time.perf_counter() - started:.1f}", type(adata.layers["deepimpute"]).__name__)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--max-epochs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        loom = write_resampled(SOURCE, work / "cells.loom", n_cells=args.cells)
        h5ad = work / "cells.h5ad"
        measure([sys.executable, "-c", TO_H5AD, str(loom), str(h5ad)])
        api = measure([sys.executable, "-c", API, str(h5ad), str(args.max_epochs)])
        cli = measure(
            [
                sys.executable, str(REPO / "bin" / "deepimpute-run"), str(h5ad), str(work / "out"),
                "--min-genes", "0", "--min-cells", "0", "--max-epochs", str(args.max_epochs),
                "--cores", "2", "--quiet",
            ]
        )  # fmt: skip
        layer_kind = api.output.split("API_SECONDS")[-1].split()[1]
    results = {
        **run_header(),
        "cells": args.cells,
        "genes": 1000,
        "max_epochs": args.max_epochs,
        "api": {"peak_rss_mb": round(api.peak_rss_mb), "seconds": round(api.seconds, 1), "layer": layer_kind},
        "cli_run": {"peak_rss_mb": round(cli.peak_rss_mb), "seconds": round(cli.seconds, 1)},
        "peak_ratio_api_over_cli": round(api.peak_rss_mb / cli.peak_rss_mb, 2),
    }
    (HERE / "results" / "anndata_memory.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"{args.cells} cells x 1000 genes, {args.max_epochs} epochs, on {results['machine']['processor']}")
    print("| what | peak RSS (MB) | seconds |\n|---|---|---|")
    print(
        f"| pp.impute (AnnData in memory; layer {layer_kind}) | {results['api']['peak_rss_mb']} | {results['api']['seconds']} |"
    )
    print(
        f"| deepimpute run (h5ad to Loom files) | {results['cli_run']['peak_rss_mb']} | {results['cli_run']['seconds']} |"
    )
    print(f"peak ratio, API / command line: {results['peak_ratio_api_over_cli']}")


if __name__ == "__main__":
    main()
