"""The reused camera batch: a stage never sees a batch being overwritten, and the results are the
same as with a new batch per set."""

import threading
import time

import numpy as np
import pytest
from fakes import ScriptedSource

from vitdeploy.bundle.manifest import Preprocessing, TensorSpec
from vitdeploy.runtime.backends.base import Backend
from vitdeploy.runtime.batches import BatchRing
from vitdeploy.runtime.pipeline import Pipeline, QueuePolicy
from vitdeploy.runtime.sinks import Sink
from vitdeploy.runtime.stats import Stats
from vitdeploy.runtime.sync import Synchronizer

SOURCE = (24, 40)
CAMERAS = 3


def stamped(camera: int, frames: int):
    """Frame k of ``camera``: every pixel says (k, camera), so a batch can be checked whole."""
    def script(k: int):
        if k >= frames:
            return None
        image = np.empty((*SOURCE, 3), np.uint8)
        image[..., 0], image[..., 1], image[..., 2] = k % 256, camera, 7
        return image
    return script


class CheckingBackend(Backend):
    """Slow inference that checks its input before and after sleeping: every camera's frame is
    whole and from one source frame, and nothing wrote into the batch meanwhile."""

    name = "checking"

    def __init__(self, *, sleep_s: float, allow_zeros: bool = False):
        super().__init__(inputs=[TensorSpec("frames", "uint8", ["cameras", *SOURCE, 3])],
                         outputs=[TensorSpec("pixels", "uint8", ["cameras", 3])])
        self.sleep_s = sleep_s
        self.allow_zeros = allow_zeros  # a camera that never delivered fills its slot with zeros
        self.problems: list[str] = []
        self.batches: set[int] = set()

    def _infer(self, feed):
        batch = feed["frames"]
        self.batches.add(batch.__array_interface__["data"][0])
        before = batch.copy()
        for i in range(len(batch)):
            if self.allow_zeros and not batch[i].any():
                continue
            if not (batch[i] == batch[i, 0, 0]).all() or batch[i, 0, 0, 1] != i:
                self.problems.append(f"camera {i} not one whole frame of its own")
        time.sleep(self.sleep_s)
        if not np.array_equal(before, batch):
            self.problems.append("the batch changed while inference read it")
        return {"pixels": batch[:, 0, 0, :].copy()}


class Collect(Sink):
    def __init__(self):
        self.sets: list[tuple[int, list[int], np.ndarray]] = []

    def write(self, fs):
        self.sets.append((fs.index, [s.frame_index for s in fs.slots], fs.results))


def run_pipeline(*, reuse: bool, sleep_s: float, policy: QueuePolicy, order: str = "RGB", frames: int = 40):
    sources = [ScriptedSource(f"cam{c}", stamped(c, frames), paced=False) for c in range(CAMERAS)]
    for s in sources:
        s.start()
    spec = Preprocessing(image_size=(16, 16), fused=True, source_size=SOURCE, source_channel_order=order)
    backend = CheckingBackend(sleep_s=sleep_s)
    sink = Collect()
    sync = Synchronizer(sources, rate_hz=0.0, tolerance_s=10.0, fallback_size=SOURCE)
    pipeline = Pipeline(synchronizer=sync, backend=backend, decoder=lambda outputs, boxes: outputs["pixels"],
                        preprocessing=spec, sinks=[sink], stats=Stats(sources, budget_ms=1e6), policy=policy,
                        reuse_batches=reuse)
    pipeline.start()
    assert pipeline.done.wait(30)
    pipeline.join(5)
    for s in sources:
        s.stop()
    assert pipeline.error is None, pipeline.error
    return pipeline, backend, sink


@pytest.mark.parametrize("policy", [QueuePolicy.BLOCK, QueuePolicy.DROP_OLDEST])
def test_a_slow_stage_never_sees_its_batch_overwritten(policy):
    """Inference 10 ms a set behind sources that deliver as fast as they are taken: free-running
    (block) every set waits for a batch; live (drop-oldest) the queues drop sets holding batches."""
    pipeline, backend, sink = run_pipeline(reuse=True, sleep_s=0.01, policy=policy, frames=80)
    assert backend.problems == []
    if policy is QueuePolicy.BLOCK:
        assert len(sink.sets) == 80
    else:
        assert sum(pipeline.dropped.values()) > 0 and len(sink.sets) >= 2
    # the pixels that reached the sink are those of the frames the set was made of
    for _, frames, pixels in sink.sets:
        assert [int(p[0]) for p in pixels] == [f % 256 for f in frames]
        assert [int(p[1]) for p in pixels] == list(range(CAMERAS))
    # reused: a handful of batches served every set, and none is held after the run
    assert pipeline.ring.allocated <= 4 and len(backend.batches) <= pipeline.ring.allocated
    assert len(pipeline.ring.free) == pipeline.ring.allocated


def test_reused_batches_give_the_results_of_new_batches():
    _, _, reused = run_pipeline(reuse=True, sleep_s=0.0, policy=QueuePolicy.BLOCK)
    copying, _, copied = run_pipeline(reuse=False, sleep_s=0.0, policy=QueuePolicy.BLOCK)
    assert len(reused.sets) == len(copied.sets) == 40
    for (i, frames, a), (j, frames_b, b) in zip(reused.sets, copied.sets, strict=True):
        assert (i, frames) == (j, frames_b) and np.array_equal(a, b)
    assert copying.ring is None  # the copying path made a new batch per set


def test_bgr_frames_reach_a_bgr_graph_unchanged_and_an_rgb_one_swapped():
    _, _, rgb = run_pipeline(reuse=True, sleep_s=0.0, policy=QueuePolicy.BLOCK, order="RGB")
    _, _, bgr = run_pipeline(reuse=True, sleep_s=0.0, policy=QueuePolicy.BLOCK, order="BGR")
    # the scripted sources deliver RGB: a BGR graph gets them swapped, channel 2 (7) first
    assert all((p[:, 2] == 7).all() for _, _, p in rgb.sets)
    assert all((p[:, 0] == 7).all() for _, _, p in bgr.sets)


def test_the_ring_hands_out_only_released_batches():
    ring = BatchRing((2, 4, 4, 3))
    a, b = ring.acquire(), ring.acquire()
    assert a.array is not b.array and ring.allocated == 2
    a.release()
    c = ring.acquire()
    assert c.array is a.array and ring.allocated == 2  # reused, not a third
    d = ring.acquire()
    assert d.array is not b.array and d.array is not c.array  # b is still held
    with pytest.raises(RuntimeError, match="released twice"):
        a.release(), a.release()


def test_ring_is_safe_across_threads():
    ring = BatchRing((1, 2, 2, 3))
    seen: list[str] = []

    def worker(tag: int) -> None:
        for _ in range(200):
            lease = ring.acquire()
            lease.array[...] = tag
            time.sleep(0)
            if not (lease.array == tag).all():
                seen.append("overwritten")
            lease.release()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [] and ring.allocated <= 4
