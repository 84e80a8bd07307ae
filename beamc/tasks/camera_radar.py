"""Camera + radar beam tracking with multimodal KD (paper: ../shared/papers/multimodal-camera-radar-kd-abstract.md).

From the camera frames and radar cubes of the last `past` slots predict the best beam of
the current slot t and of `future` slots t+1 .. t+future (64-beam codebook). The paper is
available as an abstract only; the architecture and preprocessing are ours, within its
stated targets (CNN branch per modality, fusion, GRU; a student with >= 27x fewer
parameters and >= 4x fewer FLOPs, trained by KD; fused better than either modality).

`task.modalities` selects the inputs, so the camera-only and radar-only teachers of the
single- vs multi-modality comparison are this same task with one branch. Model inputs, in
the order of `task.modalities`:

    camera  float32 [past, 3, S, S]   RGB resized to S x S (Pillow bilinear), /255, then
                                      standardised per channel with training-split statistics
    radar   float32 [past, 2, M, M]   channel 0: range-angle map  [M angle bins, M range bins]
                                      channel 1: range-velocity map [M Doppler bins, M range bins]
                                      log1p of the FFT magnitudes, standardised per channel

Radar processing (`radar_maps`), the usual chain of the radar beam-prediction literature
(cube = [rx 4, samples 256, chirps 128], complex ADC samples):
  * range FFT over the samples; keep the first `radar_range_bins` bins (0.195 m each on
    DeepSense scenario 9: 128 bins = 25 m covers the street, the facade is at 20 m);
  * range-angle: static clutter removed (mean over chirps subtracted), angle FFT over the
    4 rx zero-padded to M bins and fftshifted (bin j looks at sin(theta) = 2 (j - M/2) / M,
    as `beamc.data.deepsense_inspect.range_angle_map`), magnitude summed over chirps;
  * range-velocity: Doppler FFT over the chirps, fftshifted (bin M/2 after pooling holds
    zero speed), magnitude summed over rx;
  * range (and Doppler) bins summed in groups down to M; log1p.
The log maps are cached per frame (`frame_cache`: a radar cube is 1 MB, its maps 8 KB);
standardisation happens on the fly with the statistics in `preprocess_state`, so the
runtime computes exactly what training saw (`stream_preprocessor`).

Labels: `beam_labels` of `windows(past, future, pad_future=True)`: future beams past the
end of a sequence are -100 and ignored by the loss and the metrics. Metrics: Top-K per
predicted step over the valid labels and their mean over steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from beamc.data.deepsense import RADAR_SHAPE
from beamc.data.synth.v2i import DeepSenseSynthConfig
from beamc.data.windows import IGNORE_INDEX
from beamc.errors import BeamcError
from beamc.registry import TASKS
from beamc.schema import opt
from beamc.tasks.base import (Batch, Predictor, SlidingWindow, StreamPreprocessor, Task, TaskData, TensorSpec, index_batches,
                              topk_indices)
from beamc.tasks.deepsense_data import DeepSenseDataConfig, open_deepsense, split

MODALITIES = ("camera", "radar")
SCENARIO_COLUMN = {"camera": "rgb", "radar": "radar"}   # DeepSense reader modality of each input
PREPROCESS_VERSION = 1                                   # bump when camera_frame / radar_maps change (cache key)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CameraRadarTaskConfig:
    name: str = opt("camera_radar", doc='task name ("camera_radar")')
    modalities: tuple[str, ...] = opt(MODALITIES, doc='model inputs, in this order: "camera", "radar" or both')
    num_beams: int = opt(64, ge=2, doc="codebook size")
    past: int = opt(4, ge=1, doc="input frames per window (t-past+1 .. t)")
    future: int = opt(3, ge=0, doc="future slots predicted besides the current one")
    image_size: int = opt(32, ge=8, doc="side S of the resized camera frames (a multiple of 8)")
    map_size: int = opt(32, ge=4, doc="side M of the radar maps: angle FFT size and pooled range / Doppler bins")
    radar_range_bins: int = opt(128, ge=4, le=256, doc="range FFT bins kept (nearest first; 0.195 m each on scenario 9)")
    topk: tuple[int, ...] = opt((1, 3, 5), ge=1, doc="Top-K accuracies reported per step")


def _camera_and_radar() -> DeepSenseSynthConfig:
    # radar cubes cost 1 MB per frame: 24 sequences (~1,100 frames) generate in ~20 s and
    # keep the scenario near 1 GB; LiDAR and GPS are not read by this task. Night sequences:
    # scenario 9 has day and night recordings, and night is where the radar complements a
    # dark, noisy camera (benchmarks/results/camera_radar.md); the simulator's own default
    # stays 0 so the other tasks' data do not change.
    return DeepSenseSynthConfig(lidar=False, gps=False, night_fraction=0.3)


@dataclass(frozen=True)
class CameraRadarDataConfig(DeepSenseDataConfig):
    synth: DeepSenseSynthConfig = opt(factory=_camera_and_radar, doc="synth: simulator settings (camera, radar and beams by default)")


def check_config(cfg: CameraRadarTaskConfig) -> None:
    if not cfg.modalities or len(set(cfg.modalities)) != len(cfg.modalities) or set(cfg.modalities) - set(MODALITIES):
        raise BeamcError(f"task.modalities: expected a non-empty list of distinct names from {list(MODALITIES)}, "
                         f"found {list(cfg.modalities)}")
    if cfg.image_size % 8:
        raise BeamcError(f"task.image_size: expected a multiple of 8 (three 2x poolings), found {cfg.image_size}")
    if cfg.map_size % 8 or RADAR_SHAPE[2] % cfg.map_size or cfg.radar_range_bins % cfg.map_size:
        raise BeamcError(f"task.map_size: expected a multiple of 8 dividing the {RADAR_SHAPE[2]} chirps and "
                         f"task.radar_range_bins ({cfg.radar_range_bins}), found {cfg.map_size}")
    if any(k > cfg.num_beams for k in cfg.topk):
        raise BeamcError(f"task.topk: every K must be <= task.num_beams ({cfg.num_beams}), found {list(cfg.topk)}")


# ----------------------------------------------------------------------- preprocessing
def camera_frame(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> float32 [3, size, size] in [0, 1] (Pillow bilinear resize)."""
    from PIL import Image

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BeamcError(f"camera_radar frame 'camera': expected uint8 RGB [H, W, 3], found {rgb.dtype} {list(rgb.shape)}")
    small = np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR), dtype=np.float32)
    return (small / np.float32(255.0)).transpose(2, 0, 1).copy()


def radar_maps(cube: np.ndarray, range_bins: int, size: int) -> np.ndarray:
    """Complex radar cube [4 rx, 256 samples, 128 chirps] -> float32 [2, size, size]:
    log1p magnitudes of the range-angle and range-velocity maps (see the module docstring)."""
    cube = np.asarray(cube)
    if cube.shape != RADAR_SHAPE or not np.iscomplexobj(cube):
        raise BeamcError(f"camera_radar frame 'radar': expected a complex cube [rx, samples, chirps] = {list(RADAR_SHAPE)}, "
                         f"found {cube.dtype} {list(cube.shape)}")
    rx, _, chirps = cube.shape
    r = np.fft.fft(cube.astype(np.complex128), axis=1)[:, :range_bins, :]          # [rx, range, chirps]
    moving = r - r.mean(axis=2, keepdims=True)                                     # static clutter removed
    ra = np.abs(np.fft.fftshift(np.fft.fft(moving, n=size, axis=0), axes=0)).sum(axis=2)   # [angle, range]
    rv = np.abs(np.fft.fftshift(np.fft.fft(r, axis=2), axes=2)).sum(axis=0).T               # [Doppler, range]
    g = range_bins // size
    ra = ra.reshape(size, size, g).sum(axis=2)
    rv = rv.reshape(size, chirps // size, size, g).sum(axis=(1, 3))
    return np.log1p(np.stack([ra, rv])).astype(np.float32)


def per_frame(frame: Mapping[str, np.ndarray], state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """One raw sensor frame -> the cached (unstandardised) arrays of each input modality."""
    out = {}
    for m in state["modalities"]:
        if m not in frame:
            raise BeamcError(f"camera_radar frame: expected modality '{m}', found {sorted(frame)}")
        out[m] = (camera_frame(frame[m], int(state["image_size"])) if m == "camera"
                  else radar_maps(frame[m], int(state["radar_range_bins"]), int(state["map_size"])))
    return out


def standardise(x: np.ndarray, modality: str, state: Mapping[str, Any]) -> np.ndarray:
    """[..., C, H, W] cached arrays -> model input: (x - mean_c) / std_c, float32."""
    stats = state["stats"][modality]
    mean = np.asarray(stats["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(stats["std"], dtype=np.float32)[:, None, None]
    return ((np.asarray(x, dtype=np.float32) - mean) / std).astype(np.float32)


def channel_stats(frames: np.ndarray, rows: np.ndarray, chunk: int = 512) -> dict[str, list[float]]:
    """Per-channel mean and std of frames[rows] ([n, C, H, W]), accumulated in float64."""
    c = frames.shape[1]
    s, s2, n = np.zeros(c), np.zeros(c), 0
    for i in range(0, len(rows), chunk):
        x = np.asarray(frames[rows[i:i + chunk]], dtype=np.float64)
        s += x.sum(axis=(0, 2, 3))
        s2 += (x ** 2).sum(axis=(0, 2, 3))
        n += x.shape[0] * x.shape[2] * x.shape[3]
    mean = s / max(n, 1)
    std = np.sqrt(np.maximum(s2 / max(n, 1) - mean ** 2, 0.0))
    return {"mean": mean.tolist(), "std": np.maximum(std, 1e-6).tolist()}


def make_state(cfg: CameraRadarTaskConfig, stats: dict[str, Any]) -> dict[str, Any]:
    """Everything the runtime needs to preprocess exactly as training did (JSON-able)."""
    return {"task": "camera_radar", "version": PREPROCESS_VERSION, "modalities": list(cfg.modalities),
            "past": cfg.past, "future": cfg.future, "num_beams": cfg.num_beams,
            "image_size": cfg.image_size, "map_size": cfg.map_size, "radar_range_bins": cfg.radar_range_bins,
            "stats": stats,
            "layout": "inputs in 'modalities' order: camera [batch, past, 3, S, S] standardised RGB; radar "
                      "[batch, past, 2, M, M] standardised log1p range-angle / range-velocity maps; oldest first. "
                      "Output [batch, future + 1, num_beams] logits for slots t .. t+future"}


def window_inputs(frames: Sequence[Mapping[str, np.ndarray]], state: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    """The last `past` per-frame results (oldest first) -> batch-1 model inputs."""
    return tuple(standardise(np.stack([f[m] for f in frames])[None], m, state) for m in state["modalities"])


# ----------------------------------------------------------------------------- metrics
def step_metrics(logits: np.ndarray, labels: np.ndarray, topk: Sequence[int]) -> dict[str, Any]:
    """Top-K per predicted step over the valid (non -100) labels, and the mean over steps."""
    top = topk_indices(logits, max(topk))                          # [N, steps, kmax]
    valid = labels != IGNORE_INDEX
    out: dict[str, Any] = {"valid_per_step": valid.sum(axis=0).tolist()}
    for k in topk:
        hit = (top[..., :k] == labels[..., None]).any(axis=-1)
        per = [float(hit[valid[:, s], s].mean()) if valid[:, s].any() else float("nan") for s in range(labels.shape[1])]
        out[f"top{k}"] = per
        out[f"atop{k}"] = float(np.nanmean(per))
    return out


# ----------------------------------------------------------------------------- data
class CameraRadarData(TaskData):
    fixed_training_inputs = True

    def __init__(self, task: Task, cfg: CameraRadarTaskConfig, data_cfg: CameraRadarDataConfig,
                 frames: dict[str, np.ndarray], past: np.ndarray, labels: np.ndarray,
                 splits: dict[str, np.ndarray], state: dict[str, Any], info: dict[str, Any]):
        self.task = task
        self.cfg = self.task_cfg = cfg
        self.data_cfg = data_cfg
        self.frames = frames        # modality -> [n_frames, C, H, W] cached per-frame arrays (memory-mapped)
        self.past = past            # [N, past] frame rows of each window, oldest first
        self.labels = labels        # [N, future + 1] beams of t .. t+future, -100 where padded
        self.splits = splits        # split -> window indices
        self.preprocess_state = state
        self.info = info
        self.num_classes = cfg.num_beams

    def split_size(self, split: str) -> int:
        return len(self.splits[split])

    def inputs(self, windows: np.ndarray) -> tuple[np.ndarray, ...]:
        rows = self.past[windows]
        return tuple(standardise(self.frames[m][rows.reshape(-1)].reshape(*rows.shape, *self.frames[m].shape[1:]),
                                 m, self.preprocess_state) for m in self.cfg.modalities)

    def arrays(self, split: str, role: str = "student") -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        idx = self.splits[split]
        return self.inputs(idx), self.labels[idx]

    def batches(self, split: str, batch_size: int, *, epoch: int, seed: int, shuffle: bool,
                roles: Sequence[str] = ("student",)) -> Iterator[Batch]:
        import torch

        for w in index_batches(self.splits[split], batch_size, shuffle=shuffle, seed=seed, epoch=epoch, salt=13):
            # teacher and student see the same inputs: the student is smaller, not blinder
            yield Batch(tuple(torch.from_numpy(x) for x in self.inputs(w)), torch.from_numpy(self.labels[w]),
                        extra={"sample": torch.from_numpy(w.astype(np.int64))})

    def evaluate(self, predict: Predictor, split: str = "test", role: str = "student") -> dict[str, Any]:
        idx = self.splits[split]
        labels = self.labels[idx]
        if len(labels) == 0:
            raise BeamcError(f"camera_radar: the {split} split has no windows ({self.info['split_windows']}); "
                             "use more sequences or other data.*_fraction values")
        outs = [predict(self.inputs(idx[i:i + 256])) for i in range(0, len(idx), 256)]
        logits = np.concatenate(outs)
        expected = (len(labels), self.cfg.future + 1, self.cfg.num_beams)
        if logits.shape != expected:
            raise BeamcError(f"camera_radar {role} model: expected logits {list(expected)}, found {list(logits.shape)}")
        out = {"split": split, "role": role, "modalities": list(self.cfg.modalities), "num_samples": int(len(labels)),
               "steps": ["t"] + [f"t+{j}" for j in range(1, self.cfg.future + 1)]}
        out.update(step_metrics(logits, labels, self.cfg.topk))
        return out

    def headline(self, metrics: dict[str, Any]) -> dict[str, float]:
        out = {f"ATop-{k} %": 100 * metrics[f"atop{k}"] for k in self.cfg.topk}
        out["Top-1 @t %"] = 100 * metrics[f"top{self.cfg.topk[0]}"][0]
        return out


# ----------------------------------------------------------------------------- task
class CameraRadarTask(Task):
    name = "camera_radar"
    TaskConfig = CameraRadarTaskConfig
    DataConfig = CameraRadarDataConfig

    def prepare(self, task_cfg: CameraRadarTaskConfig, data_cfg: CameraRadarDataConfig, *,
                progress: bool = True) -> CameraRadarData:
        from beamc.data.frame_cache import frame_cache
        from beamc.data.windows import beam_labels, windows

        check_config(task_cfg)
        sc = open_deepsense(data_cfg)
        missing = [m for m in task_cfg.modalities if SCENARIO_COLUMN[m] not in sc.modalities]
        if missing:
            raise BeamcError(f"{sc.csv_path}: no {', '.join('unit1_' + SCENARIO_COLUMN[m] for m in missing)} column; "
                             f"task.modalities = {list(task_cfg.modalities)} needs it")
        v = f"camera_radar.{{}}-v{PREPROCESS_VERSION}"
        frames, ok = {}, np.ones(sc.n, dtype=bool)
        for m in task_cfg.modalities:
            if m == "camera":
                fa = frame_cache(sc, "rgb", partial(camera_frame, size=task_cfg.image_size), key=v.format("rgb"),
                                 params={"image_size": task_cfg.image_size}, progress=progress)
            else:
                fa = frame_cache(sc, "radar", partial(radar_maps, range_bins=task_cfg.radar_range_bins, size=task_cfg.map_size),
                                 key=v.format("maps"), params={"range_bins": task_cfg.radar_range_bins,
                                                               "map_size": task_cfg.map_size}, progress=progress)
            frames[m], ok = fa.data, ok & fa.ok
        w = windows(sc, past=task_cfg.past, future=task_cfg.future, pad_future=True, valid=ok)
        labels = beam_labels(sc, w)
        if labels.size and labels.max() >= task_cfg.num_beams:
            raise BeamcError(f"{sc.csv_path}: beam index {int(labels.max()) + 1} exceeds task.num_beams ({task_cfg.num_beams})")
        seq_split = split(sc, data_cfg)
        splits = {name: np.flatnonzero(np.isin(w.seq, getattr(seq_split, name))) for name in SPLITS}
        if len(splits["train"]) == 0:
            raise BeamcError(f"{sc.csv_path}: no training windows of {task_cfg.past} frames "
                             f"({ {k: int(len(v)) for k, v in splits.items()} }); use more or longer sequences")
        train_rows = np.unique(w.past[splits["train"]])
        state = make_state(task_cfg, {m: channel_stats(frames[m], train_rows) for m in task_cfg.modalities})
        info = {"source": data_cfg.source, "folder": str(sc.root), "rows": int(sc.n),
                "sequences": int(len(sc.sequences())), "windows": int(len(w)), "frames_failed": int((~ok).sum()),
                "split_windows": {k: int(len(v)) for k, v in splits.items()},
                "split_sequences": {k: len(v) for k, v in seq_split.to_dict().items()}}
        return CameraRadarData(self, task_cfg, data_cfg, frames, w.past, labels, splits, state, info)

    def input_spec(self, task_cfg: CameraRadarTaskConfig, data_cfg: Any, role: str = "student") -> list[TensorSpec]:
        check_config(task_cfg)
        shapes = {"camera": (task_cfg.past, 3, task_cfg.image_size, task_cfg.image_size),
                  "radar": (task_cfg.past, 2, task_cfg.map_size, task_cfg.map_size)}
        return [TensorSpec(m, shapes[m]) for m in task_cfg.modalities]

    def output_spec(self, task_cfg: CameraRadarTaskConfig, data_cfg: Any, role: str = "student") -> list[TensorSpec]:
        return [TensorSpec("logits", (task_cfg.future + 1, task_cfg.num_beams))]

    def criterion(self, logits: Any, y: Any, task_cfg: Any) -> Any:
        import torch.nn.functional as F

        # padded future beams (-100) carry no label
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX)

    def stream_preprocessor(self, task_cfg: CameraRadarTaskConfig, state: dict[str, Any],
                            role: str = "student") -> StreamPreprocessor:
        return SlidingWindow(tuple(state["modalities"]), int(state["past"]), partial(per_frame, state=state),
                             partial(window_inputs, state=state))


TASKS.add("camera_radar", CameraRadarTask())

__all__ = ["CameraRadarTaskConfig", "CameraRadarDataConfig", "CameraRadarData", "CameraRadarTask", "camera_frame",
           "radar_maps", "per_frame", "standardise", "channel_stats", "make_state", "window_inputs", "step_metrics"]
