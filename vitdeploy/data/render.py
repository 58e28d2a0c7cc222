"""Painting one camera's view of an episode: background, markings, things far to near, sensor.

Everything is painted twice in the same order: colours into the RGB image and, for objects, an
object id into an (H, W) uint8 *id buffer*. Painting far to near leaves in the id buffer exactly
the pixels where each object is visible, which is where its mask, box and area come from.
Polygons are filled with OpenCV at 1/8 pixel precision (``shift=3``).

Why this is long: the colour image and the id buffer must be painted by the same code in the same
order (that is what makes masks exact), so every painting step lives in this one module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from vitdeploy.data.rig import NEAR_M, Camera, clip_hull_near, clip_polygon_near
from vitdeploy.data.shapes import Lamp, PartKind, Shape
from vitdeploy.data.world import LIGHT, LOOP_M, Episode, Lighting, Look, signal_state

SHIFT = 3
_ONE = 1 << SHIFT
#: id-buffer value of unlabelled occluders (trees, lamp posts); objects get 1..OCCLUDER_ID - 1.
OCCLUDER_ID = 255
_MAX_DRAW_M = LOOP_M / 2
_MIN_HEIGHT_PX = 1.5  # things smaller than this on screen are not painted at all


def _fixed(uv: np.ndarray) -> np.ndarray:
    """Continuous pixel coordinates (pixel i spans [i, i+1)) -> OpenCV fixed point, int32."""
    return np.rint((uv - 0.5) * _ONE).astype(np.int32)


def _rgb255(c: np.ndarray) -> tuple[float, float, float]:
    c = np.minimum(c * 255.0, 255.0)
    return (float(c[0]), float(c[1]), float(c[2]))


# ------------------------------------------------------------------ light

def illumination(look: Look, lighting: Lighting, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Light falling on ground points (x, y) in metres, ego frame: (..., 3) RGB gain.

    Ambient light everywhere; at dusk and night the ego car's headlights light a cone ahead and
    its tail lamps a faint red patch behind.
    """
    gain = np.broadcast_to(np.asarray(look.ambient, dtype=np.float32), (*np.shape(x), 3)).copy()
    if not look.lamps_on:
        return gain
    strength = 1.5 if lighting is Lighting.NIGHT else 0.45
    ahead = np.clip(x - 1.0, 0.0, None)
    spread = 1.0 + 0.32 * ahead
    beam = strength * np.exp(-ahead / 28.0) * np.clip((x - 1.0) * 0.8, 0, 1) / (1.0 + (np.abs(y) / spread) ** 4)
    gain += beam[..., None] * np.array((1.0, 0.96, 0.86), dtype=np.float32)
    if lighting is Lighting.NIGHT:
        behind = np.exp(np.minimum(x + 1.0, 0.0) / 4.0) * (x < -1.0) / (1.0 + (np.abs(y) / 2.0) ** 4)
        gain += 0.25 * behind[..., None] * np.array((1.0, 0.08, 0.06), dtype=np.float32)
    return gain


# ------------------------------------------------------------------ background

def paint_background(episode: Episode, camera: Camera) -> np.ndarray:
    """The static part of a view: sky, skyline, ground, road, kerbs, solid lines. (H, W, 3) uint8 RGB.

    With a straight road and ego motion along it, none of this moves within an episode, so the
    caller paints it once per episode and camera. Light varies smoothly over the ground, so it is
    computed on a grid 4x coarser and interpolated.
    """
    h, w = camera.size
    look, road = episode.look, episode.road
    hv = camera.horizon_v
    a = np.clip((np.arange(h) + 0.5) / max(hv, 1.0), 0.0, 1.0)[:, None] ** 1.6
    rows = (np.asarray(look.sky_top) * (1 - a) + np.asarray(look.sky_horizon) * a) * 255.0
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = rows.round().astype(np.uint8)[:, None, :]
    rng = np.random.default_rng([episode.skyline_seed, int(camera.yaw_deg) % 360])
    _paint_skyline(img, camera, episode, rng)

    def quad(y0: float, y1: float, color, x0: float = -300.0, x1: float = 300.0) -> None:
        world = np.array([[x0, y0, 0.0], [x1, y0, 0.0], [x1, y1, 0.0], [x0, y1, 0.0]])
        poly = clip_polygon_near(camera.to_camera(world))
        if len(poly) >= 3:
            cv2.fillConvexPoly(img, _fixed(camera.project(poly)), _rgb255(np.asarray(color)), cv2.LINE_8, SHIFT)

    # the whole ground up to the horizon, then strips from the outside in
    quad(-1500.0, 1500.0, road.verge, -1500.0, 1500.0)
    kr, kl = road.kerb_right, road.kerb_left
    quad(kr - road.kerb - road.sidewalk, kr - road.kerb, road.pavement)
    quad(kl + road.kerb, kl + road.kerb + road.sidewalk, road.pavement)
    kerb_c = np.asarray(road.pavement) * 1.2
    quad(kr - road.kerb, kr, kerb_c)
    quad(kl, kl + road.kerb, kerb_c)
    quad(kr, kl, road.asphalt)
    for m in road.markings():
        if not m.dashed:
            quad(m.y - m.width_m / 2, m.y + m.width_m / 2, m.color)

    top = int(min(h, max(0.0, math.floor(hv))))
    ground = img[top:]
    gh = h - top
    if gh == 0:
        return img
    # grain (asphalt, gravel): +-6 levels, the same on all channels
    grain = rng.integers(0, 13, size=(gh, w), dtype=np.uint8)
    cv2.add(ground, cv2.merge([grain, grain, grain]), dst=ground)
    cv2.subtract(ground, (6.0, 6.0, 6.0, 0.0), dst=ground)
    # light: intersect each (coarse) pixel's ray with the ground and look up how lit that point is,
    # with slow blotches (wear, patches of grass) on top
    lh, lw = max(2, -(-gh // _LIGHT_STEP)), max(2, -(-w // _LIGHT_STEP))
    rays = camera.rays((np.arange(lw) + 0.5) * (w / lw), top + (np.arange(lh) + 0.5) * (gh / lh))
    t = camera.height_m / np.maximum(-rays[..., 2], 1e-4)
    light = illumination(look, episode.lighting, rays[..., 0] * t, rays[..., 1] * t)
    blotches = cv2.resize(rng.normal(0, 1, (max(2, lh // 6), max(2, lw // 6))).astype(np.float32), (lw, lh),
                          interpolation=cv2.INTER_CUBIC)
    light *= (1.0 + 0.07 * blotches)[..., None]
    gain = np.clip(light * _GAIN_ONE, 0, 255).astype(np.uint8)
    cv2.multiply(ground, cv2.resize(gain, (w, gh), interpolation=cv2.INTER_LINEAR), dst=ground, scale=1.0 / _GAIN_ONE)
    return img


_LIGHT_STEP = 4     # light grid step, pixels
_GAIN_ONE = 128.0   # uint8 gain map: 128 = x1, so gains up to 2 fit


def _paint_skyline(img: np.ndarray, camera: Camera, episode: Episode, rng: np.random.Generator) -> None:
    """Far buildings and tree lines standing on the horizon (flat, in pixel space)."""
    h, w = img.shape[:2]
    hv = camera.horizon_v
    f = camera.focal_px
    look = episode.look
    haze = np.asarray(look.sky_horizon, np.float32)
    night = episode.lighting is Lighting.NIGHT
    x = -rng.uniform(0, 0.05) * f
    while x < w:
        kind = rng.random()
        width = f * rng.uniform(0.03, 0.18)
        if kind < 0.55:
            height = f * rng.uniform(0.02, 0.14)
            base = np.array((0.55, 0.55, 0.58)) * rng.uniform(0.5, 1.2) * rng.uniform(0.9, 1.1, 3)
            col = 0.55 * base * np.asarray(look.ambient) + 0.45 * haze
            x0, x1, y0, y1 = x, x + width, hv - height, hv + 2
            cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), _rgb255(col), -1)
            if night or rng.random() < 0.6:
                step = max(3.0, f * 0.012)
                lit = np.array((1.0, 0.85, 0.5)) if night else col * 0.75
                for wy in np.arange(y0 + step, y1 - step, step * 1.6):
                    for wx in np.arange(x0 + step * 0.6, x1 - step, step * 1.4):
                        if not night or rng.random() < 0.3:
                            cv2.rectangle(img, (int(wx), int(wy)), (int(wx + step * 0.6), int(wy + step * 0.6)),
                                          _rgb255(lit), -1)
        elif kind < 0.85:
            green = np.array((0.18, 0.3, 0.14)) * rng.uniform(0.6, 1.3)
            col = 0.6 * green * np.asarray(look.ambient) + 0.4 * haze
            for _ in range(int(rng.integers(2, 6))):
                r = f * rng.uniform(0.015, 0.05)
                cx = x + rng.uniform(0, width)
                cv2.ellipse(img, (int(cx), int(hv)), (int(r * 1.3), int(r)), 0, 180, 360, _rgb255(col), -1)
        x += width * rng.uniform(0.7, 1.4)


# ------------------------------------------------------------------ markings

def paint_markings(img: np.ndarray, episode: Episode, camera: Camera, tau: float) -> None:
    """Dashed lane lines, zebra crossings and stop lines: they move past as the ego car drives."""
    road = episode.road
    s = episode.travelled(tau)
    quads: list[np.ndarray] = []
    colors: list[tuple[float, float, float]] = []
    dash, period = 3.0, 9.0
    starts = np.arange(-8, 11) * period - (s % period)
    for m in road.markings():
        if m.dashed:
            y0, y1 = m.y - m.width_m / 2, m.y + m.width_m / 2
            for x in starts:
                quads.append(np.array([[x, y0], [x + dash, y0], [x + dash, y1], [x, y1]]))
                colors.append(m.color)
    white = (0.92, 0.92, 0.9)
    lo, hi = road.lanes_right, road.lanes_left
    for xc in episode.crossing_positions(tau):
        if abs(xc) > 90:
            continue
        for y in np.arange(lo + 0.3, hi - 0.3, 1.1):
            quads.append(np.array([[xc, y], [xc + 3.0, y], [xc + 3.0, y + 0.55], [xc, y + 0.55]]))
            colors.append(white)
        stop = xc - 1.5
        centre = road.lanes_right + road.forward_lanes * road.lane_width
        quads.append(np.array([[stop - 0.4, lo], [stop, lo], [stop, centre], [stop - 0.4, centre]]))
        colors.append(white)
    if not quads:
        return
    q = np.stack(quads)
    world = np.concatenate([q, np.zeros((*q.shape[:2], 1))], axis=-1)
    cam = camera.to_camera(world)
    look = episode.look
    centre_xy = q.mean(axis=1)
    gain = illumination(look, episode.lighting, centre_xy[:, 0], centre_xy[:, 1])
    h, w = camera.size
    front = cam[..., 2] >= NEAR_M
    for i in np.flatnonzero(front.any(axis=1)):
        poly = cam[i] if front[i].all() else clip_polygon_near(cam[i])
        uv = camera.project(poly)
        if uv[:, 0].max() < 0 or uv[:, 0].min() > w or uv[:, 1].max() < 0 or uv[:, 1].min() > h:
            continue
        cv2.fillConvexPoly(img, _fixed(uv), _rgb255(np.asarray(colors[i]) * gain[i]), cv2.LINE_8, SHIFT)


# ------------------------------------------------------------------ things

@dataclass(frozen=True)
class Painted:
    """A labelled object as painted: its id in the id buffer and its full in-frame silhouette."""

    thing: int              # index into Episode.things
    category: int
    object_id: int          # value in the id buffer
    roi: tuple[int, int, int, int]  # x0, y0, x1, y1 pixels (exclusive end) that hold all its pixels
    silhouette_px: int      # pixels it covered right after it was painted (before nearer things)


_LAMP_LIT = {
    Lamp.HEAD: np.array((1.0, 0.97, 0.85)),
    Lamp.TAIL: np.array((1.0, 0.12, 0.06)),
    Lamp.SIGNAL_RED: np.array((1.0, 0.15, 0.1)),
    Lamp.SIGNAL_YELLOW: np.array((1.0, 0.72, 0.05)),
    Lamp.SIGNAL_GREEN: np.array((0.2, 1.0, 0.55)),
    Lamp.STREET: np.array((1.0, 0.85, 0.55)),
}
def paint_things(img: np.ndarray, ids: np.ndarray, episode: Episode, camera: Camera, tau: float) -> list[Painted]:
    """Paint every thing in view, far to near, into ``img`` (H, W, 3) and ``ids`` (H, W).

    Labelled objects get ids 1, 2, ... in painting order; scenery paints :data:`OCCLUDER_ID`.
    """
    h, w = camera.size
    pos = episode.positions(tau)
    radius, height, heading = episode.extent
    cam_c = camera.to_camera(np.stack([pos[:, 0], pos[:, 1], height / 2], axis=1))
    half_fov = math.tan(math.radians(camera.hfov_deg) / 2)
    dist = np.linalg.norm(cam_c, axis=1)
    f = camera.focal_px
    px_height = f * height / np.maximum(cam_c[:, 2], 1e-3)
    in_view = ((cam_c[:, 2] > -radius) & (np.abs(cam_c[:, 0]) - radius < (cam_c[:, 2] + radius) * half_fov * 1.05)
               & (dist < _MAX_DRAW_M) & (px_height > _MIN_HEIGHT_PX))
    order = np.flatnonzero(in_view)
    order = order[np.argsort(-dist[order], kind="stable")]
    if len(order) == 0:
        return []

    look, lighting = episode.look, episode.lighting
    # per-thing light and face shading, for all things in view at once
    gains = illumination(look, lighting, pos[order, 0], pos[order, 1]) * 255.0
    ch, sh = np.cos(heading[order]), np.sin(heading[order])
    sx, sy, sz = look.sun
    along, across = ch * sx + sh * sy, ch * sy - sh * sx
    shades = 0.6 + 0.4 * np.clip(np.stack([along, -along, across, -across, np.full_like(ch, sz),
                                           np.full_like(ch, -sz)], axis=1), 0.0, 1.0)
    lod = (px_height[order] < _DETAIL_PX).tolist()
    offsets = (np.stack([pos[order, 0], pos[order, 1], np.zeros(len(order))], axis=1) - camera.position) @ camera.rotation.T
    view = _View(camera)
    painted: list[Painted] = []
    next_id = 1
    for j, k in enumerate(order.tolist()):
        thing = episode.things[k]
        shape = thing.shape
        rot_h = np.array([[ch[j], -sh[j], 0.0], [sh[j], ch[j], 0.0], [0.0, 0.0, 1.0]])
        verts = shape.vertices
        if thing.gait_hz:
            verts = verts + shape.swing * math.sin(2 * math.pi * thing.gait_hz * tau + thing.phase)
        cam = verts @ (view.rot @ rot_h).T + offsets[j]
        labelled = thing.category is not None and next_id < OCCLUDER_ID
        oid = next_id if labelled else OCCLUDER_ID
        signal = signal_state(thing, tau) if thing.category == LIGHT else None
        if (cam[:, 2] >= NEAR_M).all():
            bounds = _paint_whole(img, ids, shape, cam, view, oid, gains[j], shades[j], look, signal, lod[j])
        else:
            bounds = _paint_clipped(img, ids, shape, cam, view, oid, gains[j], shades[j], look, signal)
        if not labelled or bounds is None:
            continue
        x0, y0 = max(0, bounds[0]), max(0, bounds[1])
        x1, y1 = min(w, bounds[2]), min(h, bounds[3])
        if x1 <= x0 or y1 <= y0:
            continue
        area = int(np.count_nonzero(ids[y0:y1, x0:x1] == oid))
        if area:
            painted.append(Painted(k, int(thing.category), oid, (x0, y0, x1, y1), area))  # type: ignore[arg-type]
            next_id += 1
    return painted


#: Below this height on screen (pixels) a thing is painted as flat part silhouettes, without decals.
_DETAIL_PX = 14.0
_SIGNALS = (Lamp.SIGNAL_RED, Lamp.SIGNAL_YELLOW, Lamp.SIGNAL_GREEN)


class _View:
    """The camera constants the inner loop needs, as plain floats."""

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self.f = camera.focal_px
        self.cx, self.cy = camera.center_px
        self.rot = camera.rotation

    def project(self, cam: np.ndarray) -> np.ndarray:
        return cam[:, :2] * (self.f / cam[:, 2:3]) + (self.cx, self.cy)


def _lamp_lit(lamp: Lamp | None, look: Look, signal: Lamp | None) -> bool:
    if lamp is None:
        return False
    if lamp in _SIGNALS:
        return lamp is signal
    return look.lamps_on  # head, tail and street lamps are switched on at dusk and night


def _paint_lamp(img: np.ndarray, q: np.ndarray, pts: np.ndarray, lamp: Lamp, look: Look) -> None:
    core = _LAMP_LIT[lamp]
    if look.lamps_on:  # glare around lamps in the dark
        c = q.mean(axis=0)
        r = max(1.0, 0.6 * max(float(np.ptp(q[:, 0])), float(np.ptp(q[:, 1]))))
        cv2.circle(img, (int(c[0] * _ONE), int(c[1] * _ONE)), int(r * _ONE), _rgb255(core * 0.45), -1, cv2.LINE_AA, SHIFT)
    cv2.fillConvexPoly(img, pts, _rgb255(core), cv2.LINE_8, SHIFT)


def _clockwise(q: np.ndarray) -> bool:
    """Whether the first three points of an image polygon turn clockwise (y down): facing the camera."""
    (x0, y0), (x1, y1), (x2, y2) = q[0].tolist(), q[1].tolist(), q[2].tolist()
    return (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0) < 0


def _paint_whole(img, ids, shape: Shape, cam, view: _View, oid: int, gain, shade, look: Look,
                 signal: Lamp | None, lod: bool) -> tuple[int, int, int, int] | None:
    """Paint a thing that lies wholly in front of the camera; returns its pixel bounds (x0, y0, x1, y1)."""
    uv = view.project(cam)
    fx = _fixed(uv)
    part_cols = np.minimum(shape.part_color * gain, 255.0).tolist()
    fi = shape.face_index
    if len(fi) and not lod:
        q = uv[fi]
        d1, d2 = q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]
        facing = (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0] < 0).tolist()
        face_cols = np.minimum(shape.face_color * (shade[shape.face_normal, None] * gain), 255.0).tolist()
        qf = fx[fi]
    pad = 1
    for pi, part in enumerate(shape.parts):
        kind = part.kind
        pid = oid if part.labelled else OCCLUDER_ID
        if kind is PartKind.SOLID:
            hull = cv2.convexHull(fx[part.verts])
            if lod:
                cv2.fillConvexPoly(img, hull, part_cols[pi], cv2.LINE_8, SHIFT)
            else:
                for i in range(*part.faces):
                    if facing[i]:
                        cv2.fillConvexPoly(img, qf[i], face_cols[i], cv2.LINE_8, SHIFT)
            cv2.fillConvexPoly(ids, hull, pid, cv2.LINE_8, SHIFT)
        elif kind is PartKind.HULL:
            hull = cv2.convexHull(fx[part.verts])
            cv2.fillConvexPoly(img, hull, part_cols[pi], cv2.LINE_8, SHIFT)
            cv2.fillConvexPoly(ids, hull, pid, cv2.LINE_8, SHIFT)
        elif kind is PartKind.LINES:
            thick = max(1, int(round(part.thickness_m * view.f / float(cam[part.verts.start, 2]))))
            segs = fx[part.verts][np.asarray(part.segments)]
            cv2.polylines(img, segs, False, part_cols[pi], thick, cv2.LINE_8, SHIFT)
            cv2.polylines(ids, segs, False, pid, thick, cv2.LINE_8, SHIFT)
            pad = max(pad, thick // 2 + 1)
        elif kind is PartKind.DECAL:
            lit = _lamp_lit(part.lamp, look, signal)
            if lod and not lit:
                continue
            q = uv[part.verts]
            if not _clockwise(q):
                continue
            if lit:
                _paint_lamp(img, q, fx[part.verts], part.lamp, look)  # type: ignore[arg-type]
            else:
                cv2.fillConvexPoly(img, fx[part.verts], part_cols[pi], cv2.LINE_8, SHIFT)
        elif kind is PartKind.SHADOW and not lod:
            strength = 0.35 if look.lamps_on else 0.18
            cv2.fillConvexPoly(img, fx[part.verts], _rgb255(np.asarray(look.ambient) * strength), cv2.LINE_8, SHIFT)
    lo, hi = (fx.min(axis=0) >> SHIFT).tolist(), (fx.max(axis=0) >> SHIFT).tolist()
    return lo[0] - pad, lo[1] - pad, hi[0] + pad + 1, hi[1] + pad + 1


def _paint_clipped(img, ids, shape: Shape, cam, view: _View, oid: int, gain, shade, look: Look,
                   signal: Lamp | None) -> tuple[int, int, int, int] | None:
    """Paint a thing that crosses the camera's near plane: clip every part, skip thin details.

    Rare (a vehicle passing right beside a side camera), so it favours simple over fast.
    """
    front = cam[:, 2] >= NEAR_M
    if not front.any():
        return None
    drawn: list[np.ndarray] = []
    for pi, part in enumerate(shape.parts):
        pid = oid if part.labelled else OCCLUDER_ID
        s = part.verts
        pfront = front[s]
        if not pfront.any():
            continue
        whole = bool(pfront.all())
        color = _rgb255(shape.part_color[pi] * gain / 255.0)
        if part.kind is PartKind.SOLID:
            silhouette = []
            for fi in range(*part.faces):
                poly = clip_polygon_near(cam[shape.face_index[fi]])
                if len(poly) < 3:
                    continue
                q = view.project(poly)
                if not _clockwise(q):
                    continue
                pts = _fixed(q)
                col = _rgb255(shape.face_color[fi] * shade[shape.face_normal[fi]] * gain / 255.0)
                cv2.fillConvexPoly(img, pts, col, cv2.LINE_8, SHIFT)
                silhouette.append(pts)
            if silhouette:
                pts = np.concatenate(silhouette)
                cv2.fillConvexPoly(ids, cv2.convexHull(pts), pid, cv2.LINE_8, SHIFT)
                drawn.append(pts)
        elif part.kind is PartKind.HULL:
            pts = cv2.convexHull(_fixed(view.project(cam[s] if whole else clip_hull_near(cam[s])))).reshape(-1, 2)
            cv2.fillConvexPoly(img, pts, color, cv2.LINE_8, SHIFT)
            cv2.fillConvexPoly(ids, pts, pid, cv2.LINE_8, SHIFT)
            drawn.append(pts)
        elif part.kind is PartKind.DECAL and whole:
            q = view.project(cam[s])
            if _clockwise(q):
                if _lamp_lit(part.lamp, look, signal):
                    _paint_lamp(img, q, _fixed(q), part.lamp, look)  # type: ignore[arg-type]
                else:
                    cv2.fillConvexPoly(img, _fixed(q), color, cv2.LINE_8, SHIFT)
    if not drawn:
        return None
    pts = np.concatenate(drawn)
    lo, hi = (pts.min(axis=0) >> SHIFT).tolist(), (pts.max(axis=0) >> SHIFT).tolist()
    return lo[0] - 1, lo[1] - 1, hi[0] + 2, hi[1] + 2


# ------------------------------------------------------------------ sensor

def sensor(img: np.ndarray, episode: Episode, camera: Camera, noise: np.ndarray, offset: tuple[int, int]) -> None:
    """Motion blur (side cameras see the world slide past) and sensor noise, in place on (H, W, 3).

    ``noise`` is a (2, H + 32, W + 32, 3) uint8 bank of positive and negative noise; ``offset``
    picks this frame's window in it.
    """
    h, w = camera.size
    flow = abs(math.sin(math.radians(camera.yaw_deg))) * episode.ego_speed / 10.0
    k = int(round(episode.look.blur_px * flow * w / 448))
    if k >= 2:
        cv2.blur(img, (k, 1), dst=img)
    dy, dx = offset
    cv2.add(img, noise[0, dy:dy + h, dx:dx + w], dst=img)
    cv2.subtract(img, noise[1, 32 - dy:32 - dy + h, 32 - dx:32 - dx + w], dst=img)
