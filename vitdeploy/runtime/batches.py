"""Reused camera batches: a small ring of preallocated (N, H, W, 3) uint8 arrays with ownership.

Allocating a 6 x 1080p batch per frame set (37 MB) costs page faults (and zeroing) on every set;
on a fast GPU that is a large part of the CPU the runtime spends. The pipeline instead copies each
camera's frame once into a batch of this ring, and the frame set then *holds* that batch (a
``BatchLease``) until inference has read it (or the set is dropped on the way). A batch goes back
to the ring only when released, so no stage ever sees a batch being overwritten. The ring never
blocks: when every batch is held it allocates one more, so a slow stage costs memory (bounded by
the queues in front of it), never the pipeline's pace. ``allocated`` counts the batches made.
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
