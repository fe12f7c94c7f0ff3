"""The executables, one module each, from input files to output files.

``filter``, ``mask``, ``train``, ``impute``, ``score``, ``split``, ``merge`` and ``run`` map one
to one onto ``modules/local/deepimpute/<step>/`` (the Nextflow modules; ``run`` is the
pipeline) and ``galaxy/deepimpute_<step>.xml``. Each checks its outputs, reads, calls the pure
modules, and writes; :mod:`deepimpute_tool.steps.common` holds what they share.
"""
