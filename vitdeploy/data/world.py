"""The world of a synthetic drive: a straight road, what is on it, and how it all moves.

Time is cut into *episodes* of ``scene_seconds``; each episode is a new road, lighting and
population drawn from ``(seed, episode index)`` alone. Inside an episode every object has a fixed
world speed along the road, and positions are kept relative to the ego car and wrapped around a
loop of ``LOOP_M`` metres, so the state at any time is a closed-form function of the time: there is
nothing to step, and any frame can be made first.

Coordinates are those of :mod:`vitdeploy.data.rig`: metres, x forward, y left, z up, the origin on
the ground under the ego car, whose lane centre is y = 0. Traffic keeps to the right.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from vitdeploy.data import shapes
from vitdeploy.data.shapes import RGB, Shape

#: Objects live on a loop this long around the ego car (metres); farther than half is not drawn.
LOOP_M = 240.0

#: ``vitdeploy.models.zoo.DRIVING_CLASSES``, repeated here so that rendering does not import torch
#: (a test keeps the two equal).
CLASS_NAMES = ("car", "truck", "pedestrian", "cyclist", "traffic_cone", "traffic_light")
CAR, TRUCK, PEDESTRIAN, CYCLIST, CONE, LIGHT = range(len(CLASS_NAMES))


class Lighting(enum.Enum):
    DAY = "day"
    DUSK = "dusk"
    NIGHT = "night"


@dataclass(frozen=True)
class Look:
    """How a lighting condition renders: sky, ambient light, lamps and the sensor's response."""

    sky_top: RGB
    sky_horizon: RGB
    ambient: RGB               # gain on surface colours away from lamps
    sun: tuple[float, float, float]  # unit vector towards the light, ego frame
    lamps_on: bool
    noise_sigma: float         # sensor noise, 8-bit levels
    blur_px: int               # horizontal motion blur on the side cameras, pixels at 448 wide


LOOKS: dict[Lighting, Look] = {
    Lighting.DAY: Look((0.33, 0.55, 0.85), (0.78, 0.86, 0.93), (1.0, 1.0, 1.0), (0.3, 0.4, 0.87), False, 2.0, 2),
    Lighting.DUSK: Look((0.20, 0.22, 0.42), (0.95, 0.60, 0.38), (0.62, 0.52, 0.48), (0.9, 0.2, 0.38), True, 3.5, 3),
    Lighting.NIGHT: Look((0.01, 0.015, 0.04), (0.07, 0.08, 0.13), (0.21, 0.22, 0.27), (0.0, 0.0, 1.0), True, 6.0, 4),
}


@dataclass(frozen=True)
class Marking:
    """A painted line along the road at lateral offset ``y`` (metres)."""

    y: float
    width_m: float
    color: RGB
    dashed: bool


@dataclass(frozen=True)
class Road:
    """Lateral layout of the road, all in metres from the ego lane centre (y, left positive).

    From right to left: sidewalk, kerb, shoulder (cyclists ride here), forward lanes, oncoming
    lanes, shoulder (cars park here), kerb, sidewalk.
    """

    lane_width: float
    forward_lanes: int
    oncoming_lanes: int
    ego_lane: int               # 0 = rightmost forward lane
    shoulder_right: float
    shoulder_left: float
    sidewalk: float
    kerb: float = 0.25
    asphalt: RGB = (0.33, 0.33, 0.34)
    pavement: RGB = (0.62, 0.6, 0.57)
    verge: RGB = (0.3, 0.42, 0.2)
    centre_yellow: bool = False

    def forward_lane_y(self, i: int) -> float:
        return (i - self.ego_lane) * self.lane_width

    def oncoming_lane_y(self, j: int) -> float:
        return (self.forward_lanes + j - self.ego_lane) * self.lane_width

    @property
    def lanes_right(self) -> float:
        return -(self.ego_lane + 0.5) * self.lane_width

    @property
    def lanes_left(self) -> float:
        return (self.forward_lanes + self.oncoming_lanes - self.ego_lane - 0.5) * self.lane_width

    @property
    def kerb_right(self) -> float:
        """y of the right kerb's road-side edge."""
        return self.lanes_right - self.shoulder_right

    @property
    def kerb_left(self) -> float:
        return self.lanes_left + self.shoulder_left

    def markings(self) -> tuple[Marking, ...]:
        white, yellow = (0.92, 0.92, 0.9), (0.95, 0.75, 0.15)
        out = [Marking(self.lanes_right, 0.15, white, False), Marking(self.lanes_left, 0.15, white, False)]
        out += [Marking(self.lanes_right + k * self.lane_width, 0.13, white, True)
                for k in range(1, self.forward_lanes)]
        centre = self.lanes_right + self.forward_lanes * self.lane_width
        out += [Marking(centre + k * self.lane_width, 0.13, white, True) for k in range(1, self.oncoming_lanes)]
        if self.centre_yellow:
            out += [Marking(centre - 0.12, 0.1, yellow, False), Marking(centre + 0.12, 0.1, yellow, False)]
        else:
            out.append(Marking(centre, 0.15, white, False))
        return tuple(out)


@dataclass(frozen=True, eq=False)
class Thing:
    """One object of an episode: what it is, its shape, and its motion along the road."""

    category: int | None        # index into DRIVING_CLASSES; None for unlabelled scenery
    shape: Shape
    x0: float                   # world x at episode start, metres
    y: float                    # lateral position, metres
    heading: float              # radians, 0 = along +x
    speed: float                # world speed along x, m/s (the ego car moves at Episode.ego_speed)
    sway_m: float = 0.0         # amplitude of a slow back-and-forth in the gap (following traffic)
    sway_hz: float = 0.0
    phase: float = 0.0          # of the sway, the gait and the traffic-light cycle, radians
    gait_hz: float = 0.0        # steps per second / 2; 0 = no limb swing


@dataclass(frozen=True, eq=False)
class Episode:
    """Everything that is fixed for ``scene_seconds``: road, lighting, ego speed and the things."""

    index: int
    lighting: Lighting
    road: Road
    ego_speed: float            # m/s
    pitch_deg: float            # camera pitch for this episode (vehicle load, mounting tolerance)
    things: tuple[Thing, ...]
    crossings: tuple[float, ...]  # world x of zebra crossings, metres
    skyline_seed: int
    motion: np.ndarray          # (6, N): x0, speed, sway_m, sway_hz, phase, y of the things, for speed
    extent: np.ndarray          # (3, N): bounding radius (m), height (m) and heading (rad) of the things

    @property
    def look(self) -> Look:
        return LOOKS[self.lighting]

    def travelled(self, tau: float) -> float:
        """Metres the ego car has driven ``tau`` seconds into the episode."""
        return self.ego_speed * tau

    def positions(self, tau: float) -> np.ndarray:
        """(N, 2) ego-relative x, y in metres of every thing ``tau`` seconds into the episode."""
        x0, speed, sway, hz, phase, y = self.motion
        rel = x0 + (speed - self.ego_speed) * tau + sway * np.sin(2 * math.pi * hz * tau + phase)
        rel = (rel + LOOP_M / 2) % LOOP_M - LOOP_M / 2
        return np.stack([rel, y], axis=1)

    def crossing_positions(self, tau: float) -> np.ndarray:
        """(K,) ego-relative x of the zebra crossings, metres."""
        rel = np.asarray(self.crossings) - self.travelled(tau)
        return (rel + LOOP_M / 2) % LOOP_M - LOOP_M / 2


def signal_state(thing: Thing, tau: float) -> shapes.Lamp:
    """Which lamp of a traffic light is lit: a 24 s cycle of 10 s red, 11 s green, 3 s yellow."""
    s = (tau + thing.phase / (2 * math.pi) * 24.0) % 24.0
    if s < 10.0:
        return shapes.Lamp.SIGNAL_RED
    return shapes.Lamp.SIGNAL_GREEN if s < 21.0 else shapes.Lamp.SIGNAL_YELLOW


def make_episode(seed: int, index: int, *, lighting: Lighting | None = None) -> Episode:
    """Draw episode ``index`` of the drive ``seed``; the same arguments give the same episode."""
    rng = np.random.default_rng([seed, index, 0x5CE7E])
    u = rng.random(2)
    if lighting is None:
        lighting = Lighting.DAY if u[0] < 0.55 else (Lighting.DUSK if u[1] < 0.45 else Lighting.NIGHT)
    forward = int(rng.choice([1, 2, 2, 3]))
    road = Road(
        lane_width=float(rng.uniform(3.1, 3.7)),
        forward_lanes=forward,
        oncoming_lanes=int(rng.choice([1, 2])) if forward > 1 else 1,
        ego_lane=int(rng.integers(forward)),
        shoulder_right=float(rng.uniform(1.7, 2.4)),
        shoulder_left=float(rng.uniform(2.2, 2.7)),
        sidewalk=float(rng.uniform(3.0, 5.0)),
        asphalt=_rgb(np.full(3, rng.uniform(0.26, 0.4)) * (1.0, 1.0, 1.03)),
        pavement=_rgb(np.array((0.62, 0.6, 0.57)) * rng.uniform(0.8, 1.1)),
        verge=((0.3, 0.42, 0.2), (0.45, 0.4, 0.3), (0.5, 0.5, 0.48))[int(rng.integers(3))],
        centre_yellow=bool(rng.random() < 0.4),
    )
    ego_speed = float(rng.uniform(4.0, 14.0))
    crossings = tuple(float(x) for x in rng.uniform(-LOOP_M / 2, LOOP_M / 2, int(rng.integers(1, 3))))
    parked = _parked(rng, road)
    things = _vehicles(rng, road, ego_speed) + parked + _cyclists(rng, road)
    things += _pedestrians(rng, road) + _cones(rng, road, left_free=not parked)
    things += _traffic_lights(rng, road, crossings) + _scenery(rng, road)
    motion = np.array([[getattr(t, k) for t in things] for k in ("x0", "speed", "sway_m", "sway_hz", "phase", "y")],
                      dtype=np.float64)
    extent = np.array([[t.shape.radius_m for t in things], [t.shape.height_m for t in things],
                       [t.heading for t in things]])
    return Episode(index=index, lighting=lighting, road=road, ego_speed=ego_speed,
                   pitch_deg=float(rng.uniform(3.0, 5.5)), things=things, crossings=crossings,
                   skyline_seed=int(rng.integers(2**31)), motion=motion, extent=extent)


def _rgb(values: np.ndarray) -> RGB:
    return (float(values[0]), float(values[1]), float(values[2]))


def _vehicle(rng: np.random.Generator) -> tuple[int, Shape]:
    if rng.random() < 0.18:
        return TRUCK, shapes.truck(rng)
    return CAR, shapes.car(rng)


def _platoon(rng: np.random.Generator, *, gap_m: tuple[float, float], keep_clear: float | None = None,
             ) -> list[tuple[float, int, Shape]]:
    """Vehicles spaced along the loop: (x0 of centre, category, shape); none within ``keep_clear`` of 0."""
    out: list[tuple[float, int, Shape]] = []
    x = float(rng.uniform(0, 20))
    start = x
    while True:
        cat, shape = _vehicle(rng)
        length = float(np.ptp(shape.vertices[:, 0]))
        centre = x + length / 2
        if centre + length / 2 > start + LOOP_M - 6.0:
            break
        wrapped = (centre + LOOP_M / 2) % LOOP_M - LOOP_M / 2
        if keep_clear is None or abs(wrapped) > keep_clear + length / 2:
            out.append((wrapped, cat, shape))
        x += length + float(rng.uniform(*gap_m))
    return out


def _vehicles(rng: np.random.Generator, road: Road, ego_speed: float) -> tuple[Thing, ...]:
    gaps = (float(rng.uniform(4, 12)), float(rng.uniform(20, 55)))  # this episode's traffic density
    out: list[Thing] = []
    for i in range(road.forward_lanes):
        ego_lane = i == road.ego_lane
        # the ego lane moves with the ego car, so nothing drives through it; others overtake or fall back
        speed = ego_speed if ego_lane else max(0.0, ego_speed + float(rng.uniform(-5, 5)))
        for x0, cat, shape in _platoon(rng, gap_m=gaps, keep_clear=9.0 if ego_lane else None):
            out.append(Thing(cat, shape, x0, road.forward_lane_y(i) + float(rng.uniform(-0.25, 0.25)), 0.0,
                             speed, sway_m=1.5 if ego_lane else 0.0, sway_hz=float(rng.uniform(0.03, 0.1)),
                             phase=float(rng.uniform(0, 2 * math.pi))))
    for j in range(road.oncoming_lanes):
        speed = -float(rng.uniform(6, 15))
        for x0, cat, shape in _platoon(rng, gap_m=gaps):
            out.append(Thing(cat, shape, x0, road.oncoming_lane_y(j) + float(rng.uniform(-0.25, 0.25)),
                             math.pi, speed))
    return tuple(out)


def _parked(rng: np.random.Generator, road: Road) -> tuple[Thing, ...]:
    """Cars parked nose to tail in the left shoulder, with gaps, on about two drives in three."""
    if rng.random() < 0.35:
        return ()
    y = road.kerb_left - 1.1
    out = []
    x = -LOOP_M / 2 + float(rng.uniform(0, 10))
    while x < LOOP_M / 2 - 6:
        shape = shapes.car(rng)
        length = float(np.ptp(shape.vertices[:, 0]))
        if rng.random() < 0.7:
            out.append(Thing(CAR, shape, x + length / 2, y + float(rng.uniform(-0.15, 0.15)),
                             math.pi if rng.random() < 0.8 else 0.0, 0.0))
        x += length + float(rng.uniform(0.8, 6.0))
    return tuple(out)


def _cyclists(rng: np.random.Generator, road: Road) -> tuple[Thing, ...]:
    y = road.lanes_right - min(0.75, road.shoulder_right / 2 - 0.1)
    return tuple(
        Thing(CYCLIST, shapes.cyclist(rng), float(rng.uniform(-LOOP_M / 2, LOOP_M / 2)), y + float(rng.uniform(-0.1, 0.1)),
              0.0, float(rng.uniform(3.0, 7.0)), phase=float(rng.uniform(0, 2 * math.pi)), gait_hz=0.9)
        for _ in range(int(rng.integers(3, 8)))
    )


def _pedestrians(rng: np.random.Generator, road: Road) -> tuple[Thing, ...]:
    out = []
    for side in (-1, 1):
        kerb = road.kerb_right if side < 0 else road.kerb_left
        for _ in range(int(rng.integers(5, 18))):
            y = kerb + side * (road.kerb + float(rng.uniform(0.9, road.sidewalk - 0.4)))
            walking = rng.random() < 0.8
            direction = 1.0 if rng.random() < 0.5 else -1.0
            heading = (0.0 if direction > 0 else math.pi) if walking else float(rng.uniform(0, 2 * math.pi))
            speed = direction * float(rng.uniform(0.8, 1.7)) if walking else 0.0
            out.append(Thing(PEDESTRIAN, shapes.pedestrian(rng), float(rng.uniform(-LOOP_M / 2, LOOP_M / 2)), y,
                             heading, speed, phase=float(rng.uniform(0, 2 * math.pi)),
                             gait_hz=abs(speed) * 0.55 if walking else 0.0))
    return tuple(out)


def _cones(rng: np.random.Generator, road: Road, *, left_free: bool) -> tuple[Thing, ...]:
    """Rows of cones (road works) along the right kerb, or in the left shoulder when nobody parks there."""
    out: list[Thing] = []
    for _ in range(int(rng.choice([0, 1, 1, 2]))):
        y = road.kerb_left - 0.5 if left_free and rng.random() < 0.5 else road.kerb_right + 0.35
        x = float(rng.uniform(-LOOP_M / 2, LOOP_M / 2))
        spacing = float(rng.uniform(2.0, 5.0))
        for k in range(int(rng.integers(5, 13))):
            out.append(Thing(CONE, shapes.traffic_cone(rng), x + k * spacing, y + float(rng.uniform(-0.1, 0.1)),
                             float(rng.uniform(0, math.pi)), 0.0))
    return tuple(out)


def _traffic_lights(rng: np.random.Generator, road: Road, crossings: tuple[float, ...]) -> tuple[Thing, ...]:
    """Signals at each crossing: before it facing the ego car, after it facing oncoming traffic."""
    out = []
    for x in crossings:
        phase = float(rng.uniform(0, 2 * math.pi))
        for dx, heading in ((-3.0, math.pi), (8.0, 0.0)):
            for y in (road.kerb_right - 0.45, road.kerb_left + 0.45):
                out.append(Thing(LIGHT, shapes.traffic_light(rng), x + dx + float(rng.uniform(-0.5, 0.5)), y,
                                 heading, 0.0, phase=phase))
    return tuple(out)


def _scenery(rng: np.random.Generator, road: Road) -> tuple[Thing, ...]:
    """Unlabelled trees behind the sidewalks and street lamps at the kerbs: distractors and occluders."""
    out: list[Thing] = []
    for side in (-1, 1):
        edge = (road.kerb_right - road.kerb - road.sidewalk) if side < 0 else (road.kerb_left + road.kerb + road.sidewalk)
        x = float(rng.uniform(-LOOP_M / 2, -LOOP_M / 2 + 15))
        while x < LOOP_M / 2 - 8:
            out.append(Thing(None, shapes.tree(rng), x, edge + side * float(rng.uniform(0.8, 4.0)), 0.0, 0.0))
            x += float(rng.uniform(7.0, 25.0))
        kerb = road.kerb_right - 0.35 if side < 0 else road.kerb_left + 0.35
        x = float(rng.uniform(-LOOP_M / 2, -LOOP_M / 2 + 30))
        while x < LOOP_M / 2 - 10:
            out.append(Thing(None, shapes.street_lamp(rng, arm_sign=-side), x, kerb, 0.0, 0.0))
            x += float(rng.uniform(28.0, 40.0))
    return tuple(out)
