"""60 GHz received power in each of the 64 beams of the base station's 16-element ULA.

The array lies along x (the street) with half-wavelength spacing, so a path arriving from
bearing theta (from boresight +y towards +x) has response a_n = exp(j pi n sin theta). The
codebook oversamples the array 4x: beam m steers at sin theta_m spread uniformly over
+-sin(fov/2), beam 0 looking towards -x (the left of the camera image). The channel sums,
for the transmitter on the target's roof,

* the line-of-sight path, losing `blockage_db` per vehicle (`pedestrian_db` per person)
  that crosses it,
* the ground bounce (Gamma = -0.5, same bearing: two-ray fading along the pass),
* the bounce off the building facade behind the street (image of the transmitter across
  y = wall_y, Gamma = 0.35),
* bounces off the near side of other vehicles further from the base station (Gamma = 0.5:
  a bus behind the target lights up a second direction), and
* single-bounce scattering by the poles (radar-equation amplitude, 1 m^2),

each with free-space amplitude lambda / (4 pi d) and phase -2 pi d / lambda. Every beam
then sees complex receiver noise whose power puts an unblocked transmitter 10 m away at
`snr_db` in its best beam.
"""

from __future__ import annotations

import numpy as np

from beamc.data.deepsense import N_BEAMS
from beamc.data.synth.street import segment_hits_box
from beamc.data.synth.v2i_scene import KIND_PEDESTRIAN, KIND_POLE, FrameState, World

C = 299_792_458.0
F_CARRIER = 60e9
N_ANTENNAS = 16
GAMMA_GROUND, GAMMA_WALL, GAMMA_VEHICLE = -0.5, 0.35, 0.5
POLE_RCS = 1.0
POWER_SCALE = 1e-4  # written power = received / noise power * POWER_SCALE (arbitrary units)


def beam_sines(fov_deg: float) -> np.ndarray:
    """sin of each beam's steering bearing: uniform over +-sin(fov/2), beam 0 towards -x."""
    return np.linspace(-1, 1, N_BEAMS) * np.sin(np.radians(fov_deg / 2))


def beam_angles_deg(fov_deg: float) -> np.ndarray:
    """Steering bearing (deg) of each beam."""
    return np.degrees(np.arcsin(beam_sines(fov_deg)))


def steering(sin_theta: np.ndarray) -> np.ndarray:
    """[P, 16] array responses exp(j pi n sin theta)."""
    return np.exp(1j * np.pi * np.outer(np.atleast_1d(sin_theta), np.arange(N_ANTENNAS)))


def codebook(fov_deg: float) -> np.ndarray:
    """[64, 16] unit-norm beamforming vectors."""
    return steering(beam_sines(fov_deg)) / np.sqrt(N_ANTENNAS)


def _free_space(d: np.ndarray | float, lam: float) -> np.ndarray:
    return lam / (4 * np.pi * d) * np.exp(-2j * np.pi * np.asarray(d) / lam)


def _blocking_loss_db(a: np.ndarray, b: np.ndarray, state: FrameState, skip: set[int], cfg) -> float:
    keep = [k for k in range(len(state.kind)) if k not in skip and state.kind[k] != KIND_POLE]
    if not keep:
        return 0.0
    hits = segment_hits_box(a[None], b[None], state.boxes[keep])[0]
    per = np.where(state.kind[keep] == KIND_PEDESTRIAN, cfg.pedestrian_db, cfg.blockage_db)
    return float(per[hits].sum())


def paths(state: FrameState, w: World, cfg) -> tuple[np.ndarray, np.ndarray, bool]:
    """(sin theta [P], complex gain [P], line of sight unblocked) of every path to the transmitter."""
    lam = C / F_CARRIER
    bs = np.array([0.0, 0.0, w.bs_height])
    tx = state.tx
    sins, gains = [], []
    los_loss = _blocking_loss_db(bs, tx, state, {0}, cfg)
    d = np.linalg.norm(tx - bs)
    sins.append(tx[0] / np.hypot(tx[0], tx[1]))
    gains.append(_free_space(d, lam) * 10 ** (-los_loss / 20))
    # ground bounce: same bearing, longer path, blocked like the direct one
    d_g = np.linalg.norm(tx * np.array([1, 1, -1]) - bs)
    sins.append(sins[0])
    gains.append(GAMMA_GROUND * _free_space(d_g, lam) * 10 ** (-los_loss / 20))
    # facade and vehicle-side bounces by the image method
    mirrors = [(w.wall_y, GAMMA_WALL, None)]
    for k in range(1, len(state.kind)):
        near_y = state.boxes[k, 0, 1]
        if state.kind[k] != KIND_PEDESTRIAN and state.kind[k] != KIND_POLE and near_y > tx[1] + 0.5:
            mirrors.append((near_y, GAMMA_VEHICLE, k))
    for plane_y, gamma, k in mirrors:
        image = np.array([tx[0], 2 * plane_y - tx[1], tx[2]])
        s = plane_y / image[1]
        hit = bs + s * (image - bs)
        if k is not None:
            lo, hi = state.boxes[k]
            if not (lo[0] <= hit[0] <= hi[0] and 0.3 <= hit[2] <= hi[2]):
                continue
        loss = _blocking_loss_db(bs, hit, state, {0} if k is None else {0, k}, cfg) \
            + _blocking_loss_db(hit, tx, state, {0} if k is None else {0, k}, cfg)
        sins.append(image[0] / np.hypot(image[0], image[1]))
        gains.append(gamma * _free_space(np.linalg.norm(image - bs), lam) * 10 ** (-loss / 20))
    for p in w.poles:
        sp = np.array([p[0], p[1], 2.0])
        d1, d2 = np.linalg.norm(sp - bs), np.linalg.norm(tx - sp)
        amp = lam * np.sqrt(POLE_RCS) / ((4 * np.pi) ** 1.5 * d1 * d2)
        sins.append(sp[0] / np.hypot(sp[0], sp[1]))
        gains.append(amp * np.exp(-2j * np.pi * (d1 + d2) / lam))
    return np.asarray(sins), np.asarray(gains), los_loss == 0.0


def noise_power(cfg) -> float:
    """Per-beam noise power that puts an unblocked transmitter 10 m away at cfg.snr_db."""
    lam = C / F_CARRIER
    best_gain = N_ANTENNAS  # |w^H a|^2 of a matched unit-norm beam
    return (lam / (4 * np.pi * 10.0)) ** 2 * best_gain / 10 ** (cfg.snr_db / 10)


def beam_powers(state: FrameState, w: World, cfg, rng: np.random.Generator,
                cb: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(measured powers [64] in written units, noiseless powers [64] in the same units, LOS)."""
    sins, gains, los = paths(state, w, cfg)
    h = (gains[:, None] * steering(sins)).sum(axis=0)  # [16]
    y = cb.conj() @ h
    sigma2 = noise_power(cfg)
    noise = rng.normal(0, np.sqrt(sigma2 / 2), size=(N_BEAMS, 2)) @ np.array([1, 1j])
    scale = POWER_SCALE / sigma2
    return np.abs(y + noise) ** 2 * scale, np.abs(y) ** 2 * scale, los
