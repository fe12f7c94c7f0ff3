#!/usr/bin/env bash
# Remake galaxy/test-data from tests/data/pbmc_small.loom (80 cells x 230 genes, 10x PBMC, from
# Seurat's pbmc_raw) with the project's own executables. Run after a change of the Loom layout or of
# the model format: bash galaxy/make_test_data.sh (with the project's virtualenv active).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$here/../bin
data=$here/test-data
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cp "$here/../tests/data/pbmc_small.loom" "$data/pbmc_small.loom"
python3 - "$data/pbmc_small.loom" "$data/pbmc_small.csv" <<'PY'
import sys

import pandas as pd

from deepimpute_tool.loom import read_loom

data = read_loom(sys.argv[1])
pd.DataFrame(data.counts.toarray().T.astype(int), index=data.genes, columns=data.cells).to_csv(sys.argv[2])
PY
"$bin/deepimpute-train" "$data/pbmc_small.loom" "$data/pbmc_small.model.zip" --max-epochs 3 --calibration --quiet
"$bin/deepimpute-mask" "$data/pbmc_small.loom" "$work/masked.loom" --cells-per-gene 3 --quiet
"$bin/deepimpute-train" "$work/masked.loom" "$work/model.zip" --max-epochs 100 --quiet
"$bin/deepimpute-impute" "$work/masked.loom" "$work/model.zip" "$data/pbmc_small.imputed.loom" --quiet
ls -l "$data"
