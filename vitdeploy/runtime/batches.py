"""Reused camera batches: a small ring of preallocated (N, H, W, 3) uint8 arrays with ownership.

Allocating a 6 x 1080p batch per frame set (37 MB) costs page faults (and zeroing) on every set;
on a fast GPU that is a large part of the CPU the runtime spends. The pipeline instead copies each
camera's frame once into a batch of this ring, and the frame set then *holds* that batch (a
``BatchLease``) until inference has read it (or the set is dropped on the way). A batch goes back
to the ring only when released, so no stage ever sees a batch being overwritten. The ring never
blocks: when every batch is held it allocates one more, so a slow stage costs memory (bounded by
the queues in front of it), never the pipeline's pace. ``allocated`` counts the batches made.

Better still, cameras that can decode into a given array (video files: ``cap.read(out)``) write
their frames straight into the rows of reused batches (``CameraRows``): when every camera of a set
decoded into its row of the same batch, that batch goes to the model as it is, with no copy at
all; otherwise the set is copied into a ``BatchRing`` batch as above.
"""

from __future__ import annotations

import threading

import numpy as np


class BatchLease:
    """One batch of the ring, held by one frame set until ``release`` returns it.

    ``array``: (N, H, W, 3) uint8 camera frames (N the cameras of the set).
    """

    def __init__(self, ring: BatchRing, array: np.ndarray):
        self.ring = ring
        self.array = array
        self._holders = 0

    @property
    def holders(self) -> int:
        return self._holders

    def release(self) -> None:
        """The holder is done with the pixels: the batch goes back to the ring."""
        with self.ring.lock:
            if self._holders <= 0:
                raise RuntimeError("a batch was released twice")
            self._holders -= 1
            if self._holders == 0:
                self.ring.free.append(self)


class BatchRing:
    """Batches of ``shape`` (N, H, W, 3) uint8, reused once every holder released them."""

    def __init__(self, shape: tuple[int, int, int, int], *, dtype: np.dtype = np.dtype(np.uint8)):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.lock = threading.Lock()
        self.free: list[BatchLease] = []
        self.allocated = 0

    def acquire(self) -> BatchLease:
        """A batch no one holds (or a new one), held by the caller until it releases it."""
        with self.lock:
            if self.free:
                lease = self.free.pop()
            else:
                lease = BatchLease(self, np.empty(self.shape, self.dtype))
                self.allocated += 1
            lease._holders = 1
            return lease


class RowHold:
    """One hold on one camera row of one batch of ``CameraRows``; ``array`` is the row (H, W, 3).

    The row keeps the frame numbered ``gen`` (the source's read count) until every hold on it is
    released; only then may its source decode another frame into it.
    """

    __slots__ = ("rows", "batch", "camera", "gen", "_live")

    def __init__(self, rows: CameraRows, batch: int, camera: int, gen: int):
        self.rows, self.batch, self.camera, self.gen = rows, batch, camera, gen
        self._live = True

    @property
    def array(self) -> np.ndarray:
        return self.rows.batches[self.batch][self.camera]

    def claim(self) -> RowHold | None:
        """Another hold on the same frame (the synchroniser's, a set's); None if the row was
        given to a newer frame since (its pixels are gone)."""
        return self.rows._claim(self.batch, self.camera, self.gen)

    def release(self) -> None:
        if self._live:
            self._live = False
            self.rows._release(self.batch, self.camera)


class CameraRows:
    """Frames decoded straight into reused camera batches: no copy between decoder and model.

    ``depth`` batches of (N, H, W, 3) uint8; camera i decodes a frame into row i of batch
    ``s % depth``, s the frame set it expects the frame to join (the set its last taken frame went
    into, plus one for each frame between), if no one holds that row (else into a new array of its
    own, which the pipeline then copies). A set whose frames all sit in row i of one batch goes to
    the model as that batch; a camera that was late for a set (so its frame joined the next one)
    is back in step with the next frame it reads. A row
    is held by the source while the frame is in its buffer, by the synchroniser while it is a
    camera's last good frame, and by every set that uses it until inference has read it.
    """

    def __init__(self, cameras: int, size: tuple[int, int], *, depth: int = 5):
        h, w = size
        self.batches = [np.empty((cameras, h, w, 3), np.uint8) for _ in range(depth)]
        self._holds = np.zeros((depth, cameras), np.int64)
        self._gens = np.full((depth, cameras), -1, np.int64)
        self._lock = threading.Lock()
        self.busy = 0  # reads that found their row held and went to an array of their own

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.batches[0].shape

    def acquire(self, camera: int, set_index: int, gen: int) -> RowHold | None:
        """``camera``'s row in the batch of frame set ``set_index``, for its read number ``gen``
        (unique per camera), held by the caller; None if someone still holds it."""
        batch = set_index % len(self.batches)
        with self._lock:
            if self._holds[batch, camera]:
                self.busy += 1
                return None
            self._holds[batch, camera] = 1
            self._gens[batch, camera] = gen
        return RowHold(self, batch, camera, gen)

    def _claim(self, batch: int, camera: int, gen: int) -> RowHold | None:
        with self._lock:
            if self._gens[batch, camera] != gen:
                return None
            self._holds[batch, camera] += 1
        return RowHold(self, batch, camera, gen)

    def _release(self, batch: int, camera: int) -> None:
        with self._lock:
            if self._holds[batch, camera] <= 0:
                raise RuntimeError("a camera row was released more often than it was held")
            self._holds[batch, camera] -= 1

    def holds(self) -> int:
        """Holds outstanding over all rows (0 once every frame was let go)."""
        with self._lock:
            return int(self._holds.sum())


class HeldRows:
    """A frame set's holds on the rows of the one batch it goes to the model as (a ``BatchLease``
    stand-in: ``array`` and ``release``)."""

    def __init__(self, array: np.ndarray, holds: list[RowHold]):
        self.array = array
        self._holds = holds

    def release(self) -> None:
        holds, self._holds = self._holds, []
        for hold in holds:
            hold.release()
