#!/usr/bin/env bash
# Train, mask, impute, score and run with fixed seeds in checkout REPO, into OUTDIR, and digest every
# array written (digest.json). Two checkouts give the same results when compare.py says identical:
#   bash run.sh OLD_CHECKOUT /tmp/old && bash run.sh NEW_CHECKOUT /tmp/new
#   python compare.py /tmp/old/digest.json /tmp/new/digest.json
# usage: run.sh REPO OUTDIR
set -euo pipefail
REPO=$(cd "$1" && pwd); OUT=$2
if [ -e "$OUT" ]; then echo "$OUT exists: give a new folder" >&2; exit 2; fi
mkdir -p "$OUT"
DI="$REPO/.venv/bin/deepimpute"
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$OUT"
"$REPO/.venv/bin/python" - "$REPO" <<'PY'
import sys, h5py, numpy as np, pandas as pd
h = h5py.File(sys.argv[1] + "/deepimpute_tool/data/pbmc3k_genes10.loom")
m = h["matrix"][:2500, :2000]; genes = [g.decode() for g in h["row_attrs/Gene"][:2500]]; cells=[c.decode() for c in h["col_attrs/CellID"][:2000]]
pd.DataFrame(m, index=genes, columns=cells).to_csv("counts.csv")
PY
$DI filter -q counts.csv filtered_csv.loom --min-genes 10 --min-cells 3
# Loom path with --max-cells subsampling; CSV path with --max-cells subsampling
$DI train -q filtered_csv.loom model_loom --max-cells 1500 --max-epochs 6 --cores 2 --seed 3
$DI train -q counts.csv model_csv --max-cells 1500 --max-epochs 6 --cores 2 --seed 3
$DI mask -q filtered_csv.loom masked.loom --seed 1
$DI impute -q masked.loom model_loom imputed.loom --uncertainty 3 --seed 2
$DI impute -q masked.loom model_csv imputed_expected.h5ad --fill expected
$DI score -q imputed.loom -o scores.json
$DI run -q "$REPO/tests/data/pbmc68k_reduced.loom" run_out --evaluate --max-epochs 4 --cores 2 --max-cells 500 --labels CellType
"$REPO/.venv/bin/python" "$HERE/digest.py"
