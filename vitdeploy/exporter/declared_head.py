"""The head of a model vitdeploy did not make (a user's factory, an imported ONNX): declared by the
user (kind, score activation, box format, classes), completed and checked from the outputs seen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vitdeploy.bundle.head import HeadSpec
from vitdeploy.errors import ExportError
from vitdeploy.heads import Head, make_head


def declare_head(spec: HeadSpec, *, classes: Sequence[str] | None, image_size: tuple[int, int]) -> Head:
    """The declared head before its outputs are seen; ``classes`` fix its class count. A prompted
    head (SAM) is refused: such a model takes prompts beside the image."""
    config = {**spec.config, **({"num_classes": len(classes)} if classes else {})}
    head = make_head(HeadSpec(spec.kind, scores=spec.scores, boxes=spec.boxes, config=config),
                     class_names=classes or (), image_size=image_size)
    if head.prompted:
        raise ExportError(f"{spec.kind} heads take prompts beside the image; vitdeploy takes a user's model "
                          "whose only input is the images")
    return head


def observed_head(declared: Head, shapes: Mapping[str, Sequence[int | str]]) -> Head:
    """``declared`` completed from the outputs' ``shapes`` (name -> shape, camera axis first) and
    checked against them (one line, expected and got); without class names it gets ``class_<i>``."""
    head = declared.completed(shapes)
    head.check_outputs(shapes)
    if not head.class_names and "num_classes" in head.config:
        head = make_head(head.spec, class_names=[f"class_{i}" for i in range(head.num_classes)],
                         image_size=head.image_size)
    return head
