"""Embedded default for the sub-6 GHz -> mmWave task: one street, two frequencies.

A street canyon runs along y between two building walls; a base station on the left
sidewalk carries a sub-6 GHz array and a co-located mmWave array (both ULAs along y).
Users stand on a grid in the street. Parked and moving vehicles (boxes) block paths and
lamp posts/signs scatter. For every user we trace, by the image method,

    LOS, ground, left wall, right wall, wall-wall (both orders), wall-ground, ground-wall,
    and one single-bounce path per point scatterer,

and give each path the physics of its carrier frequency:

* free-space loss  (lambda / 4 pi d)^2, i.e. 20 log10(f) dB more at 28 GHz than at 3.5 GHz;
* Fresnel reflection with complex permittivity (ITU-R P.2040 concrete for the walls, TE
  polarisation; medium-dry ground, TM) and Rayleigh roughness exp(-8 (pi s cos(ti)/lambda)^2),
  which hurts mmWave reflections much more than sub-6 ones;
* blockage by vehicles: a loss of a + b*log2(f / 3.5 GHz) dB per blocker crossed (about
  10 dB at 3.5 GHz, 31 dB at 28 GHz: sub-6 diffracts around a car, mmWave does not);
* scatterers with a bistatic radar-equation amplitude and a fixed random phase.

Both frequencies share every coordinate, so the sub-6 channel carries the information the
mmWave beam needs (this is what makes the mapping learnable, as in the O1 ray tracing),
while blockage, multipath and noise keep it from being trivial. Each scenario is written
in the DeepMIMO v4 on-disk layout and read back through `beamc.data.deepmimo`, the same
path a real O1_3p5/O1_28 pair takes. Deterministic by seed; a few seconds for 7k users.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beamc.schema import opt

C = 299_792_458.0
GENERATOR_VERSION = 1  # bump when the physics changes so cached scenarios are rebuilt


@dataclass(frozen=True)
class StreetConfig:
    seed: int = opt(0, ge=0, doc="seed of the vehicle/scatterer layout")
    length: float = opt(120.0, gt=20, doc="street length along y (m)")
    width: float = opt(20.0, gt=6, doc="distance between the building walls (m)")
    building_height: float = opt(20.0, gt=0, doc="wall height (m)")
    # O1's user grid is 0.2 m; at 0.5 m the street held 4.2k training users, too few for the
    # 3.5M-parameter teacher to converge (49.6 % vs 59.7 % Top-1 @15 dB at 0.25 m).
    grid_spacing: float = opt(0.25, gt=0, doc="user grid spacing (m)")
    ue_height: float = opt(1.5, gt=0, doc="user antenna height (m)")
    bs_height: float = opt(6.0, gt=0, doc="base station height (m)")
    bs_offset: float = opt(1.5, gt=0, doc="base station distance from the left wall (m)")
    vehicles: int = opt(14, ge=0, doc="number of vehicles (blockers)")
    scatterers: int = opt(6, ge=0, doc="number of point scatterers (lamp posts, signs)")
    cross_streets: int = opt(2, ge=0, doc="gaps in the walls where no reflection happens")
    roughness: float = opt(0.001, ge=0, doc="surface roughness std (m) for the Rayleigh factor")
    blockage_db: float = opt(10.0, ge=0, doc="loss per blocker at 3.5 GHz (dB)")
    blockage_db_per_octave: float = opt(7.0, ge=0, doc="extra blockage loss per frequency octave (dB)")
    max_paths: int = opt(10, ge=1, doc="strongest paths kept per user")


@dataclass
class Layout:
    bs: np.ndarray            # [3]
    users: np.ndarray         # [U, 3]
    boxes: np.ndarray         # [B, 2, 3] min/max corners
    scatterers: np.ndarray    # [S, 3]
    rcs: np.ndarray           # [S] m^2 at 3.5 GHz
    scatter_phase: np.ndarray  # [S] rad
    gaps: np.ndarray          # [G, 3]: wall side (-1 left, +1 right), y_min, y_max


def layout(cfg: StreetConfig) -> Layout:
    rng = np.random.default_rng(cfg.seed)
    hw, hl = cfg.width / 2, cfg.length / 2
    bs = np.array([-hw + cfg.bs_offset, 0.0, cfg.bs_height])
    gaps = []
    for i in range(cfg.cross_streets):
        side = -1.0 if i % 2 == 0 else 1.0
        y0 = rng.uniform(-hl + 10, hl - 20)
        gaps.append((side, y0, y0 + rng.uniform(8, 14)))
    boxes = []
    for _ in range(cfg.vehicles):
        kind = rng.choice(["car", "van", "truck", "bus"], p=[0.5, 0.2, 0.2, 0.1])
        length, width, height = {"car": (4.5, 1.8, 1.5), "van": (5.5, 2.0, 2.4),
                                 "truck": (8.0, 2.5, 3.6), "bus": (12.0, 2.5, 3.2)}[kind]
        lane = rng.choice([-hw + 3.0, -2.0, 2.0, hw - 3.0])  # parking lanes and two traffic lanes
        y = rng.uniform(-hl + 8, hl - 8)
        # keep the BS's own curb clear so it is not boxed in by a parked truck
        if abs(y) < 6 and lane < 0 and abs(lane - bs[0]) < 3:
            y += 12.0 * np.sign(y if y != 0 else 1.0)
        lo = np.array([lane - width / 2, y - length / 2, 0.0])
        hi = np.array([lane + width / 2, y + length / 2, height])
        boxes.append(np.stack([lo, hi]))
    boxes_arr = np.array(boxes).reshape(-1, 2, 3)
    n_s = cfg.scatterers
    sx = rng.choice([-hw + 1.0, hw - 1.0], size=n_s)
    scat = np.stack([sx, rng.uniform(-hl + 5, hl - 5, size=n_s), rng.uniform(3.0, 8.0, size=n_s)], axis=1)
    rcs = rng.uniform(0.5, 5.0, size=n_s)
    phase = rng.uniform(-np.pi, np.pi, size=n_s)

    xs = np.arange(-hw + 2.0, hw - 2.0 + 1e-9, cfg.grid_spacing)
    ys = np.arange(-hl + 5.0, hl - 5.0 + 1e-9, cfg.grid_spacing)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")  # rows along y, columns along x
    users = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, cfg.ue_height)], axis=1)
    inside = np.zeros(len(users), dtype=bool)
    for lo, hi in boxes_arr:  # nobody stands inside a vehicle
        inside |= np.all((users[:, :2] >= lo[:2] - 0.3) & (users[:, :2] <= hi[:2] + 0.3), axis=1)
    too_close = np.linalg.norm(users[:, :2] - bs[:2], axis=1) < 2.0
    users = users[~inside & ~too_close]
    return Layout(bs, users, boxes_arr, scat, rcs, phase, np.array(gaps).reshape(-1, 3))


# ----------------------------------------------------------------------------- physics
def permittivity(material: str, f_hz: float) -> complex:
    """Complex relative permittivity eta = e' - j 17.98 sigma / f_GHz (ITU-R P.2040 model)."""
    f = f_hz / 1e9
    a, b, c, d = {"concrete": (5.24, 0.0, 0.0462, 0.7822), "ground": (15.0, -0.1, 0.035, 1.63)}[material]
    eps = a * f**b
    sigma = c * f**d
    return complex(eps, -17.98 * sigma / f)


def fresnel(cos_i: np.ndarray, eta: complex, pol: str) -> np.ndarray:
    sin2 = 1.0 - cos_i**2
    root = np.sqrt(eta - sin2 + 0j)
    if pol == "TE":
        return (cos_i - root) / (cos_i + root)
    return (eta * cos_i - root) / (eta * cos_i + root)


def roughness(cos_i: np.ndarray, s: float, lam: float) -> np.ndarray:
    return np.exp(-8.0 * (np.pi * s * cos_i / lam) ** 2)


def segment_hits_box(p0: np.ndarray, p1: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """[..., B] True where segment p0->p1 ([..., 3]) crosses an axis-aligned box (slab test)."""
    d = (p1 - p0)[..., None, :]
    o = p0[..., None, :]
    lo, hi = boxes[:, 0], boxes[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1 = (lo - o) * inv
        t2 = (hi - o) * inv
    tmin = np.where(np.isnan(t1), -np.inf, np.minimum(t1, t2))
    tmax = np.where(np.isnan(t1), np.inf, np.maximum(t1, t2))
    # a segment parallel to a slab and outside it misses the box
    parallel_out = (d == 0) & ((o < lo) | (o > hi))
    enter = tmin.max(axis=-1)
    leave = tmax.min(axis=-1)
    hit = (enter <= leave) & (leave > 1e-6) & (enter < 1 - 1e-6)
    return hit & ~parallel_out.any(axis=-1)


# planes: (axis, coordinate, name, material, polarisation)
def _planes(cfg: StreetConfig) -> dict[str, tuple[int, float, str, str]]:
    return {"L": (0, -cfg.width / 2, "concrete", "TE"), "R": (0, cfg.width / 2, "concrete", "TE"),
            "G": (2, 0.0, "ground", "TM")}


SEQUENCES = ("", "G", "L", "R", "LR", "RL", "LG", "RG", "GR", "GL")


def _mirror(p: np.ndarray, axis: int, coord: float) -> np.ndarray:
    q = p.copy()
    q[..., axis] = 2 * coord - q[..., axis]
    return q


def _on_plane(point: np.ndarray, plane: str, cfg: StreetConfig, lay: Layout) -> np.ndarray:
    hl, hw = cfg.length / 2, cfg.width / 2
    if plane == "G":
        return (np.abs(point[..., 0]) <= hw) & (np.abs(point[..., 1]) <= hl)
    ok = (np.abs(point[..., 1]) <= hl) & (point[..., 2] >= 0) & (point[..., 2] <= cfg.building_height)
    side = -1.0 if plane == "L" else 1.0
    for g_side, y0, y1 in lay.gaps:
        if g_side == side:
            ok &= ~((point[..., 1] >= y0) & (point[..., 1] <= y1))
    return ok


def trace(cfg: StreetConfig, lay: Layout, f_hz: float) -> dict[str, np.ndarray]:
    """All paths of every user at carrier f_hz, in DeepMIMO matrix form ([U, P] arrays)."""
    lam = C / f_hz
    planes = _planes(cfg)
    users, bs = lay.users, lay.bs
    n_u = len(users)
    blk_db = cfg.blockage_db + cfg.blockage_db_per_octave * np.log2(f_hz / 3.5e9)
    rows = []  # per candidate path: dict of [U] arrays

    for seq in SEQUENCES:
        # images of the BS through the sequence, then reflection points from the user back
        images = [bs]
        for plane in seq:
            axis, coord, _, _ = planes[plane]
            images.append(_mirror(images[-1], axis, coord))
        valid = np.ones(n_u, dtype=bool)
        gain = np.ones(n_u, dtype=complex)
        points: list[np.ndarray] = []
        target = users
        for k in range(len(seq) - 1, -1, -1):
            axis, coord, material, pol = planes[seq[k]]
            src = np.broadcast_to(images[k + 1], target.shape)
            denom = target[:, axis] - src[:, axis]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (coord - src[:, axis]) / denom
            pt = src + t[:, None] * (target - src)
            valid &= (t > 0) & (t < 1) & _on_plane(pt, seq[k], cfg, lay)
            direction = target - pt
            cos_i = np.abs(direction[:, axis]) / np.maximum(np.linalg.norm(direction, axis=1), 1e-9)
            gain = gain * fresnel(cos_i, permittivity(material, f_hz), pol) * roughness(cos_i, cfg.roughness, lam)
            points.insert(0, pt)
            target = pt
        chain = [np.broadcast_to(bs, users.shape)] + points + [users]
        length = np.linalg.norm(users - np.broadcast_to(images[-1], users.shape), axis=1)
        rows.append(_path(chain, length, gain, valid, seq, lam, blk_db, lay))

    for s in range(len(lay.scatterers)):
        sp = np.broadcast_to(lay.scatterers[s], users.shape)
        d1 = np.linalg.norm(sp - bs, axis=1)
        d2 = np.linalg.norm(users - sp, axis=1)
        rcs = lay.rcs[s] * np.sqrt(f_hz / 3.5e9)  # electrically larger at higher frequency
        # bistatic radar equation, written as a free-space-like amplitude over d1 + d2
        amp = lam * np.sqrt(rcs) / ((4 * np.pi) ** 1.5 * d1 * d2)
        fs = lam / (4 * np.pi * (d1 + d2))
        gain = (amp / fs) * np.exp(1j * lay.scatter_phase[s])
        chain = [np.broadcast_to(bs, users.shape), sp, users]
        rows.append(_path(chain, d1 + d2, gain, np.ones(n_u, dtype=bool), "S", lam, blk_db, lay))

    return _to_matrices(rows, cfg.max_paths)


def _path(chain: list[np.ndarray], length: np.ndarray, gain: np.ndarray, valid: np.ndarray, seq: str,
          lam: float, blk_db: float, lay: Layout) -> dict[str, np.ndarray]:
    n_block = np.zeros(len(length))
    if len(lay.boxes):
        for a, b in zip(chain[:-1], chain[1:]):
            n_block += segment_hits_box(np.asarray(a), np.asarray(b), lay.boxes).sum(axis=1)
    amp = lam / (4 * np.pi * length) * gain * 10 ** (-blk_db * n_block / 20)
    phase = np.angle(amp) - 2 * np.pi * length / lam
    first, last = chain[1] - chain[0], chain[-2] - chain[-1]

    def az_el(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.linalg.norm(v, axis=1)
        return np.degrees(np.arctan2(v[:, 1], v[:, 0])), np.degrees(np.arccos(np.clip(v[:, 2] / r, -1, 1)))

    aod_az, aod_el = az_el(first)
    aoa_az, aoa_el = az_el(last)
    code = 0.0 if seq == "" else (3.0 if seq == "S" else float("1" * len(seq)))
    inter_pos = np.full((len(length), 2, 3), np.nan)
    for i, p in enumerate(chain[1:-1][:2]):
        inter_pos[:, i] = p
    power = 20 * np.log10(np.maximum(np.abs(amp), 1e-30))
    nan = np.where(valid, 0.0, np.nan)
    return {"power": power + nan, "phase": np.degrees(np.angle(np.exp(1j * phase))) + nan,
            "delay": length / C + nan, "aod_az": aod_az + nan, "aod_el": aod_el + nan,
            "aoa_az": aoa_az + nan, "aoa_el": aoa_el + nan, "inter": np.full(len(length), code) + nan,
            "inter_pos": inter_pos + nan[:, None, None], "blocked": np.where(valid, n_block, np.nan)}


def _to_matrices(rows: list[dict[str, np.ndarray]], max_paths: int) -> dict[str, np.ndarray]:
    stacked = {k: np.stack([r[k] for r in rows], axis=1) for k in rows[0]}
    power = np.where(np.isnan(stacked["power"]), -np.inf, stacked["power"])
    order = np.argsort(-power, axis=1, kind="stable")[:, :max_paths]
    out = {}
    for k, v in stacked.items():
        idx = order.reshape(order.shape + (1,) * (v.ndim - 2))
        out[k] = np.take_along_axis(v, idx, axis=1).astype(np.float32)
    return out


SUB6_NAME = "beamc_street_3p5"
MMWAVE_NAME = "beamc_street_28"


def generate(cfg: StreetConfig, folder: str | Path, f_sub6: float = 3.5e9, f_mmwave: float = 28e9) -> tuple[str, str]:
    """Write the sub-6 and mmWave scenarios of one street into `folder`; returns their names."""
    from beamc.data.deepmimo import write_scenario

    lay = layout(cfg)
    for name, f in ((SUB6_NAME, f_sub6), (MMWAVE_NAME, f_mmwave)):
        m = trace(cfg, lay, f)
        m.pop("blocked")
        write_scenario(folder, name, frequency=f, tx_pos=lay.bs, rx_pos=lay.users, paths=m,
                       extra_rt_params={"beamc_generator_version": GENERATOR_VERSION})
    return SUB6_NAME, MMWAVE_NAME
