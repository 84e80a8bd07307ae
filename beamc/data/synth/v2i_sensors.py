"""2-D LiDAR scans and FMCW radar cubes rendered from the shared street geometry.

LiDAR: one horizontal scan plane at `LIDAR_HEIGHT`, 216 bins over 180 degrees, index 0 at
bearing +90 deg (the DeepSense scenario-9 visualisation script flips the scan left-right
before drawing it over -90..90 deg). Each bin holds the range of the nearest surface (boxes,
the facade), 0 where nothing answers within `LIDAR_MAX_RANGE`. The processed ``lidar_SCR``
scan removes the static clutter: returns within `SCR_TOLERANCE` of the empty street's scan
are zeroed, so only vehicles and pedestrians remain (what makes a pass show as a track in
the reference plots). The raw scan ``unit1_lidar`` keeps everything at 0.5 deg steps as
rows (bearing deg, range m).

Radar: the DeepSense scenario-9 radar configuration (visualisation script RADAR_PARAMS:
77 GHz start, 15.015 MHz/us slope, 5 MHz complex sampling, 256 samples, 128 chirps of
60 + 5 us, 1 Tx, 4 Rx): range resolution c fs / (2 N S) = 0.195 m (50 m span), velocity
resolution lambda / (2 * 128 * 65 us) = 0.23 m/s. Every object contributes point
reflectors (vehicle: the corners and middle of the side facing the radar; pedestrian, pole:
one; the facade: a row of weak ones) with amplitude sqrt(RCS) / R^2; a reflector hidden
behind a nearer object in the x-y plane keeps 5 % of its amplitude. The cube is
``data[rx, sample, chirp] = sum_k A_k exp(j (2 pi f_b n / fs + 4 pi v_r c T_c / lambda + pi rx sin theta + phi_k))``
plus complex noise, so the reference processing (range FFT on axis 1, Doppler on axis 2,
angle FFT on axis 0) finds each reflector at its range, radial speed and bearing.
"""

from __future__ import annotations

import numpy as np

from beamc.data.deepsense import RADAR_SHAPE, lidar_bearings_deg
from beamc.data.synth.v2i_scene import KIND_PEDESTRIAN, KIND_POLE, KIND_VEHICLE, FrameState, World, ray_box_2d

C = 299_792_458.0
LIDAR_HEIGHT = 1.0
LIDAR_MAX_RANGE = 40.0
LIDAR_NOISE_M = 0.02
LIDAR_DROPOUT = 0.005
SCR_TOLERANCE = 0.3
RAW_STEP_DEG = 0.5

RADAR = {"f0": 77e9, "slope": 15.015e12, "fs": 5e6, "rx": RADAR_SHAPE[0], "samples": RADAR_SHAPE[1],
         "chirps": RADAR_SHAPE[2], "chirp_period": 65e-6}
RADAR_NOISE = 0.02
RCS = {KIND_VEHICLE: 10.0, KIND_PEDESTRIAN: 1.0, KIND_POLE: 3.0}
WALL_RCS = 0.5
HIDDEN_GAIN = 0.05


def _scan(state_boxes: np.ndarray, heights_ok: np.ndarray, w: World, bearings_deg: np.ndarray) -> np.ndarray:
    th = np.radians(bearings_deg)
    dirs = np.stack([np.sin(th), np.cos(th)], axis=1)
    ranges = np.full(len(th), np.inf)
    if len(state_boxes):
        t = ray_box_2d(np.zeros(3), dirs, state_boxes[heights_ok])
        if t.size:
            ranges = t.min(axis=1)
    with np.errstate(divide="ignore"):
        wall = np.where(dirs[:, 1] > 1e-9, w.wall_y / dirs[:, 1], np.inf)
    ranges = np.minimum(ranges, wall)
    return np.where(ranges <= LIDAR_MAX_RANGE, ranges, 0.0)


def _in_plane(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 0, 2] <= LIDAR_HEIGHT) & (boxes[:, 1, 2] >= LIDAR_HEIGHT)


def lidar_scans(state: FrameState, w: World, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(SCR scan [216] m, raw scan [N, 2] rows (bearing deg, range m))."""
    bearings = lidar_bearings_deg()
    scan = _scan(state.boxes, _in_plane(state.boxes), w, bearings)
    static = state.kind == KIND_POLE
    background = _scan(state.boxes[static], _in_plane(state.boxes[static]), w, bearings)
    scan = _noisy(scan, rng)
    scr = np.where(np.abs(scan - background) > SCR_TOLERANCE, scan, 0.0)
    raw_bearings = np.arange(90.0, -90.0 - 1e-9, -RAW_STEP_DEG)
    raw = _noisy(_scan(state.boxes, _in_plane(state.boxes), w, raw_bearings), rng)
    return scr, np.stack([raw_bearings, raw], axis=1)


def _noisy(scan: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = scan + rng.normal(0, LIDAR_NOISE_M, size=scan.shape)
    drop = rng.random(scan.shape) < LIDAR_DROPOUT
    return np.where((scan > 0) & ~drop, np.maximum(noisy, 0.0), 0.0)


def radar_reflectors(state: FrameState, w: World) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions [R, 2], radial velocity [R], amplitude [R]) of the visible point reflectors."""
    pts, owner, rcs = [], [], []
    for k, (lo, hi) in enumerate(state.boxes):
        if state.kind[k] == KIND_VEHICLE:
            near = [[lo[0], lo[1]], [(lo[0] + hi[0]) / 2, lo[1]], [hi[0], lo[1]]]
            # the end facing the radar shows too
            end_x = lo[0] if (lo[0] + hi[0]) / 2 > 0 else hi[0]
            near.append([end_x, (lo[1] + hi[1]) / 2])
            size_factor = (hi[0] - lo[0]) * (hi[2] - lo[2]) / (4.5 * 1.45)
            for p in near:
                pts.append(p)
                owner.append(k)
                rcs.append(RCS[KIND_VEHICLE] * size_factor / len(near))
        else:
            pts.append([(lo[0] + hi[0]) / 2, lo[1]])
            owner.append(k)
            rcs.append(RCS[int(state.kind[k])])
    for x in np.arange(-20.0, 20.1, 2.5):
        pts.append([x, w.wall_y])
        owner.append(-1)
        rcs.append(WALL_RCS)
    pts, owner, rcs = np.array(pts), np.array(owner), np.array(rcs)
    r = np.linalg.norm(pts, axis=1)
    vel = np.where(owner[:, None] >= 0, state.velocity[np.maximum(owner, 0)], 0.0)
    v_r = (pts * vel).sum(axis=1) / r
    # occlusion in the x-y plane: pull the point 5 cm towards the radar so its own box does not count
    toward = pts * (1 - 0.05 / r)[:, None]
    t = ray_box_2d(np.zeros(3), toward, state.boxes)
    t[np.arange(len(owner))[owner >= 0], owner[owner >= 0]] = np.inf
    hidden = (t < 1.0).any(axis=1)
    amp = np.sqrt(rcs) / r**2 * np.where(hidden, HIDDEN_GAIN, 1.0)
    return pts, v_r, amp


def radar_cube(state: FrameState, w: World, rng: np.random.Generator) -> np.ndarray:
    """complex64 [4, 256, 128] ADC samples of one radar frame."""
    pts, v_r, amp = radar_reflectors(state, w)
    lam = C / RADAR["f0"]
    r = np.linalg.norm(pts, axis=1)
    sin_th = pts[:, 0] / r
    f_beat = 2 * RADAR["slope"] * r / C
    n = np.arange(RADAR["samples"])
    c = np.arange(RADAR["chirps"])
    phase0 = 4 * np.pi * r / lam + rng.uniform(0, 2 * np.pi, size=len(r))
    fast = np.exp(2j * np.pi * np.outer(f_beat / RADAR["fs"], n))                      # [R, 256]
    slow = np.exp(4j * np.pi * np.outer(v_r * RADAR["chirp_period"] / lam, c))          # [R, 128]
    space = np.exp(1j * np.pi * np.outer(sin_th, np.arange(RADAR["rx"])))               # [R, 4]
    weights = (amp * np.exp(1j * phase0))[:, None] * slow                               # [R, 128]
    # sum over reflectors as one matrix product: [(4*256), R] @ [R, 128]
    left = (space[:, :, None] * fast[:, None, :]).reshape(len(r), -1).T
    cube = (left @ weights).reshape(RADAR["rx"], RADAR["samples"], RADAR["chirps"])
    noise = rng.normal(0, RADAR_NOISE / np.sqrt(2), size=(2, *cube.shape))
    return (cube + noise[0] + 1j * noise[1]).astype(np.complex64)
