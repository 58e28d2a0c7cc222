"""Golden inputs and the FP32 reference outputs every engine of a bundle is judged on.

``golden.npz`` in the bundle holds, per graph, a pool of input frames and the outputs ONNX Runtime
computes for them from the FP32 ONNX. It is made once (on the CPU, before the first build) and
reused, so every engine of a bundle — each precision, each GPU — is judged on the same frames; it
is made again only when the FP32 ONNX changed. An engine is run on the whole pool in batches of
each camera count it is checked at (``GoldenSet.batches``: each camera is computed on its own, so a
frame's reference does not depend on the batch it is in).

Image inputs are frames the model can see something in: synthetic driving scenes
(``vitdeploy.data``: cars, pedestrians, cones, lights by day, dusk and night, one frame per scene
from a different camera each) and, for one frame in ``_PHOTO_EVERY``, a real photograph (a
portrait: a driving detector may find nothing in it, a classifier something). They go through the
bundle's own preprocessing for a float image input, or as raw uint8 frames of the source size for a
bundle with fused preprocessing (its graph does the preprocessing itself). A rig-level graph's
camera geometry inputs hold the geometry the bundle was exported with (random matrices would be no
cameras at all). Other inputs are seeded random numbers. The pool is ``max_cameras`` frames; a graph the head's task-level agreement judges
gets at least ``TASK_FRAMES`` (``agreement.py`` says why). ``agreement.py`` holds what an engine
must reach against them.

Calibration's held-out frames are not in the bundle (only their sha256 is), so they cannot be
reused here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitdeploy.bundle import Bundle, atomic_path
from vitdeploy.bundle.manifest import CAMERA_AXIS, Graph, Manifest, Precision, Preprocessing
from vitdeploy.heads import head_for
from vitdeploy.runtime.backends.onnxruntime import cpu_session, run_on_cpu
from vitdeploy.runtime.rig_geometry import exported_geometry, geometry_inputs
from vitdeploy.tensorrt.errors import BuildError

GOLDEN_FILE = "golden.npz"
_FORMAT = 3  # 3: a pool of driving frames + photographs, run in batches; 2: photographs as fused frames
_META = "__meta__"

#: The fewest frames a graph judged by its head's task-level agreement is checked on.
TASK_FRAMES = 12
#: One frame in this many is the photograph; the others are synthetic driving scenes.
_PHOTO_EVERY = 6
#: The synthetic drive the driving frames come from.
_SCENE_SEED = 0


# ---- the stored inputs and outputs --------------------------------------------------------------
@dataclass
class GoldenBatch:
    """One run of an engine: ``inputs`` hold exactly ``cameras`` frames of the pool; the first
    ``rows`` are new, the rest repeat frames from the pool's start to fill the batch."""

    inputs: dict[str, np.ndarray]
    cameras: int
    rows: int


@dataclass
class GoldenSet:
    """A pool of inputs and their FP32 reference outputs for one graph, at ``dims`` (the camera
    axis: the pool's frames); ``sources`` says what each frame shows."""

    graph: str
    onnx_sha256: str  # the FP32 ONNX the outputs came from
    dims: dict[str, int]
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    sources: tuple[str, ...] = ()

    @property
    def frames(self) -> int:
        return self.dims.get(CAMERA_AXIS, 0)

    def fits(self, graph: Graph, dims: dict[str, tuple[int, int]]) -> bool:
        """Whether the stored non-camera sizes lie in ``dims`` (name -> (min, max)) and the
        tensors are those of ``graph``."""
        if set(self.inputs) != {s.name for s in graph.inputs} or set(self.outputs) != {s.name for s in graph.outputs}:
            return False
        return all(lo <= self.dims.get(name, lo) <= hi for name, (lo, hi) in dims.items() if name != CAMERA_AXIS)

    def batches(self, graph: Graph, cameras: int) -> list[GoldenBatch]:
        """The whole pool in batches of ``cameras`` frames (the last one filled up from the start)."""
        if cameras == self.frames:
            return [GoldenBatch(dict(self.inputs), cameras, cameras)]
        if cameras < 1:
            raise BuildError(f"cannot run graph {self.graph!r} on {cameras} cameras; give 1 or more")
        if not camera_led(graph):
            raise BuildError(f"graph {self.graph!r} has a tensor without a leading camera axis; its {self.frames} "
                             f"golden frames can only be run together, not on {cameras} cameras")
        found = []
        for start in range(0, self.frames, cameras):
            index = (start + np.arange(cameras)) % self.frames
            found.append(GoldenBatch({k: np.ascontiguousarray(v[index]) for k, v in self.inputs.items()}, cameras,
                                     min(cameras, self.frames - start)))
        return found

    def take(self, graph: Graph, cameras: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Inputs and reference outputs of the pool's first ``cameras`` frames (one batch)."""
        if not 1 <= cameras <= self.frames:
            raise BuildError(f"{GOLDEN_FILE} holds {self.frames} frames of graph {self.graph!r}, not {cameras}")
        inputs = self.batches(graph, cameras)[0].inputs
        if cameras == self.frames:
            return inputs, dict(self.outputs)
        return inputs, {k: np.ascontiguousarray(v[:cameras]) for k, v in self.outputs.items()}

    def outputs_of(self, run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], graph: Graph, *,
                   cameras: int) -> dict[str, np.ndarray]:
        """What ``run`` (an engine, or ONNX Runtime) gives for the whole pool, run in batches of
        ``cameras``: output name -> (frames, ...), in the pool's order."""
        parts = []
        for batch in self.batches(graph, cameras):
            out = {name: np.asarray(value) for name, value in run(batch.inputs).items()}
            parts.append(out if batch.rows == batch.cameras else {k: v[:batch.rows] for k, v in out.items()})
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def camera_led(graph: Graph) -> bool:
    """Whether every input and output of ``graph`` has the camera axis first (so frames can be
    batched in any number)."""
    return all(s.shape and s.shape[0] == CAMERA_AXIS for s in [*graph.inputs, *graph.outputs])


def pool_size(manifest: Manifest, graph: Graph) -> int:
    """Frames in the golden pool of ``graph``: ``max_cameras``, and at least ``TASK_FRAMES`` where
    the bundle's head judges the graph at the task level and the frames can be batched."""
    if camera_led(graph) and head_for(manifest).compares(s.name for s in graph.outputs):
        return max(manifest.max_cameras, TASK_FRAMES)
    return manifest.max_cameras


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
                                 outputs={name: arrays[f"{graph}/out/{name}"] for name in info["outputs"]},
                                 sources=tuple(info["sources"]))
                for graph, info in meta["graphs"].items()}
    except (KeyError, TypeError) as exc:
        raise BuildError(f"{path} is incomplete (no {exc}); delete it and build again to make a new one") from exc


def save_golden(path: str | Path, sets: dict[str, GoldenSet]) -> None:
    meta = {"format": _FORMAT, "graphs": {
        g.graph: {"onnx_sha256": g.onnx_sha256, "dims": g.dims, "inputs": list(g.inputs), "outputs": list(g.outputs),
                  "sources": list(g.sources)}
        for g in sets.values()}}
    arrays: dict[str, np.ndarray] = {_META: np.array(json.dumps(meta))}
    for g in sets.values():
        arrays.update({f"{g.graph}/in/{k}": v for k, v in g.inputs.items()})
        arrays.update({f"{g.graph}/out/{k}": v for k, v in g.outputs.items()})
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: np.savez adds no suffix
        np.savez_compressed(fh, **arrays)


# ---- making them --------------------------------------------------------------------------------
def golden_inputs(bundle: Bundle, graph: Graph, dims: dict[str, int], *,
                  seed: int = 0) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Inputs of ``graph`` at ``dims`` (the camera axis: frames) and what each frame shows: driving
    scenes and photographs for the image input (preprocessed float, or raw uint8 frames when the
    graph fuses the preprocessing), seeded noise otherwise."""
    rng = np.random.default_rng(seed)
    pre = bundle.manifest.preprocessing
    head = head_for(bundle.manifest)
    feeds, sources = {}, ()
    geometry: dict[str, np.ndarray] = {}
    if head.geometry_inputs:
        cameras = exported_geometry(head)
        count = dims.get(CAMERA_AXIS, len(cameras))
        geometry = geometry_inputs([cameras[i % len(cameras)] for i in range(count)], pre)
    for spec in graph.inputs:
        shape = spec.concrete_shape(**dims)
        if spec.name in geometry:
            feeds[spec.name] = geometry[spec.name].astype(spec.dtype)
            continue
        is_image = (spec.dtype == "float32" and len(shape) == 4 and shape[1] == 3
                    and tuple(shape[2:]) == tuple(pre.image_size) and not pre.fused)
        is_frames = (pre.fused and spec.dtype == "uint8" and len(shape) == 4 and shape[3] == 3
                     and pre.source_size is not None and tuple(shape[1:3]) == tuple(pre.source_size))
        if is_image or is_frames:
            feeds[spec.name], sources = _image_batch(shape[0], pre)
        elif np.issubdtype(np.dtype(spec.dtype), np.floating):
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        else:
            feeds[spec.name] = np.zeros(shape, spec.dtype)
    count = dims.get(CAMERA_AXIS, 1)
    return feeds, sources or tuple(f"seeded random inputs {i}" for i in range(count))


def _image_batch(count: int, preprocessing: Preprocessing) -> tuple[np.ndarray, tuple[str, ...]]:
    """``count`` frames as the bundle's graph takes them: (N, 3, H, W) float32 preprocessed, or
    (N, Hs, Ws, 3) uint8 frames for fused preprocessing; driving scenes first, then views of the
    photograph (one frame in ``_PHOTO_EVERY``; none for a single frame)."""
    from vitdeploy.runtime.preprocess import preprocess_frames, raw_frames

    photos = max(count // _PHOTO_EVERY, 1) if count > 1 else 0
    frames, sources = _driving_frames(count - photos, preprocessing)
    for i in range(photos):
        frames.append(_photo_view(i, photos))
        sources.append(f"photograph (view {i})")
    if preprocessing.fused:
        batch, _ = raw_frames(frames, preprocessing, allow_resize=True)
    else:
        batch, _ = preprocess_frames(frames, preprocessing)
    return batch, tuple(sources)


def _driving_frames(count: int, preprocessing: Preprocessing) -> tuple[list[np.ndarray], list[str]]:
    """``count`` synthetic driving frames (H, W, 3) uint8 RGB at the size the graph takes (its
    source size when the preprocessing is fused): the middle of ``count`` scenes, each seen by the
    next camera of the rig."""
    from vitdeploy.data.scenes import CAMERA_NAMES, SceneGenerator

    size = tuple(preprocessing.source_size if preprocessing.fused else preprocessing.image_size)
    gen = SceneGenerator(size=size, cameras=len(CAMERA_NAMES), seed=_SCENE_SEED, with_masks=False)
    frames, sources = [], []
    for i in range(count):
        tick = round((i + 0.5) * gen.scene_seconds * gen.fps)
        shot = gen.frame(tick, i % len(CAMERA_NAMES))
        frames.append(shot.image)
        sources.append(f"synthetic driving scene (seed {_SCENE_SEED}, tick {tick}, camera {shot.camera})")
    return frames, sources


def _photo_view(i: int, views: int) -> np.ndarray:
    """View ``i`` of ``views`` of a real photograph (H, W, 3) uint8 RGB: rolled sideways, every
    other one mirrored."""
    from vitdeploy.data.frames import sample_photo

    photo = sample_photo()
    view = np.roll(photo, shift=i * photo.shape[1] // max(views, 1), axis=1)
    return np.ascontiguousarray(view[:, ::-1] if i % 2 else view)


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
    frames = pool_size(bundle.manifest, graph)
    current = sets.get(graph.name)
    if (current is not None and current.onnx_sha256 == fp32.sha256 and current.frames == frames
            and current.fits(graph, ranges)):
        return current
    want = {CAMERA_AXIS: frames}
    want.update({name: opt for name, (_lo, opt, _hi) in dims.items() if name != CAMERA_AXIS})
    say(f"making golden outputs of {graph.name} with onnxruntime (fp32, {want})")
    inputs, sources = golden_inputs(bundle, graph, want)
    made = GoldenSet(graph=graph.name, onnx_sha256=fp32.sha256, dims=want, inputs=inputs, outputs={},
                     sources=sources)
    session = cpu_session(bundle.onnx_path(Precision.FP32, graph.name))
    # in batches of at most the camera count the graph was exported for
    outputs = made.outputs_of(lambda feeds: run_on_cpu(session, feeds), graph,
                              cameras=min(bundle.manifest.max_cameras, frames))
    made.outputs = {s.name: outputs[s.name] for s in graph.outputs}
    sets[graph.name] = made
    save_golden(path, sets)
    return made
