"""Calibration data: camera frames -> preprocessed model inputs, split into calibration and held-out.

``--data`` is one of

* an image folder (any of ``vitdeploy.data.frames.IMAGE_SUFFIXES``, searched recursively),
* a rig recording: a folder of per-camera folders of images (sampled evenly across cameras),
* a video file (frames sampled evenly over its length, decoded with OpenCV),
* a recording: an MCAP file, ``.db3`` file or ROS 2 bag folder, every image topic or
  ``PATH#TOPIC[,TOPIC...]`` (frames evenly over the drive, ``calibration.recording_data``),
* an ``.npz`` of already preprocessed tensors keyed by graph input name, (N, ...) each,
* ``synthetic``: vitdeploy's synthetic driving scenes (``vitdeploy.data.scenes``).

Images and videos are read by ``vitdeploy.data.frames``, as `vitdeploy run` reads them. Frames go
through ``vitdeploy.runtime.preprocess.prepare_batch`` with the bundle's
``Preprocessing``, so INT8 scales are computed on exactly what the deployed model sees; for a
bundle with preprocessing fused into the graph that means raw uint8 frames at the source size (the
graph's own resize and normalisation then run inside calibration too). Sampling is
seeded; the held-out frames (for the accuracy report) never overlap the calibration frames.
"""

from __future__ import annotations

import enum
import hashlib
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitdeploy.bundle.manifest import Preprocessing, TensorSpec
from vitdeploy.data.frames import IMAGE_SUFFIXES, count_video_frames, images_in, read_image, video_frames
from vitdeploy.errors import DataError
from vitdeploy.runtime.preprocess import prepare_batch

#: Fewer calibration frames than this cannot estimate activation ranges at all: an error.
MIN_SAMPLES = 16
#: Fewer than this is allowed, with a warning: entropy calibration is noisy on small sets.
RECOMMENDED_SAMPLES = 128
DEFAULT_SAMPLES = 256
DEFAULT_HELDOUT = 32
MIN_HELDOUT = 4
SYNTHETIC = "synthetic"
# Synthetic drives cut to a new scene every 8 s at 10 fps. Calibration frames come from even
# scenes and held-out frames from odd ones, so the report measures frames of scenes that
# calibration never saw.
_SYNTH_TICKS_PER_SCENE = 80
_BATCH = 8  # frames preprocessed at a time

#: progress(stage, done, total): what the CLI turns into a progress bar.
ProgressFn = Callable[[str, int, int], None]


class DataKind(str, enum.Enum):
    IMAGES = "images"
    RIG = "rig"
    VIDEO = "video"
    RECORDING = "recording"
    NPZ = "npz"
    SYNTHETIC = "synthetic"


@dataclass
class CalibrationData:
    """Preprocessed inputs of one graph: ``calibration`` and ``heldout`` map input name to a
    float32 (N, ...) array (N frames along the camera axis); the two sets share no frame.

    ``set_cameras``: a rig-level graph's cameras per frame set; the arrays then hold N sets one after
    the other along the camera axis, and each run of the graph takes one set (None: single frames)."""

    source: str
    kind: DataKind
    seed: int
    calibration: dict[str, np.ndarray]
    heldout: dict[str, np.ndarray]
    warnings: list[str] = field(default_factory=list)
    set_cameras: int | None = None

    @property
    def samples(self) -> int:  # frame sets for a rig-level graph
        return _count(self.calibration) // (self.set_cameras or 1)

    @property
    def heldout_samples(self) -> int:
        return _count(self.heldout) // (self.set_cameras or 1)

    @property
    def unit(self) -> str:
        """What ``samples`` counts: "frames", or "frame sets"."""
        return "frame sets" if self.set_cameras else "frames"

    @property
    def sha256(self) -> str:
        """Digest of the calibration tensors (names, shapes, dtypes and values)."""
        return tensors_sha256(self.calibration)

    def summary(self) -> dict:
        """What the manifest records about the data."""
        out = {"source": self.source, "kind": self.kind.value, "seed": self.seed, "samples": self.samples,
               "heldout": self.heldout_samples, "sha256": self.sha256, "heldout_sha256": tensors_sha256(self.heldout)}
        if self.set_cameras is not None:
            out["frame_sets_of_cameras"] = self.set_cameras
        return out


def _count(feeds: dict[str, np.ndarray]) -> int:
    return int(next(iter(feeds.values())).shape[0]) if feeds else 0


def tensors_sha256(feeds: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(feeds):
        arr = np.ascontiguousarray(feeds[name])
        digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


# ---- frame sources --------------------------------------------------------------------------------
class _FrameSource:
    """Frames that can be counted, grouped into strata (cameras) and read by index."""

    kind: DataKind
    skipped = 0  # damaged frames left out (recordings)

    def __len__(self) -> int:
        raise NotImplementedError

    def strata(self) -> list[list[int]]:
        return [list(range(len(self)))]

    def pick(self, count: int, rng: np.random.Generator) -> list[int]:
        """``count`` indices in a seeded order (the first ones calibrate, the rest are held out):
        each stratum (camera) in turn."""
        return _stratified(self.strata(), count, rng)

    def read(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        """HxWx3 uint8 RGB frames, in the order of ``indices``."""
        raise NotImplementedError


class _ImageFolder(_FrameSource):
    kind = DataKind.IMAGES

    def __init__(self, files: list[Path]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def read(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        for i in indices:
            yield read_image(self.files[i])


class _RigRecording(_ImageFolder):
    """A folder of per-camera folders; sampling takes frames from every camera in turn."""

    kind = DataKind.RIG

    def __init__(self, cameras: dict[str, list[Path]]):
        super().__init__([p for files in cameras.values() for p in files])
        self.cameras = cameras

    def strata(self) -> list[list[int]]:
        out, start = [], 0
        for files in self.cameras.values():
            out.append(list(range(start, start + len(files))))
            start += len(files)
        return out


class _Video(_FrameSource):
    kind = DataKind.VIDEO

    def __init__(self, path: Path):
        self.path = path
        self.count = count_video_frames(path)
        if self.count <= 0:
            raise DataError(f"video {path} has no frames OpenCV can decode; give another video or an image folder")

    def __len__(self) -> int:
        return self.count

    def read(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        return video_frames(self.path, indices)

    def pick(self, count: int, rng: np.random.Generator) -> list[int]:
        """Evenly over the video's length; which of those are held out is a seeded choice."""
        chosen = np.linspace(0, len(self) - 1, count).round().astype(int).tolist()
        return [chosen[i] for i in rng.permutation(len(chosen))]


def _open_folder(path: Path) -> _FrameSource:
    top = images_in(path, recursive=False)
    if not top:
        cameras = {d.name: images_in(d, recursive=True) for d in sorted(path.iterdir()) if d.is_dir()}
        cameras = {k: v for k, v in cameras.items() if v}
        if len(cameras) >= 2:
            return _RigRecording(cameras)
    files = images_in(path, recursive=True)
    if not files:
        raise DataError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}; searched recursively); give a "
                        "folder of camera frames, a video, an .npz of preprocessed inputs, or 'synthetic'")
    return _ImageFolder(files)


# ---- sampling ---------------------------------------------------------------------------------------
def _split_counts(available: int, samples: int, heldout: int, source: str, warnings: list[str]) -> tuple[int, int]:
    need = MIN_SAMPLES + MIN_HELDOUT
    if available < need:
        raise DataError(f"{source} has {available} frames; calibration needs at least {need} "
                        f"({MIN_SAMPLES} to calibrate and {MIN_HELDOUT} held out for the accuracy report)")
    if available >= samples + heldout:
        return samples, heldout
    held = max(MIN_HELDOUT, min(heldout, available // 5))
    cal = min(samples, available - held)
    warnings.append(f"{source} has {available} frames, fewer than the {samples} + {heldout} asked for; "
                    f"calibrating on {cal} and holding out {held}")
    if cal < RECOMMENDED_SAMPLES <= samples:
        warnings.append(f"{cal} calibration samples are few: INT8 ranges are noisy below {RECOMMENDED_SAMPLES}")
    return cal, held


def _stratified(strata: list[list[int]], count: int, rng: np.random.Generator) -> list[int]:
    """``count`` indices taking each stratum (camera) in turn, each stratum in a seeded order."""
    queues = [list(rng.permutation(s)) for s in strata if s]
    out: list[int] = []
    while len(out) < count and queues:
        for q in list(queues):
            if len(out) == count:
                break
            out.append(int(q.pop(0)))
            if not q:
                queues.remove(q)
    return out


def _preprocess(frames: Iterator[np.ndarray], count: int, *, spec: Preprocessing, stage: str,
                progress: ProgressFn | None) -> np.ndarray:
    out: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    done = 0
    for frame in frames:
        batch.append(frame)
        if len(batch) == _BATCH:
            out.append(prepare_batch(batch, spec, allow_resize=True)[0])
            done += len(batch)
            batch = []
            if progress:
                progress(stage, done, count)
    if batch:
        out.append(prepare_batch(batch, spec, allow_resize=True)[0])
        done += len(batch)
        if progress:
            progress(stage, done, count)
    return np.concatenate(out)


def _image_input(inputs: list[TensorSpec], preprocessing: Preprocessing) -> TensorSpec:
    images = [s for s in inputs if len(s.shape) == 4]
    if len(inputs) != 1 or not images:
        raise DataError(f"camera frames can only feed a graph with one image input; this graph takes "
                        f"{[s.name for s in inputs]}: give an .npz of preprocessed tensors keyed by input name")
    return images[0]


# ---- entry point -------------------------------------------------------------------------------------
def load_calibration_data(source: str | Path, *, inputs: list[TensorSpec], preprocessing: Preprocessing,
                          samples: int = DEFAULT_SAMPLES, heldout: int = DEFAULT_HELDOUT, seed: int = 0,
                          progress: ProgressFn | None = None, set_cameras: int | None = None) -> CalibrationData:
    """Read ``source``, sample ``samples`` calibration and ``heldout`` held-out frames (seeded,
    disjoint) and preprocess them for a graph with ``inputs``.

    ``set_cameras``: a rig-level graph's cameras per frame set; ``samples``/``heldout`` then count
    frame sets (``calibration.rig_data``)."""
    if samples < MIN_SAMPLES:
        raise DataError(f"--samples {samples} is too few to calibrate; use at least {MIN_SAMPLES} "
                        f"({DEFAULT_SAMPLES} recommended)")
    if heldout < MIN_HELDOUT:
        raise DataError(f"{heldout} held-out frames are too few for an accuracy report; use at least {MIN_HELDOUT}")
    warnings: list[str] = []
    if samples < RECOMMENDED_SAMPLES:
        warnings.append(f"{samples} calibration samples are few: INT8 ranges are noisy below "
                        f"{RECOMMENDED_SAMPLES} (default {DEFAULT_SAMPLES})")
    text = str(source)
    rng = np.random.default_rng(seed)
    if set_cameras is not None:
        from vitdeploy.calibration.rig_data import load_frame_sets

        return load_frame_sets(text, inputs=inputs, preprocessing=preprocessing, cameras=set_cameras,
                               samples=samples, heldout=heldout, seed=seed, warnings=warnings, progress=progress)
    if text == SYNTHETIC:
        return _synthetic(inputs, preprocessing, samples, heldout, seed, warnings, progress)
    from vitdeploy.calibration.recording_data import open_recording_frames

    recording = open_recording_frames(text)
    if recording is not None:
        try:
            return _frames(recording, text, inputs, preprocessing, cal_held=(samples, heldout), seed=seed,
                           warnings=warnings, progress=progress)
        finally:
            recording.close()
    path = Path(source)
    if not path.exists():
        raise DataError(f"calibration data {path} does not exist; give an image folder, a rig recording folder, "
                        f"a video file, an .npz of preprocessed inputs, or '{SYNTHETIC}'")
    if path.is_file() and path.suffix.lower() == ".npz":
        return _npz(path, inputs, samples, heldout, seed, warnings, rng)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(f"{path} is a single image; give the folder that holds the calibration frames")
    frames: _FrameSource = _open_folder(path) if path.is_dir() else _Video(path)
    return _frames(frames, text, inputs, preprocessing, cal_held=(samples, heldout), seed=seed, warnings=warnings,
                   progress=progress)


def _frames(frames: _FrameSource, text: str, inputs: list[TensorSpec], preprocessing: Preprocessing, *,
            cal_held: tuple[int, int], seed: int, warnings: list[str], progress: ProgressFn | None) -> CalibrationData:
    """Calibration and held-out frames drawn from ``frames`` (``_FrameSource.pick``), preprocessed."""
    spec = _image_input(inputs, preprocessing)
    cal, held = _split_counts(len(frames), *cal_held, text, warnings)
    chosen = frames.pick(cal + held, np.random.default_rng(seed))
    cal_idx, held_idx = chosen[:cal], chosen[cal:cal + held]
    data = CalibrationData(source=text, kind=frames.kind, seed=seed, calibration={}, heldout={}, warnings=warnings)
    data.calibration[spec.name] = _preprocess(frames.read(cal_idx), len(cal_idx), spec=preprocessing,
                                              stage="reading calibration frames", progress=progress)
    data.heldout[spec.name] = _preprocess(frames.read(held_idx), len(held_idx), spec=preprocessing,
                                          stage="reading held-out frames", progress=progress)
    if frames.skipped:
        warnings.append(f"{frames.skipped} damaged frames of {text} were left out")
    _check_shapes(data.calibration, inputs, text)
    return data


def _synthetic(inputs: list[TensorSpec], preprocessing: Preprocessing, samples: int, heldout: int, seed: int,
               warnings: list[str], progress: ProgressFn | None) -> CalibrationData:
    from vitdeploy.data.scenes import SceneGenerator

    spec = _image_input(inputs, preprocessing)
    size = tuple(preprocessing.source_size or preprocessing.image_size)
    gen = SceneGenerator(size=size, cameras=6, seed=seed, with_masks=False)
    rng = np.random.default_rng(seed)

    def draw(count: int, parity: int) -> list[tuple[int, int]]:
        scenes = max(8, -(-count // 8))  # at most ~8 frames per scene, from >= 8 scenes
        pool = [(s * 2 + parity) * _SYNTH_TICKS_PER_SCENE + t for s in range(scenes) for t in range(_SYNTH_TICKS_PER_SCENE)]
        ticks = rng.choice(len(pool), size=count, replace=False)
        cams = rng.integers(0, len(gen.cameras), size=count)
        return sorted((pool[int(t)], int(c)) for t, c in zip(ticks, cams, strict=True))  # by tick: scene cache hits

    data = CalibrationData(source=SYNTHETIC, kind=DataKind.SYNTHETIC, seed=seed, calibration={}, heldout={},
                           warnings=warnings)
    for target, count, parity, stage in ((data.calibration, samples, 0, "rendering calibration frames"),
                                         (data.heldout, heldout, 1, "rendering held-out frames")):
        picks = draw(count, parity)
        target[spec.name] = _preprocess((gen.frame(t, c).image for t, c in picks), len(picks), spec=preprocessing,
                                        stage=stage, progress=progress)
    return data


def _npz(path: Path, inputs: list[TensorSpec], samples: int, heldout: int, seed: int, warnings: list[str],
         rng: np.random.Generator) -> CalibrationData:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read {path} as an .npz of arrays ({exc}); save one with numpy.savez") from exc
    not_arrays = sorted(k for k, v in arrays.items() if not isinstance(v, np.ndarray))
    if not_arrays:  # np.load hands back the raw bytes of a member that is no .npy
        raise DataError(f"{path}: {not_arrays} are not numpy arrays; save the inputs with numpy.savez")
    names = [s.name for s in inputs]
    if sorted(arrays) != sorted(names):
        raise DataError(f"{path} holds arrays {sorted(arrays)} but the graph's inputs are {names}; "
                        "key the arrays by input name")
    for name, arr in arrays.items():
        if not np.issubdtype(arr.dtype, np.floating):
            raise DataError(f"{path}: array {name!r} is {arr.dtype}; give preprocessed float32 tensors")
        arrays[name] = arr.astype(np.float32, copy=False)
    _check_shapes(arrays, inputs, str(path))
    counts = {name: int(arr.shape[0]) for name, arr in arrays.items()}
    if len(set(counts.values())) != 1:
        raise DataError(f"{path}: arrays have different sample counts {counts}; give the same N for every input")
    cal, held = _split_counts(next(iter(counts.values())), samples, heldout, str(path), warnings)
    order = rng.permutation(next(iter(counts.values())))
    cal_idx, held_idx = order[:cal], order[cal:cal + held]
    return CalibrationData(source=str(path), kind=DataKind.NPZ, seed=seed, warnings=warnings,
                           calibration={k: np.ascontiguousarray(v[cal_idx]) for k, v in arrays.items()},
                           heldout={k: np.ascontiguousarray(v[held_idx]) for k, v in arrays.items()})


def _check_shapes(arrays: dict[str, np.ndarray], inputs: list[TensorSpec], source: str) -> None:
    for spec in inputs:
        arr = arrays[spec.name]
        fixed_ok = arr.ndim == len(spec.shape) and all(
            isinstance(d, str) or int(d) == int(n) for d, n in zip(spec.shape, arr.shape, strict=True))
        if not fixed_ok:
            shown = "x".join("N" if isinstance(d, str) else str(d) for d in spec.shape)
            raise DataError(f"{source}: input {spec.name!r} has shape {tuple(arr.shape)}, the graph takes {shown} "
                            "(N samples along the first axis)")
