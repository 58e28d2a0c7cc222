"""The package layout of shared/docs/DESIGN.md, enforced on the source.

Imports are read with ``ast`` from every module of ``vitdeploy/``, at any depth (an import inside a
function counts: it is still a dependency, only a later one). The rules:

* rooms depend downwards only, in the order of ``ROOMS`` (``heads`` may use ``bundle``, not the
  reverse; a room may use itself);
* ``models`` imports nothing of vitdeploy but the contracts (heads, bundle, errors);
* ``calibration``, ``tensorrt`` and the runtime's backends never import ``models``;
* a backend never imports another backend;
* only ``cli`` turns errors into exit codes (``sys.exit``, ``SystemExit``, ``typer.Exit``);
* TensorRT and pycuda are imported inside functions only (DESIGN.md decision 3), and the contract
  rooms (heads, bundle, errors) import nothing but the standard library and numpy when imported;
* head kinds are compared and tabulated only in ``vitdeploy/heads`` (every other stage asks the
  head object);
* no file over ``MAX_FILE_LINES`` lines and no function over ``MAX_FUNCTION_LINES`` lines (its
  docstring not counted) unless its docstring says why, in a paragraph starting ``WHY_LONG``.

A deliberate exception is listed in ``EXCEPTIONS`` with its reason; an exception that no longer
happens fails too, so the list stays true.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import vitdeploy

PACKAGE = Path(vitdeploy.__file__).parent

#: Rooms from the top (may import everything below) to the bottom (imports nothing of vitdeploy).
ROOMS = ("cli", "demo", "replay", "bench", "doctor", "evaluation", "calibration", "exporter", "tensorrt", "runtime", "data",
         "models", "heads", "bundle", "extras", "errors")
#: The rooms ``models`` may import besides itself.
CONTRACTS = ("heads", "bundle", "extras", "errors")
#: Rooms that work on ONNX files and the manifest, never on the PyTorch models.
NO_MODELS = ("calibration", "tensorrt", "vitdeploy.runtime.backends")
#: Modules of vitdeploy.runtime.backends that are not backends themselves.
BACKEND_SHARED = ("vitdeploy.runtime.backends", "vitdeploy.runtime.backends.base")
#: Optional libraries that must not be imported when a module is (DESIGN.md decision 3).
LAZY = ("tensorrt", "pycuda")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
WHY_LONG = "Why this is long:"

#: (importing module, imported module or rule) -> why it is allowed.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("vitdeploy.runtime.backends.tensorrt", "vitdeploy.tensorrt"):
        "the tensorrt backend is a thin adapter under runtime/backends/ (one backend contract); the engine "
        "handling it adapts lives in the TensorRT room, which sits above the runtime",
    ("vitdeploy.runtime.backends.onnxruntime", "vitdeploy.runtime.backends.onnxruntime_fusions"):
        "not another backend: the onnxruntime backend's own in-memory graph rewrites, in a file of their own "
        "(graph pattern matching, about 300 lines) beside the backend that alone uses them",
    ("vitdeploy.tensorrt.build", "vitdeploy.calibration"):
        "`vitdeploy build --int8 --calib-data` calibrates first when the bundle lacks the precision's ONNX; the "
        "call is lazy and goes up one room",
    ("vitdeploy.calibration.modelopt_runner", "exit"):
        "the entry point of the ModelOpt child process: its exit status goes to the parent, which raises "
        "CalibrationError; no user sees it",
    ("vitdeploy.runtime.sources.capture_process", "exit"):
        "the entry point of a live camera's capture process: the parent reads its end of the pipe and reports "
        "the camera's health; no user sees the exit status",
}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name (for "from X import y": X, and X.y when that is a module)
    line: int
    lazy: bool  # inside a function


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(importer: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def imports() -> tuple[Import, ...]:
    known = modules()
    found = []
    for name, tree in known.items():
        is_package = (PACKAGE.parent / name.replace(".", "/") / "__init__.py").is_file()
        lazy_lines = {n.lineno for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                      for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, node, is_package)
                targets = [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            else:
                continue
            found += [Import(name, t, node.lineno, node.lineno in lazy_lines) for t in targets]
    return tuple(found)


def room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "vitdeploy" or len(parts) < 2:
        return None
    return parts[1]


def within(module: str, prefix: str) -> bool:
    full = prefix if prefix.startswith("vitdeploy") else f"vitdeploy.{prefix}"
    return module == full or module.startswith(full + ".")


def allowed(importer: str, imported: str) -> bool:
    """Whether ``EXCEPTIONS`` lists ``importer`` importing ``imported`` (or breaking the rule named so)."""
    return any(within(importer, a) and (imported == b or within(imported, b)) for (a, b) in EXCEPTIONS)


def test_every_room_is_in_the_layout():
    rooms = {room(m) for m in modules()} - {None}
    assert rooms <= set(ROOMS), f"rooms missing from DESIGN.md's layout: {sorted(rooms - set(ROOMS))}"


def test_dependencies_point_down():
    rank = {r: i for i, r in enumerate(ROOMS)}
    up = [f"{i.importer}:{i.line} imports {i.imported}" for i in imports()
          if room(i.importer) and room(i.imported) and room(i.importer) != room(i.imported)
          and rank[room(i.imported)] < rank[room(i.importer)] and not allowed(i.importer, i.imported)]
    assert not up, "imports that point up the layout:\n" + "\n".join(up)


def test_models_import_only_the_contracts():
    bad = [f"{i.importer}:{i.line} imports {i.imported}" for i in imports()
           if room(i.importer) == "models" and room(i.imported) not in (None, "models", *CONTRACTS)]
    assert not bad, "\n".join(bad)


def test_onnx_rooms_never_import_the_models():
    bad = [f"{i.importer}:{i.line} imports {i.imported}" for i in imports()
           if any(within(i.importer, r) for r in NO_MODELS) and room(i.imported) == "models"]
    assert not bad, "\n".join(bad)


def test_backends_never_import_each_other():
    def backend(module: str) -> bool:
        return within(module, "runtime.backends") and module not in BACKEND_SHARED

    bad = [f"{i.importer}:{i.line} imports {i.imported}" for i in imports()
           if backend(i.importer) and backend(i.imported) and i.importer != i.imported
           and not allowed(i.importer, i.imported)]
    assert not bad, "\n".join(bad)


def _exits(tree: ast.Module) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            dotted = f"{getattr(f.value, 'id', '')}.{f.attr}" if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if dotted in ("sys.exit", "os._exit", "typer.Exit", "exit", "quit", "SystemExit"):
                lines.append(node.lineno)
        elif isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if getattr(target, "id", None) == "SystemExit" or getattr(target, "attr", None) == "Exit":
                lines.append(node.lineno)
    return lines


def test_only_the_cli_turns_errors_into_exit_codes():
    bad = [f"{name}:{line}" for name, tree in modules().items() if room(name) != "cli"
           for line in _exits(tree) if not allowed(name, "exit")]
    assert not bad, "exit codes outside vitdeploy.cli:\n" + "\n".join(bad)


def test_tensorrt_and_pycuda_are_imported_lazily():
    bad = [f"{i.importer}:{i.line} imports {i.imported}" for i in imports()
           if i.imported.split(".")[0] in LAZY and not i.lazy]
    assert not bad, "module-level imports of optional GPU libraries:\n" + "\n".join(bad)


def test_every_exception_is_still_needed():
    used = {(a, b) for (a, b) in EXCEPTIONS if b == "exit" and any(
        within(name, a) and _exits(tree) for name, tree in modules().items())}
    used |= {(a, b) for (a, b) in EXCEPTIONS for i in imports() if within(i.importer, a) and within(i.imported, b)}
    assert set(EXCEPTIONS) == used, f"exceptions that no longer happen: {sorted(set(EXCEPTIONS) - used)}"


def test_the_contract_rooms_are_light():
    import sys

    heavy = [f"{i.importer}:{i.line} imports {i.imported}" for i in imports()
             if room(i.importer) in CONTRACTS and not i.lazy and room(i.imported) is None
             and i.imported.split(".")[0] not in (*sys.stdlib_module_names, "numpy", "vitdeploy", "__future__")]
    assert not heavy, "contract rooms import these when imported (import them inside the function):\n" + "\n".join(heavy)


def _kinds_in(node: ast.AST) -> set[str]:
    from vitdeploy.heads import HEADS

    values = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return {v.value for v in values if isinstance(v, ast.Constant) and v.value in HEADS}


def test_head_kinds_are_named_only_in_the_heads_room():
    found = []
    for name, tree in modules().items():
        if room(name) == "heads":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(_kinds_in(n) for n in (node.left, *node.comparators)):
                found.append(f"{name}:{node.lineno} compares with a head kind")
            elif isinstance(node, ast.Dict) and len(set().union(*(_kinds_in(k) for k in node.keys if k))) >= 2:
                found.append(f"{name}:{node.lineno} is a table of head kinds")
    assert not found, "ask the head object (vitdeploy.heads) instead:\n" + "\n".join(found)


# ---- size -----------------------------------------------------------------------------------------

def _reason(docstring: str | None) -> str:
    text = " ".join((docstring or "").split())
    return text.split(WHY_LONG, 1)[1].strip() if WHY_LONG in text else ""


def _function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


@pytest.mark.parametrize("limit", [MAX_FILE_LINES])
def test_files_are_short_or_say_why(limit):
    long = []
    for name, tree in modules().items():
        path = PACKAGE.parent / (name.replace(".", "/") + ".py")
        path = path if path.is_file() else PACKAGE.parent / name.replace(".", "/") / "__init__.py"
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count > limit and len(_reason(ast.get_docstring(tree))) < 20:
            long.append(f"{name}: {count} lines")
    assert not long, f"files over {limit} lines whose docstring does not say '{WHY_LONG} ...':\n" + "\n".join(long)


def test_functions_are_short_or_say_why():
    long = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                count = _function_lines(node)
                if count > MAX_FUNCTION_LINES and len(_reason(ast.get_docstring(node))) < 20:
                    long.append(f"{name}.{node.name}: {count} lines")
    assert not long, (f"functions over {MAX_FUNCTION_LINES} lines (docstring not counted) whose docstring does not "
                      f"say '{WHY_LONG} ...':\n" + "\n".join(long))


# ---- the checker itself -----------------------------------------------------------------------------

def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    tree = ast.parse("def f():\n    from vitdeploy.models import zoo\n")
    node = tree.body[0].body[0]
    assert _resolve("vitdeploy.calibration.data", node, False) == "vitdeploy.models"
    rel = ast.parse("from ..heads import base\n").body[0]
    assert _resolve("vitdeploy.runtime.run", rel, False) == "vitdeploy.heads"
    assert _resolve("vitdeploy.runtime", rel, True) == "vitdeploy.heads"
    lazy = [i for i in imports() if i.importer == "vitdeploy.runtime.run" and i.imported == "vitdeploy.models.exported"]
    assert lazy and lazy[0].lazy  # run_rig builds the torch model inside the function
    assert _exits(ast.parse("import sys\ndef f():\n    sys.exit(2)\n")) == [3]
    assert _reason(f"Does x.\n\n{WHY_LONG} the steps must\n stay in order.") == "the steps must stay in order."
    assert _reason("Does x; long because.") == ""
    assert _kinds_in(ast.parse("head in ('cls', 'cait')").body[0].value.comparators[0]) == {"cls", "cait"}
