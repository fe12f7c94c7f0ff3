"""Imputation: a block of cells' counts, a trained model, and which values to keep (pure numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepimpute_tool.errors import InputError
from deepimpute_tool.model import Dropout, Model
from deepimpute_tool.options import option, parameters, shared_option

POLICIES = ("restore", "max", "all")
FILLS = ("detected", "expected")


@parameters
class ImputeParameters:
    """Every option of imputation."""

    policy: str = option(
        "restore",
        choices=POLICIES,
        choice_labels=(
            "restore: fill only zeros, keep observed counts exactly",
            "max: the larger of observed and predicted",
            "all: the prediction everywhere",
        ),
        label="What to write for the imputed genes",
        help="restore: fill only zeros, keep observed counts exactly; max: the larger of observed "
        "and predicted; all: the prediction everywhere.",
    )
    fill: str = option(
        "detected",
        choices=FILLS,
        choice_labels=(
            "detected: the count the gene has when detected (the paper)",
            "expected: the mean count, zeros included, under a Poisson model",
        ),
        label="Value of a filled zero",
        help="detected: the network's prediction, the gene's count when it is detected (the paper; "
        "its loss weighs only detected values); expected: the mean of the Poisson whose detected "
        "values average that prediction, lower where detection is rare (better for clustering and "
        "molecular cross-validation on the benchmarks, worse at the masked entries).",
    )
    chunk_cells: int | None = option(
        None,
        minimum=1,
        galaxy=False,
        label="Cells per block",
        help="Cells read, imputed and written at a time. Changes no value beyond float32 rounding.",
        default_text="about 64 MiB of counts",
    )
    uncertainty: int = option(
        0,
        minimum=0,
        label="Dropout samples for uncertainty",
        help="Also write, for every zero the model fills, the standard deviation of this many predictions "
        "with hidden units dropped as in training (Monte Carlo dropout), as the layer 'uncertainty'. "
        "0: none. Costs this many times the prediction.",
    )
    seed: int = shared_option("seed")


@dataclass(frozen=True)
class ImputeSummary:
    cells: int
    genes: int
    imputed_genes: int
    zeros_filled: int
    observed_changed: int  # 0 with the policy restore


def apply_policy(observed: np.ndarray, predicted: np.ndarray, *, policy: str = "restore") -> np.ndarray:
    """Combine observed counts and predictions of the same genes and cells.

    ``restore`` fills only the zeros and keeps every observed value exactly; ``max`` keeps
    the larger of the two; ``all`` returns the prediction everywhere. The result has the
    wider of the two types, so observed counts are never rounded.
    """
    if policy == "restore":
        return np.where(observed > 0, observed, predicted)
    if policy == "max":
        return np.maximum(observed, predicted)
    if policy == "all":
        return predicted.astype(np.result_type(observed, predicted))
    raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")


def missing_model_genes(model: Model, genes: np.ndarray) -> str | None:
    """Why ``genes`` cannot be imputed by ``model`` (it lacks some of the model's genes), or None."""
    missing = sorted(set(model.genes.tolist()) - set(np.asarray(genes, dtype=object).tolist()))
    if not missing:
        return None
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    return (
        f"lacks {len(missing)} of the model's {model.genes.size} genes ({shown}); "
        "impute data with the genes the model was trained on"
    )


def expected_from_detected(detected: np.ndarray) -> np.ndarray:
    """The Poisson mean whose positive values average ``detected``: mu with mu / (1 - exp(-mu)) = detected.

    0 where ``detected`` <= 1 (a Poisson's positive values average at least 1); Newton's method
    from below, which converges monotonically on this concave equation, on those entries only
    and until no entry moves by more than float32 could show.
    """
    v = np.asarray(detected, dtype=np.float64)
    mu = np.zeros(v.shape)
    solve = v > 1
    x = v[solve]
    m = np.minimum(2 * (x - 1), x)
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(30):
            step = np.nan_to_num((m - x * -np.expm1(-m)) / (1 - x * np.exp(-m)))
            m = np.maximum(m - step, 0.0)
            if not (np.abs(step) > 1e-9 * np.maximum(m, 1.0)).any():
                break
    mu[solve] = m
    return mu.astype(np.asarray(detected).dtype)


def impute_counts(
    counts: np.ndarray, genes: np.ndarray, model: Model, *, policy: str = "restore", fill: str = "detected"
) -> np.ndarray:
    """Imputed copy of a cells x genes count matrix; genes the model does not impute are unchanged.

    Raises :class:`InputError` (about no file: the caller names it) when a prediction is not
    finite, which only counts far beyond anything the model was trained on can cause.
    """
    position = {name: i for i, name in enumerate(genes)}
    target_columns = np.array([position[g] for g in model.target_genes])
    predicted = model.predict_counts(counts, genes)
    if not np.isfinite(predicted).all():
        raise InputError(
            None,
            f"imputation overflows: counts of up to {counts.max():g} are far beyond the model's training data",
        )
    if fill == "expected":
        predicted = expected_from_detected(predicted)
    imputed = counts.copy()
    imputed[:, target_columns] = apply_policy(counts[:, target_columns], predicted, policy=policy)
    return imputed


def prediction_spread(
    counts: np.ndarray, genes: np.ndarray, model: Model, *, samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Standard deviation over ``samples`` Monte Carlo dropout predictions of the target genes'
    counts (cells x targets, in the order of ``model.target_genes``), by Welford's running sums."""
    dropout = Dropout(rate=float(model.parameters.get("dropout", 0.2)), rng=rng)
    mean = np.zeros((counts.shape[0], model.target_genes.size), np.float64)
    squares = np.zeros_like(mean)
    for n in range(1, samples + 1):
        sample = model.predict_counts(counts, genes, dropout=dropout)
        delta = sample - mean
        mean += delta / n
        squares += delta * (sample - mean)
    return np.sqrt(squares / max(samples - 1, 1)).astype(np.float32)


def uncertainty_layer(
    counts: np.ndarray, genes: np.ndarray, model: Model, *, samples: int, rng: np.random.Generator
) -> np.ndarray:
    """The layer 'uncertainty' of a block of cells (cells x genes, float32): the Monte Carlo dropout
    spread (:func:`prediction_spread`) at every zero of the genes the model imputes, 0 elsewhere.

    ``rng`` goes on from block to block, so blocks of any size draw one stream.
    """
    position = {name: i for i, name in enumerate(genes)}
    columns = np.array([position[g] for g in model.target_genes])
    spread = prediction_spread(counts, genes, model, samples=samples, rng=rng)
    layer = np.zeros(counts.shape, np.float32)
    layer[:, columns] = np.where(counts[:, columns] == 0, spread, 0)
    return layer
