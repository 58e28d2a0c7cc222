"""The pipeline: sync -> preprocess -> infer -> postprocess -> sinks, each stage in its own thread.

Stages are joined by small bounded queues, so preprocessing set t+1 overlaps inference of set t.
On a live rig the queues drop the oldest waiting set when a later stage falls behind (and count
it): latency stays bounded and nothing queues without bound. A free-running rig (``rate_hz = 0``)
blocks instead and assembles a set only while fewer than ``max_in_flight`` are in the pipeline —
the slowest stage sets the pace, no set is lost, and sets do not pile up in the queues (two in
flight keep the model busy: one in inference, the next preprocessed and waiting). Every set is stamped
(``time.monotonic`` seconds) at the start and end of every stage.
"""

from __future__ import annotations

import collections
import enum
import threading
import time
from collections.abc import Callable

import numpy as np

from vitdeploy.bundle.manifest import Preprocessing
from vitdeploy.heads import Decoded, Letterbox
from vitdeploy.runtime.backends.base import Backend
from vitdeploy.runtime.batches import BatchRing, HeldRows
from vitdeploy.runtime.preprocess import fill_raw_batch, prepare_batch, raw_letterbox
from vitdeploy.runtime.sinks import Sink
from vitdeploy.runtime.stats import Stats
from vitdeploy.runtime.sync import FrameSet, Synchronizer

#: Decodes one set's raw outputs, with the letterbox of each camera (a head's ``decode``).
DecodeFn = Callable[[dict[str, np.ndarray], list[Letterbox]], Decoded]

#: Sets in flight on a free-running rig: one in inference, the next preprocessed and waiting.
FREE_RUNNING_IN_FLIGHT = 2
#: Sets that may wait for the sinks. Writing files takes a varying time (an fsync under disk load,
#: the first video frame opening its encoder: 0.1 s on a loaded CPU), and a set that waited for
#: the sink has its full cost in ``end_to_end``; a few sets of slack keep such a hiccup from
#: dropping output.
SINK_QUEUE_SIZE = 4


class QueuePolicy(str, enum.Enum):
    DROP_OLDEST = "drop-oldest"  # live rigs: a full queue drops its oldest set to make room
    BLOCK = "block"  # free-running rigs: a full queue makes the producer wait


class StageQueue:
    """A bounded FIFO of frame sets between two stages; ``dropped`` counts drop-oldest losses.
    ``on_drop`` is called with every set dropped or discarded (to release what it holds)."""

    def __init__(self, name: str, *, maxsize: int = 1, policy: QueuePolicy = QueuePolicy.DROP_OLDEST,
                 on_drop: Callable[[FrameSet], None] | None = None):
        self.name = name
        self.maxsize = maxsize
        self.policy = policy
        self.on_drop = on_drop
        self.dropped = 0
        self._items: collections.deque[FrameSet] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: FrameSet) -> None:
        """Add ``item``; once the queue is closed (the consumer is gone) it is discarded."""
        gone: list[FrameSet] = []
        with self._cond:
            if self.policy is QueuePolicy.BLOCK:
                while len(self._items) >= self.maxsize and not self._closed:
                    self._cond.wait()
            elif len(self._items) >= self.maxsize:
                gone.append(self._items.popleft())
                self.dropped += 1
            if self._closed:
                gone.append(item)
            else:
                self._items.append(item)
                self._cond.notify_all()
        self._dropped(gone)

    def _dropped(self, items: list[FrameSet]) -> None:
        if self.on_drop is not None:
            for item in items:
                self.on_drop(item)

    def get(self) -> FrameSet | None:
        """The next item; None once the queue is closed and empty."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            item = self._items.popleft() if self._items else None
            self._cond.notify_all()
            return item

    def close(self, *, discard: bool = False) -> None:
        """No more items will come; the consumer drains what is there (or nothing, ``discard``)."""
        with self._cond:
            self._closed = True
            gone = list(self._items) if discard else []
            if discard:
                self._items.clear()
            self._cond.notify_all()
        self._dropped(gone)


class Pipeline:
    """Runs frame sets from ``synchronizer`` through ``backend`` into ``sinks``.

    ``preprocessing`` is the manifest's (the same code calibration uses); ``input_name`` the graph
    input fed with the (N, 3, h, w) batch — or, when preprocessing is fused into the graph, the raw
    (N, Hs, Ws, 3) uint8 frames; ``constant_inputs`` the graph's other inputs, the same for every
    set (a rig-level model's camera geometry). ``max_sets`` stops after that many sets reached the
    sinks. ``error`` holds the exception of a stage that failed (the pipeline then stops).
    ``reuse_batches``: raw frames for a fused graph are copied into a reused batch (a
    ``BatchRing``) instead of a new array per set; the results are the same. A set whose frames
    the cameras decoded straight into the rows of one batch (``runtime.batches.CameraRows``)
    goes to the model as that batch, with no copy at all (``zero_copy_sets`` counts them).
    """

    def __init__(self, *, synchronizer: Synchronizer, backend: Backend, decoder: DecodeFn,
                 preprocessing: Preprocessing, sinks: list[Sink], stats: Stats, policy: QueuePolicy,
                 queue_size: int = 1, max_sets: int | None = None, max_in_flight: int | None = None,
                 allow_resize: bool = False, reuse_batches: bool = True,
                 constant_inputs: dict[str, np.ndarray] | None = None):
        self.synchronizer = synchronizer
        self.backend = backend
        self.decoder = decoder
        self.preprocessing = preprocessing
        self.allow_resize = allow_resize  # fused graphs: resize mismatched frames on the CPU instead of failing
        self.sinks = sinks
        self.stats = stats
        self.max_sets = max_sets
        spec = backend.inputs[0]
        self.input_name = spec.name
        self.input_dtype = np.dtype(spec.dtype)
        self.constant_inputs = dict(constant_inputs or {})
        self.queues = {name: StageQueue(name, maxsize=max(queue_size, SINK_QUEUE_SIZE) if name == "sink"
                                        else queue_size, policy=policy, on_drop=self._dropped_set)
                       for name in ("preprocess", "infer", "postprocess", "sink")}
        fused_raw = preprocessing.fused and self.input_dtype == np.uint8
        self.ring: BatchRing | None = None  # made for the first set (its camera count)
        self._reuse_batches = reuse_batches and fused_raw
        self.zero_copy_sets = 0
        self.error: BaseException | None = None
        self.error_stage: str | None = None
        self.stop_requested = threading.Event()
        self.done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sets_out = 0
        if max_in_flight is None and policy is QueuePolicy.BLOCK:
            max_in_flight = FREE_RUNNING_IN_FLIGHT
        self.max_in_flight = max_in_flight
        self._in_flight = 0
        self._flight = threading.Condition()

    @property
    def dropped(self) -> dict[str, int]:
        """Frame sets dropped in front of each stage."""
        return {name: q.dropped for name, q in self.queues.items()}

    @property
    def sets_out(self) -> int:
        return self._sets_out

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        q = self.queues
        stages: list[tuple[str, Callable[[], None]]] = [
            ("sync", self._sync_loop),
            ("preprocess", lambda: self._stage("preprocess", q["preprocess"], q["infer"], self._preprocess)),
            ("infer", lambda: self._stage("infer", q["infer"], q["postprocess"], self._infer)),
            ("postprocess", lambda: self._stage("postprocess", q["postprocess"], q["sink"], self._postprocess)),
            ("sink", lambda: self._stage("sink", q["sink"], None, self._sink)),
        ]
        for name, target in stages:
            t = threading.Thread(target=target, name=f"pipeline-{name}", daemon=True)
            self._threads.append(t)
            t.start()

    def stop(self) -> None:
        """Stop taking new sets; sets already in flight finish and reach the sinks."""
        self.stop_requested.set()

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    # ---- stages -------------------------------------------------------------------------------
    def _fail(self, stage: str, exc: BaseException) -> None:
        if self.error is None:
            self.error, self.error_stage = exc, stage
        self.stop_requested.set()
        for q in self.queues.values():  # nobody waits on a stage that is gone
            q.close(discard=True)

    def _sync_loop(self) -> None:
        try:
            while not self.stop_requested.is_set():
                if not self._wait_for_room():
                    break
                fs = self.synchronizer.next_set(self.stop_requested)
                if fs is None:
                    break
                with self._flight:
                    self._in_flight += 1
                self.queues["preprocess"].put(fs)
        except BaseException as exc:
            self._fail("sync", exc)
        finally:
            self.queues["preprocess"].close()

    def _wait_for_room(self) -> bool:
        """Free-running: wait until fewer than ``max_in_flight`` sets are in the pipeline."""
        if self.max_in_flight is None:
            return True
        with self._flight:
            while self._in_flight >= self.max_in_flight and not self.stop_requested.is_set():
                self._flight.wait(0.05)
        return not self.stop_requested.is_set()

    def _dropped_set(self, fs: FrameSet) -> None:
        """A queue dropped ``fs``: its batch goes back to the ring, and it is no longer in flight."""
        _release_batch(fs)
        if self.max_in_flight is not None:
            self._landed()

    def _landed(self) -> None:
        with self._flight:
            self._in_flight -= 1
            self._flight.notify_all()

    def _stage(self, name: str, qin: StageQueue, qout: StageQueue | None, work: Callable[[FrameSet], bool]) -> None:
        try:
            while (fs := qin.get()) is not None:
                if work(fs) and qout is not None:
                    qout.put(fs)
        except BaseException as exc:
            self._fail(name, exc)
        finally:
            if qout is not None:
                qout.close()
            else:
                self.done.set()

    def _preprocess(self, fs: FrameSet) -> bool:
        fs.stamps["preprocess_start"] = time.monotonic()
        if self._reuse_batches and self._as_decoded(fs):
            fs.stamps["preprocess_end"] = time.monotonic()
            return True
        images = [slot.image for slot in fs.slots]
        orders = [slot.channel_order for slot in fs.slots]
        if self._reuse_batches:
            if self.ring is None:
                sh, sw = self.preprocessing.source_size
                self.ring = BatchRing((len(images), sh, sw, 3))
            fs.lease = self.ring.acquire()
            fs.batch = fs.lease.array
            fs.letterboxes = fill_raw_batch(images, self.preprocessing, out=fs.batch, allow_resize=self.allow_resize,
                                            orders=orders)
        else:
            batch, fs.letterboxes = prepare_batch(images, self.preprocessing, allow_resize=self.allow_resize,
                                                  orders=orders)
            fs.batch = batch if batch.dtype == self.input_dtype else batch.astype(self.input_dtype)
        _release_rows(fs)  # copied: the cameras' rows go back
        fs.stamps["preprocess_end"] = time.monotonic()
        return True

    def _as_decoded(self, fs: FrameSet) -> bool:
        """If every camera of ``fs`` decoded its frame into its own row of one batch, in the graph's
        channel order, that batch is the model input as it is: no copy. True when it was taken."""
        holds = [slot.hold for slot in fs.slots]
        if not holds or any(h is None for h in holds) or any(slot.missing for slot in fs.slots):
            return False
        batch = holds[0].rows.batches[holds[0].batch]
        want = self.preprocessing.source_channel_order.upper()
        if (batch.shape[0] != len(holds) or batch.shape[1:3] != tuple(self.preprocessing.source_size)
                or any(h.batch != holds[0].batch or h.camera != i for i, h in enumerate(holds))
                or any(slot.channel_order.upper() != want for slot in fs.slots)):
            return False
        fs.lease = HeldRows(batch, holds)
        for slot in fs.slots:
            slot.hold = None  # the lease holds them now, until inference has read the batch
        fs.batch = batch
        letterbox = raw_letterbox(batch.shape[1:3], self.preprocessing)
        fs.letterboxes = [letterbox] * len(holds)
        self.zero_copy_sets += 1
        return True

    def _infer(self, fs: FrameSet) -> bool:
        fs.stamps["infer_start"] = time.monotonic()
        fs.outputs = self.backend.infer({self.input_name: fs.batch, **self.constant_inputs})
        _release_batch(fs)
        fs.stamps["infer_end"] = time.monotonic()
        return True

    def _postprocess(self, fs: FrameSet) -> bool:
        fs.stamps["postprocess_start"] = time.monotonic()
        fs.results = self.decoder(fs.outputs, fs.letterboxes)
        fs.outputs = None
        fs.stamps["postprocess_end"] = time.monotonic()
        return True

    def _sink(self, fs: FrameSet) -> bool:
        try:
            return self._write(fs)
        finally:
            self._landed()

    def _write(self, fs: FrameSet) -> bool:
        if self.max_sets is not None and self._sets_out >= self.max_sets:
            return False  # in flight when the limit was reached: not written
        # Sinks may write from their own threads (``SinkThread``): the set is final before it is
        # handed over, so the "sink" stage is the hand-off; a sink's own time is in its thread.
        fs.stamps["sink_start"] = time.monotonic()
        fs.stamps["sink_end"] = fs.stamps["sink_start"]
        self.stats.record(fs)
        for sink in self.sinks:
            sink.write(fs)
        self._sets_out += 1
        if self.max_sets is not None and self._sets_out >= self.max_sets:
            self.stop()
        return True


def _release_batch(fs: FrameSet) -> None:
    """The set no longer needs its model input: a reused batch goes back to its ring (and the
    cameras' rows of a set dropped before preprocessing go back too)."""
    fs.batch = None
    if fs.lease is not None:
        lease, fs.lease = fs.lease, None
        lease.release()
    _release_rows(fs)


def _release_rows(fs: FrameSet) -> None:
    """The set's own holds on camera rows go back (its frames were copied, or it was dropped)."""
    for slot in fs.slots:
        if slot.hold is not None:
            hold, slot.hold = slot.hold, None
            hold.release()
