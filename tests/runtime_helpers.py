"""Test-only pieces for the runtime: a tiny LiDAR window task (the sensing tasks live on
other branches) and a hand-made bundle for it, exported with torch.onnx.export."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from beamc.errors import BeamcError
from beamc.schema import opt
from beamc.tasks.base import SlidingWindow, Task, TensorSpec

WINDOW = 3
RANGES = 216


@dataclass(frozen=True)
class WindowTaskConfig:
    name: str = opt("test_lidar_window", doc="task name")
    window: int = opt(WINDOW, ge=1, doc="frames per window")
    use_camera: bool = opt(False, doc="also require camera frames (adds their mean brightness)")
    camera_only: bool = opt(False, doc="camera frames only: the red channel's column means of the first 216 columns")


def camera_columns(frame: Any) -> np.ndarray:
    img = np.asarray(frame["camera"])
    if img.ndim != 3 or img.shape[1] < RANGES:
        raise BeamcError(f"camera frame: expected [H, >={RANGES}, 3], found {list(img.shape)}")
    return img[:, :RANGES, 0].astype(np.float32).mean(axis=0) / np.float32(255.0)


def per_frame(frame: Any, state: dict[str, Any], use_camera: bool) -> np.ndarray:
    lidar = np.asarray(frame["lidar"], dtype=np.float32)
    if lidar.shape != (RANGES,):
        raise BeamcError(f"lidar frame: expected shape ({RANGES},), found {lidar.shape}")
    x = lidar / np.float32(state["scale"])
    if use_camera:
        x = x + np.float32(np.asarray(frame["camera"], dtype=np.float32).mean() / 255.0)
    return x


class WindowTask(Task):
    name = "test_lidar_window"
    TaskConfig = WindowTaskConfig
    DataConfig = WindowTaskConfig

    def input_spec(self, task_cfg: Any, data_cfg: Any, role: str = "student") -> list[TensorSpec]:
        return [TensorSpec("lidar", (task_cfg.window, RANGES))]

    def output_spec(self, task_cfg: Any, data_cfg: Any, role: str = "student") -> list[TensorSpec]:
        return [TensorSpec("logits", (64,))]

    def stream_preprocessor(self, task_cfg: Any, state: dict[str, Any], role: str = "student") -> SlidingWindow:
        if task_cfg.camera_only:
            return SlidingWindow(("camera",), task_cfg.window, camera_columns, lambda h: (np.stack(h)[None],))
        modalities = ("lidar", "camera") if task_cfg.use_camera else ("lidar",)
        return SlidingWindow(modalities, task_cfg.window, lambda f: per_frame(f, state, task_cfg.use_camera),
                             lambda h: (np.stack(h)[None],))


def make_window_bundle(folder: Path, use_camera: bool = False, seed: int = 0, camera_only: bool = False) -> Path:
    """model.onnx (Flatten + Linear 3*216 -> 64) and a manifest the runtime reads."""
    import torch

    from beamc.export.bundle import FORMAT, file_table
    from beamc.runs import atomic_write_json

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(WINDOW * RANGES, 64)).eval()
    x = torch.randn(1, WINDOW, RANGES)
    torch.onnx.export(model, (x,), str(folder / "model.onnx"), input_names=["lidar"], output_names=["logits"],
                      dynamic_axes={"lidar": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    manifest = {
        "format": FORMAT, "status": "ok", "target": "cpu", "precision": "fp32", "model_file": "model.onnx",
        "run": {"name": "test-window", "path": str(folder / "no-run")},
        "task": {"name": "test_lidar_window", "config": {"name": "test_lidar_window", "window": WINDOW,
                                                          "use_camera": use_camera, "camera_only": camera_only},
                 "preprocess": {"scale": 10.0}},
        "inputs": [{"name": "lidar", "shape": [WINDOW, RANGES], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": [64], "dtype": "float32"}],
        "files": file_table(folder),
    }
    atomic_write_json(folder / "manifest.json", manifest)
    return folder


def registered_window_task():
    """Register the test task for the duration of a test (registries refuse duplicates)."""
    from beamc.registry import TASKS

    TASKS._ensure_populated()
    task = WindowTask()
    TASKS.add(task.name, task)
    return task


def unregister_window_task() -> None:
    from beamc.registry import TASKS

    TASKS._items.pop("test_lidar_window", None)


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
