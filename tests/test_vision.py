"""Vision beam tracking: the paper's parameter and FLOP counts, preprocessing, losses and DBA
on hand-made examples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from beamc.cli import app
from beamc.complexity import count_flops, count_params, example_inputs
from beamc.compress.distillers import ModelOut
from beamc.compress.distillers.ikd import IKD, IKDConfig
from beamc.errors import BeamcError
from beamc.inspect import inspect_recipe
from beamc.recipe import load_recipe
from beamc.registry import TASKS
from beamc.tasks.base import Batch, TensorSpec
from beamc.tasks.vision import (VisionTaskConfig, dba_terms, focal_loss_np, make_state, model_input, motion_masks,
                                preprocess_frame, slot_metrics)
from beamc.tasks.vision_models import vision_student, vision_teacher

REPO = Path(__file__).resolve().parents[1]


def masks_spec(length: int, size: int = 224) -> list[TensorSpec]:
    return [TensorSpec("masks", (length, size, size))]


# ------------------------------------------------------------------ Tables II, III, VII
def test_parameter_counts_tables_2_and_3():
    assert count_params(vision_teacher()) == 1_788_280
    assert count_params(vision_student()) == 107_193
    assert count_params(vision_teacher(attention=False)) == 1_788_280 - (4 * 64 * 64 + 4 * 64)  # Table IV "W/o MHA"


@pytest.mark.parametrize("role, length, paper_mflops, ours", [
    ("teacher", 8, 156.474, 157_022_976), ("student", 8, 92.216, 92_616_192),
    ("student", 5, 57.635, 58_001_040), ("student", 3, 34.581, 34_925_552)])
def test_flops_table_7(role, length, paper_mflops, ours):
    model = vision_teacher() if role == "teacher" else vision_student()
    flops = count_flops(model, example_inputs(masks_spec(length)), "thop")
    assert flops == ours
    assert flops / 1e6 == pytest.approx(paper_mflops, rel=0.02)


def test_thop_convention_on_hand_counted_layers():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.BatchNorm2d(2), torch.nn.AdaptiveAvgPool2d(1))
    # conv 4x4x2 outputs x 9 MACs; BN 32 elements x 4; avg pool (16 + 1) x 2 outputs
    assert count_flops(net, (torch.zeros(1, 1, 4, 4),), "thop") == 288 + 128 + 34
    assert count_flops(net, (torch.zeros(1, 1, 4, 4),)) == 2 * 288
    gru = torch.nn.GRU(4, 3, batch_first=True)
    # thop _count_gru_cell: 3 (in + h) h + 13 h per step
    assert count_flops(gru, (torch.zeros(1, 5, 4),), "thop") == 5 * (3 * 7 * 3 + 13 * 3)
    with pytest.raises(ValueError, match="unknown FLOP convention 'x'"):
        count_flops(gru, (torch.zeros(1, 5, 4),), "x")


def test_inspect_recipes_print_the_paper_counts():
    info = inspect_recipe(load_recipe(REPO / "recipes" / "vision_student_l3_kd.toml"))
    assert info["teacher"]["params"] == 1_788_280 and info["student"]["params"] == 107_193
    assert info["teacher"]["flops"] == 157_022_976 and info["student"]["flops"] == 34_925_552
    assert info["teacher"]["inputs"][0]["shape"] == [8, 224, 224]
    assert info["student"]["inputs"][0]["shape"] == [3, 224, 224]
    assert info["student"]["outputs"][0]["shape"] == [7, 64]
    self_kd = inspect_recipe(load_recipe(REPO / "recipes" / "vision_teacher_selfkd.toml"))
    assert self_kd["student"]["params"] == 1_788_280 and self_kd["student"]["inputs"][0]["shape"] == [8, 224, 224]


# every vision recipe, as `beamc inspect` prints it: (student L, student FLOPs, Table VII MFLOPs)
RECIPE_COUNTS = {
    "vision_teacher": (None, None, None),
    "vision_teacher_selfkd": (8, 157_022_976, 156.474),
    "vision_student_l8": (8, 92_616_192, 92.216), "vision_student_l8_kd": (8, 92_616_192, 92.216),
    "vision_student_l5": (5, 58_001_040, 57.635), "vision_student_l5_kd": (5, 58_001_040, 57.635),
    "vision_student_l3": (3, 34_925_552, 34.581), "vision_student_l3_kd": (3, 34_925_552, 34.581),
}


@pytest.mark.parametrize("name", sorted(RECIPE_COUNTS))
def test_inspect_every_vision_recipe_within_2_percent_of_table_7(name):
    result = CliRunner().invoke(app, ["inspect", str(REPO / "recipes" / f"{name}.toml"), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["teacher"]["params"] == 1_788_280 and info["teacher"]["flops"] == 157_022_976
    assert info["teacher"]["flops"] / 1e6 == pytest.approx(156.474, rel=0.02)
    length, flops, paper = RECIPE_COUNTS[name]
    if length is None:
        assert "student" not in info
        return
    params = 1_788_280 if name == "vision_teacher_selfkd" else 107_193
    assert info["student"]["params"] == params and info["student"]["flops"] == flops
    assert info["student"]["flops"] / 1e6 == pytest.approx(paper, rel=0.02)
    assert info["student"]["inputs"][0]["shape"] == [length, 224, 224]


def test_models_output_current_and_future_slots_for_any_batch():
    torch.manual_seed(0)
    s = vision_student(num_beams=32, future=4).eval()
    x = (torch.rand(3, 5, 64, 64) > 0.9).float()
    out = s(x)
    assert out.shape == (3, 5, 32)
    assert torch.allclose(s(x[1:2]), out[1:2], atol=1e-5)  # samples are independent in eval mode
    assert vision_teacher(image_size=64).eval()(x).shape == (3, 7, 64)
    with pytest.raises(BeamcError, match="image_size must be a positive multiple of 32"):
        vision_teacher(image_size=100)
    with pytest.raises(BeamcError) as e:
        vision_teacher()(x)
    assert str(e.value) == ("vision_teacher was built for 224 x 224 masks (teacher.args.image_size), the input is "
                            "64 x 64 (task.image_size); set both alike")


# ----------------------------------------------------------------------- preprocessing
STATE = make_state(VisionTaskConfig(image_size=4, blur_sigma=0.0, student_seq_len=2))


def test_frame_pair_to_mask_by_hand():
    # 4 x 4 frames at their own size (no resampling), no blur: gray = rgb . (0.2125, 0.7154, 0.0721) / 255
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0] = (255, 255, 255)   # diff 1.0
    b[1, 1] = (0, 255, 0)       # diff 0.7154
    b[2, 2] = (0, 0, 255)       # diff 0.0721 < 0.1 x max
    b[3, 3] = (0, 0, 26)        # diff 0.0073
    ga, gb = preprocess_frame(a, STATE), preprocess_frame(b, STATE)
    assert ga.dtype == np.float32 and ga.shape == (4, 4) and not ga.any()
    assert gb[0, 0] == pytest.approx(1.0) and gb[1, 1] == pytest.approx(0.7154)
    assert gb[2, 2] == pytest.approx(0.0721) and gb[3, 3] == pytest.approx(0.0721 * 26 / 255)
    mask = motion_masks(np.stack([ga, gb]), STATE)
    expected = np.zeros((1, 4, 4), np.float32)
    expected[0, 0, 0] = expected[0, 1, 1] = 1
    assert np.array_equal(mask, expected)
    # an unchanged frame gives an empty mask (strict '>' as the reference code)
    assert not motion_masks(np.stack([ga, ga]), STATE).any()


def test_blur_and_resize_are_the_papers():
    state = make_state(VisionTaskConfig(image_size=9, blur_sigma=1.0))
    frame = np.zeros((9, 9, 3), np.uint8)
    frame[4, 4] = 255
    g = preprocess_frame(frame, state)
    w0 = 1 / sum(math.exp(-x * x / 2) for x in range(-4, 5))   # scipy's normalised kernel, truncate = 4
    assert g[4, 4] == pytest.approx(w0 * w0, rel=1e-6)
    assert g.sum() == pytest.approx(1.0, rel=1e-6)
    # 8 x 8 blocks of constant colour shrink to their colour (bilinear, antialiased)
    big = np.zeros((72, 72, 3), np.uint8)
    big[:, 36:] = 255
    small = preprocess_frame(big, make_state(VisionTaskConfig(image_size=9, blur_sigma=0.0)))
    assert small[:, 0].tolist() == pytest.approx([0.0] * 9) and small[:, -1].tolist() == pytest.approx([1.0] * 9, abs=1e-6)


def test_model_input_takes_the_last_l_plus_1_frames():
    rng = np.random.default_rng(0)
    frames = rng.random((6, 4, 4)).astype(np.float32)
    x = model_input(frames, STATE, "student")          # L = 2 -> last 3 frames
    assert x.shape == (1, 2, 4, 4) and x.dtype == np.float32
    assert np.array_equal(x[0], motion_masks(frames[-3:], STATE))
    assert model_input(frames[-3:], STATE, "student").tolist() == x.tolist()
    with pytest.raises(BeamcError) as e:
        model_input(frames[:2], STATE, "student")
    assert str(e.value) == ("vision student input: expected at least 3 preprocessed frames of 4 x 4 "
                            "(L = 2 masks), found shape [2, 4, 4]")
    with pytest.raises(BeamcError, match=r"expected uint8 RGB \[H, W, 3\], found float64 \[4, 4\]"):
        preprocess_frame(np.zeros((4, 4)), STATE)


def test_state_is_json_and_names_every_parameter():
    import json

    state = json.loads(json.dumps(make_state(VisionTaskConfig(student_seq_len=3))))
    assert state["seq_len"] == {"teacher": 8, "student": 3}
    assert state["frames_needed"] == {"teacher": 9, "student": 4}
    assert (state["image_size"], state["blur_sigma"], state["mask_threshold"]) == (224, 1.0, 0.1)
    assert state["gray_weights"] == [0.2125, 0.7154, 0.0721]


# ----------------------------------------------------------------------- losses
def test_focal_loss_over_slots_by_hand():
    # [B=1, steps=2, C=2]: slot 0 p_y = 3/4, slot 1 p_y = 1/2
    z = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]])
    y = torch.tensor([[1, 0]])
    expected = ((1 / 4) ** 2 * math.log(4 / 3) + (1 / 2) ** 2 * math.log(2)) / 2   # 0.0956335
    task = TASKS.get("vision")
    assert task.criterion(z, y, VisionTaskConfig()).item() == pytest.approx(expected, rel=1e-6)
    assert task.criterion(z, y, VisionTaskConfig(focal_gamma=0.0)).item() == pytest.approx(
        (math.log(4 / 3) + math.log(2)) / 2, rel=1e-6)
    assert focal_loss_np(z.numpy(), y.numpy(), 1.0, 2.0) == pytest.approx(expected, rel=1e-6)


def test_kd_loss_is_the_papers_eq_14_by_hand():
    # (1 - beta) focal + beta Gamma^2 KL(teacher || student), averaged over samples and slots
    beta, gamma_t = 0.4, 2.0
    s = torch.tensor([[[0.0, 0.0], [0.0, math.log(3.0)]]])
    t = torch.tensor([[[0.0, 2 * math.log(3.0)], [0.0, math.log(3.0)]]])   # slot 0: p_T(Gamma) = (1/4, 3/4)
    y = torch.tensor([[1, 1]])
    task = TASKS.get("vision")
    kd = IKD(IKDConfig(temperature=gamma_t, alpha=beta), lambda z, yy: task.criterion(z, yy, VisionTaskConfig()))
    out = kd.loss(Batch((s,), y), ModelOut(s), ModelOut(t))
    kl_slot0 = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)      # 0.130812; slot 1: identical, 0
    distill = gamma_t**2 * kl_slot0 / 2
    focal = ((1 / 2) ** 2 * math.log(2) + (1 / 4) ** 2 * math.log(4 / 3)) / 2
    assert out["kd"].item() == pytest.approx(distill, rel=1e-5)
    assert out["hard"].item() == pytest.approx(focal, rel=1e-5)
    assert out["loss"].item() == pytest.approx((1 - beta) * focal + beta * distill, rel=1e-5)


# ----------------------------------------------------------------------- DBA, Top-K
def test_dba_by_hand():
    labels = np.array([10, 10, 40])
    top = np.array([[10, 11, 12],      # Y1..Y3 penalties 0, 0, 0
                    [13, 10, 30],      # 3/5, then min(3/5, 0) = 0, 0
                    [0, 1, 2]])        # capped at 1 throughout
    y = dba_terms(top, labels, delta=5.0)
    assert y.tolist() == pytest.approx([1 - (0 + 0.6 + 1) / 3, 1 - (0 + 0 + 1) / 3, 1 - (0 + 0 + 1) / 3])
    # as logits [M=3, slots=1, C=64]: the predicted beams get descending scores
    logits = np.zeros((3, 1, 64))
    for m, row in enumerate(top):
        logits[m, 0, row] = [3.0, 2.0, 1.0]
    out = slot_metrics(logits, labels[:, None], topk=(1, 3), delta=5.0)
    assert out["top1"] == pytest.approx([1 / 3]) and out["top3"] == pytest.approx([2 / 3])
    assert out["dba"] == pytest.approx([y.mean()])          # eq. (21): mean of Y1, Y2, Y3
    assert out["dba_y3"] == pytest.approx([y[2]])           # the reference code's / tables' value
    assert out["adba"] == pytest.approx(y.mean()) and out["atop3"] == pytest.approx(2 / 3)


def test_target_ambiguity_centroid_and_fit_on_hand_made_masks():
    # benchmarks/vision_target_ambiguity.py: a mask's column centroid, and a column -> beam fit
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "vision_target_ambiguity.py"
    spec = importlib.util.spec_from_file_location("vision_target_ambiguity", path)
    amb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(amb)
    masks = np.zeros((3, 4, 8), np.uint8)
    masks[0, :, 2] = 1                  # one column: centroid 2
    masks[1, 1:3, 4:6] = 1              # a 2-wide blob: centroid 4.5
    centroid, total = amb.centroid_columns(masks)
    assert centroid[:2].tolist() == [2.0, 4.5] and total.tolist() == [4.0, 4.0, 0.0]
    col = np.arange(20, dtype=float)
    beam = 3 * np.arange(20)           # beam = 3 x column: a cubic fit recovers it exactly
    beam[15:] += np.array([0, 1, 2, 5, 9])   # the scored frames miss by 0 / 1 / 2 / 5 / 9 beams
    fit, score = np.arange(20) < 15, np.arange(20) >= 15
    s = amb.fit_scores(col, beam, fit, score)
    assert (s["frames"], s["exact"], s["within_1"], s["within_2"], s["within_5"], s["median_error"]) == (5, 0.2, 0.4, 0.6, 0.8, 2.0)
