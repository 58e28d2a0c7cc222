"""The optimisation profile of an engine: the sizes each dynamic axis may take at run time.

vitdeploy builds one profile. Its camera axis runs ``min..max`` cameras and TensorRT tunes the
kernels for ``opt`` (default: 1 / the bundle's ``max_cameras`` / ``max_cameras``, so a full rig
is the fast case). Every input with the camera axis gets the same range; a graph with another
dynamic axis (the SAM prompt decoder's ``points``) needs that axis's range given explicitly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vitdeploy.bundle.manifest import CAMERA_AXIS, Graph, Manifest, TensorSpec
from vitdeploy.tensorrt.errors import BuildError

Shape = tuple[int, ...]


@dataclass(frozen=True)
class DimRange:
    """Sizes one dynamic axis may take; TensorRT tunes for ``opt``."""

    min: int
    opt: int
    max: int

    def __post_init__(self):
        if not 1 <= self.min <= self.opt <= self.max:
            raise BuildError(f"a profile range needs 1 <= min <= opt <= max, got min {self.min}, opt {self.opt}, "
                             f"max {self.max}")

    def as_list(self) -> list[int]:
        return [self.min, self.opt, self.max]


_DIM = re.compile(r"^\s*([A-Za-z_][\w]*)\s*=\s*(\d+)\s*:\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_dim(text: str) -> tuple[str, DimRange]:
    """'points=1:4:16' -> ('points', DimRange(1, 4, 16)) (the form of `vitdeploy build --dim`)."""
    m = _DIM.match(text)
    if not m:
        raise BuildError(f"--dim {text!r} is not NAME=MIN:OPT:MAX, e.g. points=1:4:16")
    return m.group(1), DimRange(int(m.group(2)), int(m.group(3)), int(m.group(4)))


@dataclass(frozen=True)
class Profile:
    """One optimisation profile: a ``DimRange`` per dynamic axis name."""

    dims: dict[str, DimRange] = field(default_factory=dict)

    def shapes(self, spec: TensorSpec) -> tuple[Shape, Shape, Shape]:
        """(min, opt, max) shapes of one input; fixed axes stay as they are."""
        out: list[list[int]] = [[], [], []]
        for d in spec.shape:
            if isinstance(d, str):
                if d not in self.dims:
                    raise BuildError(f"input {spec.name!r} has dynamic axis {d!r}, which the profile does not cover")
                r = self.dims[d]
                for shape, size in zip(out, (r.min, r.opt, r.max), strict=True):
                    shape.append(size)
            else:
                for shape in out:
                    shape.append(int(d))
        return tuple(out[0]), tuple(out[1]), tuple(out[2])

    def input_shapes(self, graph: Graph) -> dict[str, tuple[Shape, Shape, Shape]]:
        """(min, opt, max) per input of ``graph`` that has a dynamic axis, in input order."""
        return {spec.name: self.shapes(spec) for spec in graph.inputs if spec.dynamic_axes}

    def to_record(self) -> dict[str, list[int]]:
        """The manifest form, ``{"cameras": [1, 6, 6]}``."""
        return {name: r.as_list() for name, r in self.dims.items()}

    @classmethod
    def from_record(cls, record: dict[str, list[int]]) -> Profile:
        return cls({name: DimRange(*values) for name, values in record.items()})

    @property
    def cameras(self) -> DimRange | None:
        return self.dims.get(CAMERA_AXIS)


def camera_profile(manifest: Manifest, graph: Graph, *, min_cameras: int | None = None,
                   opt_cameras: int | None = None, max_cameras: int | None = None,
                   other_dims: dict[str, DimRange] | None = None, static: bool = False) -> Profile:
    """The profile for ``graph``: cameras ``min..max`` (tuned for ``opt``) within the bundle's
    ``max_cameras``, plus ``other_dims`` for any other dynamic axis of the graph.

    Defaults: min 1, max the bundle's ``max_cameras``, opt the max (the full rig). A value the
    bundle cannot take is an error that says the allowed range. ``static`` (DLA, which has no
    dynamic dimensions): min = opt = max = the camera count asked (``--opt-cameras``, else
    ``--max-cameras``, else the bundle's ``max_cameras``), and every other axis one size.
    """
    limit = manifest.max_cameras
    if static:
        count = next((c for c in (opt_cameras, max_cameras, min_cameras) if c is not None), limit)
        given = {c for c in (min_cameras, opt_cameras, max_cameras) if c is not None}
        if len(given) > 1:
            raise BuildError(f"a DLA engine runs one camera count (DLA has no dynamic dimensions), got "
                             f"{sorted(given)}; give it with --max-cameras N")
        min_cameras = opt_cameras = max_cameras = count
        ranged = sorted(name for name, r in (other_dims or {}).items() if not r.min == r.opt == r.max)
        if ranged:
            raise BuildError(f"a DLA engine needs one size per axis (DLA has no dynamic dimensions); give "
                             f"--dim {ranged[0]}=N:N:N")
    hi = limit if max_cameras is None else max_cameras
    lo = 1 if min_cameras is None else min_cameras
    opt = hi if opt_cameras is None else opt_cameras
    for option, value in (("--min-cameras", min_cameras), ("--opt-cameras", opt_cameras),
                          ("--max-cameras", max_cameras)):
        if value is not None and not 1 <= value <= limit:
            raise BuildError(f"{option} {value} is outside 1..{limit}, the camera counts the bundle's ONNX takes "
                             f"(re-export with a larger --max-cameras for more)")
    if not lo <= opt <= hi:
        raise BuildError(f"cameras need min <= opt <= max, got --min-cameras {lo}, --opt-cameras {opt}, "
                         f"--max-cameras {hi}")
    axes = {d for spec in graph.inputs for d in spec.dynamic_axes.values()}
    dims: dict[str, DimRange] = {}
    if CAMERA_AXIS in axes:
        dims[CAMERA_AXIS] = DimRange(lo, opt, hi)
    other_dims = dict(other_dims or {})
    if CAMERA_AXIS in other_dims:
        raise BuildError("give the camera range with --min/--opt/--max-cameras, not --dim cameras=...")
    for name in sorted(axes - {CAMERA_AXIS}):
        if name not in other_dims:
            inputs = [s.name for s in graph.inputs if name in s.dynamic_axes.values()]
            raise BuildError(f"graph {graph.name!r} has dynamic axis {name!r} (inputs {inputs}); give its range "
                             f"with --dim {name}=MIN:OPT:MAX")
        dims[name] = other_dims[name]
    return Profile(dims)
