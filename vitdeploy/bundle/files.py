"""Writing bundle files so that an interrupted command never leaves half a file behind.

Everything vitdeploy writes goes to a temporary name in the same folder and is renamed into place
(an atomic replace on POSIX and Windows), so a reader sees the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vitdeploy.errors import BundleError


def _create_beside(path: Path) -> Path:
    """Create an empty, new temporary file beside ``path``. Its mode is 0666 less the umask, as for
    any file a program writes (``mkstemp`` makes 0600, which the rename would carry into the bundle)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _create_beside(path)
    except OSError as exc:
        raise BundleError(f"cannot write {path}: {exc.strerror or exc}; choose a writable folder") from exc
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and check that files can be written in it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BundleError(f"{path} exists and is not a folder; give a folder path for the bundle")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe.", delete=True):
            pass
    except OSError as exc:
        raise BundleError(f"cannot write to {path}: {exc.strerror or exc}; choose a writable folder") from exc
    return path
