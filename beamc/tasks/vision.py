"""Vision-aided long-term beam tracking (paper: ../shared/papers/vision-kd-long-term-beam-tracking.md).

From the camera frames of the last L+1 slots predict the best beam of the current slot t and
of J future slots t+1 .. t+J (64-beam codebook; L = 8 teacher, 8/5/3 student; J = 6).

Preprocessing (Sec. III-B, eqs. 10-13; numpy + Pillow + scipy only, shared by training,
evaluation, export golden sets and the runtime; every parameter lives in `preprocess_state`):

    g = preprocess_frame(rgb, state)    uint8 [H, W, 3] -> float32 [S, S], S = 224:
        Pillow bilinear resize of the RGB frame to S x S, grayscale 0.2125 R + 0.7154 G +
        0.0721 B on [0, 1], Gaussian blur sigma = 1 (scipy, reflect)
    x = model_input(gs, state, role)    float32 [>= L+1, S, S] (oldest first) -> [1, L, S, S]:
        the last L+1 frames -> L motion masks, mask_t = |g_t - g_t-1| > 0.1 max |g_t - g_t-1|
    motion_masks(gs, state)             [..., n, S, S] -> [..., n-1, S, S], the same rule

(the reference code's ``MyFunc.DataFeed``: ``transf.Resize((224, 224))`` of the PIL image,
``skimage.color.rgb2gray``, ``gaussian_filter(sigma=1)``, ``diff > 0.1 * max(diff)``; the
strict ``>`` makes a frame identical to its predecessor an empty mask, eq. (13)'s ``>=`` a
full one.)

Model input = L masks from L+1 frames, as eqs. (10)-(12) and Table II ("image sequence
(I, 1, 224, 224)") define it and as Table VII counts FLOPs (L CNN passes). The reference
code instead builds L-1 masks from L frames (and Fig. 6 draws 8 frames, 7 masks); with L+1
frames per window the number of windows per sequence is the same (rows - 14 on scenario 9:
the reference's 4060), so only the meaning of L differs. A student with L < 8 sees the last
L masks of the teacher's window: same current slot, same labels.

Metrics per slot (Sec. V-C): Top-K (eq. 20) for task.topk, the DBA score of eqs. (21)-(22),
    DBA = 1/3 sum_{k=1..3} Y_k,  Y_k = 1 - 1/M sum_m min_{i<=k} min(|yhat_{m,i} - y_m| / Delta, 1),
with Delta = 5, and ATop-K / ADBA = their means over the J+1 slots (eqs. 23-24). The
reference code (``calculate_dba_score``) and hence the paper's Tables IV-V and Figs. 7-12
report Y_3 alone as "DBA" (its All_models/Performance.txt averages to Table IV's 95.00);
we report both: `dba` (eq. 21) and `dba_y3` (the tables').
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from beamc.data.synth.v2i import DeepSenseSynthConfig
from beamc.errors import BeamcError
from beamc.registry import TASKS
from beamc.schema import opt
from beamc.tasks.base import (Batch, Predictor, SlidingWindow, StreamPreprocessor, Task, TaskData, TensorSpec,
                              index_batches, topk_indices)
from beamc.tasks.deepsense_data import DeepSenseDataConfig, open_deepsense, split

GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)   # skimage.color.rgb2gray (ITU-R BT.709)
PREPROCESS_VERSION = 1                    # bump when preprocess_frame changes (frame cache key)


@dataclass(frozen=True)
class VisionTaskConfig:
    name: str = opt("vision", doc='task name ("vision")')
    num_beams: int = opt(64, ge=2, doc="codebook size C")
    future: int = opt(6, ge=0, doc="J: future slots predicted besides the current one")
    teacher_seq_len: int = opt(8, ge=1, doc="L of the teacher: motion masks it sees (from L+1 camera frames)")
    student_seq_len: int = opt(8, ge=1, doc="L of the student: the last L masks of the teacher's window")
    image_size: int = opt(224, ge=8, doc="side S of the square grayscale frames (paper: 224; the teacher needs a multiple of 32)")
    blur_sigma: float = opt(1.0, ge=0, doc="Gaussian blur sigma in pixels of the S x S frame")
    mask_threshold: float = opt(0.1, gt=0, lt=1, doc="epsilon of eq. (13): mask where |diff| > epsilon * max |diff|")
    focal_alpha: float = opt(1.0, gt=0, doc="focal loss alpha (eq. 16)")
    focal_gamma: float = opt(2.0, ge=0, doc="focal loss gamma (eq. 16)")
    topk: tuple[int, ...] = opt((1, 3, 5), ge=1, doc="Top-K accuracies reported per slot")
    dba_delta: float = opt(5.0, gt=0, doc="Delta of the DBA score (eq. 22)")
    latency_warmup: int = opt(100, ge=0, doc="batch-1 latency: warm-up iterations (Table VII: 100)")
    latency_iters: int = opt(300, ge=1, doc="batch-1 latency: timed iterations (Table VII: 300)")
    window_block: int = opt(1, ge=1, doc="training batches are drawn as blocks of this many consecutive windows of one "
                                         "sequence, and the CNN runs once per distinct frame of a batch instead of once "
                                         "per mask of every window (overlapping windows share L-1 of their L masks: "
                                         "about 4x less CNN work at L = 8 with blocks of 8), but correlated batches learn "
                                         "less per epoch; 1 = independent windows, the paper's sampling")


def _camera_only() -> DeepSenseSynthConfig:
    # the vision task reads camera frames and beam powers only; radar alone costs 1 MB per frame
    return DeepSenseSynthConfig(lidar=False, radar=False, gps=False)


@dataclass(frozen=True)
class VisionDataConfig(DeepSenseDataConfig):
    synth: DeepSenseSynthConfig = opt(factory=_camera_only, doc="synth: simulator settings (camera and beams only by default)")


# ----------------------------------------------------------------------- preprocessing
def preprocess_frame(rgb: np.ndarray, state: Mapping[str, Any]) -> np.ndarray:
    """One camera frame, uint8 [H, W, 3] RGB -> float32 [S, S] blurred grayscale in [0, 1]."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BeamcError(f"vision frame: expected uint8 RGB [H, W, 3], found {rgb.dtype} {list(rgb.shape)}")
    size = int(state["image_size"])
    small = np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR), dtype=np.float64) / 255.0
    gray = small @ np.asarray(state["gray_weights"], dtype=np.float64)
    if state["blur_sigma"] > 0:
        gray = gaussian_filter(gray, sigma=float(state["blur_sigma"]), mode="reflect")
    return gray.astype(np.float32)


def motion_masks(frames: np.ndarray, state: Mapping[str, Any]) -> np.ndarray:
    """Preprocessed frames [..., n, S, S] (oldest first) -> float32 masks [..., n-1, S, S]."""
    frames = np.asarray(frames, dtype=np.float32)
    diff = np.abs(frames[..., 1:, :, :] - frames[..., :-1, :, :])
    peak = diff.max(axis=(-2, -1), keepdims=True)
    return (diff > float(state["mask_threshold"]) * peak).astype(np.float32)


def model_input(frames: np.ndarray, state: Mapping[str, Any], role: str = "student") -> np.ndarray:
    """The last L+1 preprocessed frames [>= L+1, S, S] (oldest first) -> model input [1, L, S, S]."""
    length = int(state["seq_len"][role])
    frames = np.asarray(frames)
    size = int(state["image_size"])
    if frames.ndim != 3 or frames.shape[1:] != (size, size) or len(frames) < length + 1:
        raise BeamcError(f"vision {role} input: expected at least {length + 1} preprocessed frames of "
                         f"{size} x {size} (L = {length} masks), found shape {list(frames.shape)}")
    return motion_masks(frames[-(length + 1):], state)[None]


def make_state(cfg: VisionTaskConfig) -> dict[str, Any]:
    """Everything the runtime needs to preprocess exactly as training did (JSON-able)."""
    return {"task": "vision", "version": PREPROCESS_VERSION, "image_size": cfg.image_size,
            "resize": "Pillow bilinear (antialiased) of the RGB frame to image_size x image_size",
            "gray_weights": list(GRAY_WEIGHTS), "blur_sigma": cfg.blur_sigma, "mask_threshold": cfg.mask_threshold,
            "seq_len": {"teacher": cfg.teacher_seq_len, "student": cfg.student_seq_len},
            "frames_needed": {"teacher": cfg.teacher_seq_len + 1, "student": cfg.student_seq_len + 1},
            "future": cfg.future, "num_beams": cfg.num_beams,
            "layout": "input [batch, L, S, S] float32 motion masks (0/1), oldest first; "
                      "output [batch, future + 1, num_beams] logits for slots t .. t+future"}


def camera_stream(state: Mapping[str, Any], role: str = "student") -> SlidingWindow:
    """Runtime side of the preprocessing: one {"camera": uint8 RGB [H, W, 3]} frame per slot.

    Each frame is resized / grayscaled / blurred once on arrival (the expensive part) and the
    last L+1 results are kept; a full window becomes the L motion masks of `model_input`, the
    same function and float32 frames that training's frame cache and `all_masks` use, so the
    stream reproduces `VisionData.arrays` bit for bit. Re-thresholding L frame differences
    per slot (L x S x S elementwise ops) is cheap next to one resize + blur."""
    if role not in state["seq_len"]:
        raise BeamcError(f"vision stream: role must be one of {sorted(state['seq_len'])}, found {role!r}")

    def per_frame(frame: Mapping[str, np.ndarray]) -> np.ndarray:
        if "camera" not in frame:
            raise BeamcError(f"vision frame: expected modality 'camera', found {sorted(frame)}")
        return preprocess_frame(frame["camera"], state)

    return SlidingWindow(("camera",), int(state["frames_needed"][role]), per_frame,
                         lambda history: (model_input(np.stack(history), state, role),))


# ----------------------------------------------------------------------------- metrics
def dba_terms(top: np.ndarray, labels: np.ndarray, delta: float) -> np.ndarray:
    """Y_k of eq. (22) for k = 1..K: top [M, K] predicted beams (best first), labels [M] -> [K]."""
    penalty = np.minimum(np.abs(top - labels[:, None]) / delta, 1.0)       # [M, K]
    return 1.0 - np.minimum.accumulate(penalty, axis=1).mean(axis=0)


def slot_metrics(logits: np.ndarray, labels: np.ndarray, topk: Sequence[int], delta: float) -> dict[str, Any]:
    """Per-slot Top-K and DBA for logits [M, S, C] and labels [M, S], and their slot means."""
    kmax = max(*topk, 3)
    top = topk_indices(logits, kmax)                                       # [M, S, kmax]
    out: dict[str, Any] = {}
    for k in topk:
        out[f"top{k}"] = [float((top[:, s, :k] == labels[:, s, None]).any(axis=1).mean()) for s in range(labels.shape[1])]
    y = np.stack([dba_terms(top[:, s, :3], labels[:, s], delta) for s in range(labels.shape[1])])  # [S, 3]
    out["dba"] = [float(v) for v in y.mean(axis=1)]
    out["dba_y3"] = [float(v) for v in y[:, 2]]
    for key in [f"top{k}" for k in topk] + ["dba", "dba_y3"]:
        out[f"a{key}"] = float(np.mean(out[key]))
    return out


def focal_loss_np(logits: np.ndarray, labels: np.ndarray, alpha: float, gamma: float) -> float:
    """Eq. (16) averaged over samples and slots (numpy twin of compress.losses.focal_loss)."""
    z = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z[np.arange(len(z)), labels.reshape(-1)] - np.log(np.exp(z).sum(axis=1))
    return float(np.mean(alpha * (1 - np.exp(logp)) ** gamma * -logp))


# ----------------------------------------------------------------------------- data
SPLITS = ("train", "val", "test")


class VisionData(TaskData):
    fixed_training_inputs = True

    def __init__(self, task: Task, cfg: VisionTaskConfig, data_cfg: VisionDataConfig, masks: np.ndarray,
                 past: np.ndarray, labels: np.ndarray, splits: dict[str, np.ndarray], info: dict[str, Any]):
        self.task = task
        self.cfg = self.task_cfg = cfg
        self.data_cfg = data_cfg
        self.masks = masks          # [n_frames, S, S] uint8: mask of frame i against frame i-1
        self.past = past            # [N, L_teacher + 1] frame rows of each window, oldest first
        self.labels = labels        # [N, J + 1] beams of slots t .. t+J
        self.splits = splits        # split -> window indices
        self.info = info
        self.num_classes = cfg.num_beams
        self.preprocess_state = make_state(cfg)

    def split_size(self, split: str) -> int:
        return len(self.splits[split])

    def seq_len(self, role: str) -> int:
        return self.cfg.teacher_seq_len if role == "teacher" else self.cfg.student_seq_len

    def inputs(self, windows: np.ndarray, role: str) -> np.ndarray:
        """Model input [len(windows), L, S, S] float32 of `role` (the last L masks of each window)."""
        rows = self.past[windows][:, -self.seq_len(role):]
        return self.masks[rows].astype(np.float32)

    def arrays(self, split: str, role: str = "student") -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        # float32 [N, L, S, S]: ~1.6 MB per window at L = 8, S = 224; slice the split for big sets
        idx = self.splits[split]
        return (self.inputs(idx, role),), self.labels[idx]

    def batches(self, split: str, batch_size: int, *, epoch: int, seed: int, shuffle: bool,
                roles: Sequence[str] = ("student",)) -> Iterator[Batch]:
        import torch

        if self.cfg.window_block > 1:
            for w in block_batches(self.past, self.splits[split], self.cfg.window_block, batch_size,
                                   shuffle=shuffle, seed=seed, epoch=epoch):
                yield self.shared_frame_batch(w, roles)
            return
        for w in index_batches(self.splits[split], batch_size, shuffle=shuffle, seed=seed, epoch=epoch, salt=11):
            y = torch.from_numpy(self.labels[w])
            teacher = (torch.from_numpy(self.inputs(w, "teacher")),) if "teacher" in roles else None
            if "student" in roles:
                student = (torch.from_numpy(self.inputs(w, "student")),)
            else:
                student = teacher
            yield Batch(student, y, teacher_inputs=teacher, extra={"sample": torch.from_numpy(w.astype(np.int64))})

    def shared_frame_batch(self, windows: np.ndarray, roles: Sequence[str]) -> Batch:
        """Windows as (frames [F, S, S], index [B, L]): each distinct mask once, and per window
        the rows of its L masks in `frames` (the models' two-argument forward)."""
        import torch

        longest = max(self.seq_len(r) for r in roles)
        rows = self.past[windows][:, -longest:]
        distinct, where = np.unique(rows, return_inverse=True)
        frames = torch.from_numpy(self.masks[distinct].astype(np.float32))
        where = torch.from_numpy(where.reshape(rows.shape).astype(np.int64))
        view = {r: (frames, where[:, -self.seq_len(r):]) for r in roles}
        student = view.get("student", view.get("teacher"))
        return Batch(student, torch.from_numpy(self.labels[windows]), teacher_inputs=view.get("teacher"),
                     extra={"sample": torch.from_numpy(np.asarray(windows, dtype=np.int64))})

    def predict_split(self, predict: Predictor, split: str, role: str, chunk: int = 64) -> np.ndarray:
        idx = self.splits[split]
        outs = [predict((self.inputs(idx[i:i + chunk], role),)) for i in range(0, len(idx), chunk)]
        return np.concatenate(outs) if outs else np.zeros((0, self.cfg.future + 1, self.cfg.num_beams), np.float32)

    def evaluate(self, predict: Predictor, split: str = "test", role: str = "student") -> dict[str, Any]:
        logits = self.predict_split(predict, split, role)
        labels = self.labels[self.splits[split]]
        if len(labels) == 0:
            raise BeamcError(f"vision: the {split} split has no windows ({self.info['split_windows']}); "
                             "use more sequences or other data.*_fraction values")
        expected = (len(labels), self.cfg.future + 1, self.cfg.num_beams)
        if logits.shape != expected:
            raise BeamcError(f"vision {role} model: expected logits {list(expected)}, found {list(logits.shape)}")
        out = {"split": split, "role": role, "seq_len": self.seq_len(role), "num_samples": int(len(labels)),
               "slots": ["t"] + [f"t+{j}" for j in range(1, self.cfg.future + 1)],
               "loss": focal_loss_np(logits, labels, self.cfg.focal_alpha, self.cfg.focal_gamma),
               "dba_delta": self.cfg.dba_delta}
        out.update(slot_metrics(logits, labels, self.cfg.topk, self.cfg.dba_delta))
        return out

    def headline(self, metrics: dict[str, Any]) -> dict[str, float]:
        out = {f"ATop-{k} %": 100 * metrics[f"atop{k}"] for k in self.cfg.topk}
        out["ADBA %"] = 100 * metrics["adba"]
        out["ADBA-Y3 %"] = 100 * metrics["adba_y3"]
        return out


def block_batches(past: np.ndarray, idx: np.ndarray, block: int, batch_size: int, *, shuffle: bool, seed: int,
                  epoch: int) -> Iterator[np.ndarray]:
    """Window indices `idx` in minibatches of batch_size // block blocks of up to `block`
    consecutive windows (windows i, i+1 are consecutive when their first frame rows are).
    Shuffled, the blocks start at a random offset and come in a random order, both pure
    functions of (seed, epoch), so a resumed run draws what an uninterrupted one does."""
    idx = np.sort(np.asarray(idx))
    if len(idx) == 0:
        return
    breaks = np.flatnonzero(np.diff(past[idx, 0]) != 1) + 1          # starts of runs of consecutive windows
    rng = np.random.default_rng([seed, epoch, 13])
    offset = int(rng.integers(block)) if shuffle else 0
    blocks = []
    for run in np.split(idx, breaks):
        cuts = np.arange(offset % block or block, len(run), block) if len(run) > block else []
        blocks.extend(np.split(run, cuts))
    order = rng.permutation(len(blocks)) if shuffle else np.arange(len(blocks))
    per_batch = max(1, batch_size // block)
    for start in range(0, len(order), per_batch):
        yield np.concatenate([blocks[b] for b in order[start:start + per_batch]])


# ----------------------------------------------------------------------------- task
def all_masks(frames: np.ndarray, segment: np.ndarray, threshold: float, chunk: int = 256) -> np.ndarray:
    """uint8 [n, S, S]: the motion mask of every frame against its predecessor in the same
    segment (0 for a segment's first frame, which no window uses as a mask)."""
    n = len(frames)
    out = np.zeros(frames.shape, dtype=np.uint8)
    state = {"mask_threshold": threshold}
    for a in range(1, n, chunk):
        b = min(n, a + chunk)
        block = np.asarray(frames[a - 1:b], dtype=np.float32)
        m = motion_masks(block[None], state)[0]                       # masks of frames a .. b-1
        same = segment[a:b] == segment[a - 1:b - 1]
        out[a:b] = m.astype(np.uint8) * same[:, None, None]
    return out


class VisionTask(Task):
    name = "vision"
    TaskConfig = VisionTaskConfig
    DataConfig = VisionDataConfig
    flop_convention: ClassVar[str] = "thop"   # Table VII counts what thop.profile returns
    teacher_key_excludes: ClassVar[tuple[str, ...]] = ("student_seq_len", "latency_warmup", "latency_iters")

    def check(self, cfg: VisionTaskConfig) -> None:
        if cfg.student_seq_len > cfg.teacher_seq_len:
            raise BeamcError(f"task.student_seq_len ({cfg.student_seq_len}) must be <= task.teacher_seq_len "
                             f"({cfg.teacher_seq_len}): the student sees the last L masks of the teacher's window")
        if any(k > cfg.num_beams for k in cfg.topk):
            raise BeamcError(f"task.topk: every K must be <= task.num_beams ({cfg.num_beams}), found {list(cfg.topk)}")

    def prepare(self, task_cfg: VisionTaskConfig, data_cfg: VisionDataConfig, *, progress: bool = True) -> VisionData:
        from functools import partial

        from beamc.data.frame_cache import frame_cache
        from beamc.data.windows import beam_labels, windows

        self.check(task_cfg)
        sc = open_deepsense(data_cfg)
        if "rgb" not in sc.modalities:
            raise BeamcError(f"{sc.csv_path}: no unit1_rgb column; the vision task needs camera frames")
        state = make_state(task_cfg)
        frames = frame_cache(sc, "rgb", partial(preprocess_frame, state=state), key=f"vision.gray-v{PREPROCESS_VERSION}",
                             params={"image_size": task_cfg.image_size, "blur_sigma": task_cfg.blur_sigma},
                             progress=progress)
        w = windows(sc, past=task_cfg.teacher_seq_len + 1, future=task_cfg.future, valid=frames.ok)
        labels = beam_labels(sc, w)
        if labels.size and labels.max() >= task_cfg.num_beams:
            raise BeamcError(f"{sc.csv_path}: beam index {int(labels.max()) + 1} exceeds task.num_beams ({task_cfg.num_beams})")
        seq_split = split(sc, data_cfg)
        splits = {name: np.flatnonzero(np.isin(w.seq, getattr(seq_split, name))) for name in SPLITS}
        masks = all_masks(frames.data, np.asarray(sc.segment), task_cfg.mask_threshold)
        info = {"source": data_cfg.source, "folder": str(sc.root), "rows": int(sc.n),
                "sequences": int(len(sc.sequences())), "windows": int(len(w)), "frames_failed": len(frames.failures),
                "split_windows": {k: int(len(v)) for k, v in splits.items()},
                "split_sequences": {k: len(v) for k, v in seq_split.to_dict().items()},
                "frames_per_window": task_cfg.teacher_seq_len + 1}
        if len(splits["train"]) == 0:
            raise BeamcError(f"{sc.csv_path}: no training windows of {task_cfg.teacher_seq_len + 1} frames + "
                             f"{task_cfg.future} future beams ({info['split_windows']}); use more or longer sequences")
        return VisionData(self, task_cfg, data_cfg, masks, w.past, labels, splits, info)

    def input_spec(self, task_cfg: VisionTaskConfig, data_cfg: Any, role: str = "student") -> list[TensorSpec]:
        self.check(task_cfg)
        length = task_cfg.teacher_seq_len if role == "teacher" else task_cfg.student_seq_len
        return [TensorSpec("masks", (length, task_cfg.image_size, task_cfg.image_size))]

    def output_spec(self, task_cfg: VisionTaskConfig, data_cfg: Any, role: str = "student") -> list[TensorSpec]:
        return [TensorSpec("logits", (task_cfg.future + 1, task_cfg.num_beams))]

    def latency_plan(self, task_cfg: VisionTaskConfig) -> tuple[int, int]:
        return task_cfg.latency_warmup, task_cfg.latency_iters

    def criterion(self, logits: Any, y: Any, task_cfg: VisionTaskConfig) -> Any:
        from beamc.compress.losses import focal_loss

        return focal_loss(logits, y, task_cfg.focal_alpha, task_cfg.focal_gamma)

    def stream_preprocessor(self, task_cfg: Any, state: dict[str, Any], role: str = "student") -> StreamPreprocessor:
        return camera_stream(state, role)

    def plot(self, metrics: dict[str, Any], out_dir: Any) -> list[Any]:
        from beamc.plots import slot_curves

        path = slot_curves({n: m["metrics"] for n, m in metrics["models"].items() if m.get("metrics")},
                           Path(out_dir) / "per_slot.png")
        return [path] if path else []


TASKS.add("vision", VisionTask())

__all__ = ["VisionTaskConfig", "VisionDataConfig", "VisionData", "VisionTask", "preprocess_frame", "motion_masks",
           "model_input", "camera_stream", "make_state", "block_batches", "slot_metrics", "dba_terms", "focal_loss_np", "all_masks"]
