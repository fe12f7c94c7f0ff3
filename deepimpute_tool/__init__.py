"""DeepImpute (Arisdakessian et al., Genome Biology 2019) as steps over Loom and AnnData files,
and as functions over AnnData objects.

For scanpy users::

    import deepimpute_tool as di

    di.pp.impute(adata)                      # counts in adata.layers["counts"]
    adata.layers["deepimpute"]               # the imputed counts

    model = di.train(adata)                  # or train once, impute many
    model.save("model.zip")
    di.load_model("model.zip").impute(other)
    di.pl.loss_curves(model).savefig("loss.png")

The names below are imported when first used, so that the command line starts quickly.
"""

__version__ = "0.1.0"
__all__ = ["Model", "datasets", "load_model", "pl", "pp", "train"]


def __getattr__(name: str):
    import importlib

    if name in ("pp", "pl", "datasets"):
        return importlib.import_module(f"deepimpute_tool.{name}")
    if name == "Model":
        return importlib.import_module("deepimpute_tool.model").Model
    if name == "load_model":
        return importlib.import_module("deepimpute_tool.model_loading").load_model
    if name == "train":
        return importlib.import_module("deepimpute_tool.pp").train
    raise AttributeError(f"module 'deepimpute_tool' has no attribute {name!r}")
