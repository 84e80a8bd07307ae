"""Teacher logits computed once per training window must be exactly what the frozen teacher
gives in each step, and a student distilled from them must be the one the live teacher trains."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from beamc.compress.distillers.ikd import IKD, IKDConfig
from beamc.compress.distillers.rkd import RKD, RKDConfig
from beamc.compress.modeling import build_model
from beamc.compress.pipeline import distill
from beamc.compress.teacher_outputs import TeacherOutputs, live_reason
from beamc.tasks.sub6 import Sub6Data
from test_vision_pipeline import tiny, tiny_data  # noqa: F401  (module-scoped fixture)


@pytest.mark.parametrize("block", [1, 4])
def test_cached_logits_equal_the_teachers_on_shuffled_batches(tiny_data, block):  # noqa: F811
    _, data = tiny_data
    data = type(data)(data.task, replace(data.cfg, window_block=block), data.data_cfg, data.masks, data.past,
                      data.labels, data.splits, data.info)
    torch.manual_seed(0)
    teacher = build_model("vision_teacher", {"image_size": 32}).eval()
    cached = TeacherOutputs(teacher, data, 8, torch.device("cpu"))
    assert cached.samples == data.split_size("train")
    seen = 0
    for batch in data.batches("train", 8, epoch=2, seed=5, shuffle=True, roles=("student", "teacher")):
        with torch.no_grad():
            live = teacher(*batch.for_teacher)
        torch.testing.assert_close(cached(batch).logits, live, rtol=1e-5, atol=1e-5)
        seen += len(batch.y)
    assert seen == data.split_size("train")
    # a window outside the training split has no cached logits: NaN, never another window's
    outside = int(data.splits["val"][0])
    if outside < len(cached.logits):
        assert torch.isnan(cached.logits[outside]).all()


def test_live_reason_names_what_prevents_caching():
    ikd = IKD(IKDConfig(), criterion=None)
    fixed = SimpleNamespace(fixed_training_inputs=True)
    assert live_reason(fixed, ikd) is None
    assert Sub6Data.fixed_training_inputs is False
    assert live_reason(SimpleNamespace(fixed_training_inputs=False), ikd) == \
        "the task re-draws training inputs every epoch (noise or augmentation)"
    assert live_reason(fixed, RKD(RKDConfig(), criterion=None)) == \
        "the method reads teacher features (features), not only logits"


def test_cached_and_live_teacher_train_the_same_student(tmp_path, monkeypatch):
    quiet = dict(progress=False, log=lambda s: None)
    recipe = tiny(tmp_path, "kd3", 3)
    cached_run = distill(recipe, out=tmp_path / "runs", **quiet)
    monkeypatch.setattr("beamc.compress.pipeline.live_reason", lambda data, distiller: "forced by the test")
    live_run = distill(recipe, out=tmp_path / "runs", **quiet)       # same teacher (cache), live forward
    assert cached_run.status["teacher_outputs"].startswith("cached: ")
    assert live_run.status["teacher_outputs"] == "live in every step: forced by the test"
    a = torch.load(cached_run.file("student.pt"), weights_only=True)["state_dict"]
    b = torch.load(live_run.file("student.pt"), weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert cached_run.file("student_history.csv").read_text().splitlines()[0] == \
        live_run.file("student_history.csv").read_text().splitlines()[0]
