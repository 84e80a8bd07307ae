"""LiDAR beam-tracking task: the paper's parameter counts, windows and 0-based labels, the
stream preprocessor against the offline arrays, per-step metrics, and a student export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from beamc.complexity import count_flops, count_params, example_inputs
from beamc.compress.modeling import build_model
from beamc.data.synth.v2i import DeepSenseSynthConfig
from beamc.errors import BeamcError
from beamc.recipe import load_recipe, recipe_from_dict
from beamc.registry import TASKS
from beamc.tasks.lidar import make_state, model_input, preprocess_scan, step_metrics

REPO = Path(__file__).resolve().parents[1]
TINY_SYNTH = {"sequences": 5, "min_frames": 14, "max_frames": 18, "seed": 3}


def tiny_recipe(**data) -> dict:
    return {"name": "tiny_lidar", "task": {"name": "lidar"},
            "data": {"source": "synth", "synth": TINY_SYNTH, "train_fraction": 0.6, "val_fraction": 0.2, **data},
            "teacher": {"model": "lidar_gru", "args": {"hidden_size": 8, "embed_dim": 8}},
            "student": {"model": "lidar_gru", "args": {"hidden_size": 4, "embed_dim": 8}},
            "distill": {"method": "none"}, "train": {"epochs": 1, "batch_size": 16, "device": "cpu"}}


@pytest.fixture(scope="module")
def tiny():
    r = recipe_from_dict(tiny_recipe())
    return r, TASKS.get("lidar").prepare(r.task, r.data, progress=False)


def test_paper_parameter_counts_and_flops():
    teacher, student = build_model("lidar_teacher", {}), build_model("lidar_student", {})
    assert count_params(teacher) == 96_640 and count_params(student) == 25_408
    x = example_inputs(TASKS.get("lidar").input_spec(load_recipe(REPO / "recipes/lidar_teacher.toml").task, None))
    assert x[0].shape == (1, 11, 216)
    # 2 x MACs: embedding 11 x 216 x 64, GRU 11 x 3 x (64 H + H^2), head 4 x H x 64
    for model, h in ((teacher, 128), (student, 32)):
        assert count_flops(model, x) == 2 * (11 * 216 * 64 + 11 * 3 * (64 * h + h * h) + 4 * h * 64)
        assert model(x[0]).shape == (1, 4, 64)


def test_inspect_prints_the_paper_counts():
    from beamc.inspect import inspect_recipe

    info = inspect_recipe(load_recipe(REPO / "recipes/lidar_dfkd_kl.toml"))
    assert info["teacher"]["params"] == 96_640 and info["student"]["params"] == 25_408
    assert info["teacher"]["inputs"] == [{"name": "lidar", "shape": [11, 216], "dtype": "float32"}]
    assert info["student"]["outputs"] == [{"name": "logits", "shape": [4, 64], "dtype": "float32"}]


def test_windows_inputs_and_zero_based_labels(tiny):
    r, d = tiny
    from beamc.data.deepsense import open_scenario, read_lidar

    sc = open_scenario(d.info["folder"])
    # labels: the CSV's 1-based unit1_beam_index minus one, at rows t .. t+3 (-100 past the sequence end)
    with open(sc.csv_path, newline="") as f:
        csv_beam = np.array([int(row["unit1_beam_index"]) for row in csv.DictReader(f)])
    w = d.windows
    expect = np.where(w.beams >= 0, csv_beam[np.maximum(w.beams, 0)] - 1, -100)
    np.testing.assert_array_equal(d.labels, expect)
    assert (d.labels[:, 0] >= 0).all() and (d.labels == -100).any()
    # a window exists as long as its 8 scans fit: rows - 7 windows per sequence
    assert len(w) == sum(int((sc.seq == s).sum()) - 7 for s in sc.sequences())
    (x,), y = d.arrays("test")
    i = d.splits["test"][0]
    j = 0
    np.testing.assert_array_equal(x[j, :8], np.stack([read_lidar(sc, k) / 10 for k in w.past[i]]).astype(np.float32))
    assert x.shape[1:] == (11, 216) and not x[:, 8:].any()


def test_stream_preprocessor_reproduces_arrays(tiny):
    r, d = tiny
    from beamc.data.deepsense import open_scenario, read_lidar

    sc = open_scenario(d.info["folder"])
    task = TASKS.get("lidar")
    stream = task.stream_preprocessor(r.task, json.loads(json.dumps(d.preprocess_state)))
    (x,), _ = d.arrays("test")
    by_current = {int(d.past[i, -1]): k for k, i in enumerate(d.splits["test"])}
    checked = 0
    for seq in np.unique(d.windows.seq[d.splits["test"]]):
        stream.reset()
        for row in np.flatnonzero(sc.seq == seq):
            out = stream.push({"lidar": read_lidar(sc, row)})
            if row in by_current:
                assert out is not None and out[0].dtype == np.float32
                np.testing.assert_array_equal(out[0], x[by_current[row]][None])
                checked += 1
            else:
                assert out is None   # the first 7 frames of a sequence
    assert checked == len(d.splits["test"]) > 0


def test_bad_frames_are_one_line_errors():
    state = make_state(recipe_from_dict(tiny_recipe()).task)
    with pytest.raises(BeamcError, match=r"lidar frame: expected 216 real ranges \(float \[216\]\), found float64 \[215\]"):
        preprocess_scan(np.zeros(215), state)
    with pytest.raises(BeamcError, match=r"expected 216 real ranges .* found complex128 \[216\]"):
        preprocess_scan(np.zeros(216, complex), state)
    with pytest.raises(BeamcError, match=r"lidar input: expected at least 8 preprocessed scans of 216 ranges, found shape \[7, 216\]"):
        model_input(np.zeros((7, 216)), state)
    stream = TASKS.get("lidar").stream_preprocessor(None, state)
    with pytest.raises(BeamcError, match=r"expected modality 'lidar', found \['radar'\]"):
        stream.push({"radar": np.zeros(3)})


def test_step_metrics_by_hand():
    logits = np.zeros((3, 2, 6), np.float32)
    for n, order in enumerate([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [2, 0, 1, 3, 4, 5]]):
        logits[n, :, order] = np.arange(6, 0, -1)[:, None]   # order[0] is the best class
    labels = np.array([[0, 1], [4, -100], [1, -100]])
    m = step_metrics(logits, labels, (1, 2))
    # step t: sample 0 top-1 hit; sample 1 (4 is 2nd) top-2 hit; sample 2 (1 is 3rd) miss
    assert m["top1"] == pytest.approx([1 / 3, 0.0]) and m["top2"] == pytest.approx([2 / 3, 1.0])
    assert m["labelled"] == [3, 1] and m["mean_top2"] == pytest.approx(5 / 6)


def test_tiny_student_exports_with_parity(tmp_path):
    """A LiDAR student (GRU over 11 steps, [B, 4, 64] logits) exports to ONNX and passes parity."""
    import onnxruntime as ort

    from beamc.compress.modeling import load_model
    from beamc.compress.pipeline import distill
    from beamc.export.bundle import export_run

    raw = tiny_recipe()
    raw["distill"] = {"method": "ikd", "temperature": 5.0, "alpha": 0.7}
    raw["output"] = {"plots": False}
    run = distill(recipe_from_dict(raw), out=tmp_path / "runs", progress=False, log=lambda _: None)
    res = export_run(run.path, "cpu", precision="fp32", out=tmp_path / "bundle", log=lambda _: None)
    x = np.load(res.path / "golden" / "inputs.npy")
    assert x.shape[1:] == (11, 216)
    student, _ = load_model(run.path / "student.pt")
    with torch.no_grad():
        ref = student(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(res.path / "model.onnx"), providers=["CPUExecutionProvider"])
    for b in (1, len(x)):
        out = sess.run(None, {"lidar": x[:b]})[0]
        assert out.shape == (b, 4, 64)
        np.testing.assert_allclose(out, ref[:b], rtol=0, atol=1e-4)
    assert res.parity["fp32"]["golden"]["top1_agreement"] == 1.0


def test_per_step_plot_from_metrics(tmp_path):
    m = {"steps": ["t", "t+1"], "top1": [0.5, 0.25], "top5": [0.75, 0.5]}
    paths = TASKS.get("lidar").plot({"models": {"teacher": {"metrics": m}, "student": {}}}, tmp_path)
    assert [p.name for p in paths] == ["per_step.png"] and paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert TASKS.get("lidar").plot({"models": {"student": {"params": 1}}}, tmp_path) == []
