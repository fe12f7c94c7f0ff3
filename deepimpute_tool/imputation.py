"""Imputation: a block of cells' counts, a trained model, and which values to keep (pure numpy)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from deepimpute_tool.denoising import denoised_counts, model_totals
from deepimpute_tool.errors import InputError, ModelError
from deepimpute_tool.intervals import Calibration, calibrate
from deepimpute_tool.loom import (
    DETECTED_FILL_LAYER,
    DETECTION_LAYER,
    INTERVAL_HIGH_LAYER,
    INTERVAL_LOW_LAYER,
    UNCERTAINTY_LAYER,
)
from deepimpute_tool.model import Dropout, Model, Prediction
from deepimpute_tool.options import option, parameters, shared_option

POLICIES = ("auto", "restore", "max", "all")
FILLS = ("auto", "denoised", "expected_log", "expected", "detected", "confident")


@parameters
class ImputeParameters:
    """Every option of imputation."""

    policy: str = option(
        "auto",
        choices=POLICIES,
        choice_labels=(
            "auto: all for the fill denoised, else restore",
            "restore: fill only zeros, keep observed counts exactly",
            "max: the larger of observed and imputed",
            "all: the model's value everywhere (a denoised matrix)",
        ),
        label="What to write for the imputed genes",
        help="auto: all with ⟨fill⟩ denoised (which weighs each observed count itself), restore "
        "with the others. restore: fill only zeros, keep observed counts exactly; max: the larger "
        "of observed and imputed; all: the model's value everywhere, observed counts included (a "
        "denoised matrix in Open Problems' sense; the counts stay in the layer 'raw').",
    )
    fill: str = option(
        "auto",
        choices=FILLS,
        choice_labels=(
            "auto: denoised for a model that has it, else expected_log or detected",
            "denoised: observed count and model together, on the normalised log scale (clustering, PCA)",
            "expected_log: the count whose log1p is the expected log1p count",
            "expected: the mean count: detection probability x detected count",
            "detected: the count the gene has when detected (the paper)",
            "confident: the detected count where detection is likelier than not, else 0",
        ),
        label="Value the model gives an entry",
        help="auto: denoised for a model trained with ⟨detection⟩ by version 0.2 or later, "
        "expected_log for an older one with a detection head, detected for one without (as such "
        "models always imputed). denoised: for every entry, observed or not, the count whose "
        "normalised log value (log1p of the count per 10,000 of the cell's total) is the expected "
        "normalised log value of a new measurement of the cell, the model's expected count and "
        "the observed count weighed together by each gene's negative-binomial dispersion: on "
        "molecular cross-validation better than no imputation on 5 of the 6 benchmark datasets "
        "and the best Open Problems score of all methods tried on 5, k-means ARI kept. expected_log: expm1(p x log1p(detected)), with p the "
        "probability of detection. expected: the mean count, p x detected (for a model without "
        "⟨detection⟩, the mean of the Poisson whose detected values average the prediction). "
        "detected: the count the gene has when it is detected (the paper; the most accurate at "
        "masked entries, but it fills a gene that is off as if it were on). confident: the "
        "detected count where p >= 0.5, else 0.",
    )
    detected_layer: bool = option(
        True,
        label="Also write the paper's imputation as a layer",
        help="When the main matrix is not the paper's imputation (observed counts kept, zeros "
        "filled with the detected count), also write that as the layer 'detected_fill': the most "
        "accurate values at masked entries, for analyses of single genes' levels.",
    )
    detection_layer: bool = option(
        False,
        label="Write the probability of detection as a layer",
        help="Write the layer 'detection_probability': for the genes the model imputes, the "
        "probability it gives each entry of being detected (like DCA's dropout probability); "
        "for the other genes, 1 where a count was observed and 0 where not. Needs a model "
        "trained with ⟨detection⟩.",
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
        help="Also write, for every zero, the standard deviation of this many predictions of the "
        "detected count (the value of the layer 'detected_fill' there) with hidden units dropped as "
        "in training (Monte Carlo dropout), as the layer 'uncertainty'. "
        "0: none. Costs this many times the prediction.",
    )
    interval: float = option(
        0.0,
        minimum=0,
        maximum=1,
        max_open=True,
        label="Coverage of calibrated intervals",
        help="Also write, for every zero of the imputed genes, an interval that holds the true count "
        "with this probability (e.g. 0.8) around the value written there, as the layers "
        "'interval_low' and 'interval_high' (counts), and its half-width on the log1p scale as "
        "the layer 'uncertainty'. An observed count is its own interval (half-width 0), whatever "
        "⟨policy⟩ writes there. Calibrated (split-conformal) on the counts training hid from "
        "the model (trained with ⟨calibration⟩), for the ⟨fill⟩ written. 0: none.",
    )
    seed: int = shared_option("seed")
    layer: str | None = shared_option("layer")


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


def fill_values(
    prediction: Prediction,
    *,
    fill: str,
    observed: np.ndarray | None = None,
    totals: np.ndarray | None = None,
    dispersion: np.ndarray | None = None,
) -> np.ndarray:
    """The value ``fill`` gives each entry of the target genes, from what the model predicted;
    ``denoised`` also needs the observed counts, each cell's total count (cells x 1) and the
    model's dispersion (per target gene, or per entry)."""
    probability = prediction.probability
    if fill == "denoised":
        return denoised_counts(observed, prediction.detected * probability, dispersion, totals)
    if fill == "detected":
        return prediction.detected
    if fill == "expected" and probability is None:
        return expected_from_detected(prediction.detected)
    if probability is None:
        raise InputError(None, f"the model has no detection head: train with ⟨detection⟩ for ⟨fill⟩ {fill}")
    if fill == "expected":
        return prediction.detected * probability
    if fill == "expected_log":
        return prediction.counts(prediction.log_detected * probability)
    if fill == "confident":
        return np.where(probability >= 0.5, prediction.detected, np.float32(0))
    raise ValueError(f"unknown fill {fill!r}; choose one of {', '.join(FILLS)}")


def for_model(params: ImputeParameters, model: Model) -> ImputeParameters:
    """``params`` with the fill and the policy ``auto`` made concrete for ``model``; raises
    :class:`InputError` (about no file: the caller names the model) for what needs a detection
    head or a dispersion the model lacks."""
    detection = model.has_detection
    if params.fill != "auto":
        fill = params.fill
    else:
        fill = "denoised" if model.dispersion is not None else "expected_log" if detection else "detected"
    if not detection and (fill in ("denoised", "expected_log", "confident") or params.detection_layer):
        asked = "⟨detection_layer⟩" if params.detection_layer else f"⟨fill⟩ {fill}"
        raise InputError(None, f"has no detection head (trained without ⟨detection⟩), which {asked} needs")
    if fill == "denoised" and model.dispersion is None:
        raise InputError(
            None,
            "has no dispersion, which ⟨fill⟩ denoised needs: it was trained before version 0.2; train it again",
        )
    if params.interval and model.calibration is None:
        raise InputError(None, "has no calibration for ⟨interval⟩: train it with ⟨calibration⟩")
    if params.interval and params.uncertainty:
        raise InputError(None, "⟨interval⟩ and ⟨uncertainty⟩ both write the layer 'uncertainty': give one")
    policy = params.policy if params.policy != "auto" else ("all" if fill == "denoised" else "restore")
    paper = fill == "detected" and policy == "restore"
    return dataclasses.replace(
        params, fill=fill, policy=policy, detected_layer=params.detected_layer and not paper
    )


def calibrate_intervals(model: Model, params: ImputeParameters) -> Calibration:
    """The :class:`~deepimpute_tool.intervals.Calibration` of ``params.interval`` for ``params.fill``
    (made concrete by :func:`for_model`), from the model's calibration set."""
    found = model.calibration
    prediction = Prediction(found.log_detected[:, None], _column(found.factor), _column(found.probability))
    values = fill_values(
        prediction,
        fill=params.fill,
        observed=np.zeros((found.size, 1), np.float32),  # each entry was hidden: a zero to the model
        totals=_column(found.totals),
        dispersion=_column(found.shape),
    )[:, 0]
    if not np.isfinite(values).all():  # finite numbers whose fill overflows: only a forged model's
        raise ModelError(None, "its calibration entries give values that are not numbers: damaged or forged")
    return calibrate(values, found.truth, found.log_detected, level=params.interval, seed=params.seed)


def _column(values: np.ndarray | None) -> np.ndarray | None:
    return None if values is None else values[:, None]


@dataclass(frozen=True)
class ImputedBlock:
    """A block of cells imputed (cells x genes): the counts; the paper's imputation when asked
    for; and the probability of detection when asked for (at the genes the model imputes;
    elsewhere 1 where a count was observed, 0 where not); with intervals, their bounds (an
    observed count is its own interval) and half-widths (0 there)."""

    counts: np.ndarray
    detected_fill: np.ndarray | None = None
    detection: np.ndarray | None = None
    interval_low: np.ndarray | None = None
    interval_high: np.ndarray | None = None
    uncertainty: np.ndarray | None = None

    def layers(self) -> dict[str, np.ndarray]:
        """The matrices besides the counts that this block has, by the name of their layer."""
        named = {
            DETECTED_FILL_LAYER: self.detected_fill,
            DETECTION_LAYER: self.detection,
            INTERVAL_LOW_LAYER: self.interval_low,
            INTERVAL_HIGH_LAYER: self.interval_high,
            UNCERTAINTY_LAYER: self.uncertainty,
        }
        return {name: values for name, values in named.items() if values is not None}


def impute_block(
    counts: np.ndarray,
    genes: np.ndarray,
    model: Model,
    *,
    params: ImputeParameters,
    calibration: Calibration | None = None,
) -> ImputedBlock:
    """Impute a cells x genes count matrix as ``params`` (made concrete by :func:`for_model`) say;
    genes the model does not impute are unchanged. With ``calibration`` (of
    :func:`calibrate_intervals`), the intervals too.

    Raises :class:`InputError` (about no file: the caller names it) when a prediction is not
    finite, which only counts far beyond anything the model was trained on can cause, and
    :class:`ModelError` (about no file: the caller names the model) when the detection head's is not.
    """
    position = {name: i for i, name in enumerate(genes)}
    target_columns = np.array([position[g] for g in model.target_genes])
    observed = counts[:, target_columns]
    prediction = model.predict(counts, genes, detection=params.detection_layer or params.fill != "detected")
    if not np.isfinite(prediction.detected).all():
        raise InputError(
            None,
            f"imputation overflows: counts of up to {counts.max():g} are far beyond the model's training data",
        )
    if prediction.probability is not None and not np.isfinite(prediction.probability).all():
        raise ModelError(None, "its detection head gives values that are not numbers: damaged or forged")

    def with_values(values: np.ndarray, policy: str) -> np.ndarray:
        imputed = counts.copy()
        imputed[:, target_columns] = apply_policy(observed, values, policy=policy)
        return imputed

    values = fill_values(
        prediction,
        fill=params.fill,
        observed=observed,
        totals=model_totals(counts, np.array([position[g] for g in model.genes]))
        if params.fill == "denoised"
        else None,  # the other fills need no depth: no copy of the block for them
        dispersion=model.dispersion,
    )
    if not np.isfinite(values).all():  # only a forged model's numbers get here
        raise ModelError(None, "gives values that are not numbers: damaged or forged")
    block = ImputedBlock(with_values(values, params.policy))
    if calibration is not None:
        low, high, half = calibration.bounds(values, prediction.log_detected)
        if not (np.isfinite(low).all() and np.isfinite(high).all() and np.isfinite(half).all()):
            raise ModelError(None, "its calibration gives intervals that are not numbers: damaged or forged")
        # calibrated on counts hidden as zeros: an observed count is its own interval, whatever is written
        kept = observed > 0
        bounds = []
        for bound in (low, high):
            layer = counts.copy()  # an observed count kept is its own interval, exactly
            layer[:, target_columns] = np.where(kept, observed, bound)
            bounds.append(layer)
        half[kept] = 0
        uncertainty = np.zeros(counts.shape, np.float32)
        uncertainty[:, target_columns] = half
        block = dataclasses.replace(
            block, interval_low=bounds[0], interval_high=bounds[1], uncertainty=uncertainty
        )
    if params.detected_layer:
        block = dataclasses.replace(block, detected_fill=with_values(prediction.detected, "restore"))
    if params.detection_layer:
        layer = (counts > 0).astype(np.float32)
        layer[:, target_columns] = prediction.probability
        block = dataclasses.replace(block, detection=layer)
    return block


def impute_counts(
    counts: np.ndarray, genes: np.ndarray, model: Model, *, policy: str = "auto", fill: str = "detected"
) -> np.ndarray:
    """Imputed copy of a cells x genes count matrix: :func:`impute_block`'s counts, nothing else."""
    params = for_model(ImputeParameters(policy=policy, fill=fill, detected_layer=False), model)
    return impute_block(counts, genes, model, params=params).counts


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
