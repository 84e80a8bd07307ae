"""The shared street geometry of the V2I simulator: one truth every sensor renders from.

Frame: x runs along the street (east), y points away from the base station across the
street (north, the boresight of the array, camera, LiDAR and radar), z is up; the base
station's sensors sit at (0, 0, bs_height). Lanes are lines y = const; vehicles are
axis-aligned boxes moving along x. The target vehicle (DeepSense's unit 2, carrying the
60 GHz transmitter on its roof) is object 0 of every sequence; other vehicles, pedestrians
on the near sidewalk and static poles on the far sidewalk occlude and reflect. A building
facade at y = wall_y closes the scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# length, width, height (m) and how likely each kind is for the target / for other traffic
VEHICLE_KINDS = {
    "car": (4.5, 1.8, 1.45),
    "suv": (4.8, 1.9, 1.75),
    "van": (5.3, 2.0, 2.3),
    "truck": (7.5, 2.4, 3.2),
    "bus": (11.0, 2.5, 3.1),
}
TARGET_KINDS = ("car", "suv", "van")
TARGET_P = (0.6, 0.3, 0.1)
OTHER_P = (0.45, 0.2, 0.15, 0.12, 0.08)
PEDESTRIAN = (0.5, 0.4, 1.75)
POLE = (0.25, 0.25, 4.5)
TX_ABOVE_ROOF = 0.1  # m: the transmitter sits on the target's roof

KIND_VEHICLE, KIND_PEDESTRIAN, KIND_POLE = 0, 1, 2


@dataclass(frozen=True)
class World:
    """What does not change between sequences of one scenario."""

    lanes: np.ndarray        # [n_lanes] lane centre y (m); even lanes drive +x, odd lanes -x
    wall_y: float
    wall_height: float
    bs_height: float
    poles: np.ndarray        # [P, 2] pole centres (x, y)
    sun: np.ndarray          # [3] unit vector towards the sun (camera shading)


@dataclass(frozen=True)
class Plan:
    """One sequence: the objects, their motion and the frame times."""

    seq_id: int
    n_frames: int
    t0: float                # seconds since midnight of the first frame
    dt: np.ndarray           # [n_frames] offsets (s) of each frame from t0 (with capture jitter)
    kind: np.ndarray         # [K] KIND_*
    size: np.ndarray         # [K, 3] length (x), width (y), height (z)
    start: np.ndarray        # [K, 2] centre (x, y) at t = 0
    velocity: np.ndarray     # [K, 2] m/s
    color: np.ndarray        # [K, 3] base colour 0..1
    lane: int                # target lane index
    brightness: float        # global illumination of this sequence (camera)
    gps_bias: np.ndarray     # [2] m, GPS bias of this sequence (east, north)
    night: bool = False      # recorded at night (camera only: v2i_camera.Night)


@dataclass(frozen=True)
class FrameState:
    """Every object at one frame."""

    t: float                 # seconds since midnight
    boxes: np.ndarray        # [K, 2, 3] min / max corners
    velocity: np.ndarray     # [K, 2]
    kind: np.ndarray         # [K]
    color: np.ndarray        # [K, 3]
    tx: np.ndarray           # [3] transmitter position

    @property
    def centers(self) -> np.ndarray:
        return self.boxes.mean(axis=1)


def world(cfg) -> World:
    rng = np.random.default_rng([cfg.seed, 0])
    n_poles = cfg.poles
    xs = np.sort(rng.uniform(-24.0, 24.0, size=n_poles))
    ys = rng.uniform(cfg.wall_y - 4.5, cfg.wall_y - 3.0, size=n_poles)
    sun = np.array([rng.uniform(-0.5, 0.5), -0.6, 0.75])
    return World(lanes=np.asarray(cfg.lanes, dtype=float), wall_y=cfg.wall_y, wall_height=12.0,
                 bs_height=cfg.bs_height, poles=np.stack([xs, ys], axis=1), sun=sun / np.linalg.norm(sun))


def _box(center_xy: np.ndarray, size: np.ndarray) -> np.ndarray:
    lo = np.array([center_xy[0] - size[0] / 2, center_xy[1] - size[1] / 2, 0.0])
    return np.stack([lo, lo + size])


def plan_sequence(cfg, w: World, seq_id: int, t0: float) -> Plan:
    """Draw the objects of sequence `seq_id` (deterministic in (cfg.seed, seq_id))."""
    rng = np.random.default_rng([cfg.seed, 1, seq_id])
    half_fov = np.radians(cfg.fov_deg / 2)
    lane = int(rng.integers(len(w.lanes)))
    direction = 1.0 if lane % 2 == 0 else -1.0
    kind = str(rng.choice(TARGET_KINDS, p=TARGET_P))
    size = np.array(VEHICLE_KINDS[kind])
    speed = rng.uniform(cfg.speed_kmh_min, cfg.speed_kmh_max) / 3.6
    y = w.lanes[lane] + rng.normal(0, 0.25)
    # The pass: the transmitter's bearing sweeps the field of view; a sequence is a window of
    # it whose length follows the real recordings (30..65 rows in scenario 9).
    x_edge = y * np.tan(half_fov)
    pass_frames = int(np.ceil(2 * x_edge / (speed * cfg.frame_interval_s)))
    n = int(np.clip(pass_frames, cfg.min_frames, cfg.max_frames))
    slack = (pass_frames - n) * speed * cfg.frame_interval_s  # > 0: crop, < 0: extend
    offset = rng.uniform(0, slack) if slack > 0 else slack / 2
    x0 = -direction * (x_edge - offset)
    kinds, sizes, starts, vels = [KIND_VEHICLE], [size], [np.array([x0, y])], [np.array([direction * speed, 0.0])]
    colors = [_vehicle_color(rng)]
    duration = n * cfg.frame_interval_s
    for _ in range(rng.poisson(cfg.other_vehicles)):
        k = str(rng.choice(list(VEHICLE_KINDS), p=OTHER_P))
        lane_o = int(rng.integers(len(w.lanes)))
        d_o = 1.0 if lane_o % 2 == 0 else -1.0
        if lane_o == lane:  # follow or lead the target at its speed, a safe gap away
            v_o = speed
            gap = rng.uniform(8.0, 20.0) + (size[0] + VEHICLE_KINDS[k][0]) / 2
            xo = x0 + rng.choice([-1.0, 1.0]) * gap
        else:
            v_o = rng.uniform(10, 30) / 3.6
            # anywhere whose path crosses the field of view during the sequence
            xo = rng.uniform(-x_edge - 10, x_edge + 10) - d_o * v_o * duration * rng.uniform(0, 1)
        kinds.append(KIND_VEHICLE)
        sizes.append(np.array(VEHICLE_KINDS[k]))
        starts.append(np.array([xo, w.lanes[lane_o] + rng.normal(0, 0.2)]))
        vels.append(np.array([d_o * v_o, 0.0]))
        colors.append(_vehicle_color(rng))
    for _ in range(rng.poisson(cfg.pedestrians)):
        d_p = rng.choice([-1.0, 1.0])
        v_p = rng.uniform(1.0, 1.6)
        kinds.append(KIND_PEDESTRIAN)
        sizes.append(np.array(PEDESTRIAN))
        starts.append(np.array([rng.uniform(-8, 8) - d_p * v_p * duration / 2, rng.uniform(2.2, 3.4)]))
        vels.append(np.array([d_p * v_p, 0.0]))
        colors.append(rng.uniform(0.1, 0.8, size=3))
    for p in w.poles:
        kinds.append(KIND_POLE)
        sizes.append(np.array(POLE))
        starts.append(p.copy())
        vels.append(np.zeros(2))
        colors.append(np.array([0.42, 0.42, 0.44]))
    dt = np.arange(n) * cfg.frame_interval_s + rng.normal(0, 0.0006, size=n)
    dt[0] = 0.0
    return Plan(seq_id=seq_id, n_frames=n, t0=t0, dt=dt, kind=np.array(kinds), size=np.array(sizes),
                start=np.array(starts), velocity=np.array(vels), color=np.array(colors), lane=lane,
                brightness=float(rng.uniform(0.75, 1.15)), gps_bias=rng.normal(0, cfg.gps_noise_m, size=2),
                night=is_night(cfg, seq_id))


def is_night(cfg, seq_id: int) -> bool:
    """Whether sequence `seq_id` is recorded at night: a draw of its own stream, so the
    night fraction changes nothing else in the sequence (traffic, beams, radar, noise)."""
    return bool(cfg.night_fraction > 0 and np.random.default_rng([cfg.seed, 6, seq_id]).random() < cfg.night_fraction)


def _vehicle_color(rng: np.random.Generator) -> np.ndarray:
    palette = np.array([[0.85, 0.85, 0.87], [0.1, 0.1, 0.12], [0.55, 0.57, 0.6], [0.6, 0.08, 0.08],
                        [0.1, 0.2, 0.5], [0.75, 0.72, 0.65], [0.2, 0.35, 0.25]])
    return np.clip(palette[rng.integers(len(palette))] + rng.normal(0, 0.03, size=3), 0, 1)


def frame_state(plan: Plan, k: int) -> FrameState:
    t = plan.dt[k]
    centers = plan.start + plan.velocity * t
    boxes = np.stack([_box(c, s) for c, s in zip(centers, plan.size)])
    tx = np.array([centers[0, 0], centers[0, 1], plan.size[0, 2] + TX_ABOVE_ROOF])
    return FrameState(t=plan.t0 + t, boxes=boxes, velocity=plan.velocity, kind=plan.kind, color=plan.color, tx=tx)


# ----------------------------------------------------------------------------- geometry
def ray_box_2d(origin: np.ndarray, dirs: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """[R, K] parameter t >= 0 where ray origin + t*dir enters box k in the x-y plane; inf on a miss.

    A ray starting inside a box enters it at t = 0."""
    o = origin[:2]
    lo, hi = boxes[None, :, 0, :2], boxes[None, :, 1, :2]
    d = dirs[:, None, :2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - o) / d, (hi - o) / d
    inside = (o >= lo) & (o <= hi)  # per axis, for rays parallel to a slab
    t1 = np.where(d == 0, np.where(inside, -np.inf, np.inf), t1)
    t2 = np.where(d == 0, np.where(inside, np.inf, -np.inf), t2)
    enter = np.minimum(t1, t2).max(axis=-1)
    leave = np.maximum(t1, t2).min(axis=-1)
    hit = (leave >= np.maximum(enter, 0)) & np.isfinite(leave)
    return np.where(hit, np.maximum(enter, 0), np.inf)


def bearing(points: np.ndarray) -> np.ndarray:
    """Azimuth (rad) from boresight (+y) towards +x of points [..., >=2] seen from the origin."""
    return np.arctan2(points[..., 0], points[..., 1])
