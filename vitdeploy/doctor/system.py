"""How the doctor reads the machine: files and commands, through one small object.

Every fact comes from a file (``/etc/nv_tegra_release``) or a command's output (``nvpmodel -q``).
Reading both through ``System`` keeps the parsers pure and lets tests feed recorded outputs of a
Jetson to a machine that is not one (``tests/doctor/``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CommandOutput:
    """What a command printed and how it ended; ``returncode`` -1: it timed out or could not start."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class System:
    """The machine as the doctor reads it. ``root`` prefixes every absolute path (a test's fake root
    file system); ``timeout_s`` bounds each command (a hung ``nvidia-smi`` must not hang the doctor)."""

    def __init__(self, *, root: Path = Path("/"), timeout_s: float = 5.0):
        self.root = Path(root)
        self.timeout_s = timeout_s

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def read(self, absolute: str) -> str | None:
        """The text of file ``absolute`` (NUL bytes, as device-tree strings end, dropped), or None
        when it does not exist or cannot be read."""
        try:
            return self.path(absolute).read_text(encoding="utf-8", errors="replace").replace("\x00", "")
        except OSError:
            return None

    def run(self, argv: Sequence[str]) -> CommandOutput | None:
        """``argv``'s output, or None when the program is not on this machine."""
        if shutil.which(argv[0]) is None:
            return None
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return CommandOutput(-1, "", f"{argv[0]} did not answer within {self.timeout_s:g} s")
        except OSError as exc:
            return CommandOutput(-1, "", f"{argv[0]} could not start: {exc}")
        return CommandOutput(done.returncode, done.stdout, done.stderr)
