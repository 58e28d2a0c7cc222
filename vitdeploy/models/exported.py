"""The PyTorch model behind a bundle: what the torch backend runs and eval and bench compare with.

``vitdeploy run --backend torch``, ``bench`` and ``eval`` all build it here, so a Python caller of
``run_rig``, ``bench_bundle`` or ``evaluate_bundle`` gets the same model as the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vitdeploy.bundle.manifest import Manifest
from vitdeploy.extras import Extra, require

if TYPE_CHECKING:  # torch only where the model is built: the car side asks random_weights_warning without it
    from torch import nn


def random_weights_warning(manifest: Manifest) -> str | None:
    """What to tell a user about the bundle's PyTorch model, or None: a bundle exported with random
    weights gets a model with other random weights, whose results will not match the graph."""
    if manifest.checkpoint is None:
        return ("the bundle was exported with random weights; the torch model gets fresh random ones, so its "
                "results will not match the ONNX graph")
    return None


def exported_model(manifest: Manifest) -> nn.Module:
    """Zoo model ``manifest.model`` with the weights the export used (``manifest.checkpoint``: a path,
    ``shipped:<file>``, or None for random weights) and its position embedding set for the
    manifest's input size, in eval mode."""
    require(Extra.EXPORT, needed_by="the PyTorch model of a bundle (torch backend, reference)")
    from vitdeploy.models.checkpoint import load_checkpoint, load_shipped_weights
    from vitdeploy.models.zoo import get_card

    model = get_card(manifest.model).build()
    checkpoint = manifest.checkpoint
    if checkpoint is not None and checkpoint.startswith("shipped:"):
        load_shipped_weights(model, checkpoint.split(":", 1)[1])
    elif checkpoint is not None:
        load_checkpoint(model, checkpoint)
    model.encoder.set_grid(model.encoder.grid_for(*manifest.image_size))
    return model.eval()
