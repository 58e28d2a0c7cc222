"""A live OpenCV capture in a child process, so a camera that hangs can always be let go.

Why a process and not only a thread: OpenCV's FFmpeg backend holds one process-wide lock while it
opens a stream, and a stream that accepts the connection but never answers holds it until FFmpeg's
open timeout — every other FFmpeg user in the process waits meanwhile (opening a video file, or the
video sink creating its writer). A driver call that never returns cannot be cancelled in a thread
either. In a child process neither can touch the rig: the parent waits on a pipe with a timeout,
and stopping or giving up is a ``kill``.

The child (``python -m vitdeploy.runtime.sources.capture_process SPEC_JSON``) opens the capture
with FFmpeg's open and read timeouts, then writes messages to stdout: a 1-byte kind and a 4-byte
little-endian length, then the payload — ``O`` opened (JSON: the backend's name), ``F`` a frame
(height and width as two little-endian uint32, then H*W*3 bytes in the spec's channel order), ``E`` an error (UTF-8
text; the child exits after it).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from vitdeploy.errors import DataError

_HEADER = struct.Struct("<cI")
_SIZE = struct.Struct("<II")
#: Time a child needs to start Python and import OpenCV before it can open anything, seconds.
CHILD_START_S = 3.0


@dataclass(frozen=True)
class CaptureSpec:
    """What the child opens: ``target`` a device index or a URL / GStreamer pipeline string;
    ``resolution`` (H, W) pixels to request; ``timeout_s`` FFmpeg's open and read timeout;
    ``channel_order`` of the frames sent (BGR: OpenCV's own, no conversion); ``threads`` FFmpeg's
    decoder threads (None: OpenCV's choice)."""

    target: int | str
    gstreamer: bool = False
    resolution: tuple[int, int] | None = None
    timeout_s: float = 5.0
    channel_order: str = "RGB"
    threads: int | None = None


class CaptureProcess:
    """The parent's end: start the child, wait for it to open, read frames; every wait has a
    deadline, and ``kill`` (safe from any thread) ends a wait at once."""

    def __init__(self, spec: CaptureSpec):
        self.spec = spec
        env = {**os.environ, "OPENCV_LOG_LEVEL": "ERROR", "PYTHONUNBUFFERED": "1"}
        # Its own session: a Ctrl-C in the terminal goes to vitdeploy, which stops the child itself.
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "vitdeploy.runtime.sources.capture_process", json.dumps(asdict(spec))],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0, env=env,
            start_new_session=True)
        self._fd = self._proc.stdout.fileno()

    def wait_opened(self) -> str:
        """Block until the capture is open (returns the backend's name); ``DataError`` when it
        failed or took longer than its timeout."""
        kind, payload = self._message(self.spec.timeout_s + CHILD_START_S, "to open")
        if kind != b"O":
            raise DataError(f"capture {self.spec.target!r}: unexpected message {kind!r} from its process")
        return json.loads(payload)["backend"]

    def read(self, out: np.ndarray | None = None) -> np.ndarray:
        """The next (H, W, 3) uint8 frame in the spec's channel order, read from the pipe straight
        into ``out`` when it has the frame's size (else into a new array); ``DataError`` when none
        came within the timeout."""
        deadline = time.monotonic() + self.spec.timeout_s
        kind, length = _HEADER.unpack(self._read_exactly(_HEADER.size, deadline, "for a frame"))
        deadline += self.spec.timeout_s  # a big frame may take a while
        if kind == b"E":
            raise DataError(self._read_exactly(length, deadline, "for a frame").decode("utf-8", "replace"))
        if kind != b"F" or length < _SIZE.size:
            raise DataError(f"capture {self.spec.target!r}: unexpected message {kind!r} from its process")
        h, w = _SIZE.unpack(self._read_exactly(_SIZE.size, deadline, "for a frame"))
        if length != _SIZE.size + h * w * 3:
            raise DataError(f"capture {self.spec.target!r}: a frame of {h}x{w} came with {length - _SIZE.size} bytes")
        fits = out is not None and out.shape == (h, w, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
        frame = out if fits else np.empty((h, w, 3), np.uint8)
        self._read_into(memoryview(frame.reshape(-1)), deadline, "for a frame")
        return frame

    def kill(self) -> None:
        """End the child now (a blocked ``read`` then returns with an error)."""
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()

    def close(self) -> None:
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=1.0)  # a process stuck in a driver may take longer: leave it
        self._proc.stdout.close()

    # ---- the pipe -----------------------------------------------------------------------------
    def _message(self, timeout_s: float, what: str) -> tuple[bytes, bytearray]:
        deadline = time.monotonic() + timeout_s
        kind, length = _HEADER.unpack(self._read_exactly(_HEADER.size, deadline, what))
        payload = self._read_exactly(length, deadline + timeout_s, what)  # a big frame may take a while
        if kind == b"E":
            raise DataError(payload.decode("utf-8", "replace"))
        return kind, payload

    def _read_exactly(self, n: int, deadline: float, what: str) -> bytearray:
        buf = bytearray(n)
        self._read_into(memoryview(buf), deadline, what)
        return buf

    def _read_into(self, view: memoryview, deadline: float, what: str) -> None:
        """Fill ``view`` from the pipe, waiting at most until ``deadline``."""
        n, got = len(view), 0
        while got < n:
            remaining = deadline - time.monotonic()
            ready = select.select([self._fd], [], [], max(0.0, remaining))[0] if remaining > 0 else []
            if not ready:
                raise DataError(f"capture {self.spec.target!r}: nothing within {self.spec.timeout_s:g} s {what} "
                                "(timeout_s in the rig file)")
            chunk = os.readv(self._fd, [view[got:]])
            if chunk == 0:
                code = self._proc.poll()
                raise DataError(f"capture {self.spec.target!r}: its process ended"
                                + (f" (exit code {code})" if code is not None else ""))
            got += chunk


# ---- the child ----------------------------------------------------------------------------------

def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the thread that started it ends."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _send(out, kind: bytes, payload: bytes) -> None:
    out.write(_HEADER.pack(kind, len(payload)))
    out.write(payload)
    out.flush()


def _child(spec: CaptureSpec) -> int:
    import cv2

    out = sys.stdout.buffer
    ms = int(spec.timeout_s * 1000)
    if spec.gstreamer:
        cap = cv2.VideoCapture(spec.target, cv2.CAP_GSTREAMER)
    else:
        threads = [] if spec.threads is None else [cv2.CAP_PROP_N_THREADS, spec.threads]
        cap = cv2.VideoCapture(spec.target, cv2.CAP_ANY,
                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms, *threads])
    if not cap.isOpened():
        hint = (" (is OpenCV built with GStreamer?)" if spec.gstreamer
                else f" (no answer within timeout_s = {spec.timeout_s:g} s, or nothing OpenCV can decode)")
        _send(out, b"E", f"OpenCV cannot open capture {spec.target!r}{hint}".encode())
        return 1
    if spec.resolution is not None:
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, spec.resolution[0])
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, spec.resolution[1])
    _send(out, b"O", json.dumps({"backend": cap.getBackendName()}).encode())
    while True:
        ok, bgr = cap.read()
        if not ok or bgr is None or bgr.ndim != 3:
            _send(out, b"E", f"capture {spec.target!r} delivered no frame".encode())
            return 1
        frame = np.ascontiguousarray(bgr if spec.channel_order == "BGR" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        # the pixels go to the pipe as they are, with no copy into a message first
        out.write(_HEADER.pack(b"F", _SIZE.size + frame.nbytes))
        out.write(_SIZE.pack(*frame.shape[:2]))
        out.write(memoryview(frame.reshape(-1)))
        out.flush()


def main(argv: list[str]) -> int:
    _die_with_parent()
    raw = json.loads(argv[0])
    spec = CaptureSpec(**{**raw, "resolution": tuple(raw["resolution"]) if raw.get("resolution") else None})
    try:
        return _child(spec)
    except (BrokenPipeError, KeyboardInterrupt):  # the parent is gone or stopping: nothing to say
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
