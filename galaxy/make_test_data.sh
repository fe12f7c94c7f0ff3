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
# as scanpy users hold it: log-normalised X, the counts in layers["counts"], categorical obs, obsm, uns
python3 - "$data/pbmc_small.loom" "$data/pbmc_small.h5ad" <<'PY'
import sys

import anndata
import numpy as np
import pandas as pd

from deepimpute_tool.loom import read_loom

data = read_loom(sys.argv[1])
counts = data.counts.astype(np.float32)
normalised = counts.multiply(1e4 / counts.sum(axis=1)).toarray()
adata = anndata.AnnData(
    X=np.log1p(normalised).astype(np.float32),
    obs=pd.DataFrame({"CellType": pd.Categorical(data.cell_attrs["CellType"])}, index=data.cells),
    var=pd.DataFrame(index=data.genes),
    layers={"counts": counts},
    obsm={"X_umap": np.random.default_rng(0).random((data.n_cells, 2))},
    uns={"source": "tests/data/pbmc_small.loom"},
)
adata.write_h5ad(sys.argv[2])
PY
"$bin/deepimpute-train" "$data/pbmc_small.loom" "$data/pbmc_small.model.zip" --max-epochs 3 --calibration --quiet
"$bin/deepimpute-mask" "$data/pbmc_small.loom" "$work/masked.loom" --cells-per-gene 3 --quiet
"$bin/deepimpute-train" "$work/masked.loom" "$work/model.zip" --max-epochs 100 --quiet
"$bin/deepimpute-impute" "$work/masked.loom" "$work/model.zip" "$data/pbmc_small.imputed.loom" --quiet
# molecular cross-validation from the scanpy-layout h5ad, imputed into an h5ad
"$bin/deepimpute-mask" "$data/pbmc_small.h5ad" "$work/mcv.h5ad" --layer counts --protocol mcv --quiet
"$bin/deepimpute-train" "$work/mcv.h5ad" "$work/mcv_model.zip" --max-epochs 3 --quiet
"$bin/deepimpute-impute" "$work/mcv.h5ad" "$work/mcv_model.zip" "$data/pbmc_small.mcv.imputed.h5ad" \
    --no-detected-layer --quiet
ls -l "$data"
