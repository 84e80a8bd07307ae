"""Export is generic over tasks: a test-only camera+radar-like task with two sequence inputs
([B, T, 3, 8, 8] and [B, T, 16]) and multi-step outputs [B, steps, 64], a conv + GRU student,
and a run directory made by hand. Also: gates that must fail, with their exact messages.

The toy labels are the student's own arg-max, so its fp32 Top-1 is 100 % by construction and
any accuracy loss is the exporter's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from beamc.errors import BeamcError
from beamc.export.bundle import export_run
from beamc.export.profiles import load_profile
from beamc.export.quantize import QuantizedOnnx, accuracy_drop
from beamc.export.verify import GateFailure, Golden
from beamc.recipe import dumps, load_recipe
from beamc.registry import MODELS, TASKS
from beamc.runs import atomic_write_json, atomic_write_text, new_run
from beamc.schema import opt
from beamc.tasks.base import Task, TaskData, TensorSpec

T, STEPS, CLASSES = 4, 3, 64


class ToyCamRadar(nn.Module):
    """Per-frame conv features + radar features -> GRU -> logits for STEPS future slots."""

    def __init__(self, steps: int = STEPS, classes: int = CLASSES):
        super().__init__()
        self.steps, self.classes = steps, classes
        self.conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.radar = nn.Linear(16, 8)
        self.gru = nn.GRU(12, 16, batch_first=True)
        self.head = nn.Linear(16, steps * classes)

    def forward(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        b, t = image.shape[0], image.shape[1]
        frames = self.conv(image.flatten(0, 1)).flatten(1).reshape(b, t, -1)
        h, _ = self.gru(torch.cat([frames, torch.relu(self.radar(radar))], dim=-1))
        return self.head(h[:, -1]).reshape(b, self.steps, self.classes)


def toy_model() -> ToyCamRadar:
    torch.manual_seed(7)
    return ToyCamRadar().eval()


@dataclass(frozen=True)
class ToyTaskConfig:
    name: str = opt("toy_seq", doc="test-only task")
    topk: tuple[int, ...] = opt((1, 3), doc="Top-K")


@dataclass(frozen=True)
class ToyDataConfig:
    samples: int = opt(200, ge=10, doc="samples")
    seed: int = opt(0, ge=0, doc="seed")


class ToyData(TaskData):
    def __init__(self, task: Task, cfg: ToyTaskConfig, data_cfg: ToyDataConfig):
        self.task, self.task_cfg, self.data_cfg, self.num_classes = task, cfg, data_cfg, CLASSES
        rng = np.random.default_rng(data_cfg.seed)
        n = data_cfg.samples
        self.x = (rng.standard_normal((n, T, 3, 8, 8)).astype(np.float32), rng.standard_normal((n, T, 16)).astype(np.float32))
        with torch.no_grad():
            self.y = toy_model()(*map(torch.from_numpy, self.x)).argmax(-1).numpy()
        self.split_idx = {"train": np.arange(0, n // 2), "val": np.arange(n // 2, 3 * n // 5), "test": np.arange(3 * n // 5, n)}
        self.preprocess_state = {"task": "toy_seq", "frames": T}

    def split_size(self, split: str) -> int:
        return len(self.split_idx[split])

    def arrays(self, split: str, role: str = "student"):
        idx = self.split_idx[split]
        return tuple(x[idx] for x in self.x), self.y[idx]

    def evaluate(self, predict, split: str = "test", role: str = "student"):
        inputs, labels = self.arrays(split)
        return {"split": split, "top1_per_step": (predict(inputs).argmax(-1) == labels).mean(axis=0).tolist()}

    def headline(self, metrics):
        return {"Top-1 (mean over steps)": float(np.mean(metrics["top1_per_step"]) * 100)}


class ToyTask(Task):
    name = "toy_seq"
    TaskConfig = ToyTaskConfig
    DataConfig = ToyDataConfig

    def prepare(self, task_cfg, data_cfg, *, progress: bool = True) -> ToyData:
        return ToyData(self, task_cfg, data_cfg)

    def input_spec(self, task_cfg, data_cfg, role: str = "student"):
        return [TensorSpec("image", (T, 3, 8, 8)), TensorSpec("radar", (T, 16))]

    def output_spec(self, task_cfg, data_cfg, role: str = "student"):
        return [TensorSpec("logits", (STEPS, CLASSES))]


if "toy_seq" not in TASKS:
    TASKS.add("toy_seq", ToyTask())
    MODELS.add("toy_cam_radar", lambda: ToyCamRadar())


def make_run(folder: Path) -> Path:
    """A run directory as `beamc distill` leaves it, without training."""
    from beamc.compress.modeling import save_model

    recipe_file = folder / "toy.toml"
    recipe_file.write_text('name = "toy"\n[task]\nname = "toy_seq"\n[data]\nsamples = 200\n'
                           '[teacher]\nmodel = "toy_cam_radar"\n[student]\nmodel = "toy_cam_radar"\n[distill]\nmethod = "none"\n')
    recipe = load_recipe(recipe_file)
    run = new_run(folder / "runs", "toy")
    atomic_write_text(run.file("recipe.toml"), dumps(recipe))
    save_model(run.file("student.pt"), toy_model(), "toy_cam_radar", {}, "toy_seq")
    atomic_write_json(run.file("preprocess.json"), {"task": "toy_seq", "state": {"task": "toy_seq", "frames": T}})
    return run.path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    return export_run(run_dir, "cpu", precision="fp32", out=tmp_path_factory.mktemp("b") / "toy-cpu", fmt="triton",
                      log=lambda s: None)


def test_multi_input_multi_step_export_matches_pytorch(exported):
    bundle, m = exported.path, exported.manifest
    assert [i["name"] for i in m["inputs"]] == ["image", "radar"]
    assert m["inputs"][0]["onnx_shape"] == ["batch", T, 3, 8, 8] and m["outputs"][0]["onnx_shape"] == ["batch", STEPS, CLASSES]
    assert m["labels"]["steps"] == STEPS and m["labels"]["num_classes"] == CLASSES
    assert m["golden"]["inputs"] == {"image": "golden/inputs_image.npy", "radar": "golden/inputs_radar.npy"}
    image, radar = (np.load(bundle / m["golden"]["inputs"][n]) for n in ("image", "radar"))
    labels = np.load(bundle / "golden" / "labels.npy")
    assert image.shape == (80, T, 3, 8, 8) and radar.shape == (80, T, 16) and labels.shape == (80, STEPS)

    with torch.no_grad():
        ref = toy_model()(torch.from_numpy(image), torch.from_numpy(radar)).numpy()
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"image": image, "radar": radar})[0]
    assert out.shape == (80, STEPS, CLASSES)
    assert float(np.abs(out - ref).max()) <= 1e-4 and np.array_equal(out.argmax(-1), ref.argmax(-1))
    for b in (1, 7):
        o = sess.run(None, {"image": image[:b], "radar": radar[:b]})[0]
        np.testing.assert_allclose(o, ref[:b], rtol=0, atol=1e-4)
    golden = exported.parity["fp32"]["golden"]
    assert golden["top1_agreement"] == 1.0 and golden["accuracy"]["top1"] == 100.0
    assert exported.parity["task_metrics"]["fp32"]["headline"] == {"Top-1 (mean over steps)": 100.0}
    assert (bundle / "triton" / "toy" / "config.pbtxt").read_text().split("output [")[0].endswith(
        '    name: "image"\n    data_type: TYPE_FP32\n    dims: [ 4, 3, 8, 8 ]\n  },\n  {\n'
        '    name: "radar"\n    data_type: TYPE_FP32\n    dims: [ 4, 16 ]\n  }\n]\n')
    assert 'dims: [ 3, 64 ]' in (bundle / "triton" / "toy" / "config.pbtxt").read_text()
    assert (bundle / "triton" / "toy" / "config.pbtxt").read_text().count("KIND_CPU") == 1


def test_int8_gate_fails_with_measured_numbers(exported, run_dir, tmp_path):
    bundle = exported.path
    from beamc.compress.pipeline import load_run_recipe

    _, recipe = load_run_recipe(run_dir)
    data = TASKS.get("toy_seq").prepare(recipe.task, recipe.data)
    (img, rad), _ = data.arrays("train")
    test = data.arrays("test")
    g = exported.manifest["golden"]["inputs"]
    golden = Golden((np.load(bundle / g["image"]), np.load(bundle / g["radar"])), np.load(bundle / "golden" / "labels.npy"),
                    np.load(bundle / "golden" / "outputs.npy"))
    # calibration ranges a thousand times too narrow: activations clip, accuracy collapses
    step = QuantizedOnnx(bundle / "model.onnx", tmp_path / "model_int8.onnx", golden, (img * 1e-3, rad * 1e-3),
                         load_profile("cpu").int8, test=test, max_top1_drop=1.0, cache_dir=tmp_path / "cache")
    with pytest.raises(GateFailure) as e:
        step()
    sess = ort.InferenceSession(str(tmp_path / "model_int8.onnx"), providers=["CPUExecutionProvider"])
    int8 = float(np.mean(sess.run(None, {"image": test[0][0], "radar": test[0][1]})[0].argmax(-1) == test[1]) * 100)
    assert int8 < 99.0
    assert str(e.value) == (f"int8 gate failed: int8 top-1 drop {100 - int8:.4g} points > 1 points "
                            f"(fp32 100.00 %, int8 {int8:.2f} % on {len(test[1])} test samples)")
    ops = [n.op_type for n in __import__("onnx").load(str(tmp_path / "model_int8.onnx")).graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops  # kept for inspection


def test_accuracy_drop_gate_arithmetic():
    labels = np.arange(8)
    perfect = lambda xs: np.eye(8, dtype=np.float32)[xs[0]]  # noqa: E731
    always_zero = lambda xs: np.eye(8, dtype=np.float32)[np.zeros(len(xs[0]), dtype=int)]  # noqa: E731
    res = accuracy_drop(always_zero, perfect, ((labels,), labels), "int8", 1.0, (1,))
    assert (res["fp32"]["top1"], res["int8"]["top1"], res["top1_drop_points"]) == (100.0, 12.5, 87.5)
    failure = GateFailure("int8", [g for g in res["gates"] if not g["passed"]])
    assert str(failure) == "int8 gate failed: int8 top-1 drop 87.5 points > 1 points (fp32 100.00 %, int8 12.50 % on 8 test samples)"
    assert accuracy_drop(perfect, perfect, ((labels,), labels), "int8", 0.0, (1,))["gates"][0]["passed"] is True


def test_fp32_gate_miss_keeps_the_bundle_and_says_where(run_dir, tmp_path):
    out = tmp_path / "strict"
    with pytest.raises(BeamcError) as e:
        export_run(run_dir, "cpu", precision="fp32", out=out, max_abs_error=1e-12, log=lambda s: None)
    m = json.loads((out / "manifest.json").read_text())
    g = m["golden"]["inputs"]
    with torch.no_grad():
        ref = toy_model()(torch.from_numpy(np.load(out / g["image"])), torch.from_numpy(np.load(out / g["radar"]))).numpy()
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    image, radar = np.load(out / g["image"]), np.load(out / g["radar"])
    err = float(np.abs(sess.run(None, {"image": image, "radar": radar})[0] - ref).max())
    err_b = max(float(np.abs(sess.run(None, {"image": image[:b], "radar": radar[:b]})[0] - ref[:b]).max()) for b in (1, 7))
    assert err > 1e-12  # ONNX Runtime's GRU kernels differ from torch's in the last bits
    message = str(e.value)
    match = re.fullmatch(r"fp32 ONNX gate failed: max_abs_error (\S+) > 1e-12 \(vs PyTorch on 80 golden samples\); "
                         r"max_abs_error (\S+) > 1e-12 \(vs PyTorch at batch 1 and 7\); "
                         rf"artifacts kept in {re.escape(str(out))} for inspection", message)
    assert match is not None, message
    assert float(match.group(1)) == pytest.approx(err, rel=1e-3) and float(match.group(2)) == pytest.approx(err_b, rel=1e-3)
    assert m["status"] == "gate_failed" and m["failure"] == message.split("; artifacts")[0]
    parity = json.loads((out / "parity.json").read_text())
    assert parity["passed"] is False and parity["gates"][0]["passed"] is False
    assert sorted(m["files"]) == ["README.md", "golden/inputs_image.npy", "golden/inputs_radar.npy", "golden/labels.npy",
                                  "golden/outputs.npy", "model.onnx", "parity.json"]
