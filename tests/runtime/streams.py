"""Network cameras on 127.0.0.1 for tests and tools: one that hangs, and an MJPEG stream that can
stall, drop out and come back."""

from __future__ import annotations

import socket
import threading
import time

import cv2
import numpy as np


class SilentServer:
    """Accepts TCP connections and never sends a byte: a camera that hangs on open."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self.clients: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.clients.append(conn)  # kept open, never answered

    def close(self) -> None:
        self.sock.close()
        for c in self.clients:
            c.close()


class MjpegServer:
    """An HTTP multipart MJPEG stream (what many IP cameras serve) of ``size`` (H, W) frames at
    ``fps``; frame k is a flat grey of value ``10 * k % 256``. ``online`` False drops every client
    and refuses new ones (the camera went away); ``stall`` True keeps connections open but sends
    nothing (a hung encoder)."""

    def __init__(self, *, size: tuple[int, int] = (64, 96), fps: float = 20.0):
        self.size, self.fps = size, fps
        self.online = True
        self.stall = False
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if not self.online:
                conn.close()
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)  # the request; its contents do not matter
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
                k = 0
                while not self._closed and self.online:
                    if not self.stall:
                        jpeg = cv2.imencode(".jpg", np.full((*self.size, 3), 10 * k % 256, np.uint8))[1].tobytes()
                        conn.sendall(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                                     + jpeg + b"\r\n")
                        k += 1
                    time.sleep(1.0 / self.fps)
            except OSError:
                return

    def close(self) -> None:
        self._closed = True
        self.sock.close()
