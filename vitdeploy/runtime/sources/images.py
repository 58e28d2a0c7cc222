"""An image-sequence folder: the images in it, in name order, as one camera's frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitdeploy.data.frames import IMAGE_SUFFIXES, images_in, read_image
from vitdeploy.errors import DataError
from vitdeploy.runtime.sources.base import FrameError, Source


class ImageFolderSource(Source):
    """Every image in ``folder`` (sorted by name); ``loop`` starts over at the end. An unreadable
    image is skipped and counted as corrupt."""

    def __init__(self, camera: str, folder: str | Path, *, loop: bool = False, **kwargs):
        super().__init__(camera, **kwargs)
        self.folder = Path(folder)
        self.loop = loop
        self._files: list[Path] = []
        self._next = 0

    def describe(self) -> str:
        return f"images {self.folder}" + (" (loop)" if self.loop else "")

    def _open(self) -> None:
        if not self.folder.is_dir():
            raise DataError(f"image folder {self.folder} does not exist")
        self._files = images_in(self.folder)
        if not self._files:
            raise DataError(f"image folder {self.folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
        self._next = 0

    def _read(self) -> np.ndarray | None:
        if self._next >= len(self._files):
            if not self.loop:
                return None
            self._next = 0
        path = self._files[self._next]
        self._next += 1
        try:
            return read_image(path)
        except DataError as exc:
            raise FrameError(f"cannot decode {path.name}") from exc
