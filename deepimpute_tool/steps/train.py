"""``deepimpute train``: read the training cells of any supported input, fit, write the model."""

from __future__ import annotations

from pathlib import Path

from deepimpute_tool.dataset import check_unique, require_cells_and_genes
from deepimpute_tool.formats import open_input
from deepimpute_tool.limits import memory_guard
from deepimpute_tool.outputs import Output, check_outputs
from deepimpute_tool.progress import Progress
from deepimpute_tool.steps.common import about, model_output, write_model
from deepimpute_tool.training import TrainingParameters, choose_training_cells, train


def train_file(
    in_path, model_path, *, params: TrainingParameters, progress: Progress, loss_plot=None
) -> None:
    """Train on a Loom (or any supported input) and write the model directory or zip, and with
    ``loss_plot`` a PNG of the loss curves.

    Only the cells training uses are read from a Loom: :func:`choose_training_cells` draws
    them from the input's size, for every format alike.
    """
    output = model_output(model_path)
    check_outputs([output, *([Output(Path(loss_plot))] if loss_plot else [])], inputs=[in_path])
    hint = "; try ⟨cell_fraction⟩, ⟨max_cells⟩ or ⟨max_genes⟩"
    with about(in_path, memory_hint=hint):
        with memory_guard(), open_input(in_path, layer=params.layer) as source:
            require_cells_and_genes(source, in_path)
            check_unique(source.genes, path=in_path, what="gene names")
            cells = choose_training_cells(n_cells=source.n_cells, n_genes=source.n_genes, params=params)
            dataset = source.read_dataset(layers=False, cells=cells.chosen)
        progress.message(f"training on {dataset.n_genes} genes x {cells.n_cells} cells from {in_path}")

        def on_epoch(epoch: int, values: dict) -> None:
            progress.advance(
                "epoch",
                epoch,
                params.max_epochs,
                f"loss {values['train_loss']:.4g}  validation {values['validation_loss']:.4g}  "
                f"sub-networks still improving {values['active']}",
                total_is_bound=True,
            )

        progress.start()
        model = train(
            dataset.counts, dataset.genes, params=params, cells=cells, log=progress.message, on_epoch=on_epoch
        )
    write_model(model, model_path, inputs=(in_path,))
    progress.message(f"model written to {model_path}")
    if loss_plot:
        from deepimpute_tool.plots import draw_figure, loss_figure

        draw_figure(loss_figure(model.training), loss_plot)
        progress.message(f"loss curves drawn in {loss_plot}")
