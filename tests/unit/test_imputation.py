from __future__ import annotations

import h5py
import loompy
import numpy as np
import pytest

from deepimpute_tool.errors import InputError
from deepimpute_tool.imputation import ImputeParameters, apply_policy, impute_counts
from deepimpute_tool.loom import read_loom
from deepimpute_tool.progress import Progress
from deepimpute_tool.steps.impute import impute_file
from tests.helpers import PBMC68K, assert_same_imputation, dense


def impute_loom(source, model_dir, out, **options):
    return impute_file(
        source, model_dir, out, params=ImputeParameters(**options), progress=Progress(quiet=True)
    )


def test_restore_keeps_every_observed_value_bit_for_bit(pbmc68k, pbmc68k_model):
    counts = dense(pbmc68k.counts)
    imputed = impute_counts(counts, pbmc68k.genes, pbmc68k_model, policy="restore")
    observed = counts > 0
    assert np.array_equal(imputed[observed].view(np.uint32), counts[observed].view(np.uint32))
    targets = np.isin(pbmc68k.genes, pbmc68k_model.target_genes)
    assert (imputed[:, targets][~observed[:, targets]] > 0).mean() > 0.99
    np.testing.assert_array_equal(imputed[:, ~targets], counts[:, ~targets])


def test_policies():
    observed = np.array([[0.0, 3.0, 5.0]], np.float32)
    predicted = np.array([[1.5, 4.0, 2.0]], np.float32)
    np.testing.assert_array_equal(apply_policy(observed, predicted, policy="restore"), [[1.5, 3.0, 5.0]])
    np.testing.assert_array_equal(apply_policy(observed, predicted, policy="max"), [[1.5, 4.0, 5.0]])
    np.testing.assert_array_equal(apply_policy(observed, predicted, policy="all"), predicted)


def test_loom_keeps_order_attributes_layers_and_chunking_changes_no_observed_value(
    pbmc68k_model, pbmc68k_model_dir, tmp_path
):
    source = tmp_path / "in.loom"
    data = read_loom(PBMC68K)
    with loompy.connect(str(PBMC68K), "r") as ds:
        counts = ds[:, :]
        loompy.create(
            str(source),
            {"": counts, "spliced": counts * 2},
            dict(ds.ra),
            dict(ds.ca),
            file_attrs={"note": "kept"},
        )
    one_block, many_blocks = tmp_path / "one.loom", tmp_path / "many.loom"
    summary = impute_loom(source, pbmc68k_model_dir, one_block)
    impute_loom(source, pbmc68k_model_dir, many_blocks, chunk_cells=97)
    with loompy.connect(str(one_block), "r") as a, loompy.connect(str(many_blocks), "r") as b:
        np.testing.assert_allclose(b[:, :], a[:, :], rtol=1e-5)  # denoised: every cell on its own
        assert_same_imputation(b.layers["detected_fill"][:, :], a.layers["detected_fill"][:, :], counts)
        np.testing.assert_array_equal(a.ca.CellID, data.cells)
        np.testing.assert_array_equal(a.ra.Gene, data.genes)
        np.testing.assert_array_equal(a.ca.CellType, data.cell_attrs["CellType"])
        np.testing.assert_array_equal(a.layers["raw"][:, :], counts)
        np.testing.assert_array_equal(a.layers["spliced"][:, :], counts * 2)
        assert a.attrs["note"] == "kept"
        assert set(a.layers.keys()) == {"", "raw", "spliced", "detected_fill"}
        expected = impute_counts(counts.T, data.genes, pbmc68k_model).T
        assert_same_imputation(a.layers["detected_fill"][:, :], expected, counts)
        default = impute_counts(counts.T, data.genes, pbmc68k_model, fill="denoised").T
        np.testing.assert_allclose(a[:, :], default, rtol=1e-5)
    assert summary.zeros_filled > 0 and summary.cells == data.n_cells
    for path in (one_block, many_blocks):
        with h5py.File(path, "r") as f:  # imputed floats are byte-shuffled before gzip
            assert f["matrix"].shuffle and f["matrix"].compression == "gzip"


def test_missing_model_genes_are_named(pbmc68k_model, pbmc68k_model_dir, tmp_path):
    data = read_loom(PBMC68K)
    source = tmp_path / "fewer.loom"
    keep = ~np.isin(data.genes, pbmc68k_model.target_genes[:3])
    loompy.create(str(source), dense(data.counts).T[keep], {"Gene": data.genes[keep]}, {"CellID": data.cells})
    with pytest.raises(InputError, match="lacks 3 of the model") as caught:
        impute_loom(source, pbmc68k_model_dir, tmp_path / "out.loom")
    assert pbmc68k_model.target_genes[0] in str(caught.value)
    assert not (tmp_path / "out.loom").exists()


def test_a_prediction_that_overflows_is_an_error_not_infinity(pbmc68k, pbmc68k_model):
    import dataclasses

    net = pbmc68k_model.subnetworks[0]
    exploding = dataclasses.replace(net, b2=net.b2 + 200.0)  # log predictions past float32's range
    model = dataclasses.replace(pbmc68k_model, subnetworks=[exploding, *pbmc68k_model.subnetworks[1:]])
    with pytest.raises(InputError, match="imputation overflows") as caught:
        impute_counts(dense(pbmc68k.counts)[:20], pbmc68k.genes, model)
    assert caught.value.what is None  # the step names the file


def test_uncertainty_is_the_spread_of_dropout_samples_at_every_filled_zero(
    pbmc68k_model_dir, pbmc68k_model, tmp_path
):
    from deepimpute_tool.imputation import prediction_spread

    impute_loom(PBMC68K, pbmc68k_model_dir, tmp_path / "u.loom", uncertainty=8, seed=3)
    impute_loom(PBMC68K, pbmc68k_model_dir, tmp_path / "again.loom", uncertainty=8, seed=3)
    with h5py.File(tmp_path / "u.loom", "r") as f, h5py.File(tmp_path / "again.loom", "r") as g:
        spread, raw = f["layers/uncertainty"][()].T, f["layers/raw"][()].T
        np.testing.assert_array_equal(spread, g["layers/uncertainty"][()].T)  # seeded
    data = read_loom(PBMC68K)
    targets = np.isin(data.genes, pbmc68k_model.target_genes)
    filled = (raw == 0) & targets[None, :]
    assert (spread[~filled] == 0).all() and (spread[filled] > 0).mean() > 0.99
    # the spread of many samples of one cell's prediction matches the layer's order of magnitude
    many = prediction_spread(raw[:5], data.genes, pbmc68k_model, samples=200, rng=np.random.default_rng(0))
    column = {g: i for i, g in enumerate(data.genes)}
    layer = spread[:5][:, [column[g] for g in pbmc68k_model.target_genes]]
    zero = raw[:5][:, [column[g] for g in pbmc68k_model.target_genes]] == 0
    assert 0.5 < np.median(layer[zero] / many[zero]) < 2


def test_the_expected_fill_is_the_poisson_mean_whose_positive_values_average_the_prediction():
    from deepimpute_tool.imputation import expected_from_detected

    detected = np.array([0.2, 1.0, 1.3, 2.0, 5.0, 40.0], np.float32)
    mu = expected_from_detected(detected).astype(np.float64)
    assert mu[0] == mu[1] == 0 and np.all(np.diff(mu[1:]) > 0) and np.all(mu[:-1] < detected[:-1])
    np.testing.assert_allclose(mu[2:] / -np.expm1(-mu[2:]), detected[2:], rtol=1e-5)
    np.testing.assert_allclose(mu[-1], 40.0, rtol=1e-6)  # a gene always detected keeps its value


def test_the_expected_fill_keeps_observed_counts_and_lowers_every_fill(pbmc68k, pbmc68k_model):
    counts = dense(pbmc68k.counts)
    detected = impute_counts(counts, pbmc68k.genes, pbmc68k_model)
    expected = impute_counts(counts, pbmc68k.genes, pbmc68k_model, fill="expected")
    np.testing.assert_array_equal(expected[counts > 0], counts[counts > 0])
    filled = (counts == 0) & (detected > 0)
    assert np.all(expected[filled] <= detected[filled]) and (expected[filled] < detected[filled]).mean() > 0.9
