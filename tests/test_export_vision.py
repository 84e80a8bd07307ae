"""Export of the vision student (Table III network, L = 3, 32 x 32 masks) from a run directory
made by hand on the tiny simulated scenario: ONNX parity with PyTorch (fp32 top-1 agreement
100 %), dynamic batch, and the bundle's preprocessing state driving the runtime stream to the
golden inputs.

The student is untrained (seeded init): parity is about the exporter, not about accuracy, and
skipping training keeps this test to the data preparation and one ONNX export.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from beamc.compress.modeling import save_model
from beamc.data import deepsense as ds
from beamc.export.bundle import export_run
from beamc.recipe import dumps
from beamc.registry import TASKS
from beamc.runs import atomic_write_json, atomic_write_text, new_run
from beamc.tasks.vision_models import vision_student
from test_vision_pipeline import tiny


def student() -> torch.nn.Module:
    torch.manual_seed(3)
    return vision_student().eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vision-export")
    recipe = tiny(folder, name="vision_export", length=3, method="none", extra="")
    data = TASKS.get("vision").prepare(recipe.task, recipe.data, progress=False)
    run = new_run(folder / "runs", "vision_export")
    atomic_write_text(run.file("recipe.toml"), dumps(recipe))
    save_model(run.file("student.pt"), student(), "vision_student", {}, "vision")
    atomic_write_json(run.file("preprocess.json"), {"task": "vision", "state": data.preprocess_state, "data": data.info})
    result = export_run(run.path, "cpu", precision="fp32", out=folder / "bundle", log=lambda s: None)
    return result, data


def test_vision_student_exports_with_fp32_parity(exported):
    result, data = exported
    bundle, m = result.path, result.manifest
    assert m["status"] == "ok" and m["run"]["student"]["params"] == 107_193
    assert m["inputs"][0]["onnx_shape"] == ["batch", 3, 32, 32] and m["outputs"][0]["onnx_shape"] == ["batch", 7, 64]
    assert m["labels"]["steps"] == 7 and m["labels"]["num_classes"] == 64
    golden = result.parity["fp32"]["golden"]
    assert golden["top1_agreement"] == 1.0
    # recomputed here from the files, not trusted from parity.json
    x = np.load(bundle / m["golden"]["inputs"]["masks"])
    (offline,), labels = data.arrays("test")
    assert np.array_equal(x, offline[: len(x)]) and np.array_equal(np.load(bundle / "golden" / "labels.npy"), labels[: len(x)])
    with torch.no_grad():
        ref = student()(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"masks": x})[0]
    assert out.shape == (len(x), 7, 64)
    assert float(np.abs(out - ref).max()) <= 1e-4 and np.array_equal(out.argmax(-1), ref.argmax(-1))
    one = sess.run(None, {"masks": x[:1]})[0]
    np.testing.assert_allclose(one, ref[:1], rtol=0, atol=1e-4)


def test_bundle_state_streams_raw_frames_to_the_golden_inputs(exported):
    result, data = exported
    manifest = json.loads((Path(result.path) / "manifest.json").read_text())
    state = manifest["task"]["preprocess"]            # what a device reads, no run directory needed
    x = np.load(Path(result.path) / manifest["golden"]["inputs"]["masks"])
    stream = TASKS.get("vision").stream_preprocessor(None, state)
    sc = ds.open_scenario(data.info["folder"])
    out = None
    for row in data.past[data.splits["test"][0]]:          # the 9 frames of the first test window
        out = stream.push({"camera": ds.read_image(sc, int(row))})
    assert out is not None and np.array_equal(out[0][0], x[0])
