"""Preprocessing in scanpy's form: AnnData in, the imputed counts out as a layer.

``deepimpute_tool.pp.impute`` trains a model on an AnnData's raw counts and imputes them, as
``deepimpute train`` and ``deepimpute impute`` do (without ``deepimpute filter``: filter the
cells and genes first, as with ``scanpy.pp.filter_cells``/``filter_genes``). Every option is a
keyword of the same name as the command line's, without the dashes (``--max-epochs`` is
``max_epochs``), with the same default and the same checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepimpute_tool.api import DEFAULT_KEY, check_destinations, counts_of, split_options
from deepimpute_tool.api import impute as impute_with
from deepimpute_tool.api import train as train_on
from deepimpute_tool.imputation import ImputeParameters
from deepimpute_tool.training import TrainingParameters

if TYPE_CHECKING:
    from anndata import AnnData

    from deepimpute_tool.model import Model


def train(adata: AnnData, *, layer: str | None = "counts", **options: Any) -> Model:
    """Train a DeepImpute model on the raw counts of ``adata``.

    Parameters
    ----------
    adata
        Cells x genes; its gene names (``var_names``) must be unique. Nothing of it is changed.
    layer
        Where the raw counts are: a layer's name, ``None`` for ``X``, ``"raw"`` for ``raw.X``
        (the columns of ``adata.var_names``).
    **options
        Training options (``max_epochs``, ``max_genes``, ``seed``, ``cores``...), as
        ``deepimpute train --help`` lists them; the defaults are the same.

    Returns
    -------
    The model: impute with :meth:`~deepimpute_tool.model.Model.impute`, write with
    :meth:`~deepimpute_tool.model.Model.save`.

    Raises
    ------
    deepimpute_tool.errors.InputError
        The counts are not raw counts (negative, fractional, not finite), or too few to train on.
    deepimpute_tool.errors.ParameterError
        An option outside its range or choices.
    TypeError
        An option that does not exist.
    """
    return train_on(adata, layer=layer, **options)


def impute(
    adata: AnnData,
    *,
    layer: str | None = "counts",
    key_added: str | None = DEFAULT_KEY,
    copy: bool = False,
    return_model: bool = False,
    model: Model | None = None,
    **options: Any,
) -> AnnData | Model | tuple[AnnData, Model] | None:
    """Impute ``adata``'s raw counts with DeepImpute: by default every entry of the imputed genes
    denoised (``fill="denoised"``), the paper's imputation of the zeros beside it.

    Trains a model on the counts (unless ``model`` is given) and imputes every cell, a block of
    cells at a time: a sparse matrix is never made dense whole.

    Parameters
    ----------
    adata
        Cells x genes; its gene names (``var_names``) must be unique.
    layer
        Where the raw counts are: a layer's name, ``None`` for ``X``, ``"raw"`` for ``raw.X``
        (the columns of ``adata.var_names``).
    key_added
        The layer that receives the imputed counts; ``None`` replaces ``X``. The imputed genes'
        entries are all positive, so the layers are dense unless the counts are sparse and the model
        imputes at most half of the genes. Further outputs go to layers named ``{key_added}_<name>`` (with
        ``"deepimpute"`` for ``None``): ``detected_fill`` (the paper's imputation, when the
        imputed counts are not it), ``detection_probability``, ``interval_low``,
        ``interval_high`` and ``uncertainty``, as the options ask.
    copy
        Return a copy of ``adata`` with the results instead of changing ``adata``.
    return_model
        Also return the model trained (to save it, or impute other data with it).
    model
        A model to impute with, trained before (:func:`deepimpute_tool.train`,
        :func:`deepimpute_tool.load_model`); no training then, and training options are refused.
    **options
        Training and imputation options, as ``deepimpute train --help`` and ``deepimpute impute
        --help`` list them (``max_epochs``, ``seed``, ``fill``, ``policy``, ``interval``...).

    Returns
    -------
    With ``copy``, the new AnnData; with ``return_model``, the model (both, as a tuple, with
    both); else None. Besides the layers, ``var["deepimpute_imputed"]`` says which genes the
    model imputes, and ``uns["deepimpute"]`` records the options of training and imputation
    (JSON text) and the loss history (arrays per epoch, and the best epoch of each sub-network).
    Every other slot of ``adata`` stays as it was.

    Raises
    ------
    deepimpute_tool.errors.InputError
        The counts are not raw counts, or lack genes of ``model``.
    deepimpute_tool.errors.ParameterError
        An option outside its range or choices.
    TypeError
        An option that does not exist (or a training option with ``model``).
    """
    if model is None:
        # an option of both (the seed) goes to both
        training, imputing = split_options(options, TrainingParameters, ImputeParameters)
    else:
        (imputing,) = split_options(options, ImputeParameters)
    # where the results go is checked before any work; the counts are read and checked once
    check_destinations(adata, layer=layer, key_added=key_added, extras=[])
    counts = counts_of(adata, layer)
    if model is None:
        model = train_on(adata, layer=layer, counts=counts, **training)
    result = impute_with(model, adata, layer=layer, key_added=key_added, copy=copy, counts=counts, **imputing)
    if copy and return_model:
        return result, model
    if return_model:
        return model
    return result
