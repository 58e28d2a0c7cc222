"""A fault the calibration tests inject into a quantized graph (a module of its own: a test that
imported it from a conftest got whichever conftest Python found first)."""

from __future__ import annotations

from pathlib import Path


def coarsen_activations(path: Path, nodes: set[str], factor: float = 1000.0) -> None:
    """Make the activation quantization of ``nodes`` in the Q/DQ ONNX at ``path`` ``factor`` times
    coarser: a layer that quantizes badly, as an outlier-heavy layer of a real model does."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.name in nodes:
            scale = inits[producer[node.input[0]].input[1]]
            scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * factor, scale.name))
    onnx.save(model, str(path))
