"""Golden inputs and the FP32 reference outputs every engine of a bundle is judged on.

``golden.npz`` in the bundle holds, per graph, inputs for the bundle's full camera count and the
outputs ONNX Runtime computes for them from the FP32 ONNX. It is made once (on the CPU, before the
first build) and reused, so every engine of a bundle — each precision, each GPU — is judged on the
same frames; it is made again only when the FP32 ONNX changed. Image inputs are real photographs:
through the bundle's own preprocessing for a float image input, as raw uint8 frames of the source
size for a bundle with fused preprocessing (its graph does the preprocessing itself); other inputs
are seeded random numbers. ``agreement.py`` holds what an engine must reach against them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitdeploy.bundle import Bundle, atomic_path
from vitdeploy.bundle.manifest import CAMERA_AXIS, Graph, Precision, Preprocessing
from vitdeploy.runtime.backends.onnxruntime import run_on_cpu
from vitdeploy.tensorrt.errors import BuildError

GOLDEN_FILE = "golden.npz"
_FORMAT = 2  # 2: fused-preprocessing bundles get photographs as frames, not zeros
_META = "__meta__"


# ---- the stored inputs and outputs --------------------------------------------------------------
@dataclass
class GoldenSet:
    """Inputs and FP32 reference outputs of one graph at ``dims`` (cameras first)."""

    graph: str
    onnx_sha256: str  # the FP32 ONNX the outputs came from
    dims: dict[str, int]
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]

    @property
    def cameras(self) -> int:
        return self.dims.get(CAMERA_AXIS, 0)

    def fits(self, graph: Graph, dims: dict[str, tuple[int, int]]) -> bool:
        """Whether the stored non-camera sizes lie in ``dims`` (name -> (min, max)) and the
        tensors are those of ``graph``."""
        if set(self.inputs) != {s.name for s in graph.inputs} or set(self.outputs) != {s.name for s in graph.outputs}:
            return False
        return all(lo <= self.dims.get(name, lo) <= hi for name, (lo, hi) in dims.items() if name != CAMERA_AXIS)

    def take(self, graph: Graph, cameras: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Inputs and reference outputs of the first ``cameras`` cameras."""
        if cameras == self.cameras:
            return dict(self.inputs), dict(self.outputs)
        if not 1 <= cameras <= self.cameras:
            raise BuildError(f"{GOLDEN_FILE} holds {self.cameras} cameras of graph {self.graph!r}, not {cameras}")
        specs = {s.name: s for s in [*graph.inputs, *graph.outputs]}
        for name in [*self.inputs, *self.outputs]:
            if not specs[name].shape or specs[name].shape[0] != CAMERA_AXIS:
                raise BuildError(f"tensor {name!r} of graph {self.graph!r} has no leading camera axis; "
                                 f"its golden case cannot be cut to {cameras} cameras")
        return ({k: np.ascontiguousarray(v[:cameras]) for k, v in self.inputs.items()},
                {k: np.ascontiguousarray(v[:cameras]) for k, v in self.outputs.items()})


def load_golden(path: str | Path) -> dict[str, GoldenSet]:
    """graph name -> golden set; an empty dict when there is no file."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data[_META]))
            arrays = {k: data[k] for k in data.files if k != _META}
    except (OSError, ValueError, KeyError) as exc:
        raise BuildError(f"cannot read {path} ({exc}); delete it and build again to make a new one") from exc
    if meta.get("format") != _FORMAT:
        return {}  # an older layout: made again on the next build
    try:
        return {graph: GoldenSet(graph=graph, onnx_sha256=info["onnx_sha256"], dims=dict(info["dims"]),
                                 inputs={name: arrays[f"{graph}/in/{name}"] for name in info["inputs"]},
                                 outputs={name: arrays[f"{graph}/out/{name}"] for name in info["outputs"]})
                for graph, info in meta["graphs"].items()}
    except (KeyError, TypeError) as exc:
        raise BuildError(f"{path} is incomplete (no {exc}); delete it and build again to make a new one") from exc


def save_golden(path: str | Path, sets: dict[str, GoldenSet]) -> None:
    meta = {"format": _FORMAT, "graphs": {
        g.graph: {"onnx_sha256": g.onnx_sha256, "dims": g.dims, "inputs": list(g.inputs), "outputs": list(g.outputs)}
        for g in sets.values()}}
    arrays: dict[str, np.ndarray] = {_META: np.array(json.dumps(meta))}
    for g in sets.values():
        arrays.update({f"{g.graph}/in/{k}": v for k, v in g.inputs.items()})
        arrays.update({f"{g.graph}/out/{k}": v for k, v in g.outputs.items()})
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: np.savez adds no suffix
        np.savez_compressed(fh, **arrays)


def golden_inputs(bundle: Bundle, graph: Graph, dims: dict[str, int], *, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of ``graph`` at ``dims``: photographs for the image input (preprocessed float, or
    raw uint8 frames when the graph fuses the preprocessing), seeded noise otherwise."""
    rng = np.random.default_rng(seed)
    pre = bundle.manifest.preprocessing
    feeds = {}
    for spec in graph.inputs:
        shape = spec.concrete_shape(**dims)
        is_image = (spec.dtype == "float32" and len(shape) == 4 and shape[1] == 3
                    and tuple(shape[2:]) == tuple(pre.image_size) and not pre.fused)
        is_frames = (pre.fused and spec.dtype == "uint8" and len(shape) == 4 and shape[3] == 3
                     and pre.source_size is not None and tuple(shape[1:3]) == tuple(pre.source_size))
        if is_image or is_frames:
            feeds[spec.name] = _photo_batch(shape[0], pre)
        elif np.issubdtype(np.dtype(spec.dtype), np.floating):
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        else:
            feeds[spec.name] = np.zeros(shape, spec.dtype)
    return feeds


def _photo_batch(cameras: int, preprocessing: Preprocessing) -> np.ndarray:
    """``cameras`` different views of one photograph, as the bundle's graph takes them: (N, 3, H, W)
    float32 preprocessed, or (N, Hs, Ws, 3) uint8 frames for fused preprocessing."""
    from vitdeploy.data.frames import sample_photo
    from vitdeploy.runtime.preprocess import preprocess_frames, raw_frames

    photo = sample_photo()
    frames = []
    for i in range(cameras):
        view = np.roll(photo, shift=i * photo.shape[1] // max(cameras, 1), axis=1)
        if i % 2:
            view = view[:, ::-1]
        frames.append(np.ascontiguousarray(view))
    if preprocessing.fused:
        batch, _ = raw_frames(frames, preprocessing, allow_resize=True)
    else:
        batch, _ = preprocess_frames(frames, preprocessing)
    return batch


def ensure_golden(bundle: Bundle, graph: Graph, *, dims: dict[str, tuple[int, int, int]],
                  say: Callable[[str], None] = lambda _msg: None) -> GoldenSet:
    """The stored golden set of ``graph``, made (and saved) first if missing, stale or not fitting
    ``dims`` (name -> (min, opt, max) of the profile being built)."""
    path = bundle.file(GOLDEN_FILE)
    sets = load_golden(path)
    fp32 = graph.variant(Precision.FP32)
    if fp32 is None:
        raise BuildError(f"graph {graph.name!r} has no fp32 ONNX to make golden outputs from; re-export the bundle")
    ranges = {name: (lo, hi) for name, (lo, _opt, hi) in dims.items()}
    current = sets.get(graph.name)
    if current is not None and current.onnx_sha256 == fp32.sha256 and current.fits(graph, ranges):
        return current
    want = {CAMERA_AXIS: bundle.manifest.max_cameras}
    want.update({name: opt for name, (_lo, opt, _hi) in dims.items() if name != CAMERA_AXIS})
    say(f"making golden outputs of {graph.name} with onnxruntime (fp32, {want})")
    inputs = golden_inputs(bundle, graph, want)
    outputs = run_on_cpu(bundle.onnx_path(Precision.FP32, graph.name), inputs)
    made = GoldenSet(graph=graph.name, onnx_sha256=fp32.sha256, dims=want, inputs=inputs,
                     outputs={s.name: outputs[s.name] for s in graph.outputs})
    sets[graph.name] = made
    save_golden(path, sets)
    return made
