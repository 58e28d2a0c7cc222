"""Replay test data: a confident detector with an INT8 variant, and small drives.

The random-weight test detector scores every query low, so FP32 has no confident box and no
agreement could be measured. ``replay_bundle`` multiplies its class logits by ``SHARPEN`` (a Mul
after the graph's ``logits``): the same boxes, now with confident scores. Its INT8 variant is that
graph with every weight rounded to 8-bit steps (``quantize_weights``): close to FP32, not equal.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from vitdeploy.bundle import Bundle

#: Factor on the class logits: confident softmax scores from random weights.
SHARPEN = 40.0
#: Frames per small drive; the bundle's input size is the video size.
FRAMES = 5


def sharpen_logits(model) -> None:
    """Route the graph output ``logits`` through a Mul by ``SHARPEN``."""
    from onnx import helper, numpy_helper

    graph = model.graph
    producer = next(n for n in graph.node if "logits" in n.output)
    producer.output[list(producer.output).index("logits")] = "logits_unsharpened"
    graph.initializer.append(numpy_helper.from_array(np.asarray(SHARPEN, np.float32), "sharpen_factor"))
    graph.node.append(helper.make_node("Mul", ["logits_unsharpened", "sharpen_factor"], ["logits"], name="sharpen"))


def quantize_weights(model, *, bits: int = 8) -> None:
    """Round every weight tensor to ``bits``-bit symmetric per-tensor steps (what an INT8 graph's
    weights hold), kept in float32 so ONNX Runtime runs it anywhere."""
    from onnx import numpy_helper

    levels = 2 ** (bits - 1) - 1
    for i, init in enumerate(model.graph.initializer):
        value = numpy_helper.to_array(init)
        if value.dtype == np.float32 and value.size > 1 and np.abs(value).max() > 0:
            step = np.abs(value).max() / levels
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(
                (np.round(value / step) * step).astype(np.float32), init.name))


def write_drive(path: Path, *, bundle: Bundle, seed: int, frames: int = FRAMES, cameras: int = 1) -> Path:
    """A drive of synthetic scenes at the bundle's input size: one video ``path`` (``cameras`` 1),
    or a folder ``path`` of per-camera videos."""
    from vitdeploy.data.video import write_videos

    size = tuple(bundle.manifest.image_size)
    if cameras > 1:
        write_videos(path, frames=frames, cameras=cameras, size=size, seed=seed)
        return path
    staged = path.parent / f".{path.stem}-videos"
    (video,) = write_videos(staged, frames=frames, cameras=1, size=size, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    video.rename(path)
    shutil.rmtree(staged)
    return path
