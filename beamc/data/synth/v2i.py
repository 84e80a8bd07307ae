"""Embedded V2I street simulator that writes DeepSense 6G scenario folders.

A roadside base station watches a street with a 16-element 60 GHz ULA (64-beam oversampled
codebook), a camera, a 216-bin 2-D LiDAR and a 77 GHz FMCW radar (4 Rx, 256 samples, 128
chirps), all co-located. In each sequence a target vehicle carrying the transmitter drives
through the field of view while other vehicles, pedestrians and static poles occlude and
reflect. Every frame, one shared geometry (`v2i_scene`) is rendered into

    camera JPEGs (`v2i_camera`), LiDAR scans and radar cubes (`v2i_sensors`), the 64 beam
    powers (`v2i_beams`), GPS of both units,

and written in the layout `beamc.data.deepsense` reads (same CSV columns, order, CRLF line
endings, 1-based beam index, timestamps, file formats), so the real-format loader is the
only way in. Frames are 111 ms apart and sequences 30-65 rows long as in scenario 9.
Deterministic by seed: sequence s uses its own random streams, so `frames(cfg)` can be
replayed (tests compare what it yields with what the loader reads back).

Besides the DeepSense files the folder holds `beamc_truth.npz` (the target's bearing,
range, position, speed, line-of-sight flag and noiseless best beam per CSV row) and
`beamc_synth.json` (the configuration); real folders have neither and nothing needs them.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from beamc.data import deepsense as ds
from beamc.data.synth import v2i_beams, v2i_camera, v2i_scene, v2i_sensors
from beamc.errors import BeamcError
from beamc.progress import track
from beamc.schema import opt

GENERATOR_VERSION = 3  # bump when the output changes so cached scenarios are rebuilt (3: LiDAR noise on its own stream)
CSV_NAME = "scenario_synth.csv"
TRUTH_FILE = "beamc_truth.npz"
CONFIG_FILE = "beamc_synth.json"
# An arbitrary GPS origin for the base station near the DeepSense collection sites (Tempe, AZ).
BS_LAT, BS_LON = 33.420000, -111.928000
EARTH_M_PER_DEG = 111_320.0
GPS_FORMAT = "{:.8f}"  # degrees: 1e-8 deg is about 1 mm


@dataclass(frozen=True)
class DeepSenseSynthConfig:
    seed: int = opt(0, ge=0, doc="seed of the street, the traffic and every noise draw")
    sequences: int = opt(24, ge=1, doc="number of sequences (vehicle passes)")
    min_frames: int = opt(30, ge=2, doc="shortest sequence (rows); scenario 9 has 30..65")
    max_frames: int = opt(65, ge=2, doc="longest sequence (rows)")
    frame_interval_s: float = opt(ds.FRAME_INTERVAL_S, gt=0, doc="time between frames (scenario 9: median 111 ms)")
    lanes: tuple[float, ...] = opt((6.0, 9.5, 13.0), gt=1.0,
                                   doc="lane centres (m from the base station); even lanes drive +x, odd lanes -x")
    wall_y: float = opt(20.0, gt=5, doc="distance of the building facade behind the street (m)")
    bs_height: float = opt(1.5, gt=0, doc="height of the base station's sensors (m)")
    fov_deg: float = opt(100.0, gt=10, lt=170, doc="camera field of view and codebook span (deg)")
    speed_kmh_min: float = opt(8.0, gt=0, doc="slowest target vehicle (km/h)")
    speed_kmh_max: float = opt(18.0, gt=0, doc="fastest target vehicle (km/h); scenario 8: 3..18")
    other_vehicles: float = opt(1.0, ge=0, doc="mean number of other vehicles per sequence (Poisson)")
    pedestrians: float = opt(0.5, ge=0, doc="mean number of pedestrians per sequence (Poisson)")
    poles: int = opt(5, ge=0, doc="static poles on the far sidewalk (clutter and scatterers)")
    snr_db: float = opt(28.0, doc="SNR of an unblocked transmitter 10 m away in its best beam (dB)")
    blockage_db: float = opt(20.0, ge=0, doc="60 GHz loss per vehicle crossing a path (dB)")
    pedestrian_db: float = opt(15.0, ge=0, doc="60 GHz loss per pedestrian crossing a path (dB)")
    gps_noise_m: float = opt(1.0, ge=0, doc="GPS error of unit 2 (m, per-sequence bias and per-fix noise)")
    night_fraction: float = opt(0.0, ge=0, le=1,
                                doc="probability that a sequence is recorded at night (scenario 9 has day and night "
                                    "sequences): darker, noisier camera frames with vehicle lights; radar unaffected")
    night_level: float = opt(0.15, gt=0, le=1, doc="night camera frame level relative to the day frame (after exposure control)")
    night_noise_gain: float = opt(4.0, ge=1, doc="night camera sensor noise relative to the day noise (analogue gain)")
    jpeg_quality: int = opt(85, ge=10, le=95, doc="JPEG quality of the camera frames")
    camera: bool = opt(True, doc="write camera frames (unit1_rgb)")
    lidar: bool = opt(True, doc="write LiDAR scans (unit1_lidar, unit1_lidar_SCR)")
    radar: bool = opt(True, doc="write radar cubes (unit1_radar, 1 MB per frame)")
    gps: bool = opt(True, doc="write GPS files (unit1_loc, unit2_loc, unit2_loc_cal)")

    def check(self) -> None:
        if self.min_frames > self.max_frames:
            raise BeamcError(f"data.synth: min_frames ({self.min_frames}) must be <= max_frames ({self.max_frames})")
        if self.speed_kmh_min > self.speed_kmh_max:
            raise BeamcError(f"data.synth: speed_kmh_min ({self.speed_kmh_min}) must be <= speed_kmh_max ({self.speed_kmh_max})")
        if not self.lanes or max(self.lanes) > self.wall_y - 5:
            raise BeamcError(f"data.synth: lanes must be non-empty and at least 5 m before the facade "
                             f"(wall_y = {self.wall_y}), found {list(self.lanes)}")


@dataclass
class Frame:
    """Everything written for one CSV row (arrays as written, before JPEG encoding)."""

    seq: int                  # seq_index (1-based)
    k: int                    # frame within the sequence
    g: int                    # global frame counter (0-based)
    t: float                  # seconds since midnight
    power: np.ndarray         # [64] measured powers
    power_clean: np.ndarray   # [64] noiseless powers
    los: bool
    image: np.ndarray | None = None
    lidar: np.ndarray | None = None       # [216] SCR scan
    lidar_raw: np.ndarray | None = None   # [N, 2]
    radar: np.ndarray | None = None       # complex64 [4, 256, 128]
    gps: np.ndarray | None = None         # [2] lat, lon of unit 2
    gps_cal: np.ndarray | None = None
    meta: dict[str, str] = field(default_factory=dict)
    truth: dict[str, float] = field(default_factory=dict)

    @property
    def beam_index(self) -> int:
        """1-based, as in the CSV: argmax of the written powers + 1."""
        return int(np.argmax(self.power)) + 1


def plans(cfg: DeepSenseSynthConfig) -> tuple[v2i_scene.World, list[v2i_scene.Plan]]:
    cfg.check()
    w = v2i_scene.world(cfg)
    rng = np.random.default_rng([cfg.seed, 5])
    t0, out = 16 * 3600.0, []
    for s in range(1, cfg.sequences + 1):
        p = v2i_scene.plan_sequence(cfg, w, s, t0)
        out.append(p)
        t0 += p.dt[-1] + rng.uniform(3.0, 40.0)
    return w, out


def to_latlon(east: float, north: float) -> np.ndarray:
    return np.array([BS_LAT + north / EARTH_M_PER_DEG,
                     BS_LON + east / (EARTH_M_PER_DEG * np.cos(np.radians(BS_LAT)))])


def frames(cfg: DeepSenseSynthConfig) -> Iterator[Frame]:
    """Every frame of the scenario in CSV order (deterministic in cfg)."""
    w, seqs = plans(cfg)
    cb = v2i_beams.codebook(cfg.fov_deg)
    cam = v2i_camera.camera(w, cfg.fov_deg)
    bg = v2i_camera.background(w, cam, cfg.seed) if cfg.camera else None
    noise = v2i_camera.noise_bank(cfg.seed) if cfg.camera else None
    night = v2i_camera.Night(level=cfg.night_level, noise_gain=cfg.night_noise_gain)
    g = 0
    for p in seqs:
        direction = "0" if p.velocity[0, 0] > 0 else "1"
        for k in range(p.n_frames):
            rng = np.random.default_rng([cfg.seed, 4, p.seq_id, k])
            st = v2i_scene.frame_state(p, k)
            power, clean, los = v2i_beams.beam_powers(st, w, cfg, rng, cb)
            f = Frame(seq=p.seq_id, k=k, g=g, t=st.t, power=power, power_clean=clean, los=los)
            if cfg.camera:
                f.image = v2i_camera.render(st, w, cam, bg, p.brightness, noise, rng, night if p.night else None)
            if cfg.lidar:
                # its own stream: the scans must not change with the camera or radar switched off
                # (the LiDAR task's scenario has neither)
                f.lidar, f.lidar_raw = v2i_sensors.lidar_scans(st, w, np.random.default_rng([cfg.seed, 5, p.seq_id, k]))
            if cfg.radar:
                f.radar = v2i_sensors.radar_cube(st, w, rng)
            if cfg.gps:
                f.gps = to_latlon(*(st.tx[:2] + p.gps_bias + rng.normal(0, cfg.gps_noise_m / 2, size=2)))
                f.gps_cal = to_latlon(*(st.tx[:2] + rng.normal(0, cfg.gps_noise_m / 4, size=2)))
            f.meta = _gps_meta(rng, direction)
            f.truth = {"bearing_deg": float(np.degrees(v2i_scene.bearing(st.tx))),
                       "range_m": float(np.hypot(*st.tx[:2])), "x": float(st.tx[0]), "y": float(st.tx[1]),
                       "speed_mps": float(abs(p.velocity[0, 0])), "lane": float(p.lane), "los": float(los),
                       "best_beam": float(np.argmax(clean)), "others": float(len(p.kind) - 1 - cfg.poles), "night": float(p.night)}
            yield f
            g += 1


def _gps_meta(rng: np.random.Generator, direction: str) -> dict[str, str]:
    n_sat = int(rng.integers(12, 19))
    sats = [f"G{i}" for i in sorted(rng.choice(np.arange(1, 33), size=min(n_sat, 9), replace=False))]
    sats += [f"R{i}" for i in sorted(rng.choice(np.arange(1, 25), size=n_sat - len(sats), replace=False))]
    return {"unit2_direction": direction, "unit2_num_sat": str(n_sat), "unit2_sat_used": " ".join(sats),
            "unit2_fix_type": "3D", "unit2_DGPS": "Yes" if rng.random() < 0.92 else "No",
            "unit2_PDOP": f"{rng.uniform(1.5, 3.3):.1f}", "unit2_HDOP": f"{rng.uniform(0.7, 1.5):.1f}"}


# ----------------------------------------------------------------------------- writing
def relative_paths(f: Frame, hhmmss: str) -> dict[str, str]:
    """CSV path of each file of frame `f`, named like scenario9.csv's."""
    return {
        "unit1_rgb": f"./unit1/camera_data/image_BS1_{f.g + 1}_{hhmmss}.jpg",
        "unit1_pwr_60ghz": f"./unit1/mmWave_data/mmWave_power_{f.g}.txt",
        "unit1_loc": "./unit1/GPS_data/gps_location.txt",
        "unit1_lidar": f"./unit1/lidar_data/Lidar_data_{f.g + 1}.mat",
        "unit1_lidar_SCR": f"./unit1/lidar_SCR_data/Lidar_data_{f.g + 1}.mat",
        "unit1_radar": f"./unit1/radar_data/data_{f.g + 1}_{hhmmss}.mat",
        "unit2_loc": f"./unit2/GPS_data/gps_location_{f.g}.txt",
        "unit2_loc_cal": f"./unit2/GPS_data_calibrated/gps_location_{f.g}.txt",
    }


def columns(cfg: DeepSenseSynthConfig) -> list[str]:
    """The real column order minus the columns of disabled modalities."""
    off = set()
    if not cfg.camera:
        off.add("unit1_rgb")
    if not cfg.lidar:
        off |= {"unit1_lidar", "unit1_lidar_SCR"}
    if not cfg.radar:
        off.add("unit1_radar")
    if not cfg.gps:
        off |= {"unit1_loc", "unit2_loc", "unit2_loc_cal"}
    return [c for c in ds.COLUMNS if c not in off]


def _write_numbers(path: Path, values: np.ndarray, fmt: str = "{:.9g}") -> None:
    path.write_text("".join(fmt.format(v) + "\n" for v in np.ravel(values)))


def write_frame(root: Path, f: Frame, cfg: DeepSenseSynthConfig) -> dict[str, str]:
    """Write the files of one frame; returns its CSV row."""
    import scipy.io

    stamp = ds.format_timestamp(f.t)
    hhmmss = "_".join(stamp[2:10].split("-"))
    rel = relative_paths(f, hhmmss)
    row = {c: "" for c in columns(cfg)}
    row.update({"index": str(f.g + 1), "unit1_beam_index": str(f.beam_index), "seq_index": str(f.seq),
                "time_stamp[UTC]": stamp, **f.meta})
    _write_numbers(root / rel["unit1_pwr_60ghz"], f.power)
    row["unit1_pwr_60ghz"] = rel["unit1_pwr_60ghz"]
    if f.image is not None:
        (root / rel["unit1_rgb"]).write_bytes(v2i_camera.encode_jpeg(f.image, cfg.jpeg_quality))
        row["unit1_rgb"] = rel["unit1_rgb"]
    if f.lidar is not None:
        scipy.io.savemat(root / rel["unit1_lidar_SCR"], {"data": f.lidar[:, None]})
        scipy.io.savemat(root / rel["unit1_lidar"], {"data": f.lidar_raw})
        row["unit1_lidar_SCR"], row["unit1_lidar"] = rel["unit1_lidar_SCR"], rel["unit1_lidar"]
    if f.radar is not None:
        scipy.io.savemat(root / rel["unit1_radar"], {"data": f.radar})
        row["unit1_radar"] = rel["unit1_radar"]
    if f.gps is not None:
        _write_numbers(root / rel["unit2_loc"], f.gps, GPS_FORMAT)
        _write_numbers(root / rel["unit2_loc_cal"], f.gps_cal, GPS_FORMAT)
        row["unit1_loc"], row["unit2_loc"], row["unit2_loc_cal"] = rel["unit1_loc"], rel["unit2_loc"], rel["unit2_loc_cal"]
    return row


@dataclass
class GenerateReport:
    path: Path
    rows: int
    sequences: int
    seconds: float


def _write_scenario(cfg: DeepSenseSynthConfig, root: Path, progress: bool) -> int:
    from beamc.schema import to_dict

    for rel in relative_paths(Frame(0, 0, 0, 0.0, np.zeros(1), np.zeros(1), True), "00_00_00").values():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    if cfg.gps:
        _write_numbers(root / "unit1/GPS_data/gps_location.txt", to_latlon(0.0, 0.0), GPS_FORMAT)
    _, seqs = plans(cfg)
    total = sum(p.n_frames for p in seqs)
    rows, truth = [], {}
    for f in track(frames(cfg), f"simulating {cfg.sequences} sequences, {total} frames", progress, total=total):
        rows.append(write_frame(root, f, cfg))
        for key, value in f.truth.items():
            truth.setdefault(key, []).append(value)
        truth.setdefault("seq_index", []).append(f.seq)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns(cfg), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    (root / CSV_NAME).write_bytes(buf.getvalue().encode())
    np.savez(root / TRUTH_FILE, **{k: np.asarray(v) for k, v in truth.items()})
    (root / CONFIG_FILE).write_text(json.dumps({"generator_version": GENERATOR_VERSION, "config": to_dict(cfg)},
                                               indent=2) + "\n")
    return total


def generate(cfg: DeepSenseSynthConfig, out: str | Path, *, progress: bool = False) -> GenerateReport:
    """Write a DeepSense-format scenario folder at `out` (which must not exist or be empty).

    The folder is built under a temporary name next to `out` and renamed into place, so a
    killed run never leaves a half-written scenario behind."""
    cfg.check()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BeamcError(f"{out} already exists and is not an empty folder; choose a new --out (nothing was written)")
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the finished scenario is an ordinary folder
    try:
        rows = _write_scenario(cfg, tmp, progress)
        try:
            if out.exists():
                out.rmdir()  # an empty folder made by the user
            tmp.rename(out)
        except OSError:
            if out.exists() and any(out.iterdir()):  # someone else finished the same folder first
                raise FileExistsError(out) from None
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return GenerateReport(out, rows, cfg.sequences, time.perf_counter() - start)


__all__ = ["DeepSenseSynthConfig", "Frame", "frames", "plans", "generate", "GenerateReport", "GENERATOR_VERSION",
           "CSV_NAME", "TRUTH_FILE", "CONFIG_FILE"]
