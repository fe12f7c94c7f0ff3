"""DeepImpute (Arisdakessian et al., Genome Biology 2019) as steps over Loom files."""

__version__ = "0.1.0"
