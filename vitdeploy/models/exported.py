"""The PyTorch model behind a bundle: what the torch backend runs and eval and bench compare with.

``vitdeploy run --backend torch``, ``bench`` and ``eval`` all build it here, so a Python caller of
``run_rig``, ``bench_bundle`` or ``evaluate_bundle`` gets the same model as the CLI. A zoo bundle
is rebuilt from its recipe (card, classes, backbone record) and checkpoint; a factory's is made by
calling the factory again, and is refused unless its weights are the ones exported; an imported
ONNX has no PyTorch model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vitdeploy.bundle.manifest import NO_TORCH_REFERENCE, Manifest, SourceKind
from vitdeploy.errors import BundleError
from vitdeploy.extras import Extra, require

if TYPE_CHECKING:  # torch only where the model is built: the car side asks random_weights_warning without it
    from torch import nn


def random_weights_warning(manifest: Manifest) -> str | None:
    """What to tell a user about the bundle's PyTorch model, or None: a zoo bundle exported with random
    weights gets a model with other random weights, whose results will not match the graph."""
    if manifest.source.kind is SourceKind.ZOO and manifest.checkpoint is None:
        what = "a random head (no fine-tuned checkpoint)" if manifest.source.backbone else "random weights"
        return (f"the bundle was exported with {what}; the torch model gets fresh random ones, so its "
                "results will not match the ONNX graph")
    return None


def torch_model_problem(manifest: Manifest) -> str | None:
    """Why no PyTorch model can stand for the bundle's graph (eval skips its torch rows), or None."""
    if manifest.source.kind is SourceKind.ONNX:
        return f"the bundle was imported from {manifest.source.reference} ({NO_TORCH_REFERENCE})"
    if manifest.source.kind is SourceKind.ZOO and manifest.checkpoint is None:
        return ("the bundle was exported with random weights, which the PyTorch model cannot rebuild; export with "
                "--checkpoint to compare against PyTorch")
    return None


def exported_model(manifest: Manifest) -> nn.Module:
    """The bundle's PyTorch model in eval mode: a zoo model with the weights the export used
    (``manifest.checkpoint``: a path, ``shipped:<file>``, or None for random weights) and its
    position embedding set for the manifest's input size, or the factory's model."""
    kind = manifest.source.kind
    if kind is SourceKind.ONNX:
        raise BundleError(f"bundle of {manifest.model} was imported from ONNX ({NO_TORCH_REFERENCE}); use the "
                          "onnxruntime or tensorrt backend")
    require(Extra.EXPORT, needed_by="the PyTorch model of a bundle (torch backend, reference)")
    if kind is SourceKind.FACTORY:
        return _factory_model(manifest)
    from vitdeploy.models.checkpoint import load_checkpoint, load_shipped_weights
    from vitdeploy.models.recipe import manifest_recipe

    model = manifest_recipe(manifest).build()
    checkpoint = manifest.checkpoint
    if checkpoint is not None and checkpoint.startswith("shipped:"):
        load_shipped_weights(model, checkpoint.split(":", 1)[1])
    elif checkpoint is not None:
        load_checkpoint(model, checkpoint)
    model.encoder.set_grid(model.encoder.grid_for(*manifest.image_size))
    return model.eval()


def _factory_model(manifest: Manifest) -> nn.Module:
    from vitdeploy.models.checkpoint import load_checkpoint, state_sha256
    from vitdeploy.models.factory import Factory

    source = manifest.source
    factory = Factory.parse(source.reference)
    model = factory.call(classes=tuple(manifest.class_names), num_classes=len(manifest.class_names),
                         image_size=tuple(manifest.image_size))
    if manifest.checkpoint is not None:
        load_checkpoint(model, manifest.checkpoint)
    if source.weights_sha256 and state_sha256(model) != source.weights_sha256:
        raise BundleError(f"the factory {source.reference} now returns other weights than the exported ones, so its "
                          "model is not the bundle's; make it load its trained weights (or export with --checkpoint)")
    return model.eval()
