"""Results as an MCAP file Foxglove opens next to the drive they came from.

Per frame set: each present camera's boxes as ``foxglove.ImageAnnotations`` on
``/<camera>/annotations`` (pixels of that camera's frame, stamped with the frame's own capture
stamp, so Foxglove draws them on the matching image of the source recording), optionally the frame
itself on ``/<camera>/image``, a rig-level head's 3D boxes as a ``foxglove.SceneUpdate`` on
``/vitdeploy/boxes_3d``, and a ``vitdeploy.SetStatus`` on ``/vitdeploy/status`` (latency per stage,
missing cameras, deadline miss, skew) stamped with the set's time. On recordings those stamps are
the recording's clock; on live cameras, UNIX time.

The file is written under a temporary name and renamed on ``close``: a run stopped by Ctrl-C (the
pipeline drains, then the sinks close) leaves a complete file. It runs on the sink thread like the
other sinks.
"""

from __future__ import annotations

import time
from pathlib import Path

from vitdeploy.errors import DataError
from vitdeploy.runtime.sinks import Sink, camera_results
from vitdeploy.runtime.stats import set_latencies_ms
from vitdeploy.runtime.sync import FrameSet


class McapSink(Sink):
    """Writes every frame set's results to ``path`` (see the module docstring); ``images`` also
    stores the camera frames (JPEG), so the file plays on its own. ``budget_ms`` decides the
    status's deadline miss, as in the JSONL."""

    def __init__(self, path: str | Path, *, class_names: list[str], budget_ms: float, images: bool = False):
        from vitdeploy.data.recordings import RecordingWriter

        self.path = Path(path)
        if self.path.suffix.lower() != ".mcap":
            raise DataError(f"results MCAP {self.path}: give a file name ending in .mcap, e.g. results.mcap")
        self.class_names = class_names
        self.budget_ms = budget_ms
        self.images = images
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = RecordingWriter(self.path)

    @property
    def reads_images(self) -> bool:
        return self.images

    def write(self, fs: FrameSet) -> None:
        from vitdeploy.data.recordings import STATUS_TOPIC, SetStatus, annotations_topic, image_topic

        set_stamp = fs.stamp_ns if fs.stamp_ns is not None else time.time_ns()
        for slot, result in zip(fs.slots, camera_results(fs), strict=True):
            if slot.missing or slot.stamp_ns is None:
                continue
            if self.images:
                self._writer.write_image(image_topic(slot.camera), slot.rgb(), stamp_ns=slot.stamp_ns,
                                         frame_id=slot.camera)
            dets = None if result is None else result.detections
            if dets is not None:
                self._writer.write_annotations(annotations_topic(slot.camera), stamp_ns=slot.stamp_ns, boxes=dets.boxes,
                                               scores=dets.scores, labels=dets.labels, class_names=self.class_names)
        self._write_boxes_3d(fs, set_stamp)
        latency = set_latencies_ms(fs)
        status = SetStatus(set_index=fs.index, latency_ms=latency, missing=tuple(fs.missing), skew_ms=fs.skew_ms,
                           deadline_miss=latency.get("end_to_end", 0.0) > self.budget_ms)
        self._writer.write_status(STATUS_TOPIC, status, stamp_ns=set_stamp)

    def _write_boxes_3d(self, fs: FrameSet, stamp_ns: int) -> None:
        """A rig-level head's ego-frame boxes (``Boxes3D``) as SceneUpdate cubes."""
        from vitdeploy.heads.results import SetResult, class_name

        if not isinstance(fs.results, SetResult):
            return
        from vitdeploy.data.boxes3d import Boxes3D
        from vitdeploy.data.recordings import BOXES_3D_TOPIC, Box3D

        boxes = fs.results
        if not isinstance(boxes, Boxes3D):
            return
        cubes = [Box3D(center=tuple(float(v) for v in boxes.centers[i]), size=tuple(float(v) for v in boxes.sizes[i]),
                       yaw=float(boxes.yaws[i]), label=class_name(self.class_names, int(boxes.labels[i])),
                       score=float(boxes.scores[i]), class_id=int(boxes.labels[i])) for i in range(len(boxes))]
        self._writer.write_boxes_3d(BOXES_3D_TOPIC, cubes, stamp_ns=stamp_ns)

    def close(self) -> None:
        self._writer.close()

    def files(self) -> list[Path]:
        return [self.path]
