"""camera_radar task: radar maps of a hand-made cube, stream == offline preprocessing,
parameter / FLOP ratios of the recipes, metrics with padded labels, a tiny end-to-end KD run
and a multi-input ONNX export of its student."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from beamc.errors import BeamcError
from beamc.recipe import load_recipe
from beamc.registry import TASKS
from beamc.tasks.camera_radar import (CameraRadarTaskConfig, camera_frame, make_state, radar_maps, standardise,
                                      step_metrics)

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------- radar maps
def point_target(range_bin: int, doppler_bin: int, sin_theta: float, amplitude: float = 1.0) -> np.ndarray:
    """Cube [4, 256, 128] of one reflector: beat frequency at `range_bin` of the 256-point
    range FFT, phase step per chirp at `doppler_bin` of the 128-point Doppler FFT, and the
    rx phase progression pi * m * sin(theta) of a half-wavelength array (the DeepSense /
    simulator convention; on scenario 9 a range bin is 0.195 m, a Doppler bin 0.23 m/s)."""
    m, n, c = np.meshgrid(np.arange(4), np.arange(256), np.arange(128), indexing="ij")
    phase = 2 * np.pi * range_bin * n / 256 + 2 * np.pi * doppler_bin * c / 128 + np.pi * m * sin_theta
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def test_moving_point_target_lands_in_its_range_angle_and_range_velocity_cells():
    # M = 32, 128 range bins kept: 4 range bins and 4 Doppler bins per cell; angle bin j looks
    # at sin(theta) = 2 (j - 16) / 32, so sin(theta) = 0.25 is angle cell 20
    maps = radar_maps(point_target(range_bin=41, doppler_bin=17, sin_theta=0.25), range_bins=128, size=32)
    assert maps.shape == (2, 32, 32) and maps.dtype == np.float32
    ra, rv = maps
    assert np.unravel_index(np.argmax(ra), ra.shape) == (20, 10)          # angle cell 20, range cell 41 // 4
    assert np.unravel_index(np.argmax(rv), rv.shape) == (16 + 17 // 4, 10)  # Doppler 17 -> shifted 81 -> cell 20
    # the energy is where it should be, not just the largest cell: a clean tone leaks little
    assert np.expm1(ra).max() > 50 * np.median(np.expm1(ra)) + 1e-3


def test_negative_angle_and_speed_and_static_clutter():
    moving = point_target(range_bin=20, doppler_bin=-9, sin_theta=-0.5)    # approaching, left
    static = point_target(range_bin=100, doppler_bin=0, sin_theta=0.0, amplitude=3.0)
    ra, rv = radar_maps(moving + static, range_bins=128, size=32)
    assert np.unravel_index(np.argmax(ra), ra.shape) == (8, 5)             # sin -0.5 -> 16 - 8
    # the static target is removed from the range-angle map (mean over chirps subtracted) ...
    assert np.expm1(ra[:, 25]).max() < 1e-3 * np.expm1(ra).max()
    # ... and sits at zero speed (cell 16) in the range-velocity map, the mover at 64 - 9 = 55 -> cell 13
    assert np.unravel_index(np.argmax(rv), rv.shape) == (16, 25)
    assert int(np.argmax(rv[:, 5])) == 13


def test_radar_maps_reject_a_real_cube_and_a_wrong_shape():
    with pytest.raises(BeamcError, match=r"^camera_radar frame 'radar': expected a complex cube \[rx, samples, chirps\] = "
                                         r"\[4, 256, 128\], found float32 \[4, 256, 128\]$"):
        radar_maps(np.zeros((4, 256, 128), np.float32), 128, 32)
    with pytest.raises(BeamcError, match=r"found complex64 \[4, 128, 128\]$"):
        radar_maps(np.zeros((4, 128, 128), np.complex64), 128, 32)


def test_camera_frame_and_standardisation():
    rgb = np.zeros((54, 96, 3), np.uint8)
    rgb[..., 0] = 255
    x = camera_frame(rgb, 16)
    assert x.shape == (3, 16, 16) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], 1.0)
    np.testing.assert_array_equal(x[1:], 0.0)
    state = make_state(CameraRadarTaskConfig(), {"camera": {"mean": [0.5, 0.0, 0.0], "std": [0.25, 1.0, 2.0]}})
    z = standardise(x[None], "camera", state)[0]
    np.testing.assert_array_equal(z[0], 2.0)
    with pytest.raises(BeamcError, match=r"expected uint8 RGB \[H, W, 3\], found float64 \[4, 4\]"):
        camera_frame(np.zeros((4, 4)), 16)


# ----------------------------------------------------------------------------- metrics
def test_step_metrics_ignore_padded_future_beams():
    logits = np.zeros((2, 2, 8), np.float32)
    logits[0, 0, 3] = logits[0, 1, 5] = logits[1, 0, 2] = 1.0
    logits[1, 1, 7] = 1.0
    labels = np.array([[3, 5], [4, -100]])                  # sample 1's future is past the sequence end
    m = step_metrics(logits, labels, (1, 3))
    assert m["top1"] == [0.5, 1.0] and m["atop1"] == 0.75 and m["valid_per_step"] == [2, 1]
    task = TASKS.get("camera_radar")
    loss = task.criterion(torch.from_numpy(logits), torch.from_numpy(labels), None)
    logp = torch.log_softmax(torch.from_numpy(logits), -1)
    expected = -(logp[0, 0, 3] + logp[0, 1, 5] + logp[1, 0, 4]) / 3
    assert float(loss) == pytest.approx(float(expected), abs=1e-6)


# --------------------------------------------------------------------- model budgets
@pytest.mark.parametrize("recipe, teacher_params, student_params", [
    ("camera_radar_student_kd", 1_509_552, 44_248),
    ("camera_radar_student_scratch", 1_509_552, 44_248),
])
def test_student_has_27x_fewer_parameters_and_4x_fewer_flops(recipe, teacher_params, student_params):
    from beamc.inspect import inspect_recipe

    info = inspect_recipe(load_recipe(REPO / "recipes" / f"{recipe}.toml"))
    assert info["teacher"]["params"] == teacher_params and info["student"]["params"] == student_params
    assert info["teacher"]["flops"] == 60_030_976 and info["student"]["flops"] == 2_880_512
    assert info["ratios"]["params"] >= 27 and info["ratios"]["flops"] >= 4
    assert [i["name"] for i in info["student"]["inputs"]] == ["camera", "radar"]


@pytest.mark.parametrize("recipe, inputs, params", [("camera_only_teacher", ["camera"], 1_157_952),
                                                    ("radar_only_teacher", ["radar"], 1_157_808),
                                                    ("camera_radar_teacher", ["camera", "radar"], 1_509_552)])
def test_single_modality_teachers_are_the_fused_teacher_with_one_branch(recipe, inputs, params):
    from beamc.inspect import inspect_recipe

    info = inspect_recipe(load_recipe(REPO / "recipes" / f"{recipe}.toml"))
    assert [i["name"] for i in info["teacher"]["inputs"]] == inputs and info["teacher"]["params"] == params


def test_model_and_task_modalities_must_agree():
    from beamc.registry import MODELS

    model = MODELS.get("camera_radar_teacher")(modalities=["camera", "radar"])
    with pytest.raises(BeamcError, match=r"built for modalities \['camera', 'radar'\] \(model args\) got 1 input"):
        model(torch.zeros(1, 4, 3, 32, 32))
    with pytest.raises(BeamcError, match="task.modalities: expected a non-empty list of distinct names"):
        TASKS.get("camera_radar").input_spec(CameraRadarTaskConfig(modalities=("camera", "lidar")), None)


# ------------------------------------------------------------- data, stream, distill
TINY = """
name = "tiny_camera_radar"
[task]
name = "camera_radar"
past = 3
future = 2
image_size = 16
map_size = 16
[data]
source = "synth"
train_fraction = 0.5
val_fraction = 0.25
[data.synth]
sequences = 4
min_frames = 10
max_frames = 12
lidar = false
gps = false
[teacher]
model = "camera_radar_teacher"
args = {{ future = 2, image_size = 16, map_size = 16 }}
[student]
model = "camera_radar_student"
args = {{ future = 2, image_size = 16, map_size = 16 }}
[distill]
method = "{method}"
{extra}
[train]
epochs = 2
batch_size = 16
lr = 0.003
seed = 0
device = "cpu"
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from beamc.compress.pipeline import distill

    folder = tmp_path_factory.mktemp("camera_radar")
    path = folder / "tiny.toml"
    path.write_text(textwrap.dedent(TINY.format(method="ikd", extra="temperature = 5.0\nalpha = 0.7")))
    recipe = load_recipe(path)
    run = distill(recipe, out=folder / "runs", progress=False, log=lambda s: None)
    return recipe, run.path


def test_stream_preprocessor_equals_offline_arrays(tiny_run):
    from beamc.data import deepsense as ds
    from beamc.tasks.deepsense_data import open_deepsense

    recipe, run_dir = tiny_run
    task = TASKS.get("camera_radar")
    data = task.prepare(recipe.task, recipe.data, progress=False)
    state = json.loads((run_dir / "preprocess.json").read_text())["state"]
    assert state == json.loads(json.dumps(data.preprocess_state))
    sc = open_deepsense(recipe.data)
    (cam, rad), labels = data.arrays("test")
    test_windows = data.splits["test"]
    assert cam.shape == (len(test_windows), 3, 3, 16, 16) and rad.shape == (len(test_windows), 3, 2, 16, 16)
    assert (labels[:, -1] == -100).any()                         # padded future beams at sequence ends
    stream = task.stream_preprocessor(recipe.task, state)
    assert stream.modalities == ("camera", "radar")
    checked = 0
    for seg in np.unique(sc.segment[data.past[test_windows][:, -1]])[:1]:   # one test sequence, frame by frame
        stream.reset()
        for row in np.flatnonzero(sc.segment == seg):
            out = stream.push({"camera": ds.read_image(sc, row), "radar": ds.read_radar(sc, row)})
            hit = np.flatnonzero(data.past[test_windows][:, -1] == row)
            assert (out is None) == (len(hit) == 0)
            if out is not None:
                np.testing.assert_array_equal(out[0], cam[hit])
                np.testing.assert_array_equal(out[1], rad[hit])
                checked += 1
    assert checked >= 5
    with pytest.raises(BeamcError, match=r"expected modality 'radar', found \['camera'\]"):
        stream.push({"camera": ds.read_image(sc, 0)})


def test_tiny_kd_run_trains_teacher_and_student(tiny_run):
    _, run_dir = tiny_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["models"]) == {"teacher", "student"}
    s = metrics["models"]["student"]
    assert s["metrics"]["steps"] == ["t", "t+1", "t+2"] and len(s["metrics"]["top5"]) == 3
    assert 0.0 <= s["metrics"]["atop5"] <= 1.0 and s["metrics"]["top1"][0] <= s["metrics"]["top5"][0]
    assert metrics["compression"]["params_ratio"] >= 27 and metrics["compression"]["flops_ratio"] >= 4
    history = (run_dir / "student_history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,train_loss,train_kd,train_hard") and len(history) == 3


def test_student_exports_to_multi_input_onnx_with_full_parity(tiny_run, tmp_path):
    import onnxruntime as ort

    from beamc.export.bundle import export_run

    _, run_dir = tiny_run
    res = export_run(run_dir, "cpu", precision="fp32", out=tmp_path / "bundle", log=lambda s: None)
    m = res.manifest
    assert [i["name"] for i in m["inputs"]] == ["camera", "radar"]
    assert m["inputs"][0]["onnx_shape"] == ["batch", 3, 3, 16, 16] and m["outputs"][0]["onnx_shape"] == ["batch", 3, 64]
    assert res.parity["fp32"]["golden"]["top1_agreement"] == 1.0
    cam, rad = (np.load(res.path / m["golden"]["inputs"][n]) for n in ("camera", "radar"))
    sess = ort.InferenceSession(str(res.path / "model.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"camera": cam, "radar": rad})[0]
    from beamc.compress.modeling import load_model

    model, _ = load_model(run_dir / "student.pt")
    with torch.no_grad():
        ref = model(torch.from_numpy(cam), torch.from_numpy(rad)).numpy()
    assert np.array_equal(out.argmax(-1), ref.argmax(-1)) and float(np.abs(out - ref).max()) < 1e-4


def test_modality_dropout_zeroes_one_whole_modality_per_dropped_window_in_training_only():
    from beamc.tasks.camera_radar_models import camera_radar_teacher

    torch.manual_seed(0)
    net = camera_radar_teacher(modality_dropout=0.5)
    feats = [torch.ones(2000, 4, 8), torch.ones(2000, 4, 8)]
    cam, rad = net.drop_modalities(feats)
    cam_off, rad_off = (cam == 0).all(dim=(1, 2)), (rad == 0).all(dim=(1, 2))
    assert ((cam == 0) | (cam == 1)).all() and (cam_off == (cam == 0).any(dim=(1, 2))).all()  # a window loses all frames
    assert not (cam_off & rad_off).any()  # never both modalities
    assert 0.45 < (cam_off | rad_off).float().mean() < 0.55 and 0.2 < cam_off.float().mean() < 0.3
    # evaluation (and export) sees every modality: the same weights give the same outputs as without it
    plain = camera_radar_teacher(modality_dropout=0.0)
    plain.load_state_dict(net.state_dict())
    x = (torch.randn(3, 4, 3, 32, 32), torch.randn(3, 4, 2, 32, 32))
    torch.testing.assert_close(net.eval()(*x), plain.eval()(*x), rtol=0, atol=0)
    with pytest.raises(BeamcError, match="modality_dropout must be in"):
        camera_radar_teacher(modality_dropout=1.0)
