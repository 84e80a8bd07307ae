"""The task contract: the one place that knows a task's tensors.

A task turns its [task]/[data] recipe tables into `TaskData`: numpy arrays per split, the
preprocessing state measured on the training split (saved with the run and shipped in
export bundles so the runtime preprocesses exactly as training did), minibatches for
training, and the task's metrics. Nothing here imports torch at module level: the runtime
uses the same preprocessing on a device that may only have ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

# A predictor maps a tuple of model inputs (numpy, batch first) to logits (numpy). Torch
# models, ONNX Runtime sessions and TensorRT engines are all wrapped into this shape, so a
# task's metrics are computed identically for each of them.
Predictor = Callable[[tuple[np.ndarray, ...]], np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]  # without the batch dimension
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass
class Batch:
    """One minibatch. `teacher_inputs` differ from `inputs` when the teacher sees another
    view of the same samples (e.g. 8 past frames while the student sees 3). Tasks with
    `fixed_training_inputs` put the samples' indices in `extra["sample"]` (int64 tensor)."""

    inputs: tuple[Any, ...]
    y: Any
    teacher_inputs: tuple[Any, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to(self, device: Any) -> Batch:
        def move(t: Any) -> Any:
            return t.to(device, non_blocking=True) if hasattr(t, "to") else t

        return Batch(tuple(move(t) for t in self.inputs), move(self.y),
                     None if self.teacher_inputs is None else tuple(move(t) for t in self.teacher_inputs),
                     {k: move(v) for k, v in self.extra.items()})

    @property
    def for_teacher(self) -> tuple[Any, ...]:
        return self.inputs if self.teacher_inputs is None else self.teacher_inputs


class TaskData:
    """Prepared data of one task instance. Subclasses fill in the arrays and metrics."""

    task: Task
    preprocess_state: dict[str, Any]
    num_classes: int

    task_cfg: Any
    data_cfg: Any

    # True when a training sample's inputs are the same every epoch (no re-drawn noise or
    # augmentation) and training batches carry `extra["sample"]`: a frozen teacher's outputs
    # can then be computed once per sample (compress.teacher_outputs) instead of every step.
    fixed_training_inputs: ClassVar[bool] = False

    def input_spec(self, role: str = "student") -> list[TensorSpec]:
        return self.task.input_spec(self.task_cfg, self.data_cfg, role)

    def output_spec(self, role: str = "student") -> list[TensorSpec]:
        return self.task.output_spec(self.task_cfg, self.data_cfg, role)

    def split_size(self, split: str) -> int:
        raise NotImplementedError

    def arrays(self, split: str, role: str = "student") -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """Preprocessed inputs and labels of a split at the task's reference condition
        (deterministic): golden sets, calibration data and runtime replays use these."""
        raise NotImplementedError

    def batches(self, split: str, batch_size: int, *, epoch: int, seed: int, shuffle: bool,
                roles: Sequence[str] = ("student",)) -> Iterator[Batch]:
        """Torch minibatches. Training splits may re-draw augmentation (noise) per epoch;
        evaluation splits are fixed by `seed`."""
        raise NotImplementedError

    def evaluate(self, predict: Predictor, split: str = "test", role: str = "student") -> dict[str, Any]:
        """The task's metrics (the paper's tables) for one model."""
        raise NotImplementedError

    def headline(self, metrics: dict[str, Any]) -> dict[str, float]:
        """A few numbers for the summary table (e.g. Top-1 at the reference SNR)."""
        raise NotImplementedError


class StreamPreprocessor:
    """Online preprocessing for the runtime: one sensor frame in, batch-1 model inputs out.

    A frame maps a modality to the array a sensor or recording delivers, unprocessed:
    {"csi": complex [antennas, subcarriers]}, {"camera": uint8 RGB [H, W, 3]},
    {"lidar": float [ranges]}, {"radar": complex [rx, samples, chirps]}. `push` returns the
    model inputs (a tuple, batch first, batch 1) once enough history has been seen, else
    None. It must compute exactly what `TaskData.arrays` computes offline for the same
    frames, from the preprocessing state alone (numpy only: no torch on the device).
    Wrong shapes or dtypes raise BeamcError naming the modality, expected and found."""

    modalities: tuple[str, ...] = ()

    def push(self, frame: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...] | None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the history (a new sequence / user starts)."""


class SlidingWindow(StreamPreprocessor):
    """The common shape of a sequence task's stream: preprocess each frame on arrival
    (`per_frame`), keep the last `length` results, and turn a full window into model inputs
    (`to_inputs`); so each frame is preprocessed once however many windows it is part of."""

    def __init__(self, modalities: tuple[str, ...], length: int,
                 per_frame: Callable[[Mapping[str, np.ndarray]], Any],
                 to_inputs: Callable[[list[Any]], tuple[np.ndarray, ...]]) -> None:
        from collections import deque

        self.modalities, self.length = modalities, length
        self._per_frame, self._to_inputs = per_frame, to_inputs
        self._history: Any = deque(maxlen=length)

    def push(self, frame: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...] | None:
        self._history.append(self._per_frame(frame))
        return self._to_inputs(list(self._history)) if len(self._history) == self.length else None

    def reset(self) -> None:
        self._history.clear()


class Task:
    """A registered task: config schemas plus a `prepare` that builds its TaskData."""

    name: ClassVar[str]
    TaskConfig: ClassVar[type]
    DataConfig: ClassVar[type]
    # How its paper counts FLOPs (beamc.complexity.count_flops conventions) and times latency.
    flop_convention: ClassVar[str] = "2mac"
    # [task] keys that do not change how the teacher is trained (what the student sees, how
    # models are timed): left out of the teacher cache key so such recipes share one teacher.
    teacher_key_excludes: ClassVar[tuple[str, ...]] = ()

    def prepare(self, task_cfg: Any, data_cfg: Any, *, progress: bool = True) -> TaskData:
        raise NotImplementedError

    def input_spec(self, task_cfg: Any, data_cfg: Any, role: str = "student") -> list[TensorSpec]:
        """Model inputs (without batch dimension), known from the recipe alone so that
        `beamc inspect` and exports need no data."""
        raise NotImplementedError

    def output_spec(self, task_cfg: Any, data_cfg: Any, role: str = "student") -> list[TensorSpec]:
        raise NotImplementedError

    def latency_plan(self, task_cfg: Any) -> tuple[int, int]:
        """(warm-up, timed) iterations of the batch-1 latency measurement in metrics.json."""
        return 10, 50

    def criterion(self, logits: Any, y: Any, task_cfg: Any) -> Any:
        """The supervised loss (torch): cross-entropy, focal loss, ..."""
        raise NotImplementedError

    def stream_preprocessor(self, task_cfg: Any, state: dict[str, Any], role: str = "student") -> StreamPreprocessor:
        """Per-frame preprocessing for the runtime, built from the task config and the
        preprocessing state recorded in a run / export bundle manifest."""
        raise NotImplementedError(f"task '{self.name}' has no streaming preprocessing yet")

    def plot(self, metrics: dict[str, Any], out_dir: Any) -> list[Any]:
        """Write the task's PNG plots from metrics.json content; returns the paths."""
        return []


def topk_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean per sample (and per step, for [..., C] logits): label within the top-k."""
    top = np.argpartition(-logits, kth=min(k, logits.shape[-1]) - 1, axis=-1)[..., :k]
    return (top == labels[..., None]).any(axis=-1)


def topk_indices(logits: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest logits, best first."""
    k = min(k, logits.shape[-1])
    part = np.argpartition(-logits, kth=k - 1, axis=-1)[..., :k]
    order = np.argsort(-np.take_along_axis(logits, part, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(part, order, axis=-1)


def index_batches(idx: np.ndarray, batch_size: int, *, shuffle: bool, seed: int, epoch: int,
                  salt: int) -> Iterator[np.ndarray]:
    """Sample indices of one epoch in minibatches; the shuffle is a pure function of (seed,
    epoch, salt), so a resumed run draws the same order as an uninterrupted one."""
    if shuffle:
        idx = np.random.default_rng([seed, epoch, salt]).permutation(idx)
    for start in range(0, len(idx), batch_size):
        yield idx[start:start + batch_size]


def predict_in_batches(predict: Predictor, inputs: tuple[np.ndarray, ...], batch_size: int = 1024) -> np.ndarray:
    n = len(inputs[0])
    outs = [predict(tuple(x[i:i + batch_size] for x in inputs)) for i in range(0, n, batch_size)]
    return np.concatenate(outs, axis=0) if outs else np.zeros((0,))
