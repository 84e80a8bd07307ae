"""LiDAR-aided beam tracking (paper: ../shared/papers/lidar-data-free-kd-beam-tracking.md).

From the processed 216-range LiDAR scans (``unit1_lidar_SCR``) of the last L = 8 frames
predict the best beam of the current frame t and of V = 3 future frames (64-beam codebook).

Preprocessing (numpy only, every parameter in `preprocess_state`):

    s = preprocess_scan(ranges, state)   float [216] metres -> float32 [216] = ranges / 10
                                         (the reference code's ``loadmat(...)['data'][:, 0] / 10``)
    x = model_input(scans, state)        the last L scans [L, 216] (oldest first) followed by
                                         V zero frames -> float32 [1, L + V, 216]

The model runs its GRU over the zero frames too; its outputs at steps L .. L+V are the
logits of beams t .. t+V. Windows keep the reference's rule (``windows(..., pad_future=True)``):
a window exists while its 8 scans fit in the sequence, and future beams past the sequence
end are labelled -100 and ignored by the loss and the metrics.

Labels are 0-based: the CSV's 1-based ``unit1_beam_index`` minus one, converted once by the
loader (`Scenario.beam`). The reference code instead takes ``argmax`` of the power files and
subtracts 1 again, which shifts every label by one beam; we do not copy that.

Metrics per predicted step (the paper's Figs. 3-5): Top-K for K in task.topk over the
samples whose label at that step exists, and their means over the steps.

Data-free KD (`distill.method = "datafree"`) needs two things from this task that need no
data: `teacher_metadata` (the statistics saved next to the teacher after training) and
`synthetic_layout` (how a generator's output becomes a model input).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from beamc.data.synth.v2i import DeepSenseSynthConfig
from beamc.data.windows import IGNORE_INDEX
from beamc.errors import BeamcError
from beamc.registry import TASKS
from beamc.schema import opt
from beamc.tasks.base import (Batch, Predictor, SlidingWindow, StreamPreprocessor, Task, TaskData, TensorSpec, index_batches,
                              topk_indices)
from beamc.tasks.deepsense_data import DeepSenseDataConfig, open_deepsense, split

LIDAR_RANGES = 216
PREPROCESS_VERSION = 1      # bump when preprocess_scan changes (frame cache key)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class LidarTaskConfig:
    name: str = opt("lidar", doc='task name ("lidar")')
    num_beams: int = opt(64, ge=2, doc="codebook size M")
    past: int = opt(8, ge=1, doc="L: LiDAR scans per window (the current one last)")
    future: int = opt(3, ge=0, doc="V: future beams predicted besides the current one (also the zero frames appended)")
    range_scale: float = opt(10.0, gt=0, doc="scans are divided by this (the reference code: 10)")
    topk: tuple[int, ...] = opt((1, 5), ge=1, doc="Top-K accuracies reported per predicted step")


def _lidar_only() -> DeepSenseSynthConfig:
    # camera frames and radar cubes cost time and disk and this task reads neither
    return DeepSenseSynthConfig(camera=False, radar=False, gps=False)


@dataclass(frozen=True)
class LidarDataConfig(DeepSenseDataConfig):
    # the LiDAR reference permutes sequences with seed 42 and cuts 60 / 15 / 25 %
    train_fraction: float = opt(0.6, gt=0, lt=1, doc="fraction of sequences for training")
    val_fraction: float = opt(0.15, ge=0, lt=1, doc="fraction of sequences for validation; the rest is the test split")
    split_seed: int = opt(42, ge=-1, doc="-1: split in sequence order; >= 0: shuffle sequences with this seed (reference: 42)")
    synth: DeepSenseSynthConfig = opt(factory=_lidar_only, doc="synth: simulator settings (LiDAR and beams only by default)")


# ----------------------------------------------------------------------- preprocessing
def make_state(cfg: LidarTaskConfig) -> dict[str, Any]:
    """Everything the runtime needs to preprocess exactly as training did (JSON-able)."""
    return {"task": "lidar", "version": PREPROCESS_VERSION, "ranges": LIDAR_RANGES, "range_scale": cfg.range_scale,
            "past": cfg.past, "pad": cfg.future, "future": cfg.future, "num_beams": cfg.num_beams,
            "layout": "input [batch, past + pad, ranges] float32: lidar_SCR ranges / range_scale of the last "
                      "`past` frames (oldest first), then `pad` zero frames; output [batch, future + 1, "
                      "num_beams] logits of the beams at t .. t+future"}


def preprocess_scan(ranges: np.ndarray, state: Mapping[str, Any]) -> np.ndarray:
    """One processed LiDAR scan, float [216] (metres) -> float32 [216]."""
    ranges = np.asarray(ranges)
    n = int(state["ranges"])
    if ranges.shape != (n,) or not np.isrealobj(ranges) or ranges.dtype.kind not in "fiu":
        raise BeamcError(f"lidar frame: expected {n} real ranges (float [{n}]), found {ranges.dtype} {list(ranges.shape)}")
    return (ranges.astype(np.float64) / float(state["range_scale"])).astype(np.float32)


def model_input(scans: np.ndarray, state: Mapping[str, Any]) -> np.ndarray:
    """The last `past` preprocessed scans [>= past, 216] (oldest first) -> [1, past + pad, 216]."""
    past, pad, n = int(state["past"]), int(state["pad"]), int(state["ranges"])
    scans = np.asarray(scans, dtype=np.float32)
    if scans.ndim != 2 or scans.shape[1] != n or len(scans) < past:
        raise BeamcError(f"lidar input: expected at least {past} preprocessed scans of {n} ranges, found shape {list(scans.shape)}")
    return np.concatenate([scans[-past:], np.zeros((pad, n), np.float32)])[None]


def step_metrics(logits: np.ndarray, labels: np.ndarray, topk: Sequence[int]) -> dict[str, Any]:
    """Top-K per predicted step for logits [N, S, C] and labels [N, S] (-100 = no label), and
    the step means. A step without any label reports NaN."""
    kmax = max(topk)
    top = topk_indices(logits, kmax)                               # [N, S, kmax], best first
    valid = labels != IGNORE_INDEX
    out: dict[str, Any] = {"labelled": [int(v) for v in valid.sum(axis=0)]}
    for k in topk:
        hit = (top[..., :k] == labels[..., None]).any(axis=-1) & valid
        out[f"top{k}"] = [float(hit[:, s].sum() / valid[:, s].sum()) if valid[:, s].any() else float("nan")
                          for s in range(labels.shape[1])]
        out[f"mean_top{k}"] = float(np.nanmean(out[f"top{k}"])) if valid.any() else float("nan")
    return out


def cross_entropy_np(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy over the labelled (sample, step) pairs (numpy twin of the criterion)."""
    z = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    y = labels.reshape(-1)
    keep = y != IGNORE_INDEX
    z, y = z[keep], y[keep]
    if len(y) == 0:
        return float("nan")
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


# ----------------------------------------------------------------------------- data
class LidarData(TaskData):
    fixed_training_inputs = True

    def __init__(self, task: Task, cfg: LidarTaskConfig, data_cfg: LidarDataConfig, scans: np.ndarray,
                 windows: Any, labels: np.ndarray, splits: dict[str, np.ndarray], info: dict[str, Any]):
        self.task = task
        self.windows = windows      # beamc.data.windows.Windows: rows of every window's scans and beams
        self.cfg = self.task_cfg = cfg
        self.data_cfg = data_cfg
        self.scans = scans          # [n_frames, 216] float32, preprocessed
        self.past = windows.past    # [N, past] frame rows of each window, oldest first
        self.labels = labels        # [N, future + 1] 0-based beams of t .. t+future, -100 where padded
        self.splits = splits        # split -> window indices
        self.info = info
        self.num_classes = cfg.num_beams
        self.preprocess_state = make_state(cfg)

    def split_size(self, split: str) -> int:
        return len(self.splits[split])

    def inputs(self, windows: np.ndarray) -> np.ndarray:
        """Model input [len(windows), past + pad, 216] float32 (teacher and student see the same)."""
        x = self.scans[self.past[windows]]
        pad = np.zeros((len(x), self.cfg.future, x.shape[-1]), np.float32)
        return np.concatenate([x, pad], axis=1)

    def arrays(self, split: str, role: str = "student") -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        idx = self.splits[split]
        return (self.inputs(idx),), self.labels[idx]

    def batches(self, split: str, batch_size: int, *, epoch: int, seed: int, shuffle: bool,
                roles: Sequence[str] = ("student",)) -> Iterator[Batch]:
        import torch

        for w in index_batches(self.splits[split], batch_size, shuffle=shuffle, seed=seed, epoch=epoch, salt=13):
            yield Batch((torch.from_numpy(self.inputs(w)),), torch.from_numpy(self.labels[w]),
                        extra={"sample": torch.from_numpy(w.astype(np.int64))})

    def evaluate(self, predict: Predictor, split: str = "test", role: str = "student") -> dict[str, Any]:
        (x,), labels = self.arrays(split, role)
        if len(labels) == 0:
            raise BeamcError(f"lidar: the {split} split has no windows ({self.info['split_windows']}); "
                             "use more sequences or other data.*_fraction values")
        logits = np.concatenate([predict((x[i:i + 1024],)) for i in range(0, len(x), 1024)])
        expected = (len(labels), self.cfg.future + 1, self.cfg.num_beams)
        if logits.shape != expected:
            raise BeamcError(f"lidar {role} model: expected logits {list(expected)}, found {list(logits.shape)}")
        out = {"split": split, "role": role, "num_samples": int(len(labels)),
               "steps": ["t"] + [f"t+{j}" for j in range(1, self.cfg.future + 1)],
               "loss": cross_entropy_np(logits, labels)}
        out.update(step_metrics(logits, labels, self.cfg.topk))
        return out

    def headline(self, metrics: dict[str, Any]) -> dict[str, float]:
        out = {"Top-1 @t %": 100 * metrics["top1"][0]}
        out.update({f"mean Top-{k} %": 100 * metrics[f"mean_top{k}"] for k in self.cfg.topk})
        return out


# ----------------------------------------------------------------------------- task
class LidarTask(Task):
    name = "lidar"
    TaskConfig = LidarTaskConfig
    DataConfig = LidarDataConfig

    def prepare(self, task_cfg: LidarTaskConfig, data_cfg: LidarDataConfig, *, progress: bool = True) -> LidarData:
        from functools import partial

        from beamc.data.frame_cache import frame_cache
        from beamc.data.windows import beam_labels, windows

        sc = open_deepsense(data_cfg)
        if "lidar" not in sc.modalities:
            raise BeamcError(f"{sc.csv_path}: no unit1_lidar_SCR column; the lidar task needs processed LiDAR scans")
        state = make_state(task_cfg)
        frames = frame_cache(sc, "lidar", partial(preprocess_scan, state=state), key=f"lidar.scan-v{PREPROCESS_VERSION}",
                             params={"range_scale": task_cfg.range_scale}, progress=progress)
        w = windows(sc, past=task_cfg.past, future=task_cfg.future, pad_future=True, valid=frames.ok)
        labels = beam_labels(sc, w)
        if labels.size and labels.max() >= task_cfg.num_beams:
            raise BeamcError(f"{sc.csv_path}: beam index {int(labels.max()) + 1} exceeds task.num_beams ({task_cfg.num_beams})")
        seq_split = split(sc, data_cfg)
        splits = {name: np.flatnonzero(np.isin(w.seq, getattr(seq_split, name))) for name in SPLITS}
        info = {"source": data_cfg.source, "folder": str(sc.root), "rows": int(sc.n),
                "sequences": int(len(sc.sequences())), "windows": int(len(w)), "frames_failed": len(frames.failures),
                "split_windows": {k: int(len(v)) for k, v in splits.items()},
                "split_sequences": {k: len(v) for k, v in seq_split.to_dict().items()}}
        if len(splits["train"]) == 0:
            raise BeamcError(f"{sc.csv_path}: no training windows of {task_cfg.past} scans ({info['split_windows']}); "
                             "use more or longer sequences")
        return LidarData(self, task_cfg, data_cfg, np.asarray(frames.data), w, labels, splits, info)

    def input_spec(self, task_cfg: LidarTaskConfig, data_cfg: Any, role: str = "student") -> list[TensorSpec]:
        return [TensorSpec("lidar", (task_cfg.past + task_cfg.future, LIDAR_RANGES))]

    def output_spec(self, task_cfg: LidarTaskConfig, data_cfg: Any, role: str = "student") -> list[TensorSpec]:
        return [TensorSpec("logits", (task_cfg.future + 1, task_cfg.num_beams))]

    def criterion(self, logits: Any, y: Any, task_cfg: LidarTaskConfig) -> Any:
        from beamc.compress.losses import cross_entropy

        return cross_entropy(logits, y)   # ignore_index -100: padded future beams

    def stream_preprocessor(self, task_cfg: LidarTaskConfig, state: dict[str, Any], role: str = "student") -> StreamPreprocessor:
        def per_frame(frame: Mapping[str, np.ndarray]) -> np.ndarray:
            if "lidar" not in frame:
                raise BeamcError(f"lidar frame: expected modality 'lidar', found {sorted(frame)}")
            return preprocess_scan(frame["lidar"], state)

        return SlidingWindow(("lidar",), int(state["past"]), per_frame,
                             lambda scans: (model_input(np.stack(scans), state),))

    # -- data-free distillation ------------------------------------------------------------
    def synthetic_layout(self, task_cfg: LidarTaskConfig) -> dict[str, Any]:
        """How a generator's output becomes a model input: `frames` x `features` values,
        followed by `pad` zero frames (the same zero padding as real windows)."""
        return {"frames": task_cfg.past, "features": LIDAR_RANGES, "pad": task_cfg.future}

    # the teacher's "last hidden state" (lidar_models.LidarGRU.hidden), the metadata feature
    metadata_layer = "hidden"
    # further statistics for distill.metadata_layers, per time step: the GRU outputs at every
    # step and the per-frame input embedding (the first layer, DeepInversion-style)
    metadata_extra_layers = ("gru", "embed")
    # per-beam statistics of this layer (distill.keep_by = "class_metadata"): the GRU outputs,
    # whose per-beam score tells real windows from generated ones best (AUROC 0.82 against 0.68
    # for the teacher's entropy; benchmarks/results/lidar_dfkd.md, round 9)
    metadata_class_layer = "gru"
    # a beam predicted for fewer training windows than this at a step keeps the layer's overall
    # statistics at that step: a handful of windows gives no usable variance
    metadata_class_min_count = 10

    def teacher_metadata(self, teacher: Any, data: LidarData, batch_size: int = 512) -> dict[str, Any]:
        """Mean and variance (unbiased, per unit) of the teacher's `layer` output over the
        training windows, the same per time step for the extra layers and per predicted beam
        for the class layer, and the value range of the inputs (the generator squashes its
        output into it). Written next to the teacher checkpoint; the only thing a data-free
        distillation reads besides the teacher."""
        import torch

        from beamc.compress.distillers import Taps

        layer = self.metadata_layer
        (x,), _ = data.arrays("train", "teacher")
        taps = Taps(teacher, (layer, *self.metadata_extra_layers), "teacher metadata")
        device = next(teacher.parameters()).device
        feats: dict[str, list[np.ndarray]] = {}
        logits: list[torch.Tensor] = []
        teacher.eval()
        try:
            with torch.no_grad():
                for i in range(0, len(x), batch_size):
                    out = taps.run(teacher, (torch.from_numpy(x[i:i + batch_size]).to(device),))
                    logits.append(out.logits.float().cpu())
                    for name, f in out.features.items():
                        # per-step layers are flattened to T x U units: statistics per time step
                        feats.setdefault(name, []).append(f.float().reshape(len(f), -1).cpu().numpy())
        finally:
            taps.close()
        flat = {name: np.concatenate(f).astype(np.float64) for name, f in feats.items()}

        def stats(f: np.ndarray) -> dict[str, list[float]]:
            return {"mean": f.mean(axis=0).tolist(),
                    "var": f.var(axis=0, ddof=1).tolist() if len(f) > 1 else [0.0] * f.shape[1]}

        layout = self.synthetic_layout(data.cfg)
        real, steps = x[:, :layout["frames"]], layout["frames"] + layout["pad"]   # the window's time steps
        return {"layer": layer, "num_samples": int(len(x)), **stats(flat[layer]),
                "layers": {name: stats(flat[name]) for name in self.metadata_extra_layers},
                "by_class": self._class_stats(flat[self.metadata_class_layer], torch.cat(logits), steps),
                "input_min": float(real.min()), "input_max": float(real.max()),
                "layout": layout}

    def _class_stats(self, f: np.ndarray, logits: Any, steps: int) -> dict[str, Any]:
        """Mean and variance [C][T x U] of the class layer's features over the training windows
        whose predicted beam at each step is C (`step_classes`), and the window counts [C][T]."""
        from beamc.compress.datafree import step_classes

        n, classes = len(f), logits.shape[-1]
        f = f.reshape(n, steps, -1)
        beam = step_classes(logits, steps).numpy()                          # [N, T]
        overall = f.var(axis=0, ddof=1) if n > 1 else np.zeros(f.shape[1:])
        mean = np.broadcast_to(f.mean(axis=0), (classes, *f.shape[1:])).copy()
        var = np.broadcast_to(overall, (classes, *f.shape[1:])).copy()
        count = np.zeros((classes, steps), dtype=int)
        for c in range(classes):
            for t in range(steps):
                sel = f[beam[:, t] == c, t]
                count[c, t] = len(sel)
                if len(sel) >= self.metadata_class_min_count:
                    # floored at 1 % of the unit's overall variance: a unit that one beam's windows
                    # hold (nearly) constant must not make any deviation from it decide the score
                    mean[c, t], var[c, t] = sel.mean(axis=0), np.maximum(sel.var(axis=0, ddof=1), 0.01 * overall[t])

        def sig6(a: np.ndarray) -> list[list[float]]:  # 64 x T x U numbers per table: 6 significant digits suffice
            return [[float(f"{v:.6g}") for v in row] for row in a.reshape(classes, -1)]

        return {"layer": self.metadata_class_layer, "steps": steps, "min_count": self.metadata_class_min_count,
                "count": count.tolist(), "mean": sig6(mean), "var": sig6(var)}

    def plot(self, metrics: dict[str, Any], out_dir: Any) -> list[Any]:
        from pathlib import Path

        path = step_curves(metrics, Path(out_dir) / "per_step.png")
        return [path] if path else []


def step_curves(metrics: Mapping[str, Any], path: Any) -> Any:
    """Top-K per predicted step, one line per model (the shape of the paper's Figs. 3-5)."""
    from beamc.plots import _plt, save

    models = {n: m["metrics"] for n, m in metrics.get("models", {}).items() if m.get("metrics")}
    if not models:
        return None
    first = next(iter(models.values()))
    topk = sorted(int(k[3:]) for k in first if k.startswith("top") and k[3:].isdigit())
    plt = _plt()
    fig, axes = plt.subplots(1, len(topk), figsize=(5 * len(topk), 4), squeeze=False)
    for ax, k in zip(axes[0], topk):
        for name, m in models.items():
            if f"top{k}" in m:
                ax.plot(m["steps"], [100 * v for v in m[f"top{k}"]], marker="o", label=name)
        ax.set_title(f"Top-{k} accuracy per predicted beam")
        ax.set_ylabel("%")
        ax.grid(alpha=0.3)
        ax.legend()
    return save(fig, path)


TASKS.add("lidar", LidarTask())

__all__ = ["LidarTaskConfig", "LidarDataConfig", "LidarData", "LidarTask", "preprocess_scan", "model_input",
           "make_state", "step_metrics", "cross_entropy_np"]
