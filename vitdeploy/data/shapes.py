"""3D shapes of the things in a synthetic driving scene, built from a few convex parts.

Each object is a :class:`Shape`: vertices in its own frame (metres; x forward along its heading,
y left, z up, origin on the ground under its centre) and an ordered list of parts that the
renderer paints in that order. The parts are chosen so that the silhouette says what the object
is from any camera of the rig: a car is a body, a glass cabin and four wheels; a truck a tall cargo
box behind a cab; a pedestrian legs, torso, arms and head; a cyclist a rider over two wheel rings; a
cone an orange cone with a white band; a traffic light a pole carrying a dark housing with lamps.
Colours are RGB in [0, 1] before lighting.

Why this is long: the catalogue of every object kind is kept beside the part builder it uses, so
their proportions (metres) read side by side and one change of the builder is checked against all
of them in one file.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np

RGB = tuple[float, float, float]


class PartKind(enum.Enum):
    SOLID = "solid"      # a cuboid: six shaded faces, back faces culled
    HULL = "hull"        # a convex body in one colour: the hull of its projected vertices
    LINES = "lines"      # tubes drawn as thick lines (wheel rings, bicycle frame)
    DECAL = "decal"      # a flat quad on a face (window, lamp, stripe); colour only, not a silhouette
    SHADOW = "shadow"    # a dark quad on the ground under the object; colour only


class Lamp(enum.Enum):
    """What a DECAL is when it can light up; the renderer picks its colour by lighting and time."""

    HEAD = "head"
    TAIL = "tail"
    SIGNAL_RED = "red"
    SIGNAL_YELLOW = "yellow"
    SIGNAL_GREEN = "green"
    STREET = "street"


@dataclass(frozen=True, eq=False)
class Part:
    kind: PartKind
    verts: slice                          # this part's rows of Shape.vertices
    color: RGB = (0.5, 0.5, 0.5)
    face_colors: np.ndarray | None = None  # SOLID: (6, 3) RGB per face, in BOX_FACES order
    faces: tuple[int, int] = (0, 0)       # SOLID: [start, stop) rows of Shape.face_index
    segments: tuple[tuple[int, int], ...] = ()  # LINES: vertex index pairs, relative to verts.start
    thickness_m: float = 0.0              # LINES
    lamp: Lamp | None = None              # DECAL
    labelled: bool = True                 # False: occludes, but is not part of the object's mask


@dataclass(frozen=True, eq=False)
class Shape:
    """An object's geometry: ``vertices`` (V, 3) metres in the object frame, painted part by part.

    ``swing`` (V, 3) metres is added to the vertices scaled by sin(gait phase): walking legs and arms.
    """

    vertices: np.ndarray
    swing: np.ndarray
    parts: tuple[Part, ...]
    radius_m: float                       # bounding sphere radius around the origin, metres
    height_m: float
    # all SOLID faces of all parts, so that culling and shading are one array operation per object:
    face_index: np.ndarray                # (F, 4) vertex indices, counter-clockwise from outside
    face_normal: np.ndarray               # (F,) which of BOX_NORMALS each face has
    face_color: np.ndarray                # (F, 3) RGB
    part_color: np.ndarray                # (P, 3) RGB of each part (its main colour)
    lamps: tuple[int, ...] = field(default=())  # indices of DECAL parts that are lamps


# Cuboid corners: bit 0 -> x, bit 1 -> y, bit 2 -> z (0 = minus side). Faces are listed
# counter-clockwise seen from outside, so a face is towards the camera iff its projection is
# clockwise in the image (y down). Order: +x (front), -x (back), +y (left), -y (right), +z (top), -z.
_CORNERS = np.array([[(i >> k) & 1 for k in range(3)] for i in range(8)], dtype=np.float64) * 2 - 1
BOX_FACES = np.array([[1, 3, 7, 5], [0, 4, 6, 2], [2, 6, 7, 3], [0, 1, 5, 4], [4, 5, 7, 6], [0, 2, 3, 1]])
BOX_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
_FACE_INDEX = {(0, 1): 0, (0, -1): 1, (1, 1): 2, (1, -1): 3, (2, 1): 4, (2, -1): 5}


@functools.lru_cache(maxsize=8)
def _unit_ring(sides: int) -> np.ndarray:
    """(sides, 2) points of the unit circle, counter-clockwise from angle 0."""
    a = np.linspace(0, 2 * math.pi, sides, endpoint=False)
    ring = np.stack([np.cos(a), np.sin(a)], axis=1)
    ring.flags.writeable = False
    return ring


def _shade(color: RGB, factor: float) -> RGB:
    return (min(1.0, color[0] * factor), min(1.0, color[1] * factor), min(1.0, color[2] * factor))


class _Builder:
    """Collects vertices and parts; the methods name what they add, in object-frame metres."""

    def __init__(self) -> None:
        self._verts: list[np.ndarray] = []
        self._swing: list[np.ndarray | int] = []  # an int n stands for n still vertices
        self._parts: list[Part] = []
        self._n = 0

    def _add(self, verts: np.ndarray, swing: np.ndarray | None = None) -> slice:
        verts = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
        self._verts.append(verts)
        self._swing.append(len(verts) if swing is None else np.asarray(swing, dtype=np.float64))
        s = slice(self._n, self._n + len(verts))
        self._n += len(verts)
        return s

    def box(self, center, half, color: RGB, *, faces: dict[int, RGB] | None = None, taper=(1.0, 1.0),
            swing_bottom=None, swing_top=None, labelled: bool = True) -> np.ndarray:
        """A cuboid, or with ``taper`` (x, y scale of the top face) a frustum; returns its (8, 3) corners.

        ``faces`` overrides the colour of some faces (index in BOX_FACES order);
        ``swing_bottom``/``swing_top`` (3,) metres move the bottom/top corners with the gait.
        """
        corners = _CORNERS.copy()
        corners[4:, :2] *= taper
        verts = np.asarray(center, dtype=np.float64) + corners * np.asarray(half, dtype=np.float64)
        swing = None
        if swing_bottom is not None or swing_top is not None:
            swing = np.zeros((8, 3))
            swing[:4] = swing_bottom if swing_bottom is not None else 0.0
            swing[4:] = swing_top if swing_top is not None else 0.0
        colors = [color] * 6
        for i, c in (faces or {}).items():
            colors[i] = c
        self._parts.append(Part(PartKind.SOLID, self._add(verts, swing), color=color,
                                face_colors=np.array(colors, dtype=np.float64), labelled=labelled))
        return verts

    def panel(self, corners: np.ndarray, face: int, color: RGB, *, across=(0.0, 1.0), up=(0.0, 1.0),
              lamp: Lamp | None = None) -> None:
        """A decal on face ``face`` of a box's (8, 3) corners, covering the fractions ``across`` of
        its width and ``up`` of its height (side faces). Windows, lamps, plates.

        The patch keeps the face's winding and sits 1 cm out along its normal.
        """
        c = corners[BOX_FACES[face]]
        (ax, ay, az), (bx, by, bz) = (c[1] - c[0]).tolist(), (c[3] - c[0]).tolist()
        normal = np.array([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx])
        normal /= math.sqrt(float(normal @ normal))
        u, v = (up, across) if abs(az) > max(abs(ax), abs(ay)) else (across, up)
        # bilinear weights of the four face corners at the patch corners (u0,v0) (u1,v0) (u1,v1) (u0,v1)
        a, b = np.array([u[0], u[1], u[1], u[0]]), np.array([v[0], v[0], v[1], v[1]])
        weights = np.stack([(1 - a) * (1 - b), a * (1 - b), a * b, (1 - a) * b], axis=1)
        quad = weights @ c + 0.01 * normal
        self._parts.append(Part(PartKind.DECAL, self._add(quad), color=color, lamp=lamp))

    def prism(self, center, radius: float, half_len: float, axis: int, color: RGB, *, sides: int = 8,
              top_radius: float | None = None) -> None:
        """A regular prism (or frustum when ``top_radius`` is given) around ``axis`` (0=x, 1=y, 2=z)."""
        ring = _unit_ring(sides)
        r2 = radius if top_radius is None else top_radius
        other = [k for k in range(3) if k != axis]
        verts = np.zeros((2 * sides, 3))
        verts[:sides, other] = ring * radius
        verts[sides:, other] = ring * r2
        verts[:sides, axis] = -half_len
        verts[sides:, axis] = half_len
        self._parts.append(Part(PartKind.HULL, self._add(verts + np.asarray(center)), color=color))

    def hull(self, verts, color: RGB, swing=None) -> None:
        self._parts.append(Part(PartKind.HULL, self._add(verts, swing), color=color))

    def ring(self, center, radius: float, axis: int, thickness_m: float, color: RGB, *, sides: int = 14) -> None:
        """A circle of tube in the plane normal to ``axis`` (a bicycle wheel)."""
        a = np.linspace(0, 2 * math.pi, sides, endpoint=False)
        other = [k for k in range(3) if k != axis]
        verts = np.zeros((sides, 3))
        verts[:, other[0]] = np.cos(a) * radius
        verts[:, other[1]] = np.sin(a) * radius
        segs = tuple((i, (i + 1) % sides) for i in range(sides))
        self._parts.append(Part(PartKind.LINES, self._add(verts + np.asarray(center)), color=color,
                                segments=segs, thickness_m=thickness_m))

    def lines(self, points, segments, thickness_m: float, color: RGB, swing=None) -> None:
        self._parts.append(Part(PartKind.LINES, self._add(points, swing), color=color,
                                segments=tuple(segments), thickness_m=thickness_m))

    def decal(self, center, half, face: tuple[int, int], color: RGB, *, lamp: Lamp | None = None,
              disc: bool = False) -> None:
        """A quad (or with ``disc`` an inscribed octagon) on the face (axis, sign) of the cuboid
        (center, half): ``half`` gives its extent on the two other axes; it sits 1 cm outside the face."""
        center = np.asarray(center, dtype=np.float64).copy()
        half = np.asarray(half, dtype=np.float64).copy()
        center[face[0]] += face[1] * (half[face[0]] + 0.01)
        half[face[0]] = 0.0
        quad = (center + _CORNERS * half)[BOX_FACES[_FACE_INDEX[face]]]
        if disc:  # same winding as the quad: angle increases from corner 0 towards corner 1
            e1, e2 = (quad[1] - quad[0]) / 2, (quad[3] - quad[0]) / 2
            a = np.linspace(0, 2 * math.pi, 8, endpoint=False)
            quad = center + np.cos(a)[:, None] * e1 + np.sin(a)[:, None] * e2
        self._parts.append(Part(PartKind.DECAL, self._add(quad), color=color, lamp=lamp))

    def shadow(self, half_x: float, half_y: float) -> None:
        quad = [[-half_x, -half_y, 0.01], [half_x, -half_y, 0.01], [half_x, half_y, 0.01], [-half_x, half_y, 0.01]]
        self._parts.append(Part(PartKind.SHADOW, self._add(quad), color=(0.0, 0.0, 0.0)))

    def build(self) -> Shape:
        verts = np.concatenate(self._verts)
        swing = np.concatenate([np.zeros((m, 3)) if isinstance(m, int) else m for m in self._swing])
        parts, face_index, face_color = [], [], []
        for p in self._parts:
            if p.kind is PartKind.SOLID:
                start = len(face_index) * 6
                face_index.append(BOX_FACES + p.verts.start)
                face_color.append(p.face_colors)
                p = replace(p, faces=(start, start + 6))
            parts.append(p)
        lamps = tuple(i for i, p in enumerate(parts) if p.lamp is not None)
        reach = np.abs(verts) + np.abs(swing)
        n_solid = len(face_index)
        return Shape(vertices=verts, swing=swing, parts=tuple(parts),
                     radius_m=float(np.linalg.norm(reach, axis=1).max()), height_m=float(verts[:, 2].max()),
                     face_index=np.concatenate(face_index) if face_index else np.zeros((0, 4), dtype=np.int64),
                     face_normal=np.tile(np.arange(6), n_solid),
                     face_color=np.concatenate(face_color) if face_color else np.zeros((0, 3)),
                     part_color=np.array([p.color for p in parts], dtype=np.float64), lamps=lamps)


# ---------------------------------------------------------------- palettes
CAR_PAINTS: tuple[RGB, ...] = (
    (0.92, 0.92, 0.90), (0.08, 0.08, 0.09), (0.62, 0.64, 0.66), (0.38, 0.39, 0.41), (0.70, 0.08, 0.07),
    (0.10, 0.22, 0.55), (0.05, 0.10, 0.25), (0.12, 0.35, 0.18), (0.95, 0.78, 0.10), (0.75, 0.70, 0.58),
    (0.85, 0.40, 0.10), (0.45, 0.10, 0.30),
)
CLOTHES: tuple[RGB, ...] = (
    (0.85, 0.15, 0.12), (0.12, 0.25, 0.65), (0.95, 0.95, 0.93), (0.10, 0.10, 0.10), (0.20, 0.55, 0.25),
    (0.95, 0.75, 0.10), (0.55, 0.35, 0.20), (0.60, 0.60, 0.65), (0.90, 0.45, 0.60), (0.30, 0.70, 0.80),
)
SKIN: tuple[RGB, ...] = ((0.96, 0.80, 0.66), (0.85, 0.64, 0.48), (0.62, 0.42, 0.28), (0.40, 0.26, 0.16))
GLASS: RGB = (0.13, 0.17, 0.22)
TYRE: RGB = (0.06, 0.06, 0.06)
ORANGE: RGB = (1.0, 0.42, 0.02)


def _pick(rng: np.random.Generator, palette: tuple[RGB, ...], jitter: float = 0.06) -> RGB:
    c = np.asarray(palette[int(rng.integers(len(palette)))]) * rng.uniform(1 - jitter, 1 + jitter)
    return tuple(float(v) for v in np.clip(c, 0, 1))  # type: ignore[return-value]


def _wheels(b: _Builder, *, wheelbase: float, track: float, radius: float, width: float,
            rear_axles: int = 1) -> None:
    xs = [wheelbase / 2] + [-wheelbase / 2 - 1.3 * radius * 2 * k for k in range(rear_axles)]
    for x in xs:
        for side in (-1, 1):
            b.prism((x, side * (track / 2 - width / 2), radius), radius, width / 2, 1, TYRE)


def car(rng: np.random.Generator) -> Shape:
    """A passenger car: length 3.7-5.0 m, width 1.65-1.95 m, height 1.35-1.85 m (SUV-ish when tall)."""
    b = _Builder()
    length, width = rng.uniform(3.7, 5.0), rng.uniform(1.65, 1.95)
    height = rng.uniform(1.35, 1.85)
    paint = _pick(rng, CAR_PAINTS)
    r = rng.uniform(0.29, 0.36)
    body_bottom, body_top = r * 0.95, height * rng.uniform(0.52, 0.6)
    b.shadow(length / 2 + 0.1, width / 2 + 0.05)
    _wheels(b, wheelbase=length * 0.6, track=width * 0.98, radius=r, width=0.22)
    body_c = (0.0, 0.0, (body_bottom + body_top) / 2)
    body_h = (length / 2, width / 2, (body_top - body_bottom) / 2)
    b.box(body_c, body_h, paint, faces={4: _shade(paint, 1.1)})
    # cabin: shorter, narrower at the top, set back; painted, with windows on all four sides
    cab_len = length * rng.uniform(0.45, 0.6)
    cab_c = (-length * rng.uniform(0.02, 0.1), 0.0, (body_top + height) / 2)
    cab_h = (cab_len / 2, width / 2 * 0.92, (height - body_top) / 2)
    cab = b.box(cab_c, cab_h, paint, faces={4: _shade(paint, 1.1)}, taper=(rng.uniform(0.6, 0.8), 0.85))
    b.panel(cab, 0, GLASS, across=(0.06, 0.94), up=(0.08, 0.9))   # windscreen
    b.panel(cab, 1, GLASS, across=(0.06, 0.94), up=(0.1, 0.9))    # rear window
    split = rng.uniform(0.45, 0.55)
    for face in (2, 3):  # side windows, split by the B pillar
        b.panel(cab, face, GLASS, across=(0.05, split - 0.04), up=(0.1, 0.9))
        b.panel(cab, face, GLASS, across=(split + 0.04, 0.95), up=(0.1, 0.9))
    lamp_z = body_top - 0.14
    lamp_h = (0.0, 0.16, 0.06)
    for side in (-1, 1):
        y = side * (width / 2 - 0.22)
        b.decal((0, y, lamp_z), (length / 2, lamp_h[1], lamp_h[2]), (0, 1), (0.9, 0.9, 0.85), lamp=Lamp.HEAD)
        b.decal((0, y, lamp_z), (length / 2, lamp_h[1], lamp_h[2]), (0, -1), (0.55, 0.05, 0.04), lamp=Lamp.TAIL)
    plate = (0.0, 0.0, body_bottom + 0.16)
    b.decal(plate, (length / 2, 0.26, 0.06), (0, 1), (0.92, 0.92, 0.88))
    b.decal(plate, (length / 2, 0.26, 0.06), (0, -1), (0.92, 0.92, 0.88))
    # a dark grille under the headlamps
    b.decal((0, 0, body_bottom + 0.32), (length / 2, width * 0.28, 0.07), (0, 1), (0.1, 0.1, 0.1))
    return b.build()


def truck(rng: np.random.Generator) -> Shape:
    """A box truck: cab in front of a tall cargo box; length 6-10 m, height 3.0-4.0 m."""
    b = _Builder()
    length, width = rng.uniform(6.0, 10.0), rng.uniform(2.3, 2.55)
    height = rng.uniform(3.0, 4.0)
    cab_len = rng.uniform(1.7, 2.3)
    cab_paint = _pick(rng, CAR_PAINTS + ((0.85, 0.1, 0.1), (0.1, 0.3, 0.7)))
    box_paint = _pick(rng, ((0.93, 0.93, 0.91), (0.80, 0.80, 0.78), (0.55, 0.58, 0.6), (0.2, 0.35, 0.6),
                            (0.85, 0.6, 0.15)))
    r = rng.uniform(0.45, 0.52)
    b.shadow(length / 2 + 0.1, width / 2 + 0.05)
    axles = 1 if length < 8 else 2
    front_axle, rear_axle = length / 2 - cab_len * 0.55, -length / 2 + 1.4
    for x in [front_axle] + [rear_axle + 1.2 * k for k in range(axles)]:
        for side in (-1, 1):
            b.prism((x, side * (width / 2 - 0.18), r), r, 0.15, 1, TYRE)
    chassis_z = r * 1.5
    # cargo box
    box_len = length - cab_len - 0.15
    box_c = (-length / 2 + box_len / 2, 0.0, (chassis_z + height) / 2)
    box_h = (box_len / 2, width / 2, (height - chassis_z) / 2)
    b.box(box_c, box_h, box_paint, faces={4: _shade(box_paint, 1.05)})
    if rng.random() < 0.7:  # a livery stripe along both sides
        stripe = _pick(rng, CLOTHES)
        stripe_c = (box_c[0], 0.0, box_c[2] - box_h[2] * rng.uniform(-0.3, 0.4))
        for side in (-1, 1):
            b.decal(stripe_c, (box_h[0] * 0.9, box_h[1], box_h[2] * 0.15), (1, side), stripe)
    b.decal((box_c[0], 0, box_c[2]), (box_h[0], 0.02, box_h[2] * 0.95), (0, -1), _shade(box_paint, 0.8))
    # cab: lower and a little narrower, windscreen on the upper front
    cab_top = min(height - 0.2, rng.uniform(2.6, 3.0))
    cab_c = (length / 2 - cab_len / 2, 0.0, (r * 0.9 + cab_top) / 2)
    cab_h = (cab_len / 2, width / 2 * 0.97, (cab_top - r * 0.9) / 2)
    b.box(cab_c, cab_h, cab_paint)
    glass_c = (cab_c[0], 0.0, cab_top - 0.45)
    b.decal(glass_c, (cab_h[0], cab_h[1] * 0.85, 0.35), (0, 1), GLASS)
    for side in (-1, 1):
        b.decal((cab_c[0] + cab_len * 0.2, 0, cab_top - 0.5), (cab_len * 0.25, cab_h[1], 0.3), (1, side), GLASS)
        y = side * (width / 2 - 0.25)
        b.decal((0, y, r * 1.4), (length / 2, 0.15, 0.08), (0, 1), (0.9, 0.9, 0.85), lamp=Lamp.HEAD)
        b.decal((0, y, chassis_z + 0.2), (length / 2, 0.12, 0.1), (0, -1), (0.55, 0.05, 0.04), lamp=Lamp.TAIL)
    return b.build()


def _person(b: _Builder, rng: np.random.Generator, *, height: float, base_z: float, seated: bool) -> None:
    """Legs, torso, arms and head of a person standing on (or seated above) ``base_z``."""
    shirt, trousers = _pick(rng, CLOTHES), _pick(rng, CLOTHES[:4] + ((0.15, 0.2, 0.35),))
    skin = _pick(rng, SKIN, 0.03)
    head_r = height * 0.065
    shoulder = base_z + height * 0.82
    hip = base_z + height * 0.5
    torso_w = height * rng.uniform(0.13, 0.16)
    depth = height * 0.1
    leg_w = torso_w * 0.42
    step = height * 0.16
    if seated:  # cyclist: thighs forward to the pedals, legs down
        for side, sgn in ((-1, 1), (1, -1)):
            b.box((0.15, side * leg_w * 0.7, hip - height * 0.22), (leg_w * 0.7, leg_w / 2, height * 0.24), trousers,
                  swing_bottom=(0.0, 0.0, sgn * 0.08))
        lean = height * 0.12
    else:
        for side, sgn in ((-1, 1), (1, -1)):
            b.box((0, side * leg_w * 0.65, hip / 2 + base_z / 2), (depth / 2, leg_w / 2, (hip - base_z) / 2),
                  trousers, swing_bottom=(sgn * step, 0.0, 0.0))
        lean = 0.0
    arm_w = torso_w * 0.28
    for side, sgn in ((-1, -1), (1, 1)):
        top = (lean, side * (torso_w / 2 + arm_w / 2), shoulder - height * 0.14)
        b.box(top, (depth * 0.4, arm_w / 2, height * 0.16), shirt,
              swing_bottom=None if seated else (sgn * step * 0.6, 0.0, 0.0))
    torso = np.asarray(_CORNERS * (depth / 2, torso_w / 2, (shoulder - hip) / 2) + (0, 0, (shoulder + hip) / 2))
    torso[4:, 0] += lean  # top corners lean forward on a bicycle
    b.hull(torso, shirt)
    b.prism((lean * 1.15, 0, shoulder + head_r * 1.25), head_r, head_r * 1.15, 2, skin)
    hair = _pick(rng, ((0.08, 0.06, 0.05), (0.3, 0.2, 0.1), (0.6, 0.5, 0.3), (0.9, 0.9, 0.9)), 0.05)
    b.prism((lean * 1.15, 0, shoulder + head_r * 2.1), head_r * 1.02, head_r * 0.35, 2, hair)


def pedestrian(rng: np.random.Generator) -> Shape:
    """A walking person, 1.1-1.95 m tall; legs and arms swing with the gait."""
    b = _Builder()
    height = rng.uniform(1.1, 1.95) if rng.random() < 0.15 else rng.uniform(1.55, 1.95)
    b.shadow(0.25, 0.25)
    _person(b, rng, height=height, base_z=0.0, seated=False)
    return b.build()


def cyclist(rng: np.random.Generator) -> Shape:
    """A person on a bicycle: two wheel rings, a frame, the rider leaning over the bars."""
    b = _Builder()
    r = rng.uniform(0.33, 0.36)
    wheelbase = rng.uniform(1.0, 1.1)
    frame = _pick(rng, CAR_PAINTS)
    b.shadow(wheelbase / 2 + r, 0.2)
    for x in (-wheelbase / 2, wheelbase / 2):
        b.ring((x, 0, r), r, 1, 0.05, TYRE)
    seat = (-0.12, 0.0, r + 0.55)
    bars = (wheelbase / 2 - 0.12, 0.0, r + 0.62)
    crank = (0.0, 0.0, r)
    pts = [(-wheelbase / 2, 0, r), seat, crank, bars, (wheelbase / 2, 0, r), (-wheelbase / 2 + 0.05, 0, r + 0.02)]
    b.lines(pts, [(0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (1, 3)], 0.04, frame)
    height = rng.uniform(1.6, 1.9)
    _person(b, rng, height=height, base_z=seat[2] - height * 0.5 + 0.05, seated=True)
    return b.build()


def traffic_cone(rng: np.random.Generator) -> Shape:
    """An orange cone 0.45-0.9 m tall with a white reflective band on a black square base."""
    b = _Builder()
    h = rng.uniform(0.45, 0.9)
    r = h * 0.22
    b.box((0, 0, 0.02), (r * 1.3, r * 1.3, 0.02), (0.08, 0.08, 0.08))
    b.prism((0, 0, h / 2 + 0.02), r, h / 2, 2, ORANGE, sides=10, top_radius=r * 0.12)
    lo, hi = 0.45, 0.65
    b.prism((0, 0, h * (lo + hi) / 2 + 0.02), r * (1 - lo * 0.88) + 0.005, h * (hi - lo) / 2, 2,
            (0.97, 0.97, 0.97), sides=10, top_radius=r * (1 - hi * 0.88) + 0.005)
    return b.build()


def traffic_light(rng: np.random.Generator) -> Shape:
    """A pole 2.4-3.6 m tall carrying a dark housing (facing +x) with red/yellow/green lamps.

    Only the housing is labelled (the pole occludes but is not in the mask), as in BDD100K.
    """
    b = _Builder()
    pole_h = rng.uniform(2.4, 3.6)
    housing = (0.08, 0.38, 1.0) if rng.random() < 0.15 else (0.1, 0.1, 0.1)  # a few have yellow housings
    pole_c = (0.82, 0.82, 0.82) if rng.random() < 0.5 else (0.35, 0.37, 0.38)
    pole_c = _shade(pole_c, rng.uniform(0.85, 1.1))
    # labelled like BDD100K: the box is the signal head; the pole is painted but not part of the mask
    b.box((0, 0, pole_h / 2), (0.06, 0.06, pole_h / 2), pole_c, labelled=False)
    hw, hh = rng.uniform(0.32, 0.4), rng.uniform(0.95, 1.1)
    house_c = (0.05, 0.0, pole_h + hh / 2 - 0.1)
    if housing[0] < 0.5:
        b.box(house_c, (0.16, hw / 2, hh / 2), (0.1, 0.1, 0.1))
    else:
        b.box(house_c, (0.16, hw / 2, hh / 2), (0.95, 0.78, 0.1))
    lamp_r = hw * 0.32
    for k, lamp in enumerate((Lamp.SIGNAL_RED, Lamp.SIGNAL_YELLOW, Lamp.SIGNAL_GREEN)):
        z = house_c[2] + hh / 2 - hh * (k + 0.5) / 3
        b.decal((house_c[0], 0, z), (0.16, lamp_r, lamp_r), (0, 1), (0.2, 0.2, 0.2), lamp=lamp, disc=True)
    return b.build()


def tree(rng: np.random.Generator) -> Shape:
    """A roadside tree (not labelled): a trunk under two green blobs, 3.5-8 m tall."""
    b = _Builder()
    h = rng.uniform(3.5, 8.0)
    trunk = _shade((0.35, 0.25, 0.16), rng.uniform(0.8, 1.2))
    b.box((0, 0, h * 0.3), (0.12, 0.12, h * 0.3), trunk)
    green = np.clip(np.array((0.2, 0.42, 0.15)) * rng.uniform(0.7, 1.3, 3), 0, 1)
    for k, scale in enumerate((1.0, 0.75)):
        n = 12
        a = np.linspace(0, 2 * math.pi, n, endpoint=False) + rng.uniform(0, 1)
        rad = h * 0.28 * scale * rng.uniform(0.8, 1.15, n)
        zc = h * (0.62 + 0.15 * k)
        pts = np.stack([np.cos(a) * rad, np.sin(a) * rad, zc + rng.uniform(-0.3, 0.3, n) * h * 0.3], axis=1)
        pts = np.concatenate([pts, [[0, 0, zc + h * 0.3 * scale], [0, 0, zc - h * 0.2 * scale]]])
        b.hull(pts, tuple(float(v) for v in green * (1.0 + 0.15 * k)))
    return b.build()


def street_lamp(rng: np.random.Generator, *, arm_sign: float) -> Shape:
    """A street lamp post (not labelled), 6-8 m, whose arm reaches over the road (y * arm_sign)."""
    b = _Builder()
    h = rng.uniform(6.0, 8.0)
    grey = _shade((0.5, 0.52, 0.55), rng.uniform(0.8, 1.1))
    b.box((0, 0, h / 2), (0.09, 0.09, h / 2), grey)
    b.box((0, arm_sign * 0.8, h - 0.1), (0.06, 0.8, 0.05), grey)
    b.box((0, arm_sign * 1.5, h - 0.2), (0.18, 0.3, 0.06), grey)
    b.decal((0, arm_sign * 1.5, h - 0.2), (0.15, 0.26, 0.06), (2, -1), (0.3, 0.3, 0.3), lamp=Lamp.STREET)
    return b.build()
