"""Cameras decoding straight into the model's batch (``CameraRows``): no stage ever sees a row
being overwritten, nothing is held after a run, and the results equal the copying path."""

import threading
import time

import numpy as np
import pytest
from fakes import ScriptedSource
from test_batches import CAMERAS, SOURCE, CheckingBackend, Collect, stamped

from vitdeploy.bundle.manifest import Preprocessing
from vitdeploy.runtime.batches import CameraRows
from vitdeploy.runtime.pipeline import Pipeline, QueuePolicy
from vitdeploy.runtime.stats import Stats
from vitdeploy.runtime.sync import Synchronizer


class RowSource(ScriptedSource):
    """A scripted camera that decodes into the row it is given (like ``cap.read(out)``); frames
    of another size come back as arrays of their own."""

    decodes_into = True

    def _read(self, out=None):
        image = super()._read()
        if out is None or image is None or image.shape != out.shape:
            return image
        out[...] = image
        return out


def run_rows(*, sleep_s: float, policy: QueuePolicy, frames: int = 40, rows: bool = True, fps=None,
             slow_camera: bool = False):
    """``fps`` given: paced cameras and a rig ticking at that rate (``slow_camera``: the last
    camera at half of it); else free-running."""
    paced = fps is not None
    sources = [RowSource(f"cam{c}", stamped(c, frames), paced=paced,
                         fps=(fps or 20.0) / (2 if slow_camera and c == CAMERAS - 1 else 1))
               for c in range(CAMERAS)]
    camera_rows = CameraRows(CAMERAS, SOURCE) if rows else None
    if rows:
        assert all(s.use_rows(camera_rows, i) for i, s in enumerate(sources))
    for s in sources:
        s.start()
    spec = Preprocessing(image_size=(16, 16), fused=True, source_size=SOURCE, source_channel_order="RGB")
    backend = CheckingBackend(sleep_s=sleep_s, allow_zeros=paced)
    sink = Collect()
    tolerance_s = 10.0 if not paced else 1.0 / fps
    sync = Synchronizer(sources, rate_hz=fps or 0.0, tolerance_s=tolerance_s,
                        fallback_size=SOURCE)
    pipeline = Pipeline(synchronizer=sync, backend=backend, decoder=lambda outputs, boxes: outputs["pixels"],
                        preprocessing=spec, sinks=[sink], stats=Stats(sources, budget_ms=1e6), policy=policy)
    pipeline.start()
    if paced:
        time.sleep(1.5)
        pipeline.stop()
    assert pipeline.done.wait(30)
    pipeline.join(5)
    for s in sources:
        s.stop()
    assert pipeline.error is None, pipeline.error
    return pipeline, backend, sink, camera_rows, sources, sync


def held_by_sources_and_sync(sources, sync) -> int:
    """Holds the run may still have at its end: frames left in the cameras' buffers, and each
    camera's last good frame the synchroniser keeps for a missing camera."""
    return sum(1 for s in sources for f in s.buffered() if f.hold is not None) + len(sync._last_hold)


@pytest.mark.parametrize("policy", [QueuePolicy.BLOCK, QueuePolicy.DROP_OLDEST])
def test_a_slow_stage_never_sees_a_row_overwritten(policy):
    """Inference 10 ms behind cameras that decode as fast as they are taken, into rows of a few
    reused batches: every batch inference reads is whole, from one set, and unchanged while read."""
    pipeline, backend, sink, rows, sources, sync = run_rows(sleep_s=0.01, policy=policy, frames=80)
    assert backend.problems == []
    for _, frames, pixels in sink.sets:  # the pixels that reached the sink are the set's frames
        assert [int(p[0]) for p in pixels] == [f % 256 for f in frames]
        assert [int(p[1]) for p in pixels] == list(range(CAMERAS))
    if policy is QueuePolicy.BLOCK:
        assert len(sink.sets) == 80 and pipeline.zero_copy_sets == 80  # in step: no copy at all
        assert len(backend.batches) <= len(rows.batches)
    else:
        assert sum(pipeline.dropped.values()) > 0 and pipeline.zero_copy_sets >= 2
    # every set's hold went back, dropped sets' included
    assert rows.holds() == held_by_sources_and_sync(sources, sync)


def test_decoded_rows_give_the_results_of_the_copying_path():
    _, _, direct, _, _, _ = run_rows(sleep_s=0.0, policy=QueuePolicy.BLOCK)
    copying, _, copied, _, _, _ = run_rows(sleep_s=0.0, policy=QueuePolicy.BLOCK, rows=False)
    assert len(direct.sets) == len(copied.sets) == 40 and copying.zero_copy_sets == 0
    for (i, frames, a), (j, frames_b, b) in zip(direct.sets, copied.sets, strict=True):
        assert (i, frames) == (j, frames_b) and np.array_equal(a, b)


def test_a_camera_late_for_a_set_is_back_in_step_with_its_second_frame_after():
    """A camera aims each frame at the batch of the set it should join. Frames 0-4 join sets 0-4;
    frame 5 was late and joins set 6 (and so on, one set later). Frame 5 aimed at set 5, and frame 6,
    read ahead before frame 5 was taken, may have aimed at set 6; from frame 7 on every frame sits
    in the batch of the set it joins."""
    rows = CameraRows(1, SOURCE, depth=4)
    source = RowSource("cam0", stamped(0, 20), paced=False)
    assert source.use_rows(rows, 0)
    source.start()
    joins = {k: k if k < 5 else k + 1 for k in range(20)}
    batches = {}
    try:
        for k in range(20):
            deadline = time.monotonic() + 5
            while (frame := source.newest()) is None or frame.index < k:
                assert time.monotonic() < deadline, f"frame {k} never came"
                time.sleep(0.001)
            assert frame.index == k and frame.hold is not None
            assert int(frame.image[0, 0, 0]) == k  # the row holds this frame's pixels
            batches[k] = frame.hold.batch
            source.take(frame, set_index=joins[k])
    finally:
        source.stop()
    late = (5, 6)  # aimed at sets 5 and 6 before anyone knew frame 5 would be late
    assert {k: b for k, b in batches.items() if k not in late} == {k: j % 4 for k, j in joins.items() if k not in late}


def test_cameras_out_of_step_behind_a_slow_stage_give_whole_sets():
    """A live rig at 60 Hz, inference 30 ms (sets dropped), one camera at 30 fps (missing from
    every other set, its reads out of step with the rows of the others): every set is whole, its
    pixels are its frames (copied where the rows did not line up), and no hold is left over."""
    pipeline, backend, sink, rows, sources, sync = run_rows(sleep_s=0.03, policy=QueuePolicy.DROP_OLDEST,
                                                            frames=1000, fps=60.0, slow_camera=True)
    assert backend.problems == [] and len(sink.sets) >= 10 and sum(pipeline.dropped.values()) > 0
    assert any(f is None for _, frames, _ in sink.sets for f in frames)  # the copying path ran
    for _, frames, pixels in sink.sets:
        assert [int(p[0]) for p, f in zip(pixels, frames, strict=True) if f is not None] == \
            [f % 256 for f in frames if f is not None]
    assert sum(f is not None for _, frames, _ in sink.sets for f in frames[-1:]) >= 3  # the slow camera took part
    assert rows.holds() == held_by_sources_and_sync(sources, sync)


def test_a_frame_that_does_not_fit_its_row_comes_in_its_own_array():
    tall = (SOURCE[0] + 2, SOURCE[1], 3)
    rows = CameraRows(1, SOURCE)
    source = RowSource("cam0", lambda k: None if k >= 3 else np.full(tall, k, np.uint8), paced=False)
    assert source.use_rows(rows, 0)
    source.start()
    deadline = time.monotonic() + 5
    while source.status().frames < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    frame = source.newest()
    assert frame.image.shape == tall and frame.hold is None and rows.holds() == 0
    source.stop()


def test_rows_go_to_a_frame_only_when_no_one_holds_them():
    rows = CameraRows(2, (4, 4), depth=2)
    a = rows.acquire(0, 0, gen=0)
    assert a is not None and a.array.base is rows.batches[0]
    assert rows.acquire(0, 2, gen=1) is None and rows.busy == 1  # set 2 maps to batch 0, still held
    b = rows.acquire(1, 0, gen=0)  # another camera's row of the same batch is its own
    assert b is not None
    held = a.claim()
    a.release()
    assert rows.acquire(0, 2, gen=2) is None  # the claim still holds it
    held.release()
    c = rows.acquire(0, 2, gen=3)
    assert c is not None and c.array.base is rows.batches[0]
    assert a.claim() is None  # read 0's row went to read 3: its pixels are gone
    with pytest.raises(RuntimeError, match="released more often"):
        rows._release(1, 1)
    c.release(), c.release()  # a hold releases once, however often it is told
    b.release()
    assert rows.holds() == 0


def test_rows_are_safe_across_threads():
    rows = CameraRows(1, (2, 2), depth=3)
    problems: list[str] = []
    lock = threading.Lock()
    gen = [0]

    def worker() -> None:
        for _ in range(300):
            with lock:
                g, gen[0] = gen[0], gen[0] + 1
            hold = rows.acquire(0, g, g)
            if hold is None:
                continue
            hold.array[...] = g % 251
            time.sleep(0)
            if not (hold.array == g % 251).all():
                problems.append("overwritten")
            hold.release()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == [] and rows.holds() == 0
