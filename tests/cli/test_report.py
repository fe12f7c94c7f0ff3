"""``deepimpute report``: a sample's results as MultiQC custom content, and what it refuses."""

from __future__ import annotations

import json

import pytest

from tests.helpers import PBMC_SMALL, TINY_TRAINING, run


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """pbmc_small masked, trained on, imputed and scored, with the figures of each step."""
    work = tmp_path_factory.mktemp("scored")
    run("deepimpute-mask", PBMC_SMALL, work / "masked.loom", "--cells-per-gene", 3)
    run(
        "deepimpute-train",
        work / "masked.loom",
        work / "model",
        "--loss-plot",
        work / "s.loss.png",
        *TINY_TRAINING,
    )
    run("deepimpute-impute", work / "masked.loom", work / "model", work / "imputed.loom")
    run(
        "deepimpute-score",
        work / "imputed.loom",
        "--output",
        work / "s.scores.json",
        "--plots",
        work / "plots",
    )
    return work


def _report(scored, out, *extra, check=True):
    return run(
        "deepimpute-report",
        "s",
        out,
        "--counts",
        PBMC_SMALL,
        "--model",
        scored / "model",
        *extra,
        check=check,
    )


def test_report_holds_what_the_steps_measured(scored, tmp_path):
    out = tmp_path / "s.multiqc"
    _report(scored, out, "--scores", scored / "s.scores.json", "--figure", scored / "s.loss.png",
            "--figure", scored / "plots")  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [
        "s.deepimpute_figure_imputed_vs_true_mqc.json",
        "s.deepimpute_figure_loss_mqc.json",
        "s.deepimpute_figure_mse_distributions_mqc.json",
        "s.deepimpute_loss_mqc.json",
        "s.deepimpute_scores_mqc.json",
        "s.deepimpute_stats_mqc.json",
    ]
    model = json.loads((scored / "model" / "model.json").read_text())["training"]
    scores = json.loads((scored / "s.scores.json").read_text())
    stats = json.loads((out / "s.deepimpute_stats_mqc.json").read_text())
    assert stats["plot_type"] == "generalstats"
    assert stats["data"]["s"] == {"cells": 80, "genes": 230, "imputed_genes": model["target_genes"],
                                  "epochs": model["epochs"], "pearson": scores["pearson"]}  # fmt: skip
    loss = json.loads((out / "s.deepimpute_loss_mqc.json").read_text())["data"]
    assert list(loss["s (training)"].values()) == pytest.approx(model["train_loss"])
    assert list(loss["s (validation)"]) == [str(e) for e in range(1, model["epochs"] + 1)]
    table = json.loads((out / "s.deepimpute_scores_mqc.json").read_text())
    assert table["data"]["s"]["mse_count_ge2"] == scores["mse_count_ge2"]
    assert set(table["headers"]) == set(table["data"]["s"])


def test_without_scores_there_is_no_scores_section(scored, tmp_path):
    _report(scored, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "s.deepimpute_loss_mqc.json",
        "s.deepimpute_stats_mqc.json",
    ]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: (d / "x.png").write_text("not a picture"), "is not a PNG image"),
        (lambda d: (d / "x.png").symlink_to("/etc/hostname"), "is not a regular file"),
    ],
    ids=["not-png", "link-out-of-folder"],
)
def test_a_figure_folder_is_checked_file_by_file(scored, tmp_path, make, message):
    folder = tmp_path / "figures"
    folder.mkdir()
    make(folder)
    result = _report(scored, tmp_path / "out", "--figure", folder, check=False)
    assert result.returncode == 2 and result.stderr.strip() == f"Error: {folder / 'x.png'}: {message}"
    assert not (tmp_path / "out").exists()


def test_bad_names_and_scores_are_one_line(scored, tmp_path):
    bad = run("deepimpute-report", "../s", tmp_path / "o", "--counts", PBMC_SMALL, "--model", scored / "model",
              check=False)  # fmt: skip
    assert bad.returncode == 2 and "the sample name '../s' is refused" in bad.stderr
    (tmp_path / "scores.json").write_text("[1, 2]")
    result = _report(scored, tmp_path / "o", "--scores", tmp_path / "scores.json", check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"Error: {tmp_path / 'scores.json'}: is not a scores file written by 'deepimpute score'"
    )
    assert not (tmp_path / "o").exists()


def test_a_scores_file_that_is_not_one_is_one_line_or_left_out(scored, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000)
    result = _report(scored, tmp_path / "o", "--scores", deep, check=False)
    assert (
        result.returncode == 2
        and result.stderr.strip() == f"Error: {deep}: nests JSON deeper than a scores file does"
    )
    huge = tmp_path / "huge.json"
    huge.write_text('{"pearson": 1' + "0" * 400 + ', "mse": 0.5}')
    _report(scored, tmp_path / "o", "--scores", huge)
    table = json.loads((tmp_path / "o" / "s.deepimpute_scores_mqc.json").read_text())
    assert table["data"]["s"] == {"mse": 0.5}  # a number no float holds is left out
