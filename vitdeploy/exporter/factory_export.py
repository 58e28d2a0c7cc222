"""`vitdeploy export pkg.module:function` (or ``path/model.py:function``): a user's factory -> a bundle.

The factory's module takes images (B, 3, H, W) and returns the declared head's outputs (README,
"Bring your own model"): a dict keyed by the head's output names, or a tuple/list in the head's
output order (a bare tensor for a one-output head). The outputs are checked against the head
(``Head.check_outputs``: expected and got, in one line) before anything is written; export,
parity, lint and manifest are then the zoo's (``export_prepared``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from vitdeploy.bundle.head import HeadSpec
from vitdeploy.bundle.manifest import CAMERA_AXIS, ModelSource, SourceKind
from vitdeploy.errors import ExportError
from vitdeploy.exporter.declared_head import declare_head, observed_head
from vitdeploy.exporter.export import ExportOptions, ExportResult, Prepared, export_prepared, validate_export
from vitdeploy.exporter.perception_graphs import image_graph_spec
from vitdeploy.heads import Head
from vitdeploy.models.checkpoint import load_checkpoint, state_sha256
from vitdeploy.models.factory import Factory
from vitdeploy.models.recipe import check_classes


def named_outputs(out: object, names: Sequence[str]) -> dict[str, object]:
    """A model's return value -> output name -> value: a dict as it is; a tuple/list (or one tensor)
    named by ``names`` in order, surplus entries ``output<i>`` (so ``check_outputs`` shows them)."""
    if isinstance(out, torch.Tensor):
        out = (out,)
    if isinstance(out, Mapping):
        return {str(k): v for k, v in out.items()}
    if isinstance(out, tuple | list):
        return {(names[i] if i < len(names) else f"output{i}"): v for i, v in enumerate(out)}
    raise ExportError(f"the model returned a {type(out).__name__}; return a dict of tensors keyed "
                      f"{', '.join(names)} or a tuple of them in that order")


class HeadOrderOutputs(nn.Module):
    """The user's module with its outputs as a tuple in the head's order (ONNX export wants positional
    outputs, and the manifest names them)."""

    def __init__(self, model: nn.Module, names: Sequence[str]):
        super().__init__()
        self.model = model
        self.names = tuple(names)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = named_outputs(self.model(images), self.names)
        return tuple(out[name] for name in self.names)


def _observed_shapes(model: nn.Module, head: Head, *, reference: str) -> dict[str, list[int | str]]:
    """Output name -> shape (camera axis named) of ``model`` on 2 images of the head's input size."""
    h, w = head.image_size
    try:
        with torch.no_grad():
            out = named_outputs(model(torch.zeros(2, 3, h, w)), [s.name for s in head.outputs()])
    except ExportError:
        raise
    except Exception as exc:  # the user's forward: any exception is theirs to read
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExportError(f"the model of {reference} fails on images (2, 3, {h}, {w}): {type(exc).__name__}"
                          f"{': ' + first if first else ''}") from exc
    return {name: [CAMERA_AXIS, *v.shape[1:]] if isinstance(v, torch.Tensor) else [type(v).__name__]
            for name, v in out.items()}


def export_factory(reference: str, *, out: str | Path, head: HeadSpec, checkpoint: str | Path | None = None,
                   options: ExportOptions = ExportOptions(),
                   progress: Callable[[str], None] | None = None) -> ExportResult:
    """Call the factory ``reference`` and export its module, whose outputs follow ``head`` (kind, score
    activation, box format; the config is read from the outputs), into ``out``. ``options.image_size``
    is required; ``options.classes`` names the classes (default ``class_<i>``); ``checkpoint`` is loaded
    into the module when given. Nothing is written unless the outputs fit the head and parity holds."""
    say = progress or (lambda _msg: None)
    if options.image_size is None:
        raise ExportError(f"{reference} is a factory: give --image-size HxW, the input its model takes")
    for given, option in ((options.backbone, "--backbone"), (options.tasks, "--tasks"),
                          (options.task_classes, "--task-classes")):
        if given is not None:
            raise ExportError(f"{option} applies to zoo models; the factory {reference} builds its own model")
    image_size = (int(options.image_size[0]), int(options.image_size[1]))
    classes = check_classes(options.classes) if options.classes is not None else None
    declared = declare_head(head, classes=classes, image_size=image_size)  # an unknown kind fails here
    factory = Factory.parse(reference)
    say(f"calling {reference}")
    offered = {"image_size": image_size, **({"classes": classes, "num_classes": len(classes)} if classes else {})}
    model = factory.call(**offered)
    if checkpoint is not None:
        say(f"loading {checkpoint}")
        load_checkpoint(model, checkpoint)
    model.eval()
    final = observed_head(declared, _observed_shapes(model, declared, reference=reference))
    validate_export(reference, None, final, image_size, options.cameras_for(final), image_size)
    names = [s.name for s in final.outputs()]
    wrapper = HeadOrderOutputs(model, names).eval()
    prepared = Prepared(
        name=reference, model=model, head=final, class_names=final.class_names, patch_size=None,
        source=ModelSource(kind=SourceKind.FACTORY, reference=reference, sha256=factory.sha256(),
                           weights_sha256=state_sha256(model)),
        checkpoint=str(checkpoint) if checkpoint else None,
        graphs=lambda spec, cameras: [image_graph_spec(wrapper, output_names=tuple(names), head=final,
                                                       image_size=image_size, max_cameras=cameras,
                                                       preprocessing=spec)])
    return export_prepared(prepared, out=out, options=options, say=say)
