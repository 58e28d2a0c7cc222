"""A user's PyTorch factory: ``pkg.module:function`` or ``path/to/model.py:function`` -> its ``nn.Module``.

The function is called with the keywords it names among ``classes`` (a tuple of class names),
``num_classes`` and ``image_size`` ((H, W) pixels), and must return an ``nn.Module`` that takes
images (B, 3, H, W) and returns the outputs of one head kind (README, "Bring your own model").
A file is imported with its folder on ``sys.path`` (as ``python path/to/model.py`` would), so it
may import its neighbours. Whatever goes wrong in the user's code is one ``ExportError`` line
naming the factory and the exception.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from vitdeploy.bundle.files import sha256_file
from vitdeploy.errors import ExportError

#: The keywords a factory may name; it gets those it does.
FACTORY_KEYWORDS = ("classes", "num_classes", "image_size")
_DOTTED = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


def is_factory_reference(text: str) -> bool:
    """``module:function`` or ``file.py:function`` (zoo names have no colon)."""
    return ":" in text


@dataclass(frozen=True)
class Factory:
    """A parsed reference: ``module`` (dotted) or ``file``, and the ``function`` in it."""

    reference: str
    function: str
    module: str | None = None
    file: Path | None = None

    @classmethod
    def parse(cls, reference: str) -> Factory:
        where, _, function = reference.rpartition(":")
        if not where or not function.isidentifier():
            raise ExportError(f"{reference!r} is not a factory reference; write pkg.module:function or "
                              "path/to/model.py:function")
        if where.endswith(".py") or "/" in where or "\\" in where:
            return cls(reference=reference, function=function, file=Path(where))
        if not _DOTTED.fullmatch(where):
            raise ExportError(f"{where!r} in {reference!r} is neither a Python module path nor a .py file")
        return cls(reference=reference, function=function, module=where)

    def source_file(self) -> Path | None:
        """The file the function is defined in (for the manifest's sha256), once imported."""
        if self.file is not None:
            return self.file
        module = sys.modules.get(self.module or "")
        path = getattr(module, "__file__", None)
        return Path(path) if path else None

    def sha256(self) -> str:
        path = self.source_file()
        return sha256_file(path) if path is not None and path.is_file() else ""

    def call(self, **offered: Any) -> nn.Module:
        """Import the function, call it with the keywords of ``offered`` it names, check the result."""
        # A dotted module is looked up from the working folder, as `python -m` does.
        with _search_path(self.file.parent if self.file else Path.cwd()):
            function = self._function()
            try:
                names = inspect.signature(function).parameters
            except (TypeError, ValueError):
                names = {}
            kwargs = {k: v for k, v in offered.items() if k in names}
            try:
                model = function(**kwargs)
            except Exception as exc:  # the user's code: any exception is theirs to read
                raise ExportError(f"the factory {self.reference} raised {_one_line(exc)}") from exc
        if not isinstance(model, nn.Module):
            raise ExportError(f"the factory {self.reference} returned a {type(model).__name__}, not a "
                              "torch.nn.Module")
        return model

    def _function(self) -> Any:
        module = self._import()
        function = getattr(module, self.function, None)
        if function is None:
            defined = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_"))
            raise ExportError(f"{self.file or self.module} has no {self.function!r}; it defines "
                              f"{', '.join(defined) or 'no public functions'}")
        if not callable(function):
            raise ExportError(f"{self.reference} is a {type(function).__name__}, not a function")
        return function

    def _import(self) -> Any:
        try:
            if self.module is not None:
                return importlib.import_module(self.module)
            if not self.file.is_file():
                raise ExportError(f"factory file {self.file} does not exist")
            # A private module name per file, so two factories named model.py do not collide.
            name = "vitdeploy_factory_" + hashlib.sha256(str(self.file.resolve()).encode()).hexdigest()[:12]
            spec = importlib.util.spec_from_file_location(name, self.file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module
        except ExportError:
            raise
        except BaseException as exc:  # importing runs the user's module: SyntaxError, SystemExit ...
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise ExportError(f"cannot import {self.file or self.module} for the factory {self.reference}: "
                              f"{_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@contextlib.contextmanager
def _search_path(folder: Path) -> Iterator[None]:
    entry = str(folder.resolve())
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)
