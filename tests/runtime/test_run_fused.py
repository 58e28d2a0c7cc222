"""`run_rig` on a fused-preprocessing bundle: the decoders' BGR frames go into a BGR graph as
they come, and give the detections of RGB frames swapped on the CPU."""

import json

import cv2
import numpy as np

from vitdeploy.runtime.rig import Camera, ModelConfig, Outputs, Rig, VideoMode
from vitdeploy.runtime.run import RunOptions, run_rig
from vitdeploy.runtime.sources.video import VideoFileSource

SOURCE = (72, 128)


def colour_video(path, frames: int) -> None:
    """Frames whose colour channels differ (a swapped frame is another picture)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 20.0, (SOURCE[1], SOURCE[0]))
    yy, xx = np.mgrid[0:SOURCE[0], 0:SOURCE[1]]
    for k in range(frames):
        image = np.stack([(xx * 2 + 9 * k) % 256, (yy * 3) % 256, np.full_like(xx, 40 + 20 * k)], -1)
        writer.write(image.astype(np.uint8))
    writer.release()


def run(bundle, tmp_path, name, *, order=None, video=True, summaries=None):
    """Detections per set; ``order`` given: the cameras deliver that order (else run_rig asks)."""
    cams = tuple(Camera(name=f"cam{i}", source=str(tmp_path / f"cam{i}.mp4"), fps=20.0) for i in range(2))
    sources = None if order is None else {
        c.name: VideoFileSource(c.name, c.source, fps=20.0, paced=False, channel_order=order) for c in cams}
    rig = Rig(cameras=cams, model=ModelConfig(bundle=bundle.path, score_threshold=0.0, top_k=5), rate_hz=0.0,
              latency_budget_ms=1e6, outputs=Outputs(jsonl="frames.jsonl", video=VideoMode.MOSAIC if video else VideoMode.NONE,
                                                     live=False))
    summary = run_rig(rig, bundle=bundle, options=RunOptions(out=tmp_path / name), sources=sources)
    if summaries is not None:
        summaries.append(summary)
    assert summary.stopped_by == "sources finished" and summary.sets_out == 6
    lines = [json.loads(line) for line in (tmp_path / name / "frames.jsonl").read_text().splitlines()]
    return [[(d["label"], d["score"], d["box"]) for c in rec["cameras"] for d in c["results"]] for rec in lines]


def test_decoder_bgr_frames_into_a_bgr_graph_give_the_detections_of_swapped_rgb_frames(exported, tmp_path,
                                                                                      monkeypatch):
    for i in range(2):
        colour_video(tmp_path / f"cam{i}.mp4", 6)
    bundle = exported("vit-test-detr", max_cameras=2, fuse_preprocess=True, source_size=SOURCE,
                      source_channel_order="BGR")
    asked = []
    init = VideoFileSource.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        asked.append(self.channel_order)

    monkeypatch.setattr(VideoFileSource, "__init__", spy)
    got = run(bundle, tmp_path, "bgr")
    assert asked == ["BGR", "BGR"]  # run_rig asked the decoders for the graph's order
    ref = run(bundle, tmp_path, "rgb", order="RGB")
    assert len(got) == 6 and all(len(dets) == 10 for dets in got)
    assert got == ref  # the same detections, to the last bit
    assert (tmp_path / "bgr" / "mosaic.mp4").stat().st_size > 0  # the video sink drew on BGR frames


def test_frames_decoded_into_the_batch_give_the_detections_of_copied_frames(exported, tmp_path):
    """Without a sink that reads the frames, the decoders write straight into the model's batch
    (no copy); with the video sink they decode into arrays of their own, copied into the batch."""
    for i in range(2):
        colour_video(tmp_path / f"cam{i}.mp4", 6)
    bundle = exported("vit-test-detr", max_cameras=2, fuse_preprocess=True, source_size=SOURCE,
                      source_channel_order="BGR")
    summaries = []
    direct = run(bundle, tmp_path, "direct", video=False, summaries=summaries)
    copied = run(bundle, tmp_path, "copied", video=True, summaries=summaries)
    assert [s.zero_copy_sets for s in summaries] == [6, 0]
    assert len(direct) == 6 and direct == copied
